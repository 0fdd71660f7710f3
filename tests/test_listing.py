"""wf.list_runs paging and filters, wf.queue_stats and wf.requeue, on every store kind."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.worker._serving import serving

from durable import QueueStats, Workflow
from durable.errors import ConfigurationError, RunConflictError, RunNotFoundError

ROOT = Path(__file__).resolve().parents[1]


def echo_app(wf: Workflow) -> Any:
    @wf.workflow(id="echo-{n}")
    async def echo(n: int) -> int:
        return n

    return echo


async def test_pages_follow_the_cursor(wf: Workflow) -> None:
    """Passing the last run's cursor lists the next page; all pages make the full list."""
    echo = echo_app(wf)
    for n in range(7):
        await echo(n)
    everything = [r.run_id for r in await wf.list_runs()]
    assert sorted(everything) == sorted(f"echo-{n}" for n in range(7))
    pages: list[list[str]] = []
    cursor = None
    while True:
        page = await wf.list_runs(limit=3, cursor=cursor)
        if not page:
            break
        pages.append([r.run_id for r in page])
        cursor = page[-1].cursor
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [run_id for page in pages for run_id in page] == everything


async def test_filters_by_time_prefix_and_queue(wf: Workflow) -> None:
    """since/until (datetime or timedelta), id_prefix and queue select the runs they name."""
    echo = echo_app(wf)

    @wf.workflow(id="job-{n}", queue="jobs")
    async def job(n: int) -> int:
        return n

    await echo(1)
    await asyncio.sleep(0.02)
    middle = datetime.now(UTC)
    await asyncio.sleep(0.02)
    await echo(2)
    await job.enqueue(3)
    assert [r.run_id for r in await wf.list_runs(since=middle)] == ["job-3", "echo-2"]
    assert [r.run_id for r in await wf.list_runs(until=middle)] == ["echo-1"]
    assert len(await wf.list_runs(since=timedelta(hours=1))) == 3
    assert await wf.list_runs(until=timedelta(hours=1)) == []
    assert [r.run_id for r in await wf.list_runs(id_prefix="echo-")] == ["echo-2", "echo-1"]
    assert await wf.list_runs(id_prefix="echo_") == []
    [queued] = await wf.list_runs(queue="jobs")
    assert (queued.run_id, queued.status, queued.queue) == ("job-3", "queued", "jobs")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"status": "done"}, "status must be one of"),
        ({"limit": 0}, "limit must be an int > 0"),
        ({"since": datetime(2024, 1, 1)}, "timezone-aware"),
        ({"since": timedelta(seconds=-1)}, "must not be negative"),
        ({"until": "yesterday"}, "datetime or a timedelta"),
        ({"since": timedelta(0), "until": timedelta(days=1)}, "later than until"),
        ({"cursor": "not-a-cursor"}, "not a cursor returned by list_runs"),
        ({"cursor": 12}, "cursor must be a str"),
        ({"id_prefix": 5}, "id_prefix must be a str"),
    ],
)
async def test_bad_list_arguments_are_refused(
    wf: Workflow, options: dict[str, Any], message: str
) -> None:
    """Each malformed argument is a ConfigurationError naming it."""
    with pytest.raises(ConfigurationError, match=message):
        await wf.list_runs(**options)


async def test_queue_stats_report_each_queue(wf: Workflow) -> None:
    """Declared queues appear even when empty; ready, delayed and running are counted."""
    wf.queue("idle")

    @wf.workflow(id="job-{n}", queue="jobs")
    async def job(n: int) -> int:
        return n

    before = datetime.now(UTC)
    await job.enqueue(1)
    await job.enqueue(2, delay=timedelta(hours=1))
    stats = {s.queue: s for s in await wf.queue_stats()}
    assert sorted(stats) == ["idle", "jobs"]
    assert stats["idle"] == QueueStats("idle", 0, 0, 0, 0, None)
    jobs = stats["jobs"]
    assert (jobs.queued, jobs.ready, jobs.delayed, jobs.running) == (2, 1, 1, 0)
    assert jobs.oldest_queued_at is not None
    assert jobs.oldest_queued_at >= before - timedelta(seconds=5)


