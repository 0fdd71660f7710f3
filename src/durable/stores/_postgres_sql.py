"""The SQL of :class:`~durable.stores.postgres.PostgresStore`: schema, migrations, statements.

Templates name the schema ``{s}``; :func:`render` substitutes the validated,
quoted schema name, the only text ever formatted into SQL.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from durable.errors import ConfigurationError
from durable.stores import _postgres_retention
from durable.stores._listing import ListQuery
from durable.stores.base import RUN_STATUSES

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")

RUN_FIELDS = (
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
    "queue",
    "priority",
    "not_before",
    # Renamed: a step's started_at travels beside the run's columns.
    "started_at AS run_started_at",
    "trace_context",
)
RUN_COLUMNS = ", ".join(RUN_FIELDS)
# Steps travel as rows, one per step beside the run's columns: plain column
# types need no per-connection type introspection, unlike arrays.
STEP_COLUMNS = (
    "s.step_id, s.position, s.task, s.status AS step_status, s.result,"
    " s.error AS step_error, s.attempts AS step_attempts, s.started_at, s.finished_at"
)

# The claim, as a function of its own: migrations 1 and 4 make it from this
# template (frozen: migration 5 replaces it with _CLAIM_FUNCTION_5). A run is
# refused (not acquired) when it belongs to another workflow or, from
# version 4 on, was created with other inputs: a conflicting call must leave
# the run untouched (a failed run keeps its failed steps).
_CLAIM_FUNCTION = """
    -- A function rather than a statement: after waiting for the run's row lock
    -- its later statements take a fresh snapshot, so the steps it returns
    -- include any step committed by the previous owner while it waited.
    @CREATE@ {s}.claim_run(
        p_app text, p_run_id text, p_workflow text, p_inputs text, p_parent text,
        p_owner text, p_ttl double precision, p_steal_from text, p_resume boolean,
        p_nonce uuid
    ) RETURNS TABLE (
        acquired boolean,
        workflow text, status text, inputs text, output text, error text, owner text,
        token bigint, lease_expires_at double precision, attempts integer,
        cancel_requested boolean, parent_run_id text, created_at double precision,
        updated_at double precision,
        step_id text, "position" integer, task text, step_status text, result text,
        step_error text, step_attempts integer, started_at double precision,
        finished_at double precision
    ) LANGUAGE plpgsql AS $fn$
    #variable_conflict use_column
    DECLARE
        cur {s}.runs%ROWTYPE;
        now_t double precision := extract(epoch FROM clock_timestamp());
        restart boolean := false;
        won boolean;
    BEGIN
        INSERT INTO {s}.runs (app, run_id, workflow, status, inputs, owner, token,
            lease_expires_at, attempts, cancel_requested, parent_run_id, created_at,
            updated_at, claim_nonce)
        VALUES (p_app, p_run_id, p_workflow, 'running', p_inputs, p_owner, 1,
            now_t + p_ttl, 1, false, p_parent, now_t, now_t, p_nonce)
        ON CONFLICT (app, run_id) DO NOTHING
        RETURNING * INTO cur;
        IF FOUND THEN
            won := true;
        ELSE
            SELECT * INTO cur FROM {s}.runs r
            WHERE r.app = p_app AND r.run_id = p_run_id FOR UPDATE;
            now_t := extract(epoch FROM clock_timestamp());
            IF cur.claim_nonce = p_nonce AND cur.status = 'running' THEN
                -- A retry of a call whose first attempt committed: it is ours.
                won := true;
                UPDATE {s}.runs r SET lease_expires_at = now_t + p_ttl, updated_at = now_t
                WHERE r.app = p_app AND r.run_id = p_run_id
                RETURNING * INTO cur;
            ELSIF @REFUSED@ THEN
                won := false;
            ELSE
                restart := cur.status = 'failed' OR (cur.status = 'cancelled' AND p_resume);
                won := restart OR (cur.status = 'running' AND (
                    coalesce(cur.lease_expires_at <= now_t, false)
                    OR coalesce(cur.owner = p_steal_from, false)));
                IF restart THEN
                    DELETE FROM {s}.steps s
                    WHERE s.app = p_app AND s.run_id = p_run_id AND s.status = 'failed';
                END IF;
                IF won THEN
                    UPDATE {s}.runs r SET
                        status = 'running',
                        error = CASE WHEN restart THEN NULL ELSE r.error END,
                        owner = p_owner,
                        token = r.token + 1,
                        lease_expires_at = now_t + p_ttl,
                        attempts = r.attempts + 1,
                        cancel_requested = CASE WHEN restart THEN false
                                                ELSE r.cancel_requested END,
                        updated_at = now_t,
                        claim_nonce = p_nonce,
                        finish_nonce = NULL
                    WHERE r.app = p_app AND r.run_id = p_run_id
                    RETURNING * INTO cur;
                END IF;
            END IF;
        END IF;
        RETURN QUERY
            SELECT won, cur.workflow, cur.status, cur.inputs, cur.output, cur.error,
                   cur.owner, cur.token, cur.lease_expires_at, cur.attempts,
                   cur.cancel_requested, cur.parent_run_id, cur.created_at, cur.updated_at,
                   {step_columns}
            FROM (SELECT 1) AS one
            LEFT JOIN {s}.steps s ON s.app = p_app AND s.run_id = p_run_id
            ORDER BY s.position, s.step_id;
    END
    $fn$;
"""


def _claim_function(create: str, refused: str) -> str:
    return _CLAIM_FUNCTION.replace("@CREATE@", create).replace("@REFUSED@", refused)


# The columns of a run and of a step, as both functions of migration 5 return them.
_RUN_OUT_5 = """
        workflow text, status text, inputs text, output text, error text, owner text,
        token bigint, lease_expires_at double precision, attempts integer,
        cancel_requested boolean, parent_run_id text, created_at double precision,
        updated_at double precision, queue text, priority bigint,
        not_before double precision, run_started_at double precision,
        step_id text, "position" integer, task text, step_status text, result text,
        step_error text, step_attempts integer, started_at double precision,
        finished_at double precision
