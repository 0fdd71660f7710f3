"""``durable ui``: serve the web UI for an app's store."""

from __future__ import annotations

import importlib

import click

from durable.cli._context import Target

__all__ = ["ui"]


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="address to listen on")
@click.option(
    "--port",
    type=click.IntRange(min=0, max=65535),
    default=8233,
    show_default=True,
    help="port to listen on",
)
@click.option("--read-only", is_flag=True, help="show runs but offer no actions")
@click.pass_obj
def ui(target: Target, host: str, port: int, read_only: bool) -> None:
    """Serve the web UI on HOST:PORT (local only by default) until Ctrl-C."""
    wf = target.workflow()
    try:
        server = importlib.import_module("durable.ui.server")
    except ImportError as exc:
        raise click.UsageError(
            f"the web UI needs the 'ui' extra: pip install 'python-durable[ui]' ({exc})"
        ) from None
    server.run(wf, host=host, port=port, read_only=read_only)
