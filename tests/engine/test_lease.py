"""Leases: which owners are provably dead (real processes), heartbeat warnings, close()."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from durable import Workflow
from durable.engine.lease import new_owner_id, owner_is_dead

_PRINT_OWNER = "from durable.engine.lease import new_owner_id; print(new_owner_id())"


def _python(code: str, *, unshare: bool = False) -> str:
    argv = [sys.executable, "-c", code]
    if unshare:
        # A new pid namespace with the same host name: a container on this machine.
        argv = ["unshare", "--pid", "--fork", "--mount-proc", *argv]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if unshare and done.returncode != 0:
        pytest.skip(f"cannot create a pid namespace here: {done.stderr.strip()[:200]}")
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_an_exited_process_on_this_host_is_dead_and_a_live_one_is_not() -> None:
    assert owner_is_dead(_python(_PRINT_OWNER))
    assert not owner_is_dead(new_owner_id())


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs util-linux unshare")
def test_owners_in_another_pid_namespace_are_never_judged_by_pid() -> None:
    """Same host name, other pid namespace: pids there mean nothing here, and back."""
    inner = _python(_PRINT_OWNER, unshare=True)
    assert inner.split("/")[1] == "1"  # pid 1 here is another process entirely
    assert not owner_is_dead(inner)
    gone = _python(_PRINT_OWNER)
    assert owner_is_dead(gone)
    verdict = _python(
        f"from durable.engine.lease import owner_is_dead; print(owner_is_dead({gone!r}))",
        unshare=True,
    )
    assert verdict == "False"


@pytest.mark.parametrize(
    "owner",
    ["", "host/1/2/3", "other-host/1/2/scope/nonce", "a/b/c/d/e", "x" * 300],
)
def test_malformed_or_foreign_owner_ids_are_presumed_alive(owner: str) -> None:
    assert not owner_is_dead(owner)


async def test_a_blocked_event_loop_is_reported_by_the_heartbeat(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A task body blocking the loop past a heartbeat interval gets a 'heartbeat_late' warning."""
    wf = Workflow("blocking", db=tmp_path / "b.db", lease_ttl=3, heartbeat=0.05)

    @wf.task
    async def crunch() -> int:
        time.sleep(0.3)  # noqa: ASYNC251 - the blocking code under test
        return 1

    @wf.workflow(id="blocking")
    async def flow() -> int:
        await asyncio.sleep(0.1)  # the heartbeat is running by now
        return await crunch()

    with caplog.at_level("WARNING", logger="durable"):
        assert await flow() == 1
    await wf.close()
    late = [r for r in caplog.records if getattr(r, "action", None) == "heartbeat_late"]
    assert late, [r.getMessage() for r in caplog.records]
    assert "asyncio.to_thread" in late[0].getMessage()


async def test_close_stops_lease_renewals_instead_of_reopening_the_store(tmp_path: Path) -> None:
    """After close(), the heartbeat of a run still in flight does not reopen the store."""
    wf = Workflow("closing", db=tmp_path / "c.db", heartbeat=0.02)
    started = asyncio.Event()

    @wf.workflow(id="slow")
    async def slow() -> None:
        started.set()
        await asyncio.sleep(0.3)

    call = asyncio.ensure_future(slow())
    await started.wait()
    await wf.close()
    store = wf.store
    reopened = 0
    real_open = store.open

    async def counting_open() -> None:
        nonlocal reopened
        reopened += 1
        await real_open()

    store.open = counting_open  # type: ignore[method-assign]
    await asyncio.sleep(0.1)  # several heartbeat intervals
    assert reopened == 0, "a lease renewal reopened the store after close()"
    await call
    await wf.close()


async def test_the_heartbeat_renews_all_runs_of_the_app_in_one_call_per_beat(
    tmp_path: Path,
) -> None:
    """Five waiting runs: a beat is one renew_leases call covering all five, no renew_lease."""
    wf = Workflow("beats", db=tmp_path / "beats.db", heartbeat=0.05)
    store = wf.store
    batches: list[list[str]] = []
    singles = 0
    real_many, real_one = store.renew_leases, store.renew_lease

    async def spy_many(app: str, leases: Any, lease_ttl: float) -> Any:
        batches.append(sorted(run_id for run_id, _ in leases))
        return await real_many(app, leases, lease_ttl)

    async def spy_one(*args: Any) -> Any:
        nonlocal singles
        singles += 1
        return await real_one(*args)

    store.renew_leases = spy_many  # type: ignore[method-assign]
    store.renew_lease = spy_one  # type: ignore[method-assign]

    @wf.workflow(id="waiter-{i}")
    async def waiter(i: int) -> Any:
        return await wf.signal("go")

    calls = [asyncio.ensure_future(waiter(i)) for i in range(5)]
    for _ in range(200):
        if batches and len(batches[-1]) == 5:
            break
        await asyncio.sleep(0.02)
    for i in range(5):
        await wf.send_signal(f"waiter-{i}", "go", i)
    assert await asyncio.gather(*calls) == [0, 1, 2, 3, 4]
    await wf.close()
    assert [f"waiter-{i}" for i in range(5)] in batches
    assert singles == 0


def test_runs_on_a_new_event_loop_keep_their_lease_after_a_loop_stopped_mid_run(
    tmp_path: Path,
) -> None:
    """A loop stopped (not closed) with a run in flight does not keep the next loop's
    runs from having their leases renewed."""
    app = Workflow("beat", db=tmp_path / "beat.db", lease_ttl=0.6, heartbeat=0.1)

    @app.task
    async def pause(seconds: float) -> None:
        await asyncio.sleep(seconds)

    @app.task
    async def lease_left(run_id: str) -> float:
        run = await app.store.get_run("beat", run_id)
        assert run is not None
        assert run.lease_expires_at is not None
        return run.lease_expires_at - time.time()

    @app.workflow(id="{key}")
    async def job(key: str, seconds: float) -> float:
        await pause(seconds)
        return await lease_left(key)

    first = asyncio.new_event_loop()

    async def start_then_stop() -> asyncio.Task[float]:
        task = asyncio.create_task(job(key="first", seconds=30))
        await asyncio.sleep(0.3)  # the run and its heartbeat are running
        return task

    stranded = first.run_until_complete(start_then_stop())
    # The first loop is stopped, not closed: its heartbeat task never ends.
    try:
        left = asyncio.run(job(key="second", seconds=1.5))
        assert left > 0, f"the lease of run 'second' expired {-left:.2f}s before it ended"
    finally:
        stranded.cancel()
        first.run_until_complete(asyncio.gather(stranded, return_exceptions=True))
        first.run_until_complete(app.close())
        first.close()
