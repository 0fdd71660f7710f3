"""An instrumented app that test_otel runs in real processes.

``python _otel_app.py start DB`` calls the workflow inside a span of its own,
prints that span's ids, and hangs in the second step (to be SIGKILLed);
``python _otel_app.py recover DB`` recovers the run and prints the spans and
metrics it recorded, as JSON.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from durable import Workflow
from durable.contrib.otel import instrument

exporter = InMemorySpanExporter()
tracing = TracerProvider()
tracing.add_span_processor(SimpleSpanProcessor(exporter))
reader = InMemoryMetricReader()
metering = MeterProvider(metric_readers=[reader])

wf = Workflow("otel-crash", db=sys.argv[2])
instrument(wf, tracer_provider=tracing, meter_provider=metering)


@wf.task
async def fetch() -> int:
    return 1


@wf.task
async def hang(n: int) -> int:
    if sys.argv[1] == "start":
        print("hanging", flush=True)
        await asyncio.sleep(3600)
    return n + 1


@wf.workflow(id="traced")
async def traced() -> int:
    return await hang(await fetch())


async def start() -> None:
    with tracing.get_tracer("caller").start_as_current_span("caller") as span:
        ids = span.get_span_context()
        print(json.dumps({"trace_id": f"{ids.trace_id:032x}", "span_id": f"{ids.span_id:016x}"}))
        await traced()


async def recover() -> None:
    async with wf:
        recovered = await wf.recover()
    spans = [
        {
            "name": span.name,
            "trace_id": f"{span.context.trace_id:032x}",
            "parent_span_id": None if span.parent is None else f"{span.parent.span_id:016x}",
            "attributes": dict(span.attributes or {}),
        }
        for span in exporter.get_finished_spans()
    ]
    metrics: dict[str, Any] = {}
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data is not None else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                metrics[metric.name] = [
                    {"attributes": dict(p.attributes or {}), "value": getattr(p, "value", None)}
                    for p in metric.data.data_points
                ]
    print(json.dumps({"recovered": recovered, "spans": spans, "metrics": metrics}))


if __name__ == "__main__":
    asyncio.run(start() if sys.argv[1] == "start" else recover())
