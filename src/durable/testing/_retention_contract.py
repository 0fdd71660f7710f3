"""The retention part of the Store contract: deleting runs one by one and in batches.

Mixed into :class:`durable.testing.StoreContract`; see there for usage.
"""

from __future__ import annotations

import asyncio
from typing import ClassVar

import pytest

from durable.errors import ConfigurationError, RunNotFinishedError
from durable.stores.base import FINAL_STATUSES, FinalStatus, NewRun, RunRecord, StepRecord, Store

APP = "contract-app"
LONG = 600.0
FAR_FUTURE = 4_000_000_000.0  # a cutoff after every finish


def _step(step_id: str, position: int) -> StepRecord:
    return StepRecord(step_id, position, "t", "completed", '"ok"', None, 1, 1.0, 2.0)


async def finished(
    store: Store,
    run_id: str,
    status: FinalStatus = "completed",
    *,
    app: str = APP,
    parent: str | None = None,
) -> RunRecord:
    """A run with two steps and a signal, finished with ``status``; as stored."""
    got = await store.claim_run(
        NewRun(app, run_id, "wf", "{}", parent), owner="owner-a", lease_ttl=LONG
    )
    token = got.run.token
    await store.save_step(app, run_id, token, _step("a", 0))
    await store.save_step(app, run_id, token, _step("b", 1))
    await store.send_signal(app, run_id, "go", '"payload"')
    if status == "cancelled":
        await store.finish_run(app, run_id, token, "failed", error='{"type": "E"}')
        cancelled = await store.request_cancel(app, run_id)
        assert cancelled is not None
        assert cancelled.status == "cancelled"
        return cancelled
    return await store.finish_run(app, run_id, token, status, output='"out"')


async def running(store: Store, run_id: str, *, app: str = APP) -> RunRecord:
    got = await store.claim_run(NewRun(app, run_id, "wf", "{}"), owner="owner-a", lease_ttl=LONG)
    return got.run


async def queued(store: Store, run_id: str, *, app: str = APP) -> RunRecord:
    run, created = await store.enqueue_run(NewRun(app, run_id, "wf", "{}", None, "q"))
    assert created
    return run


async def later_than(store: Store, earlier: RunRecord, run_id: str) -> RunRecord:
    """A run completed strictly after ``earlier`` finished, by the store's clock."""
    while True:
        await asyncio.sleep(0.002)
        run = await finished(store, run_id)
        if run.updated_at > (earlier.finished_at or 0.0):
            return run
        deleted = await store.delete_run(APP, run_id)
        assert deleted is not None


async def ids(store: Store, app: str = APP) -> set[str]:
    return {run.run_id for run in await store.list_runs(app, limit=1000)}


