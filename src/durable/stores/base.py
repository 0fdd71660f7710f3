"""The Store contract: the few domain operations the engine needs from a backend.

A store keeps three kinds of records, namespaced by app name:

- a **run** (:class:`RunRecord`): one execution of a workflow, keyed by run id;
- its **steps** (:class:`StepRecord`): checkpointed task outcomes, keyed by step id;
- **signals**: payloads sent to a run, kept in arrival order per signal name.

Values (inputs, results, errors, payloads) arrive already encoded as JSON text;
a store saves and returns them byte-for-byte and never interprets them.

Every write made on behalf of an executing run carries the run's fencing
*token*. :meth:`Store.claim_run` hands out a new, larger token whenever
ownership changes, and a write whose token is not the current one is rejected
with :class:`~durable.errors.LeaseLostError`. That is what stops a paused
process that lost its lease (a "zombie") from overwriting the new owner's work.

Lease expiry is computed from the store's clock (the database server's clock
for networked stores), so processes on different machines agree on it.

``durable.testing.StoreContract`` is the test suite every store must pass;
run it against your own subclass.

Every store rejects a NUL character in ids and names
(:class:`~durable.errors.RunIdError`) and in JSON text
(:class:`~durable.errors.SerializationError`), because PostgreSQL text cannot
hold one: a workflow that works on one store then works on all of them.
"""

from __future__ import annotations

import asyncio
import enum
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Literal, Self

from durable.stores._checks import check_names

RunStatus = Literal["queued", "running", "completed", "failed", "cancelled", "waiting"]
StepStatus = Literal["completed", "failed"]
FinalStatus = Literal["completed", "failed", "cancelled"]

# New statuses go last: the Redis store's scripts index statuses by their position here.
RUN_STATUSES: tuple[RunStatus, ...] = (
    "running",
    "completed",
    "failed",
    "cancelled",
    "queued",
    "waiting",
)
# The statuses of a finished run: only these may be deleted or pruned.
FINAL_STATUSES: tuple[FinalStatus, ...] = ("completed", "failed", "cancelled")


@dataclass(frozen=True, slots=True)
class RunRecord:
    """A run as stored. JSON fields hold encoded text, never Python objects."""

    app: str
    run_id: str
    workflow: str
    status: RunStatus
    inputs: str
    output: str | None
    error: str | None
    owner: str | None
    token: int
    lease_expires_at: float | None
    attempts: int
    cancel_requested: bool
    parent_run_id: str | None
    created_at: float
    updated_at: float
    # Set for a run recorded by enqueue_run: the queue it waits in, its
    # priority (lower first) and the store time before which it is not claimed.
    # A parked (``waiting``) run has a queue too, and ``not_before`` is its
    # wake time (None: only a signal wakes it).
    queue: str | None = None
    priority: int = 0
    not_before: float | None = None
    # When the run last started executing (its claim from the queue or its
    # creation by claim_run); None while queued. Rate limits count these.
    started_at: float | None = None
    # Opaque text an observer stored with the run when it was recorded (the
    # caller's W3C trace context, say), so that later executions continue it.
    trace_context: str | None = None

    @property
    def finished_at(self) -> float | None:
        """When a finished run finished (its last change, ``updated_at``); None until then.

        A finished run is written again only when it changes status (a failed
        run cancelled, or restarted), so its ``updated_at`` is the time it
        reached the status it has. Retention counts from it.
        """
        return self.updated_at if self.status in FINAL_STATUSES else None


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One checkpointed task call of a run.

    ``position`` is the call order of the step within the run (0, 1, 2, ...);
    replay uses it to notice code that no longer calls the same tasks.
    """

    step_id: str
    position: int
    task: str
    status: StepStatus
    result: str | None
    error: str | None
    attempts: int
    started_at: float
    finished_at: float


@dataclass(frozen=True, slots=True)
class NewRun:
    """What a caller knows about a run it wants to execute or enqueue.

    ``queue``, ``priority`` and ``not_before`` are read by
    :meth:`Store.enqueue_run` only.
    """

    app: str
    run_id: str
    workflow: str
    inputs: str
    parent_run_id: str | None = None
    queue: str | None = None
    priority: int = 0
    not_before: float | None = None
    # Kept with the run when this creates it (claim_run, enqueue_run); never
    # changed afterwards.
    trace_context: str | None = None


@dataclass(frozen=True, slots=True)
class QueueLimits:
    """The flow control of one queue, as :meth:`Store.claim_queued` enforces it.

    ``concurrency`` caps the queue's runs with status ``running`` (None: no
    cap); ``rate_limit`` = ``(n, seconds)`` caps how many of its runs started
    (``started_at``) within the last ``seconds`` by the store's clock.
    """

    name: str
    concurrency: int | None = None
    rate_limit: tuple[int, float] | None = None


@dataclass(frozen=True, slots=True)
class Claim:
    """The answer to :meth:`Store.claim_run`.

    ``acquired`` is true when the caller now owns the run; ``run.token`` is then
    its fencing token. ``steps`` are all the run's steps ordered by position,
    returned with the run so that replay costs one round trip.
    """

    run: RunRecord
    steps: tuple[StepRecord, ...]
    acquired: bool


@dataclass(frozen=True, slots=True)
class SavedStep:
    """The answer to :meth:`Store.save_step`.

    ``step`` is the record now stored under that id: the caller's own, or the
    one another writer committed first (first writer wins).
    """

    step: StepRecord
    cancel_requested: bool


@dataclass(frozen=True, slots=True)
class QueueCounts:
    """The answer of :meth:`Store.queue_stats` for one queue.

    ``ready``: queued runs that may start now; ``delayed``: queued runs whose
    ``not_before`` is still ahead; ``running``: its runs with status
    ``running``; ``oldest_ready_at``: the ``created_at`` (enqueue time) of its
    oldest ready run, None when none is ready. Parked runs (status
    ``waiting``) are in none of these counts: they hold no slot of the queue
    until they wake, and a queue holding only parked runs is not listed.
    """

    queue: str
    ready: int
    delayed: int
    running: int
    oldest_ready_at: float | None


class LeaseState(enum.Enum):
    """What a heartbeat learned about the caller's ownership of a run."""

    OWNED = "owned"
    CANCEL_REQUESTED = "cancel_requested"
    LOST = "lost"