"""

# claim_run from version 5 on: a queued run is started (its queue kept), and
# every run it starts or creates records started_at. Its result has the
# queue columns, so it replaces the previous version rather than redefining it.
_CLAIM_FUNCTION_5 = """
    DROP FUNCTION {s}.claim_run(text, text, text, text, text, text, double precision,
                                text, boolean, uuid);
    CREATE FUNCTION {s}.claim_run(
        p_app text, p_run_id text, p_workflow text, p_inputs text, p_parent text,
        p_owner text, p_ttl double precision, p_steal_from text, p_resume boolean,
        p_nonce uuid
    ) RETURNS TABLE (acquired boolean, @RUN_OUT@) LANGUAGE plpgsql AS $fn$
    #variable_conflict use_column
    DECLARE
        cur {s}.runs%ROWTYPE;
        now_t double precision := extract(epoch FROM clock_timestamp());
        restart boolean := false;
        start boolean := false;
        won boolean;
    BEGIN
        INSERT INTO {s}.runs (app, run_id, workflow, status, inputs, owner, token,
            lease_expires_at, attempts, cancel_requested, parent_run_id, created_at,
            updated_at, claim_nonce, started_at)
        VALUES (p_app, p_run_id, p_workflow, 'running', p_inputs, p_owner, 1,
            now_t + p_ttl, 1, false, p_parent, now_t, now_t, p_nonce, now_t)
        ON CONFLICT (app, run_id) DO NOTHING
        RETURNING * INTO cur;
        IF FOUND THEN
            won := true;
        ELSE
            SELECT * INTO cur FROM {s}.runs r
            WHERE r.app = p_app AND r.run_id = p_run_id FOR UPDATE;
            now_t := extract(epoch FROM clock_timestamp());
            IF cur.claim_nonce = p_nonce AND cur.status = 'running' THEN
                -- A retry of a call whose first attempt committed: it is ours.
                won := true;
                UPDATE {s}.runs r SET lease_expires_at = now_t + p_ttl, updated_at = now_t
                WHERE r.app = p_app AND r.run_id = p_run_id
                RETURNING * INTO cur;
            ELSIF cur.workflow <> p_workflow OR cur.inputs <> p_inputs THEN
                won := false;
            ELSE
                start := cur.status = 'queued';
                restart := cur.status = 'failed' OR (cur.status = 'cancelled' AND p_resume);
                won := start OR restart OR (cur.status = 'running' AND (
                    coalesce(cur.lease_expires_at <= now_t, false)
                    OR coalesce(cur.owner = p_steal_from, false)));
                IF restart THEN
                    DELETE FROM {s}.steps s
                    WHERE s.app = p_app AND s.run_id = p_run_id AND s.status = 'failed';
                END IF;
                IF won THEN
                    UPDATE {s}.runs r SET
                        status = 'running',
                        error = CASE WHEN restart THEN NULL ELSE r.error END,
                        owner = p_owner,
                        token = r.token + 1,
                        lease_expires_at = now_t + p_ttl,
                        attempts = r.attempts + 1,
                        cancel_requested = CASE WHEN restart THEN false
                                                ELSE r.cancel_requested END,
                        updated_at = now_t,
                        started_at = CASE WHEN start THEN now_t ELSE r.started_at END,
                        claim_nonce = p_nonce,
                        finish_nonce = NULL
                    WHERE r.app = p_app AND r.run_id = p_run_id
                    RETURNING * INTO cur;
                END IF;
            END IF;
        END IF;
        RETURN QUERY
            SELECT won, cur.workflow, cur.status, cur.inputs, cur.output, cur.error,
                   cur.owner, cur.token, cur.lease_expires_at, cur.attempts,
                   cur.cancel_requested, cur.parent_run_id, cur.created_at, cur.updated_at,
                   cur.queue, cur.priority, cur.not_before, cur.started_at,
                   {step_columns}
            FROM (SELECT 1) AS one
            LEFT JOIN {s}.steps s ON s.app = p_app AND s.run_id = p_run_id
            ORDER BY s.position, s.step_id;
    END
    $fn$;
