"""Workers in real processes, SIGKILLed at random while they run a queue.

Every run completes, no step committed by a surviving process runs twice,
the queue's concurrency cap holds at every instant, and a worker stopped by
SIGTERM exits with status 0.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest
from tests import _services

from durable import Workflow

pytestmark = [pytest.mark.crash, pytest.mark.asyncio]

HERE = Path(__file__).parent
CONCURRENCY = 5
STEPS = 3


class Cluster:
    """Worker processes of ``_crash_app`` on one database, and the journal they share."""

    def __init__(self, db: str, tmp_path: Path, **extra_env: str) -> None:
        self.journal = tmp_path / "journal.log"
        self.env = {
            **os.environ,
            **extra_env,
            "CRASH_DB": db,
            "CRASH_JOURNAL": str(self.journal),
            "CRASH_CONCURRENCY": str(CONCURRENCY),
            "PYTHONPATH": os.pathsep.join([str(HERE), *sys.path]),
        }
        self.workers: list[subprocess.Popen[bytes]] = []
        self.spawned_at: list[float] = []
        self.killed: dict[int, float] = {}

    def run(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [sys.executable, str(HERE / "_crash_app.py"), *args],
            env=self.env,
            cwd=HERE,
            check=True,
            capture_output=True,
            timeout=120,
        )

    def spawn(self) -> None:
        command = [sys.executable, "-m", "durable", "worker", "_crash_app:wf"]
        options = ["--concurrency", "4", "--poll-interval", "0.1", "--log-level", "WARNING"]
        self.workers.append(subprocess.Popen([*command, *options], env=self.env, cwd=HERE))
        self.spawned_at.append(time.monotonic())

    def kill_one(self) -> None:
        index = random.randrange(len(self.workers))
        victim = self.workers.pop(index)
        self.spawned_at.pop(index)
        self.killed[victim.pid] = time.time()
        victim.send_signal(signal.SIGKILL)
        victim.wait()

    def stop_all(self) -> list[int]:
        # A signal that arrives while the interpreter still starts up cannot be
        # handled by any program: give the youngest worker time to boot.
        time.sleep(max(0.0, max(self.spawned_at) + 3.0 - time.monotonic()))
        for worker in self.workers:
            worker.send_signal(signal.SIGTERM)
        return [worker.wait(timeout=60) for worker in self.workers]

    def lines(self) -> list[list[str]]:
        return [line.split() for line in self.journal.read_text().splitlines()]


async def completed(app: Workflow, expected: int) -> bool:
    return len(await app.list_runs(status="completed", limit=expected + 1)) >= expected


def check_steps(cluster: Cluster) -> None:
    """A step ran again only if the process that ran it before was killed."""
    runs: dict[str, list[int]] = defaultdict(list)
    for kind, key, pid, _ in cluster.lines():
        if kind == "step":
            runs[key].append(int(pid))
    assert len(runs) == len(set(runs))
    for key, pids in runs.items():
        for earlier in pids[:-1]:
            assert earlier in cluster.killed, f"step {key} re-ran after {earlier} committed it"


def check_concurrency(cluster: Cluster) -> int:
    """The most bodies executing at once, counting a killed process's until its kill."""
    events: list[tuple[float, int]] = []
    open_runs: dict[tuple[str, int], float] = {}
    for kind, n, pid, at in cluster.lines():
        if kind == "begin":
            open_runs[n, int(pid)] = float(at)
        elif kind == "end":
            began = open_runs.pop((n, int(pid)))
            events += [(began, 1), (float(at), -1)]
    for (_, pid), began in open_runs.items():
        ended = cluster.killed.get(pid)
        assert ended is not None, f"a body of live process {pid} never ended"
        events += [(began, 1), (max(began, ended), -1)]
    peak = now = 0
    for _, change in sorted(events, key=lambda e: (e[0], e[1])):
        now += change
        peak = max(peak, now)
    return peak


