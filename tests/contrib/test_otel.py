"""durable.contrib.otel: spans and metrics of runs, recorded by the OpenTelemetry SDK."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from durable import Workflow
from durable.contrib.otel import instrument, observe_queues, uninstrument
from durable.errors import ConfigurationError
from durable.stores import SQLiteStore
from durable.stores.base import RunRecord
from durable.testing import no_backoff

HERE = Path(__file__).parent


class Telemetry:
    """An SDK tracer and meter provider whose spans and metrics stay in memory."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracing = TracerProvider()
        self.tracing.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.metering = MeterProvider(metric_readers=[self.reader])
        self.caller = self.tracing.get_tracer("caller")

    def spans(self, prefix: str = "durable.") -> list[ReadableSpan]:
        return [s for s in self.exporter.get_finished_spans() if s.name.startswith(prefix)]

    def points(self, name: str) -> dict[tuple[tuple[str, Any], ...], Any]:
        """The data points of metric ``name``: sorted attributes -> value (sums) or count."""
        found: dict[tuple[tuple[str, Any], ...], Any] = {}
        data = self.reader.get_metrics_data()
        for resource in data.resource_metrics if data is not None else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name != name:
                        continue
                    for point in metric.data.data_points:
                        key = tuple(sorted((point.attributes or {}).items()))
                        found[key] = point.value if hasattr(point, "value") else point.count
        return found


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    t = Telemetry()
    yield t
    t.tracing.shutdown()
    t.metering.shutdown()


@pytest.fixture
async def wf(tmp_path: Path, telemetry: Telemetry) -> AsyncIterator[Workflow]:
    app = Workflow("shop", db=str(tmp_path / "otel.db"))
    instrument(app, tracer_provider=telemetry.tracing, meter_provider=telemetry.metering)
    yield app
    await app.close()


def _key(**attributes: Any) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted({"durable.app": "shop", **attributes}.items()))


def _one(spans: Sequence[ReadableSpan], name: str) -> ReadableSpan:
    matching = [s for s in spans if s.name == name]
    assert len(matching) == 1, [s.name for s in spans]
    return matching[0]


def _parent_id(span: ReadableSpan) -> int | None:
    return None if span.parent is None else span.parent.span_id


async def test_a_run_makes_a_span_and_each_step_attempt_a_child_span(
    wf: Workflow, telemetry: Telemetry
) -> None:
    """The run's span is a child of the caller's; each step's span a child of the run's."""

    @wf.task
    async def reserve(sku: str) -> str:
        return f"r-{sku}"

    @wf.task
    async def ship(reservation: str) -> str:
        return f"shipped {reservation}"

    @wf.workflow(id="order-{sku}")
    async def order(sku: str) -> str:
        return await ship(await reserve(sku))

    with telemetry.caller.start_as_current_span("request") as request:
        assert await order("lamp") == "shipped r-lamp"

    spans = telemetry.spans()
    assert sorted(s.name for s in spans) == [
        "durable.run order",
        "durable.step reserve",
        "durable.step ship",
    ]
    run = _one(spans, "durable.run order")
    assert _parent_id(run) == request.get_span_context().span_id
    assert run.context.trace_id == request.get_span_context().trace_id
    assert dict(run.attributes or {}) == {
        "durable.app": "shop",
        "durable.workflow": "order",
        "durable.run_id": "order-lamp",
        "durable.attempt": 1,
        "durable.replayed": False,
        "durable.takeover": False,
        "durable.outcome": "completed",
        "durable.replayed_steps": 0,
    }
    step = _one(spans, "durable.step reserve")
    assert _parent_id(step) == run.context.span_id
    assert dict(step.attributes or {}) == {
        "durable.app": "shop",
        "durable.workflow": "order",
        "durable.task": "reserve",
        "durable.run_id": "order-lamp",
        "durable.step_id": "reserve",
        "durable.attempt": 1,
        "durable.replayed": False,
        "durable.outcome": "completed",
    }
    for span in spans:
        assert span.status.status_code is StatusCode.UNSET
        assert span.start_time is not None
        assert span.end_time is not None
        assert span.end_time > span.start_time
    # Steps run inside the run's span, in order.
    reserve_span, ship_span = _one(spans, "durable.step reserve"), _one(spans, "durable.step ship")
    assert run.start_time <= reserve_span.start_time  # type: ignore[operator]
    assert reserve_span.end_time <= ship_span.start_time  # type: ignore[operator]
    assert ship_span.end_time <= run.end_time  # type: ignore[operator]


