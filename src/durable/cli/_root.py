"""The ``durable`` command group: connection options and the list of commands."""

from __future__ import annotations

import click

from durable.cli._context import Target
from durable.cli._prune import prune
from durable.cli._queues import queues
from durable.cli._runs import runs
from durable.cli._signal import signal
from durable.cli._ui import ui
from durable.cli.worker import worker

__all__ = ["cli"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--db",
    envvar="DURABLE_DB",
    metavar="URL",
    help="the store: a SQLite path, sqlite:///path, postgresql://... or redis://... "
    "[env DURABLE_DB]",
)
@click.option(
    "--app",
    envvar="DURABLE_APP",
    metavar="NAME|module:attr",
    help="the app's name, or module:attr to load your Workflow (and its store) [env DURABLE_APP]",
)
@click.pass_context
def cli(ctx: click.Context, db: str | None, app: str | None) -> None:
    """Inspect and operate python-durable runs.

    Exit status: 0 ok, 1 run not found or action refused, 2 usage error.
    """
    ctx.obj = Target(db=db or None, app=app or None)


cli.add_command(runs)
cli.add_command(signal)
cli.add_command(prune)
cli.add_command(queues)
cli.add_command(worker)
cli.add_command(ui)