async def test_requeue_reruns_only_the_failed_steps(wf: Workflow) -> None:
    """A requeued failed run is run by a worker: completed steps replay, the failed one reruns."""
    calls = {"prepare": 0, "flaky": 0}
    broken = {"on": True}

    @wf.task
    async def prepare() -> str:
        calls["prepare"] += 1
        return "ready"

    @wf.task
    async def flaky() -> str:
        calls["flaky"] += 1
        if broken["on"]:
            raise RuntimeError("down")
        return "fixed"

    @wf.workflow(id="repair-{n}")
    async def repair(n: int) -> str:
        return await prepare() + "/" + await flaky()

    with pytest.raises(RuntimeError, match="down"):
        await repair(1)
    assert (await wf.get_run("repair-1")).status == "failed"
    broken["on"] = False
    handle = await wf.requeue("repair-1")
    info = await wf.get_run("repair-1")
    assert (info.status, info.queue, info.error) == ("queued", "default", None)
    assert [s.task for s in info.steps] == ["prepare"]
    async with serving(wf):
        assert await handle.result(timeout=20) == "ready/fixed"
    assert calls == {"prepare": 1, "flaky": 2}


async def test_requeue_refuses_what_it_must(wf: Workflow) -> None:
    """Completed and unknown runs are refused with errors saying why; a cancelled one goes on."""
    echo = echo_app(wf)
    await echo(1)
    with pytest.raises(RunConflictError, match=r"'echo-1'.*completed"):
        await wf.requeue("echo-1")

    @wf.workflow(id="later-{n}")
    async def later(n: int) -> int:
        return n

    await later.enqueue(1)
    await wf.cancel("later-1")
    assert (await wf.get_run("later-1")).status == "cancelled"
    handle = await wf.requeue("later-1")  # deliberately continued, by whoever claims it
    assert await handle.status() == "queued"
    assert await later(1) == 1
    with pytest.raises(RunNotFoundError, match="ghost"):
        await wf.requeue("ghost")


async def test_requeue_refuses_a_run_with_a_live_owner(wf: Workflow) -> None:
    """A run executing here, or under another live owner's lease, stays with its owner."""
    release = asyncio.Event()

    @wf.workflow(id="slow-{n}")
    async def slow(n: int) -> int:
        await release.wait()
        return n

    handle = await slow.start(1)
    assert (await wf.get_run("slow-1")).status == "running"
    with pytest.raises(RunConflictError, match="executing in this process"):
        await wf.requeue("slow-1")
    release.set()
    assert await handle.result(timeout=20) == 1


def test_operate_runs_example(tmp_path: Path) -> None:
    """The example pages through its runs, finds the failed one and requeues it: one rerun step."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "operate_runs.py")],
        cwd=tmp_path,
        env={**os.environ, "EXAMPLE_DB": str(tmp_path / "example.db")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout.splitlines()
    pages = [line for line in out if line.startswith("page:")]
    assert [len(line.split()) - 1 for line in pages] == [5, 5, 2]
    listed = [item.split("=")[0] for line in pages for item in line.split()[1:]]
    assert listed == [f"invoice-{n:03d}" for n in range(12, 0, -1)]
    assert "invoice-007=failed" in pages[1]
    assert "failed: ['invoice-007'] builtins.RuntimeError: rate service unavailable" in out
    assert "prefix invoice-00: 9" in out
    assert "queue invoices: queued=0 running=0" in out
    assert out.count("  task: totalling invoice 7") == 1
    assert out.count("  task: converting invoice 7") == 1
    assert out[-1] == "requeued invoice-007: EUR 7.00"
