"""OpenTelemetry tracing and metrics for an app's runs (the ``[otel]`` extra).

::

    from durable.contrib.otel import instrument

    instrument(wf)   # the global tracer and meter providers, or pass your own

Spans (tracer ``durable``):

- ``durable.run <workflow>``: one per execution of a run in a process (a
  first run, a resume, a takeover, a worker executing a queued run);
- ``durable.step <task>``: one per attempt of a step's body, a child of its
  run's span and the current span while the body runs, so spans the body
  makes (an HTTP client's, say) nest under it. A step answered from its
  record makes no span: the run's span counts them (``durable.replayed_steps``).

A run records the caller's trace context (the global propagator's fields,
W3C ``traceparent`` by default) when it is created. Every execution's span is
a child of that stored context, in whichever process it runs, so a run
resumed by a worker, by ``wf.resume`` or by recovery continues the trace
that started it; a different span current at that moment (the request that
called ``wf.resume``) is added as a link.

Metrics (meter ``durable``), with ``durable.app`` and ``durable.workflow``
attributes: ``durable.steps.executed`` (each attempt, by ``durable.outcome``),
``durable.step.retries``, ``durable.steps.replayed``, ``durable.step.duration``
(a histogram of attempts, seconds), ``durable.run.outcomes`` (each
execution, by ``durable.outcome``) and ``durable.run.takeovers``.

Queue gauges, from :func:`observe_queues` (in one process per app, a worker
say): ``durable.queue.depth`` (queued runs, by ``durable.queue`` and
``durable.queue.state``, ``ready`` or ``delayed``) and
``durable.queue.oldest_age`` (seconds the oldest ready run of each queue has
waited, 0 when none is ready). They report the last ``wf.queue_stats()``,
read every ``interval`` seconds: a metrics export never waits on the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import TYPE_CHECKING, Self

from opentelemetry import context as otel_context
from opentelemetry import metrics, propagate, trace
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.trace import Link, Status, StatusCode

from durable.errors import ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Iterable
    from contextvars import Token
    from types import TracebackType

    from opentelemetry.context import Context
    from opentelemetry.util.types import Attributes

    from durable import QueueStats, Workflow
    from durable.engine.observe import RunOutcome
    from durable.stores.base import RunRecord

__all__ = ["OTelObserver", "QueueGauges", "instrument", "observe_queues", "uninstrument"]

_SCOPE = "durable"

logger = logging.getLogger(__name__)


def instrument(
    wf: Workflow,
    *,
    tracer_provider: trace.TracerProvider | None = None,
    meter_provider: metrics.MeterProvider | None = None,
) -> OTelObserver:
    """Trace and measure the runs of ``wf`` with OpenTelemetry; the observer installed.

    Without providers, the global ones are used (as set by
    ``trace.set_tracer_provider`` or the ``opentelemetry-instrument`` agent).
    It replaces any observer ``wf`` had.
    """
    from durable import __version__

    observer = OTelObserver(
        wf.name,
        tracer=trace.get_tracer(_SCOPE, __version__, tracer_provider),
        meter=metrics.get_meter(_SCOPE, __version__, meter_provider),
    )
    wf.set_observer(observer)
    return observer


def uninstrument(wf: Workflow) -> None:
    """Stop tracing and measuring the runs of ``wf``."""
    wf.set_observer(None)


def observe_queues(
    wf: Workflow,
    *,
    meter_provider: metrics.MeterProvider | None = None,
    interval: float = 15.0,
) -> QueueGauges:
    """Queue depth and oldest-waiting-age gauges for the queues of ``wf``.

    Use the result as an async context manager: inside it, ``wf.queue_stats()``
    is read on entry and then every ``interval`` seconds, and the gauges
    report the last reading; outside it they report nothing. Without a
    provider, the global meter provider is used.
    """
    if not interval > 0:
        raise ConfigurationError(
            f"observe_queues of app {wf.name!r}: interval must be > 0 seconds, got {interval!r}"
        )
    from durable import __version__

    return QueueGauges(wf, metrics.get_meter(_SCOPE, __version__, meter_provider), interval)


class QueueGauges:
    """The queue gauges of one app, fed by a task that reads its queue stats.

    Made by :func:`observe_queues`.
    """

    def __init__(self, wf: Workflow, meter: metrics.Meter, interval: float) -> None:
        self.wf = wf
        self.interval = interval
        # The last reading; None outside the context (the gauges then report nothing).
        self.stats: list[QueueStats] | None = None
        self._poller: asyncio.Task[None] | None = None
        meter.create_observable_gauge(
            "durable.queue.depth",
            callbacks=[self._depth],
            unit="{run}",
            description="Runs waiting in each queue, ready to start or delayed",
        )
        meter.create_observable_gauge(
            "durable.queue.oldest_age",
            callbacks=[self._oldest_age],
            unit="s",
            description="How long the oldest ready run of each queue has waited",
        )

    async def refresh(self) -> None:
        """Read ``wf.queue_stats()`` now; the gauges report this reading from now on."""
        self.stats = await self.wf.queue_stats()

    async def __aenter__(self) -> Self:
        await self.refresh()
        self._poller = asyncio.create_task(
            self._poll(), name=f"durable-queue-gauges-{self.wf.name}"
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        poller, self._poller = self._poller, None
        if poller is not None:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
        self.stats = None

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.refresh()
            except Exception:
                # The store is down or slow: keep the last reading, try again later.
                logger.warning(
                    "queue stats of app %r could not be read", self.wf.name, exc_info=True
                )

    def _attributes(self, queue: str) -> dict[str, str]:
        return {"durable.app": self.wf.name, "durable.queue": queue}

    def _depth(self, options: CallbackOptions) -> Iterable[Observation]:
        for stats in self.stats or ():
            attributes = self._attributes(stats.queue)
            yield Observation(stats.ready, {**attributes, "durable.queue.state": "ready"})
            yield Observation(stats.delayed, {**attributes, "durable.queue.state": "delayed"})

    def _oldest_age(self, options: CallbackOptions) -> Iterable[Observation]:
        now = time.time()
        for stats in self.stats or ():
            oldest = stats.oldest_queued_at
            age = 0.0 if oldest is None else max(0.0, now - oldest.timestamp())
            yield Observation(age, self._attributes(stats.queue))


class OTelObserver:
    """The observer that turns an app's runs and steps into spans and metrics.

    Made by :func:`instrument`; see ``durable.engine.observe`` for when its
    hooks are called.
    """

    def __init__(self, app: str, *, tracer: trace.Tracer, meter: metrics.Meter) -> None:
        self.app = app
        self.tracer = tracer
        self.steps_executed = meter.create_counter(
            "durable.steps.executed",
            unit="{attempt}",
            description="Step bodies executed; each attempt counts once",
        )
        self.step_retries = meter.create_counter(
            "durable.step.retries", unit="{retry}", description="Step attempts retried"
        )
        self.steps_replayed = meter.create_counter(
            "durable.steps.replayed",
            unit="{step}",
            description="Steps answered from their record without running",
        )
        self.step_duration = meter.create_histogram(
            "durable.step.duration", unit="s", description="Duration of step attempts"
        )
        self.run_outcomes = meter.create_counter(
            "durable.run.outcomes",
            unit="{execution}",
            description="Executions of runs in this process, by how they ended",
        )
        self.takeovers = meter.create_counter(
            "durable.run.takeovers",
            unit="{run}",
            description="Runs taken over from an owner that died or lost its lease",
        )

    def trace_context(self) -> str | None:
        """The current trace context as JSON text (the propagator's fields), if any."""
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        return json.dumps(carrier, separators=(",", ":")) if carrier else None

    def run_started(self, run: RunRecord, *, recorded_steps: int, takeover: bool) -> _RunSpan:
        """Open the span of this execution of ``run`` and make it current."""
        parent, links = _parent_and_links(run.trace_context)
        metric_attributes = {"durable.app": self.app, "durable.workflow": run.workflow}
        span = self.tracer.start_span(
            f"durable.run {run.workflow}",
            context=parent,
            links=links,
            attributes={
                **metric_attributes,
                "durable.run_id": run.run_id,
                "durable.attempt": run.attempts,
                "durable.replayed": recorded_steps > 0,
                "durable.takeover": takeover,
            },
        )
        if takeover:
            self.takeovers.add(1, metric_attributes)
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        return _RunSpan(self, span, token, run.run_id, metric_attributes)


class _RunSpan:
    """One execution of a run: its span, current in the task running the body."""

    __slots__ = ("metric_attributes", "observer", "replayed", "run_id", "span", "token")

    def __init__(
        self,
        observer: OTelObserver,
        span: trace.Span,
        token: Token[Context],
        run_id: str,
        metric_attributes: dict[str, str],
    ) -> None:
        self.observer = observer
        self.span = span
        self.token = token
        self.run_id = run_id
        self.metric_attributes = metric_attributes
        self.replayed = 0

    def step_replayed(self, step_id: str, task: str) -> None:
        # Counted, not traced: a replay of thousands of steps must stay cheap.
        self.replayed += 1

    def attempt_started(self, step_id: str, task: str, attempt: int) -> _StepSpan:
        attributes = {**self.metric_attributes, "durable.task": task}
        span = self.observer.tracer.start_span(
            f"durable.step {task}",
            attributes={
                **attributes,
                "durable.run_id": self.run_id,
                "durable.step_id": step_id,
                "durable.attempt": attempt,
                "durable.replayed": False,
            },
        )
        token = otel_context.attach(trace.set_span_in_context(span))
        return _StepSpan(self.observer, span, token, attributes)

    def retrying(self, step_id: str, task: str, attempt: int, delay: float) -> None:
        self.observer.step_retries.add(1, {**self.metric_attributes, "durable.task": task})
        self.span.add_event(
            "durable.step.retry",
            {"durable.step_id": step_id, "durable.attempt": attempt, "durable.delay": delay},
        )

    def ended(self, outcome: RunOutcome, error: BaseException | None) -> None:
        span = self.span
        span.set_attribute("durable.outcome", outcome)
        span.set_attribute("durable.replayed_steps", self.replayed)
        if outcome == "failed" and error is not None:
            _record_error(span, error)
        otel_context.detach(self.token)
        span.end()
        observer = self.observer
        observer.run_outcomes.add(1, {**self.metric_attributes, "durable.outcome": outcome})
        if self.replayed:
            observer.steps_replayed.add(self.replayed, self.metric_attributes)


class _StepSpan:
    """One attempt of a step's body: its span, current while the body runs."""

    __slots__ = ("attributes", "observer", "span", "started", "token")

    def __init__(
        self,
        observer: OTelObserver,
        span: trace.Span,
        token: Token[Context],
        attributes: dict[str, str],
    ) -> None:
        self.observer = observer
        self.span = span
        self.token = token
        self.attributes = attributes
        self.started = time.perf_counter()

    def ended(self, error: BaseException | None) -> None:
        elapsed = time.perf_counter() - self.started
        span = self.span
        if error is None:
            outcome = "completed"
        elif isinstance(error, Exception):
            outcome = "failed"
            _record_error(span, error)
        else:
            outcome = "interrupted"  # cancelled with its run: not an error of the step
        span.set_attribute("durable.outcome", outcome)
        otel_context.detach(self.token)
        span.end()
        attributes: Attributes = {**self.attributes, "durable.outcome": outcome}
        self.observer.steps_executed.add(1, attributes)
        self.observer.step_duration.record(elapsed, attributes)


def _parent_and_links(stored: str | None) -> tuple[Context | None, list[Link]]:
    """The context a run's span starts in, and the spans it links to.

    The stored context (the caller's, when the run was created) is the
    parent; a different span current here is linked. Without a stored
    context, the current one is the parent.
    """
    if stored is None:
        return None, []
    try:
        carrier = json.loads(stored)
    except ValueError:
        return None, []
    if not isinstance(carrier, dict):
        return None, []
    parent = propagate.extract(carrier)
    origin = trace.get_current_span(parent).get_span_context()
    if not origin.is_valid:
        return None, []
    here = trace.get_current_span().get_span_context()
    if here.is_valid and (here.trace_id, here.span_id) != (origin.trace_id, origin.span_id):
        return parent, [Link(here)]
    return parent, []


def _record_error(span: trace.Span, error: BaseException) -> None:
    span.record_exception(error)
    span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