class Store(ABC):
    """Persistence backend for runs, steps and signals.

    Subclasses implement the abstract methods; each must be atomic on its own.
    A store that retries an operation internally (after a lost connection,
    say) must make the retry invisible: a claim, finish or signal whose first
    attempt committed must answer as that attempt would have, never report a
    lost lease, a missed claim or a duplicate signal because of the retry.
    Stores are used as async context managers or opened lazily by the engine
    on first use (``open`` must be idempotent).

    A store may be used from successive event loops (several ``asyncio.run``
    calls, say), one at a time: it must reconnect when the running loop
    changes, and connections opened on a loop that has closed are dropped
    without awaiting anything on it (nothing may be left to warn about an
    unclosed connection). ``close`` may be called from a later loop too.
    """

    async def open(self) -> None:  # noqa: B027 - optional hook
        """Connect and create or migrate the schema. Idempotent."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections. Idempotent."""

    async def setup(self) -> None:
        """The same as :meth:`open` (python-durable 0.2's name for it)."""
        await self.open()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @abstractmethod
    async def claim_run(
        self,
        new: NewRun,
        *,
        owner: str,
        lease_ttl: float,
        steal_from: str | None = None,
        resume: bool = False,
    ) -> Claim:
        """Create the run, or take ownership of it when allowed; atomically.

        - absent: insert it as ``running`` (token 1, attempts 1, ``started_at``
          now, no queue); acquired.
        - another workflow name, or inputs other than the stored ones (compared
          as text): return it unchanged, not acquired. The caller reports the
          conflict; a failed run must keep its failed steps.
        - ``completed`` or ``waiting`` (parked: only ``claim_queued`` wakes
          it): not acquired.
        - ``queued``: start it here: ``running`` with token + 1, attempts + 1,
          the owner and lease, ``started_at`` now (queue, priority and
          ``not_before`` kept, ``not_before`` not waited for); acquired.
        - ``failed``: delete its failed steps, set ``running`` with a new token
          and owner, clear the error, add an attempt; acquired.
        - ``cancelled``: like ``failed`` when ``resume`` is true (also clearing
          ``cancel_requested``); otherwise not acquired.
        - ``running``: acquired (new token, owner and lease, one more attempt;
          steps, ``cancel_requested`` and ``error`` kept) when its lease has
          expired by the store's clock or its owner equals ``steal_from``;
          otherwise not acquired.

        Stored inputs are never replaced. The returned steps are all of the
        run's steps after the change, ordered by position.
        """

    @abstractmethod
    async def save_step(self, app: str, run_id: str, token: int, step: StepRecord) -> SavedStep:
        """Store a step unless one with that id exists (first writer wins).

        Raises :class:`~durable.errors.LeaseLostError` when the run is not
        ``running`` or ``token`` is not its current token; nothing is written.
        """

    @abstractmethod
    async def renew_lease(self, app: str, run_id: str, token: int, lease_ttl: float) -> LeaseState:
        """Extend the lease to now + ``lease_ttl`` if ``token`` still owns the run."""

    async def renew_leases(
        self, app: str, leases: Sequence[tuple[str, int]], lease_ttl: float
    ) -> dict[str, LeaseState]:
        """Renew many leases at once: :meth:`renew_lease` for each ``(run_id, token)``.

        Returns run id -> state for every pair, each with the meaning
        :meth:`renew_lease` gives it (an unknown or finished run, or a token
        that no longer owns it, is ``LOST``); run ids are distinct. Empty
        ``leases`` return ``{}``. The renewals are independent of one another:
        on an error, some may have been made.

        A heartbeat renews every run of its process with one call. This
        default calls :meth:`renew_lease` once per run; override it to renew
        the whole batch in one round trip or transaction.
        """
        return {
            run_id: await self.renew_lease(app, run_id, token, lease_ttl)
            for run_id, token in leases
        }

    @abstractmethod
    async def release_run(self, app: str, run_id: str, token: int) -> None:
        """Let anyone take over at once: expire the lease if ``token`` owns the run.

        Used when an execution is interrupted (its task cancelled) without an
        outcome. Status stays ``running``, the owner is cleared (so no
        ``steal_from`` matches it any more); a lost token is ignored silently.
        """

    @abstractmethod
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
        """Record the run's outcome and drop its owner and lease.

        Raises :class:`~durable.errors.LeaseLostError` when ``token`` does not
        own the running run; nothing is written.
        """

    @abstractmethod
    async def request_cancel(self, app: str, run_id: str) -> RunRecord | None:
        """Ask a run to stop; returns the run after the change, None if absent.

        A ``running`` run gets ``cancel_requested`` set (its owner stops at the
        next step boundary); a ``queued``, ``waiting`` or ``failed`` run
        becomes ``cancelled`` at once; completed and cancelled runs are
        unchanged.
        """

    @abstractmethod
    async def load_run(
        self, app: str, run_id: str
    ) -> tuple[RunRecord, tuple[StepRecord, ...]] | None:
        """The run and all its steps ordered by position, or None."""

    async def get_run(self, app: str, run_id: str) -> RunRecord | None:
        """The run without its steps, or None. Override when cheaper."""
        loaded = await self.load_run(app, run_id)
        return None if loaded is None else loaded[0]

    @abstractmethod
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
        """Runs of the app, newest first, at most ``limit`` (at least 1) of them.

        Ordered by ``created_at`` descending, then run id descending (by code
        point), so the order is total and a page ends at a definite place.
        Every filter given must hold: ``status``, ``workflow`` and ``queue``
        equal; ``since <= created_at < until``; the run id starts with
        ``id_prefix`` (taken literally: no character is a wildcard); and,
        with ``after`` = ``(created_at, run_id)`` of the last run of the
        previous page, the run comes after it in this order (keyset paging).

        A durable store answers each filter from an index (the in-memory
        store may filter its dict), never by reading every run of the app.
        """

    async def queue_stats(self, app: str) -> list[QueueCounts]:
        """The counts of each queue of ``app`` that holds a queued or running run, by name.

        ``ready`` and ``delayed`` split the queued runs by ``not_before``
        against the store's clock. Read from the queue indexes only.
        """
        raise NotImplementedError(f"{type(self).__name__} does not support queues")

    async def requeue_run(
        self, app: str, run_id: str, *, queue: str, steal_from: str | None = None
    ) -> tuple[RunRecord, bool] | None:
        """Put the run (back) in its queue as ``queued``, atomically; ``(run, requeued)``.

        None when the run does not exist. Requeued (``requeued`` true, the
        run as stored after the change):

        - ``queued``: its ``not_before`` is cleared (claimable now);
        - ``failed`` or ``cancelled``: its failed steps are deleted, its error
          and ``cancel_requested`` cleared, as :meth:`claim_run` restarts a
          failed run (or resumes a cancelled one), then it waits in its queue;
        - ``running`` whose lease has expired by the store's clock, or whose
          owner equals ``steal_from``: owner and lease dropped (its token no
          longer owns it: writes of the old owner are refused).

        A requeued run keeps its queue, or gets ``queue`` when it had none;
        its ``not_before`` is None, owner and lease None, ``cancel_requested``
        false for a failed or cancelled run (kept otherwise). Any other run
        (completed, running under a live lease, or parked as ``waiting``: it
        wakes at its own time or on its signal, and woken early it would only
        park again) is returned unchanged with ``requeued`` false. Workers
        waiting in :meth:`wait_for_work` are woken.
        """
        raise NotImplementedError(f"{type(self).__name__} does not support queues")

    async def enqueue_run(self, new: NewRun) -> tuple[RunRecord, bool]:
        """Record the run as ``queued`` unless a run has that id; ``(stored run, created)``.

        A new run is stored with ``new.queue`` (required), ``priority`` and
        ``not_before``, token 0, attempts 0, no owner or lease. An existing run
        (any status, any workflow or inputs) is returned unchanged with
        ``created`` false: the caller reports a conflict.
        """
        raise NotImplementedError(f"{type(self).__name__} does not support queues")

    async def claim_queued(
        self,
        app: str,
        queues: Sequence[QueueLimits],
        *,
        owner: str,
        lease_ttl: float,
        limit: int,
    ) -> list[Claim]:
        """Start up to ``limit`` queued runs of ``app``'s ``queues``, atomically.

        A run is eligible when ``queued`` and its ``not_before`` (if any) has
        passed by the store's clock. Within a queue, lower ``priority`` first,
        then in enqueue order (FIFO). Each queue's :class:`QueueLimits` hold
        across every caller of every process: concurrent calls never hand out
        one run twice nor together exceed a cap. Each run taken becomes
        ``running`` as :meth:`claim_run` would start it (token + 1,
        attempts + 1, owner, lease, ``started_at`` now). Returns acquired
        claims, with each run's steps.

        A parked run (``waiting``, see :meth:`park_run`) of a queue is eligible
        once its ``not_before`` is set and has passed; due parked runs of a
        queue are taken before its queued ones, earliest wake time first,
        within the same caps. Waking one makes it ``running`` with token + 1,
        the owner and lease; ``attempts`` and ``started_at`` are kept (a wake
        is not a new start: rate limits do not count it).
        """
        raise NotImplementedError(f"{type(self).__name__} does not support queues")

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
        """Park the running run that ``token`` owns until ``wake_at`` or a signal.

        The run becomes ``waiting`` with no owner or lease, so it holds no
        slot of its queue; it keeps its queue (``queue`` is used for a run
        that has none) and ``not_before`` becomes ``wake_at`` (None: only a
        signal wakes it). :meth:`send_signal` for a waiting run sets its
        ``not_before`` to now and wakes workers as an enqueue does. When
        ``signal`` = ``(name, index)`` names a signal already stored, the run
        is parked due at once: a signal sent while the run decided to park is
        never missed. A run already waiting with this ``token`` (a retried
        call) is left as it is. Raises :class:`~durable.errors.LeaseLostError`
        when ``token`` does not own the run.
        """
        raise NotImplementedError(f"{type(self).__name__} does not support parked runs")

    async def wait_for_work(
        self,
        app: str,
        timeout: float,  # noqa: ASYNC109 - the API
        *,
        queues: Sequence[str] = (),
    ) -> bool:
        """Wait until a run of ``app`` may have become claimable; False after ``timeout``.

        Returns True as soon as the store learns that a run of ``app`` was
        enqueued (or parked, or requeued), or that a run of one of
        ``queues`` finished (freeing a slot of that queue), by any process;
        False once ``timeout`` seconds passed. Workers name only their queues
        capped across workers: elsewhere a finish frees no slot they could
        use, and waking every worker at every finish would cost each a claim. A True
        is a hint, not a promise: the caller then calls :meth:`claim_queued`,
        which may find nothing. Idle workers wait here between passes.

        The default sleeps ``timeout`` and returns False: workers then poll.
        A store that can be told (LISTEN/NOTIFY, pub/sub) overrides it. It
        never raises for a lost notification channel (it waits out the
        timeout instead), only a cancellation ends it early.
        """
        await asyncio.sleep(timeout)
        return False

    async def wait_for_signal(self, app: str, timeout: float) -> bool:  # noqa: ASYNC109 - the API
        """Wait until a signal may have been sent to a run of ``app``; False after ``timeout``.

        Returns True as soon as the store learns that any process sent a
        signal to a run of ``app``. A True is a hint: the waiting process then
        reads the signals it waits for with :meth:`read_signals`. Signal
        waits of this process wait here besides polling, so a signal sent by
        another process reaches them at once.

        The default sleeps ``timeout`` and returns False: waits then poll.
        Like :meth:`wait_for_work`, it never raises for a lost notification
        channel.
        """
        await asyncio.sleep(timeout)
        return False

    async def delete_run(self, app: str, run_id: str) -> RunRecord | None:
        """Delete a finished run with its steps and signals, atomically; the run deleted.

        Returns None, deleting nothing, when the run does not exist. A run that
        is not finished (``queued`` or ``running``) is kept and raises
        :class:`~durable.errors.RunNotFinishedError`: the status test and the
        deletion are one atomic operation, so a run that starts meanwhile is
        never deleted. Other runs are not touched, the run's children included
        (their ``parent_run_id`` keeps naming it).
        """
        raise NotImplementedError(f"{type(self).__name__} does not support deleting runs")

    async def prune_runs(
        self,
        app: str,
        *,
        finished_before: float,
        statuses: Sequence[FinalStatus],
        limit: int,
    ) -> int:
        """Delete up to ``limit`` finished runs of ``app`` in one transaction; how many.

        A run is deleted (with its steps and signals, as :meth:`delete_run`
        does) when its status is one of ``statuses`` and its ``finished_at``
        is before ``finished_before`` (a Unix time); unfinished runs never are.
        ``statuses`` holds final statuses only and ``limit`` is at least 1;
        callers repeat the call until it deletes fewer than ``limit``, so
        each transaction stays small. An index should serve the search.
        """
        raise NotImplementedError(f"{type(self).__name__} does not support pruning runs")

    async def count_prunable_runs(
        self, app: str, *, finished_before: float, statuses: Sequence[FinalStatus]
    ) -> int:
        """How many runs :meth:`prune_runs` would delete with these arguments, deleting none."""
        raise NotImplementedError(f"{type(self).__name__} does not support pruning runs")

    @abstractmethod
    async def send_signal(self, app: str, run_id: str, name: str, payload: str) -> int:
        """Append a signal for the run (which need not exist yet); returns its index.

        Indexes count from 0 per (run, name) in arrival order. A ``waiting``
        (parked) run becomes due at once (see :meth:`park_run`).
        """

    async def send_signal_once(self, app: str, run_id: str, name: str, payload: str) -> bool:
        """Store the signal as index 0 unless one of that name was ever sent to the run.

        True when this call stored it, False when a signal of that name (sent
        by either method) was there first: the first delivery wins. Atomic
        across processes, and like :meth:`send_signal` the run need not exist
        yet. A retried call whose first attempt committed answers True.
        """
        raise NotImplementedError(f"{type(self).__name__} does not support send_signal_once")

    @abstractmethod
    async def read_signal(self, app: str, run_id: str, name: str, index: int) -> str | None:
        """The payload of the ``index``-th signal of that name, or None if not sent yet."""

    async def read_signals(
        self, app: str, wanted: Sequence[tuple[str, str, int]]
    ) -> dict[tuple[str, str, int], str]:
        """Read many signals at once: :meth:`read_signal` for each ``(run_id, name, index)``.

        Returns the payload of every wanted signal that was sent, keyed by its
        ``(run_id, name, index)``; a signal not sent yet has no key. Empty
        ``wanted`` return ``{}``. A NUL character in ``app``, a run id or a
        name raises :class:`~durable.errors.RunIdError` (no such signal can
        have been sent).

        The signal waits of a process are polled with one call. This default
        calls :meth:`read_signal` once per signal; override it to read the
        whole batch in one round trip.
        """
        check_signal_keys(app, wanted)
        found: dict[tuple[str, str, int], str] = {}
        for key in wanted:
            payload = await self.read_signal(app, *key)
            if payload is not None:
                found[key] = payload
        return found


def check_signal_keys(app: str, wanted: Sequence[tuple[str, str, int]]) -> None:
    """Raise :class:`~durable.errors.RunIdError` if ``app`` or a wanted run id or name has a NUL.

    The text check of :meth:`Store.read_signals`, shared by the stores.
    """
    check_names(app=app)
    for run_id, name, _ in wanted:
        # The common case costs two substring tests; check_names words the error.
        if "\x00" in run_id or "\x00" in name:
            check_names(run_id=run_id, signal_name=name)
