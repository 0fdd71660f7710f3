"""wf.complete(): 0.2's one-shot delivery (first wins, True once), beside send_signal's queue."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from tests import _services
from tests._journal import Journal
from tests.primitives._waiting import wait_for_run

from durable import Workflow
from durable.errors import ConfigurationError
from durable.stores.base import Store


async def test_first_delivery_wins_before_the_run_starts(wf: Workflow) -> None:
    """Delivered before the run exists, the first payload is the one the run receives."""

    @wf.workflow(id="order-{n}")
    async def order(n: int) -> Any:
        return await wf.signal("approval")

    assert await wf.complete("order-1", "approval", {"first": True}) is True
    assert await wf.complete("order-1", "approval", {"second": True}) is False
    assert await order(1) == {"first": True}
    assert await order(1) == {"first": True}


async def test_complete_wakes_a_waiting_run(wf: Workflow) -> None:
    """A run already waiting receives the signal, and one delivery only."""

    @wf.task
    async def prepare() -> str:
        return "prepared"

    @wf.workflow(id="wait-{n}")
    async def waiting(n: int) -> list[Any]:
        return [await prepare(), await wf.signal("go")]

    call = asyncio.ensure_future(waiting(1))
    await wait_for_run(wf, "wait-1", steps=1)
    assert not call.done()
    assert await wf.complete("wait-1", "go", {"n": 1}) is True
    assert await call == ["prepared", {"n": 1}]
    assert await wf.complete("wait-1", "go", {"n": 2}) is False


async def test_a_none_payload_arrives_as_an_empty_dict(wf: Workflow) -> None:
    """complete(run_id, name) without a payload delivers {} (0.2 did), other values as they are."""

    @wf.workflow(id="p-{n}")
    async def flow(n: int) -> list[Any]:
        return [await wf.signal("a"), await wf.signal("b")]

    assert await wf.complete("p-1", "a") is True
    assert await wf.complete("p-1", "b", 0) is True
    assert await flow(1) == [{}, 0]


async def test_complete_refuses_a_name_sent_with_send_signal(wf: Workflow) -> None:
    """send_signal and complete share a name's deliveries: complete never adds a second."""

    @wf.workflow(id="mix-{n}")
    async def flow(n: int) -> list[Any]:
        return [await wf.signal("go"), await wf.signal("go")]

    await wf.send_signal("mix-1", "go", "queued-1")
    assert await wf.complete("mix-1", "go", "once") is False
    await wf.send_signal("mix-1", "go", "queued-2")
    assert await flow(1) == ["queued-1", "queued-2"]


async def test_separate_names_each_get_one_delivery(wf: Workflow) -> None:
    """Two signals of one run are delivered and received independently, in the order waited."""
    journal = Journal()

    @wf.workflow(id="multi-{n}")
    async def flow(n: int) -> list[Any]:
        a = await wf.signal("step-a")
        journal("got a")
        b = await wf.signal("step-b")
        return [a, b]

    call = asyncio.ensure_future(flow(1))
    assert await wf.complete("multi-1", "step-b", {"val": "B"}) is True
    assert await wf.complete("multi-1", "step-a", {"val": "A"}) is True
    assert await call == [{"val": "A"}, {"val": "B"}]
    assert journal.entries == ["got a"]


async def test_bad_input_is_named(wf: Workflow) -> None:
    """An unstorable payload or a bad name fails before anything is stored."""
    with pytest.raises(ConfigurationError, match="signal name"):
        await wf.complete("r", "", {})
    with pytest.raises(TypeError, match="'go'"):
        await wf.complete("r", "go", {"when": object()})
    assert await wf.complete("r", "go", {"ok": True}) is True


async def test_signal_accepts_poll(wf: Workflow) -> None:
    """wf.signal(name, poll=...) works as in 0.2; a poll that is not a number > 0 is refused."""

    @wf.workflow(id="poll-{n}")
    async def flow(n: int) -> Any:
        return await wf.signal("go", poll=0.5)

    @wf.workflow(id="bad-poll-{n}")
    async def bad(n: int) -> Any:
        return await wf.signal("go", poll=0)

    assert await wf.complete("poll-1", "go", [1]) is True
    assert await flow(1) == [1]
    with pytest.raises(ConfigurationError, match="poll"):
        await bad(1)


def _race_spec(store: Store, tmp_path: Path) -> dict[str, Any]:
    kind = type(store).__name__
    if kind == "SQLiteStore":
        return {"kind": "sqlite", "path": str(tmp_path / "durable.db")}
    if kind == "PostgresStore":
        return {"kind": "postgres", "dsn": store.dsn, "schema": store.schema}  # type: ignore[attr-defined]
    return {"kind": "redis", "url": store.url, "prefix": store.prefix}  # type: ignore[attr-defined]


def _spawn_racers(specs: list[dict[str, Any]]) -> list[subprocess.Popen[str]]:
    command = [sys.executable, "-m", "tests.compat._complete_racer"]
    return [
        subprocess.Popen(
            [*command, json.dumps(spec)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for spec in specs
    ]


def _wait_for(paths: list[Path]) -> None:
    for _ in range(6000):
        if all(path.exists() for path in paths):
            return
        time.sleep(0.01)
    raise AssertionError("the racing processes never became ready")


@pytest.fixture(params=[p for p in _services.STORE_KINDS if p.values != ("memory",)])
async def shared_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """An opened store that several processes can share (SQLite, PostgreSQL, Redis)."""
    instance, cleanup = await _services.new_store(request.param, tmp_path)
    try:
        await instance.open()
        yield instance
    finally:
        await instance.close()
        await cleanup()


async def test_processes_racing_to_complete_deliver_once(
    shared_store: Store, tmp_path: Path
) -> None:
    """Processes delivering one signal at one moment: exactly one wins, and its payload stays."""
    store = shared_store
    senders = 4
    spec = _race_spec(store, tmp_path) | {
        "app": "race-app",
        "run_id": "raced",
        "start": str(tmp_path / "start"),
    }
    readies = [tmp_path / f"ready-{i}" for i in range(senders)]
    procs = _spawn_racers([spec | {"sender": i, "ready": str(readies[i])} for i in range(senders)])
    try:
        await asyncio.to_thread(_wait_for, readies)
        (tmp_path / "start").touch()
        outputs = [await asyncio.to_thread(proc.communicate, timeout=120) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert [proc.returncode for proc in procs] == [0] * senders, [err for _, err in outputs]
    answers = [json.loads(out) for out, _ in outputs]
    assert answers.count(True) == 1
    winner = answers.index(True)
    stored = await store.read_signal("race-app", "raced", "go", 0)
    assert stored is not None
    assert json.loads(stored) == {"sender": winner}
    assert await store.read_signal("race-app", "raced", "go", 1) is None
