"""``durable signal RUN_ID NAME [JSON]``."""

from __future__ import annotations

import json
from typing import Any

import click

from durable._workflow import Workflow
from durable.cli._context import Target, run

__all__ = ["signal"]


@click.command()
@click.argument("run_id")
@click.argument("name")
@click.argument("payload", metavar="[JSON]", required=False)
@click.pass_obj
def signal(target: Target, run_id: str, name: str, payload: str | None) -> None:
    """Send the signal NAME, with an optional JSON payload, to the run RUN_ID.

    The run must exist; a run waiting for NAME continues once its worker sees it.
    """
    value: Any = None
    if payload is not None:
        try:
            value = json.loads(payload)
        except ValueError as exc:
            raise click.BadParameter(f"not JSON ({exc}): {payload!r}", param_hint="JSON") from None

    async def action(wf: Workflow) -> str:
        info = await wf.get_run(run_id)
        await wf.send_signal(run_id, name, value)
        return info.status

    status = run(target, action)
    click.echo(f"{run_id}: signal {name!r} sent (run is {status})")
