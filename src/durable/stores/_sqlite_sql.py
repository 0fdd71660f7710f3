"""SQL of the SQLite store, and the functions that run on its connection thread.

Each function takes the ``sqlite3`` connection and does one whole operation
(a statement, or a transaction), so that the store can run it in one hop.
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Final

from durable.errors import StoreError
from durable.stores._claims import ClaimAction, ClaimRequest, decide_claim
from durable.stores._listing import ListQuery, decide_requeue, merge_counts, requeued_record
from durable.stores._queues import queued_record, room_left
from durable.stores._rows import StepParams
from durable.stores.base import (
    Claim,
    FinalStatus,
    NewRun,
    QueueCounts,
    QueueLimits,
    RunRecord,
    SavedStep,
    StepRecord,
)

SCHEMA_VERSION: Final = 7


_MAGIC: Final = b"SQLite format 3\x00"

# Primary result codes (the low byte of extended codes), from sqlite3.h.
_PERM, _BUSY, _LOCKED, _READONLY, _IOERR = 3, 5, 6, 8, 10
_CORRUPT, _FULL, _CANTOPEN, _NOTADB = 11, 13, 14, 26
_ENVIRONMENTAL: Final = frozenset(
    {_PERM, _BUSY, _LOCKED, _READONLY, _IOERR, _CORRUPT, _FULL, _CANTOPEN, _NOTADB}
)

_SYNCHRONOUS_PRAGMAS: Final = {
    "FULL": "PRAGMA synchronous = FULL",
    "NORMAL": "PRAGMA synchronous = NORMAL",
}

# The schema as version 1 made it; _MIGRATIONS bring it up to SCHEMA_VERSION.
# A new file runs them too, so that it ends up exactly like a migrated one.
_SCHEMA: Final = (
    "CREATE TABLE durable_schema (version INTEGER NOT NULL)",
    # A rowid table: inputs can be large, and WITHOUT ROWID tables are at their
    # best with small rows.
    """CREATE TABLE durable_runs (
        app TEXT NOT NULL,
        run_id TEXT NOT NULL,
        workflow TEXT NOT NULL,
        status TEXT NOT NULL,
        inputs TEXT NOT NULL,
        output TEXT,
        error TEXT,
        owner TEXT,
        token INTEGER NOT NULL,
        lease_expires_at REAL,
        attempts INTEGER NOT NULL,
        cancel_requested INTEGER NOT NULL,
        parent_run_id TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        PRIMARY KEY (app, run_id)
    )""",
    "CREATE INDEX durable_runs_newest ON durable_runs (app, created_at)",
    # WITHOUT ROWID: the primary key is the table, so the hot-path insert
    # writes one b-tree instead of a table plus a unique index.
    """CREATE TABLE durable_steps (
        app TEXT NOT NULL,
        run_id TEXT NOT NULL,
        step_id TEXT NOT NULL,
        position INTEGER NOT NULL,
        task TEXT NOT NULL,
        status TEXT NOT NULL,
        result TEXT,
        error TEXT,
        attempts INTEGER NOT NULL,
        started_at REAL NOT NULL,
        finished_at REAL NOT NULL,
        PRIMARY KEY (app, run_id, step_id)
    ) WITHOUT ROWID""",
    """CREATE TABLE durable_signals (
        app TEXT NOT NULL,
        run_id TEXT NOT NULL,
        name TEXT NOT NULL,
        idx INTEGER NOT NULL,
        payload TEXT NOT NULL,
        PRIMARY KEY (app, run_id, name, idx)
    ) WITHOUT ROWID""",
)

# _MIGRATIONS[n] takes the schema from version n + 1 to n + 2. ADD COLUMN
# rewrites no row: a large file migrates at once.
_MIGRATIONS: Final = (
    # 2: queued runs. ``seq`` is the enqueue order (FIFO within a priority),
    # given by enqueue_run only; the rowid could serve but VACUUM may renumber
    # it. Every index is partial: runs started by claim_run (no queue) never
    # enter them, so the step, claim and finish path writes no more than before.
    (
        "ALTER TABLE durable_runs ADD COLUMN queue TEXT",
        "ALTER TABLE durable_runs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE durable_runs ADD COLUMN not_before REAL",
        "ALTER TABLE durable_runs ADD COLUMN started_at REAL",
        "ALTER TABLE durable_runs ADD COLUMN seq INTEGER",
        # The next seq: max(seq) is one seek to the end of this index.
        "CREATE UNIQUE INDEX durable_runs_seq ON durable_runs (seq) WHERE seq IS NOT NULL",
        # The runs waiting in a queue, in the order they are started: a claim
        # reads the head of its queue here alone, skipping runs not due yet.
        # (status, constant here, is a column too: else the query planner
        # does not count the index as covering.)
        """CREATE INDEX durable_runs_queued
           ON durable_runs (app, queue, priority, seq, not_before, status)
           WHERE status = 'queued'""",
        # A queue's running runs and its recent starts, counted for its limits.
        """CREATE INDEX durable_runs_queue_status
           ON durable_runs (app, queue, status, started_at) WHERE queue IS NOT NULL""",
    ),
    # 3: finished runs by status and finish time, for pruning (see _sqlite_retention).
    (
        """CREATE INDEX durable_runs_finished
           ON durable_runs (app, status, updated_at)
           WHERE status IN ('completed', 'failed', 'cancelled')""",
    ),
    # 4: listing at scale. Each filter of list_runs reads an index in listing
    # order (created_at, then run_id: a total order, so keyset pages are
    # exact); an id prefix is a range of the primary key. The old listing
    # index ends without run_id, so it is replaced.
    (
        "DROP INDEX durable_runs_newest",
        "CREATE INDEX durable_runs_listed ON durable_runs (app, created_at, run_id)",
        """CREATE INDEX durable_runs_by_status
           ON durable_runs (app, status, created_at, run_id)""",
        """CREATE INDEX durable_runs_by_workflow
           ON durable_runs (app, workflow, created_at, run_id)""",
        """CREATE INDEX durable_runs_by_queue
           ON durable_runs (app, queue, created_at, run_id) WHERE queue IS NOT NULL""",
    ),
    # 5: parked runs (status 'waiting'), read by a claim in wake time order.
    (
        """CREATE INDEX durable_runs_waiting
           ON durable_runs (app, queue, not_before, status) WHERE status = 'waiting'""",
    ),
    # 6: the trace context an observer keeps with a run (durable.engine.observe).
    ("ALTER TABLE durable_runs ADD COLUMN trace_context TEXT",),
    # 7: the running runs of the queues, which queue_stats counts for all
    # queues at once. durable_runs_queue_status serves a count for one queue,
    # but with no queue given its only range is the app's: every run a queue
    # ever started, finished ones included. ANALYZE cannot steer the planner
    # away (sqlite_stat1 knows the average run count of a status, not that
    # few runs are running), so these runs get an index of their own, which
    # a claim's count of one queue's running runs reads as well.
    (
        """CREATE INDEX durable_runs_queue_running
           ON durable_runs (app, queue, status) WHERE status = 'running' AND queue IS NOT NULL""",
    ),
)

# The run and its steps in one statement (so one snapshot): row kind 0 is the
# run, kind 1 the steps. A UNION rather than a join so that a large ``inputs``
# is not repeated on every step row.
_LOAD_SQL: Final = """
    SELECT 0, workflow, status, inputs, output, error, owner, token, lease_expires_at,
           attempts, cancel_requested, parent_run_id, created_at, updated_at, queue,
           priority, not_before, started_at, trace_context
    FROM durable_runs WHERE app = ? AND run_id = ?
    UNION ALL
    SELECT 1, step_id, position, task, status, result, error, attempts,
           started_at, finished_at, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
    FROM durable_steps WHERE app = ? AND run_id = ?
    ORDER BY 1, 3
