"""SQLiteStore: the Store contract in one local SQLite file, through aiosqlite.

One connection serves the store, owned by one thread (aiosqlite's, see
``durable._fastpaths.aiosqlite``). Every operation is one plain function run
on that thread, so that a transaction never interleaves with another
coroutine's statements, and costs one hop. No statement ever runs on the
event loop thread: a commit waits for the disk (and, with ``FULL``, an
fsync), and timers and sockets must not wait with it.

Writes are grouped: the step saves, claims and finishes made while the event
loop runs one pass share one transaction (group commit), so the fsync of a
commit is paid once for the whole group and each caller resumes only after
the commit holding its own row succeeded. While a group commits on the
connection thread, the next one gathers.

The SQL and the functions that run on the connection live in
``_sqlite_sql``; this module holds the connection, the file checks and the
batching.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import os
import sqlite3
import time
import urllib.parse
from collections.abc import Callable, Sequence
from typing import Any, Literal, TypeVar

from durable._fastpaths.aiosqlite import ConnectionThread, connection_thread
from durable.errors import (
    ConfigurationError,
    LeaseLostError,
    StoreCorruptedError,
    StoreError,
    StoreUnavailableError,
)
from durable.stores._checks import (
    check_claim,
    check_enqueue,
    check_json,
    check_names,
    check_signal,
    check_step,
)
from durable.stores._claims import ClaimRequest
from durable.stores._listing import ListQuery
from durable.stores._retention import check_prune, not_finished
from durable.stores._rows import lease_states, step_params
from durable.stores._sqlite_retention import count_sync, delete_run_sync, prune_sync
from durable.stores._sqlite_sql import (
    _BUSY,
    _CANTOPEN,
    _CORRUPT,
    _FULL,
    _GET_SQL,
    _HEADER_CHECKS,
    _IOERR,
    _LOCKED,
    _MAGIC,
    _NOTADB,
    _PERM,
    _READ_SIGNAL_SQL,
    _READONLY,
    _SCHEMA,
    _SYNCHRONOUS_PRAGMAS,
    SCHEMA_VERSION,
    _cancel_sync,
    _claim_queued_write,
    _claim_write,
    _enqueue_write,
    _fetchone,
    _finish_write,
    _is_busy,
    _list_sync,
    _load_sync,
    _migrate,
    _Outcome,
    _park_sync,
    _queue_stats_sync,
    _read_signals_sync,
    _release_sync,
    _renew_many_sync,
    _renew_sync,
    _requeue_write,
    _run_record,
    _schema_version,
    _send_signal_once_sync,
    _send_signal_sync,
    _step_write,
    _Write,
    _write_batch_sync,
    _write_transaction,
)
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

__all__ = ["SCHEMA_VERSION", "SQLiteStore"]

_T = TypeVar("_T")


class SQLiteStore(Store):
    """A Store in a local SQLite file: durable across crashes of the process.

    ``path`` is the database file; it is created with mode 0600 when missing.
    The file is opened in WAL mode on first use, so readers never block the
    writer, and several processes on the same machine may share it.

    ``synchronous="FULL"`` (the default) makes every commit survive a power
    loss or OS crash. ``"NORMAL"`` is faster: a commit still survives a crash of
    the process, but the last commits before a power loss or OS crash may be
    lost (the database itself stays consistent).

    ``busy_timeout`` is how long, in seconds, an operation waits for another
    connection's write transaction before it fails with
    :class:`~durable.errors.StoreUnavailableError`.

    Every statement runs on the connection's own thread, never on the event
    loop's: the loop keeps serving timers and sockets while a commit waits for
    the disk.

    A file that is not a SQLite database, or a truncated one, raises
    :class:`~durable.errors.StoreCorruptedError` from :meth:`open` and is left
    untouched.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] = "durable.db",
        *,
        synchronous: Literal["FULL", "NORMAL"] = "FULL",
        busy_timeout: float = 30.0,
    ) -> None:
        path = os.fspath(path)
        if not path:
            raise ConfigurationError("SQLite path must not be empty")
        mode = str(synchronous).upper()
        if mode not in _SYNCHRONOUS_PRAGMAS:
            raise ConfigurationError(f"synchronous must be 'FULL' or 'NORMAL', got {synchronous!r}")
        try:
            timeout = float(busy_timeout)
        except (TypeError, ValueError):
            timeout = math.nan
        if not 0 <= timeout < math.inf:
            raise ConfigurationError(
                f"busy_timeout must be a finite number of seconds >= 0, got {busy_timeout!r}"
            )
        self._path = path
        self._synchronous = mode
        self._busy_timeout = timeout
        self._thread: ConnectionThread | None = None
        # Made by the connector on the connection thread, and used there only:
        # the event loop thread merely passes it along to the functions it queues.
        self._db: sqlite3.Connection | None = None
        # State bound to the event loop that uses the store; reset when it changes.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._open_lock = asyncio.Lock()
        # Writes (step saves, claims, finishes) waiting to be committed as a group.
        self._pending: list[tuple[_Write, asyncio.Future[_Outcome]]] = []
        self._flush_scheduled = False
        # The group on the connection thread now; writes queue in _pending meanwhile.
        self._in_flight: asyncio.Future[None] | None = None

    @classmethod
    def from_url(cls, url: str) -> SQLiteStore:
        """A store for ``sqlite:///relative/path`` or ``sqlite:////absolute/path``.

        Query parameters ``synchronous`` and ``busy_timeout`` set the options of
        the same name, e.g. ``sqlite:///jobs.db?synchronous=NORMAL``.
        """
        parts = urllib.parse.urlsplit(url)
        if parts.scheme.lower() != "sqlite":
            raise ConfigurationError(f"not a sqlite:// URL: {url!r}")
        if parts.netloc or not parts.path.startswith("/") or len(parts.path) < 2:
            raise ConfigurationError(
                f"SQLite URL {url!r} must look like 'sqlite:///relative/path' "
                "or 'sqlite:////absolute/path'"
            )
        path = urllib.parse.unquote(parts.path[1:])
        options = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
        synchronous = options.pop("synchronous", "FULL").upper()
        raw_timeout = options.pop("busy_timeout", "30")
        if options:
            raise ConfigurationError(
                f"SQLite URL {url!r}: unknown options {sorted(options)}; "
                "known: synchronous, busy_timeout"
            )
        mode: Literal["FULL", "NORMAL"]
        if synchronous == "FULL":
            mode = "FULL"
        elif synchronous == "NORMAL":
            mode = "NORMAL"
        else:
            raise ConfigurationError(
                f"SQLite URL {url!r}: synchronous must be FULL or NORMAL, got {synchronous!r}"
            )
        try:
            busy_timeout = float(raw_timeout)
        except ValueError:
            raise ConfigurationError(
                f"SQLite URL {url!r}: busy_timeout must be a number of seconds"
            ) from None
        return cls(path, synchronous=mode, busy_timeout=busy_timeout)

    @property
    def path(self) -> str:
        """The database file."""
        return self._path

    def __repr__(self) -> str:
        return f"SQLiteStore({self._path!r}, synchronous={self._synchronous!r})"

    # -- connection --------------------------------------------------------

    async def open(self) -> None:
        self._enter()
        if self._thread is not None:
            return
        async with self._open_lock:
            if self._thread is not None:
                return
            thread = connection_thread(self._connect_sync)
            try:
                await thread.open()
            except sqlite3.Error as exc:
                raise self._translate(exc) from exc
            self._thread = thread

    async def close(self) -> None:
        self._enter()
        async with self._open_lock:
            thread = self._thread
            if thread is None:
                return
            # Writes already made are committed before the connection goes.
            while self._pending or self._in_flight is not None:
                if self._in_flight is None:
                    self._flush()
                else:
                    await asyncio.wait({self._in_flight})
            self._thread = None
            self._db = None
            try:
                await thread.close()
            except sqlite3.Error as exc:
                raise self._translate(exc) from exc

    def _enter(self) -> asyncio.AbstractEventLoop:
        """The running event loop; the loop-bound state is reset when it changed.

        Futures, the scheduled flush and the open lock belong to the loop that
        made them. A call still on the connection thread when its loop ended
        runs to its end there; the next loop's calls queue behind it.
        """
        loop = asyncio.get_running_loop()
        if loop is self._loop:
            return loop
        stale, self._pending = self._pending, []
        self._loop = loop
        self._flush_scheduled = False
        self._in_flight = None
        self._open_lock = asyncio.Lock()
        for _, future in stale:
            # Writes never sent: their callers are on the old loop, if anywhere.
            error = StoreError(
                f"SQLite database {self._path!r}: write dropped, its event loop stopped running"
            )
            _post(future.get_loop(), _set_result, future, error)
        return loop

    @staticmethod
    def _run_on_thread(
        thread: ConnectionThread, done: asyncio.Future[Any], fn: Callable[[], Any]
    ) -> None:
        """Queue ``fn`` for the connection thread; its outcome goes to ``done``.

        The outcome is posted to the loop of ``done`` by the connection thread,
        and dropped when that loop has closed: a call left running when its
        loop ended neither kills the thread nor reaches a dead loop.
        """
        loop = done.get_loop()

        def work() -> None:
            try:
                result = fn()
            except BaseException as exc:  # handed to the caller, as aiosqlite does
                _post(loop, _set_exception, done, exc)
            else:
                _post(loop, _set_result, done, result)

        thread.submit(work)

    async def _call(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Run ``fn(db, *args)`` on the connection thread; sqlite errors translated."""
        loop = self._enter()
        if self._thread is None:
            await self.open()
        thread, db = self._thread, self._db
        if thread is None or db is None:
            raise StoreError(f"SQLite database {self._path!r} is closed")
        done: asyncio.Future[_T] = loop.create_future()
        # A cancelled caller leaves the function running on the thread.
        self._run_on_thread(thread, done, functools.partial(fn, db, *args))
        try:
            return await done
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc

    def _translate(self, exc: sqlite3.Error) -> StoreError:
        """The one place where sqlite3 errors become durable errors."""
        code = getattr(exc, "sqlite_errorcode", None)
        primary = code & 0xFF if isinstance(code, int) else None
        text = str(exc)
        where = f"SQLite database {self._path!r}"
        if primary in (_CORRUPT, _NOTADB) or "not a database" in text or "malformed" in text:
            return StoreCorruptedError(f"{where} is damaged or is not a database: {text}")
        if primary in (_BUSY, _LOCKED) or "locked" in text:
            return StoreUnavailableError(
                f"{where} stayed locked by another connection for more than "
                f"busy_timeout={self._busy_timeout:g} s: {text}"
            )
        if primary == _FULL:
            return StoreUnavailableError(f"{where}: the disk is full: {text}")
        if primary in (_READONLY, _PERM, _CANTOPEN):
            return StoreUnavailableError(f"{where} cannot be opened for writing: {text}")
        if primary == _IOERR:
            return StoreUnavailableError(f"{where}: I/O error: {text}")
        return StoreError(f"{where}: {text}")

    # Runs on the connection thread, which alone uses the connection from then on:
    # sqlite3's same-thread check stays on to keep it that way.
    def _connect_sync(self) -> sqlite3.Connection:
        if self._path != ":memory:":
            self._prepare_file()
        db = sqlite3.connect(self._path, timeout=self._busy_timeout, isolation_level=None)
        deadline = time.monotonic() + self._busy_timeout
        delay = 0.002
        try:
            while True:
                try:
                    self._initialize(db)
                    break
                except sqlite3.OperationalError as exc:
                    # Switching a new file to WAL and creating the schema can
                    # answer SQLITE_BUSY at once, without the busy handler, when
                    # several processes open the same new file together.
                    if not _is_busy(exc) or time.monotonic() >= deadline:
                        raise
                    if db.in_transaction:
                        db.rollback()
                    time.sleep(delay)
                    delay = min(delay * 2, 0.1)
        except BaseException:
            db.close()
            raise
        self._db = db
        return db

    def _initialize(self, db: sqlite3.Connection) -> None:
        # Read before any write: a damaged page 1 fails here, untouched.
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        db.execute("PRAGMA journal_mode = WAL").fetchone()
        db.execute(_SYNCHRONOUS_PRAGMAS[self._synchronous])
        self._ensure_schema(db)

    def _prepare_file(self) -> None:
        """Create a missing file as 0600; refuse a file that is not SQLite, unmodified."""
        path = self._path
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        except OSError as exc:
            raise StoreUnavailableError(
                f"cannot create SQLite database {path!r}: {exc.strerror}"
            ) from exc
        else:
            os.close(fd)
            return
        # Another process may be writing the first page of a file it just
        # created: judge the header again a little later before calling it
        # damaged. A file that really is damaged stays so.
        for attempt in range(_HEADER_CHECKS):
            try:
                self._check_header()
                return
            except StoreCorruptedError:
                if attempt == _HEADER_CHECKS - 1:
                    raise
                time.sleep(0.01)

    def _check_header(self) -> None:
        path = self._path
        try:
            with open(path, "rb") as f:
                header = f.read(100)
                size = os.fstat(f.fileno()).st_size
        except OSError as exc:
            raise StoreUnavailableError(
                f"cannot read SQLite database {path!r}: {exc.strerror}"
            ) from exc
        if size == 0:
            return
        if len(header) < 100 or not header.startswith(_MAGIC):
            raise StoreCorruptedError(
                f"{path!r} is not a SQLite database (bad header); it was left untouched"
            )
        raw_page_size = int.from_bytes(header[16:18], "big")
        page_size = 65536 if raw_page_size == 1 else raw_page_size
        if page_size < 512 or page_size & (page_size - 1):
            raise StoreCorruptedError(
                f"SQLite database {path!r} has an invalid header; it was left untouched"
            )
        # The page count in the header is trusted only when its validity stamp
        # matches. With a WAL or rollback journal beside it, a shorter file may
        # be a crash SQLite is about to repair, so it is not judged here.
        pages = int.from_bytes(header[28:32], "big")
        if (
            header[24:28] == header[92:96]
            and size < pages * page_size
            and not os.path.exists(path + "-wal")
            and not os.path.exists(path + "-journal")
        ):
            raise StoreCorruptedError(
                f"SQLite database {path!r} is truncated ({size} bytes, header says "
                f"{pages * page_size}); it was left untouched"
            )

    def _ensure_schema(self, db: sqlite3.Connection) -> None:
        if _schema_version(db) == SCHEMA_VERSION:
            return
        with _write_transaction(db):
            version = _schema_version(db)
            if version is None:
                for statement in _SCHEMA:
                    db.execute(statement)
                db.execute("INSERT INTO durable_schema (version) VALUES (1)")
                version = 1
            elif version > SCHEMA_VERSION:
                raise StoreError(
                    f"SQLite database {self._path!r} has schema version {version}, newer than "
                    f"this python-durable supports ({SCHEMA_VERSION}); upgrade python-durable"
                )
            if version < SCHEMA_VERSION:
                # In the same transaction: another process sees the old schema or the new.
                _migrate(db, version)

    # -- runs --------------------------------------------------------------

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
        request = ClaimRequest(new, owner, lease_ttl, steal_from, resume)
        claim: Claim = await self._write(_claim_write(request))
        return claim

    async def load_run(
        self, app: str, run_id: str
    ) -> tuple[RunRecord, tuple[StepRecord, ...]] | None:
        return await self._call(_load_sync, app, run_id)

    async def get_run(self, app: str, run_id: str) -> RunRecord | None:
        row = await self._call(_fetchone, _GET_SQL, (app, run_id))
        return None if row is None else _run_record(app, run_id, row)

    async def renew_lease(self, app: str, run_id: str, token: int, lease_ttl: float) -> LeaseState:
        row = await self._call(_renew_sync, app, run_id, token, lease_ttl)
        if row is None:
            return LeaseState.LOST
        return LeaseState.CANCEL_REQUESTED if row[0] else LeaseState.OWNED

    async def renew_leases(
        self, app: str, leases: Sequence[tuple[str, int]], lease_ttl: float
    ) -> dict[str, LeaseState]:
        """Every lease renewed in one write transaction: one commit for the batch."""
        if not leases:
            return {}
        renewed = await self._call(_renew_many_sync, app, list(leases), lease_ttl)
        return lease_states(leases, renewed)

    async def release_run(self, app: str, run_id: str, token: int) -> None:
        await self._call(_release_sync, app, run_id, token)

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
        row = await self._write(_finish_write(app, run_id, token, status, output, error))
        if row is None:
            raise LeaseLostError(f"run {run_id!r}: token {token} no longer owns the run")
        return _run_record(app, run_id, row)

    async def request_cancel(self, app: str, run_id: str) -> RunRecord | None:
        row = await self._call(_cancel_sync, app, run_id)
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
        rows = await self._call(_list_sync, query)
        return [_run_record(app, row[0], row[1:]) for row in rows]

    async def queue_stats(self, app: str) -> list[QueueCounts]:
        check_names(app=app)
        return await self._call(_queue_stats_sync, app)

    async def requeue_run(
        self, app: str, run_id: str, *, queue: str, steal_from: str | None = None
    ) -> tuple[RunRecord, bool] | None:
        check_names(app=app, run_id=run_id, queue=queue, steal_from=steal_from)
        answer: tuple[RunRecord, bool] | None = await self._write(
            _requeue_write(app, run_id, queue, steal_from)
        )
        return answer

    # -- queues ------------------------------------------------------------

    async def enqueue_run(self, new: NewRun) -> tuple[RunRecord, bool]:
        check_enqueue(new)
        stored: tuple[RunRecord, bool] = await self._write(_enqueue_write(new))
        return stored

    async def claim_queued(
        self,
        app: str,
        queues: Sequence[QueueLimits],
        *,
        owner: str,
        lease_ttl: float,
        limit: int,
    ) -> list[Claim]:
        """Counts and starts in one write transaction, shared with the group commit's."""
        check_names(app=app, owner=owner)
        if limit <= 0 or not queues:
            return []
        claims: list[Claim] = await self._write(
            _claim_queued_write(app, tuple(queues), owner, lease_ttl, limit)
        )
        return claims

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
        if signal is not None:
            check_names(signal_name=signal[0])
        if not await self._call(_park_sync, app, run_id, token, queue, wake_at, signal):
            raise LeaseLostError(f"run {run_id!r}: token {token} no longer owns the run")

    # -- signals -----------------------------------------------------------

    async def send_signal(self, app: str, run_id: str, name: str, payload: str) -> int:
        check_signal(app, run_id, name, payload)
        return await self._call(_send_signal_sync, app, run_id, name, payload)

    async def send_signal_once(self, app: str, run_id: str, name: str, payload: str) -> bool:
        check_signal(app, run_id, name, payload)
        stored: bool = await self._call(_send_signal_once_sync, app, run_id, name, payload)
        return stored

    async def read_signal(self, app: str, run_id: str, name: str, index: int) -> str | None:
        row = await self._call(_fetchone, _READ_SIGNAL_SQL, (app, run_id, name, index))
        return None if row is None else str(row[0])

    async def read_signals(
        self, app: str, wanted: Sequence[tuple[str, str, int]]
    ) -> dict[tuple[str, str, int], str]:
        """Every wanted signal in one hop to the connection thread."""
        check_signal_keys(app, wanted)
        if not wanted:
            return {}
        return await self._call(_read_signals_sync, app, list(wanted))

    # -- retention ---------------------------------------------------------

    async def delete_run(self, app: str, run_id: str) -> RunRecord | None:
        check_names(app=app, run_id=run_id)
        outcome = await self._call(delete_run_sync, app, run_id)
        if isinstance(outcome, str):
            raise not_finished(app, run_id, outcome)
        return outcome

    async def prune_runs(
        self,
        app: str,
        *,
        finished_before: float,
        statuses: Sequence[FinalStatus],
        limit: int,
    ) -> int:
        check_prune(app, statuses, limit)
        return await self._call(prune_sync, app, finished_before, tuple(statuses), limit)

    async def count_prunable_runs(
        self, app: str, *, finished_before: float, statuses: Sequence[FinalStatus]
    ) -> int:
        check_prune(app, statuses)
        return await self._call(count_sync, app, finished_before, tuple(statuses))

    # -- writes: group commit ------------------------------------------------

    async def save_step(self, app: str, run_id: str, token: int, step: StepRecord) -> SavedStep:
        check_step(step)
        saved: SavedStep | None = await self._write(
            _step_write(step_params(app, run_id, token, step), step)
        )
        if saved is None:
            raise LeaseLostError(f"run {run_id!r}: token {token} no longer owns the run")
        return saved

    async def _write(self, write: _Write) -> Any:
        """Commit ``write`` with the others made meanwhile (group commit); its answer.

        Step saves, claims and finishes made by coroutines that run in the same
        pass of the event loop share one transaction and one fsync; while a
        group commits on the connection thread, the next one gathers.
        """
        loop = self._enter()
        if self._thread is None:
            await self.open()
        future: asyncio.Future[_Outcome] = loop.create_future()
        self._pending.append((write, future))
        if self._in_flight is None and not self._flush_scheduled:
            # Not sent at once: the writes made in the rest of this pass join it.
            self._flush_scheduled = True
            loop.call_soon(self._scheduled_flush, loop)
        outcome = await future
        if isinstance(outcome, Exception):
            if isinstance(outcome, sqlite3.Error):
                raise self._translate(outcome) from outcome
            raise outcome
        return outcome

    def _scheduled_flush(self, loop: asyncio.AbstractEventLoop) -> None:
        # Scheduled on a loop the store has since left: that loop's writes were dropped.
        if loop is self._loop:
            self._flush()

    def _flush(self) -> None:
        """Send the queued writes to the connection thread, unless a group is there already."""
        self._flush_scheduled = False
        if self._in_flight is None and self._pending:
            self._send_batch()

    def _send_batch(self) -> None:
        """Put every queued write on the connection thread as one transaction.

        While that group commits, new writes queue up and form the next group
        (sent by ``_batch_done``), so the group size follows the load by itself.
        The group belongs to no caller: a cancelled caller cannot strand the
        outcome of the others.
        """
        batch, self._pending = self._pending, []
        thread, db = self._thread, self._db
        if thread is None or db is None:
            closed = StoreError(f"SQLite database {self._path!r} is closed")
            for _, future in batch:
                if not future.done():
                    future.set_result(closed)
            return
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._in_flight = done
        writes = [write for write, _ in batch]

        def commit() -> None:
            # On the connection thread. The answers go straight to the callers'
            # futures in the one callback posted back: no future in between,
            # which would cost the loop another pass per group.
            try:
                outcomes: list[_Outcome] | BaseException = _write_batch_sync(db, writes)
            except BaseException as exc:  # handed to the callers, as aiosqlite does
                outcomes = exc
            _post(loop, self._batch_done, batch, done, outcomes)

        thread.submit(commit)

    def _batch_done(
        self,
        batch: list[tuple[_Write, asyncio.Future[_Outcome]]],
        done: asyncio.Future[None],
        outcomes: list[_Outcome] | BaseException,
    ) -> None:
        if isinstance(outcomes, BaseException):
            error = outcomes if isinstance(outcomes, Exception) else StoreError(repr(outcomes))
            outcomes = [error] * len(batch)
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if not future.done():
                future.set_result(outcome)
        if not done.done():
            done.set_result(None)
        if self._in_flight is done:
            # Not when the store moved to another loop meanwhile: that loop's
            # writes are its own.
            self._in_flight = None
            self._flush()


def _set_result(future: asyncio.Future[Any], result: Any) -> None:
    if not future.done():
        future.set_result(result)


def _set_exception(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


def _post(loop: asyncio.AbstractEventLoop, callback: Callable[..., None], *args: Any) -> None:
    """Run ``callback(*args)`` on ``loop`` from any thread; nothing when the loop has closed."""
    # "Event loop is closed": nobody is left to wait for the answer.
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(callback, *args)
