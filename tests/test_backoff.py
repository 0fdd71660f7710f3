"""Backoff sequences, jitter bounds and parameter validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from durable import Workflow
from durable.backoff import constant, exponential, linear
from durable.errors import ConfigurationError
from durable.testing import no_backoff


def test_exponential_matches_the_seed() -> None:
    """exponential(base=2, max=60) waits 2, 4, 8, 16, 32, then stays at 60."""
    backoff = exponential(base=2, max=60)
    assert [backoff(k) for k in range(1, 8)] == [2, 4, 8, 16, 32, 60, 60]


def test_exponential_survives_huge_retry_numbers() -> None:
    """A very large retry number gives the cap instead of overflowing."""
    assert exponential(base=2, max=60)(10_000) == 60


def test_linear_matches_the_seed() -> None:
    """linear(start=2, step=3) waits 2, 5, 8, ..."""
    backoff = linear(start=2, step=3)
    assert [backoff(k) for k in range(1, 5)] == [2, 5, 8, 11]


def test_linear_cap() -> None:
    """linear's optional max caps the waits."""
    backoff = linear(start=1, step=10, max=15)
    assert [backoff(k) for k in range(1, 4)] == [1, 11, 15]


def test_constant_matches_the_seed() -> None:
    """constant(5) waits 5 before every retry."""
    backoff = constant(5)
    assert [backoff(k) for k in range(1, 4)] == [5, 5, 5]


@pytest.mark.parametrize(
    "make",
    [
        lambda: exponential(2, 60, jitter=0.5),
        lambda: linear(2, 3, jitter=0.5),
        lambda: constant(5, jitter=0.5),
    ],
)
def test_jitter_stays_within_its_fraction(make: object) -> None:
    """With jitter=0.5 every wait lies in [w/2, w] and they are not all equal."""
    jittered = make()  # type: ignore[operator]
    full = {"exponential": 8.0, "linear": 8.0, "constant": 5.0}
    wait = next(v for k, v in full.items() if k in type(jittered).__name__.lower())
    samples = [jittered(3) for _ in range(200)]
    assert all(wait / 2 <= s <= wait for s in samples)
    assert len(set(samples)) > 1


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (lambda: exponential(base=0), "'base' must be > 0"),
        (lambda: exponential(base=0.5), "'base' must be > 1 so that waits grow, got 0.5"),
        (lambda: exponential(base=1), "'base' must be > 1"),
        (lambda: exponential(initial=0), "'initial' must be > 0"),
        (lambda: exponential(initial=float("inf")), "'initial' must be finite"),
        (lambda: exponential(base=2, max=-1), "'max' must be >= 0"),
        (lambda: linear(start=-1), "'start' must be >= 0"),
        (lambda: constant(float("nan")), "'seconds' must be finite"),
        (lambda: constant(5, jitter=2), "'jitter' must be in \\[0, 1\\]"),
        (lambda: constant("5"), "'seconds' must be a number"),  # type: ignore[arg-type]
    ],
)
def test_bad_parameters_are_named(factory: object, message: str) -> None:
    """Invalid backoff parameters raise ConfigurationError (a ValueError) naming the parameter."""
    with pytest.raises(ConfigurationError, match=message) as caught:
        factory()  # type: ignore[operator]
    assert isinstance(caught.value, ValueError)


def test_retry_numbers_start_at_one() -> None:
    """Asking for the wait before retry 0 is an error."""
    with pytest.raises(ValueError, match="start at 1"):
        constant(1)(0)


def test_exponential_starts_at_initial_and_grows_by_base() -> None:
    """initial= is the first wait; each later wait is base times the one before, up to max."""
    waits = exponential(base=2, max=1, initial=0.1)
    assert [waits(k) for k in range(1, 7)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])
    assert exponential(base=3, max=100, initial=1)(3) == 9.0


def test_exponential_without_initial_keeps_the_documented_sequence() -> None:
    """Without initial=, exponential(base=2, max=60) still waits 2, 4, 8, 16, 32, 60."""
    waits = exponential(base=2, max=60)
    assert [waits(k) for k in range(1, 7)] == [2, 4, 8, 16, 32, 60]
    assert waits == exponential(base=2, max=60, initial=2)


async def test_a_plain_callable_is_a_backoff(tmp_path: Path) -> None:
    """backoff= takes any callable from retry number to seconds."""
    app = Workflow("callable-backoff", db=tmp_path / "b.db")
    attempts: list[int] = []

    @app.task(retries=3, backoff=lambda retry: 0.25 * retry)
    async def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 4:
            raise ConnectionError("again")
        return "ok"

    @app.workflow(id="cb")
    async def flow() -> str:
        return await flaky()

    with no_backoff() as waits:
        assert await flow() == "ok"
    await app.close()
    assert waits == [0.25, 0.5, 0.75]