"""

_GET_SQL: Final = """
    SELECT workflow, status, inputs, output, error, owner, token, lease_expires_at,
           attempts, cancel_requested, parent_run_id, created_at, updated_at, queue,
           priority, not_before, started_at, trace_context
    FROM durable_runs WHERE app = ? AND run_id = ?
"""

_INSERT_RUN_SQL: Final = """
    INSERT INTO durable_runs (app, run_id, workflow, status, inputs, output, error, owner,
                              token, lease_expires_at, attempts, cancel_requested,
                              parent_run_id, created_at, updated_at, started_at,
                              trace_context)
    VALUES (?, ?, ?, 'running', ?, NULL, NULL, ?, 1, ?, 1, 0, ?, ?, ?, ?, ?)
"""

_TAKE_RUN_SQL: Final = """
    UPDATE durable_runs
    SET status = 'running', error = ?, owner = ?, token = ?, lease_expires_at = ?,
        attempts = ?, cancel_requested = ?, updated_at = ?, started_at = ?
    WHERE app = ? AND run_id = ?
"""

# A queued run, unless the id is taken (then no row is written). Its seq comes
# after every other one, read under the write lock the statement holds. (The
# WHERE clause lets the parser tell ON CONFLICT from a join constraint.)
_ENQUEUE_SQL: Final = """
    INSERT INTO durable_runs (app, run_id, workflow, status, inputs, output, error, owner,
                              token, lease_expires_at, attempts, cancel_requested,
                              parent_run_id, created_at, updated_at, queue, priority,
                              not_before, started_at, seq, trace_context)
    SELECT ?, ?, ?, 'queued', ?, NULL, NULL, NULL, 0, NULL, 0, 0, ?, ?, ?, ?, ?, ?, NULL,
           coalesce(max(seq), 0) + 1, ?
    FROM durable_runs WHERE seq IS NOT NULL
    ON CONFLICT DO NOTHING
