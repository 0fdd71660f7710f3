"""OpenTelemetry: a run's spans under the request that called it, and its metrics.

    pip install "python-durable[otel]" opentelemetry-sdk
    python examples/otel_tracing.py

The application configures the OpenTelemetry SDK as it always would (here
with in-memory exporters, so the example can print what was recorded) and
calls ``instrument(wf)``. A checkout is called inside a request's span; its
payment fails once and is retried. The trace printed shows the run's span
under the request's, and one span per attempt of each step.
"""

from __future__ import annotations

import asyncio
import os
import tempfile

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from durable import Workflow
from durable.backoff import constant
from durable.contrib.otel import instrument

DB_PATH = os.environ.get("EXAMPLE_DB") or os.path.join(tempfile.mkdtemp(), "shop.db")

spans = InMemorySpanExporter()
tracing = TracerProvider()
tracing.add_span_processor(SimpleSpanProcessor(spans))
metrics = InMemoryMetricReader()
metering = MeterProvider(metric_readers=[metrics])

wf = Workflow("shop", db=DB_PATH)
instrument(wf, tracer_provider=tracing, meter_provider=metering)

payment_attempts = 0


@wf.task
async def reserve(sku: str) -> str:
    return f"reservation-{sku}"


@wf.task(retries=2, backoff=constant(0.01))
async def pay(reservation: str) -> str:
    global payment_attempts
    payment_attempts += 1
    if payment_attempts == 1:
        raise ConnectionError("payment provider timed out")
    return f"paid {reservation}"


@wf.workflow(id="checkout-{sku}")
async def checkout(sku: str) -> str:
    return await pay(await reserve(sku))


def print_tree(finished: tuple[ReadableSpan, ...]) -> None:
    children: dict[int | None, list[ReadableSpan]] = {}
    for span in finished:
        children.setdefault(span.parent.span_id if span.parent else None, []).append(span)

    def show(span: ReadableSpan, depth: int) -> None:
        attributes = span.attributes or {}
        detail = ""
        if "durable.attempt" in attributes and span.name.startswith("durable.step"):
            detail = f" attempt {attributes['durable.attempt']}: {attributes['durable.outcome']}"
        elif "durable.outcome" in attributes:
            detail = f": {attributes['durable.outcome']}"
        print(f"{'  ' * depth}{span.name}{detail}")
        for child in sorted(
            children.get(span.context.span_id, []), key=lambda s: s.start_time or 0
        ):
            show(child, depth + 1)

    for root in children.get(None, []):
        show(root, 0)


async def main() -> None:
    async with wf:
        with tracing.get_tracer("web").start_as_current_span("POST /checkout"):
            print("result:", await checkout("lamp"))
    print_tree(spans.get_finished_spans())
    data = metrics.get_metrics_data()
    for resource in data.resource_metrics if data is not None else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name in ("durable.step.retries", "durable.run.outcomes"):
                    total = sum(getattr(p, "value", 0) for p in metric.data.data_points)
                    print(f"metric {metric.name}: {total}")


if __name__ == "__main__":
    asyncio.run(main())
