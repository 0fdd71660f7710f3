"""The retention statements of the SQL stores: they read indexes, and a retry is invisible."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from tests import _services
from tests.stores.test_postgres import admin, dsn, make_store, schema

from durable.stores import _sqlite_retention
from durable.stores.base import NewRun
from durable.stores.sqlite import SQLiteStore

if TYPE_CHECKING:
    from durable.stores.postgres import PostgresStore

__all__ = ["admin", "dsn", "make_store", "schema"]  # the fixtures this module uses


async def test_sqlite_prune_reads_the_index_of_finished_runs(tmp_path: Path) -> None:
    """Pruning and counting search durable_runs_finished; a delete by id the primary key."""
    path = tmp_path / "plans.db"
    async with SQLiteStore(path) as store:
        await store.list_runs("app")  # creates the schema
    db = sqlite3.connect(path)
    try:

        def plan(sql: str) -> str:
            params = (None,) * sql.count("?")
            return " | ".join(row[3] for row in db.execute("EXPLAIN QUERY PLAN " + sql, params))

        for sql in (_sqlite_retention._PRUNE_SQL, _sqlite_retention._COUNT_SQL):
            assert "INDEX durable_runs_finished (app=? AND status=? AND updated_at<?)" in plan(
                sql
            ), plan(sql)
        keyed = plan(_sqlite_retention._DELETE_RUN_SQL)
        assert "sqlite_autoindex_durable_runs_1 (app=? AND run_id=?)" in keyed, keyed
    finally:
        db.close()


async def _plans(store: PostgresStore, names: tuple[str, ...]) -> dict[str, str]:
    """The generic plan of each retention statement, on a connection set up like the store's."""
    retention = _services.import_driver("durable.stores._postgres_retention")
    conn = await store._connect()
    try:
        await conn.execute("SET plan_cache_mode = force_generic_plan")
        plans: dict[str, str] = {}
        for name in names:
            text = store._q(getattr(retention, name))
            params = max(int(n) for n in re.findall(r"\$(\d+)", text))
            await conn.execute(f"PREPARE retention AS {text}")
            rows = await conn.fetch(f"EXPLAIN EXECUTE retention({', '.join(['NULL'] * params)})")
            await conn.execute("DEALLOCATE retention")
            plans[name] = "\n".join(row[0] for row in rows)
        return plans
    finally:
        await conn.close()


@pytest.mark.postgres
async def test_postgres_retention_plans_use_indexes(
    make_store: Callable[..., PostgresStore], admin: Any, schema: str
) -> None:
    """A delete by id uses the primary key; a prune finds runs by runs_finished, then by key.

    Checked on new tables (no statistics) and on a table of many running runs
    and a few finished ones, analyzed: the generic plan a connection caches
    must suit both.
    """
    store = make_store()
    await store.open()
    keyed = ("DELETE_RUN", "RUN_STATUS", "DELETE_RUN_ROWS")
    for name, plan in (await _plans(store, keyed)).items():
        assert "Seq Scan" not in plan, f"new tables, {name}:\n{plan}"
        assert "runs_finished" not in plan, f"new tables, {name}:\n{plan}"
    runs = f'"{schema}".runs'
    await admin.execute(
        f"""INSERT INTO {runs} (app, run_id, workflow, status, inputs, token, attempts,
                                cancel_requested, created_at, updated_at)
            SELECT 'app', 'r' || i, 'wf', CASE WHEN i <= 20 THEN 'completed' ELSE 'running' END,
                   '{{}}', 1, 1, false, i, i
            FROM generate_series(1, 5000) AS i"""
    )
    await admin.execute(
        f"""INSERT INTO "{schema}".steps
            SELECT 'app', 'r' || i, 's' || j, j, 't', 'completed', NULL, NULL, 1, 1, 1
            FROM generate_series(1, 5000) AS i, generate_series(1, 3) AS j"""
    )
    await admin.execute(f'ANALYZE {runs}, "{schema}".steps')
    plans = await _plans(store, (*keyed, "PRUNE", "COUNT"))
    for name in keyed:
        assert "Seq Scan" not in plans[name], f"{name}:\n{plans[name]}"
        assert "runs_finished" not in plans[name], f"{name}:\n{plans[name]}"
    for name in ("PRUNE", "COUNT"):
        assert "runs_finished" in plans[name], f"{name}:\n{plans[name]}"
        assert "Seq Scan" not in plans[name], f"{name}:\n{plans[name]}"
    for key in ("runs_pkey", "steps_pkey", "signals_pkey", "signal_counters_pkey"):
        assert re.search(
            key + r" on .*\n\s+Index Cond: \(\(app = \$1\) AND \(run_id = ANY", plans["PRUNE"]
        ), f"{key}:\n{plans['PRUNE']}"


@pytest.mark.postgres
async def test_postgres_delete_retried_after_its_commit_answers_as_it_did(
    make_store: Callable[..., PostgresStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the answer of a committed delete is lost, the store's retry still returns the run."""
    store = make_store()
    claim = await store.claim_run(NewRun("app", "r", "wf", "{}"), owner="a", lease_ttl=30)
    finished = await store.finish_run("app", "r", claim.run.token, "completed", output="1")
    call = store._call

    async def answer_lost(op: Any, **options: Any) -> Any:
        await call(op, **options)  # committed, but the connection dropped
        return await call(op, **options)

    monkeypatch.setattr(store, "_call", answer_lost)
    deleted = await store.delete_run("app", "r")
    assert deleted == finished
    assert await store.delete_run("app", "r") is None  # a new call: the run is gone
    monkeypatch.undo()
    assert await store.get_run("app", "r") is None
