"""The one-shot signal part of the Store contract: ``send_signal_once``.

Mixed into :class:`durable.testing.StoreContract`; see there for usage.
"""

from __future__ import annotations

import asyncio
import json

from durable.stores.base import NewRun, QueueLimits, Store

APP = "contract-app"


class SignalOnceContract:
    """``send_signal_once``: the first delivery of a name to a run wins."""

    async def test_first_delivery_wins(self, store: Store) -> None:
        """The first call stores its payload as index 0; later calls store nothing."""
        assert await store.send_signal_once(APP, "run-1", "go", '"first"') is True
        assert await store.send_signal_once(APP, "run-1", "go", '"second"') is False
        assert await store.read_signal(APP, "run-1", "go", 0) == '"first"'
        assert await store.read_signal(APP, "run-1", "go", 1) is None

    async def test_a_queued_signal_counts_as_a_delivery(self, store: Store) -> None:
        """After send_signal of a name it is refused; send_signal after it comes next."""
        assert await store.send_signal(APP, "run-1", "go", '"queued"') == 0
        assert await store.send_signal_once(APP, "run-1", "go", '"once"') is False
        assert await store.read_signal(APP, "run-1", "go", 0) == '"queued"'
        assert await store.send_signal_once(APP, "run-2", "go", '"once"') is True
        assert await store.send_signal(APP, "run-2", "go", '"queued"') == 1
        assert await store.read_signal(APP, "run-2", "go", 1) == '"queued"'

    async def test_names_runs_and_apps_are_separate(self, store: Store) -> None:
        """Each (app, run, name) has its own first delivery."""
        sends = [
            (APP, "run-1", "go"),
            (APP, "run-1", "stop"),
            (APP, "run-2", "go"),
            ("other-app", "run-1", "go"),
        ]
        for i, (app, run_id, name) in enumerate(sends):
            assert await store.send_signal_once(app, run_id, name, json.dumps(i)) is True
        for i, (app, run_id, name) in enumerate(sends):
            assert await store.read_signal(app, run_id, name, 0) == json.dumps(i)

    async def test_run_need_not_exist_yet(self, store: Store) -> None:
        """A one-shot signal sent before the run exists is kept for it."""
        assert await store.send_signal_once(APP, "early", "go", '{"v": 1}') is True
        assert await store.get_run(APP, "early") is None
        new = NewRun(APP, "early", "wf", "{}", None)
        claim = await store.claim_run(new, owner="owner-a", lease_ttl=600.0)
        assert claim.acquired
        assert await store.read_signal(APP, "early", "go", 0) == '{"v": 1}'
        assert await store.send_signal_once(APP, "early", "go", '{"v": 2}') is False

    async def test_a_delivery_makes_a_parked_run_due(self, store: Store) -> None:
        """send_signal_once to a run parked on that signal lets the next claim wake it."""
        new = NewRun(APP, "r1", "wf", "{}", None, "q")
        await store.enqueue_run(new)
        (claim,) = await store.claim_queued(
            APP, [QueueLimits("q")], owner="owner-a", lease_ttl=600.0, limit=1
        )
        token = claim.run.token
        await store.park_run(APP, "r1", token, queue="q", wake_at=None, signal=("go", 0))
        woken = await store.claim_queued(
            APP, [QueueLimits("q")], owner="owner-a", lease_ttl=600.0, limit=1
        )
        assert woken == []
        assert await store.send_signal_once(APP, "r1", "go", '"now"') is True
        woken = await store.claim_queued(
            APP, [QueueLimits("q")], owner="owner-a", lease_ttl=600.0, limit=1
        )
        assert [c.run.run_id for c in woken] == ["r1"]

    async def test_concurrent_deliveries_store_exactly_one(self, store: Store) -> None:
        """Of simultaneous calls exactly one returns True, and its payload is stored."""
        payloads = [json.dumps({"sender": i}) for i in range(20)]
        won = await asyncio.gather(
            *(store.send_signal_once(APP, "run-1", "go", p) for p in payloads)
        )
        assert won.count(True) == 1
        assert await store.read_signal(APP, "run-1", "go", 0) == payloads[won.index(True)]
        assert await store.read_signal(APP, "run-1", "go", 1) is None
