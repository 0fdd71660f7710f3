"""Durable primitives across real processes: SIGKILL mid-sleep, mid-wait, after a child; remote
signals and cancels.

Each test writes a script to ``tmp_path``, runs it with ``sys.executable`` on a
store every process can reach (a SQLite file, PostgreSQL or Redis), waits for
a marker in the script's journal file, and kills it with SIGKILL (no cleanup
of any kind runs). The journal, written and fsynced by task bodies, is the
record of what really executed.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests import _services

from durable import Workflow
from durable.stores.base import Store
from durable.stores.sqlite import SQLiteStore

pytestmark = pytest.mark.crash

SCRIPT = textwrap.dedent(
    """
    import asyncio
    import json
    import os
    import sys
    import time

    from durable import Workflow

    kind, target, extra, journal_path, command, *args = sys.argv[1:]


    def make_store():
        if kind == "sqlite":
            from durable.stores.sqlite import SQLiteStore
            return SQLiteStore(target)
        if kind == "postgres":
            from durable.stores.postgres import PostgresStore
            return PostgresStore(dsn=target, schema=extra)
        from durable.stores.redis import RedisStore
        return RedisStore(url=target, prefix=extra)


    wf = Workflow("crash-app", db=make_store(), lease_ttl=2.0, heartbeat=0.1)


    def journal(line):
        with open(journal_path, "a") as f:
            f.write(line + "\\n")
            f.flush()
            os.fsync(f.fileno())


    @wf.task
    async def note(line: str) -> str:
        journal(line)
        return line


    @wf.task
    async def hang() -> None:
        journal("hang")
        if os.environ.get("HANG") == "1":
            await asyncio.sleep(60)


    @wf.workflow(id="sleeper")
    async def sleeper() -> str:
        await note("before sleep")
        await wf.sleep(float(os.environ.get("SLEEP", "0")))
        await note("after sleep")
        return "rested"


    @wf.workflow(id="approval")
    async def approval() -> str:
        await note("asked")
        decision = await wf.signal("decision")
        await note(f"decided {decision}")
        return f"decision: {decision}"


    @wf.workflow(id="child-{n}")
    async def child(n: int) -> int:
        await note(f"child {n}")
        return n * 100


    @wf.workflow(id="parent")
    async def parent() -> int:
        value = await child(7)
        await hang()
        await note("parent done")
        return value


    WORKFLOWS = {"sleeper": sleeper, "approval": approval, "parent": parent}


    async def main():
        try:
            if command == "run":
                result = await WORKFLOWS[args[0]]()
            elif command == "send":
                result = await wf.send_signal(args[0], args[1], json.loads(args[2]))
            elif command == "cancel":
                result = await wf.cancel(args[0])
            elif command == "resume":
                result = await wf.resume(args[0])
            else:
                raise SystemExit(f"unknown command {command}")
        except Exception as exc:
            print(json.dumps({"error": type(exc).__name__, "finished": time.time()}))
        else:
            print(json.dumps({"result": result, "finished": time.time()}))
        finally:
            await wf.close()


    asyncio.run(main())
    """
)

DEADLINE = 30.0


@dataclass
class Harness:
    """Runs the script against one store and reads what it did."""

    script: Path
    journal: Path
    argv: list[str]
    wf: Workflow

    def start(self, *args: str, **env: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, str(self.script), *self.argv, str(self.journal), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **env},
        )

    def finish(self, proc: subprocess.Popen[str]) -> dict[str, Any]:
        out, err = proc.communicate(timeout=DEADLINE)
        assert proc.returncode == 0, err
        outcome: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        return outcome

    def run(self, *args: str, **env: str) -> dict[str, Any]:
        return self.finish(self.start(*args, **env))

    def entries(self) -> list[str]:
        if not self.journal.exists():
            return []
        return self.journal.read_text().splitlines()

    def counts(self) -> Counter[str]:
        return Counter(self.entries())

    async def wait_for_entry(self, entry: str, proc: subprocess.Popen[str]) -> None:
        deadline = time.monotonic() + DEADLINE
        while entry not in self.entries():
            if proc.poll() is not None:
                raise AssertionError(f"script exited early: {proc.communicate()}")
            assert time.monotonic() < deadline, f"no {entry!r} in {self.entries()}"
            await asyncio.sleep(0.01)

    async def wait_for_step(self, run_id: str, task: str) -> None:
        deadline = time.monotonic() + DEADLINE
        while True:
            loaded = await self.wf.store.load_run(self.wf.name, run_id)
            if loaded is not None and any(s.task == task for s in loaded[1]):
                return
            assert time.monotonic() < deadline, f"no {task} step in {run_id!r}"
            await asyncio.sleep(0.01)


def kill(proc: subprocess.Popen[str]) -> None:
    """SIGKILL the process and reap it."""
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=DEADLINE)
    assert proc.returncode == -signal.SIGKILL


@pytest.fixture(
    params=[
        pytest.param("sqlite"),
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("redis", marks=pytest.mark.redis),
    ]
)
async def harness(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Harness]:
    """The script, its journal and an app on the same store for the test to inspect."""
    kind: str = request.param
    store: Store
    cleanup: Callable[[], Any] | None = None
    if kind == "sqlite":
        path = str(tmp_path / "crash.db")
        argv = [kind, path, "-"]
        store = SQLiteStore(path)
    elif kind == "postgres":
        dsn = await _services.postgres_dsn()
        schema = _services.unique_name("primcrash")
        argv = [kind, dsn, schema]
        store = _services.import_driver("durable.stores.postgres").PostgresStore(
            dsn=dsn, schema=schema
        )

        async def cleanup() -> None:
            await _services.drop_postgres_schema(dsn, schema)

    else:
        url = await _services.redis_url()
        prefix = _services.unique_name("primcrash")
        argv = [kind, url, prefix]
        store = _services.import_driver("durable.stores.redis").RedisStore(url=url, prefix=prefix)

        async def cleanup() -> None:
            await _services.delete_redis_prefix(url, prefix)

    script = tmp_path / "flows.py"
    script.write_text(SCRIPT)
    wf = Workflow("crash-app", db=store)
    try:
        yield Harness(script, tmp_path / "journal.txt", argv, wf)
    finally:
        await wf.close()
        if cleanup is not None:
            await cleanup()


async def test_sleep_killed_midway_resumes_for_the_remaining_time(harness: Harness) -> None:
    """A process killed mid-sleep is resumed elsewhere, waking at the recorded time, steps once."""
    proc = harness.start("run", "sleeper", SLEEP="1.0")
    await harness.wait_for_step("sleeper", "durable.sleep")
    run = await harness.wf.get_run("sleeper")
    wake_at = run.steps[1].result["wake_at"]
    await asyncio.sleep(max(0.0, wake_at - 0.5 - time.time()))
    kill(proc)
    assert harness.entries() == ["before sleep"]

    outcome = harness.run("run", "sleeper", SLEEP="1.0")
    assert outcome["result"] == "rested"
    # A full new sleep would end at least 0.5s after the recorded wake-up time.
    assert wake_at <= outcome["finished"] < wake_at + 0.4
    assert harness.counts() == {"before sleep": 1, "after sleep": 1}
    info = await harness.wf.get_run("sleeper")
    assert info.status == "completed"
    assert info.steps[1].result["wake_at"] == wake_at


async def test_signal_delivered_while_the_process_is_down(harness: Harness) -> None:
    """A signal sent while the waiting process is dead is received when the run resumes."""
    proc = harness.start("run", "approval")
    await harness.wait_for_entry("asked", proc)
    await harness.wait_for_step("approval", "note")
    kill(proc)

    assert harness.run("send", "approval", "decision", '"yes"')["result"] is None
    assert harness.run("run", "approval")["result"] == "decision: yes"
    assert harness.counts() == {"asked": 1, "decided yes": 1}


async def test_completed_child_survives_the_parent_being_killed(harness: Harness) -> None:
    """After a child completed and the parent process died, the resumed parent reuses its output."""
    proc = harness.start("run", "parent", HANG="1")
    await harness.wait_for_entry("hang", proc)
    kill(proc)
    child = await harness.wf.get_run("child-7")
    assert child.status == "completed"
    assert child.parent_run_id == "parent"

    assert harness.run("run", "parent", HANG="0")["result"] == 700
    assert harness.counts() == {"child 7": 1, "hang": 2, "parent done": 1}
    parent = await harness.wf.get_run("parent")
    assert [s.task for s in parent.steps] == ["child", "hang", "note"]


async def test_signal_sent_from_another_process_wakes_the_waiting_one(harness: Harness) -> None:
    """A run waiting in one process receives a signal sent by another process."""
    waiting = harness.start("run", "approval")
    await harness.wait_for_entry("asked", waiting)
    harness.run("send", "approval", "decision", "0")
    outcome = harness.finish(waiting)
    assert outcome["result"] == "decision: 0"
    assert harness.counts() == {"asked": 1, "decided 0": 1}


async def test_cancel_from_another_process_then_resume(harness: Harness) -> None:
    """A cancel sent by another process stops the waiting run; a later resume finishes it."""
    waiting = harness.start("run", "approval")
    await harness.wait_for_entry("asked", waiting)
    await harness.wait_for_step("approval", "note")
    sent = time.time()
    harness.run("cancel", "approval")
    outcome = harness.finish(waiting)
    assert outcome["error"] == "RunCancelledError"
    assert outcome["finished"] - sent < 3.0
    assert (await harness.wf.get_run("approval")).status == "cancelled"
    assert harness.run("run", "approval")["error"] == "RunCancelledError"

    harness.run("send", "approval", "decision", '"late"')
    assert harness.run("resume", "approval")["result"] == "decision: late"
    assert harness.counts() == {"asked": 1, "decided late": 1}