"""

# A queue's running runs and its starts since a time, each counted up to a cap
# (what its limit allows: more would not change the answer), over the
# durable_runs_queue_status index. Queued runs have no started_at.
_COUNT_RUNNING_SQL: Final = """
    SELECT count(*) FROM (SELECT 1 FROM durable_runs
                          WHERE app = ? AND queue = ? AND status = 'running' LIMIT ?)
"""

_COUNT_STARTED_SQL: Final = """
    SELECT count(*) FROM (SELECT 1 FROM durable_runs
                          WHERE app = ? AND queue = ?
                            AND status IN ('running', 'completed', 'failed', 'cancelled',
                                           'waiting')
                            AND started_at > ? LIMIT ?)
"""

# Start the head of a queue: its first eligible runs by priority then seq, read
# from the durable_runs_queued index. RETURNING comes in no set order: the
# caller sorts the rows by priority and seq (seq is the extra last column).
_START_QUEUED_SQL: Final = """
    UPDATE durable_runs
    SET status = 'running', owner = ?, token = token + 1, lease_expires_at = ?,
        attempts = attempts + 1, updated_at = ?, started_at = ?
    WHERE rowid IN (SELECT rowid FROM durable_runs
                    WHERE app = ? AND queue = ? AND status = 'queued'
                      AND (not_before IS NULL OR not_before <= ?)
                    ORDER BY priority, seq LIMIT ?)
    RETURNING run_id, workflow, status, inputs, output, error, owner, token,
           lease_expires_at, attempts, cancel_requested, parent_run_id, created_at,
           updated_at, queue, priority, not_before, started_at, trace_context, seq
"""

# Wake the due parked runs of a queue, earliest first, from the
# durable_runs_waiting index; attempts and started_at are kept. The caller
# sorts the rows by not_before (row[16]) and seq.
_WAKE_PARKED_SQL: Final = """
    UPDATE durable_runs
    SET status = 'running', owner = ?, token = token + 1, lease_expires_at = ?,
        updated_at = ?
    WHERE rowid IN (SELECT rowid FROM durable_runs
                    WHERE app = ? AND queue = ? AND status = 'waiting' AND not_before <= ?
                    ORDER BY not_before LIMIT ?)
    RETURNING run_id, workflow, status, inputs, output, error, owner, token,
           lease_expires_at, attempts, cancel_requested, parent_run_id, created_at,
           updated_at, queue, priority, not_before, started_at, trace_context, seq
"""

# Park the owned run: due at once when the signal it waits for is stored.
_PARK_SQL: Final = """
    UPDATE durable_runs
    SET status = 'waiting', owner = NULL, lease_expires_at = NULL,
        queue = coalesce(queue, ?),
        not_before = CASE WHEN EXISTS (SELECT 1 FROM durable_signals
                                       WHERE app = ? AND run_id = ? AND name = ? AND idx = ?)
                          THEN ? ELSE ? END,
        updated_at = ?
    WHERE app = ? AND run_id = ? AND token = ? AND status = 'running'
"""

# A signal makes a parked run due.
_SIGNAL_WAKE_SQL: Final = """
    UPDATE durable_runs SET not_before = ?, updated_at = ?
    WHERE app = ? AND run_id = ? AND status = 'waiting'
"""

_STEPS_SQL: Final = """
    SELECT step_id, position, task, status, result, error, attempts, started_at, finished_at
    FROM durable_steps WHERE app = ? AND run_id = ?
    ORDER BY position
"""

# Placeholders are plain ``?`` bound by position, values repeated where a
# statement needs them twice: Python 3.12 warns when a sequence is bound to
# numbered (``?1``) or named placeholders, and 3.14 refuses it.

# The hot path: a new step by the owner of a run not asked to cancel, fenced
# and inserted by one statement whose row count says it all. Neither an upsert
# nor RETURNING: both cost every insert. Any other case writes nothing (an
# existing step fails it with a unique violation, which rolls back only this
# statement) and is answered by _SAVE_STEP_SQL. Parameters: _insert_params.
_INSERT_STEP_SQL: Final = """
    INSERT INTO durable_steps (app, run_id, step_id, position, task, status, result,
                               error, attempts, started_at, finished_at)
    SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?
    WHERE EXISTS (SELECT 1 FROM durable_runs
                  WHERE app = ? AND run_id = ? AND token = ? AND status = 'running'
                    AND cancel_requested = 0)
