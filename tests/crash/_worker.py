"""A fork server for the crash tests: imports durable once, forks one child per execution.

The parent test writes one JSON command per line on stdin; this process forks
the requested children and reports on stdout::

    ready                        once, at start
    spawned <pid> [<pid> ...]    the children of the last command
    exit <pid> <code>            a child ended (negative code: killed by that signal)

Children write their own lines on the same pipe (one ``os.write`` per line,
atomic below PIPE_BUF)::

    mark <pid> <text>            a point the parent may wait for
    result <pid> <json>          the run's output
    error <pid> <type> <text>    the run raised

Forking from a process that never started a thread or an event loop is safe,
and it makes a child cost a few milliseconds instead of a Python start-up.

Each task body appends ``S <pid> <run id> <label>`` to an append-only journal
file (fsync'd) before doing anything else: the external record of which bodies
executed, independent of the store.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import select
import signal
import sys
from collections.abc import Sequence
from typing import Any

from durable import Workflow
from durable.stores.base import (
    Claim,
    FinalStatus,
    LeaseState,
    NewRun,
    RunRecord,
    RunStatus,
    SavedStep,
    StepRecord,
    Store,
)
from durable.stores.sqlite import SQLiteStore


def emit(line: str) -> None:
    data = (line.replace("\n", " ") + "\n").encode()
    os.write(1, data)


def expected_output(n_items: int, fan: int) -> dict[str, Any]:
    """What ``pipeline(n_items, fan)`` returns; computed without the engine."""
    total = 1 * 3 + 1
    for i in range(n_items):
        total += i * 3 + 1
    parts = [k * 3 + 1 for k in range(fan)]
    return {"total": (total + sum(parts)) * 3 + 1, "parts": parts}


def step_labels(n_items: int, fan: int) -> list[str]:
    """The step ids ``pipeline(n_items, fan)`` records, in call order."""
    return (
        ["first"]
        + [f"item:i{i}" for i in range(n_items)]
        + ["fan" if k == 0 else f"fan#{k}" for k in range(fan)]
        + ["last"]
    )


class FaultStore(Store):
    """Delegates to a real store; may SIGKILL this process around its Nth write."""

    def __init__(self, inner: Store, cmd: dict[str, Any]) -> None:
        self.inner = inner
        self.writes = 0
        self.kill_write: int | None = cmd.get("kill_write")
        self.kill_when: str = cmd.get("kill_when", "before")
        self.kill_after_save: str | None = cmd.get("kill_after_save")

    def _die(self) -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    def _before(self) -> None:
        self.writes += 1
        if self.kill_write == self.writes and self.kill_when == "before":
            self._die()

    def _after(self, n: int) -> None:
        if self.kill_write == n and self.kill_when == "after":
            self._die()

    async def open(self) -> None:
        await self.inner.open()

    async def close(self) -> None:
        await self.inner.close()

    async def claim_run(
        self,
        new: NewRun,
        *,
        owner: str,
        lease_ttl: float,
        steal_from: str | None = None,
        resume: bool = False,
    ) -> Claim:
        self._before()
        n = self.writes
        claim = await self.inner.claim_run(
            new, owner=owner, lease_ttl=lease_ttl, steal_from=steal_from, resume=resume
        )
        self._after(n)
        return claim

    async def save_step(self, app: str, run_id: str, token: int, step: StepRecord) -> SavedStep:
        self._before()
        n = self.writes
        saved = await self.inner.save_step(app, run_id, token, step)
        self._after(n)
        if self.kill_after_save == step.step_id:
            self._die()
        return saved

    async def renew_lease(self, app: str, run_id: str, token: int, lease_ttl: float) -> LeaseState:
        self._before()
        n = self.writes
        state = await self.inner.renew_lease(app, run_id, token, lease_ttl)
        self._after(n)
        return state

    async def release_run(self, app: str, run_id: str, token: int) -> None:
        self._before()
        n = self.writes
        await self.inner.release_run(app, run_id, token)
        self._after(n)

    async def finish_run(
        self,
        app: str,
        run_id: str,
        token: int,
        status: FinalStatus,
        *,
        output: str | None = None,
        error: str | None = None,
    ) -> RunRecord:
        self._before()
        n = self.writes
        record = await self.inner.finish_run(app, run_id, token, status, output=output, error=error)
        self._after(n)
        return record

    async def request_cancel(self, app: str, run_id: str) -> RunRecord | None:
        self._before()
        return await self.inner.request_cancel(app, run_id)

    async def load_run(
        self, app: str, run_id: str
    ) -> tuple[RunRecord, tuple[StepRecord, ...]] | None:
        return await self.inner.load_run(app, run_id)

    async def get_run(self, app: str, run_id: str) -> RunRecord | None:
        return await self.inner.get_run(app, run_id)

    async def list_runs(
        self,
        app: str,
        *,
        status: RunStatus | None = None,
        workflow: str | None = None,
        limit: int = 100,
    ) -> Sequence[RunRecord]:
        return await self.inner.list_runs(app, status=status, workflow=workflow, limit=limit)

    async def send_signal(self, app: str, run_id: str, name: str, payload: str) -> int:
        self._before()
        return await self.inner.send_signal(app, run_id, name, payload)

    async def read_signal(self, app: str, run_id: str, name: str, index: int) -> str | None:
        return await self.inner.read_signal(app, run_id, name, index)


def make_store(spec: dict[str, Any]) -> Store:
    if spec["kind"] == "sqlite":
        return SQLiteStore(spec["path"])
    from durable.stores.postgres import PostgresStore

    return PostgresStore(spec["dsn"], schema=spec["schema"], min_size=1, max_size=4)


async def child_main(cmd: dict[str, Any], barrier: int | None) -> None:
    pid = os.getpid()
    rng = random.Random(f"{cmd.get('seed', 0)}-{pid}")
    delay = float(cmd.get("delay", 0.0))
    kill_in_body = cmd.get("kill_in_body")
    stop_in_body = cmd.get("stop_in_body")
    journal = os.open(cmd["journal"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    store = FaultStore(make_store(cmd["store"]), cmd)
    options: dict[str, Any] = {}
    if "lease_ttl" in cmd:
        options = {"lease_ttl": cmd["lease_ttl"], "heartbeat": cmd["heartbeat"]}
    wf = Workflow(cmd.get("app", "torture"), db=store, **options)

    async def body(run_id: str, label: str, value: int) -> int:
        os.write(journal, f"S {pid} {run_id} {label}\n".encode())
        os.fsync(journal)
        if label == kill_in_body:
            os.kill(pid, signal.SIGKILL)
        if label == stop_in_body:
            emit(f"mark {pid} stopping-in {label}")
            os.kill(pid, signal.SIGSTOP)
        if delay:
            await asyncio.sleep(rng.uniform(0, delay))
        if cmd.get("pid_results"):
            return pid
        return value * 3 + 1

    @wf.task
    async def first(run_id: str, label: str, value: int) -> int:
        return await body(run_id, label, value)

    @wf.task
    async def item(run_id: str, label: str, value: int) -> int:
        return await body(run_id, label, value)

    @wf.task
    async def fan(run_id: str, label: str, value: int) -> int:
        return await body(run_id, label, value)

    @wf.task
    async def last(run_id: str, label: str, value: int) -> int:
        return await body(run_id, label, value)

    @wf.workflow(id="{run_id}")
    async def pipeline(run_id: str, n_items: int, fan_out: int) -> dict[str, Any]:
        total = await first(run_id, "first", 1)
        for i in range(n_items):
            total += await item(run_id, f"item:i{i}", i, step_id=f"i{i}")
        calls = [fan(run_id, "fan" if k == 0 else f"fan#{k}", k) for k in range(fan_out)]
        parts = list(await asyncio.gather(*calls))
        return {"total": await last(run_id, "last", total + sum(parts)), "parts": parts}

    async with wf:
        if barrier is not None:
            # Every racer has its store open before any of them starts the run.
            os.read(barrier, 1)
        if cmd.get("recover"):
            recovered = await wf.recover()
            emit(f"result {pid} {json.dumps(sorted(recovered))}")
            os.close(journal)
            return
        try:
            output = await pipeline(
                run_id=cmd["run_id"], n_items=cmd["n_items"], fan_out=cmd["fan"]
            )
        except Exception as exc:
            emit(f"error {pid} {type(exc).__name__} {exc}")
        else:
            emit(f"result {pid} {json.dumps(output, sort_keys=True)}")
    os.close(journal)


def spawn(cmd: dict[str, Any]) -> list[int]:
    count = int(cmd.get("count", 1))
    read_end: int | None = None
    write_end: int | None = None
    if count > 1:
        read_end, write_end = os.pipe()
    pids: list[int] = []
    for _ in range(count):
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                os.close(0)
                if write_end is not None:
                    os.close(write_end)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                asyncio.run(child_main(cmd, read_end))
            except BaseException as exc:
                emit(f"error {os.getpid()} crash {type(exc).__name__}: {exc}")
                code = 1
            os._exit(code)
        pids.append(pid)
    if read_end is not None and write_end is not None:
        os.close(read_end)
        os.write(write_end, b"x" * count)
        os.close(write_end)
    return pids


def reap() -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        emit(f"exit {pid} {os.waitstatus_to_exitcode(status)}")


def main() -> None:
    emit("ready")
    buffer = b""
    while True:
        readable, _, _ = select.select([0], [], [], 0.005)
        reap()
        if not readable:
            continue
        chunk = os.read(0, 65536)
        if not chunk:
            break
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            pids = spawn(json.loads(line))
            emit("spawned " + " ".join(map(str, pids)))
    while True:
        try:
            os.wait()
        except ChildProcessError:
            break


if __name__ == "__main__":
    if sys.argv[1:2] == ["--once"]:
        # One run in this very process, for tests that must be its parent.
        asyncio.run(child_main(json.loads(sys.argv[2]), None))
    else:
        main()