""".replace("@RUN_OUT@", _RUN_OUT_5)

# Starts up to p_limit queued runs of the app's queues, in the order given;
# the i-th queue's caps are p_concurrency[i] and p_rate_count[i] starts per
# p_rate_window[i] seconds (NULL: none). Claimers of a queue are serialized
# by a transaction-level advisory lock on (schema, app, queue), taken for every
# queue of the call up front in key order (no deadlock between calls naming
# queues in other orders): each then counts, on a fresh snapshot, the runs
# its predecessors committed, so no cap is ever exceeded. Runs locked by
# another transaction (a claim_run, a cancel) are skipped, not waited for.
#
# p_retry says the store sent this call before and lost the connection: if
# that attempt committed, its runs are running with claim_nonce = p_nonce,
# and the retry answers them (lease renewed) instead of starting others.
#
# Every run is updated and read back by its primary key, one at a time: a
# join or an ``= ANY (array)`` could get a cached generic plan reading every
# run of the app instead, which statistics of small tables make look cheap.
_CLAIM_QUEUED_FUNCTION = """
    CREATE FUNCTION {s}.claim_queued(
        p_app text, p_queues text[], p_concurrency bigint[], p_rate_count bigint[],
        p_rate_window double precision[], p_owner text, p_ttl double precision,
        p_limit bigint, p_nonce uuid, p_retry boolean
    ) RETURNS TABLE (run_id text, @RUN_OUT@) LANGUAGE plpgsql AS $fn$
    #variable_conflict use_column
    DECLARE
        taken text[] := '{}';
        queues integer := coalesce(array_length(p_queues, 1), 0);
        lock_key bigint;
        room bigint;
        picked text;
        now_t double precision := extract(epoch FROM clock_timestamp());
    BEGIN
        IF p_retry THEN
            FOR i IN 1 .. queues LOOP
                FOR picked IN
                    SELECT r.run_id FROM {s}.runs r
                    WHERE r.app = p_app AND r.queue = p_queues[i] AND r.status = 'running'
                      AND r.claim_nonce = p_nonce AND NOT r.run_id = ANY (taken)
                    ORDER BY r.priority, r.seq
                LOOP
                    UPDATE {s}.runs r SET lease_expires_at = now_t + p_ttl, updated_at = now_t
                    WHERE r.app = p_app AND r.run_id = picked;
                    taken := taken || picked;
                END LOOP;
            END LOOP;
            IF cardinality(taken) > 0 THEN
                queues := 0;  -- the first attempt committed: answer its runs
            END IF;
        END IF;
        FOR lock_key IN
            SELECT DISTINCT hashtextextended(q, hashtextextended(p_app,
                                             hashtextextended('{s}', 0)))
            FROM unnest(p_queues[1:queues]) AS q ORDER BY 1
        LOOP
            PERFORM pg_advisory_xact_lock(lock_key);
        END LOOP;
        FOR i IN 1 .. queues LOOP
            EXIT WHEN cardinality(taken) >= p_limit;
            now_t := extract(epoch FROM clock_timestamp());
            room := p_limit - cardinality(taken);
            IF p_concurrency[i] IS NOT NULL THEN
                SELECT least(room, p_concurrency[i] - count(*)) INTO room FROM {s}.runs r
                WHERE r.app = p_app AND r.queue = p_queues[i] AND r.status = 'running';
            END IF;
            IF p_rate_count[i] IS NOT NULL THEN
                SELECT least(room, p_rate_count[i] - count(*)) INTO room FROM {s}.runs r
                WHERE r.app = p_app AND r.queue = p_queues[i]
                  AND r.started_at > now_t - p_rate_window[i];
            END IF;
            CONTINUE WHEN room <= 0;
            FOR picked IN
                SELECT r.run_id FROM {s}.runs r
                WHERE r.app = p_app AND r.queue = p_queues[i] AND r.status = 'queued'
                  AND (r.not_before IS NULL OR r.not_before <= now_t)
                ORDER BY r.priority, r.seq
                LIMIT room
                FOR UPDATE SKIP LOCKED
            LOOP
                UPDATE {s}.runs r SET
                    status = 'running', owner = p_owner, token = r.token + 1,
                    attempts = r.attempts + 1, lease_expires_at = now_t + p_ttl,
                    started_at = now_t, updated_at = now_t,
                    claim_nonce = p_nonce, finish_nonce = NULL
                WHERE r.app = p_app AND r.run_id = picked;
                taken := taken || picked;
            END LOOP;
        END LOOP;
        RETURN QUERY
            SELECT t.run_id, r.workflow, r.status, r.inputs, r.output, r.error, r.owner,
                   r.token, r.lease_expires_at, r.attempts, r.cancel_requested,
                   r.parent_run_id, r.created_at, r.updated_at, r.queue, r.priority,
                   r.not_before, r.started_at, {step_columns}
            FROM unnest(taken) WITH ORDINALITY AS t(run_id, n)
            -- OFFSET 0: a probe per run, parameterized by its id.
            CROSS JOIN LATERAL (
                SELECT * FROM {s}.runs r1
                WHERE r1.app = p_app AND r1.run_id = t.run_id OFFSET 0
            ) r
            LEFT JOIN LATERAL (
                SELECT * FROM {s}.steps s1
                WHERE s1.app = p_app AND s1.run_id = t.run_id OFFSET 0
            ) s ON true
            ORDER BY t.n, s.position, s.step_id;
    END
    $fn$;
""".replace("@RUN_OUT@", _RUN_OUT_5)


_WAKE_ANCHOR = """            FOR picked IN
                SELECT r.run_id FROM {s}.runs r
                WHERE r.app = p_app AND r.queue = p_queues[i] AND r.status = 'queued'
"""
_WAKE_LOOP = """            -- Due parked runs first, earliest wake first: they were started
            -- already. A wake is no new start (attempts and started_at kept).
            FOR picked IN
                SELECT r.run_id FROM {s}.runs r
                WHERE r.app = p_app AND r.queue = p_queues[i] AND r.status = 'waiting'
                  AND r.not_before <= now_t
                ORDER BY r.not_before
                LIMIT room
                FOR UPDATE SKIP LOCKED
            LOOP
                UPDATE {s}.runs r SET
                    status = 'running', owner = p_owner, token = r.token + 1,
                    lease_expires_at = now_t + p_ttl, updated_at = now_t,
                    claim_nonce = p_nonce, finish_nonce = NULL
                WHERE r.app = p_app AND r.run_id = picked;
                taken := taken || picked;
                room := room - 1;
            END LOOP;
            CONTINUE WHEN room <= 0;
"""

# claim_queued from version 6 on: due parked runs of a queue are woken before
# its queued runs start, within the same caps (the version 5 text with that
# loop added, so the two cannot drift apart elsewhere).
_CLAIM_QUEUED_FUNCTION_6 = _CLAIM_QUEUED_FUNCTION.replace(
    "CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1
).replace(_WAKE_ANCHOR, _WAKE_LOOP + _WAKE_ANCHOR, 1)

# Parks the run p_token owns: waiting, unowned, due at p_wake (NULL: only a
# signal wakes it). The run's row is locked first and the signal looked for
# afterwards, in a statement of its own (so a fresh snapshot): SEND_SIGNAL
# locks the row too, so either it commits first and the signal is seen here,
# or it waits for this park and finds the run waiting. A park whose first
# attempt committed answers true on its retry (same token, waiting).
_PARK_FUNCTION = """
    CREATE FUNCTION {s}.park_run(
        p_app text, p_run_id text, p_token bigint, p_queue text, p_wake double precision,
        p_signal text, p_index bigint, p_channel text
    ) RETURNS boolean LANGUAGE plpgsql AS $fn$
    #variable_conflict use_column
    DECLARE
        cur_status text;
        due boolean;
        now_t double precision;
    BEGIN
        SELECT r.status INTO cur_status FROM {s}.runs r
        WHERE r.app = p_app AND r.run_id = p_run_id AND r.token = p_token FOR UPDATE;
        IF cur_status IS NULL OR cur_status NOT IN ('running', 'waiting') THEN
            RETURN false;
        END IF;
        IF cur_status = 'waiting' THEN
            RETURN true;
        END IF;
        now_t := extract(epoch FROM clock_timestamp());
        due := p_signal IS NOT NULL AND EXISTS (
            SELECT 1 FROM {s}.signals g
            WHERE g.app = p_app AND g.run_id = p_run_id AND g.name = p_signal
              AND g.idx = p_index);
        UPDATE {s}.runs r SET
            status = 'waiting', owner = NULL, lease_expires_at = NULL,
            queue = coalesce(r.queue, p_queue),
            not_before = CASE WHEN due THEN now_t ELSE p_wake END,
            updated_at = now_t
        WHERE r.app = p_app AND r.run_id = p_run_id;
        -- Its slot is free, and it may be due at once: workers look.
        PERFORM pg_notify(p_channel, p_app);
        RETURN true;
    END
    $fn$;
