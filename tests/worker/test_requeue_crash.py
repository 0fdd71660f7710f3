"""wf.requeue of a run whose process was SIGKILLed: a worker finishes it from its steps."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from durable import Workflow
from durable.errors import RunConflictError

pytestmark = [pytest.mark.crash, pytest.mark.asyncio]

HERE = Path(__file__).parent


async def test_requeue_hands_a_killed_process_run_to_a_worker(tmp_path: Path) -> None:
    """Refused while its process lives; once SIGKILLed, requeued at once and finished once."""
    db, journal = tmp_path / "requeue.db", tmp_path / "journal.log"
    starter = subprocess.Popen(  # noqa: ASYNC220 - a process to kill, not awaited
        [sys.executable, str(HERE / "_requeue_app.py"), str(db), str(journal)],
        cwd=HERE,
        stdout=subprocess.PIPE,
    )
    assert starter.stdout is not None
    app = Workflow("requeue", db=db, lease_ttl=60.0)

    @app.task
    async def first() -> str:
        raise AssertionError("the committed step must replay, not run")

    @app.workflow(id="hang-{n}")
    async def hang(n: int) -> str:
        return await first() + " then done"

    try:
        assert starter.stdout.readline().strip() == b"started"
        with pytest.raises(RunConflictError, match=rf"owned by '[^']*{starter.pid}.*lease is live"):
            await app.requeue("hang-1")
        starter.send_signal(signal.SIGKILL)
        starter.wait()
        # The lease has a minute left, but its owner is provably dead.
        handle = await app.requeue("hang-1")
        info = await app.get_run("hang-1")
        assert (info.status, info.owner, info.queue) == ("queued", None, "default")
        worker = asyncio.create_task(app.serve(poll_interval=0.05, handle_signals=False))
        try:
            assert await handle.result(timeout=30) == "one then done"
        finally:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
    finally:
        if starter.poll() is None:
            starter.kill()
            starter.wait()
        starter.stdout.close()
        await app.close()
    assert journal.read_text().splitlines() == [f"first {starter.pid}"]
