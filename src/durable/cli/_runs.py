"""``durable runs ...``: list, show and act on runs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import click

from durable import _inspect
from durable._workflow import Workflow
from durable.cli import _render
from durable.cli._context import Refused, Target, run
from durable.cli._times import moment
from durable.errors import (
    ConfigurationError,
    DurableError,
    RunIdError,
    RunNotFinishedError,
    RunNotFoundError,
    StoreError,
)
from durable.stores.base import RUN_STATUSES

__all__ = ["runs"]

# How long `delete --force` waits for a cancelled run's owner to stop it.
FORCE_DELETE_WAIT = 30.0


@click.group()
def runs() -> None:
    """List, inspect and act on runs."""


@runs.command("list")
@click.option("--status", type=click.Choice(RUN_STATUSES), help="only runs with this status")
@click.option("--workflow", "-w", help="only runs of this workflow name")
@click.option("--queue", "-q", help="only runs enqueued on this queue")
@click.option(
    "--since",
    callback=moment,
    metavar="WHEN",
    help="created since: 2h, 30m, 7d or an ISO 8601 time",
)
@click.option("--until", callback=moment, metavar="WHEN", help="created before: 2h, or ISO 8601")
@click.option("--id-prefix", metavar="TEXT", help="only runs whose id starts with TEXT")
@click.option(
    "--limit", "-n", type=click.IntRange(min=1), default=50, show_default=True, help="runs per page"
)
@click.option("--cursor", help="continue after the last run of a previous page")
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")
@click.pass_obj
def list_runs(
    target: Target,
    status: Any,
    workflow: str | None,
    queue: str | None,
    since: datetime | None,
    until: datetime | None,
    id_prefix: str | None,
    limit: int,
    cursor: str | None,
    as_json: bool,
) -> None:
    """The app's runs, newest first, a page at a time."""

    async def action(wf: Workflow) -> list[_inspect.RunInfo]:
        return await wf.list_runs(
            status=status,
            workflow=workflow,
            queue=queue,
            since=since,
            until=until,
            id_prefix=id_prefix,
            limit=limit,
            cursor=cursor,
        )

    found = run(target, action)
    following = found[-1].cursor if len(found) == limit else None
    if as_json:
        _render.print_json({"runs": found, "next_cursor": following})
        return
    _render.print_runs(found)
    if following is not None:
        click.echo(f"more: --cursor {following}")


@runs.command("show")
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of tables")
@click.pass_obj
def show(target: Target, run_id: str, as_json: bool) -> None:
    """Everything about RUN_ID: inputs, outcome, steps, child runs and signals."""

    async def action(
        wf: Workflow,
    ) -> tuple[_inspect.RunInfo, list[_inspect.RunInfo], list[_inspect.SignalInfo]]:
        info = await wf.get_run(run_id)
        children = await _inspect.children_of(wf.store, wf.name, info)
        signals = await _inspect.signals_of(wf.store, wf.name, run_id, info.steps)
        return info, children, signals

    info, children, signals = run(target, action)
    if as_json:
        _render.print_json({**_render.to_plain(info), "children": children, "signals": signals})
    else:
        _render.print_run(info, children, signals)


def _each(
    target: Target,
    run_ids: tuple[str, ...],
    act: Callable[[Workflow, str], Awaitable[str]],
    *,
    needs_code: str | None = None,
) -> None:
    """Apply ``act`` to every run, printing a line each; exit 1 if any was refused."""
    refused: list[str] = []

    async def action(wf: Workflow) -> None:
        for run_id in run_ids:
            try:
                click.echo(await act(wf, run_id))
            except Refused as exc:
                refused.append(run_id)
                click.echo(f"{run_id}: {exc.format_message()}", err=True)
            except (RunIdError, StoreError):
                raise
            except DurableError as exc:
                refused.append(run_id)
                click.echo(f"{run_id}: {exc}", err=True)

    run(target, action, needs_code=needs_code)
    if refused:
        raise Refused(f"{len(refused)} of {len(run_ids)} run(s) refused: {', '.join(refused)}")


