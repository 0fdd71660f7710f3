"""SQL of the SQLite store's retention, and the functions that run it on its connection thread.

Finished runs are found through the partial index ``durable_runs_finished``
(migration 3 in ``_sqlite_sql``): a finished run enters it once, when it
finishes, and heartbeats of running runs (which write ``updated_at``) never
touch it. SQLite uses a partial index only when the query repeats the
index's WHERE term, so every query here repeats it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any, Final

from durable.stores._sqlite_sql import _run_record, _write_transaction
from durable.stores.base import FinalStatus, RunRecord

# The status test and the delete in one statement: a run that restarts
# meanwhile is no longer finished and is not deleted.
_DELETE_RUN_SQL: Final = """
    DELETE FROM durable_runs
    WHERE app = ? AND run_id = ? AND status IN ('completed', 'failed', 'cancelled')
    RETURNING workflow, status, inputs, output, error, owner, token, lease_expires_at,
           attempts, cancel_requested, parent_run_id, created_at, updated_at, queue,
           priority, not_before, started_at, trace_context
"""

_STATUS_SQL: Final = "SELECT status FROM durable_runs WHERE app = ? AND run_id = ?"
_DELETE_STEPS_SQL: Final = "DELETE FROM durable_steps WHERE app = ? AND run_id = ?"
_DELETE_SIGNALS_SQL: Final = "DELETE FROM durable_signals WHERE app = ? AND run_id = ?"

# One status at a time: an equality on status then a range on updated_at is
# one range of the index.
_PRUNE_SQL: Final = """
    DELETE FROM durable_runs
    WHERE rowid IN (SELECT rowid FROM durable_runs
                    WHERE app = ? AND status IN ('completed', 'failed', 'cancelled')
                      AND status = ? AND updated_at < ?
                    LIMIT ?)
    RETURNING run_id
"""

_COUNT_SQL: Final = """
    SELECT count(*) FROM durable_runs
    WHERE app = ? AND status IN ('completed', 'failed', 'cancelled')
      AND status = ? AND updated_at < ?
"""


def delete_run_sync(db: sqlite3.Connection, app: str, run_id: str) -> RunRecord | str | None:
    """Delete the finished run, its steps and signals; the run, or the status that kept it."""
    with _write_transaction(db):
        rows = db.execute(_DELETE_RUN_SQL, (app, run_id)).fetchall()
        if not rows:
            kept = db.execute(_STATUS_SQL, (app, run_id)).fetchone()
            return None if kept is None else str(kept[0])
        _delete_steps_and_signals(db, app, [run_id])
        return _run_record(app, run_id, rows[0])


def prune_sync(
    db: sqlite3.Connection,
    app: str,
    finished_before: float,
    statuses: Sequence[FinalStatus],
    limit: int,
) -> int:
    """Delete up to ``limit`` finished runs with their steps and signals, in one transaction."""
    deleted: list[str] = []
    with _write_transaction(db):
        for status in statuses:
            wanted = limit - len(deleted)
            if wanted <= 0:
                break
            rows = db.execute(_PRUNE_SQL, (app, status, finished_before, wanted)).fetchall()
            deleted += [row[0] for row in rows]
        _delete_steps_and_signals(db, app, deleted)
    return len(deleted)


def count_sync(
    db: sqlite3.Connection, app: str, finished_before: float, statuses: Sequence[FinalStatus]
) -> int:
    return sum(
        int(db.execute(_COUNT_SQL, (app, status, finished_before)).fetchone()[0])
        for status in statuses
    )


def _delete_steps_and_signals(db: sqlite3.Connection, app: str, run_ids: Sequence[str]) -> None:
    """The steps and signals of the runs: primary key prefixes, one seek each."""
    params: list[Any] = [(app, run_id) for run_id in run_ids]
    db.executemany(_DELETE_STEPS_SQL, params)
    db.executemany(_DELETE_SIGNALS_SQL, params)