"""

# The fencing check, the first-writer-wins insert and the read of the cancel
# flag in a single statement. No row back means a fenced-out token or an
# existing step; only then is a third statement needed to tell which.
# Parameters: _insert_params, then app and run id again.
_SAVE_STEP_SQL: Final = """
    INSERT INTO durable_steps (app, run_id, step_id, position, task, status, result,
                               error, attempts, started_at, finished_at)
    SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?
    WHERE EXISTS (SELECT 1 FROM durable_runs
                  WHERE app = ? AND run_id = ? AND token = ? AND status = 'running')
    ON CONFLICT DO NOTHING
    RETURNING (SELECT cancel_requested FROM durable_runs WHERE app = ? AND run_id = ?)
"""

_SAVE_MISS_SQL: Final = """
    SELECT r.status, r.token, r.cancel_requested, s.position, s.task, s.status, s.result,
           s.error, s.attempts, s.started_at, s.finished_at
    FROM durable_runs AS r
    LEFT JOIN durable_steps AS s
      ON s.app = r.app AND s.run_id = r.run_id AND s.step_id = ?
    WHERE r.app = ? AND r.run_id = ?
"""

_RENEW_SQL: Final = """
    UPDATE durable_runs SET lease_expires_at = ?, updated_at = ?
    WHERE app = ? AND run_id = ? AND token = ? AND status = 'running'
    RETURNING cancel_requested
"""

_RELEASE_SQL: Final = """
    UPDATE durable_runs SET owner = NULL, lease_expires_at = ?, updated_at = ?
    WHERE app = ? AND run_id = ? AND token = ? AND status = 'running'
"""

_FINISH_SQL: Final = """
    UPDATE durable_runs
    SET status = ?, output = ?, error = ?, owner = NULL, lease_expires_at = NULL,
        updated_at = ?
    WHERE app = ? AND run_id = ? AND token = ? AND status = 'running'
    RETURNING workflow, status, inputs, output, error, owner, token, lease_expires_at,
           attempts, cancel_requested, parent_run_id, created_at, updated_at, queue,
           priority, not_before, started_at, trace_context
"""

# SET expressions all see the row as it was before the update.
_CANCEL_SQL: Final = """
    UPDATE durable_runs
    SET cancel_requested = CASE WHEN status = 'running' THEN 1 ELSE cancel_requested END,
        status = CASE WHEN status IN ('failed', 'queued', 'waiting') THEN 'cancelled'
                      ELSE status END,
        updated_at = CASE WHEN status IN ('running', 'failed', 'queued', 'waiting') THEN ?
                          ELSE updated_at END
    WHERE app = ? AND run_id = ?
    RETURNING workflow, status, inputs, output, error, owner, token, lease_expires_at,
           attempts, cancel_requested, parent_run_id, created_at, updated_at, queue,
           priority, not_before, started_at, trace_context
"""

_RUN_COLUMNS: Final = """run_id, workflow, status, inputs, output, error, owner, token,
    lease_expires_at, attempts, cancel_requested, parent_run_id, created_at, updated_at,
    queue, priority, not_before, started_at, trace_context"""

# The conditions list_runs may combine: constant text, each with its
# parameters; only the choice among them varies from call to call.
_LIST_CONDITIONS: Final = {
    "status": "status = ?",
    "workflow": "workflow = ?",
    "queue": "queue = ?",
    "since": "created_at >= ?",
    "until": "created_at < ?",
    "prefix_start": "run_id >= ?",
    "prefix_end": "run_id < ?",
    "after": "(created_at, run_id) < (?, ?)",
}

# A queue's queued runs split into ready and delayed at time ? (read over the
# durable_runs_queued index), and its running runs.
_QUEUE_STATS_SQL: Final = """
    SELECT queue,
           sum(CASE WHEN not_before IS NULL OR not_before <= ? THEN 1 ELSE 0 END),
           sum(CASE WHEN not_before > ? THEN 1 ELSE 0 END),
           0,
           min(CASE WHEN not_before IS NULL OR not_before <= ? THEN created_at END)
    FROM durable_runs WHERE app = ? AND status = 'queued' GROUP BY queue
    UNION ALL
    SELECT queue, 0, 0, count(*), NULL
    FROM durable_runs WHERE app = ? AND status = 'running' AND queue IS NOT NULL
    GROUP BY queue
"""

_REQUEUE_SQL: Final = """
    UPDATE durable_runs
    SET status = 'queued', queue = ?, not_before = NULL, owner = NULL, lease_expires_at = NULL,
        error = ?, cancel_requested = ?, updated_at = ?,
        seq = coalesce(seq, (SELECT coalesce(max(seq), 0) + 1 FROM durable_runs
                             WHERE seq IS NOT NULL))
    WHERE app = ? AND run_id = ?
