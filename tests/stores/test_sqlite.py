"""SQLiteStore behaviour beyond the shared contract: the file, its settings and its failures."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from durable.errors import (
    ConfigurationError,
    LeaseLostError,
    StoreCorruptedError,
    StoreError,
    StoreUnavailableError,
)
from durable.stores import _sqlite_sql as sql
from durable.stores import sqlite as sqlite_module
from durable.stores.base import NewRun, QueueLimits, StepRecord
from durable.stores.sqlite import SCHEMA_VERSION, SQLiteStore

APP = "sqlite-app"


def _step(step_id: str, position: int = 0, **changes: Any) -> StepRecord:
    fields: dict[str, Any] = {
        "step_id": step_id,
        "position": position,
        "task": "t",
        "status": "completed",
        "result": '"ok"',
        "error": None,
        "attempts": 1,
        "started_at": 1.0,
        "finished_at": 2.0,
    }
    fields.update(changes)
    return StepRecord(**fields)


def _new(run_id: str = "run-1") -> NewRun:
    return NewRun(APP, run_id, "wf", '{"n": 1}')


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _sql(path: Path, query: str, *params: Any) -> list[Any]:
    """Run one query on a fresh connection of our own, as another process would."""
    db = sqlite3.connect(path)
    try:
        return db.execute(query, params).fetchall()
    finally:
        db.close()


@pytest.fixture
async def make_store(tmp_path: Path) -> AsyncIterator[Callable[..., SQLiteStore]]:
    """A factory of stores on ``tmp_path/durable.db`` (by default), all closed after the test."""
    stores: list[SQLiteStore] = []

    def make(path: Path | None = None, **options: Any) -> SQLiteStore:
        store = SQLiteStore(path or tmp_path / "durable.db", **options)
        stores.append(store)
        return store

    yield make
    for store in stores:
        await store.close()


async def _pragma(store: SQLiteStore, name: str) -> Any:
    # The connection's own settings are visible only on that connection.
    def read(db: sqlite3.Connection) -> Any:
        return db.execute(f"PRAGMA {name}").fetchone()[0]

    return await store._call(read)


# -- the file and its settings -------------------------------------------------


@pytest.mark.parametrize(("synchronous", "level"), [("FULL", 2), ("NORMAL", 1)])
async def test_pragmas_are_set(
    make_store: Callable[..., SQLiteStore], synchronous: str, level: int
) -> None:
    """The connection runs in WAL mode with the chosen synchronous level and busy timeout."""
    store = make_store(synchronous=synchronous, busy_timeout=7.5)
    await store.open()
    assert await _pragma(store, "journal_mode") == "wal"
    assert await _pragma(store, "synchronous") == level
    assert await _pragma(store, "busy_timeout") == 7500


async def test_new_file_is_private(make_store: Callable[..., SQLiteStore], tmp_path: Path) -> None:
    """A database file the store creates is readable and writable by its owner only."""
    store = make_store()
    await store.claim_run(_new(), owner="o", lease_ttl=60)
    assert stat.S_IMODE((tmp_path / "durable.db").stat().st_mode) == 0o600


async def test_existing_file_mode_is_kept(
    make_store: Callable[..., SQLiteStore], tmp_path: Path
) -> None:
    """An existing database file keeps the permissions its owner gave it."""
    path = tmp_path / "shared.db"
    path.touch()
    path.chmod(0o640)
    await make_store(path).open()
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


async def test_schema_version_is_recorded_once(
    make_store: Callable[..., SQLiteStore], tmp_path: Path
) -> None:
    """The schema version is stored in durable_schema, once, however often the file is opened."""
    for _ in range(3):
        store = make_store()
        await store.open()
        await store.close()
    path = tmp_path / "durable.db"
    assert _sql(path, "SELECT version FROM durable_schema") == [(SCHEMA_VERSION,)]
    tables = {row[0] for row in _sql(path, "SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"durable_runs", "durable_steps", "durable_signals", "durable_schema"} <= tables


async def test_newer_schema_version_is_refused(
    make_store: Callable[..., SQLiteStore], tmp_path: Path
) -> None:
    """A file written by a newer schema version raises StoreError naming the file."""
    path = tmp_path / "durable.db"
    await make_store(path).open()
    await make_store(path).close()
    db = sqlite3.connect(path)
    with db:
        db.execute("UPDATE durable_schema SET version = ?", (SCHEMA_VERSION + 1,))
    db.close()
    with pytest.raises(StoreError, match="newer") as info:
        await make_store(path).open()
    assert str(path) in str(info.value)
    assert not isinstance(info.value, StoreCorruptedError)


async def test_empty_file_is_initialised(
    make_store: Callable[..., SQLiteStore], tmp_path: Path
) -> None:
    """An existing empty file is a fresh database, not a corrupted one."""
    path = tmp_path / "empty.db"
    path.touch()
    store = make_store(path)
    assert (await store.claim_run(_new(), owner="o", lease_ttl=60)).acquired


async def test_open_is_idempotent_and_safe_concurrently(
    make_store: Callable[..., SQLiteStore],
) -> None:
    """Many simultaneous open() calls start one connection thread, and close() is idempotent."""
    store = make_store()
    # Compare thread sets, not counts: threads of earlier tests may end meanwhile.
    before = set(threading.enumerate())
    await asyncio.gather(*(store.open() for _ in range(20)))
    started = set(threading.enumerate()) - before
    assert len(started) == 1
    await store.open()
    assert set(threading.enumerate()) - before == started
    await store.close()
    await store.close()
    assert (await store.claim_run(_new(), owner="o", lease_ttl=60)).acquired


async def test_operations_open_the_store_lazily(make_store: Callable[..., SQLiteStore]) -> None:
    """The first operation opens a store that was never opened explicitly."""
    store = make_store()
    assert await store.get_run(APP, "nope") is None
    assert (await store.claim_run(_new(), owner="o", lease_ttl=60)).acquired


# -- schema migrations ------------------------------------------------------------


_V1_RUN_COLUMNS = [
    "app",
    "run_id",
    "workflow",
    "status",
    "inputs",
    "output",
    "error",
    "owner",
    "token",
    "lease_expires_at",
    "attempts",
    "cancel_requested",
    "parent_run_id",
    "created_at",
    "updated_at",
]


def _version_1_file(path: Path) -> None:
    """A file as version 1 of the schema left it: a running run with a step, a failed run."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        for statement in sql._SCHEMA:
            db.execute(statement)
        db.execute("INSERT INTO durable_schema (version) VALUES (1)")
        columns = [row[1] for row in db.execute("PRAGMA table_info(durable_runs)")]
        assert columns == _V1_RUN_COLUMNS  # _SCHEMA is version 1, always
        for run_id, status, owner, token in [
            ("old", "running", "gone", 3),
            ("bad", "failed", None, 1),
        ]:
            db.execute(
                "INSERT INTO durable_runs VALUES (?, ?, 'wf', ?, '{\"n\": 1}', NULL, NULL, ?,"
                " ?, 0.0, 1, 0, NULL, 1.0, 2.0)",
                (APP, run_id, status, owner, token),
            )
        db.execute(
            "INSERT INTO durable_steps VALUES (?, 'old', 's0', 0, 't', 'completed', '\"ok\"',"
            " NULL, 1, 1.0, 2.0)",
            (APP,),
        )
    finally:
        db.close()


