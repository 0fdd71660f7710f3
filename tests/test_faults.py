"""Faults of the machine and bad input: a clear error, nothing lost, the run resumes after."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import shutil
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests._journal import Journal

from durable import Workflow
from durable.errors import ResultTooLargeError, StoreCorruptedError, StoreUnavailableError
from durable.stores.sqlite import SQLiteStore


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _committed_steps(path: Path, run_id: str) -> set[str]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT step_id FROM durable_steps WHERE run_id = ?", (run_id,))
        return {row[0] for row in rows}
    finally:
        db.close()


def _two_step_app(path: Path, journal: Journal, hook: Any = None) -> tuple[Workflow, Any]:
    # A failing step fails its run at once: these tests re-call the run themselves.
    app = Workflow("faults", db=SQLiteStore(path), default_retries=0)

    @app.task
    async def small(n: int) -> int:
        journal("small")
        return n + 1

    @app.task
    async def big(n: int) -> str:
        journal("big")
        if hook is not None:
            hook()
        return "b" * 64_000 + str(n)

    @app.workflow(id="job-{n}")
    async def job(n: int) -> int:
        return len(await big(await small(n)))

    return app, job


async def test_database_locked_by_another_writer_for_three_seconds(tmp_path: Path) -> None:
    """A run waits out another connection's 3-second write lock instead of failing."""
    path = tmp_path / "locked.db"
    journal = Journal()
    app, job = _two_step_app(path, journal)
    await app.store.open()
    locked = threading.Event()

    def hold_lock() -> None:
        db = sqlite3.connect(path, isolation_level=None)
        db.execute("BEGIN EXCLUSIVE")
        locked.set()
        time.sleep(3)
        db.execute("COMMIT")
        db.close()

    holder = threading.Thread(target=hold_lock)
    holder.start()
    try:
        await asyncio.to_thread(locked.wait)
        started = time.monotonic()
        assert await job(n=1) == 64_001
        assert time.monotonic() - started >= 2.5
    finally:
        holder.join()
        await app.close()
    assert journal.entries == ["small", "big"]


def _real_database(path: Path) -> None:
    """A valid store file with a few runs in it, cleanly closed."""

    async def fill() -> None:
        app, job = _two_step_app(path, Journal())
        for n in range(8):
            await job(n=n)
        await app.close()

    asyncio.run(fill())


def _not_sqlite(path: Path) -> None:
    path.write_bytes(b"name,value\n" + b"a,1\n" * 2000)


