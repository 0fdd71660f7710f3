"""`durable runs cancel|resume|retry` and `durable signal`: exit codes, effect on the store."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from tests.cli import _shop
from tests.cli.conftest import Durable

from durable.stores import from_url


def stored(db: str, run_id: str) -> Any:
    """The run as the store has it now (None when absent)."""

    async def main() -> Any:
        async with from_url(db) as store:
            return await store.get_run(_shop.APP, run_id)

    return asyncio.run(main())


def stored_signal(db: str, run_id: str, name: str, index: int) -> str | None:
    async def main() -> str | None:
        async with from_url(db) as store:
            return await store.read_signal(_shop.APP, run_id, name, index)

    return asyncio.run(main())


@pytest.fixture
def charge_succeeds(durable: Durable) -> Iterator[None]:
    """The shop's payment task succeeds during the test (after seeding made a run fail)."""
    _shop.FLAKY["fail"] = False
    yield
    _shop.FLAKY["fail"] = True


def test_cancel_stops_queued_and_failed_runs(durable: Durable) -> None:
    """Cancelling a queued and a failed run makes both cancelled in the store."""
    result = durable("runs", "cancel", "approval-o-queued", "checkout-o-1")
    assert result.exit_code == 0, result.output
    assert "approval-o-queued: cancelled" in result.stdout
    assert "checkout-o-1: cancelled" in result.stdout
    assert stored(durable.db, "approval-o-queued").status == "cancelled"
    assert stored(durable.db, "checkout-o-1").status == "cancelled"


def test_cancel_reports_unknown_runs_and_exits_1(durable: Durable) -> None:
    """An unknown id among several is refused (exit 1); the others are still cancelled."""
    result = durable("runs", "cancel", "nope", "approval-o-queued")
    assert result.exit_code == 1
    assert "nope: app 'shop' has no run 'nope'" in result.stderr
    assert "1 of 2 run(s) refused: nope" in result.stderr
    assert stored(durable.db, "approval-o-queued").status == "cancelled"


def test_a_completed_run_stays_completed_when_cancelled(durable: Durable) -> None:
    """Cancel leaves a completed run as it is and says so."""
    result = durable("runs", "cancel", "total-2-3")
    assert result.exit_code == 0
    assert "total-2-3: completed" in result.stdout
    assert stored(durable.db, "total-2-3").status == "completed"


def test_signal_is_stored_and_received_by_the_run(durable: Durable) -> None:
    """A signal sent from the command is stored and taken by the run's wait."""
    result = durable("signal", "approval-o-queued", "approve", '{"by": "cli"}')
    assert result.exit_code == 0, result.output
    assert "signal 'approve' sent" in result.stdout
    assert stored_signal(durable.db, "approval-o-queued", "approve", 0) == '{"by":"cli"}'

    async def run_it() -> Any:
        shop = _shop.build(durable.db)
        async with shop.wf:
            return await shop.approval(order="o-queued")

    assert asyncio.run(run_it()) == {"by": "cli"}


def test_signal_refuses_bad_json_and_unknown_runs(durable: Durable) -> None:
    """Bad JSON is a usage error (exit 2); a run that does not exist is refused (exit 1)."""
    bad = durable("signal", "approval-o-queued", "approve", "{oops")
    assert bad.exit_code == 2
    assert "not JSON" in bad.stderr
    assert stored_signal(durable.db, "approval-o-queued", "approve", 0) is None
    missing = durable("signal", "nope", "approve")
    assert missing.exit_code == 1
    assert "no run 'nope'" in missing.stderr
    assert stored_signal(durable.db, "nope", "approve", 0) is None


@pytest.mark.usefixtures("charge_succeeds")
def test_retry_with_the_app_reruns_only_the_failed_step(durable: Durable, app_module: str) -> None:
    """`retry --app module:attr` completes a failed run here; its completed step is replayed."""
    result = durable("runs", "retry", "checkout-o-1", app=app_module, db=None)
    assert result.exit_code == 0, result.output
    assert "checkout-o-1: completed, output 'charged o-1'" in result.stdout
    run = stored(durable.db, "checkout-o-1")
    assert run.status == "completed"
    assert run.attempts == 2

    async def steps() -> dict[str, int]:
        async with from_url(durable.db) as store:
            loaded = await store.load_run(_shop.APP, "checkout-o-1")
            assert loaded is not None
            return {step.task: step.attempts for step in loaded[1]}

    assert asyncio.run(steps()) == {"add": 1, "charge": 1}


def test_retry_refuses_a_run_that_did_not_fail(durable: Durable, app_module: str) -> None:
    """Only failed runs are retried: a completed one is refused with exit 1."""
    result = durable("runs", "retry", "total-2-3", app=app_module, db=None)
    assert result.exit_code == 1
    assert "is completed, not failed" in result.stderr


def test_resume_here_continues_a_cancelled_run(durable: Durable, app_module: str) -> None:
    """`resume --here` executes a cancelled run in this process to completion."""
    assert durable("runs", "cancel", "approval-o-queued").exit_code == 0
    assert durable("signal", "approval-o-queued", "approve", '"yes"').exit_code == 0
    result = durable("runs", "resume", "--here", "approval-o-queued", app=app_module, db=None)
    assert result.exit_code == 0, result.output
    assert "approval-o-queued: completed, output 'yes'" in result.stdout
    assert stored(durable.db, "approval-o-queued").status == "completed"


def test_resume_here_needs_the_apps_code(durable: Durable) -> None:
    """Without --app module:attr, `resume --here` is a usage error and changes nothing."""
    assert durable("runs", "cancel", "approval-o-queued").exit_code == 0
    result = durable("runs", "resume", "--here", "approval-o-queued")
    assert result.exit_code == 2
    assert "--app module:attr" in result.stderr
    assert stored(durable.db, "approval-o-queued").status == "cancelled"


def test_resume_hands_a_cancelled_run_to_a_worker(durable: Durable) -> None:
    """Resuming a cancelled run is deliberate: it goes back to its queue, uncancelled."""
    assert durable("runs", "cancel", "approval-o-queued").exit_code == 0
    assert stored(durable.db, "approval-o-queued").status == "cancelled"
    result = durable("runs", "resume", "approval-o-queued")
    assert result.exit_code == 0, result.output
    assert "for a worker to continue" in result.stdout
    run = stored(durable.db, "approval-o-queued")
    assert run.status == "queued"
    assert not run.cancel_requested


def test_an_app_module_and_db_together_are_a_usage_error(durable: Durable, app_module: str) -> None:
    """--app module:attr brings its own store: giving --db too is refused with exit 2."""
    result = durable("runs", "show", "total-2-3", app=app_module)
    assert result.exit_code == 2
    assert "drop --db" in result.stderr
    shown = durable("runs", "show", "total-2-3", "--json", app=app_module, db=None)
    assert shown.exit_code == 0, shown.output
    assert '"output": 5' in shown.stdout