def _schema_of(path: Path) -> list[Any]:
    return sorted(_sql(path, "SELECT type, name, sql FROM sqlite_master"))


def test_schema_version_counts_the_migrations() -> None:
    """Version 1 is the base schema; each migration adds one."""
    assert len(sql._MIGRATIONS) == SCHEMA_VERSION - 1


async def test_a_version_1_file_is_migrated_in_place(
    make_store: Callable[..., SQLiteStore], tmp_path: Path
) -> None:
    """An old file keeps its runs and steps, gains the queue columns and indexes, and works."""
    path = tmp_path / "old.db"
    _version_1_file(path)
    store = make_store(path)
    loaded = await store.load_run(APP, "old")
    assert loaded is not None
    run, steps = loaded
    assert (run.status, run.owner, run.token) == ("running", "gone", 3)
    assert (run.queue, run.priority, run.not_before, run.started_at) == (None, 0, None, None)
    assert steps == (_step("s0"),)
    assert _sql(path, "SELECT version FROM durable_schema") == [(SCHEMA_VERSION,)]
    fresh = tmp_path / "fresh.db"
    await make_store(fresh).open()
    assert _schema_of(path) == _schema_of(fresh)

    taken = await store.claim_run(_new("old"), owner="new", lease_ttl=60, steal_from="gone")
    assert (taken.acquired, taken.run.token, taken.steps) == (True, 4, (_step("s0"),))
    assert taken.run.started_at is None  # a take-over is no new start
    restarted = await store.claim_run(_new("bad"), owner="new", lease_ttl=60)
    assert restarted.acquired
    await store.enqueue_run(NewRun(APP, "q1", "wf", "{}", queue="q"))
    claims = await store.claim_queued(APP, [QueueLimits("q")], owner="w", lease_ttl=60, limit=5)
    assert [c.run.run_id for c in claims] == ["q1"]


