"""Type-checked by mypy (see `make lint`), never run: decorated callables keep their types.

mypy runs with warn_unused_ignores, so each ``type: ignore`` below proves that
the misuse next to it is reported.
"""

from __future__ import annotations

from typing import Any, assert_type

from durable import Workflow
from durable.backoff import constant, exponential, linear

wf = Workflow("typing")


@wf.task(retries=3, backoff=exponential(base=2, max=60))
async def fetch_data(url: str, *, attempts: int = 1) -> dict[str, Any]:
    return {"url": url}


@wf.task
async def save_result(data: dict[str, Any]) -> None:
    return None


@wf.task(retries=3, backoff=linear(start=2, step=3))
async def linear_task() -> int:
    return 1


@wf.task(retries=3, backoff=constant(5))
async def const_task() -> str:
    return ""


@wf.workflow(id="pipeline-{source}")
async def run_pipeline(source: str) -> int:
    data = await fetch_data(f"https://api.example.com/{source}")
    assert_type(data, dict[str, Any])
    await save_result(data)
    assert_type(await linear_task(), int)
    assert_type(await fetch_data.with_step_id("x")("u", attempts=2), dict[str, Any])
    return len(data)


async def callers() -> None:
    assert_type(await run_pipeline(source="users"), int)
    assert_type(await run_pipeline.run("explicit-id", "users"), int)
    assert_type(await const_task(), str)


async def misuse() -> None:
    await fetch_data(42)  # type: ignore[arg-type]
    await run_pipeline(sorce="users")  # type: ignore[call-arg]
    await save_result()  # type: ignore[call-arg]
    # step_id= works at run time, but a ParamSpec cannot add a keyword to the
    # wrapped signature: type-checked code uses task.with_step_id(...) instead.
    await fetch_data("u", step_id="loop-1")  # type: ignore[call-arg]
    bad: str = await linear_task()  # type: ignore[assignment]
    del bad


class Billing:
    def __init__(self, currency: str) -> None:
        self.currency = currency

    @wf.task(retries=2)
    async def charge(self, order_id: str, cents: int) -> str:
        return f"{order_id}:{cents}{self.currency}"


async def methods() -> None:
    billing = Billing("EUR")
    assert_type(await billing.charge("o-1", 100), str)
    assert_type(await billing.charge.with_step_id("retry")("o-1", 100), str)
    assert_type(await Billing.charge(billing, "o-1", 100), str)
    await billing.charge("o-1", "100")  # type: ignore[arg-type]