"""


def _edited(template: str, *edits: tuple[str, str]) -> str:
    """``template`` with each (old, new) edit made; each old text must occur exactly once."""
    for old, new in edits:
        if template.count(old) != 1:
            raise AssertionError(f"SQL edit does not apply once: {old!r}")
        template = template.replace(old, new)
    return template


# Version 9: a run keeps the trace context an observer gave it when it was
# created (durable.engine.observe). Both claim functions return it; claim_run
# takes it as an 11th argument. Made from the newest definitions (claim_run
# of version 5; claim_queued of version 8, _CLAIM_QUEUED_FUNCTION_6, with its
# wake of parked runs), with only these edits.
_CLAIM_FUNCTION_9 = _edited(
    _CLAIM_FUNCTION_5,
    (
        "p_nonce uuid\n    ) RETURNS TABLE",
        "p_nonce uuid, p_trace text DEFAULT NULL\n    ) RETURNS TABLE",
    ),
    (
        "not_before double precision, run_started_at double precision,",
        "not_before double precision, run_started_at double precision, trace_context text,",
    ),
    ("updated_at, claim_nonce, started_at)", "updated_at, claim_nonce, started_at, trace_context)"),
    ("now_t, now_t, p_nonce, now_t)", "now_t, now_t, p_nonce, now_t, p_trace)"),
    (
        "cur.queue, cur.priority, cur.not_before, cur.started_at,",
        "cur.queue, cur.priority, cur.not_before, cur.started_at, cur.trace_context,",
    ),
)

_CLAIM_QUEUED_FUNCTION_9 = _edited(
    _CLAIM_QUEUED_FUNCTION_6,
    (
        "    CREATE OR REPLACE FUNCTION {s}.claim_queued(",
        "    DROP FUNCTION {s}.claim_queued(text, text[], bigint[], bigint[], double precision[],\n"
        "                                   text, double precision, bigint, uuid, boolean);\n"
        "    CREATE FUNCTION {s}.claim_queued(",
    ),
    (
        "not_before double precision, run_started_at double precision,",
        "not_before double precision, run_started_at double precision, trace_context text,",
    ),
    (
        "r.not_before, r.started_at, {step_columns}",
        "r.not_before, r.started_at, r.trace_context, {step_columns}",
    ),
)

# Each entry upgrades the schema by one version; never edit a released entry.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE {s}.runs (
        app text NOT NULL,
        run_id text NOT NULL,
        workflow text NOT NULL,
        status text NOT NULL
            CHECK (status IN ('running', 'completed', 'failed', 'cancelled')),
        inputs text NOT NULL,
        output text,
        error text,
        owner text,
        token bigint NOT NULL,
        lease_expires_at double precision,
        attempts integer NOT NULL,
        cancel_requested boolean NOT NULL,
        parent_run_id text,
        created_at double precision NOT NULL,
        updated_at double precision NOT NULL,
        seq bigint GENERATED ALWAYS AS IDENTITY,
        claim_nonce uuid,
        finish_nonce uuid,
        PRIMARY KEY (app, run_id)
    );
    CREATE INDEX runs_newest ON {s}.runs (app, created_at DESC, seq DESC);
    CREATE TABLE {s}.steps (
        app text NOT NULL,
        run_id text NOT NULL,
        step_id text NOT NULL,
        position integer NOT NULL,
        task text NOT NULL,
        status text NOT NULL CHECK (status IN ('completed', 'failed')),
        result text,
        error text,
        attempts integer NOT NULL,
        started_at double precision NOT NULL,
        finished_at double precision NOT NULL,
        PRIMARY KEY (app, run_id, step_id)
    );
    CREATE TABLE {s}.signal_counters (
        app text NOT NULL,
        run_id text NOT NULL,
        name text NOT NULL,
        next bigint NOT NULL,
        PRIMARY KEY (app, run_id, name)
    );
    CREATE TABLE {s}.signals (
        app text NOT NULL,
        run_id text NOT NULL,
        name text NOT NULL,
        idx bigint NOT NULL,
        payload text NOT NULL,
        nonce uuid NOT NULL,
        PRIMARY KEY (app, run_id, name, idx)
    );
"""
    + _claim_function("CREATE FUNCTION", "cur.workflow <> p_workflow")
    + """
    """,
    # 2: the store checks a step's status before writing it. As a CHECK
    # constraint it cost every insert a parse and plan of the constraint's
    # expression, which PostgreSQL rebuilds for each statement.
    """
    ALTER TABLE {s}.steps DROP CONSTRAINT IF EXISTS steps_status_check;
    """,
    # 3: the listing index can no longer serve a lookup by key. On (app, ...),
    # it matched ``app = $1`` as well as the primary key did, and without
    # table statistics (autovacuum off, new tables) the cached generic plan of
    # a lookup by (app, run_id), the fencing of every step save among them,
    # could pick it: a scan of every run of the app. In the "C" collation,
    # only a condition on ``app COLLATE "C"`` (LIST_RUNS) can use it.
    """
    DROP INDEX {s}.runs_newest;
    CREATE INDEX runs_newest ON {s}.runs (app COLLATE "C", created_at DESC, seq DESC);
    """,
    # 4: a run called again with other inputs is not handed over.
    _claim_function(
        "CREATE OR REPLACE FUNCTION", "cur.workflow <> p_workflow OR cur.inputs <> p_inputs"
    ),
    # 5: queued runs. FIFO within a priority follows seq, the identity every
    # run has had since version 1. The partial indexes keep a claim's reads to
    # the queue's own entries: its eligible runs in claim order, its running
    # runs (concurrency) and its recent starts (rate limit). Their predicates
    # let each serve its own statement only (whatever the statistics, a count
    # of running runs cannot read a queue's whole history instead), and no
    # lookup by key. Adding the columns rewrites nothing (no default, or a
    # constant one).
    """
    ALTER TABLE {s}.runs
        ADD COLUMN queue text,
        ADD COLUMN priority bigint NOT NULL DEFAULT 0,
        ADD COLUMN not_before double precision,
        ADD COLUMN started_at double precision,
        ADD COLUMN enqueue_nonce uuid,
        DROP CONSTRAINT IF EXISTS runs_status_check,
        ADD CONSTRAINT runs_status_check
            CHECK (status IN ('queued', 'running', 'completed', 'failed', 'cancelled'));
    CREATE INDEX runs_queued ON {s}.runs (app, queue, priority, seq)
        WHERE status = 'queued';
    CREATE INDEX runs_queue_running ON {s}.runs (app, queue)
        WHERE status = 'running' AND queue IS NOT NULL;
    CREATE INDEX runs_queue_started ON {s}.runs (app, queue, started_at)
        WHERE queue IS NOT NULL AND started_at IS NOT NULL;
"""
    + _CLAIM_FUNCTION_5
    + _CLAIM_QUEUED_FUNCTION,
    # 6: finished runs by status and finish time, for pruning.
    _postgres_retention.MIGRATION,
    # 7: listing at scale. Each filter of list_runs reads an index in listing
    # order (created_at, then run_id in the "C" collation: a total order, so a
    # keyset page starts exactly where the last one ended), and an id prefix
    # is a range of runs_by_id. All lead with ``app COLLATE "C"`` like
    # runs_newest, which they replace, and compare text in "C" only: no
    # statement but a listing can pick them (a generic plan of a lookup by key
    # filtering on ``status = 'running'`` would otherwise scan runs_by_status).
    """
    DROP INDEX {s}.runs_newest;
    CREATE INDEX runs_listed
        ON {s}.runs (app COLLATE "C", created_at DESC, run_id COLLATE "C" DESC);
    CREATE INDEX runs_by_status
        ON {s}.runs (app COLLATE "C", status COLLATE "C", created_at DESC, run_id COLLATE "C" DESC);
    CREATE INDEX runs_by_workflow
        ON {s}.runs (app COLLATE "C", workflow COLLATE "C", created_at DESC,
                     run_id COLLATE "C" DESC);
    CREATE INDEX runs_by_queue
        ON {s}.runs (app COLLATE "C", queue COLLATE "C", created_at DESC, run_id COLLATE "C" DESC)
        WHERE queue IS NOT NULL;
    CREATE INDEX runs_by_id ON {s}.runs (app COLLATE "C", run_id COLLATE "C");
    """,
    # 8: parked runs (status 'waiting'), woken by claim_queued in wake time
    # order from their own partial index; park_run parks one.
    """
    ALTER TABLE {s}.runs
        DROP CONSTRAINT IF EXISTS runs_status_check,
        ADD CONSTRAINT runs_status_check
            CHECK (status IN ('queued', 'running', 'completed', 'failed', 'cancelled',
                              'waiting'));
    CREATE INDEX runs_waiting ON {s}.runs (app, queue, not_before)
        WHERE status = 'waiting';
"""
    + _CLAIM_QUEUED_FUNCTION_6
    + _PARK_FUNCTION,
    # 9: the trace context of a run (see _CLAIM_FUNCTION_9).
    "ALTER TABLE {s}.runs ADD COLUMN trace_context text;"
    + _CLAIM_FUNCTION_9
    + _CLAIM_QUEUED_FUNCTION_9,
)

