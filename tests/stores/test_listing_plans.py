"""Listing reads an index, never the whole run table: the query plans of SQLite and PostgreSQL.

Each store gets a table of many runs of two apps, mostly completed, then the
plan of each kind of listing is read (``EXPLAIN QUERY PLAN`` on SQLite,
``EXPLAIN`` on PostgreSQL, with fresh statistics and with a generic plan).
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from tests import _services

from durable.stores import _sqlite_sql
from durable.stores._listing import ListQuery
from durable.stores.sqlite import SQLiteStore

pytestmark = pytest.mark.asyncio

RUNS = 5_000
BASE = 1_700_000_000.0

# (what, ListQuery arguments, the index the plan must use)
SQLITE_CASES = [
    ("newest", {}, "durable_runs_listed"),
    ("by status", {"status": "failed"}, "durable_runs_by_status"),
    ("by workflow", {"workflow": "odd"}, "durable_runs_by_workflow"),
    ("by queue", {"queue": "q1"}, "durable_runs_by_queue"),
    ("by id prefix", {"id_prefix": "run-00123"}, "sqlite_autoindex_durable_runs_1"),
    ("time window", {"since": BASE + 100, "until": BASE + 200}, "durable_runs_listed"),
    ("next page", {"after": (BASE + 3_000, "run-003000")}, "durable_runs_listed"),
    (
        "status, next page",
        {"status": "running", "after": (BASE + 3_000, "run-003000")},
        "durable_runs_by_status",
    ),
]


def _status(i: int) -> str:
    # Mostly completed, as a store that ran for a while is.
    return {0: "failed", 1: "running", 2: "queued"}.get(i % 100, "completed")


def _rows(app: str) -> list[tuple[Any, ...]]:
    return [
        (
            app,
            f"run-{i:06}",
            "even" if i % 2 == 0 else "odd",
            _status(i),
            "{}",
            BASE + i,
            BASE + i,
            f"q{i % 3}" if i % 10 == 0 else None,
        )
        for i in range(RUNS)
    ]


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    """A SQLite store holding RUNS runs of each of two apps."""
    store = SQLiteStore(tmp_path / "big.db")
    await store.open()

    def fill(db: sqlite3.Connection) -> None:
        with _sqlite_sql._write_transaction(db):
            for app in ("app", "other"):
                db.executemany(
                    "INSERT INTO durable_runs (app, run_id, workflow, status, inputs, token,"
                    " attempts, cancel_requested, created_at, updated_at, queue)"
                    " VALUES (?, ?, ?, ?, ?, 0, 0, 0, ?, ?, ?)",
                    _rows(app),
                )

    await store._call(fill)
    yield store
    await store.close()


async def _sqlite_plan(store: SQLiteStore, query: ListQuery) -> str:
    conditions, params = query.conditions()
    statement = _sqlite_sql._list_sql(conditions)

    def explain(db: sqlite3.Connection) -> str:
        rows = db.execute("EXPLAIN QUERY PLAN " + statement, (query.app, *params, query.limit))
        return "\n".join(row[3] for row in rows)

    return await store._call(explain)


async def test_sqlite_listing_reads_an_index(sqlite_store: SQLiteStore) -> None:
    """Each listing is answered from its index, without and with ANALYZE statistics."""
    for when in ("no statistics", "analyzed"):
        if when == "analyzed":
            await sqlite_store._call(lambda db: db.execute("ANALYZE"))
        for what, filters, index in SQLITE_CASES:
            query = ListQuery("app", limit=50, **filters)
            plan = await _sqlite_plan(sqlite_store, query)
            assert f"INDEX {index}" in plan, f"{what}, {when}:\n{plan}"
            assert "SCAN durable_runs\n" not in plan + "\n", f"{what}, {when}:\n{plan}"
            # The plan is the one the store runs: its answer is right.
            listed = await sqlite_store.list_runs("app", limit=50, **filters)
            assert listed, what
            assert all(query.matches(run) for run in listed), what


async def test_sqlite_queue_stats_read_the_queue_indexes(sqlite_store: SQLiteStore) -> None:
    """queue_stats counts over the queue and status indexes, not the run table."""

    def explain(db: sqlite3.Connection) -> str:
        rows = db.execute(
            "EXPLAIN QUERY PLAN " + _sqlite_sql._QUEUE_STATS_SQL, (BASE, BASE, BASE, "app", "app")
        )
        return "\n".join(row[3] for row in rows)

    for when in ("no statistics", "analyzed"):
        if when == "analyzed":
            await sqlite_store._call(lambda db: db.execute("ANALYZE"))
        plan = await sqlite_store._call(explain)
        assert "SCAN durable_runs\n" not in plan + "\n", f"{when}:\n{plan}"
        assert "INDEX durable_runs_queued" in plan, f"{when}:\n{plan}"
        # Not durable_runs_queue_status: every run its queues ever started.
        assert "INDEX durable_runs_queue_running" in plan, f"{when}:\n{plan}"


# -- PostgreSQL ---------------------------------------------------------------------

PG_CASES = [
    ("newest", {}, "runs_listed"),
    ("by status", {"status": "failed"}, "runs_by_status"),
    ("by workflow", {"workflow": "odd"}, "runs_by_workflow"),
    ("by queue", {"queue": "q1"}, "runs_by_queue"),
    ("by id prefix", {"id_prefix": "run-00123"}, "runs_by_id"),
    ("time window", {"since": BASE + 100, "until": BASE + 200}, "runs_listed"),
    ("next page", {"after": (BASE + 3_000, "run-003000")}, "runs_listed"),
    (
        "status, next page",
        {"status": "running", "after": (BASE + 3_000, "run-003000")},
        "runs_by_status",
    ),
]


@pytest.fixture
async def pg_store() -> AsyncIterator[Any]:
    """A PostgreSQL store on a fresh schema holding RUNS runs of each of two apps, analyzed."""
    dsn = await _services.postgres_dsn()
    postgres = _services.import_driver("durable.stores.postgres")
    schema = _services.unique_name("pgplan")
    store = postgres.PostgresStore(dsn, schema=schema)
    try:
        await store.open()
        conn = await store._connect()
        try:
            columns = ["app", "run_id", "workflow", "status", "inputs", "created_at"]
            columns += ["updated_at", "queue", "token", "attempts", "cancel_requested"]
            for app in ("app", "other"):
                records = [(*row, 0, 0, False) for row in _rows(app)]
                await conn.copy_records_to_table(
                    "runs", records=records, columns=columns, schema_name=schema
                )
            await conn.execute(f'ANALYZE "{schema}".runs')
        finally:
            await conn.close()
        yield store
    finally:
        await store.close()
        await _services.drop_postgres_schema(dsn, schema)


@pytest.mark.postgres
async def test_postgres_listing_reads_an_index(pg_store: Any) -> None:
    """Each listing is an index scan of its index, in a custom and in a generic plan."""
    sql = _services.import_driver("durable.stores._postgres_sql")
    conn = await pg_store._connect()
    try:
        for mode in ("force_custom_plan", "force_generic_plan"):
            await conn.execute(f"SET plan_cache_mode = {mode}")
            for what, filters, index in PG_CASES:
                query = ListQuery("app", limit=50, **filters)
                template, params = sql.list_runs_statement(query)
                statement = pg_store._q(template)
                if mode == "force_custom_plan":
                    rows = await conn.fetch("EXPLAIN " + statement, "app", *params)
                else:
                    # The plan cached for any values: planned without seeing them.
                    await conn.execute(f"PREPARE listing AS {statement}")
                    nulls = ", ".join(["NULL"] * (len(params) + 1))
                    rows = await conn.fetch(f"EXPLAIN EXECUTE listing({nulls})")
                    await conn.execute("DEALLOCATE listing")
                plan = "\n".join(row[0] for row in rows)
                assert f"using {index}" in plan.lower(), f"{what}, {mode}:\n{plan}"
                assert "Seq Scan" not in plan, f"{what}, {mode}:\n{plan}"
    finally:
        await conn.close()
    for what, filters, _ in PG_CASES:
        query = ListQuery("app", limit=50, **filters)
        listed = await pg_store.list_runs("app", limit=50, **filters)
        assert listed, what
        assert all(query.matches(run) for run in listed), what
