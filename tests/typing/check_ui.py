"""Type-checked by mypy, never run: the web UI's entry points accept what the README shows."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Mount
from starlette.types import ASGIApp

import durable.ui
from durable import Workflow
from durable.stores.sqlite import SQLiteStore
from durable.ui import server

wf = Workflow("typing-ui")


def staff_only(request: Request) -> bool:
    return request.headers.get("x-role") == "staff"


async def staff_only_async(request: Request) -> bool:
    return request.headers.get("x-role") == "staff"


mounted: ASGIApp = durable.ui.app(wf, auth=staff_only)
read_only: ASGIApp = durable.ui.app(wf, auth=staff_only_async, read_only=True)
by_store: ASGIApp = durable.ui.app(SQLiteStore("jobs.db"), app_name="typing-ui")
site = Starlette(routes=[Mount("/durable", app=mounted)])


def serve() -> None:
    server.run(wf, host="127.0.0.1", port=8233, read_only=True)
