"""The SQL of the PostgreSQL store's retention: deleting finished runs.

Finished runs are found through the partial index ``runs_finished``
(migration 6): a run enters it once, when it finishes, so heartbeats of
running runs (which write ``updated_at``) never touch it. The planner uses a
partial index for a parameterised query only when the query repeats the
index's predicate, so every query here repeats it word for word.
Templates use the placeholders of ``_postgres_sql.render``.
"""

from __future__ import annotations

from typing import Final

MIGRATION: Final = """
    CREATE INDEX runs_finished ON {s}.runs (app, status, updated_at)
        WHERE status IN ('completed', 'failed', 'cancelled');
"""

# The status test is part of the DELETE: a run restarted by a claim that holds
# its row lock is re-checked once that claim commits, and kept. Written
# without that predicate on purpose: a lookup by key must never be planned on the
# partial index (a scan of every finished run of the app).
DELETE_RUN = """
    DELETE FROM {s}.runs
    WHERE app = $1 AND run_id = $2 AND status NOT IN ('queued', 'running', 'waiting')
    RETURNING {run_columns}
"""

RUN_STATUS = "SELECT status FROM {s}.runs WHERE app = $1 AND run_id = $2"

DELETE_RUN_ROWS = """
    WITH steps AS (DELETE FROM {s}.steps WHERE app = $1 AND run_id = $2),
         counters AS (DELETE FROM {s}.signal_counters WHERE app = $1 AND run_id = $2)
    DELETE FROM {s}.signals WHERE app = $1 AND run_id = $2
"""

# One batch in one statement. The ids travel as arrays (``= ANY``): a lookup
# by primary key each, whatever the planner guesses of a join. SKIP LOCKED:
# workers pruning at once split the old runs between them instead of queueing
# on the same rows, and a run a claim is restarting is left alone (a row that
# changed before the lock is re-checked against the WHERE clause).
PRUNE = """
    WITH doomed AS MATERIALIZED (
        SELECT run_id FROM {s}.runs
        WHERE app = $1 AND status IN ('completed', 'failed', 'cancelled')
          AND status = ANY($2::text[]) AND updated_at < $3
        LIMIT $4
        FOR UPDATE SKIP LOCKED
    ), gone AS MATERIALIZED (
        DELETE FROM {s}.runs
        WHERE app = $1 AND run_id = ANY(ARRAY(SELECT run_id FROM doomed))
        RETURNING run_id
    ), steps AS (
        DELETE FROM {s}.steps
        WHERE app = $1 AND run_id = ANY(ARRAY(SELECT run_id FROM gone))
    ), counters AS (
        DELETE FROM {s}.signal_counters
        WHERE app = $1 AND run_id = ANY(ARRAY(SELECT run_id FROM gone))
    ), signals AS (
        DELETE FROM {s}.signals
        WHERE app = $1 AND run_id = ANY(ARRAY(SELECT run_id FROM gone))
    )
    SELECT count(*) FROM gone
"""

COUNT = """
    SELECT count(*) FROM {s}.runs
    WHERE app = $1 AND status IN ('completed', 'failed', 'cancelled')
      AND status = ANY($2::text[]) AND updated_at < $3
"""
