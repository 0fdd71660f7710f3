"""`durable runs show` and `durable runs list`: what they print, on every store."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tests.cli import _shop
from tests.cli.conftest import Durable

from durable.stores.base import QueueLimits


def test_show_prints_a_failed_runs_steps_and_traceback(durable: Durable) -> None:
    """A failed run shows its error with the traceback and each step's outcome."""
    result = durable("runs", "show", "checkout-o-1")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "failed" in out
    assert "builtins.ValueError: card declined for o-1" in out
    assert "Traceback (most recent call last)" in out
    assert "raise ValueError" in out
    for task in ("add", "charge"):
        assert task in out


def test_show_json_has_steps_children_and_signals(durable: Durable) -> None:
    """--json gives the run, every step with attempts and duration, its children and signals."""
    failed = json.loads(durable("runs", "show", "checkout-o-1", "--json").stdout)
    assert failed["status"] == "failed"
    assert failed["inputs"] == {"order": "o-1"}
    assert failed["error"]["type"] == "builtins.ValueError"
    assert "card declined" in failed["error"]["traceback"]
    steps = {step["task"]: step for step in failed["steps"]}
    assert steps["add"]["status"] == "completed"
    assert steps["add"]["result"] == 3
    assert steps["charge"]["status"] == "failed"
    assert steps["charge"]["attempts"] >= 1
    assert all(step["duration"] is not None for step in failed["steps"])

    batch = json.loads(durable("runs", "show", "batch-2", "--json").stdout)
    assert batch["output"] == 2
    assert [child["run_id"] for child in batch["children"]] == ["total-0-0", "total-1-1"]
    assert {child["parent_run_id"] for child in batch["children"]} == {"batch-2"}

    approval = json.loads(durable("runs", "show", "approval-o-2", "--json").stdout)
    assert approval["output"] == {"by": "ana"}
    assert [(s["index"], s["payload"], s["received"]) for s in approval["signals"]] == [
        (0, {"by": "ana"}, True),
        (1, {"by": "late"}, False),
    ]


def test_show_tables_name_children_and_signals(durable: Durable) -> None:
    """The human view lists child runs and received and unread signals."""
    batch = durable("runs", "show", "batch-2").stdout
    assert "child runs" in batch
    assert "total-0-0" in batch
    assert "total-1-1" in batch
    approval = durable("runs", "show", "approval-o-2").stdout
    assert "signals" in approval
    assert "received" in approval
    assert "not read yet" in approval
    assert '"late"' in approval


def test_show_of_an_unknown_run_exits_1(durable: Durable) -> None:
    """An unknown run id is reported, naming the run and app, with exit status 1."""
    result = durable("runs", "show", "no-such-run")
    assert result.exit_code == 1
    assert "no run 'no-such-run'" in result.stderr
    assert "'shop'" in result.stderr


ALL_RUNS = {
    "total-2-3",
    "checkout-o-1",
    "batch-2",
    "total-0-0",
    "total-1-1",
    "approval-o-queued",
    "approval-o-2",
}


def listed(durable: Durable, *args: str) -> dict[str, Any]:
    result = durable("runs", "list", "--json", *args)
    assert result.exit_code == 0, result.output
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def ids(doc: dict[str, Any]) -> list[str]:
    return [run["run_id"] for run in doc["runs"]]


