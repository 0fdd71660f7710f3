"""The web UI: an ASGI app that shows an app's runs and operates them.

Needs the ``ui`` extra (``pip install 'python-durable[ui]'``). Mount
:func:`app` in a Starlette or FastAPI application, or serve it on its own
with :func:`durable.ui.server.run` (what ``durable ui`` does).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from durable.ui._security import AuthHook as AuthHook

if TYPE_CHECKING:
    from starlette.types import ASGIApp

    from durable._workflow import Workflow
    from durable.stores.base import Store

__all__ = ["AuthHook", "app"]


def app(
    wf_or_store: Workflow | Store,
    *,
    app_name: str | None = None,
    auth: AuthHook | None = None,
    read_only: bool = False,
) -> ASGIApp:
    """An ASGI app with the pages of ``wf_or_store``'s runs, queues and schedules.

    Pass your :class:`~durable.Workflow` to see its schedules and let the
    UI decode what your code registered; or a bare
    :class:`~durable.stores.base.Store` and the ``app_name`` whose runs to
    show (everything the store holds is shown; schedules live in code).

    ``auth(request)`` is called on every page and action: return True to
    allow, False to answer 403, or raise
    :class:`starlette.exceptions.HTTPException` (e.g. 401 with a
    ``WWW-Authenticate`` header); it may be async. Without it anyone who
    reaches the app may act on runs: mount it behind your own auth or bind
    to 127.0.0.1. ``read_only=True`` removes the actions (cancel, resume,
    retry, signal, delete) and refuses their requests.

    Every link is relative to the ASGI ``root_path``, so the app works when
    mounted under a prefix, e.g. ``Mount("/durable", durable.ui.app(wf))``.
    """
    from durable._workflow import Workflow
    from durable.errors import ConfigurationError
    from durable.stores.base import Store
    from durable.ui import _app

    if isinstance(wf_or_store, Workflow):
        if app_name is not None and app_name != wf_or_store.name:
            raise ConfigurationError(
                f"app_name {app_name!r} differs from the Workflow's name {wf_or_store.name!r}"
            )
        wf = wf_or_store
    elif isinstance(wf_or_store, Store):
        if not app_name:
            raise ConfigurationError(
                "durable.ui.app(store) needs app_name=: the name of the app whose runs to show"
            )
        wf = Workflow(app_name, db=wf_or_store)
    else:
        raise ConfigurationError(
            f"durable.ui.app() takes a Workflow or a Store, got {type(wf_or_store).__name__}"
        )
    if auth is not None and not callable(auth):
        raise ConfigurationError(f"auth must be a callable auth(request) -> bool, got {auth!r}")
    return _app.build(wf, auth, read_only)
