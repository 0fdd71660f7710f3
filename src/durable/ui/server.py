"""Serve the UI on its own with uvicorn: ``durable ui`` calls :func:`run`."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from durable._workflow import Workflow
    from durable.stores.base import Store
    from durable.ui._security import AuthHook

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8233


def url(host: str, port: int) -> str:
    """The address a browser opens for a server bound to ``host``:``port``."""
    shown = "127.0.0.1" if host in ("", "0.0.0.0") else host
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/"


def run(
    target: Workflow | Store,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    read_only: bool = False,
    app_name: str | None = None,
    auth: AuthHook | None = None,
) -> None:
    """Serve the UI of ``target`` (a Workflow, or a Store with ``app_name``) until interrupted.

    Binds to 127.0.0.1 by default, so only this machine can reach it; bind
    elsewhere only behind an ``auth`` hook or with ``read_only=True``.
    Prints the URL to open, then blocks (Ctrl-C stops it).
    """
    import uvicorn

    from durable.ui import app

    asgi = app(target, app_name=app_name, auth=auth, read_only=read_only)
    mode = " (read-only)" if read_only else ""
    print(f"durable UI{mode} at {url(host, port)}", flush=True)
    uvicorn.run(asgi, host=host, port=port, log_level="warning")