async def test_stores_opening_a_version_1_file_together_migrate_it_once(
    make_store: Callable[..., SQLiteStore], tmp_path: Path
) -> None:
    """Connections opening an old file at once all succeed; the migration runs once."""
    path = tmp_path / "old.db"
    _version_1_file(path)
    stores = [make_store(path) for _ in range(6)]
    await asyncio.gather(*(store.open() for store in stores))
    assert _sql(path, "SELECT version FROM durable_schema") == [(SCHEMA_VERSION,)]
    for store in stores:
        assert (await store.get_run(APP, "old")) is not None


# -- queues ---------------------------------------------------------------------------


async def _query_plan(store: SQLiteStore, statement: str) -> list[str]:
    def explain(db: sqlite3.Connection) -> list[str]:
        params = [1] * statement.count("?")
        return [row[3] for row in db.execute("EXPLAIN QUERY PLAN " + statement, params)]

    return await store._call(explain)


@pytest.mark.parametrize(
    ("statement", "index"),
    [
        (sql._START_QUEUED_SQL, "COVERING INDEX durable_runs_queued (app=? AND queue=?)"),
        (sql._COUNT_RUNNING_SQL, "COVERING INDEX durable_runs_queue_running"),
        (sql._COUNT_STARTED_SQL, "COVERING INDEX durable_runs_queue_status"),
        (sql._ENQUEUE_SQL, "COVERING INDEX durable_runs_seq"),
    ],
)
async def test_queue_statements_read_an_index_not_the_run_table(
    make_store: Callable[..., SQLiteStore], statement: str, index: str
) -> None:
    """Claims, counts and the next enqueue number search an index; nothing scans or sorts."""
    store = make_store()
    plan = await _query_plan(store, statement)
    assert any(index in detail for detail in plan), plan
    assert not any(detail.startswith("SCAN durable_runs") for detail in plan), plan
    assert not any("TEMP B-TREE" in detail for detail in plan), plan


async def test_enqueue_numbers_keep_growing(
    make_store: Callable[..., SQLiteStore], tmp_path: Path
) -> None:
    """seq is given once per enqueued run and never reused, not even after a VACUUM."""
    store = make_store()
    for n in range(3):
        await store.enqueue_run(NewRun(APP, f"r{n}", "wf", "{}", queue="q"))
    await store.enqueue_run(NewRun(APP, "r0", "wf", "{}", queue="q"))  # exists: no number
    await store.claim_queued(APP, [QueueLimits("q")], owner="w", lease_ttl=60, limit=3)
    await store.close()
    _sql(tmp_path / "durable.db", "VACUUM")
    await store.enqueue_run(NewRun(APP, "r3", "wf", "{}", queue="q"))
    rows = _sql(tmp_path / "durable.db", "SELECT run_id, seq FROM durable_runs ORDER BY seq")
    assert rows == [("r0", 1), ("r1", 2), ("r2", 3), ("r3", 4)]


