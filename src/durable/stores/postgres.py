"""PostgresStore: the Store contract on PostgreSQL, through asyncpg.

Many processes on many machines can share one database. Every operation is a
single statement (``claim_run`` and ``claim_queued`` are each one call of a
server-side function), so each costs one round trip; a step save or a finish
that finds anything but the common case (a lost lease, a cancel request, a
step already stored, a retried call) takes a second statement to tell which.
Claimers of one queue take turns on a transaction-level advisory lock, so
its caps hold across every process. Lease times come from the
database clock. Step saves made while others are in flight are grouped into
one statement and one commit (group commit); each caller resumes once its own
row is committed.

Tables live in their own schema (``durable`` by default), created and migrated
on :meth:`PostgresStore.open` under an advisory lock, so processes starting
together do not race. Install the driver with ``pip install python-durable[postgres]``.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import time
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
from durable.stores import _postgres_retention as retention
from durable.stores import _postgres_sql as statements
from durable.stores._checks import (
    check_claim,
    check_enqueue,
    check_json,
    check_names,
    check_signal,
    check_step,
)
from durable.stores._listing import ListQuery, decide_requeue, merge_counts, requeued_record
from durable.stores._postgres_pool import ConnectionPool, PoolAbandonedError
from durable.stores._retention import check_prune, not_finished
from durable.stores._rows import StepParams, lease_states, step_params
from durable.stores._wake import WorkWaiters, signal_topic, slot_topic
from durable.stores.base import (
    Claim,
    FinalStatus,
    LeaseState,
    NewRun,
    QueueCounts,
    QueueLimits,
    RunRecord,
    RunStatus,
    SavedStep,
    StepRecord,
    Store,
    check_signal_keys,
)

__all__ = ["PostgresStore", "from_url"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
_Op = Callable[[Any], Awaitable[_T]]
# The parameters of one step save, in SAVE_STEP's order.
_SaveOutcome = SavedStep | None | Exception
# A save waiting for a batch, with the future its caller awaits.
_Queued = tuple[StepParams, StepRecord, asyncio.Future[_SaveOutcome]]

_MAX_RETRY_DELAY = 1.0
# Step saves in flight at once, each a statement on its own connection; saves
# beyond that wait and go out together. A few writers keep the server busy;
# more would only split the same load into smaller, costlier batches.
_MAX_STEP_WRITERS = 4


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
        queue=row["queue"],
        priority=row["priority"],
        not_before=row["not_before"],
        started_at=row["run_started_at"],
        trace_context=row["trace_context"],
    )


def _claims(app: str, rows: Sequence[Any]) -> list[Claim]:
    """The claims of claim_queued's rows: each run's rows are adjacent, its steps in order."""
    claims: list[Claim] = []
    for run_id, group in itertools.groupby(rows, lambda row: str(row["run_id"])):
        run_rows = list(group)
        run = _run_record(app, run_id, run_rows[0])
        claims.append(Claim(run, _step_records(run_rows), acquired=True))
    return claims


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


def _as_text(value: str | float) -> str:
    # repr, not str: the shortest text that reads back as the same float.
    return value if isinstance(value, str) else repr(value)


class _GroupCommit:
    """The step saves of one event loop: writers busy, saves waiting, batch tasks.

    Saves arriving while every writer is busy wait in ``pending`` and go out
    together, as one statement, when a writer is free. Each event loop the
    store runs on has its own: the futures and tasks belong to that loop.
    """

    __slots__ = ("batches", "pending", "writers")

    def __init__(self) -> None:
        self.writers = 0
        self.pending: list[_Queued] = []
        self.batches: set[asyncio.Task[None]] = set()


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


# After a failed attempt to LISTEN, the next one waits this long.
_LISTEN_RETRY = 1.0


class _Listener:
    """The LISTEN connection of one event loop and the waits it wakes.

    The connection is opened by a task of its own, started by a wait (and at
    once when the connection is lost while waits are pending), so a wait
    never blocks on a connect longer than its timeout. Once it listens, every
    wait is woken: notifications sent before may have gone unheard.
    """

    __slots__ = ("_channel", "_conn", "_next_try", "_pool", "_task", "_waiters")

    def __init__(self) -> None:
        self._conn: Any = None
        self._pool: ConnectionPool | None = None
        self._channel = ""
        self._task: asyncio.Task[None] | None = None
        self._waiters: WorkWaiters | None = None
        self._next_try = 0.0

    def waiters(self) -> WorkWaiters:
        if self._waiters is None:
            self._waiters = WorkWaiters(asyncio.get_running_loop())
        return self._waiters

    def ensure(self, pool: ConnectionPool, channel: str) -> None:
        """Start listening unless listening already, or trying to."""
        if self._pool is not pool:
            self._drop()
            self._pool, self._channel = pool, channel
        if self._conn is not None and self._conn.is_closed():
            self._drop()
        if self._conn is None:
            self._restart()

    def _restart(self) -> None:
        if self._pool is None or (self._task is not None and not self._task.done()):
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, self._next_try - loop.time())
        self._next_try = loop.time() + delay + _LISTEN_RETRY
        self._task = loop.create_task(self._start(self._pool, self._channel, delay))

    async def _start(self, pool: ConnectionPool, channel: str, delay: float) -> None:
        if delay:
            await asyncio.sleep(delay)
        try:
            conn = await pool.open_dedicated()
        except Exception as exc:
            logger.debug("cannot open the LISTEN connection: %r", exc)
            return
        try:
            await conn.add_listener(channel, self._notified)
        except BaseException as exc:
            pool.drop_dedicated(conn)
            if not isinstance(exc, Exception):
                raise
            logger.debug("LISTEN failed: %r", exc)
            return
        if self._pool is not pool:
            pool.drop_dedicated(conn)
            return
        conn.add_termination_listener(self._lost)
        self._conn = conn
        self.waiters().wake_all()

    def _notified(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        if conn is self._conn and self._waiters is not None:
            self._waiters.wake(payload)

    def _lost(self, conn: Any) -> None:
        """The server closed the connection: listen again at once if anyone waits."""
        if conn is not self._conn:
            return
        self._drop()
        if self._waiters is not None and self._waiters.waiting():
            self._restart()

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.remove_termination_listener(self._lost)
            if self._pool is not None:
                self._pool.drop_dedicated(conn)

    def stop(self) -> None:
        """Forget everything now, awaiting nothing: the pool, dropped, closes the connection."""
        self._pool = None
        self._conn = None
        self._task = None

    async def close(self) -> None:
        """Stop listening and end the waits (the store closes)."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self._drop()
        self._pool = None
        if self._waiters is not None:
            self._waiters.release_all()