def test_list_filters_by_status_workflow_queue_and_time(durable: Durable) -> None:
    """Each filter keeps exactly the seeded runs that match it, newest first."""
    assert set(ids(listed(durable))) == ALL_RUNS
    assert ids(listed(durable))[0] == "approval-o-2"
    assert ids(listed(durable, "--status", "failed")) == ["checkout-o-1"]
    [queued] = listed(durable, "--status", "queued")["runs"]
    assert queued["run_id"] == "approval-o-queued"
    # A queued run has not finished: no finish time, no duration.
    assert (queued["finished_at"], queued["duration"], queued["queue"]) == (None, None, "default")
    assert set(ids(listed(durable, "--workflow", "total"))) == {
        "total-2-3",
        "total-0-0",
        "total-1-1",
    }
    assert ids(listed(durable, "--queue", "default")) == ["approval-o-queued"]
    assert set(ids(listed(durable, "--since", "1h"))) == ALL_RUNS
    assert ids(listed(durable, "--since", "2999-01-01T00:00:00")) == []
    assert ids(listed(durable, "--until", "2000-01-01T00:00:00+00:00")) == []
    assert set(ids(listed(durable, "--until", "2999-01-01T00:00:00"))) == ALL_RUNS
    assert set(ids(listed(durable, "--id-prefix", "approval-"))) == {
        "approval-o-queued",
        "approval-o-2",
    }


def test_list_pages_with_a_cursor(durable: Durable) -> None:
    """--limit gives a page and the cursor of the next; the pages cover every run once."""
    first = listed(durable, "--limit", "3")
    assert len(first["runs"]) == 3
    assert first["next_cursor"]
    second = listed(durable, "--limit", "5", "--cursor", first["next_cursor"])
    assert second["next_cursor"] is None
    assert sorted(ids(first) + ids(second)) == sorted(ALL_RUNS)


def test_list_table_for_people(durable: Durable) -> None:
    """The table names the runs and how to get the next page."""
    result = durable("runs", "list", "--limit", "2")
    assert result.exit_code == 0, result.output
    assert "approval-o-2" in result.stdout
    assert "more: --cursor " in result.stdout


def test_list_rejects_bad_filters(durable: Durable) -> None:
    """An unknown status or an unreadable --since is a usage error."""
    assert durable("runs", "list", "--status", "lost").exit_code == 2
    bad = durable("runs", "list", "--since", "yesterday")
    assert bad.exit_code == 2
    assert "neither a duration" in bad.stderr


def test_queues_counts_waiting_and_delayed_runs(durable: Durable) -> None:
    """`queues` reports each queue's ready, delayed and running runs and the oldest ready."""

    async def enqueue_later() -> None:
        shop = _shop.build(durable.db)
        async with shop.wf:
            await shop.total.enqueue(a=5, b=5, queue="slow", delay=3600)

    asyncio.run(enqueue_later())
    result = durable("queues", "--json")
    assert result.exit_code == 0, result.output
    stats = {queue["queue"]: queue for queue in json.loads(result.stdout)}
    default, slow = stats["default"], stats["slow"]
    assert (default["ready"], default["delayed"], default["running"]) == (1, 0, 0)
    assert default["oldest_queued_at"] is not None
    assert (slow["ready"], slow["delayed"], slow["running"]) == (0, 1, 0)
    table = durable("queues").stdout
    assert "default" in table
    assert "slow" in table


def test_list_and_show_a_parked_run(durable: Durable) -> None:
    """A parked run is listed by --status waiting and shown as waiting, without a finish time."""

    async def park_one() -> None:
        shop = _shop.build(durable.db)
        async with shop.wf:
            handle = await shop.total.enqueue(a=7, b=7, queue="parked")
            store = shop.wf.store
            [claim] = await store.claim_queued(
                shop.wf.name, [QueueLimits("parked")], owner="w", lease_ttl=60.0, limit=1
            )
            await store.park_run(
                shop.wf.name, handle.run_id, claim.run.token, queue="parked", wake_at=None
            )

    asyncio.run(park_one())
    doc = listed(durable, "--status", "waiting")
    assert [(run["status"], run["queue"]) for run in doc["runs"]] == [("waiting", "parked")]
    run_id = doc["runs"][0]["run_id"]
    shown = json.loads(durable("runs", "show", run_id, "--json").stdout)
    assert (shown["status"], shown["finished_at"]) == ("waiting", None)
    assert "waiting" in durable("runs", "show", run_id).stdout