VERSION_TABLE = """
    CREATE TABLE IF NOT EXISTS {s}.schema_version (
        singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
        version integer NOT NULL
    )
"""

CLAIM = "SELECT * FROM {s}.claim_run($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"

PARK = "SELECT {s}.park_run($1, $2, $3, $4, $5, $6, $7, $8) AS parked"

# The caps travel as text[], as in SAVE_STEPS: unlike bigint[] or float8[],
# text[] needs no per-connection type introspection.
CLAIM_QUEUED = """
    SELECT * FROM {s}.claim_queued($1, $2::text[], $3::text[]::bigint[], $4::text[]::bigint[],
                                   $5::text[]::double precision[], $6, $7, $8, $9, $10)
"""

# A new queued run, or (created false) the run already under that id. The
# nonce tells a retry whose first attempt committed its own run: created
# still. A run inserted by a transaction that committed while this one waited
# on it is invisible to this statement's snapshot, which then returns no row:
# ENQUEUED, a statement of its own, reads it.
#
# A new run also notifies channel $10 with the app name: the notification is
# delivered when the insert commits, and wakes the idle workers of the app.
ENQUEUE = """
    WITH ins AS (
        INSERT INTO {s}.runs (app, run_id, workflow, status, inputs, token, attempts,
                              cancel_requested, parent_run_id, created_at, updated_at,
                              queue, priority, not_before, enqueue_nonce, trace_context)
        VALUES ($1, $2, $3, 'queued', $4, 0, 0, false, $5, extract(epoch FROM now()),
                extract(epoch FROM now()), $6, $7, $8, $9, $11)
        ON CONFLICT (app, run_id) DO NOTHING
        RETURNING {run_columns}
    )
    SELECT true AS created, ins.* FROM ins CROSS JOIN pg_notify($10, $1)
    UNION ALL
    SELECT coalesce(enqueue_nonce = $9, false), {run_columns} FROM {s}.runs
    WHERE app = $1 AND run_id = $2 AND NOT EXISTS (SELECT 1 FROM ins)
"""