class PostgresStore(Store):
    """A Store in a PostgreSQL database, shared safely by many processes.

    ``dsn`` is a libpq connection URL (``postgresql://user@host/db``). Tables
    are created in ``schema`` on :meth:`open`. Operations that fail because
    the connection dropped are retried with a doubling delay starting at
    ``retry_delay`` seconds, capped at one second (every operation is
    idempotent under retry). Until the server has been reached once, that is
    ``retry_attempts`` tries, so a wrong address fails fast; from then on the
    store keeps trying for ``outage_timeout`` seconds (default 60) from the
    first failure, which waits out a server restart or a failover. Then
    :class:`~durable.errors.StoreUnavailableError` is raised. Other database
    errors raise :class:`~durable.errors.StoreError`.

    One store may serve successive event loops (several ``asyncio.run``
    calls): on a new loop it opens a new pool, and the connections of the
    previous loop are closed.
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
        outage_timeout: float = 60.0,
    ) -> None:
        if retry_attempts < 1:
            raise ConfigurationError("retry_attempts must be at least 1")
        if not outage_timeout >= 0:
            raise ConfigurationError(f"outage_timeout must be >= 0 seconds, got {outage_timeout!r}")
        self.dsn = dsn
        self.schema = schema
        self._quoted = statements.quote_schema(schema)
        self._min_size = min_size
        self._max_size = max_size
        self._max_writers = min(max_size, _MAX_STEP_WRITERS)
        self._application_name = application_name
        self._connect_timeout = connect_timeout
        self._retry_attempts = retry_attempts
        self._retry_delay = retry_delay
        self.outage_timeout = outage_timeout
        # Set once a pool opened: failures after that are outages to wait out.
        self._reached = False
        self._sql: dict[str, str] = {}
        self._channel = statements.work_channel(schema)
        # Queues this process claimed from with no concurrency cap (see _learn_cap).
        self._uncapped: list[str] = []
        # Everything below belongs to one event loop, _loop (None before the
        # first use): the pool's connections, the lock and the group commit.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pool: ConnectionPool | None = None
        self._open_lock = asyncio.Lock()
        self._group = _GroupCommit()
        self._listen = _Listener()

    def __repr__(self) -> str:
        return f"PostgresStore(schema={self.schema!r})"

    def _q(self, template: str) -> str:
        sql = self._sql.get(template)
        if sql is None:
            sql = self._sql[template] = statements.render(template, self._quoted)
        return sql

    async def open(self) -> None:
        try:
            await self._open_pool()
        except DurableError:
            raise
        except Exception as exc:
            raise _translate(exc) from exc

    async def _connect(self) -> Any:
        return await asyncpg.connect(
            self.dsn,
            timeout=self._connect_timeout,
            server_settings={
                "application_name": self._application_name,
                # The claim function relies on a fresh snapshot per statement.
                "default_transaction_isolation": "read committed",
                # Every statement finds its rows through an index. Statistics
                # of a table analyzed while nearly empty would otherwise make a
                # scan of the whole table look cheapest, and the generic plan
                # cached on this connection would keep scanning as it grows.
                "enable_seqscan": "off",
            },
        )

    def _follow_loop(self) -> None:
        """Move to the running event loop if the store was last used on another.

        After ``asyncio.run`` returned and another began, the previous loop's
        pool is dropped without awaiting anything on that loop, and its lock
        and group commit are left to it.
        """
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            return
        pool, previous = self._pool, self._loop
        self._loop, self._pool = loop, None
        self._open_lock = asyncio.Lock()
        self._group = _GroupCommit()
        # The listener connection is the pool's: dropped with it.
        self._listen.stop()
        self._listen = _Listener()
        if pool is not None:
            pool.abandon(previous)

    async def _open_pool(self) -> ConnectionPool:
        """The pool of the running event loop, opened on first use on that loop."""
        self._follow_loop()
        async with self._open_lock:
            if self._pool is not None:
                return self._pool
            pool = ConnectionPool(self._connect, min_size=self._min_size, max_size=self._max_size)
            try:
                await pool.open()
                conn = await pool.acquire()
                try:
                    await self._migrate(conn)
                finally:
                    pool.release(conn)
            except BaseException:
                await pool.close()
                raise
            # Used on another loop while this one was opening: come back.
            self._follow_loop()
            self._pool = pool
            self._reached = True
            return pool

    async def close(self) -> None:
        # A pool of another loop is dropped, not closed on this one.
        self._follow_loop()
        # Saves already queued still complete (each batch on a connection).
        group = self._group
        while group.batches:
            await asyncio.gather(*group.batches, return_exceptions=True)
        await self._listen.close()
        async with self._open_lock:
            pool, self._pool = self._pool, None
            if pool is not None:
                await pool.close()

    async def _migrate(self, conn: Any) -> None:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _lock_key(self.schema))
            await conn.execute(self._q("CREATE SCHEMA IF NOT EXISTS {s}"))
            await conn.execute(self._q(statements.VERSION_TABLE))
            version = await conn.fetchval(self._q("SELECT version FROM {s}.schema_version"))
            current = version or 0
            if current > len(statements.MIGRATIONS):
                raise StoreError(
                    f"schema {self.schema!r} is at version {current}, newer than this"
                    f" library supports ({len(statements.MIGRATIONS)}); upgrade python-durable"
                )
            for migration in statements.MIGRATIONS[current:]:
                await conn.execute(self._q(migration))
            if current < len(statements.MIGRATIONS):
                await conn.execute(
                    self._q(
                        "INSERT INTO {s}.schema_version (version) VALUES ($1)"
                        " ON CONFLICT (singleton) DO UPDATE SET version = EXCLUDED.version"
                    ),
                    len(statements.MIGRATIONS),
                )
                logger.info(
                    "migrated schema %s from version %s to %s",
                    self.schema,
                    current,
                    len(statements.MIGRATIONS),
                    extra={"action": "postgres_migrate"},
                )

    async def _call(self, op: _Op[_T], *, on_loop: bool = False) -> _T:
        """Run ``op`` on a pooled connection, retrying connection-class failures only.

        ``on_loop`` says the caller just checked that the store follows the
        running loop: the hot path then skips a second check, whose
        ``get_running_loop()`` costs a ``getpid()`` system call.
        """
        attempt = 1
        failing_since = 0.0
        while True:
            try:
                pool = self._pool
                if pool is None or not (on_loop or self._loop is asyncio.get_running_loop()):
                    pool = await self._open_pool()
                conn = pool.acquire_idle()
                if conn is None:
                    conn = await pool.acquire()
                try:
                    result = await op(conn)
                except BaseException as exc:
                    # A broken connection, or one left mid-query by a
                    # cancellation, is dropped: the pool opens a new one.
                    if not isinstance(exc, Exception) or _is_connection_error(exc):
                        conn.terminate()
                    pool.release(conn)
                    raise
                pool.release(conn)
                return result
            except PoolAbandonedError:
                # Waited on a pool dropped when the store moved to another
                # event loop, and this one runs again: nothing was sent.
                continue
            except DurableError:
                raise
            except Exception as exc:
                if not _is_connection_error(exc):
                    raise _translate(exc) from exc
                now = time.monotonic()
                if attempt == 1:
                    failing_since = now
                if not self._retrying(attempt, now - failing_since):
                    raise StoreUnavailableError(
                        f"PostgreSQL is unavailable (gave up after {now - failing_since:.1f}s "
                        f"and {attempt} attempts): {exc}"
                    ) from exc
                delay = min(self._retry_delay * 2 ** (attempt - 1), _MAX_RETRY_DELAY)
                # One line when the outage starts, then one every ten tries.
                log = logger.warning if attempt % 10 == 1 else logger.debug
                log(
                    "PostgreSQL connection failed (%s); attempt %s, retrying in %.2fs",
                    exc,
                    attempt,
                    delay,
                    extra={"action": "postgres_retry"},
                )
                attempt += 1
                await asyncio.sleep(delay)

    def _retrying(self, attempt: int, failing_for: float) -> bool:
        """Whether to try again, ``attempt`` tries and ``failing_for`` seconds into a failure."""
        if attempt < self._retry_attempts:
            return True
        return self._reached and failing_for < self.outage_timeout

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
        check_claim(new, owner, steal_from)
        rows = await self._fetch(
            statements.CLAIM,
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
            new.trace_context,
        )
        return Claim(
            _run_record(new.app, new.run_id, rows[0]),
            _step_records(rows),
            acquired=rows[0]["acquired"],
        )

    async def save_step(self, app: str, run_id: str, token: int, step: StepRecord) -> SavedStep:
        check_step(step)
        if step.status != "completed" and step.status != "failed":
            raise StoreError(f"step status must be 'completed' or 'failed', not {step.status!r}")
        params = step_params(app, run_id, token, step)
        outcome: _SaveOutcome
        self._follow_loop()
        group = self._group
        if group.writers < self._max_writers:
            # A writer is free (nothing waits in pending then): write at once,
            # as this caller, so a lone save costs no task and no batch.
            group.writers += 1
            try:
                outcome = await self._save_one(params, step, on_loop=True)
            finally:
                group.writers -= 1
                if group.pending:
                    self._send_batch(group)
        else:
            future: asyncio.Future[_SaveOutcome] = asyncio.get_running_loop().create_future()
            group.pending.append((params, step, future))
            outcome = await future
        if isinstance(outcome, SavedStep):
            return outcome
        if outcome is None:
            raise LeaseLostError(f"run {run_id!r}: token {token} no longer owns the run")
        raise outcome

    def _send_batch(self, group: _GroupCommit) -> None:
        """Write every queued save, as one statement, in a task of its own.

        The batch belongs to no caller, so a cancelled caller cannot strand the
        others' outcomes. A second save of a step id already in the batch
        waits for the next one: within one statement it could not see the first.
        """
        batch: list[_Queued] = []
        later: list[_Queued] = []
        keys: set[tuple[str, str, str]] = set()
        for item in group.pending:
            key = (item[0][0], item[0][1], item[0][3])
            (later if key in keys else batch).append(item)
            keys.add(key)
        group.pending = later
        group.writers += 1
        task = asyncio.get_running_loop().create_task(self._write_batch(group, batch))
        group.batches.add(task)
        task.add_done_callback(group.batches.discard)

    async def _write_batch(self, group: _GroupCommit, batch: list[_Queued]) -> None:
        outcomes: list[_SaveOutcome] = [StoreError("PostgreSQL: step save interrupted")] * len(
            batch
        )
        try:
            outcomes = await self._save_many([(params, step) for params, step, _ in batch])
        except Exception as exc:
            outcomes = [exc] * len(batch)
        finally:
            for (_, _, future), outcome in zip(batch, outcomes, strict=True):
                if not future.done():
                    future.set_result(outcome)
            group.writers -= 1
            if group.pending:
                self._send_batch(group)

    async def _save_one(
        self, params: StepParams, step: StepRecord, *, on_loop: bool = False
    ) -> _SaveOutcome:
        sql = self._q(statements.INSERT_STEP)

        async def insert(conn: Any) -> bool:
            try:
                status: str = await conn.execute(sql, *params)
            except asyncpg.UniqueViolationError:
                return False  # the step exists: SAVE_STEP reads it
            return status == "INSERT 0 1"

        if await self._call(insert, on_loop=on_loop):
            return SavedStep(step, False)
        sql = self._q(statements.SAVE_STEP)
        row = await self._call(lambda conn: conn.fetchrow(sql, *params))
        if row is None:
            return None
        return await self._saved(params, step, row)

    async def _save_many(
        self, items: Sequence[tuple[StepParams, StepRecord]]
    ) -> list[_SaveOutcome]:
        if len(items) == 1:
            return [await self._save_one(*items[0])]
        sql = self._q(statements.SAVE_STEPS)
        columns = [
            [None if value is None else _as_text(value) for value in column]
            for column in zip(*(params for params, _ in items), strict=True)
        ]
        try:
            rows = await self._call(lambda conn: conn.fetch(sql, *columns))
        except StoreUnavailableError:
            raise
        except StoreError:
            # One save broke the statement (nothing was written): save each
            # alone, so that only its own caller sees the error.
            outcomes: list[_SaveOutcome] = []
            for params, step in items:
                try:
                    outcomes.append(await self._save_one(params, step))
                except Exception as exc:
                    outcomes.append(exc)
            return outcomes
        return [
            await self._saved(params, step, row) if row["owned"] else None
            for (params, step), row in zip(items, rows, strict=True)
        ]

    async def _saved(self, params: StepParams, step: StepRecord, row: Any) -> SavedStep:
        if row["inserted"]:
            return SavedStep(step, row["cancel_requested"])
        if row["task"] is not None:
            return SavedStep(_stored_step(step.step_id, row), row["cancel_requested"])
        # Another writer committed this step after our statement's snapshot.
        stored = await self._fetchrow(statements.GET_STEP, params[0], params[1], step.step_id)
        return SavedStep(_stored_step(step.step_id, stored), row["cancel_requested"])

    async def renew_lease(self, app: str, run_id: str, token: int, lease_ttl: float) -> LeaseState:
        row = await self._fetchrow(statements.RENEW, app, run_id, token, lease_ttl)
        if row is None:
            return LeaseState.LOST
        return LeaseState.CANCEL_REQUESTED if row["cancel_requested"] else LeaseState.OWNED

    async def renew_leases(
        self, app: str, leases: Sequence[tuple[str, int]], lease_ttl: float
    ) -> dict[str, LeaseState]:
        if not leases:
            return {}
        # Sorted, so that two overlapping batches lock rows in the same order.
        ordered = sorted(leases)
        rows = await self._fetch(
            statements.RENEW_MANY,
            app,
            [run_id for run_id, _ in ordered],
            [token for _, token in ordered],
            lease_ttl,
        )
        return lease_states(leases, {row["run_id"]: row["cancel_requested"] for row in rows})

    async def release_run(self, app: str, run_id: str, token: int) -> None:
        sql = self._q(statements.RELEASE)
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
        nonce = uuid.uuid4()
        row = await self._fetchrow(
            statements.FINISH,
            app,
            run_id,
            token,
            status,
            output,
            error,
            nonce,
            self._channel,
            self._uncapped,
        )
        if row is None:
            row = await self._fetchrow(statements.FINISHED, app, run_id, token, nonce)
        if row is None:
            raise LeaseLostError(f"run {run_id!r}: token {token} no longer owns the run")
        return _run_record(app, run_id, row)

    async def request_cancel(self, app: str, run_id: str) -> RunRecord | None:
        row = await self._fetchrow(statements.CANCEL, app, run_id)
        return None if row is None else _run_record(app, run_id, row)

    async def load_run(
        self, app: str, run_id: str
    ) -> tuple[RunRecord, tuple[StepRecord, ...]] | None:
        rows = await self._fetch(statements.LOAD_RUN, app, run_id)
        if not rows:
            return None
        return _run_record(app, run_id, rows[0]), _step_records(rows)

    async def get_run(self, app: str, run_id: str) -> RunRecord | None:
        row = await self._fetchrow(statements.GET_RUN, app, run_id)
        return None if row is None else _run_record(app, run_id, row)

    async def list_runs(
        self,
        app: str,
        *,
        status: RunStatus | None = None,
        workflow: str | None = None,
        limit: int = 100,
        queue: str | None = None,
        since: float | None = None,
        until: float | None = None,
        id_prefix: str | None = None,
        after: tuple[float, str] | None = None,
    ) -> Sequence[RunRecord]:
        query = ListQuery(app, status, workflow, queue, since, until, id_prefix, after, limit)
        sql, params = statements.list_runs_statement(query)
        rows = await self._fetch(sql, app, *params)
        return [_run_record(app, row["run_id"], row) for row in rows]

    # -- retention ---------------------------------------------------------

    async def delete_run(self, app: str, run_id: str) -> RunRecord | None:
        check_names(app=app, run_id=run_id)
        delete, status = self._q(retention.DELETE_RUN), self._q(retention.RUN_STATUS)
        rows = self._q(retention.DELETE_RUN_ROWS)
        # The run as an earlier attempt deleted it: when the connection died
        # before that attempt's commit was acknowledged, the retry finds no run
        # and answers as the committed attempt would have.
        deleted: list[Any] = []

        async def op(conn: Any) -> Any:
            async with conn.transaction():
                row = await conn.fetchrow(delete, app, run_id)
                if row is None:
                    kept = await conn.fetchval(status, app, run_id)
                    return deleted[0] if kept is None and deleted else kept
                await conn.execute(rows, app, run_id)
                deleted[:] = [row]
            return row

        outcome = await self._call(op)
        if outcome is None:
            return None
        if isinstance(outcome, str):
            raise not_finished(app, run_id, outcome)
        return _run_record(app, run_id, outcome)

    async def prune_runs(
        self,
        app: str,
        *,
        finished_before: float,
        statuses: Sequence[FinalStatus],
        limit: int,
    ) -> int:
        check_prune(app, statuses, limit)
        sql = self._q(retention.PRUNE)
        wanted = list(statuses)
        count: int = await self._call(
            lambda conn: conn.fetchval(sql, app, wanted, finished_before, limit)
        )
        return count

    async def count_prunable_runs(
        self, app: str, *, finished_before: float, statuses: Sequence[FinalStatus]
    ) -> int:
        check_prune(app, statuses)
        sql = self._q(retention.COUNT)
        wanted = list(statuses)
        count: int = await self._call(lambda conn: conn.fetchval(sql, app, wanted, finished_before))
        return count

    # -- listing -----------------------------------------------------------

    async def queue_stats(self, app: str) -> list[QueueCounts]:
        check_names(app=app)
        rows = await self._fetch(statements.QUEUE_STATS, app)
        return merge_counts(
            QueueCounts(row[0], int(row[1]), int(row[2]), int(row[3]), row[4]) for row in rows
        )

    async def requeue_run(
        self, app: str, run_id: str, *, queue: str, steal_from: str | None = None
    ) -> tuple[RunRecord, bool] | None:
        check_names(app=app, run_id=run_id, queue=queue, steal_from=steal_from)
        lock, drop, requeue = (
            self._q(statements.REQUEUE_LOCK),
            self._q(statements.REQUEUE_DROP_FAILED),
            self._q(statements.REQUEUE),
        )

        # Sent again after a lost connection, a requeue that committed finds
        # the run queued and requeues it again: the same answer.
        async def work(conn: Any) -> tuple[RunRecord, bool] | None:
            async with conn.transaction():
                row = await conn.fetchrow(lock, app, run_id)
                if row is None:
                    return None
                run = _run_record(app, run_id, row)
                now = float(row["now_t"])
                wanted, drop_failed = decide_requeue(run, now, steal_from)
                if not wanted:
                    return run, False
                if drop_failed:
                    await conn.execute(drop, app, run_id)
                run = requeued_record(run, queue, now)
                await conn.execute(
                    requeue,
                    *(app, run_id, run.queue, run.error, run.cancel_requested, now),
                    self._channel,
                )
                return run, True

        return await self._call(work)

    async def enqueue_run(self, new: NewRun) -> tuple[RunRecord, bool]:
        check_enqueue(new)
        nonce = uuid.uuid4()
        row = await self._fetchrow(
            statements.ENQUEUE,
            *(new.app, new.run_id, new.workflow, new.inputs, new.parent_run_id),
            *(new.queue, new.priority, new.not_before, nonce, self._channel, new.trace_context),
        )
        if row is None:
            # The run was inserted by a transaction that committed while ours
            # waited for it, after our statement's snapshot: read it now.
            row = await self._fetchrow(statements.ENQUEUED, new.app, new.run_id, nonce)
        if row is None:
            raise StoreError(f"run {new.run_id!r} was deleted while being enqueued")
        return _run_record(new.app, new.run_id, row), bool(row["created"])

    async def wait_for_work(
        self,
        app: str,
        timeout: float,  # noqa: ASYNC109 - the API
        *,
        queues: Sequence[str] = (),
    ) -> bool:
        """Woken by the NOTIFY that enqueues and queued runs' finishes send, from any process.

        One dedicated connection per event loop LISTENs on the schema's
        channel. When it is lost (the server restarted, the session was
        terminated), the next wait opens another and answers True once it
        listens again: what was sent meanwhile went unheard. Until it listens
        the wait lasts ``timeout``, like polling; it never raises for it.
        """
        check_names(app=app)
        return await self._wait_notified(app, timeout, [slot_topic(app, q) for q in queues])

    async def wait_for_signal(self, app: str, timeout: float) -> bool:  # noqa: ASYNC109 - the API
        """Woken by the NOTIFY of every signal sent to a run of ``app``, from any process.

        It shares the LISTEN connection of :meth:`wait_for_work`.
        """
        check_names(app=app)
        return await self._wait_notified(signal_topic(app), timeout)

    async def _wait_notified(
        self,
        topic: str,
        timeout: float,  # noqa: ASYNC109
        also: Sequence[str] = (),
    ) -> bool:
        try:
            pool = self._pool
            if pool is None or self._loop is not asyncio.get_running_loop():
                pool = await self._open_pool()
        except Exception:
            await asyncio.sleep(timeout)
            return False
        listen = self._listen
        listen.ensure(pool, self._channel)
        return await listen.waiters().wait(topic, timeout, also)

    async def claim_queued(
        self,
        app: str,
        queues: Sequence[QueueLimits],
        *,
        owner: str,
        lease_ttl: float,
        limit: int,
    ) -> list[Claim]:
        check_names(app=app, owner=owner)
        for limits in queues:
            check_names(queue_name=limits.name)
        if not queues or limit < 1:
            return []
        for limits in queues:
            self._learn_cap(limits)
        sql = self._q(statements.CLAIM_QUEUED)
        args = (
            app,
            [q.name for q in queues],
            [None if q.concurrency is None else str(q.concurrency) for q in queues],
            [None if q.rate_limit is None else str(q.rate_limit[0]) for q in queues],
            [None if q.rate_limit is None else _as_text(float(q.rate_limit[1])) for q in queues],
            owner,
            lease_ttl,
            limit,
            uuid.uuid4(),
        )
        sent = False

        async def claim(conn: Any) -> list[Any]:
            # A call sent again after a lost connection may find what its
            # first attempt committed: the function then answers those runs
            # (see claim_queued in _postgres_sql), so none is lost to the retry.
            nonlocal sent
            retry, sent = sent, True
            rows: list[Any] = await conn.fetch(sql, *args, retry)
            return rows

        return _claims(app, await self._call(claim))

    def _signal_args(self, app: str, run_id: str, name: str, payload: str) -> tuple[Any, ...]:
        """The parameters of SEND_SIGNAL and SEND_SIGNAL_ONCE; a new nonce each time."""
        return (app, run_id, name, payload, uuid.uuid4(), self._channel, signal_topic(app))

    def _learn_cap(self, limits: QueueLimits) -> None:
        """Remember whether the queue is capped across workers, as its claims say.

        A finish of a run of a queue known to be uncapped sends no NOTIFY:
        it frees no slot another worker could use, and every NOTIFY wakes
        every listening process.
        """
        uncapped = set(self._uncapped)
        if limits.concurrency is None:
            uncapped.add(limits.name)
        else:
            uncapped.discard(limits.name)
        if len(uncapped) != len(self._uncapped):
            self._uncapped = sorted(uncapped)

    async def send_signal(self, app: str, run_id: str, name: str, payload: str) -> int:
        check_signal(app, run_id, name, payload)
        row = await self._fetchrow(
            statements.SEND_SIGNAL, *self._signal_args(app, run_id, name, payload)
        )
        return int(row["idx"])

    async def send_signal_once(self, app: str, run_id: str, name: str, payload: str) -> bool:
        check_signal(app, run_id, name, payload)
        row = await self._fetchrow(
            statements.SEND_SIGNAL_ONCE, *self._signal_args(app, run_id, name, payload)
        )
        return row is not None

    async def park_run(
        self,
        app: str,
        run_id: str,
        token: int,
        *,
        queue: str,
        wake_at: float | None,
        signal: tuple[str, int] | None = None,
    ) -> None:
        check_names(app=app, run_id=run_id, queue_name=queue)
        name, index = signal if signal is not None else (None, None)
        if name is not None:
            check_names(signal_name=name)
        row = await self._fetchrow(
            statements.PARK, app, run_id, token, queue, wake_at, name, index, self._channel
        )
        if not row["parked"]:
            raise LeaseLostError(f"run {run_id!r}: token {token} no longer owns the run")

    async def read_signal(self, app: str, run_id: str, name: str, index: int) -> str | None:
        row = await self._fetchrow(statements.READ_SIGNAL, app, run_id, name, index)
        return None if row is None else str(row["payload"])

    async def read_signals(
        self, app: str, wanted: Sequence[tuple[str, str, int]]
    ) -> dict[tuple[str, str, int], str]:
        check_signal_keys(app, wanted)
        if not wanted:
            return {}
        rows = await self._fetch(
            statements.READ_SIGNALS,
            app,
            [run_id for run_id, _, _ in wanted],
            [name for _, name, _ in wanted],
            [index for _, _, index in wanted],
        )
        return {(row["run_id"], row["name"], row["idx"]): str(row["payload"]) for row in rows}


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
