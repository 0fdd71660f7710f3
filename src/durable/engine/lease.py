"""Run ownership: owner ids, telling whether an owner is provably dead, heartbeats.

An owner id is ``host/pid/start/scope/nonce``. ``start`` is the process start
time (from /proc on Linux), so a recycled pid is not mistaken for the original
process. ``scope`` names the kernel boot and the pid namespace: containers on
one machine may share a host name but not their pids. An owner is *provably*
dead only when it ran on this host, in this boot and pid namespace, and its
process is gone; any other owner is presumed alive until its lease expires.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable

from durable.engine.context import RunContext
from durable.stores.base import LeaseState

logger = logging.getLogger("durable.lease")

_HOST = socket.gethostname()


def _pid_scope() -> str:
    """This boot and pid namespace, "" where they cannot be read (not Linux)."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot = f.read().strip().replace("-", "")[:12]
        namespace = os.readlink("/proc/self/ns/pid")  # e.g. "pid:[4026531836]"
    except OSError:
        return ""
    return f"{boot}.{namespace.strip('pid:[]')}"


_SCOPE = _pid_scope()


def _proc_stat(pid: int) -> list[bytes]:
    """The fields of /proc/<pid>/stat after the command name, [] when unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return []
    # The command name (field 2) may contain spaces and parentheses: split after it.
    return stat[stat.rfind(b")") + 2 :].split()


def _process_start(pid: int) -> str:
    """Start time of ``pid`` in clock ticks since boot, "" when unknown."""
    fields = _proc_stat(pid)
    return fields[19].decode() if len(fields) > 19 else ""


def new_owner_id() -> str:
    pid = os.getpid()
    return f"{_HOST}/{pid}/{_process_start(pid)}/{_SCOPE}/{os.urandom(6).hex()}"


def owner_is_dead(owner: str) -> bool:
    """True only when ``owner`` ran here (host, boot, pid namespace) and its process is gone."""
    parts = owner.split("/")
    if len(parts) != 5 or parts[0] != _HOST or parts[3] != _SCOPE:
        # Another machine, boot or container: its pids mean nothing here.
        return False
    try:
        pid = int(parts[1])
    except ValueError:
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # exists, owned by another user
    fields = _proc_stat(pid)
    # A killed process that its parent has not reaped yet still answers
    # kill(pid, 0), but as a zombie ("Z") or dying ("X") it never runs again.
    if fields and fields[0] in (b"Z", b"X"):
        return True
    start = parts[2]
    current = fields[19].decode() if len(fields) > 19 else ""
    return bool(start and current and start != current)


class Heartbeat:
    """Renews the leases of every run this app executes, from one background task."""

    def __init__(
        self,
        renew: Callable[[list[RunContext]], Awaitable[dict[str, LeaseState]]],
        interval: float,
    ) -> None:
        self._renew = renew
        self._interval = interval
        self._runs: set[RunContext] = set()
        self._task: asyncio.Task[None] | None = None

    def add(self, ctx: RunContext) -> None:
        self._runs.add(ctx)
        loop = asyncio.get_running_loop()
        # A task of a loop that stopped (without closing) is never done, and
        # never beats again either: the runs of this loop need a task of their own.
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            self._task = loop.create_task(self._loop(), name="durable-heartbeat")

    def discard(self, ctx: RunContext) -> None:
        self._runs.discard(ctx)
        if not self._runs and self._task is not None:
            self._task.cancel()
            self._task = None

    async def stop(self) -> None:
        """Stop renewing: the runs still executing keep their lease until it expires."""
        self._runs.clear()
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            if task.get_loop() is asyncio.get_running_loop():
                await asyncio.gather(task, return_exceptions=True)

    def cancel_requested(self, run_id: str) -> None:
        """Flag the executions of ``run_id`` here as cancelled without waiting for a beat."""
        for ctx in self._runs:
            if ctx.run_id == run_id:
                ctx.cancel_requested = True

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while self._runs:
            slept_at = loop.time()
            await asyncio.sleep(self._interval)
            late = loop.time() - slept_at - self._interval
            if late > self._interval:
                # Something blocked the event loop: leases may have expired
                # meanwhile, and another process may have taken runs over.
                logger.warning(
                    "lease renewal ran %.1fs late (every %.1fs): blocking code on the "
                    "event loop delays it; run it with asyncio.to_thread or raise lease_ttl",
                    late,
                    self._interval,
                    extra={"action": "heartbeat_late"},
                )
            # All runs in one store call: one transaction, however many there are.
            batch = {ctx.run_id: ctx for ctx in self._runs}
            try:
                states = await self._renew(list(batch.values()))
            except Exception:
                # A transient store error: the next beat retries, the lease
                # covers several missed beats.
                logger.warning(
                    "lease renewal failed for %d run(s)",
                    len(batch),
                    exc_info=True,
                    extra={"action": "lease_renew_failed"},
                )
                continue
            for run_id, ctx in batch.items():
                if ctx not in self._runs or ctx.parked:
                    continue  # finished or parked meanwhile: its answer is stale
                state = states.get(run_id)
                if state is LeaseState.LOST:
                    ctx.lease_lost = True
                    logger.warning(
                        "run %s: lease lost to another owner",
                        ctx.run_id,
                        extra={"action": "lease_lost", "run_id": ctx.run_id},
                    )
                elif state is LeaseState.CANCEL_REQUESTED:
                    ctx.cancel_requested = True