async def torture(db: str, tmp_path: Path, runs: int, workers: int) -> None:
    cluster = Cluster(db, tmp_path)
    cluster.run("enqueue", str(runs))
    for _ in range(workers):
        cluster.spawn()
    app = Workflow("crash", db=db)
    deadline = time.monotonic() + 240
    kills = 0
    try:
        while not await completed(app, runs):
            assert time.monotonic() < deadline, "the runs did not all complete in time"
            await asyncio.sleep(random.uniform(0.3, 0.7))
            if kills < 30:
                cluster.kill_one()
                cluster.spawn()
                kills += 1
        codes = cluster.stop_all()
        outputs = {run.run_id: run for run in await app.list_runs(limit=runs + 1)}
    finally:
        for worker in cluster.workers:
            worker.kill()
            worker.wait()
        await app.close()
    assert codes == [0] * workers, "a worker stopped by SIGTERM must exit 0"
    assert kills > 0
    assert len(outputs) == runs
    for n in range(runs):
        run = outputs[f"job-{n}"]
        assert run.status == "completed"
        assert run.output == n * sum(range(STEPS))
    check_steps(cluster)
    peak = check_concurrency(cluster)
    assert 1 < peak <= CONCURRENCY, peak


async def test_sqlite_workers_killed_at_random(tmp_path: Path) -> None:
    """Two worker processes on one SQLite file, one killed every ~0.5 s."""
    await torture(f"sqlite:///{tmp_path / 'crash.db'}", tmp_path, runs=150, workers=2)


async def test_postgres_workers_killed_at_random(tmp_path: Path) -> None:
    """Four worker processes on PostgreSQL, one killed every ~0.5 s."""
    dsn = await _services.postgres_dsn()
    schema = _services.unique_name("crash")
    try:
        await torture(f"{dsn}?schema={schema}", tmp_path, runs=300, workers=4)
    finally:
        await _services.drop_postgres_schema(dsn, schema)


async def test_a_started_run_of_a_killed_process_is_finished_by_a_worker(
    tmp_path: Path,
) -> None:
    """start() in a process that is then SIGKILLed: a worker adopts and finishes the run."""
    cluster = Cluster(f"sqlite:///{tmp_path / 'start.db'}", tmp_path)
    starter = subprocess.Popen(  # noqa: ASYNC220 - a process to kill, not awaited
        [sys.executable, str(HERE / "_crash_app.py"), "start", "7"],
        env=cluster.env,
        cwd=HERE,
        stdout=subprocess.PIPE,
    )
    assert starter.stdout is not None
    assert starter.stdout.readline().strip() == b"started"
    starter.send_signal(signal.SIGKILL)
    starter.wait()
    starter.stdout.close()
    cluster.killed[starter.pid] = time.time()
    cluster.spawn()
    app = Workflow("crash", db=cluster.env["CRASH_DB"])
    try:
        assert await app.handle("job-7").result(timeout=60) == 7 * sum(range(STEPS))
    finally:
        assert cluster.stop_all() == [0]
        await app.close()
    check_steps(cluster)


async def test_the_rate_limit_holds_across_worker_processes(tmp_path: Path) -> None:
    """50 runs, rate_limit=(10, 1.0), three workers on PostgreSQL: never 11 starts in 1 s."""
    dsn = await _services.postgres_dsn()
    schema = _services.unique_name("rate")
    cluster = Cluster(f"{dsn}?schema={schema}", tmp_path, CRASH_RATE="10/1.0")
    app = Workflow("crash", db=cluster.env["CRASH_DB"])
    try:
        cluster.run("enqueue", "50")
        for _ in range(3):
            cluster.spawn()
        for n in range(50):
            assert await app.handle(f"job-{n}").result(timeout=120) == n * sum(range(STEPS))
        assert cluster.stop_all() == [0, 0, 0]
    finally:
        for worker in cluster.workers:
            worker.kill()
            worker.wait()
        await app.close()
        await _services.drop_postgres_schema(dsn, schema)
    first_begins: dict[str, float] = {}
    for kind, n, _pid, at in cluster.lines():
        if kind == "begin":
            first_begins.setdefault(n, float(at))
    starts = sorted(first_begins.values())
    assert len(starts) == 50
    # The store's clock decides; the journal's times are the workers' (one
    # host here): allow them 50 ms of difference.
    for i in range(len(starts) - 10):
        assert starts[i + 10] - starts[i] >= 0.95, starts[i : i + 11]
