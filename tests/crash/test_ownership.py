"""Ownership across processes: when a dead owner is recognized, and whose clock decides."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.crash._harness import WORKER, ForkServer, read_journal
from tests.crash._worker import expected_output

from durable import Workflow
from durable.stores.base import Claim, NewRun, RunRecord
from durable.stores.sqlite import SQLiteStore

pytestmark = pytest.mark.crash


def test_killed_owner_not_yet_reaped_is_taken_over_at_once(
    server: ForkServer, db_path: Path, journal_path: Path
) -> None:
    """An owner killed but not yet reaped by its parent (a zombie process) counts as dead."""
    cmd = {
        "store": {"kind": "sqlite", "path": str(db_path)},
        "journal": str(journal_path),
        "run_id": "unreaped",
        "n_items": 2,
        "fan": 1,
        "stop_in_body": "item:i0",
    }
    owner = subprocess.Popen(
        [sys.executable, str(WORKER), "--once", json.dumps(cmd)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert owner.stdout is not None
        assert "stopping-in item:i0" in owner.stdout.readline()
        owner.send_signal(signal.SIGKILL)
        # Not reaped: the owner stays a zombie process while the run is called again.
        deadline = time.monotonic() + 30
        while _state(owner.pid) != "Z":
            assert time.monotonic() < deadline, "the killed owner never became a zombie"
        started = time.monotonic()
        del cmd["stop_in_body"]
        [resumer] = server.spawn(**cmd, lease_ttl=30.0, heartbeat=10.0)
        assert server.outcome(resumer, timeout=20) == expected_output(2, 1)
        assert time.monotonic() - started < 10
    finally:
        owner.kill()
        owner.wait()
        assert owner.stdout is not None
        owner.stdout.close()
    labels = [e.label for e in read_journal(journal_path) if e.pid == resumer]
    assert labels == ["item:i0", "item:i1", "fan", "last"]


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat", "rb") as f:
        stat = f.read()
    return stat[stat.rfind(b")") + 2 :].split()[0].decode()


class _ClockAheadStore(SQLiteStore):
    """Reports leases as a client whose clock runs an hour ahead of the store's would see them."""

    def _skew(self, run: RunRecord) -> RunRecord:
        if run.lease_expires_at is None:
            return run
        return dataclasses.replace(run, lease_expires_at=run.lease_expires_at - 3600)

    async def claim_run(self, new: NewRun, **options: object) -> Claim:  # type: ignore[override]
        claim = await super().claim_run(new, **options)  # type: ignore[arg-type]
        return dataclasses.replace(claim, run=self._skew(claim.run))

    async def get_run(self, app: str, run_id: str) -> RunRecord | None:
        run = await super().get_run(app, run_id)
        return None if run is None else self._skew(run)


async def test_a_live_owners_lease_is_judged_by_the_store_clock(db_path: Path) -> None:
    """A caller whose clock runs ahead never takes a run from a live owner whose lease the
    store still honours."""
    store = _ClockAheadStore(db_path)
    app = Workflow("clock", db=store)
    ran: list[str] = []

    @app.workflow(id="{key}")
    async def job(key: str) -> str:
        ran.append(key)
        return "mine"

    # A live owner on another machine holds the run.
    new = NewRun("clock", "k", "job", json.dumps({"key": "k"}))
    claim = await store.claim_run(new, owner="elsewhere/1/1/abc", lease_ttl=60)
    assert claim.acquired

    async def other_owner_finishes() -> None:
        await asyncio.sleep(0.3)
        await store.finish_run("clock", "k", claim.run.token, "completed", output='"theirs"')

    finisher = asyncio.create_task(other_owner_finishes())
    try:
        async with asyncio.timeout(20):
            assert await job(key="k") == "theirs"
    finally:
        await finisher
        await app.close()
    assert ran == []
