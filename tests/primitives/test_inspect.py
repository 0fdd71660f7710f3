"""Run inspection: wf.get_run and wf.list_runs return decoded, typed views of the store."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Callable

import pytest
from tests.primitives._waiting import wait_for_run

from durable import RunInfo, StepInfo, Workflow
from durable.errors import ConfigurationError
from durable.testing import no_backoff


class Declined(Exception):
    """A module-level error type for a failing task."""


async def test_get_run_of_a_completed_run(wf: Workflow) -> None:
    """A completed run shows its inputs, output, timestamps and steps with durations."""

    @wf.task(retries=1)
    async def charge(amount: int) -> dict[str, int]:
        return {"charged": amount}

    @wf.workflow(id="pay-{customer}")
    async def pay(customer: str, amount: int = 5) -> dict[str, int]:
        result = await charge(amount)
        await wf.sleep(0.01)
        return result

    before = time.time()
    await pay("ada")
    info = await wf.get_run("pay-ada")
    assert isinstance(info, RunInfo)
    assert info.run_id == "pay-ada"
    assert info.workflow == "pay"
    assert info.status == "completed"
    assert info.inputs == {"customer": "ada", "amount": 5}
    assert info.output == {"charged": 5}
    assert info.error is None
    assert info.attempts == 1
    assert info.parent_run_id is None
    assert info.created_at.tzinfo is not None
    assert before - 1 <= info.created_at.timestamp() <= time.time()
    assert info.finished_at is not None
    assert info.duration is not None
    assert 0.01 <= info.duration < 5
    charge_step, sleep_step = info.steps
    assert isinstance(charge_step, StepInfo)
    assert (charge_step.step_id, charge_step.task, charge_step.status) == (
        "charge",
        "charge",
        "completed",
    )
    assert charge_step.attempts == 1
    assert charge_step.result == {"charged": 5}
    assert charge_step.duration >= 0
    assert sleep_step.task == "durable.sleep"
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.status = "failed"  # type: ignore[misc]


async def test_get_run_of_a_failed_run(wf: Workflow) -> None:
    """A failed run shows the error and the failed step with its attempt count."""

    @wf.task(retries=2)
    async def book() -> None:
        raise Declined("card declined")

    @wf.workflow(id="book")
    async def flow() -> None:
        await book()

    with no_backoff(), pytest.raises(Declined):
        await flow()
    info = await wf.get_run("book")
    assert info.status == "failed"
    assert info.error is not None
    assert info.error.type.endswith("Declined")
    assert info.error.message == "card declined"
    assert "card declined" in info.error.traceback
    assert str(info.error).endswith("Declined: card declined")
    [step] = info.steps
    assert (step.status, step.attempts) == ("failed", 3)
    assert step.result is None


async def test_running_run_has_no_finish_time(wf: Workflow) -> None:
    """While a run waits, get_run shows it running with an owner and no finish time."""

    @wf.workflow(id="waiting")
    async def flow() -> object:
        return await wf.signal("go")

    call = asyncio.ensure_future(flow())
    await wait_for_run(wf, "waiting")
    info = await wf.get_run("waiting")
    assert info.status == "running"
    assert info.owner is not None
    assert info.finished_at is None
    assert info.duration is None
    await wf.send_signal("waiting", "go", 1)
    assert await call == 1


async def test_a_sleep_that_has_not_woken_shows_as_waiting(wf: Workflow) -> None:
    """get_run shows a sleep in progress as waiting with its wake time, then as completed."""

    @wf.workflow(id="napper")
    async def napper(seconds: float) -> str:
        await wf.sleep(seconds)
        return "awake"

    before = time.time()
    call = asyncio.ensure_future(napper(0.6))
    await wait_for_run(wf, "napper", steps=1)
    (step,) = (await wf.get_run("napper")).steps
    assert step.task == "durable.sleep"
    assert step.status == "waiting"
    assert step.wakes_at is not None
    assert before + 0.6 <= step.wakes_at.timestamp() <= time.time() + 0.6
    assert step.finished_at is None
    assert step.duration is None
    assert await call == "awake"
    (step,) = (await wf.get_run("napper")).steps
    assert step.status == "completed"
    assert step.finished_at == step.wakes_at
    assert step.duration == pytest.approx(0.6, abs=0.05)


async def test_list_runs_filters_and_limits(make_app: Callable[..., Workflow]) -> None:
    """list_runs filters by status and workflow, returns newest first and honours the limit."""
    wf = make_app()
    other = make_app("other-app")

    @wf.workflow(id="a-{n}")
    async def alpha(n: int) -> int:
        if n == 2:
            raise ValueError("two")
        return n

    @wf.workflow(id="b-{n}")
    async def beta(n: int) -> int:
        return n

    @other.workflow(id="a-{n}", name="alpha")
    async def other_alpha(n: int) -> int:
        return n

    for n in range(4):
        with contextlib.suppress(ValueError):
            await alpha(n)
        await asyncio.sleep(0.002)  # distinct creation times for a stable order
    await beta(9)
    await other_alpha(100)

    runs = await wf.list_runs()
    assert [r.run_id for r in runs] == ["b-9", "a-3", "a-2", "a-1", "a-0"]
    assert all(r.steps == () for r in runs)
    assert [r.run_id for r in await wf.list_runs(status="failed")] == ["a-2"]
    assert [r.run_id for r in await wf.list_runs(workflow="alpha", limit=2)] == ["a-3", "a-2"]
    assert [r.run_id for r in await wf.list_runs(workflow="beta", status="completed")] == ["b-9"]
    assert [r.run_id for r in await other.list_runs()] == ["a-100"]


async def test_list_runs_rejects_bad_filters(wf: Workflow) -> None:
    """An unknown status or a non-positive limit is refused with a clear error."""
    with pytest.raises(ConfigurationError, match="status"):
        await wf.list_runs(status="done")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="limit"):
        await wf.list_runs(limit=0)