async def test_two_stores_on_one_file_share_a_queue_within_its_cap(
    make_store: Callable[..., SQLiteStore],
) -> None:
    """Claimers on two connections never start a run twice nor exceed the concurrency cap."""
    first, second = make_store(), make_store()
    for n in range(10):
        await first.enqueue_run(NewRun(APP, f"r{n}", "wf", "{}", queue="q"))
    capped = [QueueLimits("q", concurrency=4)]
    rounds = await asyncio.gather(
        *(
            store.claim_queued(APP, capped, owner=f"w{n}", lease_ttl=60, limit=2)
            for n in range(4)
            for store in (first, second)
        )
    )
    started = [c.run.run_id for claims in rounds for c in claims]
    assert sorted(started) == [f"r{n}" for n in range(4)]


async def test_claim_queued_commits_with_the_group(
    make_store: Callable[..., SQLiteStore], commit_groups: list[int], tmp_path: Path
) -> None:
    """Enqueues and claims made together share one commit, and are on disk on return."""
    store = make_store()
    await store.open()
    commit_groups.clear()
    await asyncio.gather(
        *(store.enqueue_run(NewRun(APP, f"r{n}", "wf", "{}", queue="q")) for n in range(5))
    )
    claims = await asyncio.gather(
        *(
            store.claim_queued(APP, [QueueLimits("q")], owner=f"w{n}", lease_ttl=60, limit=2)
            for n in range(2)
        )
    )
    assert commit_groups == [5, 2]
    assert [[c.run.run_id for c in got] for got in claims] == [["r0", "r1"], ["r2", "r3"]]
    rows = _sql(tmp_path / "durable.db", "SELECT count(*) FROM durable_runs GROUP BY status")
    assert sorted(rows) == [(1,), (4,)]


# -- corrupted files ------------------------------------------------------------------


def _valid_database(path: Path) -> None:
    """A closed store file several pages long."""

    async def fill() -> None:
        async with SQLiteStore(path) as store:
            for i in range(20):
                await store.claim_run(
                    NewRun(APP, f"run-{i}", "wf", '"' + "x" * 5000 + '"'), owner="o", lease_ttl=60
                )

    asyncio.run(fill())


def _garbage(path: Path) -> None:
    path.write_bytes(os.urandom(8192))


def _text(path: Path) -> None:
    path.write_text("name,amount\nalice,12\n")


def _magic_then_garbage(path: Path) -> None:
    path.write_bytes(b"SQLite format 3\x00" + os.urandom(8176))


def _header_only(path: Path) -> None:
    _valid_database(path)
    path.write_bytes(path.read_bytes()[:100])


