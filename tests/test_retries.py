"""Retries: counts, waits, filters, non-retryable errors, cancellation, per-attempt timeouts."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from tests._journal import Journal

from durable import NonRetryableError, Workflow
from durable.backoff import constant, exponential, linear
from durable.engine import clock as _backoff_clock
from durable.testing import no_backoff


class Permanent(Exception):
    """An error no retry will fix."""


async def test_retries_count_attempts_after_the_first(wf: Workflow) -> None:
    """retries=N makes at most N + 1 attempts, and the step records the count."""
    journal = Journal()

    @wf.task(retries=4, backoff=constant(1))
    async def flaky() -> str:
        journal("try")
        if len(journal) < 3:
            raise ConnectionError("transient")
        return "done"

    @wf.workflow(id="flaky")
    async def flow() -> str:
        return await flaky()

    with no_backoff() as waits:
        assert await flow() == "done"
    assert len(journal) == 3
    assert waits == [1.0, 1.0]
    loaded = await wf.store.load_run(wf.name, "flaky")
    assert loaded is not None
    assert loaded[1][0].attempts == 3


async def test_no_wait_after_the_final_attempt(wf: Workflow) -> None:
    """A task that exhausts its retries waits between attempts only, not after the last."""

    @wf.task(retries=2, backoff=linear(start=2, step=3))
    async def broken() -> None:
        raise ConnectionError("down")

    @wf.workflow(id="broken")
    async def flow() -> None:
        await broken()

    with no_backoff() as waits, pytest.raises(ConnectionError):
        await flow()
    assert waits == [2.0, 5.0]


async def test_default_is_no_retry(wf: Workflow) -> None:
    """A bare @wf.task makes exactly one attempt."""
    journal = Journal()

    @wf.task
    async def once() -> None:
        journal("try")
        raise ConnectionError("down")

    @wf.workflow(id="once")
    async def flow() -> None:
        await once()

    with no_backoff() as waits, pytest.raises(ConnectionError):
        await flow()
    assert len(journal) == 1
    assert waits == []


async def test_retry_on_limits_which_errors_retry(wf: Workflow) -> None:
    """retry_on=ConnectionError retries those and fails at once on anything else."""
    journal = Journal()
    errors: list[Exception] = [ConnectionError("a"), ValueError("bad input"), ConnectionError("b")]

    @wf.task(retries=5, retry_on=ConnectionError, backoff=constant(1))
    async def call() -> None:
        journal("try")
        raise errors[len(journal) - 1]

    @wf.workflow(id="filtered")
    async def flow() -> None:
        await call()

    with no_backoff(), pytest.raises(ValueError, match="bad input"):
        await flow()
    assert len(journal) == 2


async def test_retry_on_predicate(wf: Workflow) -> None:
    """A predicate given as retry_on decides per error."""
    journal = Journal()

    @wf.task(retries=5, retry_on=lambda exc: "retry" in str(exc), backoff=constant(1))
    async def call() -> None:
        journal("try")
        raise RuntimeError("retry me" if len(journal) < 3 else "give up")

    @wf.workflow(id="predicate")
    async def flow() -> None:
        await call()

    with no_backoff(), pytest.raises(RuntimeError, match="give up"):
        await flow()
    assert len(journal) == 3


async def test_non_retryable_error_stops_retries(wf: Workflow) -> None:
    """Raising a NonRetryableError subclass records the failure after one attempt."""
    journal = Journal()

    class CardDeclined(NonRetryableError):
        pass

    @wf.task(retries=5)
    async def charge() -> None:
        journal("charge")
        raise CardDeclined("declined")

    @wf.workflow(id="charge")
    async def flow() -> None:
        await charge()

    with no_backoff() as waits, pytest.raises(CardDeclined):
        await flow()
    assert len(journal) == 1
    assert waits == []


async def test_cancellation_is_never_retried(wf: Workflow) -> None:
    """Cancelling a workflow during a retried task stops it; no further attempt runs."""
    journal = Journal()
    started = asyncio.Event()

    @wf.task(retries=5, backoff=constant(0))
    async def slow() -> None:
        journal("try")
        started.set()
        await asyncio.sleep(10)

    @wf.workflow(id="cancel-me")
    async def flow() -> None:
        await slow()

    call = asyncio.ensure_future(flow())
    await started.wait()
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await asyncio.sleep(0.05)
    assert len(journal) == 1


async def test_timed_out_attempt_is_retried(wf: Workflow) -> None:
    """timeout= bounds each attempt; a timed-out attempt counts as a failure and retries."""
    journal = Journal()

    @wf.task(retries=2, timeout=0.05, backoff=constant(1))
    async def sometimes_hangs() -> str:
        journal("try")
        if len(journal) == 1:
            await asyncio.sleep(5)
        return "fast"

    @wf.workflow(id="timeout")
    async def flow() -> str:
        return await sometimes_hangs()

    with no_backoff() as waits:
        assert await flow() == "fast"
    assert len(journal) == 2
    assert waits == [1.0]


async def test_every_attempt_timing_out_fails_with_timeout_error(wf: Workflow) -> None:
    """When all attempts time out the step fails with TimeoutError."""

    @wf.task(retries=1, timeout=0.02, backoff=constant(0))
    async def hangs() -> None:
        await asyncio.sleep(5)

    @wf.workflow(id="hangs")
    async def flow() -> None:
        await hangs()

    with pytest.raises(TimeoutError):
        await flow()


async def test_retry_waits_use_asyncio_sleep_without_the_testing_switch(
    wf: Workflow, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Outside no_backoff() each retry wait is an asyncio.sleep of the backoff's seconds."""
    journal = Journal()
    slept: list[float] = []
    real_sleep = asyncio.sleep

    async def recording_sleep(seconds: float) -> None:
        slept.append(seconds)
        await real_sleep(0)

    monkeypatch.setattr(_backoff_clock, "asyncio", SimpleNamespace(sleep=recording_sleep))

    @wf.task(retries=2, backoff=exponential(base=3, max=5))
    async def flaky() -> None:
        journal("try")
        if len(journal) < 3:
            raise ConnectionError("transient")

    @wf.workflow(id="real-sleep")
    async def flow() -> None:
        await flaky()

    await flow()
    assert slept == [3.0, 5.0]
    assert len(journal) == 3


