"""The ``durable`` command (also ``python -m durable``)."""

from __future__ import annotations

import argparse

from durable.cli import worker

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run the ``durable`` command with ``argv`` (default: the process's arguments)."""
    parser = argparse.ArgumentParser(prog="durable", description="python-durable commands")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    worker.add_parser(commands)
    args = parser.parse_args(argv)
    result: int = args.handler(args)
    return result
