"""``durable prune``: delete finished runs older than an age."""

from __future__ import annotations

from datetime import timedelta

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from durable._workflow import Workflow
from durable.cli import _render
from durable.cli._context import Target, run
from durable.cli._times import age

__all__ = ["prune"]

FINAL_STATUSES = ("completed", "failed", "cancelled")


def _statuses(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    chosen = tuple(part.strip() for part in value.split(",") if part.strip())
    wrong = [status for status in chosen if status not in FINAL_STATUSES]
    if wrong or not chosen:
        raise click.BadParameter(
            f"{value!r}: give finished statuses among {', '.join(FINAL_STATUSES)} "
            "(queued and running runs are never pruned)"
        )
    return chosen


@click.command()
@click.option(
    "--older-than",
    required=True,
    callback=age,
    metavar="AGE",
    help="age of the runs to delete: 30d, 12h, 1w",
)
@click.option(
    "--status",
    "statuses",
    default=",".join(FINAL_STATUSES),
    show_default=True,
    callback=_statuses,
    help="comma-separated finished statuses to delete",
)
@click.option("--dry-run", is_flag=True, help="count the runs that would go, delete nothing")
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of text")
@click.pass_obj
def prune(
    target: Target,
    older_than: timedelta,
    statuses: tuple[str, ...],
    dry_run: bool,
    as_json: bool,
) -> None:
    """Delete finished runs (with their steps and signals) that ended before --older-than.

    Unfinished runs are never touched. Runs go in batches, with a progress bar.
    """

    async def action(wf: Workflow) -> tuple[int, int]:
        due = await wf.prune(older_than, statuses, dry_run=True)
        if dry_run or due == 0:
            return due, 0
        if as_json:
            return due, await wf.prune(older_than, statuses)
        columns = (TextColumn("deleting runs"), BarColumn(), MofNCompleteColumn())
        with Progress(*columns, console=_render.console(), transient=True) as bar:
            task = bar.add_task("prune", total=due)

            def advance(deleted_so_far: int) -> None:
                bar.update(task, completed=deleted_so_far)

            return due, await wf.prune(older_than, statuses, progress=advance)

    due, deleted = run(target, action)
    if as_json:
        _render.print_json({"dry_run": dry_run, "matched": due, "deleted": deleted})
    elif dry_run:
        click.echo(f"{due} run(s) would be deleted (dry run)")
    else:
        click.echo(f"{deleted} run(s) deleted")
