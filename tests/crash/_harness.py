"""Driving the fork server of ``_worker.py`` and checking what its children did."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

WORKER = Path(__file__).with_name("_worker.py")
DEADLINE = 60.0


class WorkerError(AssertionError):
    """The fork server or one of its children did not behave as expected."""


class ForkServer:
    """One ``_worker.py`` process; collects the lines it and its children print."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=WORKER.parent,
        )
        self._cond = threading.Condition()
        self.lines: list[str] = []
        self.exits: dict[int, int] = {}
        self.results: dict[int, Any] = {}
        self.errors: dict[int, str] = {}
        self.marks: dict[int, list[str]] = defaultdict(list)
        self._spawned: list[list[int]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._wait(lambda: "ready" in self.lines, "the fork server to start")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            with self._cond:
                self.lines.append(line)
                kind, _, rest = line.partition(" ")
                if kind == "spawned":
                    pids = [int(p) for p in rest.split()]
                    for pid in pids:
                        self._fresh(pid)
                    self._spawned.append(pids)
                elif kind == "exit":
                    pid, code = rest.split()
                    self.exits[int(pid)] = int(code)
                elif kind == "result":
                    pid, payload = rest.split(" ", 1)
                    self._fresh(int(pid))
                    self.results[int(pid)] = json.loads(payload)
                elif kind == "error":
                    pid, message = rest.split(" ", 1)
                    self._fresh(int(pid))
                    self.errors[int(pid)] = message
                elif kind == "mark":
                    pid, text = rest.split(" ", 1)
                    self._fresh(int(pid))
                    self.marks[int(pid)].append(text)
                self._cond.notify_all()
        with self._cond:
            self.lines.append("<eof>")
            self._cond.notify_all()

    def _fresh(self, pid: int) -> None:
        """Forget an earlier child that had this pid: pids are reused after many forks.

        A child's lines all come before its exit is reported, so anything about
        a pid already reported dead belongs to a new child.
        """
        if pid in self.exits:
            del self.exits[pid]
            self.results.pop(pid, None)
            self.errors.pop(pid, None)
            self.marks.pop(pid, None)

    def _wait(self, ready: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not ready():
                if "<eof>" in self.lines:
                    raise WorkerError(f"fork server exited while waiting for {what}")
                left = deadline - time.monotonic()
                if left <= 0:
                    tail = "\n".join(self.lines[-20:])
                    raise WorkerError(f"timed out waiting for {what}; last lines:\n{tail}")
                self._cond.wait(left)

    def spawn(self, **cmd: Any) -> list[int]:
        """Fork ``cmd["count"]`` children (default 1) running the command; their pids."""
        assert self.proc.stdin is not None
        with self._cond:
            before = len(self._spawned)
        self.proc.stdin.write(json.dumps(cmd).encode() + b"\n")
        self.proc.stdin.flush()
        self._wait(lambda: len(self._spawned) > before, "children to be forked")
        with self._cond:
            return self._spawned[before]

    def wait_exit(self, pid: int, timeout: float = DEADLINE) -> int:
        """The exit code of child ``pid`` once it is dead and reaped."""
        self._wait(lambda: pid in self.exits, f"child {pid} to exit", timeout)
        return self.exits[pid]

    def wait_mark(self, pid: int, text: str, timeout: float = DEADLINE) -> None:
        self._wait(lambda: text in self.marks.get(pid, ()), f"mark {text!r} of {pid}", timeout)

    def outcome(self, pid: int, timeout: float = DEADLINE) -> Any:
        """The output child ``pid`` printed, after checking it exited cleanly."""
        code = self.wait_exit(pid, timeout)
        if pid in self.errors or code != 0:
            raise WorkerError(f"child {pid} exited {code}: {self.errors.get(pid)}")
        if pid not in self.results:
            raise WorkerError(f"child {pid} exited without a result")
        return self.results[pid]

    def kill(self, pid: int) -> bool:
        """SIGKILL ``pid`` unless it already ended; wait until it is reaped.

        True when the signal was delivered to a live child.
        """
        with self._cond:
            gone = pid in self.exits
        if not gone:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        code = self.wait_exit(pid)
        return not gone and code == -signal.SIGKILL

    def close(self) -> None:
        assert self.proc.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(timeout=5)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


@contextlib.contextmanager
def fork_server() -> Iterator[ForkServer]:
    server = ForkServer()
    try:
        yield server
    finally:
        server.close()


@dataclass(frozen=True)
class Entry:
    pid: int
    run_id: str
    label: str


def read_journal(path: Path) -> list[Entry]:
    """Every task body execution recorded in the journal, in order."""
    if not path.exists():
        return []
    entries = []
    for line in path.read_text().splitlines():
        kind, pid, run_id, label = line.split(" ")
        assert kind == "S", line
        entries.append(Entry(int(pid), run_id, label))
    return entries


def sqlite_steps(path: Path, app: str, run_id: str) -> dict[str, str]:
    """Committed steps of a run (step id -> status), read with the stdlib, read-only."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = db.execute(
            "SELECT step_id, status FROM durable_steps WHERE app = ? AND run_id = ?",
            (app, run_id),
        ).fetchall()
    finally:
        db.close()
    return dict(rows)


def sqlite_run(path: Path, app: str, run_id: str) -> tuple[str, str | None, int] | None:
    """(status, output, token) of a run, read-only."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        row = db.execute(
            "SELECT status, output, token FROM durable_runs WHERE app = ? AND run_id = ?",
            (app, run_id),
        ).fetchone()
    finally:
        db.close()
    return None if row is None else (row[0], row[1], row[2])


def integrity_check(path: Path) -> str:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return str(db.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        db.close()


@dataclass
class Violations:
    """Broken promises found by a torture test; every list must stay empty."""

    lost_runs: list[str] = field(default_factory=list)
    reexecuted: list[str] = field(default_factory=list)
    wrong_output: list[str] = field(default_factory=list)
    duplicate_in_process: list[str] = field(default_factory=list)
    other: list[str] = field(default_factory=list)

    def total(self) -> int:
        return sum(len(v) for v in vars(self).values())

    def report(self) -> str:
        return "; ".join(f"{k}: {v[:5]}" for k, v in vars(self).items() if v) or "none"


@dataclass
class Snapshot:
    """Steps committed when a process was killed, and who started after it."""

    killed_pid: int
    committed: frozenset[str]


def check_history(
    run_id: str,
    journal: list[Entry],
    snapshots: list[Snapshot],
    later_pids: dict[int, list[int]],
    violations: Violations,
) -> None:
    """No committed step's body ran again after the kill that found it committed.

    ``later_pids[killed]`` are the processes started after that kill.
    """
    seen: set[tuple[int, str]] = set()
    for entry in journal:
        if entry.run_id != run_id:
            continue
        key = (entry.pid, entry.label)
        if key in seen:
            violations.duplicate_in_process.append(f"{run_id}/{entry.label} in {entry.pid}")
        seen.add(key)
    for snap in snapshots:
        after = set(later_pids.get(snap.killed_pid, ()))
        for entry in journal:
            if entry.run_id == run_id and entry.pid in after and entry.label in snap.committed:
                violations.reexecuted.append(
                    f"{run_id}/{entry.label}: committed before {snap.killed_pid} was killed, "
                    f"executed again by {entry.pid}"
                )


def trials(default: int) -> int:
    """How many trials a torture test runs: DURABLE_TORTURE_TRIALS overrides."""
    raw = os.environ.get("DURABLE_TORTURE_TRIALS")
    return int(raw) if raw else default
