"""examples/fastapi_app.py over httpx, and as a real uvicorn server killed mid-run."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the FastAPI example needs fastapi (dev extra)")
httpx = pytest.importorskip("httpx", reason="the FastAPI example is driven with httpx")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ORDER = {"sku": "mug", "quantity": 2, "cents": 1800}


def _load_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """A fresh copy of the example module, on its own database and payments ledger."""
    monkeypatch.setenv("ORDERS_DB", str(tmp_path / "orders.db"))
    monkeypatch.setenv("ORDERS_PAYMENTS", str(tmp_path / "payments.log"))
    name = f"fastapi_app_{tmp_path.name}"
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / "fastapi_app.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
async def service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[ModuleType, Any]]:
    example = _load_example(tmp_path, monkeypatch)
    app = example.app
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://orders") as client:
            yield example, client


async def _wait_for(client: Any, run_id: str, predicate: Any) -> Any:
    deadline = time.monotonic() + 30
    while True:
        body = (await client.get(f"/orders/{run_id}")).json()
        if predicate(body):
            return body
        assert time.monotonic() < deadline, f"order {run_id} stuck at {body}"
        await asyncio.sleep(0.05)


async def test_an_order_runs_in_the_background_and_completes_on_the_webhook(
    service: tuple[ModuleType, Any], tmp_path: Path
) -> None:
    example, client = service
    created = await client.post("/orders", json=ORDER, headers={"Idempotency-Key": "order-1"})
    assert created.status_code == 202
    assert created.json() == {"run_id": "order-1", "status_url": "/orders/order-1"}

    waiting = await _wait_for(client, "order-1", lambda b: "charge" in "".join(b["steps"]))
    assert waiting["status"] == "running"
    assert waiting["output"] is None

    delivered = await client.post("/webhooks/shipped/order-1", json={"tracking": "PKG-7"})
    assert delivered.status_code == 202
    done = await _wait_for(client, "order-1", lambda b: b["status"] == "completed")
    assert done["output"] == {
        "hold": "hold-order-1-mugx2",
        "payment": "ch-order-1",
        "tracking": "PKG-7",
    }
    assert (tmp_path / "payments.log").read_text() == "order-1 1800\n"
    run = await example.wf.get_run("order-1")
    assert run.inputs["order"] == ORDER


async def test_the_idempotency_key_is_the_run_id(service: tuple[ModuleType, Any]) -> None:
    _, client = service
    first = await client.post("/orders", json=ORDER, headers={"Idempotency-Key": "k-1"})
    again = await client.post("/orders", json=ORDER, headers={"Idempotency-Key": "k-1"})
    assert first.status_code == again.status_code == 202
    assert first.json() == again.json()

    other = await client.post(
        "/orders", json={**ORDER, "quantity": 3}, headers={"Idempotency-Key": "k-1"}
    )
    assert other.status_code == 409
    assert "k-1" in other.json()["detail"]

    unkeyed = await client.post("/orders", json=ORDER)
    assert unkeyed.status_code == 202
    assert unkeyed.json()["run_id"].startswith("order-")
    assert unkeyed.json()["run_id"] != "k-1"


async def test_bad_requests_get_clear_answers(service: tuple[ModuleType, Any]) -> None:
    _, client = service
    assert (await client.post("/orders", json={**ORDER, "quantity": 0})).status_code == 422
    assert (await client.get("/orders/nope")).status_code == 404
    assert (await client.get("/orders/nope/events")).status_code == 404
    missing = await client.post("/webhooks/shipped/nope", json={"tracking": "X"})
    assert missing.status_code == 404


async def test_a_finished_order_streams_its_final_status(
    service: tuple[ModuleType, Any],
) -> None:
    # httpx's ASGI transport hands over the body only once the app has sent
    # all of it; the live stream is read from a real server below.
    _, client = service
    await client.post("/orders", json=ORDER, headers={"Idempotency-Key": "sse-1"})
    await _wait_for(client, "sse-1", lambda b: "charge" in "".join(b["steps"]))
    await client.post("/webhooks/shipped/sse-1", json={"tracking": "T"})
    await _wait_for(client, "sse-1", lambda b: b["status"] == "completed")

    response = await client.get("/orders/sse-1/events")
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.text == 'event: status\ndata: {"status": "completed"}\n\n'


# -- a real server, killed -----------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Servers:
    """uvicorn processes serving the example, one after another, on one database."""

    def __init__(self, tmp_path: Path) -> None:
        self.env = {
            **os.environ,
            "ORDERS_DB": str(tmp_path / "orders.db"),
            "ORDERS_PAYMENTS": str(tmp_path / "payments.log"),
        }
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self) -> str:
        port = _free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "fastapi_app:app", "--port", str(port)],
            cwd=EXAMPLES,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.processes.append(process)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{base}/orders/none", timeout=1.0)
                return base
            except httpx.TransportError:
                assert process.poll() is None, "uvicorn exited at start-up"
                assert time.monotonic() < deadline, "uvicorn did not start"
                time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL the newest server: no lifespan shutdown, its runs stay `running`."""
        process = self.processes[-1]
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=30)


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    pytest.importorskip("uvicorn", reason="the FastAPI example is served by uvicorn")
    servers = Servers(tmp_path)
    yield servers
    servers.stop_all()


def _poll(base: str, run_id: str, predicate: Any) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        body: dict[str, Any] = httpx.get(f"{base}/orders/{run_id}", timeout=5.0).json()
        if predicate(body):
            return body
        assert time.monotonic() < deadline, f"order {run_id} stuck at {body}"
        time.sleep(0.05)


@pytest.mark.crash
def test_a_server_killed_mid_order_resumes_it_after_restart(
    servers: Servers, tmp_path: Path
) -> None:
    base = servers.start()
    created = httpx.post(
        f"{base}/orders", json=ORDER, headers={"Idempotency-Key": "order-9"}, timeout=5.0
    )
    assert created.status_code == 202
    _poll(base, "order-9", lambda b: "charge" in "".join(b["steps"]))
    servers.kill()

    base = servers.start()
    # The same key after the restart is still the same order, not a second one.
    again = httpx.post(
        f"{base}/orders", json=ORDER, headers={"Idempotency-Key": "order-9"}, timeout=5.0
    )
    assert again.status_code == 202
    assert again.json()["run_id"] == "order-9"
    # Follow the run live while the carrier's webhook arrives.
    events: list[str] = []
    with httpx.stream("GET", f"{base}/orders/order-9/events", timeout=60.0) as stream:
        for line in stream.iter_lines():
            if line.startswith("data: "):
                events.append(line.removeprefix("data: "))
                if len(events) == 1:
                    webhook = httpx.post(
                        f"{base}/webhooks/shipped/order-9", json={"tracking": "PKG-9"}
                    )
                    assert webhook.status_code == 202
    assert events == ['{"status": "running"}', '{"status": "completed"}']
    done = _poll(base, "order-9", lambda b: b["status"] == "completed")
    assert done["output"]["tracking"] == "PKG-9"
    # Charged once: the restarted server replayed the recorded charge.
    assert (tmp_path / "payments.log").read_text() == "order-9 1800\n"