async def test_spans_made_by_a_task_body_nest_under_its_step(
    wf: Workflow, telemetry: Telemetry
) -> None:
    """A span opened inside a task body (an HTTP client's, say) is a child of the step's span."""

    @wf.task
    async def call_api() -> int:
        with telemetry.caller.start_as_current_span("GET /price"):
            return 3

    @wf.workflow(id="priced")
    async def priced() -> int:
        return await call_api()

    await priced()
    step = _one(telemetry.spans(), "durable.step call_api")
    inner = _one(telemetry.spans("GET"), "GET /price")
    assert _parent_id(inner) == step.context.span_id


async def test_a_failure_is_recorded_on_the_step_and_run_spans(
    wf: Workflow, telemetry: Telemetry
) -> None:
    """A step attempt that raises, and the run it fails, end with status ERROR and the exception."""

    @wf.task
    async def charge() -> None:
        raise ValueError("card declined")

    @wf.workflow(id="pay")
    async def pay() -> None:
        await charge()

    with pytest.raises(ValueError, match="card declined"):
        await pay()

    spans = telemetry.spans()
    for name in ("durable.step charge", "durable.run pay"):
        span = _one(spans, name)
        assert span.status.status_code is StatusCode.ERROR
        assert span.status.description == "ValueError: card declined"
        (event,) = [e for e in span.events if e.name == "exception"]
        assert (event.attributes or {})["exception.type"] == "ValueError"
        assert (event.attributes or {})["exception.message"] == "card declined"
        assert (span.attributes or {})["durable.outcome"] == "failed"
    assert telemetry.points("durable.run.outcomes") == {
        _key(**{"durable.workflow": "pay", "durable.outcome": "failed"}): 1
    }


async def test_each_retry_is_a_span_of_its_own_and_is_counted(
    wf: Workflow, telemetry: Telemetry
) -> None:
    """A retried step makes one span per attempt; the retry is an event and a metric."""
    calls = 0

    @wf.task(retries=2)
    async def flaky() -> int:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise ConnectionError(f"attempt {calls}")
        return calls

    @wf.workflow(id="flaky-run")
    async def flaky_run() -> int:
        return await flaky()

    with no_backoff():
        assert await flaky_run() == 3

    steps = [s for s in telemetry.spans() if s.name == "durable.step flaky"]
    assert [(s.attributes or {})["durable.attempt"] for s in steps] == [1, 2, 3]
    assert [s.status.status_code for s in steps] == [
        StatusCode.ERROR,
        StatusCode.ERROR,
        StatusCode.UNSET,
    ]
    run = _one(telemetry.spans(), "durable.run flaky_run")
    retries = [e for e in run.events if e.name == "durable.step.retry"]
    assert [(e.attributes or {})["durable.attempt"] for e in retries] == [1, 2]
    flaky_key = {"durable.workflow": "flaky_run", "durable.task": "flaky"}
    assert telemetry.points("durable.step.retries") == {_key(**flaky_key): 2}
    assert telemetry.points("durable.steps.executed") == {
        _key(**flaky_key, **{"durable.outcome": "failed"}): 2,
        _key(**flaky_key, **{"durable.outcome": "completed"}): 1,
    }
    # The histogram counts every attempt, by outcome.
    assert telemetry.points("durable.step.duration") == {
        _key(**flaky_key, **{"durable.outcome": "failed"}): 2,
        _key(**flaky_key, **{"durable.outcome": "completed"}): 1,
    }


async def test_a_replayed_step_makes_no_span_and_a_resumed_run_keeps_its_trace(
    wf: Workflow, telemetry: Telemetry
) -> None:
    """Resuming a failed run: its replayed step makes no span, and the new execution
    is a child of the first caller's span, linked to the span current when resumed."""
    fail = True

    @wf.task
    async def first() -> int:
        return 1

    @wf.task
    async def second(n: int) -> int:
        if fail:
            raise RuntimeError("not yet")
        return n + 1

    @wf.workflow(id="two-steps")
    async def two_steps() -> int:
        return await second(await first())

    with (
        telemetry.caller.start_as_current_span("first call") as first_call,
        pytest.raises(RuntimeError),
    ):
        await two_steps()
    telemetry.exporter.clear()
    fail = False
    with telemetry.caller.start_as_current_span("second call") as second_call:
        assert await two_steps() == 2

    spans = telemetry.spans()
    assert sorted(s.name for s in spans) == ["durable.run two_steps", "durable.step second"]
    run = _one(spans, "durable.run two_steps")
    assert (run.attributes or {})["durable.replayed"] is True
    assert (run.attributes or {})["durable.replayed_steps"] == 1
    assert (run.attributes or {})["durable.attempt"] == 2
    assert _parent_id(run) == first_call.get_span_context().span_id
    assert run.context.trace_id == first_call.get_span_context().trace_id
    assert [link.context.span_id for link in run.links] == [second_call.get_span_context().span_id]
    assert telemetry.points("durable.steps.replayed") == {
        _key(**{"durable.workflow": "two_steps"}): 1
    }
    outcomes = telemetry.points("durable.run.outcomes")
    assert outcomes == {
        _key(**{"durable.workflow": "two_steps", "durable.outcome": "failed"}): 1,
        _key(**{"durable.workflow": "two_steps", "durable.outcome": "completed"}): 1,
    }


