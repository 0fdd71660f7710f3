"""PostgresStore: the Store contract on PostgreSQL, through asyncpg.

Many processes on many machines can share one database. Every operation is a
single statement (``claim_run`` is one call of a server-side function), so
each costs one round trip; lease times come from the database clock.

Tables live in their own schema (``durable`` by default), created and migrated
on :meth:`PostgresStore.open` under an advisory lock, so processes starting
together do not race. Install the driver with ``pip install python-durable[postgres]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from durable.errors import (
    ConfigurationError,
    DurableError,
    LeaseLostError,
    StoreError,
    StoreUnavailableError,
)
from durable.stores._checks import check_json, check_names
from durable.stores.base import (
    Claim,
    FinalStatus,
    LeaseState,
    NewRun,
    RunRecord,
    RunStatus,
    SavedStep,
    StepRecord,
    Store,
)

__all__ = ["PostgresStore", "from_url"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
_Op = Callable[[Any], Awaitable[_T]]

_MAX_RETRY_DELAY = 1.0
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")

_RUN_FIELDS = (
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
)
_RUN_COLUMNS = ", ".join(_RUN_FIELDS)
# Steps travel as rows, one per step beside the run's columns: plain column
# types need no per-connection type introspection, unlike arrays.
_STEP_COLUMNS = (
    "s.step_id, s.position, s.task, s.status AS step_status, s.result,"
    " s.error AS step_error, s.attempts AS step_attempts, s.started_at, s.finished_at"
)

# Each entry upgrades the schema by one version; never edit a released entry.
_MIGRATIONS: tuple[str, ...] = (
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
    -- A function rather than a statement: after waiting for the run's row lock
    -- its later statements take a fresh snapshot, so the steps it returns
    -- include any step committed by the previous owner while it waited.
    CREATE FUNCTION {s}.claim_run(
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
            ELSIF cur.workflow <> p_workflow THEN
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
    """,
)

_VERSION_TABLE = """
    CREATE TABLE IF NOT EXISTS {s}.schema_version (
        singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
        version integer NOT NULL
    )
"""

_CLAIM = "SELECT * FROM {s}.claim_run($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"

# FOR SHARE makes the token check and the insert one atomic step: a concurrent
# claim_run waits for this statement, or this statement re-checks the token
# on the claim's committed row version.
_SAVE_STEP = """
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

_GET_STEP = """
    SELECT position, task, status, result, error, attempts, started_at, finished_at
    FROM {s}.steps WHERE app = $1 AND run_id = $2 AND step_id = $3
"""

_RENEW = """
    UPDATE {s}.runs SET lease_expires_at = extract(epoch FROM now()) + $4,
                        updated_at = extract(epoch FROM now())
    WHERE app = $1 AND run_id = $2 AND token = $3 AND status = 'running'
    RETURNING cancel_requested
"""

_RELEASE = """
    UPDATE {s}.runs SET owner = NULL, lease_expires_at = extract(epoch FROM now()),
                        updated_at = extract(epoch FROM now())
    WHERE app = $1 AND run_id = $2 AND token = $3 AND status = 'running'
"""

# The second branch recognises a retried call whose first attempt committed.
_FINISH = """
    WITH u AS (
        UPDATE {s}.runs SET status = $4, output = $5, error = $6, owner = NULL,
                            lease_expires_at = NULL, updated_at = extract(epoch FROM now()),
                            finish_nonce = $7
        WHERE app = $1 AND run_id = $2 AND token = $3 AND status = 'running'
        RETURNING {run_columns}
    )
    SELECT {run_columns} FROM u
    UNION ALL
    SELECT {run_columns} FROM {s}.runs
    WHERE app = $1 AND run_id = $2 AND token = $3 AND finish_nonce = $7
      AND NOT EXISTS (SELECT 1 FROM u)
"""

_CANCEL = """
    UPDATE {s}.runs SET
        cancel_requested = cancel_requested OR status = 'running',
        status = CASE WHEN status = 'failed' THEN 'cancelled' ELSE status END,
        updated_at = CASE WHEN status IN ('running', 'failed')
                          THEN extract(epoch FROM now()) ELSE updated_at END
    WHERE app = $1 AND run_id = $2
    RETURNING {run_columns}
"""

_GET_RUN = "SELECT {run_columns} FROM {s}.runs WHERE app = $1 AND run_id = $2"

_LOAD_RUN = """
    SELECT {run_columns_r}, {step_columns}
    FROM {s}.runs r LEFT JOIN {s}.steps s ON s.app = r.app AND s.run_id = r.run_id
    WHERE r.app = $1 AND r.run_id = $2
    ORDER BY s.position, s.step_id
"""

_LIST_RUNS = """
    SELECT {run_columns}, run_id FROM {s}.runs
    WHERE app = $1 AND ($2::text IS NULL OR status = $2)
      AND ($3::text IS NULL OR workflow = $3)
    ORDER BY created_at DESC, seq DESC
    LIMIT $4