ENQUEUED = """
    SELECT coalesce(enqueue_nonce = $3, false) AS created, {run_columns} FROM {s}.runs
    WHERE app = $1 AND run_id = $2
"""

# FOR SHARE makes the token check and the insert one atomic step: a concurrent
# claim_run waits for this statement, or this statement re-checks the token
# on the claim's committed row version.
#
# The common case, a new step by the owner of a run not asked to cancel, is a
# plain INSERT whose command tag ("INSERT 0 1") says it all: no row to return
# and decode. Any other case writes nothing and is answered by SAVE_STEP, run
# next: a lost lease, a cancel request (SAVE_STEP then writes the step and
# reports the flag), or a step that exists already, which fails this statement
# with a unique violation. Cheaper for the common case than ON CONFLICT, whose
# speculative insertion costs a pre-check, a lock and a second WAL record on
# every insert.
INSERT_STEP = """
    INSERT INTO {s}.steps (app, run_id, step_id, position, task, status, result,
                           error, attempts, started_at, finished_at)
    SELECT $1, $2, $4, $5, $6, $7, $8, $9, $10, $11, $12 FROM {s}.runs
    WHERE app = $1 AND run_id = $2 AND token = $3 AND status = 'running'
      AND NOT cancel_requested
    FOR SHARE
"""

SAVE_STEP = """
    WITH run AS (
        SELECT cancel_requested FROM {s}.runs
        WHERE app = $1 AND run_id = $2 AND token = $3 AND status = 'running'
        FOR SHARE
    ), ins AS (
        INSERT INTO {s}.steps (app, run_id, step_id, position, task, status, result,
                               error, attempts, started_at, finished_at)
        SELECT $1, $2, $4, $5, $6, $7, $8, $9, $10, $11, $12 FROM run
        ON CONFLICT (app, run_id, step_id) DO NOTHING
        RETURNING 1
    )
    SELECT run.cancel_requested, EXISTS (SELECT 1 FROM ins) AS inserted,
           s.position, s.task, s.status, s.result, s.error, s.attempts,
           s.started_at, s.finished_at
    FROM run LEFT JOIN {s}.steps s ON s.app = $1 AND s.run_id = $2 AND s.step_id = $4
"""

# Several saves in one statement (group commit), one result row per input row
# in input order. Every value travels as text (text[] needs no per-connection
# type introspection) and is cast here; floats arrive as their shortest repr,
# which float8 input reads back exactly. The batch never holds two rows for
# one step id. Runs are locked as in SAVE_STEP, and the token is compared with
# the locked, current row version.
SAVE_STEPS = """
    WITH input AS (
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                             $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
                             $11::text[], $12::text[])
            WITH ORDINALITY AS i(app, run_id, token, step_id, position, task, status,
                                 result, error, attempts, started_at, finished_at, n)
    ), run AS (
        SELECT r.app, r.run_id, r.token, r.cancel_requested FROM {s}.runs r
        WHERE (r.app, r.run_id) IN (SELECT app, run_id FROM input) AND r.status = 'running'
        FOR SHARE OF r
    ), owned AS (
        SELECT i.*, run.cancel_requested FROM input i
        JOIN run ON run.app = i.app AND run.run_id = i.run_id AND run.token = i.token::bigint
    ), ins AS (
        INSERT INTO {s}.steps (app, run_id, step_id, position, task, status, result,
                               error, attempts, started_at, finished_at)
        SELECT app, run_id, step_id, position::integer, task, status, result, error,
               attempts::integer, started_at::double precision, finished_at::double precision
        FROM owned
        ON CONFLICT (app, run_id, step_id) DO NOTHING
        RETURNING app, run_id, step_id
    )
    SELECT o.n IS NOT NULL AS owned, o.cancel_requested, ins.step_id IS NOT NULL AS inserted,
           s.position, s.task, s.status, s.result, s.error, s.attempts,
           s.started_at, s.finished_at
    FROM input i
    LEFT JOIN owned o ON o.n = i.n
    LEFT JOIN ins ON ins.app = i.app AND ins.run_id = i.run_id AND ins.step_id = i.step_id
    LEFT JOIN {s}.steps s ON s.app = i.app AND s.run_id = i.run_id AND s.step_id = i.step_id
    ORDER BY i.n
"""

GET_STEP = """
    SELECT position, task, status, result, error, attempts, started_at, finished_at
    FROM {s}.steps WHERE app = $1 AND run_id = $2 AND step_id = $3
"""

RENEW = """
    UPDATE {s}.runs SET lease_expires_at = extract(epoch FROM now()) + $4,
                        updated_at = extract(epoch FROM now())
    WHERE app = $1 AND run_id = $2 AND token = $3 AND status = 'running'
    RETURNING cancel_requested
"""

# Every lease of a heartbeat in one statement; a run missing from the answer
# was not renewed (another token owns it, or it finished).
RENEW_MANY = """
    UPDATE {s}.runs AS r SET lease_expires_at = extract(epoch FROM now()) + $4,
                             updated_at = extract(epoch FROM now())
    FROM unnest($2::text[], $3::bigint[]) AS l(run_id, token)
    WHERE r.app = $1 AND r.run_id = l.run_id AND r.token = l.token AND r.status = 'running'
    RETURNING r.run_id, r.cancel_requested
"""

RELEASE = """
    UPDATE {s}.runs SET owner = NULL, lease_expires_at = extract(epoch FROM now()),
                        updated_at = extract(epoch FROM now())
    WHERE app = $1 AND run_id = $2 AND token = $3 AND status = 'running'
"""