"""


@functools.cache
def _list_sql(conditions: tuple[str, ...]) -> str:
    """The listing statement with these named conditions (keys of _LIST_CONDITIONS)."""
    where = " AND ".join(["app = ?", *(_LIST_CONDITIONS[name] for name in conditions)])
    return (
        f"SELECT {_RUN_COLUMNS} FROM durable_runs WHERE {where} "  # noqa: S608 - constants only
        "ORDER BY created_at DESC, run_id DESC LIMIT ?"
    )


# One statement, so the index is computed under the write lock it takes.
_SEND_SIGNAL_SQL: Final = """
    INSERT INTO durable_signals (app, run_id, name, idx, payload)
    SELECT ?, ?, ?, coalesce(max(idx) + 1, 0), ?
    FROM durable_signals WHERE app = ? AND run_id = ? AND name = ?
    RETURNING idx
"""

# Index 0 exists exactly when a signal of that name was ever sent: the primary
# key makes the insert the atomic first-delivery-wins test.
_SEND_SIGNAL_ONCE_SQL: Final = """
    INSERT INTO durable_signals (app, run_id, name, idx, payload) VALUES (?, ?, ?, 0, ?)
    ON CONFLICT (app, run_id, name, idx) DO NOTHING
    RETURNING idx
"""

_READ_SIGNAL_SQL: Final = """
    SELECT payload FROM durable_signals WHERE app = ? AND run_id = ? AND name = ? AND idx = ?
