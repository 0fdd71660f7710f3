"""What can be stored: JSON only, typed results rebuilt, clear errors, consistent store."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys
from typing import Any

import pytest
from pydantic import BaseModel
from tests._journal import Journal

from durable import Workflow
from durable.errors import ResultTooLargeError, SerializationError


class Address(BaseModel):
    city: str
    zip_code: str


class Customer(BaseModel):
    name: str
    address: Address


@dataclasses.dataclass
class Point:
    x: int
    y: int


@dataclasses.dataclass
class Route:
    name: str
    points: list[Point]


async def test_pydantic_result_comes_back_as_its_type(wf: Workflow) -> None:
    """A task annotated to return a Pydantic model returns that model, run or replayed."""
    journal = Journal()

    @wf.task
    async def load_customer() -> Customer:
        journal("load")
        return Customer(name="Ada", address=Address(city="London", zip_code="N1"))

    @wf.workflow(id="customer")
    async def flow() -> Customer:
        customer = await load_customer()
        assert isinstance(customer, Customer)
        assert isinstance(customer.address, Address)
        return customer

    first = await flow()
    second = await flow()
    assert first == second == Customer(name="Ada", address=Address(city="London", zip_code="N1"))
    assert isinstance(second, Customer)
    assert journal.entries == ["load"]


async def test_dataclass_results_are_rebuilt_recursively(wf: Workflow) -> None:
    """Dataclasses (nested, in lists, optional) come back as their annotated types."""

    @wf.task
    async def plan() -> Route | None:
        return Route(name="loop", points=[Point(1, 2), Point(3, 4)])

    @wf.task
    async def many() -> list[Point]:
        return [Point(5, 6)]

    @wf.workflow(id="route")
    async def flow() -> list[Any]:
        route = await plan()
        assert isinstance(route, Route)
        assert isinstance(route.points[0], Point)
        points = await many()
        assert isinstance(points[0], Point)
        return [route.name, points[0].x]

    assert await flow() == ["loop", 5]


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
async def test_nan_and_infinity_are_rejected(wf: Workflow, bad: float) -> None:
    """NaN and infinities are not JSON: a clear error naming task and step, nothing stored."""

    @wf.task
    async def measure() -> float:
        return bad

    @wf.workflow(id="nan")
    async def flow() -> float:
        return await measure()

    with pytest.raises(SerializationError, match=r"task 'measure' \(step 'measure' of run 'nan'\)"):
        await flow()
    loaded = await wf.store.load_run(wf.name, "nan")
    assert loaded is not None
    run, steps = loaded
    assert run.status == "failed"
    assert [s.status for s in steps] == ["failed"]
    assert all(s.result is None for s in steps)


async def test_non_serializable_result_names_task_and_step(wf: Workflow) -> None:
    """A result json cannot encode fails at once (no retries) with task and step named."""
    journal = Journal()

    @wf.task(retries=3)
    async def make_set(i: int) -> set[int]:
        journal("make_set")
        return {1, 2}

    @wf.workflow(id="sets")
    async def flow() -> None:
        await make_set(1, step_id="item-7")

    with pytest.raises(SerializationError) as info:
        await flow()
    assert "make_set" in str(info.value)
    assert "item-7" in str(info.value)
    assert "set is not JSON serializable" in str(info.value)
    assert len(journal) == 1


async def test_store_stays_usable_after_a_serialization_error(wf: Workflow) -> None:
    """After a non-serializable result the run is failed, and a fixed re-run completes."""
    fixed = {"value": False}

    @wf.task
    async def produce() -> Any:
        return [1, 2] if fixed["value"] else object()

    @wf.workflow(id="fixable")
    async def flow() -> Any:
        return await produce()

    with pytest.raises(SerializationError):
        await flow()
    fixed["value"] = True
    assert await flow() == [1, 2]


async def test_oversized_result_is_a_clear_non_retryable_error(
    make_app: Any,
) -> None:
    """A result over max_value_bytes raises ResultTooLargeError once, nothing truncated."""
    wf = make_app(max_value_bytes=1000)
    journal = Journal()

    @wf.task(retries=3)
    async def big() -> str:
        journal("big")
        return "x" * 5000

    @wf.workflow(id="big")
    async def flow() -> str:
        return await big()

    with pytest.raises(ResultTooLargeError, match="over the limit of 1000 bytes"):
        await flow()
    assert len(journal) == 1


async def test_non_serializable_input_names_the_parameter(wf: Workflow) -> None:
    """A workflow argument that is not JSON raises an error naming workflow and parameter."""

    @wf.workflow(id="inputs-{name}")
    async def flow(name: str, handle: Any) -> None:
        return None

    with pytest.raises(SerializationError, match=r"workflow 'flow': parameter 'handle'"):
        await flow("x", object())
    assert list(await wf.store.list_runs(wf.name)) == []


async def test_unicode_and_odd_text_round_trip(wf: Workflow) -> None:
    """Quotes, SQL, NUL escapes and emoji in results come back byte-identical."""
    odd = "it's \"quoted\" '); DROP TABLE runs; -- \u0000 nul, ünïcödé, 🚀, \\ backslash"

    @wf.task
    async def echo(text: str) -> dict[str, str]:
        return {odd: text}

    @wf.workflow(id="odd-\u00e9-'\"")
    async def flow() -> dict[str, str]:
        return await echo(odd)

    assert await flow() == {odd: odd}
    assert await flow() == {odd: odd}


async def test_int_keyed_dict_results_get_int_keys_back(wf: Workflow) -> None:
    """JSON turns int keys into strings; a ``dict[int, ...]`` annotation turns them back."""
    calls = Journal()

    @wf.task
    async def scores() -> dict[int, list[Point]]:
        calls("scores")
        return {7: [Point(1, 2)], 10: []}

    @wf.workflow(id="scores")
    async def flow() -> dict[int, int]:
        by_id = await scores()
        assert by_id == {7: [Point(1, 2)], 10: []}
        return {key: len(points) for key, points in by_id.items()}

    assert await flow() == {7: 1, 10: 0}
    assert await flow() == {7: 1, 10: 0}  # the stored output, decoded the same way
    assert calls.counts["scores"] == 1


_CYCLE_UNDER_A_RAISED_LIMIT = """
import sys
from durable.engine import serde as _serde
from durable.errors import SerializationError

sys.setrecursionlimit(200_000)
value = []
value.append(value)
try:
    _serde.encode(value, what="task 'build'")
except SerializationError as exc:
    print(exc)
"""


def test_a_cycle_is_reported_under_a_raised_recursion_limit() -> None:
    """A value that contains itself is a clear error, whatever the recursion limit."""
    proc = subprocess.run(
        [sys.executable, "-c", _CYCLE_UNDER_A_RAISED_LIMIT],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "task 'build' returned a value that cannot be stored as JSON" in proc.stdout
    assert "Circular reference detected" in proc.stdout
