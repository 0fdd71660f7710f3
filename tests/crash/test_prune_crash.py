"""A prune killed with SIGKILL mid-way keeps whole batches: no run is half deleted."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from durable.stores.sqlite import SQLiteStore

pytestmark = pytest.mark.crash

RUNS = 3000
BATCH = 50

# The child prunes every finished run in batches of BATCH, printing the total
# after each batch; the parent kills it as soon as the first line arrives.
_PRUNER = textwrap.dedent(
    """
    import asyncio, sys
    from durable.stores.sqlite import SQLiteStore
    from durable.worker.retention import prune

    async def main():
        async with SQLiteStore(sys.argv[1]) as store:
            await prune(store, "app", older_than=1.0, batch_size=int(sys.argv[2]),
                        progress=lambda n: print(n, flush=True))
        print("done", flush=True)

    asyncio.run(main())
    """
)


def _populate(path: Path) -> None:
    """RUNS completed runs finished long ago (a step and a signal each), and one running run."""
    asyncio.run(_create_schema(path))
    db = sqlite3.connect(path)
    with db:
        db.executemany(
            """INSERT INTO durable_runs (app, run_id, workflow, status, inputs, token,
                                         attempts, cancel_requested, created_at, updated_at)
               VALUES ('app', ?, 'wf', ?, '{}', 1, 1, 0, 1000, 1000)""",
            [(f"r{n}", "completed") for n in range(RUNS)] + [("live", "running")],
        )
        db.executemany(
            """INSERT INTO durable_steps VALUES ('app', ?, 's', 0, 't', 'completed', '1',
                                                 NULL, 1, 1, 2)""",
            [(f"r{n}",) for n in range(RUNS)] + [("live",)],
        )
        db.executemany(
            "INSERT INTO durable_signals VALUES ('app', ?, 'go', 0, '1')",
            [(f"r{n}",) for n in range(RUNS)] + [("live",)],
        )
    db.close()


async def _create_schema(path: Path) -> None:
    async with SQLiteStore(path) as store:
        await store.list_runs("app")


def test_a_prune_killed_mid_way_keeps_whole_batches(tmp_path: Path) -> None:
    """After SIGKILL the deleted runs are whole batches, with no step or signal left behind."""
    path = tmp_path / "prune.db"
    _populate(path)
    child = subprocess.Popen(
        [sys.executable, "-c", _PRUNER, str(path), str(BATCH)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        first = child.stdout.readline().strip()
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=60)
        if child.stdout is not None:
            child.stdout.close()
    assert first == str(BATCH)
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        left = db.execute("SELECT count(*) FROM durable_runs WHERE status = 'completed'")
        deleted = RUNS - left.fetchone()[0]
        assert deleted >= BATCH
        assert deleted % BATCH == 0 or deleted == RUNS, deleted
        for table in ("durable_steps", "durable_signals"):
            orphans = db.execute(
                f"""SELECT count(*) FROM {table} AS x WHERE NOT EXISTS
                    (SELECT 1 FROM durable_runs AS r
                     WHERE r.app = x.app AND r.run_id = x.run_id)"""
            ).fetchone()[0]
            assert orphans == 0, table
            kept = db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            assert kept == RUNS - deleted + 1, table  # the running run keeps its own
        live = db.execute("SELECT status FROM durable_runs WHERE run_id = 'live'").fetchall()
        assert live == [("running",)]
    finally:
        db.close()
