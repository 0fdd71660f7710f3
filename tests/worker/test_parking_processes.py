"""Parked waits across real processes: signals sent elsewhere, workers SIGKILLed while runs park.

Workers run ``_parking_app`` as ``python -m durable worker``; every task
execution is journaled (fsync'd) outside the store with the pid that ran it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests import _services

from durable import Workflow

pytestmark = [pytest.mark.crash, pytest.mark.asyncio]

HERE = Path(__file__).parent


class Workers:
    """Worker processes of ``_parking_app`` on one database, and their journal."""

    def __init__(self, db: str, tmp_path: Path) -> None:
        self.journal = tmp_path / "journal.log"
        self.env = {
            **os.environ,
            "PARK_DB": db,
            "PARK_JOURNAL": str(self.journal),
            "PYTHONPATH": os.pathsep.join([str(HERE), *sys.path]),
        }
        self.processes: list[subprocess.Popen[bytes]] = []

    def spawn(self, *extra: str) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "durable", "worker", "_parking_app:wf"]
        options = ["--poll-interval", "0.1", "--log-level", "WARNING", *extra]
        worker = subprocess.Popen([*command, *options], env=self.env, cwd=HERE)
        self.processes.append(worker)
        return worker

    def command(self, *args: str) -> None:
        """Run ``_parking_app.py`` with ``args`` in a process of its own (enqueue, signal)."""
        subprocess.run(
            [sys.executable, str(HERE / "_parking_app.py"), *args],
            env=self.env,
            cwd=HERE,
            check=True,
            timeout=60,
        )

    def entries(self) -> list[tuple[str, int]]:
        if not self.journal.exists():
            return []
        lines = self.journal.read_text().splitlines()
        return [(tag, int(pid)) for tag, pid in (line.split() for line in lines)]

    def kill_all(self) -> None:
        for worker in self.processes:
            if worker.poll() is None:
                worker.kill()
            worker.wait()


@pytest.fixture(params=["sqlite", "postgres"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'parking.db'}"
        return
    dsn = await _services.postgres_dsn()
    schema = _services.unique_name("park")
    try:
        yield f"{dsn}?schema={schema}"
    finally:
        await _services.drop_postgres_schema(dsn, schema)


async def statuses(app: Workflow, run_ids: list[str]) -> list[str]:
    return [await app.handle(run_id).status() for run_id in run_ids]


async def until_all(app: Workflow, run_ids: list[str], status: str) -> None:
    async with asyncio.timeout(60):
        while await statuses(app, run_ids) != [status] * len(run_ids):  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def test_a_signal_sent_from_another_process_wakes_a_parked_run(
    db: str, tmp_path: Path
) -> None:
    """Parked by the worker's process, woken by a signal sent from a third process."""
    workers = Workers(db, tmp_path)
    app = Workflow("parking", db=db)
    try:
        workers.spawn()
        workers.command("approval", "1")
        await until_all(app, ["approval-1"], "waiting")
        workers.command("signal", "approval-1", "yes")
        assert await app.handle("approval-1").result(timeout=60) == "yes"
    finally:
        workers.kill_all()
        await app.close()
    assert Counter(tag for tag, _ in workers.entries()) == {"asked-1": 1, "answered-1": 1}


async def test_runs_parked_by_a_killed_worker_are_completed_by_a_new_one(
    db: str, tmp_path: Path
) -> None:
    """SIGKILL a worker whose runs are parked: another resumes each one, no step re-runs.

    The queue's concurrency is 2 and all five runs are parked at once: parked
    runs hold no slot.
    """
    workers = Workers(db, tmp_path)
    workers.env["PARK_NAP"] = "6.0"
    run_ids = [f"nap-{n}" for n in range(5)]
    app = Workflow("parking", db=db)
    try:
        first = workers.spawn()
        workers.command("naps", "5")
        await until_all(app, run_ids, "waiting")
        first.send_signal(signal.SIGKILL)
        first.wait()
        second = workers.spawn()
        results = [await app.handle(run_id).result(timeout=60) for run_id in run_ids]
    finally:
        workers.kill_all()
        await app.close()
    assert results == list(range(5))
    entries = workers.entries()
    assert Counter(tag for tag, _ in entries) == {
        **{f"before-{n}": 1 for n in range(5)},
        **{f"after-{n}": 1 for n in range(5)},
    }
    assert {pid for tag, pid in entries if tag.startswith("before")} == {first.pid}
    assert {pid for tag, pid in entries if tag.startswith("after")} == {second.pid}


async def test_sigterm_parks_the_waiting_runs_at_once_and_another_worker_resumes_them(
    db: str, tmp_path: Path
) -> None:
    """A stopping worker does not hold runs in durable waits through its grace period.

    The worker never parks on its own (``--park-after 3600``); on SIGTERM its
    sleeping run and its signal wait (the queue's two slots) are parked at once, it exits with
    status 0 long before its 120 s grace, and a new worker completes them
    without re-running a step.
    """
    workers = Workers(db, tmp_path)
    workers.env["PARK_NAP"] = "3.0"
    run_ids = ["nap-0", "approval-1"]
    app = Workflow("parking", db=db)
    try:
        first = workers.spawn("--park-after", "3600", "--grace", "120")
        workers.command("naps", "1")
        workers.command("approval", "1")
        await until_all(app, run_ids, "running")
        async with asyncio.timeout(60):
            while len(workers.entries()) < 2:  # noqa: ASYNC110 - a file is polled
                await asyncio.sleep(0.05)
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=60) == 0
        assert await statuses(app, run_ids) == ["waiting"] * 2
        second = workers.spawn()
        workers.command("signal", "approval-1", "yes")
        results = [await app.handle(run_id).result(timeout=60) for run_id in run_ids]
    finally:
        workers.kill_all()
        await app.close()
    assert results == [0, "yes"]
    entries = workers.entries()
    assert Counter(tag for tag, _ in entries) == {
        "before-0": 1,
        "after-0": 1,
        "asked-1": 1,
        "answered-1": 1,
    }
    first_tags = {tag for tag, pid in entries if pid == first.pid}
    assert first_tags == {"before-0", "asked-1"}
    assert {pid for tag, pid in entries if tag not in first_tags} == {second.pid}
