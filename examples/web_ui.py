"""The web UI mounted in your own Starlette app, behind HTTP Basic auth.

    pip install "python-durable[ui]"
    python examples/web_ui.py           # serves http://127.0.0.1:8000/ops/durable/
    python examples/web_ui.py --check   # makes a few requests instead, and exits

A shop app records a paid order and a failed one, then mounts
``durable.ui.app(wf, auth=...)`` under ``/ops/durable`` next to its own
routes. The auth hook asks the browser for a password (401 with
``WWW-Authenticate``) and lets only the operator in.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import os
import sys
import tempfile

import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

import durable.ui
from durable import Workflow

DB_PATH = os.environ.get("EXAMPLE_DB") or os.path.join(tempfile.mkdtemp(), "shop.db")
OPERATOR_PASSWORD = os.environ.get("OPERATOR_PASSWORD", "change-me")

wf = Workflow("shop", db=DB_PATH)


@wf.task(retries=0)  # bad input: retrying cannot help
async def charge(order_id: str, cents: int) -> dict[str, object]:
    if cents <= 0:
        raise ValueError(f"order {order_id}: nothing to charge ({cents} cents)")
    return {"order_id": order_id, "charged": cents}


@wf.workflow(id="order-{order_id}")
async def checkout(order_id: str, cents: int) -> dict[str, object]:
    return await charge(order_id, cents)


def operator_only(request: Request) -> bool:
    """HTTP Basic: user ``operator`` with OPERATOR_PASSWORD."""
    expected = base64.b64encode(f"operator:{OPERATOR_PASSWORD}".encode()).decode()
    given = request.headers.get("authorization", "").removeprefix("Basic ")
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(
            401, "operators only", headers={"WWW-Authenticate": 'Basic realm="ops"'}
        )
    return True


async def home(request: Request) -> PlainTextResponse:
    return PlainTextResponse("the shop")


app = Starlette(
    routes=[
        Route("/", home),
        Mount("/ops/durable", app=durable.ui.app(wf, auth=operator_only)),
    ]
)


async def seed() -> None:
    await checkout(order_id="A1", cents=1250)
    try:
        await checkout(order_id="B2", cents=0)
    except ValueError as exc:
        print(f"order B2 failed: {exc}")


async def check() -> None:
    """A few requests against the mounted UI, printed."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://shop.test") as client:
        anonymous = await client.get("/ops/durable/")
        print(f"without a password: {anonymous.status_code}")
        auth = ("operator", OPERATOR_PASSWORD)
        failed = await client.get("/ops/durable/", params={"status": "failed"}, auth=auth)
        listed = "order-B2" in failed.text and "order-A1" not in failed.text
        print(f"failed runs as the operator: {failed.status_code}, only B2 listed: {listed}")
        page = await client.get("/ops/durable/runs/order-B2", auth=auth)
        print(f"run page shows the error: {'nothing to charge (0 cents)' in page.text}")


async def main() -> None:
    await seed()
    if "--check" in sys.argv:
        await check()
        await wf.close()
        return
    import uvicorn

    print("open http://127.0.0.1:8000/ops/durable/ (user: operator)")
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=8000, log_level="warning"))
    try:
        await server.serve()
    finally:
        await wf.close()


if __name__ == "__main__":
    asyncio.run(main())