# A run of a queue frees a slot of it: channel $8 is notified (on commit) with
# the queue's slot topic (_wake.slot_topic), which wakes the idle workers of
# the queue if it is capped. A run without a queue, or of one of the queues
# $9 that this process's claims found uncapped, sends nothing (CASE evaluates
# only the branch taken).
FINISH = """
    UPDATE {s}.runs SET status = $4, output = $5, error = $6, owner = NULL,
                        lease_expires_at = NULL, updated_at = extract(epoch FROM now()),
                        finish_nonce = $7
    WHERE app = $1 AND run_id = $2 AND token = $3 AND status = 'running'
    RETURNING {run_columns},
              CASE WHEN queue IS NOT NULL AND NOT queue = ANY ($9::text[])
                   THEN pg_notify($8, $1 || E'\\x1fslot\\x1f' || queue)::text END AS notified
"""

# Run when FINISH changed nothing: recognises a retried call whose first
# attempt committed, even one that committed while FINISH waited for it (a
# statement of its own, so it sees that commit).
FINISHED = """
    SELECT {run_columns} FROM {s}.runs
    WHERE app = $1 AND run_id = $2 AND token = $3 AND finish_nonce = $4
"""

# A queued run is cancelled at once, like a failed one: nobody executes it.
CANCEL = """
    UPDATE {s}.runs SET
        cancel_requested = cancel_requested OR status = 'running',
        status = CASE WHEN status IN ('failed', 'queued', 'waiting') THEN 'cancelled'
                      ELSE status END,
        updated_at = CASE WHEN status IN ('running', 'failed', 'queued', 'waiting')
                          THEN extract(epoch FROM now()) ELSE updated_at END
    WHERE app = $1 AND run_id = $2
    RETURNING {run_columns}
"""

GET_RUN = "SELECT {run_columns} FROM {s}.runs WHERE app = $1 AND run_id = $2"

LOAD_RUN = """
    SELECT {run_columns_r}, {step_columns}
    FROM {s}.runs r LEFT JOIN {s}.steps s ON s.app = r.app AND s.run_id = r.run_id
    WHERE r.app = $1 AND r.run_id = $2
    ORDER BY s.position, s.step_id
"""

# The conditions list_runs may combine, ``{}`` standing for the parameter
# numbers; only the choice among these constants varies. Text compares in
# "C", as the listing indexes do (equality is bytewise in any deterministic
# collation, so ``app COLLATE "C" = $1`` keeps the rows ``app = $1`` does).
# ``after`` bounds created_at on its own first, which the index seeks to;
# the run id only breaks ties.
LIST_CONDITIONS = {
    "status": 'status COLLATE "C" = ${}',
    "workflow": 'workflow COLLATE "C" = ${}',
    "queue": 'queue COLLATE "C" = ${}',
    "since": "created_at >= ${}",
    "until": "created_at < ${}",
    "prefix_start": 'run_id COLLATE "C" >= ${}',
    "prefix_end": 'run_id COLLATE "C" < ${}',
    "after": 'created_at <= ${0} AND (created_at < ${0} OR run_id COLLATE "C" < ${1})',
}

LIST_RUNS = """
    SELECT {run_columns}, run_id FROM {s}.runs
    WHERE app COLLATE "C" = $1 @CONDITIONS@
    ORDER BY created_at DESC, run_id COLLATE "C" DESC
    LIMIT @LIMIT@
"""


# An id prefix selects its runs first, over runs_by_id, then sorts them. As a
# plain LIMIT query, a generic plan (which cannot tell how narrow the prefix
# is) reads runs_listed in order instead, testing every run of the app.
LIST_RUNS_BY_PREFIX = """
    WITH matched AS MATERIALIZED (
        SELECT {run_columns}, run_id FROM {s}.runs
        WHERE app COLLATE "C" = $1 @CONDITIONS@
    )
    SELECT * FROM matched
    ORDER BY created_at DESC, run_id COLLATE "C" DESC
    LIMIT @LIMIT@
"""


# A status written into the statement rather than passed: the plan PostgreSQL
# caches for a prepared statement after a few runs is planned without the
# parameters' values, for a status matching a quarter of the runs or so. On a
# large store it then walks runs_listed for a page of failed or running runs,
# testing every finished run on the way. With the status in the text, each
# status has its own cached plan, costed from its own frequency.
LIST_CONDITIONS.update(
    {f"status={status}": f"status COLLATE \"C\" = '{status}'" for status in RUN_STATUSES}
)


def list_runs_statement(query: ListQuery) -> tuple[str, tuple[Any, ...]]:
    """The LIST_RUNS template for ``query`` and its parameters after the app."""
    conditions, params = query.conditions()
    if query.status in RUN_STATUSES:
        # ``status`` always comes first, with one parameter.
        conditions = (f"status={query.status}", *conditions[1:])
        params = params[1:]
    return list_runs_sql(conditions), (*params, query.limit)


def list_runs_sql(conditions: tuple[str, ...]) -> str:
    """The LIST_RUNS template with these named conditions, then the limit, as parameters."""
    parts: list[str] = []
    number = 2
    for name in conditions:
        count = 2 if name == "after" else 0 if name.startswith("status=") else 1
        if count == 0:
            parts.append(LIST_CONDITIONS[name])
        elif count == 1:
            parts.append(LIST_CONDITIONS[name].format(number))
        else:
            parts.append(LIST_CONDITIONS[name].format(number, number + 1))
        number += count
    extra = "".join(f" AND {part}" for part in parts)
    template = LIST_RUNS_BY_PREFIX if "prefix_start" in conditions else LIST_RUNS
    return template.replace("@CONDITIONS@", extra).replace("@LIMIT@", f"${number}")


