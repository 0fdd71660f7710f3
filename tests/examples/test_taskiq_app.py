"""examples/taskiq_app.py: a taskiq worker on RabbitMQ killed mid-run, the job redelivered."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from tests._services import unavailable

pytest.importorskip("taskiq_aio_pika", reason="the taskiq example needs taskiq-aio-pika")

pytestmark = pytest.mark.crash

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
AMQP_URL = os.environ.get("DURABLE_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


def _require_rabbitmq() -> None:
    host_port = AMQP_URL.rsplit("@", 1)[-1].split("/", 1)[0]
    host, _, port = host_port.partition(":")
    try:
        socket.create_connection((host, int(port or 5672)), timeout=5).close()
    except OSError as exc:
        unavailable(f"RabbitMQ unreachable at {host_port} (DURABLE_TEST_AMQP_URL): {exc}")


def _load_example(name: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / "taskiq_app.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)  # taskiq looks its tasks up there
    spec.loader.exec_module(module)
    return module


async def _delete_queue(name: str) -> None:
    """The example declares a durable queue and exchange: leave the broker as it was."""
    aio_pika = pytest.importorskip("aio_pika")
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(name)
        await channel.exchange_delete(name)


async def _run_info(example: ModuleType, run_id: str) -> Any:
    async with example.wf:
        return await example.wf.get_run(run_id)


def _ledger(path: Path) -> list[tuple[str, int]]:
    """(step, pid) per line the example's steps wrote."""
    if not path.exists():
        return []
    entries = []
    for line in path.read_text().splitlines():
        step, _day, pid = line.split()
        entries.append((step, int(pid.removeprefix("pid="))))
    return entries


def _wait(predicate: object, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_a_killed_broker_worker_resumes_from_the_checkpoints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _require_rabbitmq()
    queue = f"durable-test-{uuid.uuid4().hex[:10]}"
    ledger = tmp_path / "reports.log"
    env = {
        "AMQP_URL": AMQP_URL,
        "REPORTS_QUEUE": queue,
        "REPORTS_DB": str(tmp_path / "reports.db"),
        "REPORTS_LEDGER": str(ledger),
        # Long enough to be killed in the middle of, short enough to finish after.
        "REPORTS_RENDER_SECONDS": "2.0",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    example = _load_example(f"taskiq_app_{queue.replace('-', '_')}", monkeypatch)

    worker = subprocess.Popen(
        [sys.executable, "-m", "taskiq", "worker", "taskiq_app:broker", "--workers", "1"],
        cwd=EXAMPLES,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        asyncio.run(example.send("2026-12-01"))
        _wait(lambda: [s for s, _ in _ledger(ledger)] == ["extract", "render"], "no render")
        (_, first_pid), (_, render_pid) = _ledger(ledger)
        assert first_pid == render_pid
        assert render_pid != worker.pid  # taskiq runs tasks in a child process
        os.kill(render_pid, signal.SIGKILL)

        # taskiq starts a new child; RabbitMQ redelivers the unacknowledged job to it.
        _wait(lambda: [s for s, _ in _ledger(ledger)][-1:] == ["publish"], "no publish")
        run = asyncio.run(_run_info(example, "report-2026-12-01"))
        assert run.status == "completed"
        assert run.output == "published report-2026-12-01.pdf (14 units)"
    finally:
        worker.send_signal(signal.SIGTERM)
        _, log = worker.communicate(timeout=60)
        asyncio.run(_delete_queue(queue))

    steps = _ledger(ledger)
    # extract was committed before the kill: replayed, not run again. render
    # was cut off mid-way, so it ran again, in the new process, and then publish.
    assert [step for step, _ in steps] == ["extract", "render", "render", "publish"]
    assert steps[2][1] == steps[3][1] != render_pid, log