"""

# The counter row serialises concurrent senders, so indexes follow commit
# order; ``prev`` recognises a retried call whose first attempt committed.
_SEND_SIGNAL = """
    WITH prev AS (
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
    SELECT idx FROM ins UNION ALL SELECT idx FROM prev
"""

_READ_SIGNAL = """
    SELECT payload FROM {s}.signals
    WHERE app = $1 AND run_id = $2 AND name = $3 AND idx = $4
"""


def _quote_schema(schema: str) -> str:
    if not _IDENTIFIER.fullmatch(schema):
        raise ConfigurationError(
            f"invalid PostgreSQL schema name {schema!r}: use letters, digits and"
            " underscores, starting with a letter or underscore, at most 63 characters"
        )
    return f'"{schema}"'


def _render(template: str, quoted_schema: str) -> str:
    # The only text ever formatted into SQL is a schema name that
    # _quote_schema validated and quoted; values always travel as parameters.
    return (
        template.replace("{run_columns}", _RUN_COLUMNS)
        .replace("{run_columns_r}", ", ".join(f"r.{name}" for name in _RUN_FIELDS))
        .replace("{step_columns}", _STEP_COLUMNS)
        .replace("{s}", quoted_schema)
    )


def _lock_key(schema: str) -> int:
    digest = hashlib.blake2b(f"durable-migrate:{schema}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _is_connection_error(exc: BaseException) -> bool:
    if isinstance(
        exc,
        asyncpg.PostgresConnectionError
        | asyncpg.AdminShutdownError
        | asyncpg.CrashShutdownError
        | asyncpg.CannotConnectNowError
        | asyncpg.TooManyConnectionsError
        | OSError,
    ):
        return True
    if isinstance(exc, asyncpg.InterfaceError):
        return "connection is closed" in str(exc)
    # The server's termination notice can reach an idle pooled connection
    # before the socket closes; the next call on it then fails this way,
    # before anything is sent.
    return isinstance(exc, asyncpg.InternalClientError) and "another operation" in str(exc)


def _translate(exc: Exception) -> Exception:
    """The durable error to raise for a driver error (the one translation point)."""
    if _is_connection_error(exc) or isinstance(exc, TimeoutError):
        return StoreUnavailableError(f"PostgreSQL is unavailable: {exc}")
    if isinstance(exc, asyncpg.PostgresError):
        return StoreError(f"PostgreSQL error {exc.sqlstate}: {exc}")
    if isinstance(exc, asyncpg.InterfaceError):
        return StoreError(f"PostgreSQL client error: {exc}")
    return exc


async def _no_reset(connection: Any) -> None:
    # Sessions never change state (no SET, LISTEN, cursors or session-level
    # advisory locks), so skip asyncpg's reset query: one round trip per call.
    return None


def _run_record(app: str, run_id: str, row: Any) -> RunRecord:
    return RunRecord(
        app=app,
        run_id=run_id,
        workflow=row["workflow"],
        status=row["status"],
        inputs=row["inputs"],
        output=row["output"],
        error=row["error"],
        owner=row["owner"],
        token=row["token"],
        lease_expires_at=row["lease_expires_at"],
        attempts=row["attempts"],
        cancel_requested=row["cancel_requested"],
        parent_run_id=row["parent_run_id"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _step_records(rows: Sequence[Any]) -> tuple[StepRecord, ...]:
    return tuple(
        StepRecord(
            step_id=row["step_id"],
            position=row["position"],
            task=row["task"],
            status=row["step_status"],
            result=row["result"],
            error=row["step_error"],
            attempts=row["step_attempts"],
            started_at=row["started_at"],
            finished_at=row["finished_at"],
        )
        for row in rows
        if row["step_id"] is not None
    )


def _stored_step(step_id: str, row: Any) -> StepRecord:
    return StepRecord(
        step_id=step_id,
        position=row["position"],
        task=row["task"],
        status=row["status"],
        result=row["result"],
        error=row["error"],
        attempts=row["attempts"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
    )


class PostgresStore(Store):
    """A Store in a PostgreSQL database, shared safely by many processes.

    ``dsn`` is a libpq connection URL (``postgresql://user@host/db``). Tables
    are created in ``schema`` on :meth:`open`. Operations that fail because
    the connection dropped are retried up to ``retry_attempts`` times with a
    doubling delay starting at ``retry_delay`` seconds (every operation is
    idempotent under retry); then :class:`~durable.errors.StoreUnavailableError`
    is raised. Other database errors raise :class:`~durable.errors.StoreError`.
    """

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "durable",
        min_size: int = 1,
        max_size: int = 10,
        application_name: str = "durable",
        connect_timeout: float = 10.0,
        retry_attempts: int = 5,
        retry_delay: float = 0.05,
    ) -> None:
        if retry_attempts < 1:
            raise ConfigurationError("retry_attempts must be at least 1")
        self.dsn = dsn
        self.schema = schema
        self._quoted = _quote_schema(schema)
        self._min_size = min_size
        self._max_size = max_size
        self._application_name = application_name
        self._connect_timeout = connect_timeout
        self._retry_attempts = retry_attempts
        self._retry_delay = retry_delay
        self._pool: Any = None
        self._open_lock = asyncio.Lock()
        self._sql: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"PostgresStore(schema={self.schema!r})"

    def _q(self, template: str) -> str:
        sql = self._sql.get(template)
        if sql is None:
            sql = self._sql[template] = _render(template, self._quoted)
        return sql

    async def open(self) -> None:
        try:
            await self._open_pool()
        except DurableError:
            raise
        except Exception as exc:
            raise _translate(exc) from exc

    async def _open_pool(self) -> Any:
        async with self._open_lock:
            if self._pool is not None:
                return self._pool
            pool = await asyncpg.create_pool(
                self.dsn,
                min_size=self._min_size,
                max_size=self._max_size,
                timeout=self._connect_timeout,
                server_settings={
                    "application_name": self._application_name,
                    # The claim function relies on a fresh snapshot per statement.
                    "default_transaction_isolation": "read committed",
                },
                reset=_no_reset,
            )
            try:
                await self._migrate(pool)
            except BaseException:
                await pool.close()
                raise
            self._pool = pool
            return pool

    async def close(self) -> None:
        async with self._open_lock:
            pool, self._pool = self._pool, None
            if pool is not None:
                await pool.close()

    async def _migrate(self, pool: Any) -> None:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _lock_key(self.schema))
            await conn.execute(self._q("CREATE SCHEMA IF NOT EXISTS {s}"))
            await conn.execute(self._q(_VERSION_TABLE))
            version = await conn.fetchval(self._q("SELECT version FROM {s}.schema_version"))
            current = version or 0
            if current > len(_MIGRATIONS):
                raise StoreError(
                    f"schema {self.schema!r} is at version {current}, newer than this"
                    f" library supports ({len(_MIGRATIONS)}); upgrade python-durable"
                )
            for migration in _MIGRATIONS[current:]:
                await conn.execute(self._q(migration))
            if current < len(_MIGRATIONS):
                await conn.execute(
                    self._q(
                        "INSERT INTO {s}.schema_version (version) VALUES ($1)"
                        " ON CONFLICT (singleton) DO UPDATE SET version = EXCLUDED.version"
                    ),
                    len(_MIGRATIONS),
                )
                logger.info(
                    "migrated schema %s from version %s to %s",
                    self.schema,
                    current,
                    len(_MIGRATIONS),
                    extra={"action": "postgres_migrate"},
                )

    async def _call(self, op: _Op[_T]) -> _T:
        """Run ``op`` on a pooled connection, retrying connection-class failures only."""
        attempt = 1
        while True:
            try:
                pool = self._pool or await self._open_pool()
                async with pool.acquire() as conn:
                    try:
                        return await op(conn)
                    except Exception as exc:
                        if _is_connection_error(exc):
                            # Make the pool replace it rather than hand it out
                            # again; a proxy already detached by the pool raises.
                            with contextlib.suppress(asyncpg.InterfaceError):
                                conn.terminate()
                        raise
            except DurableError:
                raise
            except Exception as exc:
                if not _is_connection_error(exc) or attempt >= self._retry_attempts:
                    raise _translate(exc) from exc
                delay = min(self._retry_delay * 2 ** (attempt - 1), _MAX_RETRY_DELAY)
                logger.warning(
                    "PostgreSQL connection failed (%s); retry %s of %s in %.2fs",
                    exc,
                    attempt,
                    self._retry_attempts - 1,
                    delay,
                    extra={"action": "postgres_retry"},
                )
                attempt += 1
                await asyncio.sleep(delay)

    async def _fetchrow(self, template: str, *args: Any) -> Any:
        sql = self._q(template)
        return await self._call(lambda conn: conn.fetchrow(sql, *args))

    async def _fetch(self, template: str, *args: Any) -> list[Any]:
        sql = self._q(template)
        rows: list[Any] = await self._call(lambda conn: conn.fetch(sql, *args))
        return rows

    async def claim_run(
        self,
        new: NewRun,
        *,
        owner: str,
        lease_ttl: float,
        steal_from: str | None = None,
        resume: bool = False,
    ) -> Claim:
        check_names(
            app=new.app,
            run_id=new.run_id,
            workflow_name=new.workflow,
            parent_run_id=new.parent_run_id,
            owner=owner,
            steal_from=steal_from,
        )
        check_json(inputs=new.inputs)
        rows = await self._fetch(
            _CLAIM,
            new.app,
            new.run_id,
            new.workflow,
            new.inputs,
            new.parent_run_id,
            owner,
            lease_ttl,
            steal_from,
            resume,
            uuid.uuid4(),
        )
        return Claim(
            _run_record(new.app, new.run_id, rows[0]),
            _step_records(rows),
            acquired=rows[0]["acquired"],
        )

    async def save_step(self, app: str, run_id: str, token: int, step: StepRecord) -> SavedStep:
        check_names(step_id=step.step_id, task_name=step.task)
        check_json(step_result=step.result, step_error=step.error)
        row = await self._fetchrow(
            _SAVE_STEP,
            app,
            run_id,
            token,
            step.step_id,
            step.position,
            step.task,
            step.status,
            step.result,
            step.error,
            step.attempts,
            step.started_at,
            step.finished_at,
        )
        if row is None:
            raise LeaseLostError(f"run {run_id!r}: token {token} no longer owns the run")
        if row["inserted"]:
            return SavedStep(step, row["cancel_requested"])
        if row["task"] is not None:
            return SavedStep(_stored_step(step.step_id, row), row["cancel_requested"])
        # Another writer committed this step after our statement's snapshot.
        stored = await self._fetchrow(_GET_STEP, app, run_id, step.step_id)
        return SavedStep(_stored_step(step.step_id, stored), row["cancel_requested"])

    async def renew_lease(self, app: str, run_id: str, token: int, lease_ttl: float) -> LeaseState:
        row = await self._fetchrow(_RENEW, app, run_id, token, lease_ttl)
        if row is None:
            return LeaseState.LOST
        return LeaseState.CANCEL_REQUESTED if row["cancel_requested"] else LeaseState.OWNED

    async def release_run(self, app: str, run_id: str, token: int) -> None:
        sql = self._q(_RELEASE)
        await self._call(lambda conn: conn.execute(sql, app, run_id, token))

    async def finish_run(
        self,
        app: str,
        run_id: str,
        token: int,
        status: FinalStatus,
        *,
        output: str | None = None,
        error: str | None = None,
    ) -> RunRecord:
        check_json(output=output, error=error)
        row = await self._fetchrow(_FINISH, app, run_id, token, status, output, error, uuid.uuid4())
        if row is None:
            raise LeaseLostError(f"run {run_id!r}: token {token} no longer owns the run")
        return _run_record(app, run_id, row)

    async def request_cancel(self, app: str, run_id: str) -> RunRecord | None:
        row = await self._fetchrow(_CANCEL, app, run_id)
        return None if row is None else _run_record(app, run_id, row)

    async def load_run(
        self, app: str, run_id: str
    ) -> tuple[RunRecord, tuple[StepRecord, ...]] | None:
        rows = await self._fetch(_LOAD_RUN, app, run_id)
        if not rows:
            return None
        return _run_record(app, run_id, rows[0]), _step_records(rows)

    async def get_run(self, app: str, run_id: str) -> RunRecord | None:
        row = await self._fetchrow(_GET_RUN, app, run_id)
        return None if row is None else _run_record(app, run_id, row)

    async def list_runs(
        self,
        app: str,
        *,
        status: RunStatus | None = None,
        workflow: str | None = None,
        limit: int = 100,
    ) -> Sequence[RunRecord]:
        rows = await self._fetch(_LIST_RUNS, app, status, workflow, limit)
        return [_run_record(app, row["run_id"], row) for row in rows]

    async def send_signal(self, app: str, run_id: str, name: str, payload: str) -> int:
        check_names(app=app, run_id=run_id, signal_name=name)
        check_json(signal_payload=payload)
        row = await self._fetchrow(_SEND_SIGNAL, app, run_id, name, payload, uuid.uuid4())
        return int(row["idx"])

    async def read_signal(self, app: str, run_id: str, name: str, index: int) -> str | None:
        row = await self._fetchrow(_READ_SIGNAL, app, run_id, name, index)
        return None if row is None else str(row["payload"])


def from_url(url: str) -> PostgresStore:
    """A store for a ``postgresql://`` URL; an optional ``schema`` query parameter picks the schema.

    ``postgresql+asyncpg://`` is accepted too.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.removesuffix("+asyncpg")
    if scheme not in ("postgresql", "postgres"):
        raise ConfigurationError(f"not a PostgreSQL URL: {parts.scheme}://...")
    query = parse_qsl(parts.query, keep_blank_values=True)
    schemas = [value for key, value in query if key == "schema"]
    rest = [(key, value) for key, value in query if key != "schema"]
    dsn = urlunsplit(parts._replace(scheme=scheme, query=urlencode(rest)))
    if schemas:
        return PostgresStore(dsn, schema=schemas[-1])
    return PostgresStore(dsn)
