"""The ``durable`` command (also ``python -m durable``), under the ``cli`` extra."""

from __future__ import annotations

import sys

__all__ = ["main"]

MISSING_EXTRA = (
    "durable: the command needs the 'cli' extra (click and rich): pip install 'python-durable[cli]'"
)


def main(argv: list[str] | None = None) -> int:
    """Run the ``durable`` command with ``argv`` (default: the process's arguments).

    Returns the exit status: 0 ok, 1 not found or refused, 2 usage.
    """
    try:
        from durable.cli._root import cli
    except ImportError as exc:
        if exc.name not in ("click", "rich") and not (exc.name or "").startswith("rich."):
            raise
        print(MISSING_EXTRA, file=sys.stderr)
        return 2
    try:
        cli.main(args=argv, prog_name="durable", standalone_mode=True)
    except SystemExit as stop:
        return _status(stop.code)
    return 0


def _status(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    # SystemExit("message"): print it as the interpreter would, a failure.
    print(code, file=sys.stderr)
    return 1
