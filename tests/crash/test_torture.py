"""The crash-torture suite: random SIGKILLs, a kill at every store write, and racing callers.

Trial counts default to the CI figures; ``DURABLE_TORTURE_TRIALS=N`` raises
them (or run ``python -m tests.crash.torture --trials 1000``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests import _services
from tests.crash._harness import ForkServer, trials
from tests.crash._torture import (
    Figures,
    PostgresView,
    SQLiteView,
    StoreView,
    random_kills,
    write_sweep,
)
from tests.crash._torture import races as race_trials

pytestmark = pytest.mark.crash


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def view(request: pytest.FixtureRequest, db_path: Path) -> Iterator[StoreView]:
    """Committed state of the store the children use: a SQLite file, or a Postgres schema."""
    if request.param == "sqlite":
        yield SQLiteView(db_path)
        return
    dsn = asyncio.run(_services.postgres_dsn())
    schema = _services.unique_name("crash")
    pg = PostgresView(dsn, schema)
    try:
        yield pg
    finally:
        pg.close()
        asyncio.run(_services.drop_postgres_schema(dsn, schema))


def _trials(view: StoreView) -> int:
    # Every Postgres child opens a connection pool, several times the cost of a
    # SQLite child: CI runs fewer Postgres trials, the long run as many as asked.
    return trials(100 if view.spec["kind"] == "sqlite" else 30)


def _assert_clean(name: str, figures: Figures) -> None:
    print(
        f"\n{name}: {figures.trials} trials, {figures.kills} kills, {figures.processes} "
        f"processes, {figures.violations.total()} violations, {figures.seconds:.1f}s"
    )
    assert figures.violations.total() == 0, figures.violations.report()


def test_random_sigkills_lose_nothing_and_rerun_no_committed_step(
    server: ForkServer, view: StoreView, tmp_path: Path
) -> None:
    """Runs SIGKILLed at random moments resume to the right output without re-running a
    committed step."""
    figures = random_kills(server, view, tmp_path, trials=_trials(view), seed=1)
    _assert_clean(f"random SIGKILL ({view.spec['kind']})", figures)
    assert figures.kills > figures.trials // 2


def test_kill_at_every_store_write(server: ForkServer, db_path: Path, tmp_path: Path) -> None:
    """A kill before or after each store write, in turn, never loses or re-runs a committed
    step."""
    figures = write_sweep(server, SQLiteView(db_path), tmp_path)
    _assert_clean("crash at every write (sqlite)", figures)
    assert figures.kills >= 2 * 14


@pytest.mark.parametrize("processes", [2, 8])
def test_racing_callers_execute_each_step_once(
    server: ForkServer, view: StoreView, tmp_path: Path, processes: int
) -> None:
    """Processes calling one run id at once run each step body once and return one output."""
    figures = race_trials(
        server, view, tmp_path, processes=processes, trials=_trials(view), seed=processes
    )
    _assert_clean(f"race x{processes} ({view.spec['kind']})", figures)