def _truncated(path: Path) -> None:
    _real_database(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _corrupted_pages(path: Path) -> None:
    _real_database(path)
    data = bytearray(path.read_bytes())
    rng = random.Random(7)
    for offset in range(4096, len(data), 4096):
        data[offset : offset + 4096] = rng.randbytes(4096)
    path.write_bytes(bytes(data))


def _corrupted_header(path: Path) -> None:
    _real_database(path)
    data = bytearray(path.read_bytes())
    data[100:4096] = b"\xff" * (4096 - 100)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "damage",
    [_not_sqlite, _truncated, _corrupted_pages, _corrupted_header],
    ids=lambda f: f.__name__,
)
def test_damaged_database_is_a_typed_error_naming_the_file_and_left_untouched(
    tmp_path: Path, damage: Any
) -> None:
    """A non-SQLite, truncated or corrupted file raises StoreCorruptedError at once, unmodified."""
    path = tmp_path / "damaged.db"
    damage(path)
    before = _digest(path)
    journal = Journal()

    async def attempt() -> None:
        app, job = _two_step_app(path, journal)
        try:
            await job(n=100)
        finally:
            await app.close()

    started = time.monotonic()
    with pytest.raises(StoreCorruptedError) as info:
        asyncio.run(attempt())
    assert time.monotonic() - started < 5
    assert str(path) in str(info.value)
    assert journal.entries == []
    assert _digest(path) == before
    assert not Path(f"{path}-wal").exists() or Path(f"{path}-wal").stat().st_size == 0


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs mounted for the test (skipped where mounting is not permitted)."""
    mount_point = tmp_path / "mnt"
    mount_point.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command: cannot create a small or read-only filesystem")
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {result.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _remount(mount_point: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(mount_point)], check=True)


async def test_full_disk_is_a_clear_error_and_the_run_resumes_after(tmpfs: Path) -> None:
    """On a full disk the step is not recorded, the error says so, and the run resumes later."""
    path = tmpfs / "full.db"
    filler = tmpfs / "filler"
    journal = Journal()
    filled: list[bool] = []

    def fill_disk() -> None:
        if filled:
            return
        filled.append(True)
        with open(filler, "wb") as f:
            try:
                while True:
                    f.write(b"\0" * 4096)
                    f.flush()
            except OSError:
                pass

    app, job = _two_step_app(path, journal, hook=fill_disk)
    try:
        with pytest.raises(StoreUnavailableError, match="disk is full"):
            await job(n=5)
        assert _committed_steps(path, "job-5") == {"small"}
        filler.unlink()
        assert await job(n=5) == 64_001
    finally:
        await app.close()
    assert journal.entries == ["small", "big", "big"]
    assert _committed_steps(path, "job-5") == {"small", "big"}


async def test_read_only_directory_is_a_clear_error_and_the_run_resumes_after(
    tmpfs: Path,
) -> None:
    """A store on a read-only filesystem fails with a clear error; once writable the run
    resumes."""
    path = tmpfs / "ro.db"
    journal = Journal()
    failing = [True]

    def fail_once() -> None:
        if failing:
            failing.clear()
            raise RuntimeError("first attempt fails")

    app, job = _two_step_app(path, journal, hook=fail_once)
    with pytest.raises(RuntimeError):
        await job(n=3)
    await app.close()
    before = _digest(path)

    _remount(tmpfs, "ro")
    try:
        app, job = _two_step_app(path, journal)
        with pytest.raises(StoreUnavailableError) as info:
            await job(n=3)
        assert str(path) in str(info.value)
        await app.close()
        assert _digest(path) == before
    finally:
        _remount(tmpfs, "rw")

    app, job = _two_step_app(path, journal)
    try:
        assert await job(n=3) == 64_001
    finally:
        await app.close()
    assert journal.entries == ["small", "big", "big"]


async def test_oversized_result_is_non_retryable_and_nothing_is_truncated(tmp_path: Path) -> None:
    """A result over max_value_bytes fails once, without retries, and is not stored."""
    app = Workflow("faults", db=SQLiteStore(tmp_path / "big.db"), max_value_bytes=10_000)
    journal = Journal()

    @app.task(retries=3)
    async def produce() -> str:
        journal("produce")
        return "x" * 20_000

    @app.workflow(id="big")
    async def job() -> str:
        return await produce()

    try:
        with pytest.raises(ResultTooLargeError, match="10000"):
            await job()
        loaded = await app.store.load_run("faults", "big")
    finally:
        await app.close()
    assert journal.entries == ["produce"]
    assert loaded is not None
    run, steps = loaded
    assert run.status == "failed"
    assert [(s.status, s.result) for s in steps] == [("failed", None)]


async def test_default_limit_rejects_results_over_two_megabytes(tmp_path: Path) -> None:
    """Without a configured limit, a result over 2 MiB is a ResultTooLargeError."""
    app = Workflow("faults", db=SQLiteStore(tmp_path / "big.db"))

    @app.task
    async def produce() -> str:
        return "x" * (2 * 1024 * 1024 + 1)

    @app.workflow(id="big")
    async def job() -> str:
        return await produce()

    try:
        with pytest.raises(ResultTooLargeError):
            await job()
    finally:
        await app.close()


async def test_cancelling_the_caller_at_random_awaits_leaves_the_store_usable(
    tmp_path: Path,
) -> None:
    """Cancelling a run at random moments never breaks the store; every run finishes after."""
    path = tmp_path / "cancel.db"
    app = Workflow("faults", db=SQLiteStore(path))
    journal = Journal()
    rng = random.Random(11)

    @app.task
    async def step(run: int, i: int) -> int:
        journal(f"{run}:{i}")
        await asyncio.sleep(rng.uniform(0, 0.002))
        return i

    @app.workflow(id="c-{run}")
    async def job(run: int) -> int:
        total = 0
        for i in range(4):
            total += await step(run, i, step_id=str(i))
        parts = await asyncio.gather(step(run, 10), step(run, 11))
        return total + sum(parts)

    try:
        for run in range(60):
            task = asyncio.create_task(job(run))
            await asyncio.sleep(rng.uniform(0, 0.02))
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                assert await task == 27
            assert await asyncio.wait_for(job(run), 10) == 27
        for run in range(60):
            assert await job(run) == 27
    finally:
        await app.close()
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        statuses = db.execute("SELECT status, count(*) FROM durable_runs GROUP BY 1").fetchall()
    finally:
        db.close()
    assert statuses == [("completed", 60)]
    # A body interrupted before its commit runs again; one that committed never does.
    assert len(journal.counts) == 60 * 6
    assert max(journal.counts.values()) <= 2