async def test_a_queued_run_executed_by_a_worker_continues_the_enqueuer_trace(
    wf: Workflow, telemetry: Telemetry
) -> None:
    """The trace context is stored by enqueue(); the worker's run span is its child."""

    @wf.task
    async def work() -> str:
        return "done"

    @wf.workflow(id="queued-job", queue="jobs")
    async def job() -> str:
        return await work()

    with telemetry.caller.start_as_current_span("enqueue request") as request:
        handle = await job.enqueue()
    stored = await wf.get_run("queued-job")
    ids = request.get_span_context()
    assert stored.status == "queued"
    raw = await wf.store.get_run("shop", "queued-job")
    assert raw is not None
    assert raw.trace_context is not None
    traceparent = json.loads(raw.trace_context)["traceparent"]
    assert traceparent.split("-")[1:3] == [f"{ids.trace_id:032x}", f"{ids.span_id:016x}"]

    worker = asyncio.create_task(
        wf.serve(queues=["jobs"], poll_interval=0.05, handle_signals=False)
    )
    try:
        assert await handle.result(timeout=30) == "done"
    finally:
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker
    run = _one(telemetry.spans(), "durable.run job")
    assert run.context.trace_id == ids.trace_id
    assert _parent_id(run) == ids.span_id
    assert run.links == ()
    assert _parent_id(_one(telemetry.spans(), "durable.step work")) == run.context.span_id


async def test_a_parked_run_woken_by_a_worker_continues_the_enqueuer_trace(
    wf: Workflow, telemetry: Telemetry
) -> None:
    """A park ends the run's span; the execution that wakes it opens another, same parent."""

    @wf.task
    async def step(name: str) -> str:
        return name

    @wf.workflow(id="parked-job", queue="jobs")
    async def job() -> str:
        before = await step("before")
        await wf.sleep(0.05)  # longer than park_after: the run parks
        return before + "+" + await step("after")

    with telemetry.caller.start_as_current_span("enqueue request") as request:
        handle = await job.enqueue()
    worker = asyncio.create_task(
        wf.serve(queues=["jobs"], poll_interval=0.05, handle_signals=False, park_after=0)
    )
    try:
        assert await handle.result(timeout=30) == "before+after"
    finally:
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker
    ids = request.get_span_context()
    runs = [s for s in telemetry.spans() if s.name == "durable.run job"]
    assert [(s.attributes or {}).get("durable.outcome") for s in runs] == ["parked", "completed"]
    for run in runs:
        assert run.context.trace_id == ids.trace_id
        assert _parent_id(run) == ids.span_id
    first, woken = runs
    steps = {
        (s.attributes or {}).get("durable.step_id"): s for s in telemetry.spans("durable.step")
    }
    assert {step_id: _parent_id(span) for step_id, span in steps.items()} == {
        "step": first.context.span_id,
        "step#1": woken.context.span_id,
    }
    assert telemetry.points("durable.run.outcomes") == {
        _key(**{"durable.workflow": "job", "durable.outcome": "parked"}): 1,
        _key(**{"durable.workflow": "job", "durable.outcome": "completed"}): 1,
    }


async def test_without_the_observer_nothing_is_recorded_or_stored(
    wf: Workflow, telemetry: Telemetry
) -> None:
    """After uninstrument(), runs make no spans and keep no trace context."""
    uninstrument(wf)

    @wf.task
    async def noop() -> None:
        return None

    @wf.workflow(id="quiet")
    async def quiet() -> None:
        await noop()

    with telemetry.caller.start_as_current_span("request"):
        await quiet()
    assert telemetry.spans() == []
    raw = await wf.store.get_run("shop", "quiet")
    assert raw is not None
    assert raw.trace_context is None
    assert telemetry.points("durable.steps.executed") == {}


async def _stored_run(db: str, run_id: str) -> RunRecord | None:
    async with SQLiteStore(db) as store:
        return await store.get_run("otel-crash", run_id)


