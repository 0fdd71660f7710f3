"""``durable worker module:attr``: run a worker for the app a module defines."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import NoReturn

import click

from durable.cli._context import load_app

__all__ = ["load_app", "worker"]


def _exit_now(signum: int, frame: object) -> NoReturn:
    # Stopped before serving began: nothing is claimed yet, so nothing to hand back.
    raise SystemExit(0)


@click.command()
@click.argument("app", metavar="module:attr", required=False)
@click.option(
    "--queue",
    "-q",
    "queues",
    multiple=True,
    metavar="NAME",
    help="a queue to serve (repeatable; default: every declared queue and 'default')",
)
@click.option(
    "--concurrency",
    "-c",
    type=click.IntRange(min=1),
    default=16,
    show_default=True,
    help="runs at once in this process",
)
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    help="seconds in-flight steps get to finish on stop (runs in waits park at once)",
)
@click.option(
    "--poll-interval",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="seconds between looks at the store",
)
@click.option(
    "--park-after",
    type=click.FloatRange(min=0),
    default=None,
    help="seconds of sleep or signal wait after which a run parks (default: the app's)",
)
@click.option("--log-level", default="INFO", show_default=True, help="logging level")
@click.pass_context
def worker(
    ctx: click.Context,
    app: str | None,
    queues: tuple[str, ...],
    concurrency: int,
    grace: float,
    poll_interval: float,
    park_after: float | None,
    log_level: str,
) -> None:
    """Execute the queued runs of the Workflow at module:attr (e.g. shop.app:wf).

    The app may also come from --app module:attr or DURABLE_APP. Runs until
    SIGTERM or Ctrl-C; exits 0 after a graceful stop.
    """
    spec = app or ctx.obj.app
    if not spec:
        raise click.UsageError("the worker runs your code: give module:attr (e.g. shop.app:wf)")
    if ":" not in spec:
        raise click.UsageError(f"expected module:attr (e.g. shop.app:wf), got {spec!r}")
    # Until the worker installs its graceful handlers, SIGTERM and SIGINT end the
    # process at once, with status 0 as after a graceful stop.
    signal.signal(signal.SIGTERM, _exit_now)
    signal.signal(signal.SIGINT, _exit_now)
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    wf = load_app(spec)

    async def serve() -> None:
        try:
            await wf.serve(
                queues=list(queues) or None,
                concurrency=concurrency,
                grace=grace,
                poll_interval=poll_interval,
                park_after=park_after,
            )
        finally:
            await wf.close()

    asyncio.run(serve())