async def test_exhausted_failure_is_recorded_in_the_store(wf: Workflow) -> None:
    """A step failure that exhausted retries is stored with its error and attempt count."""

    @wf.task(retries=1, backoff=constant(0))
    async def broken() -> None:
        raise Permanent("nope")

    @wf.workflow(id="recorded")
    async def flow() -> None:
        await broken()

    with pytest.raises(Permanent):
        await flow()
    loaded = await wf.store.load_run(wf.name, "recorded")
    assert loaded is not None
    run, steps = loaded
    assert run.status == "failed"
    assert steps[0].status == "failed"
    assert steps[0].attempts == 2
    assert steps[0].error is not None
    assert "Permanent" in steps[0].error
    assert "nope" in steps[0].error


async def test_task_raising_cancelled_error_runs_once_and_leaves_the_run_resumable(
    wf: Workflow,
) -> None:
    """A body raising CancelledError on its own reaches the caller once; no re-run loop."""
    journal = Journal()

    @wf.task(retries=3)
    async def charge() -> None:
        journal("charge")
        if len(journal) == 1:
            raise asyncio.CancelledError()

    @wf.workflow(id="self-cancelling")
    async def flow() -> str:
        await charge()
        return "done"

    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(flow(), 5)
    assert len(journal) == 1
    assert (await wf.get_run("self-cancelling")).status == "running"
    assert await flow() == "done"
    assert len(journal) == 2