"""

# Signals read by one statement: 1 + 3 * 332 parameters stay within 999, the
# smallest limit SQLite builds have had (SQLITE_MAX_VARIABLE_NUMBER).
_READ_SIGNALS_CHUNK: Final = 332


@functools.cache
def _read_signals_sql(count: int) -> str:
    """The signals among ``count`` wanted (run id, name, index): a primary key lookup each."""
    wanted = ", ".join(["(?, ?, ?)"] * count)
    # Only placeholders are joined into the text; the values are bound. CROSS
    # JOIN keeps the wanted rows as the outer loop whatever the statistics say.
    return (
        f"WITH wanted (run_id, name, idx) AS (VALUES {wanted}) "  # noqa: S608
        "SELECT s.run_id, s.name, s.idx, s.payload FROM wanted AS w "
        "CROSS JOIN durable_signals AS s "
        "ON s.app = ? AND s.run_id = w.run_id AND s.name = w.name AND s.idx = w.idx"
    )


class _Write:
    """One write of a group commit: ``work(db)`` runs inside the group's transaction.

    Committed alone (a group of one, or after another write broke the group),
    work that must be atomic runs in a write transaction of its own
    (``own_transaction``); otherwise each of its statements commits by itself.
    """

    __slots__ = ("own_transaction", "work")

    def __init__(self, work: Callable[[sqlite3.Connection], Any], *, own_transaction: bool) -> None:
        self.work = work
        self.own_transaction = own_transaction


# What one write came to: its answer, or the error it raised.
_Outcome = Any


# -- functions run on the connection thread ------------------------------------


@contextlib.contextmanager
def _write_transaction(db: sqlite3.Connection) -> Iterator[None]:
    # BEGIN IMMEDIATE takes the write lock up front: a deferred transaction that
    # reads first and writes later could fail with SQLITE_BUSY on the upgrade
    # (two readers each waiting to write) without busy_timeout ever applying.
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        _rollback(db)
        raise


def _rollback(db: sqlite3.Connection) -> None:
    # Some errors (a full disk, an I/O error) already rolled the transaction back.
    if db.in_transaction:
        db.execute("ROLLBACK")


_HEADER_CHECKS = 10


def _is_busy(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return (isinstance(code, int) and code & 0xFF in (_BUSY, _LOCKED)) or "locked" in str(exc)


def _schema_version(db: sqlite3.Connection) -> int | None:
    exists = db.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'durable_schema'"
    ).fetchone()
    if exists is None:
        return None
    row = db.execute("SELECT max(version) FROM durable_schema").fetchone()
    return None if row is None or row[0] is None else int(row[0])


def _migrate(db: sqlite3.Connection, version: int) -> None:
    """Bring a schema at ``version`` up to SCHEMA_VERSION; inside a write transaction."""
    for statements in _MIGRATIONS[version - 1 :]:
        for statement in statements:
            db.execute(statement)
    db.execute("UPDATE durable_schema SET version = ?", (SCHEMA_VERSION,))


def _fetchone(db: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> Any:
    # fetchall drains the statement, so a write with RETURNING is committed on return.
    rows = db.execute(sql, params).fetchall()
    return rows[0] if rows else None


def _run_record(app: str, run_id: str, row: Sequence[Any]) -> RunRecord:
    return RunRecord(
        app=app,
        run_id=run_id,
        workflow=row[0],
        status=row[1],
        inputs=row[2],
        output=row[3],
        error=row[4],
        owner=row[5],
        token=row[6],
        lease_expires_at=row[7],
        attempts=row[8],
        cancel_requested=bool(row[9]),
        parent_run_id=row[10],
        created_at=row[11],
        updated_at=row[12],
        queue=row[13],
        priority=row[14],
        not_before=row[15],
        started_at=row[16],
        trace_context=row[17],
    )


def _step_record(step_id: str, row: Sequence[Any]) -> StepRecord:
    return StepRecord(
        step_id=step_id,
        position=row[0],
        task=row[1],
        status=row[2],
        result=row[3],
        error=row[4],
        attempts=row[5],
        started_at=row[6],
        finished_at=row[7],
    )


def _load_sync(
    db: sqlite3.Connection, app: str, run_id: str
) -> tuple[RunRecord, tuple[StepRecord, ...]] | None:
    rows = db.execute(_LOAD_SQL, (app, run_id, app, run_id)).fetchall()
    if not rows or rows[0][0] != 0:
        return None
    run = _run_record(app, run_id, rows[0][1:])
    return run, tuple(_step_record(row[1], row[2:]) for row in rows[1:])


def _claim(db: sqlite3.Connection, request: ClaimRequest) -> Claim:
    """Create, start, restart or take over the run when allowed; inside a write transaction."""
    new = request.new
    loaded = _load_sync(db, new.app, new.run_id)
    current, steps = (None, ()) if loaded is None else loaded
    decision = decide_claim(current, request, time.time())
    run = decision.run
    if decision.action is ClaimAction.CREATE:
        db.execute(
            _INSERT_RUN_SQL,
            (
                run.app,
                run.run_id,
                run.workflow,
                run.inputs,
                run.owner,
                run.lease_expires_at,
                run.parent_run_id,
                run.created_at,
                run.updated_at,
                run.started_at,
                run.trace_context,
            ),
        )
        return Claim(run, (), acquired=True)
    if not decision.acquired:
        return Claim(run, steps, acquired=False)
    if decision.drops_failed_steps:
        db.execute(
            "DELETE FROM durable_steps WHERE app = ? AND run_id = ? AND status = 'failed'",
            (run.app, run.run_id),
        )
        steps = tuple(s for s in steps if s.status != "failed")
    db.execute(
        _TAKE_RUN_SQL,
        (
            run.error,
            run.owner,
            run.token,
            run.lease_expires_at,
            run.attempts,
            int(run.cancel_requested),
            run.updated_at,
            run.started_at,
            run.app,
            run.run_id,
        ),
    )
    return Claim(run, steps, acquired=True)


def _enqueue(db: sqlite3.Connection, new: NewRun) -> tuple[RunRecord, bool]:
    """Insert the run as queued unless its id is taken; (the stored run, created)."""
    now = time.time()
    params = (
        new.app,
        new.run_id,
        new.workflow,
        new.inputs,
        new.parent_run_id,
        now,
        now,
        new.queue,
        new.priority,
        new.not_before,
        new.trace_context,
    )
    while True:
        if db.execute(_ENQUEUE_SQL, params).rowcount == 1:
            run = queued_record(new, now)
            return run, True
        row = db.execute(_GET_SQL, (new.app, new.run_id)).fetchone()
        if row is not None:
            return _run_record(new.app, new.run_id, row), False
        # The run that took the id was deleted between the two statements.


def _claim_queued(
    db: sqlite3.Connection,
    app: str,
    queues: Sequence[QueueLimits],
    owner: str,
    lease_ttl: float,
    limit: int,
) -> list[Claim]:
    """Start up to ``limit`` queued runs, queue by queue; inside a write transaction."""
    now = time.time()
    claims: list[Claim] = []
    for limits in queues:
        wanted = limit - len(claims)
        if wanted <= 0:
            break
        wanted = min(wanted, _queue_room(db, app, limits, now))
        if wanted > 0:
            wake = (owner, now + lease_ttl, now, app, limits.name, now, wanted)
            woken = _started(db, app, _WAKE_PARKED_SQL, wake)
            claims += woken
            wanted -= len(woken)
        if wanted > 0:
            start = (owner, now + lease_ttl, now, now, app, limits.name, now, wanted)
            claims += _started(db, app, _START_QUEUED_SQL, start)
    return claims


def _queue_room(db: sqlite3.Connection, app: str, limits: QueueLimits, now: float) -> int:
    """How many runs the queue may start at ``now``, from counts over its index."""
    running = started = 0
    if limits.concurrency is not None:
        # A negative LIMIT is no limit in SQLite: a cap below 0 counts nothing.
        cap = max(limits.concurrency, 0)
        running = int(db.execute(_COUNT_RUNNING_SQL, (app, limits.name, cap)).fetchone()[0])
    if limits.rate_limit is not None:
        count, window = limits.rate_limit
        params = (app, limits.name, now - window, max(count, 0))
        started = int(db.execute(_COUNT_STARTED_SQL, params).fetchone()[0])
    return room_left(limits, running, started)


def _started(db: sqlite3.Connection, app: str, sql: str, params: tuple[Any, ...]) -> list[Claim]:
    """Run _START_QUEUED_SQL or _WAKE_PARKED_SQL; the runs it started as claims, in order."""
    rows = db.execute(sql, params).fetchall()
    order = 16 if sql is _WAKE_PARKED_SQL else 15  # not_before, or priority
    # A parked run that was never enqueued (adopted, then parked) has no seq.
    rows.sort(key=lambda row: (row[order], row[19] or 0))
    return [
        Claim(_run_record(app, row[0], row[1:]), _steps(db, app, row[0]), acquired=True)
        for row in rows
    ]


def _steps(db: sqlite3.Connection, app: str, run_id: str) -> tuple[StepRecord, ...]:
    rows = db.execute(_STEPS_SQL, (app, run_id)).fetchall()
    return tuple(_step_record(row[0], row[1:]) for row in rows)


def _renew_sync(db: sqlite3.Connection, app: str, run_id: str, token: int, lease_ttl: float) -> Any:
    now = time.time()
    return _fetchone(db, _RENEW_SQL, (now + lease_ttl, now, app, run_id, token))


def _renew_many_sync(
    db: sqlite3.Connection, app: str, leases: Sequence[tuple[str, int]], lease_ttl: float
) -> dict[str, bool]:
    """Renew every lease still owned, in one transaction; run id -> cancel flag of each."""
    renewed: dict[str, bool] = {}
    with _write_transaction(db):
        now = time.time()
        lease = now + lease_ttl
        for run_id, token in leases:
            # fetchall: the statement is done before the next one or the commit.
            rows = db.execute(_RENEW_SQL, (lease, now, app, run_id, token)).fetchall()
            if rows:
                renewed[run_id] = bool(rows[0][0])
    return renewed


def _read_signals_sync(
    db: sqlite3.Connection, app: str, wanted: Sequence[tuple[str, str, int]]
) -> dict[tuple[str, str, int], str]:
    """The payloads of the wanted signals that were sent, a statement per chunk of them."""
    found: dict[tuple[str, str, int], str] = {}
    for start in range(0, len(wanted), _READ_SIGNALS_CHUNK):
        chunk = wanted[start : start + _READ_SIGNALS_CHUNK]
        params = [value for key in chunk for value in key]
        params.append(app)
        for run_id, name, index, payload in db.execute(_read_signals_sql(len(chunk)), params):
            found[run_id, name, index] = payload
    return found


def _list_sync(db: sqlite3.Connection, query: ListQuery) -> list[Any]:
    conditions, params = query.conditions()
    return db.execute(_list_sql(conditions), (query.app, *params, query.limit)).fetchall()


def _queue_stats_sync(db: sqlite3.Connection, app: str) -> list[QueueCounts]:
    now = time.time()
    rows = db.execute(_QUEUE_STATS_SQL, (now, now, now, app, app)).fetchall()
    return merge_counts(QueueCounts(*row) for row in rows)


def _requeue(
    db: sqlite3.Connection, app: str, run_id: str, queue: str, steal_from: str | None
) -> tuple[RunRecord, bool] | None:
    """Requeue the run when allowed; inside a write transaction."""
    row = db.execute(_GET_SQL, (app, run_id)).fetchone()
    if row is None:
        return None
    run = _run_record(app, run_id, row)
    now = time.time()
    requeue, drop_failed = decide_requeue(run, now, steal_from)
    if not requeue:
        return run, False
    if drop_failed:
        db.execute(
            "DELETE FROM durable_steps WHERE app = ? AND run_id = ? AND status = 'failed'",
            (app, run_id),
        )
    run = requeued_record(run, queue, now)
    params = (run.queue, run.error, int(run.cancel_requested), now, app, run_id)
    db.execute(_REQUEUE_SQL, params)
    return run, True


def _send_signal_sync(
    db: sqlite3.Connection, app: str, run_id: str, name: str, payload: str
) -> int:
    row = _fetchone(db, _SEND_SIGNAL_SQL, (app, run_id, name, payload, app, run_id, name))
    index: int = row[0]
    # After the signal is stored: a park between the two statements sees it.
    now = time.time()
    db.execute(_SIGNAL_WAKE_SQL, (now, now, app, run_id))
    return index


def _send_signal_once_sync(
    db: sqlite3.Connection, app: str, run_id: str, name: str, payload: str
) -> bool:
    if _fetchone(db, _SEND_SIGNAL_ONCE_SQL, (app, run_id, name, payload)) is None:
        return False
    # After the signal is stored, as in _send_signal_sync.
    now = time.time()
    db.execute(_SIGNAL_WAKE_SQL, (now, now, app, run_id))
    return True


def _park_sync(
    db: sqlite3.Connection,
    app: str,
    run_id: str,
    token: int,
    queue: str,
    wake_at: float | None,
    signal: tuple[str, int] | None,
) -> bool:
    """Park the run; False when ``token`` neither owns it nor parked it already."""
    now = time.time()
    name, index = signal if signal is not None else (None, None)
    params = (queue, app, run_id, name, index, now, wake_at, now, app, run_id, token)
    if db.execute(_PARK_SQL, params).rowcount == 1:
        return True
    row = db.execute(
        "SELECT status, token FROM durable_runs WHERE app = ? AND run_id = ?", (app, run_id)
    ).fetchone()
    return row is not None and row[0] == "waiting" and row[1] == token


def _release_sync(db: sqlite3.Connection, app: str, run_id: str, token: int) -> None:
    now = time.time()
    db.execute(_RELEASE_SQL, (now, now, app, run_id, token))


def _finish_sync(
    db: sqlite3.Connection,
    app: str,
    run_id: str,
    token: int,
    status: FinalStatus,
    output: str | None,
    error: str | None,
) -> Any:
    params = (status, output, error, time.time(), app, run_id, token)
    return _fetchone(db, _FINISH_SQL, params)


def _cancel_sync(db: sqlite3.Connection, app: str, run_id: str) -> Any:
    return _fetchone(db, _CANCEL_SQL, (time.time(), app, run_id))


def _insert_params(params: StepParams) -> tuple[Any, ...]:
    """The step row (app, run id, then the step's fields), then app, run id and token."""
    return params[:2] + params[3:] + params[:3]


def _save_one(db: sqlite3.Connection, params: StepParams, step: StepRecord) -> SavedStep | None:
    insert = _insert_params(params)
    try:
        if db.execute(_INSERT_STEP_SQL, insert).rowcount == 1:
            return SavedStep(step, False)
    except sqlite3.IntegrityError:
        pass  # the step exists: _SAVE_STEP_SQL reads it
    rows = db.execute(_SAVE_STEP_SQL, insert + params[:2]).fetchall()
    if rows:
        return SavedStep(step, bool(rows[0][0]))
    row = db.execute(_SAVE_MISS_SQL, (step.step_id, params[0], params[1])).fetchone()
    if row is None or row[0] != "running" or row[1] != params[2]:
        return None
    if row[3] is None:
        # Steps are deleted only when a run restarts, which changes its token,
        # so an owned run cannot lose the step that just blocked the insert.
        raise StoreError(f"step {step.step_id!r} of run {params[1]!r} vanished during save")
    return SavedStep(_step_record(step.step_id, row[3:]), bool(row[2]))


def _write_batch_sync(db: sqlite3.Connection, writes: list[_Write]) -> list[_Outcome]:
    """Commit the writes together: one transaction, one fsync; each one's outcome."""
    if len(writes) == 1:
        return [_alone(db, writes[0])]
    try:
        with _write_transaction(db):
            return [write.work(db) for write in writes]
    except Exception as exc:
        code = getattr(exc, "sqlite_errorcode", None)
        if isinstance(code, int) and code & 0xFF in _ENVIRONMENTAL:
            return [exc] * len(writes)
    # One write broke the group (the transaction was rolled back as a whole):
    # commit each on its own so that only its caller sees the error.
    return [_alone(db, write) for write in writes]


def _alone(db: sqlite3.Connection, write: _Write) -> _Outcome:
    try:
        if not write.own_transaction:
            return write.work(db)
        with _write_transaction(db):
            return write.work(db)
    except Exception as exc:
        _rollback(db)
        return exc


def _step_write(params: StepParams, step: StepRecord) -> _Write:
    # Alone, each statement of a save is its own transaction, and a writing
    # statement takes the write lock when it starts: as safe as BEGIN IMMEDIATE.
    return _Write(functools.partial(_save_one, params=params, step=step), own_transaction=False)


def _claim_write(request: ClaimRequest) -> _Write:
    return _Write(functools.partial(_claim, request=request), own_transaction=True)


def _enqueue_write(new: NewRun) -> _Write:
    # One writing statement; the read after a conflict needs no transaction.
    return _Write(functools.partial(_enqueue, new=new), own_transaction=False)


def _requeue_write(app: str, run_id: str, queue: str, steal_from: str | None) -> _Write:
    work = functools.partial(_requeue, app=app, run_id=run_id, queue=queue, steal_from=steal_from)
    return _Write(work, own_transaction=True)


def _claim_queued_write(
    app: str, queues: Sequence[QueueLimits], owner: str, lease_ttl: float, limit: int
) -> _Write:
    work = functools.partial(
        _claim_queued, app=app, queues=queues, owner=owner, lease_ttl=lease_ttl, limit=limit
    )
    # The counts and the starts in one transaction: no other claim comes between.
    return _Write(work, own_transaction=True)


def _finish_write(
    app: str, run_id: str, token: int, status: FinalStatus, output: str | None, error: str | None
) -> _Write:
    work = functools.partial(
        _finish_sync,
        app=app,
        run_id=run_id,
        token=token,
        status=status,
        output=output,
        error=error,
    )
    return _Write(work, own_transaction=False)