def _truncated(path: Path) -> None:
    _valid_database(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _pages_overwritten(path: Path) -> None:
    _valid_database(path)
    data = path.read_bytes()
    page_size = int.from_bytes(data[16:18], "big")
    path.write_bytes(data[:page_size] + os.urandom(len(data) - page_size))


@pytest.mark.parametrize(
    "damage",
    [_garbage, _text, _magic_then_garbage, _header_only, _truncated, _pages_overwritten],
)
async def test_damaged_file_is_refused_untouched(
    tmp_path: Path, damage: Callable[[Path], None]
) -> None:
    """A file that is not a usable SQLite database raises StoreCorruptedError, unmodified."""
    path = tmp_path / "damaged.db"
    await asyncio.to_thread(damage, path)
    digest = _digest(path)
    store = SQLiteStore(path)
    started = time.monotonic()
    with pytest.raises(StoreCorruptedError) as info:
        await store.open()
    assert time.monotonic() - started < 5
    assert str(path) in str(info.value)
    assert _digest(path) == digest
    await store.close()


# -- locking ------------------------------------------------------------------------


def _hold_write_lock(path: Path) -> sqlite3.Connection:
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO durable_signals VALUES ('other', 'r', 'n', 0, '1')")
    return holder


async def test_lock_held_shorter_than_busy_timeout_is_waited_for(
    make_store: Callable[..., SQLiteStore], tmp_path: Path
) -> None:
    """A write transaction held by another connection for a second delays writes, no error."""
    store = make_store(busy_timeout=10)
    await store.open()
    holder = _hold_write_lock(tmp_path / "durable.db")
    try:
        loop = asyncio.get_running_loop()
        loop.call_later(1.0, holder.execute, "COMMIT")
        started = time.monotonic()
        got = await store.claim_run(_new(), owner="o", lease_ttl=60)
        saved = await store.save_step(APP, "run-1", got.run.token, _step("a"))
        assert time.monotonic() - started >= 0.8
        assert got.acquired
        assert saved.step == _step("a")
    finally:
        holder.close()


async def test_step_save_waiting_for_a_lock_leaves_the_event_loop_running(
    make_store: Callable[..., SQLiteStore], tmp_path: Path
) -> None:
    """A step save blocked by another connection's write lock waits off the event loop."""
    store = make_store(busy_timeout=10)
    got = await store.claim_run(_new(), owner="o", lease_ttl=60)
    holder = _hold_write_lock(tmp_path / "durable.db")
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    try:
        asyncio.get_running_loop().call_later(0.6, holder.execute, "COMMIT")
        saved = await store.save_step(APP, "run-1", got.run.token, _step("a"))
    finally:
        ticker.cancel()
        holder.close()
    assert saved.step == _step("a")
    # Blocked on the lock, the loop would not have ticked at all.
    assert ticks >= 10
    assert _sql(tmp_path / "durable.db", "SELECT step_id FROM durable_steps") == [("a",)]


async def test_lease_batch_is_one_transaction(
    make_store: Callable[..., SQLiteStore], tmp_path: Path
) -> None:
    """A batch renewal commits all its leases or none: one failing row renews nothing."""
    store = make_store()
    claims = [await store.claim_run(_new(f"r{i}"), owner="o", lease_ttl=60) for i in range(3)]
    _sql(
        tmp_path / "durable.db",
        "CREATE TRIGGER refuse_r1 BEFORE UPDATE OF lease_expires_at ON durable_runs"
        " WHEN NEW.run_id = 'r1' BEGIN SELECT RAISE(ABORT, 'refused'); END",
    )
    leases = [(c.run.run_id, c.run.token) for c in claims]
    with pytest.raises(StoreError, match="refused"):
        await store.renew_leases(APP, leases, 600)
    expiries = _sql(tmp_path / "durable.db", "SELECT lease_expires_at FROM durable_runs")
    assert sorted(e for (e,) in expiries) == sorted(c.run.lease_expires_at for c in claims)


async def test_lock_held_longer_than_busy_timeout_is_unavailable(
    make_store: Callable[..., SQLiteStore], tmp_path: Path
) -> None:
    """Past busy_timeout, a locked database raises StoreUnavailableError naming the file."""
    store = make_store(busy_timeout=0.2)
    await store.open()
    holder = _hold_write_lock(tmp_path / "durable.db")
    try:
        with pytest.raises(StoreUnavailableError, match="locked") as info:
            await store.claim_run(_new(), owner="o", lease_ttl=60)
        assert str(tmp_path / "durable.db") in str(info.value)
    finally:
        holder.close()
    assert (await store.claim_run(_new(), owner="o", lease_ttl=60)).acquired


async def test_two_stores_on_one_file_race_for_a_run(
    make_store: Callable[..., SQLiteStore],
) -> None:
    """Two connections to one file claiming the same runs at once acquire each exactly once."""
    first, second = make_store(), make_store()
    claims = await asyncio.gather(
        *(
            store.claim_run(_new(f"run-{i}"), owner=f"o{n}", lease_ttl=60)
            for i in range(20)
            for n, store in enumerate((first, second))
        )
    )
    for i in range(20):
        assert sum(c.acquired for c in claims if c.run.run_id == f"run-{i}") == 1


@pytest.mark.parametrize(
    ("code", "message", "error", "words"),
    [
        (5, "database is locked", StoreUnavailableError, "locked"),
        (13, "database or disk is full", StoreUnavailableError, "disk is full"),
        (8, "attempt to write a readonly database", StoreUnavailableError, "writing"),
        (11, "database disk image is malformed", StoreCorruptedError, "damaged"),
        (26, "file is not a database", StoreCorruptedError, "damaged"),
        (1, "no such table: x", StoreError, "no such table"),
    ],
)
def test_sqlite_errors_are_translated(
    code: int, message: str, error: type[StoreError], words: str
) -> None:
    """Each kind of sqlite3 error becomes the matching durable error, naming the file."""
    exc = sqlite3.OperationalError(message)
    exc.sqlite_errorcode = code
    translated = SQLiteStore("/data/jobs.db")._translate(exc)
    assert type(translated) is error
    assert "/data/jobs.db" in str(translated)
    assert words in str(translated)


# -- group commit -------------------------------------------------------------------


async def test_concurrent_saves_are_all_durable(
    make_store: Callable[..., SQLiteStore], tmp_path: Path
) -> None:
    """100 simultaneous save_step calls all return, and all rows are on disk for others."""
    store = make_store()
    runs = [await store.claim_run(_new(f"run-{i}"), owner="o", lease_ttl=60) for i in range(10)]
    saved = await asyncio.gather(
        *(
            store.save_step(APP, run.run.run_id, run.run.token, _step(f"s{j}", j))
            for run in runs
            for j in range(10)
        )
    )
    assert len(saved) == 100
    assert _sql(tmp_path / "durable.db", "SELECT count(*) FROM durable_steps") == [(100,)]


@pytest.fixture
def commit_groups(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of every group of writes committed from now on, in order."""
    groups: list[int] = []
    write_batch = sqlite_module._write_batch_sync

    def counting(db: sqlite3.Connection, writes: list[Any]) -> list[Any]:
        groups.append(len(writes))
        return write_batch(db, writes)

    monkeypatch.setattr(sqlite_module, "_write_batch_sync", counting)
    return groups


async def test_saves_started_together_share_one_commit(
    make_store: Callable[..., SQLiteStore], commit_groups: list[int]
) -> None:
    """Saves made in the same pass of the event loop go to the database as one batch."""
    store = make_store()
    runs = [await store.claim_run(_new(f"run-{i}"), owner="o", lease_ttl=60) for i in range(10)]
    commit_groups.clear()
    await asyncio.gather(
        *(
            store.save_step(APP, run.run.run_id, run.run.token, _step(f"s{j}", j))
            for run in runs
            for j in range(10)
        )
    )
    assert commit_groups == [100]


async def test_claims_and_finishes_made_together_share_one_commit(
    make_store: Callable[..., SQLiteStore], commit_groups: list[int]
) -> None:
    """Runs started or finished in the same pass of the loop commit as one group."""
    store = make_store()
    await store.claim_run(_new("warm-up"), owner="o", lease_ttl=60)
    commit_groups.clear()
    claims = await asyncio.gather(
        *(store.claim_run(_new(f"run-{i}"), owner="o", lease_ttl=60) for i in range(20)),
        store.claim_run(_new("warm-up"), owner="other", lease_ttl=60),  # owned: not acquired
    )
    assert commit_groups == [21]
    assert [c.acquired for c in claims] == [True] * 20 + [False]
    finished = await asyncio.gather(
        *(
            store.finish_run(APP, c.run.run_id, c.run.token, "completed", output=str(i))
            for i, c in enumerate(claims[:20])
        ),
        store.finish_run(APP, "run-0", 99, "completed", output="0"),  # fenced out
        return_exceptions=True,
    )
    assert commit_groups == [21, 21]
    assert [r.output for r in finished[:20]] == [str(i) for i in range(20)]  # type: ignore[union-attr]
    assert isinstance(finished[20], LeaseLostError)
    rows = _sql(Path(store.path), "SELECT count(*) FROM durable_runs WHERE status = 'completed'")
    assert rows == [(20,)]


async def test_saves_in_a_row_still_let_other_tasks_run(
    make_store: Callable[..., SQLiteStore],
) -> None:
    """A caller saving step after step does not starve a timer waiting for its turn."""
    store = make_store(synchronous="NORMAL")
    got = await store.claim_run(_new(), owner="o", lease_ttl=60)
    ticks = 0
    stop = False

    async def ticker() -> None:
        # A timer, not a callback always ready: it runs only when the loop does.
        nonlocal ticks
        while not stop:
            ticks += 1
            await asyncio.sleep(0.001)

    ticking = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    ticks = 0
    # 3000 commits take many milliseconds, even on a fast disk.
    for i in range(3000):
        await store.save_step(APP, "run-1", got.run.token, _step(f"s{i}", i))
    stop = True
    await ticking
    assert ticks >= 2


async def test_one_bad_save_fails_only_its_caller(
    make_store: Callable[..., SQLiteStore], tmp_path: Path
) -> None:
    """In a batch of saves, a fenced or unstorable step fails alone; the others are stored."""
    store = make_store()
    got = await store.claim_run(_new(), owner="o", lease_ttl=60)
    token = got.run.token

    def save(i: int) -> Any:
        if i == 10:
            return store.save_step(APP, "run-1", token + 1, _step("fenced", i))
        if i == 20:
            return store.save_step(APP, "run-1", token, _step("huge", i, attempts=2**70))
        return store.save_step(APP, "run-1", token, _step(f"s{i}", i))

    results = await asyncio.gather(*(save(i) for i in range(30)), return_exceptions=True)
    assert isinstance(results[10], LeaseLostError)
    assert isinstance(results[20], OverflowError)
    good = [r for i, r in enumerate(results) if i not in (10, 20)]
    assert not any(isinstance(r, BaseException) for r in good)
    rows = _sql(tmp_path / "durable.db", "SELECT step_id FROM durable_steps ORDER BY position")
    assert [r[0] for r in rows] == [f"s{i}" for i in range(30) if i not in (10, 20)]


async def test_close_waits_for_pending_saves(
    make_store: Callable[..., SQLiteStore], tmp_path: Path
) -> None:
    """Saves in flight when close() is called still complete and are on disk."""
    store = make_store()
    got = await store.claim_run(_new(), owner="o", lease_ttl=60)
    saves = [
        asyncio.ensure_future(store.save_step(APP, "run-1", got.run.token, _step(f"s{i}", i)))
        for i in range(50)
    ]
    await asyncio.sleep(0)
    await store.close()
    await asyncio.gather(*saves)
    assert _sql(tmp_path / "durable.db", "SELECT count(*) FROM durable_steps") == [(50,)]


# -- process exit ---------------------------------------------------------------------

_NEVER_CLOSED = textwrap.dedent(
    """
    import asyncio, sys
    from durable.stores.base import NewRun, StepRecord
    from durable.stores.sqlite import SQLiteStore

    async def main():
        store = SQLiteStore(sys.argv[1])
        got = await store.claim_run(NewRun("app", "r", "wf", "{}"), owner="o", lease_ttl=60)
        step = StepRecord("s", 0, "t", "completed", '"kept"', None, 1, 1.0, 2.0)
        await store.save_step("app", "r", got.run.token, step)
        print("saved", flush=True)

    asyncio.run(main())
    """
)


def test_never_closed_store_lets_the_process_exit(tmp_path: Path) -> None:
    """A program that never closes its store still exits promptly, its commits kept."""
    path = tmp_path / "durable.db"
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", _NEVER_CLOSED, str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "saved"
    assert elapsed < 5
    assert _sql(path, "SELECT result FROM durable_steps") == [('"kept"',)]


# -- configuration ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "path", "synchronous"),
    [
        ("sqlite:///jobs.db", "jobs.db", "FULL"),
        ("sqlite:///data/jobs.db", "data/jobs.db", "FULL"),
        ("sqlite:////var/lib/app/jobs.db", "/var/lib/app/jobs.db", "FULL"),
        ("SQLITE:///jobs.db?synchronous=normal", "jobs.db", "NORMAL"),
        ("sqlite:///my%20jobs.db?busy_timeout=2.5", "my jobs.db", "FULL"),
    ],
)
def test_from_url(url: str, path: str, synchronous: str) -> None:
    """sqlite:/// URLs name a relative path, sqlite://// an absolute one, options in the query."""
    store = SQLiteStore.from_url(url)
    assert store.path == path
    assert f"synchronous={synchronous!r}" in repr(store)


@pytest.mark.parametrize(
    "url",
    [
        "sqlite://host/jobs.db",
        "sqlite://",
        "sqlite:///",
        "postgresql://localhost/db",
        "sqlite:///jobs.db?journal=off",
        "sqlite:///jobs.db?synchronous=OFF",
        "sqlite:///jobs.db?busy_timeout=soon",
    ],
)
def test_from_url_rejects_bad_urls(url: str) -> None:
    """Malformed SQLite URLs raise ConfigurationError."""
    with pytest.raises(ConfigurationError):
        SQLiteStore.from_url(url)


@pytest.mark.parametrize(
    "options",
    [{"synchronous": "OFF"}, {"busy_timeout": -1}, {"busy_timeout": float("inf")}],
)
def test_bad_options_are_rejected(options: dict[str, Any]) -> None:
    """Unknown synchronous levels and negative or infinite busy timeouts are refused."""
    with pytest.raises(ConfigurationError):
        SQLiteStore("jobs.db", **options)


def test_empty_path_is_rejected() -> None:
    """An empty path (SQLite's private temporary database) is refused."""
    with pytest.raises(ConfigurationError):
        SQLiteStore("")


_SIMULTANEOUS_OPEN = """
import asyncio, os, sys, time
from durable.stores.sqlite import SQLiteStore
from durable.stores.base import NewRun

root = sys.argv[1]
failures = []
for trial in range(40):
    path = os.path.join(root, f"{trial}.db")
    start = time.time() + 0.05
    children = []
    for _ in range(4):
        pid = os.fork()
        if pid == 0:
            while time.time() < start:
                pass

            async def claim() -> None:
                store = SQLiteStore(path)
                try:
                    await store.claim_run(
                        NewRun("app", "run", "wf", "{}"), owner=str(os.getpid()), lease_ttl=30
                    )
                finally:
                    await store.close()

            try:
                asyncio.run(claim())
            except Exception as exc:
                print(f"trial {trial}: {exc}", flush=True)
                os._exit(1)
            os._exit(0)
        children.append(pid)
    for pid in children:
        failures.append(os.waitpid(pid, 0)[1])
print(sum(1 for status in failures if status), "failures")
"""


def test_processes_opening_a_new_file_together_all_succeed(tmp_path: Path) -> None:
    """Four processes opening one new file at the same instant all open it (40 rounds)."""
    script = tmp_path / "simultaneous.py"
    script.write_text(_SIMULTANEOUS_OPEN)
    result = subprocess.run(
        [sys.executable, str(script), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "0 failures", result.stdout