@runs.command("cancel")
@click.argument("run_ids", metavar="RUN_ID...", nargs=-1, required=True)
@click.pass_obj
def cancel(target: Target, run_ids: tuple[str, ...]) -> None:
    """Ask runs to stop; a queued or failed run is cancelled at once."""

    async def act(wf: Workflow, run_id: str) -> str:
        await wf.cancel(run_id)
        info = await wf.get_run(run_id)
        if info.status == "running":
            return f"{run_id}: cancel requested; its worker stops it at the next step"
        return f"{run_id}: {info.status}"

    _each(target, run_ids, act)


@runs.command("resume")
@click.argument("run_ids", metavar="RUN_ID...", nargs=-1, required=True)
@click.option(
    "--here",
    is_flag=True,
    help="execute it in this process (needs --app module:attr) instead of handing it to a worker",
)
@click.pass_obj
def resume(target: Target, run_ids: tuple[str, ...], here: bool) -> None:
    """Hand failed, cancelled or stuck runs to a worker, or continue them here with --here.

    A stuck run is one still marked running whose process died. A cancelled
    run's cancellation is cleared: resuming it is a deliberate act.
    """
    if here:
        _each(target, run_ids, _execute_here, needs_code="resume --here")
    else:
        _each(target, run_ids, _hand_to_worker)


@runs.command("retry")
@click.argument("run_ids", metavar="RUN_ID...", nargs=-1, required=True)
@click.pass_obj
def retry(target: Target, run_ids: tuple[str, ...]) -> None:
    """Re-run failed runs' failed steps, as calling them again does.

    With --app module:attr they execute here; otherwise a worker takes them.
    """

    async def act(wf: Workflow, run_id: str) -> str:
        info = await wf.get_run(run_id)
        if info.status != "failed":
            raise Refused(f"run {run_id!r} is {info.status}, not failed: nothing to retry")
        if target.loads_code:
            return await _execute_here(wf, run_id)
        return await _hand_to_worker(wf, run_id)

    _each(target, run_ids, act)


async def _execute_here(wf: Workflow, run_id: str) -> str:
    try:
        output = await wf.resume(run_id)
    except (RunNotFoundError, ConfigurationError, StoreError):
        raise
    except Exception as exc:  # the run's own outcome, recorded in the store
        raise Refused(f"run {run_id!r} did not complete: {type(exc).__name__}: {exc}") from None
    return f"{run_id}: completed, output {_render.to_plain(output)!r}"


async def _hand_to_worker(wf: Workflow, run_id: str) -> str:
    handle = await wf.requeue(run_id)
    return f"{run_id}: {await handle.status()}, for a worker to continue"


@runs.command("delete")
@click.argument("run_ids", metavar="RUN_ID...", nargs=-1, required=True)
@click.option("--force", is_flag=True, help="cancel an unfinished run first, then delete it")
@click.pass_obj
def delete(target: Target, run_ids: tuple[str, ...], force: bool) -> None:
    """Delete finished runs with their steps and signals; unfinished ones are refused."""

    async def act(wf: Workflow, run_id: str) -> str:
        try:
            await wf.delete_run(run_id)
        except RunNotFinishedError:
            if not force:
                raise
            await _cancel_and_wait(wf, run_id)
            await wf.delete_run(run_id)
        return f"{run_id}: deleted"

    _each(target, run_ids, act)


async def _cancel_and_wait(wf: Workflow, run_id: str) -> None:
    await wf.cancel(run_id)
    deadline = time.monotonic() + FORCE_DELETE_WAIT
    while (await wf.get_run(run_id)).status in ("running", "queued"):
        if time.monotonic() >= deadline:
            raise RunNotFinishedError(
                f"run {run_id!r} was asked to stop but its worker has not stopped it "
                f"within {FORCE_DELETE_WAIT:.0f}s; try again later"
            )
        await asyncio.sleep(0.2)
