"""The Store contract as a pytest suite: subclass :class:`StoreContract` to check a store.

Usage, in a test module of your project::

    import pytest_asyncio
    from durable.testing import StoreContract

    class TestMyStore(StoreContract):
        @pytest_asyncio.fixture
        async def store(self):
            async with MyStore(...) as store:   # opened, and empty for each test
                yield store

Every test takes that ``store`` fixture. The suite needs ``pytest``,
``pytest-asyncio`` and ``hypothesis``; this module is imported only when asked
for, so the library itself never depends on them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
import uuid
from collections.abc import Sequence
from typing import ClassVar, Literal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from durable.errors import LeaseLostError, RunIdError, SerializationError
from durable.stores.base import (
    Claim,
    FinalStatus,
    LeaseState,
    NewRun,
    QueueLimits,
    RunRecord,
    RunStatus,
    StepRecord,
    StepStatus,
    Store,
)
from durable.testing._listing_contract import ListingContract
from durable.testing._parking_contract import ParkingContract
from durable.testing._queue_contract import QueueContract
from durable.testing._retention_contract import RetentionContract
from durable.testing._signal_once_contract import SignalOnceContract

__all__ = ["StoreContract"]

APP = "contract-app"
LONG = 600.0  # a lease that never expires during a test
SHORT = 0.05  # a lease that a test outlives by sleeping EXPIRE
EXPIRE = 0.15

# Text that breaks naive quoting, encodings or JSON handling.
ODD_TEXTS = (
    "plain",
    'it\'s "quoted" `twice`',
    "'; DROP TABLE runs; --",
    "?, ?1, $1, %s, :name, {0}",
    "back\\slash and / slash",
    "tab\tnew\nline\rreturn",
    "ünïcödé ß 中文 עברית",
    "emoji 🦄 👩‍👩‍👧 🏳️‍🌈",
    "*?[glob]",
    " leading and trailing ",
    "x" * 300,
)
ODD_JSON = (
    '{"a": "\\u0000", "b": "nul\\u0000inside"}',
    json.dumps("'; DELETE FROM steps; --"),
    json.dumps({"emoji": "🦄", "text": "ünïcödé", "nested": [1, 2.5, None, True]}),
    json.dumps("\\u0000 literally, escaped twice"),
    '"  spaced  "',
    "null",
    "[]",
    '{"k":1,   "keeps": "its own whitespace"}',
)
TRACE_CONTEXT = '{"traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}'
MEGABYTE_JSON = json.dumps("é" * 300_000 + "x" * 500_000)


def new_run(
    run_id: str = "run-1",
    *,
    app: str = APP,
    workflow: str = "wf",
    inputs: str = '{"n": 1}',
    parent_run_id: str | None = None,
) -> NewRun:
    return NewRun(app, run_id, workflow, inputs, parent_run_id)


def make_step(
    step_id: str,
    position: int = 0,
    *,
    task: str | None = None,
    status: StepStatus = "completed",
    result: str | None = '"ok"',
    error: str | None = None,
    attempts: int = 1,
) -> StepRecord:
    if status == "failed":
        result = None
        if error is None:
            error = '{"type": "ValueError", "message": "boom"}'
    return StepRecord(
        step_id=step_id,
        position=position,
        task=task if task is not None else step_id.split("#")[0],
        status=status,
        result=result,
        error=error,
        attempts=attempts,
        started_at=1_700_000_000.25,
        finished_at=1_700_000_001.5,
    )


async def claim(
    store: Store,
    run_id: str = "run-1",
    *,
    owner: str = "owner-a",
    lease_ttl: float = LONG,
    steal_from: str | None = None,
    resume: bool = False,
    **run: str,
) -> Claim:
    return await store.claim_run(
        new_run(run_id, **run),
        owner=owner,
        lease_ttl=lease_ttl,
        steal_from=steal_from,
        resume=resume,
    )


async def stored(store: Store, run_id: str = "run-1", app: str = APP) -> RunRecord:
    run = await store.get_run(app, run_id)
    assert run is not None, f"run {run_id!r} is missing"
    return run


async def stored_steps(store: Store, run_id: str = "run-1", app: str = APP) -> list[StepRecord]:
    loaded = await store.load_run(app, run_id)
    assert loaded is not None, f"run {run_id!r} is missing"
    return list(loaded[1])


async def failed_run_with_steps(store: Store, run_id: str = "run-1") -> Claim:
    """A run that failed with one completed and one failed step."""
    first = await claim(store, run_id)
    token = first.run.token
    await store.save_step(APP, run_id, token, make_step("done", 0))
    await store.save_step(APP, run_id, token, make_step("broke", 1, status="failed"))
    await store.finish_run(APP, run_id, token, "failed", error='{"type": "RuntimeError"}')
    return first


# -- a plain model of the contract, for the hypothesis test --------------------
# Leases in the model are either long (never expire during a test) or expired
# by release_run, so no clock is involved.


@dataclasses.dataclass
class _RunModel:
    workflow: str
    inputs: str
    status: RunStatus = "running"
    output: str | None = None
    error: str | None = None
    owner: str | None = None
    token: int = 1
    attempts: int = 1
    cancel_requested: bool = False
    lease_live: bool = True
    steps: dict[str, StepRecord] = dataclasses.field(default_factory=dict)

    def ordered_steps(self) -> list[StepRecord]:
        return sorted(self.steps.values(), key=lambda s: s.position)

    def check(self, run: RunRecord, steps: Sequence[StepRecord] | None = None) -> None:
        assert (run.workflow, run.status, run.inputs) == (self.workflow, self.status, self.inputs)
        assert (run.output, run.error) == (self.output, self.error)
        assert (run.owner, run.token, run.attempts) == (self.owner, self.token, self.attempts)
        assert run.cancel_requested == self.cancel_requested
        assert (run.lease_expires_at is None) == (self.status != "running")
        if steps is not None:
            assert list(steps) == self.ordered_steps()


@dataclasses.dataclass
class _Model:
    runs: dict[str, _RunModel] = dataclasses.field(default_factory=dict)
    signals: dict[tuple[str, str], list[str]] = dataclasses.field(default_factory=dict)
    counter: int = 0

    def token_for(self, run_id: str, stale: bool) -> int:
        run = self.runs.get(run_id)
        current = run.token if run is not None else 1
        return current + 1000 if stale else current

    def unique(self) -> str:
        self.counter += 1
        return json.dumps(self.counter)


_RUN_IDS = st.sampled_from(["r1", "r2"])
_OWNERS = st.sampled_from(["o1", "o2", "o3"])
_STEP_IDS = st.sampled_from(["s0", "s1", "s2"])
_STALE = st.sampled_from([False, False, False, True])


@dataclasses.dataclass(frozen=True)
class _Claim:
    run_id: str
    workflow: str
    owner: str
    steal_from: str | None
    resume: bool
    inputs: str

    async def check(self, store: Store, model: _Model, app: str) -> None:
        inputs = self.inputs
        got = await store.claim_run(
            NewRun(app, self.run_id, self.workflow, inputs),
            owner=self.owner,
            lease_ttl=LONG,
            steal_from=self.steal_from,
            resume=self.resume,
        )
        run = model.runs.get(self.run_id)
        if run is None:
            run = model.runs[self.run_id] = _RunModel(self.workflow, inputs, owner=self.owner)
            assert got.acquired
            run.check(got.run, got.steps)
            return
        same = run.workflow == self.workflow and run.inputs == inputs
        restart = same and (run.status == "failed" or (run.status == "cancelled" and self.resume))
        takeover = (
            same
            and run.status == "running"
            and (
                not run.lease_live or (self.steal_from is not None and self.steal_from == run.owner)
            )
        )
        assert got.acquired == (restart or takeover)
        if restart:
            run.steps = {k: s for k, s in run.steps.items() if s.status != "failed"}
            run.error = None
            run.cancel_requested = False
        if restart or takeover:
            assert got.run.token > run.token
            run.status, run.owner, run.token = "running", self.owner, got.run.token
            run.attempts += 1
            run.lease_live = True
        run.check(got.run, got.steps)


@dataclasses.dataclass(frozen=True)
class _SaveStep:
    run_id: str
    step_id: str
    failed: bool
    stale: bool

    async def check(self, store: Store, model: _Model, app: str) -> None:
        position = int(self.step_id[1:])
        value = model.unique()
        step = (
            make_step(self.step_id, position, status="failed", error=value)
            if self.failed
            else make_step(self.step_id, position, result=value)
        )
        token = model.token_for(self.run_id, self.stale)
        run = model.runs.get(self.run_id)
        if run is None or run.status != "running" or self.stale:
            with pytest.raises(LeaseLostError):
                await store.save_step(app, self.run_id, token, step)
            return
        saved = await store.save_step(app, self.run_id, token, step)
        expected = run.steps.setdefault(self.step_id, step)
        assert saved.step == expected
        assert saved.cancel_requested == run.cancel_requested


@dataclasses.dataclass(frozen=True)
class _Renew:
    run_id: str
    stale: bool

    async def check(self, store: Store, model: _Model, app: str) -> None:
        token = model.token_for(self.run_id, self.stale)
        state = await store.renew_lease(app, self.run_id, token, LONG)
        run = model.runs.get(self.run_id)
        if run is None or run.status != "running" or self.stale:
            assert state is LeaseState.LOST
            return
        run.lease_live = True
        expected = LeaseState.CANCEL_REQUESTED if run.cancel_requested else LeaseState.OWNED
        assert state is expected


@dataclasses.dataclass(frozen=True)
class _Release:
    run_id: str
    stale: bool

    async def check(self, store: Store, model: _Model, app: str) -> None:
        await store.release_run(app, self.run_id, model.token_for(self.run_id, self.stale))
        run = model.runs.get(self.run_id)
        if run is not None and run.status == "running" and not self.stale:
            run.lease_live = False
            run.owner = None


@dataclasses.dataclass(frozen=True)
class _Finish:
    run_id: str
    status: FinalStatus
    stale: bool

    async def check(self, store: Store, model: _Model, app: str) -> None:
        output, error = model.unique(), model.unique()
        token = model.token_for(self.run_id, self.stale)
        run = model.runs.get(self.run_id)
        if run is None or run.status != "running" or self.stale:
            with pytest.raises(LeaseLostError):
                await store.finish_run(app, self.run_id, token, self.status, output=output)
            return
        done = await store.finish_run(
            app, self.run_id, token, self.status, output=output, error=error
        )
        run.status, run.output, run.error, run.owner = self.status, output, error, None
        run.check(done)


@dataclasses.dataclass(frozen=True)
class _Cancel:
    run_id: str

    async def check(self, store: Store, model: _Model, app: str) -> None:
        got = await store.request_cancel(app, self.run_id)
        run = model.runs.get(self.run_id)
        if run is None:
            assert got is None
            return
        if run.status == "running":
            run.cancel_requested = True
        elif run.status == "failed":
            run.status = "cancelled"
        assert got is not None
        run.check(got)


@dataclasses.dataclass(frozen=True)
class _Load:
    run_id: str

    async def check(self, store: Store, model: _Model, app: str) -> None:
        loaded = await store.load_run(app, self.run_id)
        run = model.runs.get(self.run_id)
        if run is None:
            assert loaded is None
            assert await store.get_run(app, self.run_id) is None
            return
        assert loaded is not None
        run.check(*loaded)
        assert await store.get_run(app, self.run_id) == loaded[0]


@dataclasses.dataclass(frozen=True)
class _List:
    status: RunStatus | None

    async def check(self, store: Store, model: _Model, app: str) -> None:
        listed = await store.list_runs(app, status=self.status)
        expected = {
            run_id
            for run_id, run in model.runs.items()
            if self.status is None or run.status == self.status
        }
        assert {r.run_id for r in listed} == expected
        assert len(listed) == len(expected)


@dataclasses.dataclass(frozen=True)
class _Signal:
    run_id: str
    name: str
    read_index: int | None

    async def check(self, store: Store, model: _Model, app: str) -> None:
        sent = model.signals.setdefault((self.run_id, self.name), [])
        if self.read_index is None:
            payload = model.unique()
            assert await store.send_signal(app, self.run_id, self.name, payload) == len(sent)
            sent.append(payload)
        else:
            expected = sent[self.read_index] if self.read_index < len(sent) else None
            assert await store.read_signal(app, self.run_id, self.name, self.read_index) == expected
            key = (self.run_id, self.name, self.read_index)
            assert await store.read_signals(app, [key]) == (
                {} if expected is None else {key: expected}
            )


_Op = _Claim | _SaveStep | _Renew | _Release | _Finish | _Cancel | _Load | _List | _Signal

_FINAL: st.SearchStrategy[FinalStatus] = st.sampled_from(["completed", "failed", "cancelled"])
_LISTED: st.SearchStrategy[RunStatus | None] = st.sampled_from(
    [None, "running", "completed", "failed", "cancelled"]
)
_WORKFLOWS: st.SearchStrategy[Literal["wf", "other"]] = st.sampled_from(["wf", "wf", "other"])

_INPUTS = st.sampled_from(['{"n":1}', '{"n":1}', '{"n":1}', '{"n":2}'])
_CLAIMS = st.builds(
    _Claim, _RUN_IDS, _WORKFLOWS, _OWNERS, st.none() | _OWNERS, st.booleans(), _INPUTS
)
# Claims twice as often as the rest: most operations only matter on a claimed run.
_OPERATIONS: tuple[st.SearchStrategy[_Op], ...] = (
    _CLAIMS,
    _CLAIMS,
    st.builds(_SaveStep, _RUN_IDS, _STEP_IDS, st.booleans(), _STALE),
    st.builds(_Renew, _RUN_IDS, _STALE),
    st.builds(_Release, _RUN_IDS, _STALE),
    st.builds(_Finish, _RUN_IDS, _FINAL, _STALE),
    st.builds(_Cancel, _RUN_IDS),
    st.builds(_List, _LISTED),
    st.builds(_Signal, _RUN_IDS, st.sampled_from(["go", "stop"]), st.none() | st.integers(0, 3)),
)


class StoreContract(
    QueueContract, RetentionContract, ListingContract, ParkingContract, SignalOnceContract
):
    """The behaviour every :class:`~durable.stores.base.Store` must have.

    Subclass it in a ``Test*`` class and provide an async ``store`` fixture
    yielding an opened store that is empty for each test.
    """

    pytestmark: ClassVar[list[pytest.MarkDecorator]] = [pytest.mark.asyncio]

    # -- text every store refuses ------------------------------------------

    async def test_nul_in_ids_is_rejected_without_writing(self, store: Store) -> None:
        """A NUL character in a run id, step id or JSON text is a typed error; nothing is stored."""
        with pytest.raises(RunIdError):
            await claim(store, run_id="bad\x00id")
        assert list(await store.list_runs(APP)) == []
        got = await claim(store)
        with pytest.raises(RunIdError):
            await store.save_step(APP, "run-1", got.run.token, make_step("a\x00b", 0))
        with pytest.raises(SerializationError):
            await store.save_step(
                APP,
                "run-1",
                got.run.token,
                dataclasses.replace(make_step("a", 0), result='"raw\x00nul"'),
            )
        assert await stored_steps(store) == []

    # -- claim_run ---------------------------------------------------------

    async def test_claim_absent_run_creates_it_running(self, store: Store) -> None:
        """Claiming an absent run inserts it running with token 1 and attempt 1, acquired."""
        got = await claim(store, inputs='{"n": 42}', parent_run_id="parent-7")
        assert got.acquired
        assert got.steps == ()
        run = got.run
        assert (run.app, run.run_id, run.workflow) == (APP, "run-1", "wf")
        assert (run.status, run.token, run.attempts) == ("running", 1, 1)
        assert (run.inputs, run.parent_run_id, run.owner) == ('{"n": 42}', "parent-7", "owner-a")
        assert (run.output, run.error, run.cancel_requested) == (None, None, False)
        assert run.lease_expires_at is not None
        assert run.lease_expires_at - run.updated_at == pytest.approx(LONG, abs=1.0)
        assert run.created_at <= run.updated_at

    async def test_claim_result_is_what_is_stored(self, store: Store) -> None:
        """The run returned by an acquiring claim equals the run read back afterwards."""
        got = await claim(store)
        assert await stored(store) == got.run
        assert await store.load_run(APP, "run-1") == (got.run, ())

    async def test_trace_context_is_kept_with_the_run(self, store: Store) -> None:
        """A run keeps the trace context it was created with: every read returns it, unchanged."""
        created = await store.claim_run(
            dataclasses.replace(new_run(), trace_context=TRACE_CONTEXT),
            owner="owner-a",
            lease_ttl=LONG,
        )
        assert created.run.trace_context == TRACE_CONTEXT
        assert (await stored(store)).trace_context == TRACE_CONTEXT
        # A takeover by a caller in another trace keeps the run's own.
        taken = await store.claim_run(
            dataclasses.replace(new_run(), trace_context='{"other": "trace"}'),
            owner="owner-b",
            lease_ttl=LONG,
            steal_from="owner-a",
        )
        assert taken.acquired
        assert taken.run.trace_context == TRACE_CONTEXT
        await store.finish_run(APP, "run-1", taken.run.token, "completed", output="1")
        assert [run.trace_context for run in await store.list_runs(APP)] == [TRACE_CONTEXT]
        loaded = await store.load_run(APP, "run-1")
        assert loaded is not None
        assert loaded[0].trace_context == TRACE_CONTEXT
        assert (await claim(store, "run-2")).run.trace_context is None

    async def test_trace_context_of_a_queued_run_reaches_its_claim(self, store: Store) -> None:
        """A queued run's trace context is stored by enqueue_run and returned by claim_queued."""
        new = NewRun(APP, "run-q", "wf", "{}", None, "q", trace_context=TRACE_CONTEXT)
        run, created = await store.enqueue_run(new)
        assert created
        assert run.trace_context == TRACE_CONTEXT
        claims = await store.claim_queued(
            APP, [QueueLimits("q")], owner="worker", lease_ttl=LONG, limit=1
        )
        assert [c.run.trace_context for c in claims] == [TRACE_CONTEXT]

    async def test_trace_context_survives_requeue_listing_and_deletion(self, store: Store) -> None:
        """A requeued run keeps its trace context; every listing filter and delete_run return it."""
        new = NewRun(APP, "run-t", "wf", "{}", None, "q", trace_context=TRACE_CONTEXT)
        await store.enqueue_run(new)
        limits = [QueueLimits("q")]
        await store.claim_queued(APP, limits, owner="worker-a", lease_ttl=LONG, limit=1)
        requeued = await store.requeue_run(APP, "run-t", queue="q", steal_from="worker-a")
        assert requeued is not None
        assert requeued[1]
        assert requeued[0].trace_context == TRACE_CONTEXT
        [again] = await store.claim_queued(APP, limits, owner="worker-b", lease_ttl=LONG, limit=1)
        assert again.run.trace_context == TRACE_CONTEXT
        listings = (
            await store.list_runs(APP, queue="q"),
            await store.list_runs(APP, id_prefix="run-"),
            await store.list_runs(APP, status="running", workflow="wf"),
            await store.list_runs(APP, after=(again.run.created_at, "run-u")),
        )
        for listed in listings:
            assert [run.trace_context for run in listed] == [TRACE_CONTEXT]
        await store.finish_run(APP, "run-t", again.run.token, "completed", output="1")
        deleted = await store.delete_run(APP, "run-t")
        assert deleted is not None
        assert deleted.trace_context == TRACE_CONTEXT

    async def test_trace_context_of_a_parked_run_reaches_the_claim_that_wakes_it(
        self, store: Store
    ) -> None:
        """A parked run keeps its trace context (queued or claimed run); its wake returns it."""
        await store.enqueue_run(
            NewRun(APP, "run-q", "wf", "{}", None, "q", trace_context=TRACE_CONTEXT)
        )
        limits = [QueueLimits("q")]
        [queued] = await store.claim_queued(APP, limits, owner="worker-a", lease_ttl=LONG, limit=1)
        direct = await store.claim_run(
            dataclasses.replace(new_run(), trace_context='{"k":"v"}'), owner="a", lease_ttl=LONG
        )
        due = time.time() - 1
        for run in (queued.run, direct.run):
            await store.park_run(APP, run.run_id, run.token, queue="q", wake_at=due)
            parked = await store.get_run(APP, run.run_id)
            assert parked is not None
            assert (parked.status, parked.trace_context) == ("waiting", run.trace_context)
        woken = await store.claim_queued(APP, limits, owner="worker-b", lease_ttl=LONG, limit=2)
        assert {(c.run.run_id, c.run.status, c.run.trace_context) for c in woken} == {
            ("run-q", "running", TRACE_CONTEXT),
            ("run-1", "running", '{"k":"v"}'),
        }

    async def test_claim_running_with_live_lease_is_not_acquired(self, store: Store) -> None:
        """A running run whose lease is live is not taken over, and is left unchanged."""
        first = await claim(store)
        await store.save_step(APP, "run-1", first.run.token, make_step("a", 0))
        second = await claim(store, owner="owner-b")
        assert not second.acquired
        assert second.run == first.run
        assert [s.step_id for s in second.steps] == ["a"]
        assert await stored(store) == first.run

    async def test_claim_running_with_expired_lease_is_taken_over(self, store: Store) -> None:
        """An expired lease lets another owner take over with a new token, keeping the steps."""
        first = await claim(store, lease_ttl=SHORT)
        await store.save_step(APP, "run-1", first.run.token, make_step("a", 0))
        await asyncio.sleep(EXPIRE)
        second = await claim(store, owner="owner-b")
        assert second.acquired
        run = second.run
        assert run.token > first.run.token
        assert (run.owner, run.status, run.attempts) == ("owner-b", "running", 2)
        assert run.inputs == first.run.inputs
        assert run.created_at == first.run.created_at
        assert run.lease_expires_at is not None
        assert run.lease_expires_at - run.updated_at == pytest.approx(LONG, abs=1.0)
        assert [s.step_id for s in second.steps] == ["a"]
        assert await stored(store) == run

    async def test_claim_steal_from_matching_owner_takes_over(self, store: Store) -> None:
        """``steal_from`` equal to the current owner takes a live lease over at once."""
        first = await claim(store)
        second = await claim(store, owner="owner-b", steal_from="owner-a")
        assert second.acquired
        assert second.run.token > first.run.token
        assert (second.run.owner, second.run.attempts) == ("owner-b", 2)

    async def test_claim_steal_from_other_owner_is_not_acquired(self, store: Store) -> None:
        """``steal_from`` naming someone else does not take over a live lease."""
        first = await claim(store)
        second = await claim(store, owner="owner-b", steal_from="owner-c")
        assert not second.acquired
        assert await stored(store) == first.run

    async def test_claim_takeover_keeps_cancel_request(self, store: Store) -> None:
        """Taking over a running run keeps its pending cancel request."""
        await claim(store, lease_ttl=SHORT)
        await store.request_cancel(APP, "run-1")
        await asyncio.sleep(EXPIRE)
        second = await claim(store, owner="owner-b")
        assert second.acquired
        assert second.run.cancel_requested

    async def test_tokens_grow_with_every_takeover(self, store: Store) -> None:
        """Each change of owner hands out a token larger than every earlier one."""
        tokens = [(await claim(store)).run.token]
        for i in range(5):
            got = await claim(store, owner=f"owner-{i}", steal_from=(await stored(store)).owner)
            assert got.acquired
            tokens.append(got.run.token)
        assert tokens == sorted(set(tokens))

    async def test_claim_completed_run_is_not_acquired(self, store: Store) -> None:
        """A completed run is never claimed again; its output and steps come back."""
        first = await claim(store)
        await store.save_step(APP, "run-1", first.run.token, make_step("a", 0))
        done = await store.finish_run(APP, "run-1", first.run.token, "completed", output="7")
        for resume in (False, True):
            again = await claim(store, owner="owner-b", resume=resume, steal_from="owner-a")
            assert not again.acquired
            assert again.run == done
            assert [s.step_id for s in again.steps] == ["a"]

    async def test_claim_failed_run_restarts_it(self, store: Store) -> None:
        """A failed run restarts: failed steps deleted, completed kept, error cleared, new token."""
        first = await failed_run_with_steps(store)
        again = await claim(store, owner="owner-b")
        assert again.acquired
        run = again.run
        assert (run.status, run.error, run.owner, run.attempts) == ("running", None, "owner-b", 2)
        assert run.token > first.run.token
        assert run.inputs == first.run.inputs
        assert [s.step_id for s in again.steps] == ["done"]
        assert await store.load_run(APP, "run-1") == (run, again.steps)

    async def test_claim_cancelled_run_without_resume_is_not_acquired(self, store: Store) -> None:
        """A cancelled run is not claimed unless ``resume`` is true."""
        first = await claim(store)
        await store.save_step(APP, "run-1", first.run.token, make_step("a", 0))
        cancelled = await store.finish_run(APP, "run-1", first.run.token, "cancelled")
        again = await claim(store, owner="owner-b")
        assert not again.acquired
        assert again.run == cancelled
        assert [s.step_id for s in again.steps] == ["a"]

    async def test_claim_cancelled_run_with_resume_restarts_it(self, store: Store) -> None:
        """``resume`` restarts a cancelled run like a failed one and clears the cancel request."""
        first = await claim(store)
        token = first.run.token
        await store.save_step(APP, "run-1", token, make_step("done", 0))
        await store.save_step(APP, "run-1", token, make_step("broke", 1, status="failed"))
        await store.request_cancel(APP, "run-1")
        await store.finish_run(APP, "run-1", token, "cancelled", error='"stopped"')
        again = await claim(store, owner="owner-b", resume=True)
        assert again.acquired
        run = again.run
        assert (run.status, run.error, run.cancel_requested) == ("running", None, False)
        assert (run.owner, run.attempts) == ("owner-b", 2)
        assert run.token > token
        assert [s.step_id for s in again.steps] == ["done"]
        assert await stored(store) == run

    async def test_claim_failed_run_cancelled_by_request_resumes(self, store: Store) -> None:
        """A failed run that a cancel request turned cancelled can be resumed."""
        await failed_run_with_steps(store)
        cancelled = await store.request_cancel(APP, "run-1")
        assert cancelled is not None
        assert cancelled.status == "cancelled"
        assert not (await claim(store, owner="owner-b")).acquired
        again = await claim(store, owner="owner-b", resume=True)
        assert again.acquired
        assert [s.step_id for s in again.steps] == ["done"]

    @pytest.mark.parametrize("status", ["running", "completed", "failed", "cancelled"])
    async def test_claim_with_other_workflow_is_refused_unchanged(
        self, store: Store, status: Literal["running", "completed", "failed", "cancelled"]
    ) -> None:
        """A run id used by another workflow is returned unchanged and not acquired."""
        first = await claim(store, lease_ttl=SHORT)
        await store.save_step(APP, "run-1", first.run.token, make_step("a", 0))
        if status != "running":
            await store.finish_run(APP, "run-1", first.run.token, status)
        before = await store.load_run(APP, "run-1")
        assert before is not None
        await asyncio.sleep(EXPIRE)
        other = await claim(
            store, owner="owner-b", workflow="other-wf", steal_from="owner-a", resume=True
        )
        assert not other.acquired
        assert (other.run, other.steps) == before
        assert await store.load_run(APP, "run-1") == before

    @pytest.mark.parametrize("status", ["running", "completed", "failed", "cancelled"])
    async def test_claim_with_other_inputs_is_refused_unchanged(
        self, store: Store, status: Literal["running", "completed", "failed", "cancelled"]
    ) -> None:
        """A run id claimed with inputs other than its stored ones is returned unchanged and
        not acquired: a failed run keeps its failed steps, an expired lease its owner."""
        first = await claim(store, lease_ttl=SHORT, inputs='{"n": 1}')
        await store.save_step(APP, "run-1", first.run.token, make_step("a", 0))
        await store.save_step(APP, "run-1", first.run.token, make_step("b", 1, status="failed"))
        if status != "running":
            await store.finish_run(APP, "run-1", first.run.token, status)
        before = await store.load_run(APP, "run-1")
        assert before is not None
        await asyncio.sleep(EXPIRE)
        other = await claim(
            store, owner="owner-b", inputs='{"n": 2}', steal_from="owner-a", resume=True
        )
        assert not other.acquired
        assert (other.run, other.steps) == before
        assert await store.load_run(APP, "run-1") == before

    async def test_claim_returns_steps_ordered_by_position(self, store: Store) -> None:
        """Claims and loads list the steps by position, whatever the order they were saved in."""
        first = await claim(store)
        for position in (3, 0, 2, 1):
            await store.save_step(
                APP, "run-1", first.run.token, make_step(f"s{position}", position)
            )
        again = await claim(store, owner="owner-b")
        assert [s.position for s in again.steps] == [0, 1, 2, 3]
        assert [s.step_id for s in await stored_steps(store)] == ["s0", "s1", "s2", "s3"]

    async def test_concurrent_claims_of_absent_run_have_one_winner(self, store: Store) -> None:
        """Many simultaneous claims of one absent run id acquire it exactly once."""
        claims = await asyncio.gather(*(claim(store, owner=f"owner-{i}") for i in range(25)))
        winners = [c for c in claims if c.acquired]
        assert len(winners) == 1
        winner = winners[0].run
        assert winner.token == 1
        for c in claims:
            assert (c.run.owner, c.run.token, c.run.attempts) == (winner.owner, 1, 1)
        assert await stored(store) == winner

    async def test_concurrent_takeovers_have_one_winner(self, store: Store) -> None:
        """Many simultaneous claims of an expired run take it over exactly once."""
        await claim(store, lease_ttl=SHORT)
        await asyncio.sleep(EXPIRE)
        claims = await asyncio.gather(*(claim(store, owner=f"owner-{i}") for i in range(25)))
        winners = [c for c in claims if c.acquired]
        assert len(winners) == 1
        assert (await stored(store)).token == winners[0].run.token

    # -- save_step ---------------------------------------------------------

    async def test_save_step_stores_the_step(self, store: Store) -> None:
        """A saved step comes back identical from save_step and from load_run."""
        got = await claim(store)
        step = make_step("fetch#1", 4, task="fetch", result='{"rows": [1, 2]}', attempts=3)
        saved = await store.save_step(APP, "run-1", got.run.token, step)
        assert saved.step == step
        assert not saved.cancel_requested
        assert await stored_steps(store) == [step]

    async def test_save_failed_step_keeps_its_error(self, store: Store) -> None:
        """A failed step is stored with its error and no result."""
        got = await claim(store)
        step = make_step("charge", 0, status="failed", error='{"type": "CardDeclined"}')
        saved = await store.save_step(APP, "run-1", got.run.token, step)
        assert saved.step == step
        assert (await stored_steps(store))[0].error == '{"type": "CardDeclined"}'
        assert (await stored_steps(store))[0].result is None

    async def test_save_step_first_writer_wins(self, store: Store) -> None:
        """Saving an existing step id returns the stored step and changes nothing."""
        got = await claim(store)
        first = make_step("a", 0, result='"first"')
        await store.save_step(APP, "run-1", got.run.token, first)
        saved = await store.save_step(APP, "run-1", got.run.token, make_step("a", 0, result='"2"'))
        assert saved.step == first
        assert await stored_steps(store) == [first]

    async def test_save_step_reports_cancel_request(self, store: Store) -> None:
        """save_step tells the owner that a cancel was requested, and still stores the step."""
        got = await claim(store)
        await store.request_cancel(APP, "run-1")
        saved = await store.save_step(APP, "run-1", got.run.token, make_step("a", 0))
        assert saved.cancel_requested
        assert [s.step_id for s in await stored_steps(store)] == ["a"]

    async def test_save_step_with_stale_token_is_fenced(self, store: Store) -> None:
        """A zombie's save after a takeover raises LeaseLostError and writes nothing."""
        old = await claim(store)
        await claim(store, owner="owner-b", steal_from="owner-a")
        with pytest.raises(LeaseLostError):
            await store.save_step(APP, "run-1", old.run.token, make_step("zombie", 0))
        assert await stored_steps(store) == []

    async def test_save_step_stale_token_fenced_even_for_existing_step(self, store: Store) -> None:
        """A stale token is rejected even when the step id already exists."""
        old = await claim(store)
        await store.save_step(APP, "run-1", old.run.token, make_step("a", 0))
        await claim(store, owner="owner-b", steal_from="owner-a")
        with pytest.raises(LeaseLostError):
            await store.save_step(APP, "run-1", old.run.token, make_step("a", 0))

    @pytest.mark.parametrize("status", ["completed", "failed", "cancelled"])
    async def test_save_step_on_finished_run_is_fenced(
        self, store: Store, status: FinalStatus
    ) -> None:
        """Once the run is finished, even its last owner's token cannot save steps."""
        got = await claim(store)
        await store.finish_run(APP, "run-1", got.run.token, status)
        with pytest.raises(LeaseLostError):
            await store.save_step(APP, "run-1", got.run.token, make_step("late", 0))
        assert await stored_steps(store) == []

    async def test_save_step_on_absent_run_is_fenced(self, store: Store) -> None:
        """A step for a run that does not exist is rejected and creates nothing."""
        with pytest.raises(LeaseLostError):
            await store.save_step(APP, "nope", 1, make_step("a", 0))
        assert await store.load_run(APP, "nope") is None

    async def test_concurrent_saves_of_one_step_agree(self, store: Store) -> None:
        """Simultaneous saves of one step id all return the single stored record."""
        got = await claim(store)
        attempts = [make_step("a", 0, result=json.dumps(i)) for i in range(10)]
        saved = await asyncio.gather(
            *(store.save_step(APP, "run-1", got.run.token, s) for s in attempts)
        )
        winners = {s.step for s in saved}
        assert len(winners) == 1
        (winner,) = winners
        assert winner in attempts
        assert await stored_steps(store) == [winner]

    async def test_concurrent_saves_of_many_steps_all_stored(self, store: Store) -> None:
        """Simultaneous saves of distinct steps all succeed and are all stored."""
        got = await claim(store)
        steps = [make_step(f"s#{i}", i, task="s", result=json.dumps(i)) for i in range(60)]
        saved = await asyncio.gather(
            *(store.save_step(APP, "run-1", got.run.token, s) for s in steps)
        )
        assert [s.step for s in saved] == steps
        assert await stored_steps(store) == steps

    # -- renew_lease and release_run -----------------------------------------

    async def test_renew_lease_extends_an_owned_lease(self, store: Store) -> None:
        """Renewing with the current token extends the lease so nobody can take over."""
        got = await claim(store, lease_ttl=SHORT)
        state = await store.renew_lease(APP, "run-1", got.run.token, LONG)
        assert state is LeaseState.OWNED
        run = await stored(store)
        assert run.lease_expires_at is not None
        assert run.lease_expires_at - run.updated_at == pytest.approx(LONG, abs=1.0)
        await asyncio.sleep(EXPIRE)
        assert not (await claim(store, owner="owner-b")).acquired

    async def test_renew_lease_reports_cancel_request(self, store: Store) -> None:
        """A heartbeat learns that a cancel was requested."""
        got = await claim(store)
        await store.request_cancel(APP, "run-1")
        state = await store.renew_lease(APP, "run-1", got.run.token, LONG)
        assert state is LeaseState.CANCEL_REQUESTED

    async def test_renew_lease_with_stale_token_is_lost(self, store: Store) -> None:
        """A heartbeat with a token that lost the run reports LOST and changes nothing."""
        old = await claim(store)
        new = await claim(store, owner="owner-b", steal_from="owner-a")
        assert await store.renew_lease(APP, "run-1", old.run.token, LONG) is LeaseState.LOST
        assert await stored(store) == new.run

    @pytest.mark.parametrize("status", ["completed", "failed", "cancelled"])
    async def test_renew_lease_of_finished_run_is_lost(
        self, store: Store, status: FinalStatus
    ) -> None:
        """A heartbeat for a finished run reports LOST and leaves the run as it was."""
        got = await claim(store)
        done = await store.finish_run(APP, "run-1", got.run.token, status)
        assert await store.renew_lease(APP, "run-1", got.run.token, LONG) is LeaseState.LOST
        assert await stored(store) == done

    async def test_renew_lease_of_absent_run_is_lost(self, store: Store) -> None:
        """A heartbeat for an absent run reports LOST and creates nothing."""
        assert await store.renew_lease(APP, "nope", 1, LONG) is LeaseState.LOST
        assert await store.get_run(APP, "nope") is None

    # -- renew_leases --------------------------------------------------------

    async def test_renew_leases_extends_owned_leases(self, store: Store) -> None:
        """A batch renewal extends every owned lease from the store's clock, and nothing else."""
        claims = [await claim(store, f"run-{i}", lease_ttl=SHORT) for i in range(3)]
        states = await store.renew_leases(APP, [(c.run.run_id, c.run.token) for c in claims], LONG)
        assert states == {c.run.run_id: LeaseState.OWNED for c in claims}
        for got in claims:
            run = await stored(store, got.run.run_id)
            assert run.lease_expires_at is not None
            assert run.lease_expires_at - run.updated_at == pytest.approx(LONG, abs=1.0)
            assert run.updated_at >= got.run.updated_at
            unchanged = dataclasses.replace(
                got.run, lease_expires_at=run.lease_expires_at, updated_at=run.updated_at
            )
            assert run == unchanged
        await asyncio.sleep(EXPIRE)
        for got in claims:
            assert not (await claim(store, got.run.run_id, owner="owner-b")).acquired

    async def test_renew_leases_reports_lost_runs_and_changes_them_not(self, store: Store) -> None:
        """A stale token, a finished run and an absent run are LOST, beside an owned one."""
        owned = await claim(store, "owned")
        old = await claim(store, "stolen")
        new = await claim(store, "stolen", owner="owner-b", steal_from="owner-a")
        done = await claim(store, "finished")
        finished = await store.finish_run(APP, "finished", done.run.token, "completed")
        states = await store.renew_leases(
            APP,
            [
                ("stolen", old.run.token),
                ("owned", owned.run.token),
                ("finished", done.run.token),
                ("absent", 1),
            ],
            LONG,
        )
        assert states == {
            "stolen": LeaseState.LOST,
            "owned": LeaseState.OWNED,
            "finished": LeaseState.LOST,
            "absent": LeaseState.LOST,
        }
        assert await stored(store, "stolen") == new.run
        assert await stored(store, "finished") == finished
        assert await store.get_run(APP, "absent") is None

    async def test_renew_leases_reports_cancel_requests(self, store: Store) -> None:
        """A run whose cancel was requested is renewed and reported CANCEL_REQUESTED."""
        asked = await claim(store, "asked", lease_ttl=SHORT)
        calm = await claim(store, "calm")
        await store.request_cancel(APP, "asked")
        states = await store.renew_leases(
            APP, [("asked", asked.run.token), ("calm", calm.run.token)], LONG
        )
        assert states == {"asked": LeaseState.CANCEL_REQUESTED, "calm": LeaseState.OWNED}
        run = await stored(store, "asked")
        assert run.lease_expires_at is not None
        assert run.lease_expires_at - run.updated_at == pytest.approx(LONG, abs=1.0)

    async def test_renew_leases_of_nothing_is_empty(self, store: Store) -> None:
        """An empty batch answers {} and writes nothing."""
        assert await store.renew_leases(APP, [], LONG) == {}
        assert list(await store.list_runs(APP)) == []

    async def test_renew_leases_of_a_large_batch(self, store: Store) -> None:
        """Five hundred runs in one batch, a few of them lost, each get their own answer."""
        claims = [await claim(store, f"run-{i:03}", lease_ttl=SHORT) for i in range(500)]
        finished = {c.run.run_id for c in claims[::50]}
        for got in claims[::50]:
            await store.finish_run(APP, got.run.run_id, got.run.token, "completed")
        leases = [(c.run.run_id, c.run.token) for c in claims] + [("absent", 1)]
        states = await store.renew_leases(APP, leases, LONG)
        assert states == {
            run_id: LeaseState.LOST
            if run_id in finished or run_id == "absent"
            else LeaseState.OWNED
            for run_id, _ in leases
        }
        runs = await store.list_runs(APP, limit=1000)
        assert len(runs) == 500
        for run in runs:
            if run.run_id in finished:
                assert (run.status, run.lease_expires_at) == ("completed", None)
            else:
                assert run.lease_expires_at is not None
                assert run.lease_expires_at - run.updated_at == pytest.approx(LONG, abs=1.0)

    async def test_release_run_lets_another_owner_take_over(self, store: Store) -> None:
        """A released run stays running and can be claimed at once despite a long lease."""
        got = await claim(store)
        await store.save_step(APP, "run-1", got.run.token, make_step("a", 0))
        await store.release_run(APP, "run-1", got.run.token)
        released = await stored(store)
        assert released.status == "running"
        assert released.token == got.run.token
        again = await claim(store, owner="owner-b")
        assert again.acquired
        assert again.run.token > got.run.token
        assert [s.step_id for s in again.steps] == ["a"]

    async def test_release_run_with_stale_token_is_ignored(self, store: Store) -> None:
        """Releasing with a token that lost the run does nothing and raises nothing."""
        old = await claim(store)
        new = await claim(store, owner="owner-b", steal_from="owner-a")
        await store.release_run(APP, "run-1", old.run.token)
        assert await stored(store) == new.run
        assert not (await claim(store, owner="owner-c")).acquired

    async def test_release_run_of_finished_or_absent_run_is_ignored(self, store: Store) -> None:
        """Releasing a finished or absent run changes nothing and raises nothing."""
        got = await claim(store)
        done = await store.finish_run(APP, "run-1", got.run.token, "completed", output="1")
        await store.release_run(APP, "run-1", got.run.token)
        await store.release_run(APP, "nope", 1)
        assert await stored(store) == done
        assert await store.get_run(APP, "nope") is None

    # -- finish_run --------------------------------------------------------

    async def test_finish_run_completed_records_output(self, store: Store) -> None:
        """Finishing as completed stores the output and drops owner and lease."""
        got = await claim(store)
        done = await store.finish_run(APP, "run-1", got.run.token, "completed", output='{"ok": 1}')
        assert (done.status, done.output, done.error) == ("completed", '{"ok": 1}', None)
        assert (done.owner, done.lease_expires_at) == (None, None)
        assert (done.token, done.attempts, done.inputs) == (got.run.token, 1, got.run.inputs)
        assert done.created_at == got.run.created_at
        assert done.updated_at >= got.run.updated_at
        assert await stored(store) == done

    async def test_finish_run_failed_records_error(self, store: Store) -> None:
        """Finishing as failed stores the error."""
        got = await claim(store)
        done = await store.finish_run(APP, "run-1", got.run.token, "failed", error='{"t": "E"}')
        assert (done.status, done.output, done.error) == ("failed", None, '{"t": "E"}')
        assert await stored(store) == done

    async def test_finish_run_with_stale_token_is_fenced(self, store: Store) -> None:
        """A zombie cannot record an outcome: LeaseLostError, and the run is unchanged."""
        old = await claim(store)
        new = await claim(store, owner="owner-b", steal_from="owner-a")
        with pytest.raises(LeaseLostError):
            await store.finish_run(APP, "run-1", old.run.token, "completed", output='"zombie"')
        assert await stored(store) == new.run

    async def test_finish_run_twice_is_fenced(self, store: Store) -> None:
        """A finished run cannot be finished again, even by its last owner."""
        got = await claim(store)
        done = await store.finish_run(APP, "run-1", got.run.token, "completed", output="1")
        with pytest.raises(LeaseLostError):
            await store.finish_run(APP, "run-1", got.run.token, "failed", error='"late"')
        assert await stored(store) == done

    async def test_finish_absent_run_is_fenced(self, store: Store) -> None:
        """Finishing a run that does not exist raises LeaseLostError and creates nothing."""
        with pytest.raises(LeaseLostError):
            await store.finish_run(APP, "nope", 1, "completed", output="1")
        assert await store.get_run(APP, "nope") is None

    # -- request_cancel ------------------------------------------------------

    async def test_request_cancel_of_running_run_sets_the_flag(self, store: Store) -> None:
        """Cancelling a running run flags it and leaves it running with its owner."""
        got = await claim(store)
        run = await store.request_cancel(APP, "run-1")
        assert run is not None
        assert (run.status, run.cancel_requested) == ("running", True)
        assert (run.owner, run.token) == (got.run.owner, got.run.token)
        assert await stored(store) == run

    async def test_request_cancel_of_failed_run_cancels_it(self, store: Store) -> None:
        """Cancelling a failed run makes it cancelled at once."""
        await failed_run_with_steps(store)
        run = await store.request_cancel(APP, "run-1")
        assert run is not None
        assert run.status == "cancelled"
        assert await stored(store) == run

    @pytest.mark.parametrize("status", ["completed", "cancelled"])
    async def test_request_cancel_of_finished_run_changes_nothing(
        self, store: Store, status: FinalStatus
    ) -> None:
        """Cancelling a completed or cancelled run returns it unchanged."""
        got = await claim(store)
        done = await store.finish_run(APP, "run-1", got.run.token, status, output="1")
        assert await store.request_cancel(APP, "run-1") == done
        assert await stored(store) == done

    async def test_request_cancel_of_absent_run_is_none(self, store: Store) -> None:
        """Cancelling an absent run returns None and creates nothing."""
        assert await store.request_cancel(APP, "nope") is None
        assert await store.get_run(APP, "nope") is None

    # -- load_run, get_run, list_runs ------------------------------------------

    async def test_absent_run_loads_as_none(self, store: Store) -> None:
        """load_run and get_run of an unknown run id return None."""
        assert await store.load_run(APP, "nope") is None
        assert await store.get_run(APP, "nope") is None

    async def test_get_run_matches_load_run(self, store: Store) -> None:
        """get_run returns the same record as load_run, without the steps."""
        got = await claim(store)
        await store.save_step(APP, "run-1", got.run.token, make_step("a", 0))
        loaded = await store.load_run(APP, "run-1")
        assert loaded is not None
        assert await store.get_run(APP, "run-1") == loaded[0]

    async def _three_runs(self, store: Store) -> None:
        a = await claim(store, "r-a", workflow="alpha")
        await asyncio.sleep(0.01)
        await claim(store, "r-b", workflow="beta")
        await asyncio.sleep(0.01)
        await claim(store, "r-c", workflow="alpha")
        await store.finish_run(APP, "r-a", a.run.token, "completed", output="1")

    async def test_list_runs_newest_first(self, store: Store) -> None:
        """list_runs returns the app's runs by creation time, newest first."""
        await self._three_runs(store)
        assert [r.run_id for r in await store.list_runs(APP)] == ["r-c", "r-b", "r-a"]

    async def test_list_runs_filters(self, store: Store) -> None:
        """list_runs filters by status and by workflow name, alone or together."""
        await self._three_runs(store)

        async def ids(**filters: str) -> list[str]:
            return [r.run_id for r in await store.list_runs(APP, **filters)]  # type: ignore[arg-type]

        assert await ids(status="running") == ["r-c", "r-b"]
        assert await ids(status="completed") == ["r-a"]
        assert await ids(status="failed") == []
        assert await ids(workflow="alpha") == ["r-c", "r-a"]
        assert await ids(workflow="alpha", status="running") == ["r-c"]
        assert await ids(workflow="gamma") == []

    async def test_list_runs_limit(self, store: Store) -> None:
        """list_runs returns at most ``limit`` runs, the newest ones."""
        await self._three_runs(store)
        assert [r.run_id for r in await store.list_runs(APP, limit=2)] == ["r-c", "r-b"]
        assert [r.run_id for r in await store.list_runs(APP, limit=1)] == ["r-c"]

    async def test_list_runs_returns_full_records(self, store: Store) -> None:
        """The records listed equal the stored runs."""
        await self._three_runs(store)
        for run in await store.list_runs(APP):
            assert run == await stored(store, run.run_id)

    async def test_apps_sharing_a_store_are_isolated(self, store: Store) -> None:
        """Two apps using the same run ids never see each other's runs, steps or signals."""
        mine = await claim(store, "shared", app="app-one", workflow="wf")
        theirs = await claim(store, "shared", app="app-two", workflow="other", owner="owner-b")
        assert mine.acquired
        assert theirs.acquired
        await store.save_step("app-one", "shared", mine.run.token, make_step("a", 0))
        await store.send_signal("app-two", "shared", "go", '"two"')
        await store.finish_run("app-one", "shared", mine.run.token, "completed", output="1")
        assert await stored_steps(store, "shared", app="app-two") == []
        assert (await stored(store, "shared", app="app-two")).status == "running"
        assert (await stored(store, "shared", app="app-one")).status == "completed"
        assert await store.read_signal("app-one", "shared", "go", 0) is None
        assert await store.read_signal("app-two", "shared", "go", 0) == '"two"'
        assert [r.app for r in await store.list_runs("app-one")] == ["app-one"]
        assert [r.app for r in await store.list_runs("app-two")] == ["app-two"]
        assert await store.list_runs("app-three") == []
        assert await store.get_run("app-three", "shared") is None

    # -- signals -------------------------------------------------------------

    async def test_signals_are_indexed_in_arrival_order(self, store: Store) -> None:
        """Signals of one name are numbered 0, 1, 2 ... and read back by index."""
        await claim(store)
        indexes = [await store.send_signal(APP, "run-1", "go", json.dumps(i)) for i in range(3)]
        assert indexes == [0, 1, 2]
        assert [await store.read_signal(APP, "run-1", "go", i) for i in range(3)] == [
            "0",
            "1",
            "2",
        ]

    async def test_signal_names_and_runs_count_separately(self, store: Store) -> None:
        """Each (run, signal name) pair has its own numbering and payloads."""
        assert await store.send_signal(APP, "run-1", "go", '"a"') == 0
        assert await store.send_signal(APP, "run-1", "stop", '"b"') == 0
        assert await store.send_signal(APP, "run-2", "go", '"c"') == 0
        assert await store.send_signal(APP, "run-1", "go", '"d"') == 1
        assert await store.read_signal(APP, "run-1", "stop", 0) == '"b"'
        assert await store.read_signal(APP, "run-2", "go", 0) == '"c"'
        assert await store.read_signal(APP, "run-1", "go", 1) == '"d"'

    async def test_read_of_unsent_signal_is_none(self, store: Store) -> None:
        """Reading a signal index not sent yet returns None."""
        assert await store.read_signal(APP, "run-1", "go", 0) is None
        await store.send_signal(APP, "run-1", "go", '"x"')
        assert await store.read_signal(APP, "run-1", "go", 1) is None
        assert await store.read_signal(APP, "run-1", "other", 0) is None
        # Indexes count from 0: there is no signal before the first.
        assert await store.read_signal(APP, "run-1", "go", -1) is None

    async def test_signal_sent_before_the_run_exists_is_kept(self, store: Store) -> None:
        """A signal sent to a run id that does not exist yet is there once the run starts."""
        assert await store.send_signal(APP, "early", "go", '{"v": 1}') == 0
        assert await store.get_run(APP, "early") is None
        await claim(store, "early")
        assert await store.read_signal(APP, "early", "go", 0) == '{"v": 1}'
        assert await store.send_signal(APP, "early", "go", '{"v": 2}') == 1

    async def test_concurrent_signals_get_distinct_indexes(self, store: Store) -> None:
        """Simultaneous sends of one signal get indexes 0..n-1, each with its own payload."""
        payloads = [json.dumps(i) for i in range(30)]
        indexes = await asyncio.gather(
            *(store.send_signal(APP, "run-1", "go", p) for p in payloads)
        )
        assert sorted(indexes) == list(range(30))
        for index, payload in zip(indexes, payloads, strict=True):
            assert await store.read_signal(APP, "run-1", "go", index) == payload

    # -- read_signals ----------------------------------------------------------

    async def test_read_signals_returns_the_sent_ones_only(self, store: Store) -> None:
        """A batch over several runs and names returns the sent signals and omits the rest."""
        await store.send_signal(APP, "run-1", "go", '"go-0"')
        await store.send_signal(APP, "run-1", "go", '"go-1"')
        await store.send_signal(APP, "run-1", "stop", '"stop-0"')
        await store.send_signal(APP, "run-2", "go", '{"run": 2}')
        wanted = [
            ("run-1", "go", 1),
            ("run-1", "go", 2),  # beyond the last one sent
            ("run-1", "stop", 0),
            ("run-1", "other", 0),  # a name never sent
            ("run-2", "go", 0),
            ("run-2", "stop", 0),
            ("run-3", "go", 0),  # a run without signals
            ("run-1", "go", 0),
        ]
        assert await store.read_signals(APP, wanted) == {
            ("run-1", "go", 0): '"go-0"',
            ("run-1", "go", 1): '"go-1"',
            ("run-1", "stop", 0): '"stop-0"',
            ("run-2", "go", 0): '{"run": 2}',
        }
        for key in wanted:
            single = await store.read_signal(APP, *key)
            assert (await store.read_signals(APP, [key])).get(key) == single

    async def test_read_signals_of_nothing_is_empty(self, store: Store) -> None:
        """An empty batch answers {}, whether or not signals exist."""
        assert await store.read_signals(APP, []) == {}
        await store.send_signal(APP, "run-1", "go", '"x"')
        assert await store.read_signals(APP, []) == {}

    async def test_read_signals_sees_only_its_own_app(self, store: Store) -> None:
        """Signals another app sent to the same run ids and names are not in the answer."""
        await store.send_signal("app-two", "shared", "go", '"two"')
        await store.send_signal("app-one", "shared", "go", '"one-0"')
        await store.send_signal("app-one", "shared", "go", '"one-1"')
        await store.send_signal("app-two", "shared", "go", '"two-1"')
        await store.send_signal("app-two", "shared", "go", '"two-2"')
        wanted = [("shared", "go", i) for i in range(3)]
        assert await store.read_signals("app-one", wanted) == {
            ("shared", "go", 0): '"one-0"',
            ("shared", "go", 1): '"one-1"',
        }
        assert await store.read_signals("app-three", wanted) == {}

    async def test_read_signals_returns_payloads_byte_for_byte(self, store: Store) -> None:
        """Payloads come back exactly as sent, under ids and names with odd text."""
        payloads = [*ODD_JSON, *(json.dumps(t) for t in ODD_TEXTS), MEGABYTE_JSON]
        sent: dict[tuple[str, str, int], str] = {}
        for i, payload in enumerate(payloads):
            # Several payloads share an odd run id and name: indexes 0, 1, 2 ...
            text = ODD_TEXTS[i % len(ODD_TEXTS)]
            run_id, name = f"run {text}", f"signal {text}"
            sent[run_id, name, await store.send_signal(APP, run_id, name, payload)] = payload
        assert await store.read_signals(APP, list(sent)) == sent

    async def test_read_signals_of_a_large_batch(self, store: Store) -> None:
        """Twelve thousand signals in one call (36,000 values: over SQLite's parameter limit)."""
        names = ("go", "stop", "next")
        sent: dict[tuple[str, str, int], str] = {}
        for r in range(40):
            key = (f"run-{r:02}", names[r % 3], 0)
            sent[key] = json.dumps([r, names[r % 3]])
            assert await store.send_signal(APP, *key[:2], sent[key]) == 0
        unsent = [(f"run-{r:02}", n, i) for r in range(40) for n in names for i in range(1, 100)]
        # Found ones at both ends: a read in chunks must answer for the first and the last.
        found = list(sent)
        wanted = [*found[:20], *unsent, *found[20:]]
        assert len(wanted) == 11_920
        assert await store.read_signals(APP, wanted) == sent

    async def test_read_signals_refuses_nul_in_names(self, store: Store) -> None:
        """A NUL in the app, a wanted run id or a name is a RunIdError, as for send_signal."""
        await store.send_signal(APP, "run-1", "go", '"x"')
        for app, key in (
            ("bad\x00app", ("run-1", "go", 0)),
            (APP, ("run\x001", "go", 0)),
            (APP, ("run-1", "g\x00o", 0)),
        ):
            with pytest.raises(RunIdError):
                await store.read_signals(app, [("run-1", "go", 0), key])

    # -- round trips -----------------------------------------------------------

    @pytest.mark.parametrize("text", ODD_TEXTS)
    async def test_odd_ids_round_trip(self, store: Store, text: str) -> None:
        """Ids and names with quotes, SQL, unicode and emoji are stored and matched exactly."""
        app, run_id, step_id = f"app {text}", f"run {text}", f"task {text}"
        got = await store.claim_run(
            NewRun(app, run_id, f"wf {text}", '"in"', parent_run_id=f"parent {text}"),
            owner=f"owner {text}",
            lease_ttl=LONG,
        )
        assert got.acquired
        step = make_step(step_id, 0, task=f"task {text}")
        await store.save_step(app, run_id, got.run.token, step)
        await store.send_signal(app, run_id, f"signal {text}", '"s"')
        loaded = await store.load_run(app, run_id)
        assert loaded == (got.run, (step,))
        run = got.run
        assert (run.app, run.run_id, run.workflow) == (app, run_id, f"wf {text}")
        assert (run.owner, run.parent_run_id) == (f"owner {text}", f"parent {text}")
        assert await store.read_signal(app, run_id, f"signal {text}", 0) == '"s"'
        assert [r.run_id for r in await store.list_runs(app, workflow=f"wf {text}")] == [run_id]
        assert await store.get_run(app, run_id + "x") is None
        assert await store.get_run(APP, run_id) is None

    @pytest.mark.parametrize("value", [*ODD_JSON, *(json.dumps(t) for t in ODD_TEXTS)])
    async def test_json_values_round_trip_byte_for_byte(self, store: Store, value: str) -> None:
        """Inputs, results, errors, outputs and payloads come back exactly as given."""
        await self._round_trip_values(store, value)

    async def test_megabyte_values_round_trip(self, store: Store) -> None:
        """Values of about a megabyte are stored and returned intact."""
        await self._round_trip_values(store, MEGABYTE_JSON)

    async def _round_trip_values(self, store: Store, value: str) -> None:
        got = await claim(store, inputs=value)
        assert got.run.inputs == value
        token = got.run.token
        ok, bad = (
            make_step("ok", 0, result=value),
            make_step("bad", 1, status="failed", error=value),
        )
        assert (await store.save_step(APP, "run-1", token, ok)).step == ok
        assert (await store.save_step(APP, "run-1", token, bad)).step == bad
        assert await store.send_signal(APP, "run-1", "sig", value) == 0
        assert await store.read_signal(APP, "run-1", "sig", 0) == value
        done = await store.finish_run(APP, "run-1", token, "failed", output=value, error=value)
        assert (done.output, done.error) == (value, value)
        loaded = await store.load_run(APP, "run-1")
        assert loaded == (done, (ok, bad))
        assert loaded[0].inputs == value

    # -- model-based -----------------------------------------------------------

    @settings(
        max_examples=100,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(program=st.lists(st.one_of(*_OPERATIONS), min_size=8, max_size=50))
    async def test_store_agrees_with_model(self, store: Store, program: list[_Op]) -> None:
        """Random sequences of operations give the answers a plain model of the contract gives."""
        # Examples share the store: a fresh app keeps each one independent.
        app = f"model-{uuid.uuid4().hex}"
        model = _Model()
        for op in program:
            await op.check(store, model, app)
            # Also catch a wrong side effect that no answer of the operation shows.
            if not isinstance(op, _List):
                await _Load(op.run_id).check(store, model, app)
