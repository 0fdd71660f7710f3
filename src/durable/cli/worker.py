"""``durable worker module:attr``: run a worker for the app a module defines."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import signal
import sys
from typing import Any

from durable._workflow import Workflow

__all__ = ["add_parser", "load_app"]


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """Add the ``worker`` command to an ``add_subparsers()`` object."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "worker",
        help="execute an app's queued runs and adopt its orphaned ones",
        description=(
            "Run a worker for the Workflow `attr` of `module` (e.g. shop.app:wf) until "
            "SIGTERM or Ctrl-C; exits 0 after a graceful stop."
        ),
    )
    parser.add_argument(
        "app", metavar="module:attr", help="where the Workflow is, e.g. shop.app:wf"
    )
    parser.add_argument(
        "--queue",
        "-q",
        action="append",
        dest="queues",
        metavar="NAME",
        help="a queue to serve (repeatable; default: every declared queue and 'default')",
    )
    parser.add_argument(
        "--concurrency", "-c", type=int, default=16, help="runs at once in this process"
    )
    parser.add_argument(
        "--grace", type=float, default=30.0, help="seconds in-flight runs get to finish on stop"
    )
    parser.add_argument(
        "--poll-interval", type=float, default=1.0, help="seconds between looks at the store"
    )
    parser.add_argument(
        "--park-after",
        type=float,
        default=None,
        help="seconds of sleep or signal wait after which a run parks (default: the app's)",
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    parser.set_defaults(handler=_run)
    return parser


def load_app(spec: str) -> Workflow:
    """The Workflow named by ``module:attr``, importing the module (cwd on the path)."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise SystemExit(f"durable: expected module:attr (e.g. shop.app:wf), got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SystemExit(f"durable: cannot import {module_name!r}: {exc}") from None
    app = getattr(module, attr, None)
    if not isinstance(app, Workflow):
        raise SystemExit(
            f"durable: {spec!r} is {type(app).__name__}, not a durable.Workflow"
            if app is not None
            else f"durable: module {module_name!r} has no attribute {attr!r}"
        )
    return app


def _exit_now(signum: int, frame: object) -> None:
    # Stopped before serving began: nothing is claimed yet, so nothing to hand back.
    raise SystemExit(0)


def _run(args: argparse.Namespace) -> int:
    # Until the worker installs its graceful handlers, SIGTERM and SIGINT end the
    # process at once, with status 0 as after a graceful stop.
    signal.signal(signal.SIGTERM, _exit_now)
    signal.signal(signal.SIGINT, _exit_now)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app = load_app(args.app)

    async def serve() -> None:
        try:
            await app.serve(
                queues=args.queues,
                concurrency=args.concurrency,
                grace=args.grace,
                poll_interval=args.poll_interval,
                park_after=args.park_after,
            )
        finally:
            await app.close()

    asyncio.run(serve())
    return 0