class RetentionContract:
    """Deleting finished runs: one by id, or in batches by status and finish time."""

    pytestmark: ClassVar[list[pytest.MarkDecorator]] = [pytest.mark.asyncio]

    @pytest.mark.parametrize("status", FINAL_STATUSES)
    async def test_delete_run_removes_a_finished_run_with_its_steps_and_signals(
        self, store: Store, status: FinalStatus
    ) -> None:
        """A finished run is deleted with its steps and signals; other runs are untouched."""
        run = await finished(store, "gone", status)
        await finished(store, "kept", status)
        deleted = await store.delete_run(APP, "gone")
        assert deleted == run
        assert deleted.finished_at == run.updated_at
        assert await store.get_run(APP, "gone") is None
        assert await store.load_run(APP, "gone") is None
        assert await store.read_signal(APP, "gone", "go", 0) is None
        assert await ids(store) == {"kept"}
        loaded = await store.load_run(APP, "kept")
        assert loaded is not None
        assert [s.step_id for s in loaded[1]] == ["a", "b"]
        assert await store.read_signal(APP, "kept", "go", 0) == '"payload"'

    async def test_delete_run_of_an_absent_run_returns_none(self, store: Store) -> None:
        """Deleting an unknown id deletes nothing and answers None."""
        await finished(store, "other")
        assert await store.delete_run(APP, "missing") is None
        assert await store.delete_run("another-app", "other") is None
        assert await ids(store) == {"other"}

    async def test_delete_run_refuses_unfinished_runs(self, store: Store) -> None:
        """A running or queued run raises RunNotFinishedError naming it; it is kept whole."""
        run = await running(store, "live")
        await store.save_step(APP, "live", run.token, _step("a", 0))
        await queued(store, "waiting")
        for run_id, status in (("live", "running"), ("waiting", "queued")):
            with pytest.raises(RunNotFinishedError, match=run_id) as caught:
                await store.delete_run(APP, run_id)
            assert (caught.value.run_id, caught.value.status) == (run_id, status)
        loaded = await store.load_run(APP, "live")
        assert loaded is not None
        assert loaded[0] == run
        assert len(loaded[1]) == 1
        assert await ids(store) == {"live", "waiting"}

    async def test_a_deleted_id_starts_afresh(self, store: Store) -> None:
        """After a delete the id is free: a new run of it has token 1, no steps, no signals."""
        await finished(store, "r")
        await store.delete_run(APP, "r")
        got = await store.claim_run(NewRun(APP, "r", "wf2", "[]"), owner="o", lease_ttl=LONG)
        assert got.acquired
        assert (got.run.workflow, got.run.token, got.run.attempts, got.steps) == ("wf2", 1, 1, ())
        assert await store.read_signal(APP, "r", "go", 0) is None
        assert await store.send_signal(APP, "r", "go", "1") == 0

    async def test_delete_run_keeps_child_runs(self, store: Store) -> None:
        """Deleting a parent leaves its child runs, whose parent link keeps its id."""
        await finished(store, "parent")
        child = await finished(store, "child", parent="parent")
        await store.delete_run(APP, "parent")
        assert await store.get_run(APP, "child") == child
        assert child.parent_run_id == "parent"

    async def test_delete_run_racing_a_restart_never_deletes_a_started_run(
        self, store: Store
    ) -> None:
        """A failed run restarted while it is deleted is either deleted first or kept running."""
        await finished(store, "r", "failed")
        restart = store.claim_run(NewRun(APP, "r", "wf", "{}"), owner="o2", lease_ttl=LONG)
        results = await asyncio.gather(store.delete_run(APP, "r"), restart, return_exceptions=True)
        deleted, claimed = results
        assert not isinstance(claimed, BaseException)
        assert claimed.acquired
        after = await store.get_run(APP, "r")
        assert after is not None
        assert after.status == "running"
        if isinstance(deleted, RunNotFinishedError):
            assert claimed.run.token == 2  # restarted, then refused
        else:
            assert isinstance(deleted, RunRecord)
            assert deleted.status == "failed"
            assert claimed.run.token == 1  # deleted, then created anew

    async def test_prune_deletes_finished_runs_before_the_cutoff_only(self, store: Store) -> None:
        """Runs of the statuses that finished before the cutoff go; later ones stay."""
        old = await finished(store, "old")
        new = await later_than(store, old, "new")
        cutoff = ((old.finished_at or 0.0) + (new.finished_at or 0.0)) / 2
        assert (
            await store.count_prunable_runs(APP, finished_before=cutoff, statuses=["completed"])
            == 1
        )
        assert (
            await store.prune_runs(APP, finished_before=cutoff, statuses=["completed"], limit=10)
            == 1
        )
        assert await ids(store) == {"new"}
        assert await store.load_run(APP, "old") is None
        assert await store.read_signal(APP, "old", "go", 0) is None

    async def test_prune_keeps_other_statuses_apps_and_unfinished_runs(self, store: Store) -> None:
        """Only the given final statuses of the app go; queued and running runs always stay."""
        await finished(store, "done", "completed")
        await finished(store, "broke", "failed")
        await finished(store, "stopped", "cancelled")
        await finished(store, "elsewhere", app="other-app")
        await running(store, "live")
        await queued(store, "waiting")
        statuses: list[FinalStatus] = ["failed", "cancelled"]
        assert (
            await store.count_prunable_runs(APP, finished_before=FAR_FUTURE, statuses=statuses) == 2
        )
        assert await ids(store) == {"done", "broke", "stopped", "live", "waiting"}
        pruned = await store.prune_runs(
            APP, finished_before=FAR_FUTURE, statuses=statuses, limit=10
        )
        assert pruned == 2
        assert await ids(store) == {"done", "live", "waiting"}
        assert await ids(store, "other-app") == {"elsewhere"}
        everything = await store.prune_runs(
            APP, finished_before=FAR_FUTURE, statuses=FINAL_STATUSES, limit=10
        )
        assert everything == 1
        assert await ids(store) == {"live", "waiting"}

    async def test_prune_deletes_at_most_limit_per_call(self, store: Store) -> None:
        """Each call deletes one bounded batch; calls repeated until short drain the rest."""
        for n in range(7):
            await finished(store, f"r{n}")
        batches = []
        while True:
            deleted = await store.prune_runs(
                APP, finished_before=FAR_FUTURE, statuses=["completed"], limit=3
            )
            batches.append(deleted)
            if deleted < 3:
                break
        assert batches == [3, 3, 1]
        assert await ids(store) == set()

    async def test_prune_refuses_unfinished_statuses(self, store: Store) -> None:
        """Asking to prune queued or running runs is a ConfigurationError; nothing goes."""
        await running(store, "live")
        await finished(store, "done")
        for status in ("running", "queued"):
            with pytest.raises(ConfigurationError, match=status):
                await store.prune_runs(
                    APP,
                    finished_before=FAR_FUTURE,
                    statuses=["completed", status],  # type: ignore[list-item]
                    limit=10,
                )
        assert await ids(store) == {"live", "done"}