@pytest.mark.crash
def test_a_run_recovered_in_another_process_continues_the_callers_trace(tmp_path: Path) -> None:
    """A process is SIGKILLed mid-run; the process that recovers the run traces it
    under the caller's span."""
    db = str(tmp_path / "crash.db")
    app = [sys.executable, str(HERE / "_otel_app.py")]
    first = subprocess.Popen([*app, "start", db], stdout=subprocess.PIPE, text=True, cwd=HERE)
    try:
        assert first.stdout is not None
        caller = json.loads(first.stdout.readline())
        assert first.stdout.readline().strip() == "hanging"
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        if first.stdout is not None:
            first.stdout.close()

    stored = asyncio.run(_stored_run(db, "traced"))
    assert stored is not None
    assert stored.status == "running"
    assert stored.trace_context is not None
    traceparent = json.loads(stored.trace_context)["traceparent"]
    assert traceparent.split("-")[1:3] == [caller["trace_id"], caller["span_id"]]

    second = subprocess.run(
        [*app, "recover", db], capture_output=True, text=True, cwd=HERE, timeout=120, check=True
    )
    report = json.loads(second.stdout)
    assert report["recovered"] == ["traced"]
    spans = report["spans"]
    assert sorted(s["name"] for s in spans) == ["durable.run traced", "durable.step hang"]
    (run,) = [s for s in spans if s["name"] == "durable.run traced"]
    assert run["trace_id"] == caller["trace_id"]
    assert run["parent_span_id"] == caller["span_id"]
    assert run["attributes"]["durable.takeover"] is True
    assert run["attributes"]["durable.attempt"] == 2
    assert run["attributes"]["durable.replayed_steps"] == 1
    assert run["attributes"]["durable.outcome"] == "completed"
    (step,) = [s for s in spans if s["name"] == "durable.step hang"]
    assert step["trace_id"] == caller["trace_id"]
    assert report["metrics"]["durable.run.takeovers"] == [
        {"attributes": {"durable.app": "otel-crash", "durable.workflow": "traced"}, "value": 1}
    ]


def test_the_example_prints_the_run_under_the_request(tmp_path: Path) -> None:
    """examples/otel_tracing.py shows the run's span under the request, a span per attempt."""
    example = HERE.parents[1] / "examples" / "otel_tracing.py"
    result = subprocess.run(
        [sys.executable, str(example)],
        cwd=tmp_path,
        env={**os.environ, "EXAMPLE_DB": str(tmp_path / "example.db")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "result: paid reservation-lamp",
        "POST /checkout",
        "  durable.run checkout: completed",
        "    durable.step reserve attempt 1: completed",
        "    durable.step pay attempt 1: failed",
        "    durable.step pay attempt 2: completed",
        "metric durable.step.retries: 1",
        "metric durable.run.outcomes: 1",
    ]


def _queue_key(queue: str, state: str | None = None) -> tuple[tuple[str, Any], ...]:
    state_attribute = {} if state is None else {"durable.queue.state": state}
    return _key(**{"durable.queue": queue}, **state_attribute)


async def test_queue_gauges_report_depth_and_oldest_age_of_each_queue(
    tmp_path: Path, telemetry: Telemetry
) -> None:
    """The gauges follow wf.queue_stats(): depth by state, the oldest ready run's wait."""
    wf = Workflow("shop", db=str(tmp_path / "queues.db"))
    wf.queue("idle")

    @wf.workflow(id="job-{n}", queue="jobs")
    async def job(n: int) -> int:
        return n

    depth, age = "durable.queue.depth", "durable.queue.oldest_age"
    gauges = observe_queues(wf, meter_provider=telemetry.metering, interval=3600)
    try:
        before = time.time()
        await job.enqueue(1)
        await job.enqueue(2, delay=timedelta(hours=1))
        async with gauges:
            assert telemetry.points(depth) == {
                _queue_key("idle", "ready"): 0,
                _queue_key("idle", "delayed"): 0,
                _queue_key("jobs", "ready"): 1,
                _queue_key("jobs", "delayed"): 1,
            }
            ages = telemetry.points(age)
            waited = time.time() - before
            assert sorted(ages) == [_queue_key("idle"), _queue_key("jobs")]
            assert ages[_queue_key("idle")] == 0.0
            assert 0.0 < ages[_queue_key("jobs")] <= waited
            # A reading is kept until the next one.
            await job.enqueue(3)
            assert telemetry.points(depth)[_queue_key("jobs", "ready")] == 1
            await gauges.refresh()
            assert telemetry.points(depth)[_queue_key("jobs", "ready")] == 2
        # Outside the context the gauges report nothing.
        assert telemetry.points(depth) == {}
        assert telemetry.points(age) == {}
    finally:
        await wf.close()


async def test_queue_gauges_refuse_an_interval_that_is_not_positive(wf: Workflow) -> None:
    """A zero interval is refused, naming the app."""
    with pytest.raises(ConfigurationError, match=r"'shop'.*interval"):
        observe_queues(wf, interval=0)