# The queued runs of each queue (over runs_queued) split into ready and
# delayed by the server's clock, and the running ones (over runs_queue_running).
QUEUE_STATS = """
    SELECT queue,
           count(*) FILTER (WHERE not_before IS NULL OR not_before <= now_t) AS ready,
           count(*) FILTER (WHERE not_before > now_t) AS delayed,
           0::bigint AS running,
           min(created_at) FILTER (WHERE not_before IS NULL OR not_before <= now_t) AS oldest
    FROM {s}.runs, (SELECT extract(epoch FROM clock_timestamp()) AS now_t) AS clock
    WHERE app = $1 AND status = 'queued'
    GROUP BY queue
    UNION ALL
    SELECT queue, 0, 0, count(*), NULL FROM {s}.runs
    WHERE app = $1 AND status = 'running' AND queue IS NOT NULL
    GROUP BY queue
"""

# The run locked for requeue_run's decision, with the server's clock.
REQUEUE_LOCK = """
    SELECT {run_columns}, extract(epoch FROM clock_timestamp()) AS now_t FROM {s}.runs
    WHERE app = $1 AND run_id = $2
    FOR UPDATE
"""

REQUEUE_DROP_FAILED = """
    DELETE FROM {s}.steps WHERE app = $1 AND run_id = $2 AND status = 'failed'
"""

# The requeued run notifies channel $7 (on commit): idle workers wake.
REQUEUE = """
    WITH upd AS (
        UPDATE {s}.runs SET status = 'queued', queue = $3, not_before = NULL, owner = NULL,
                            lease_expires_at = NULL, error = $4, cancel_requested = $5,
                            updated_at = $6
        WHERE app = $1 AND run_id = $2
        RETURNING app
    )
    SELECT pg_notify($7, upd.app) FROM upd
"""

# The counter row serialises concurrent senders, so indexes follow commit
# order; ``prev`` recognises a retried call whose first attempt committed.
# ``woken`` locks the run's row whatever its status (see park_run) and makes
# a parked run due, notifying channel $6 for it.
SEND_SIGNAL = """
    WITH woken AS (
        UPDATE {s}.runs SET not_before = CASE WHEN status = 'waiting'
                                              THEN extract(epoch FROM now())
                                              ELSE not_before END
        WHERE app = $1 AND run_id = $2
        RETURNING status = 'waiting' AS due
    ), prev AS (
        SELECT idx FROM {s}.signals
        WHERE app = $1 AND run_id = $2 AND name = $3 AND nonce = $5
    ), counter AS (
        INSERT INTO {s}.signal_counters AS c (app, run_id, name, next)
        SELECT $1, $2, $3, 1 WHERE NOT EXISTS (SELECT 1 FROM prev)
        ON CONFLICT (app, run_id, name) DO UPDATE SET next = c.next + 1
        RETURNING c.next - 1 AS idx
    ), ins AS (
        INSERT INTO {s}.signals (app, run_id, name, idx, payload, nonce)
        SELECT $1, $2, $3, idx, $4, $5 FROM counter
        RETURNING idx
    )
    SELECT idx, (SELECT count(pg_notify($6, $1)) FROM woken WHERE due)
                + (SELECT count(pg_notify($6, $7))) AS notified FROM ins
    UNION ALL SELECT idx, 0 FROM prev
"""

# The counter row exists once any signal of that name was sent: inserting it
# is the atomic first-delivery-wins test (a concurrent sender waits on the key,
# then does nothing). ``prev`` recognises a retried call, as in SEND_SIGNAL.
SEND_SIGNAL_ONCE = """
    WITH woken AS (
        UPDATE {s}.runs SET not_before = CASE WHEN status = 'waiting'
                                              THEN extract(epoch FROM now())
                                              ELSE not_before END
        WHERE app = $1 AND run_id = $2
        RETURNING status = 'waiting' AS due
    ), prev AS (
        SELECT idx FROM {s}.signals
        WHERE app = $1 AND run_id = $2 AND name = $3 AND nonce = $5
    ), counter AS (
        INSERT INTO {s}.signal_counters (app, run_id, name, next)
        SELECT $1, $2, $3, 1 WHERE NOT EXISTS (SELECT 1 FROM prev)
        ON CONFLICT (app, run_id, name) DO NOTHING
        RETURNING 0::bigint AS idx
    ), ins AS (
        INSERT INTO {s}.signals (app, run_id, name, idx, payload, nonce)
        SELECT $1, $2, $3, idx, $4, $5 FROM counter
        RETURNING idx
    )
    SELECT idx, (SELECT count(pg_notify($6, $1)) FROM woken WHERE due)
                + (SELECT count(pg_notify($6, $7))) AS notified FROM ins
    UNION ALL SELECT idx, 0 FROM prev
"""

READ_SIGNAL = """
    SELECT payload FROM {s}.signals
    WHERE app = $1 AND run_id = $2 AND name = $3 AND idx = $4
"""

# One primary key lookup per wanted (run id, name, index).
READ_SIGNALS = """
    SELECT w.run_id, w.name, w.idx, s.payload
    FROM unnest($2::text[], $3::text[], $4::bigint[]) AS w(run_id, name, idx)
    JOIN {s}.signals AS s
      ON s.app = $1 AND s.run_id = w.run_id AND s.name = w.name AND s.idx = w.idx
"""


def work_channel(schema: str) -> str:
    """The NOTIFY channel of the schema's work (at most 63 bytes, as channel names must be)."""
    channel = f"durable_work_{schema}"
    if len(channel.encode()) <= 63:
        return channel
    digest = hashlib.blake2b(schema.encode(), digest_size=16).hexdigest()
    return f"durable_work_{digest}"


def quote_schema(schema: str) -> str:
    if not IDENTIFIER.fullmatch(schema):
        raise ConfigurationError(
            f"invalid PostgreSQL schema name {schema!r}: use letters, digits and"
            " underscores, starting with a letter or underscore, at most 63 characters"
        )
    return f'"{schema}"'


def render(template: str, quoted_schema: str) -> str:
    # The only text ever formatted into SQL is a schema name that
    # quote_schema validated and quoted; values always travel as parameters.
    return (
        template.replace("{run_columns}", RUN_COLUMNS)
        .replace("{run_columns_r}", ", ".join(f"r.{name}" for name in RUN_FIELDS))
        .replace("{step_columns}", STEP_COLUMNS)
        .replace("{s}", quoted_schema)
    )
