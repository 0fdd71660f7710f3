"""The torture trials, shared by the pytest suite and the long-running ``torture.py`` script.

Each function runs trials against one store and returns the violations it
found; a caller asserts there are none (or prints them).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tests.crash._harness import (
    ForkServer,
    Snapshot,
    Violations,
    WorkerError,
    check_history,
    integrity_check,
    read_journal,
    sqlite_run,
    sqlite_steps,
)
from tests.crash._worker import expected_output, step_labels

APP = "torture"


class StoreView(Protocol):
    """Read access to what a store has committed, bypassing the code under test."""

    spec: dict[str, Any]

    def steps(self, run_id: str) -> dict[str, str]: ...

    def run(self, run_id: str) -> tuple[str, str | None, int] | None: ...

    def integrity(self) -> str: ...


@dataclass
class SQLiteView:
    path: Path

    @property
    def spec(self) -> dict[str, Any]:
        return {"kind": "sqlite", "path": str(self.path)}

    def steps(self, run_id: str) -> dict[str, str]:
        return sqlite_steps(self.path, APP, run_id)

    def run(self, run_id: str) -> tuple[str, str | None, int] | None:
        return sqlite_run(self.path, APP, run_id)

    def integrity(self) -> str:
        return integrity_check(self.path)


@dataclass
class PostgresView:
    dsn: str
    schema: str
    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)
    _conn: Any = None

    @property
    def spec(self) -> dict[str, Any]:
        return {"kind": "postgres", "dsn": self.dsn, "schema": self.schema}

    def _fetch(self, sql: str, *args: Any) -> list[Any]:
        import asyncpg

        async def go() -> list[Any]:
            if self._conn is None:
                self._conn = await asyncpg.connect(self.dsn)
            return list(await self._conn.fetch(sql, *args))

        return self.loop.run_until_complete(go())

    def steps(self, run_id: str) -> dict[str, str]:
        rows = self._fetch(
            f'SELECT step_id, status FROM "{self.schema}".steps WHERE app = $1 AND run_id = $2',
            APP,
            run_id,
        )
        return {r[0]: r[1] for r in rows}

    def run(self, run_id: str) -> tuple[str, str | None, int] | None:
        rows = self._fetch(
            f'SELECT status, output, token FROM "{self.schema}".runs '
            "WHERE app = $1 AND run_id = $2",
            APP,
            run_id,
        )
        return None if not rows else (rows[0][0], rows[0][1], rows[0][2])

    def integrity(self) -> str:
        return "ok"

    def close(self) -> None:
        if self._conn is not None:
            self.loop.run_until_complete(self._conn.close())
        self.loop.close()


@dataclass
class Shape:
    """The size of the torture workflow and how long its steps pause."""

    n_items: int = 6
    fan: int = 4
    delay: float = 0.003

    def command(self, view: StoreView, journal: Path, run_id: str, seed: float) -> dict[str, Any]:
        return {
            "store": view.spec,
            "journal": str(journal),
            "run_id": run_id,
            "n_items": self.n_items,
            "fan": self.fan,
            "delay": self.delay,
            "seed": seed,
        }


@dataclass
class Figures:
    trials: int = 0
    kills: int = 0
    processes: int = 0
    seconds: float = 0.0
    violations: Violations = field(default_factory=Violations)


def _check_final(
    view: StoreView, run_id: str, output: Any, shape: Shape, violations: Violations
) -> None:
    expected = expected_output(shape.n_items, shape.fan)
    if output != expected:
        violations.wrong_output.append(f"{run_id}: returned {output!r}")
    stored = view.run(run_id)
    if stored is None or stored[0] != "completed":
        violations.lost_runs.append(f"{run_id}: stored as {stored!r}")
    elif stored[1] is None or json.loads(stored[1]) != expected:
        violations.wrong_output.append(f"{run_id}: stored output {stored[1]!r}")
    steps = view.steps(run_id)
    labels = step_labels(shape.n_items, shape.fan)
    if set(steps) != set(labels) or set(steps.values()) != {"completed"}:
        violations.other.append(f"{run_id}: steps {sorted(steps.items())}")


def _resume(
    server: ForkServer, cmd: dict[str, Any], run_id: str, violations: Violations
) -> tuple[int, Any]:
    [pid] = server.spawn(**cmd)
    try:
        return pid, server.outcome(pid)
    except WorkerError as exc:
        violations.lost_runs.append(f"{run_id}: resume failed: {exc}")
        return pid, None


def random_kills(
    server: ForkServer,
    view: StoreView,
    journal: Path,
    *,
    trials: int,
    seed: int,
    shape: Shape | None = None,
    max_kills: int = 3,
) -> Figures:
    """Kill runs at random moments (1 to ``max_kills`` times each), then let them finish.

    A kill lands uniformly within the time one uninterrupted run takes, measured first.
    """
    shape = shape or Shape()
    rng = random.Random(seed)
    figures = Figures()
    started = time.monotonic()
    calibration = f"random-{seed}-calibration"
    [pid] = server.spawn(**shape.command(view, journal / f"{calibration}.log", calibration, 0))
    server.outcome(pid)
    window = (time.monotonic() - started) * 0.9
    for trial in range(trials):
        run_id = f"random-{seed}-{trial}"
        cmd = shape.command(view, journal / f"{run_id}.log", run_id, rng.random())
        pids: list[int] = []
        snapshots: list[Snapshot] = []
        for _ in range(rng.randint(1, max_kills)):
            [pid] = server.spawn(**cmd)
            pids.append(pid)
            time.sleep(rng.uniform(0, window))
            if server.kill(pid):
                figures.kills += 1
            snapshots.append(Snapshot(pid, frozenset(view.steps(run_id))))
        pid, output = _resume(server, cmd, run_id, figures.violations)
        pids.append(pid)
        later = {p: pids[i + 1 :] for i, p in enumerate(pids)}
        check_history(
            run_id, read_journal(journal / f"{run_id}.log"), snapshots, later, figures.violations
        )
        _check_final(view, run_id, output, shape, figures.violations)
        figures.trials += 1
        figures.processes += len(pids)
    if view.integrity() != "ok":
        figures.violations.other.append(f"integrity_check: {view.integrity()}")
    figures.seconds = time.monotonic() - started
    return figures


def write_sweep(
    server: ForkServer, view: StoreView, journal: Path, *, shape: Shape | None = None
) -> Figures:
    """Kill a run before, then after, its 1st, 2nd, ... store write until it completes."""
    shape = shape or Shape(delay=0.0)
    figures = Figures()
    started = time.monotonic()
    for when in ("before", "after"):
        for n in range(1, 500):
            run_id = f"sweep-{when}-{n}"
            cmd = shape.command(view, journal / f"{run_id}.log", run_id, 0.0)
            [pid] = server.spawn(**cmd, kill_write=n, kill_when=when)
            code = server.wait_exit(pid)
            figures.trials += 1
            figures.processes += 1
            if code == 0:
                # The run completed in fewer than n writes: the sweep is over.
                _check_final(view, run_id, server.results.get(pid), shape, figures.violations)
                break
            if code != -9:
                figures.violations.other.append(f"{run_id}: exit {code} {server.errors.get(pid)}")
            figures.kills += 1
            snapshot = Snapshot(pid, frozenset(view.steps(run_id)))
            resumed, output = _resume(server, cmd, run_id, figures.violations)
            figures.processes += 1
            check_history(
                run_id,
                read_journal(journal / f"{run_id}.log"),
                [snapshot],
                {pid: [resumed]},
                figures.violations,
            )
            _check_final(view, run_id, output, shape, figures.violations)
        else:
            figures.violations.other.append(f"sweep {when}: the run never completed")
    if view.integrity() != "ok":
        figures.violations.other.append(f"integrity_check: {view.integrity()}")
    figures.seconds = time.monotonic() - started
    return figures


def races(
    server: ForkServer,
    view: StoreView,
    journal: Path,
    *,
    processes: int,
    trials: int,
    seed: int,
    shape: Shape | None = None,
) -> Figures:
    """``processes`` processes call the same run id at once; every body runs once."""
    shape = shape or Shape(n_items=3, fan=3, delay=0.002)
    rng = random.Random(seed)
    figures = Figures()
    started = time.monotonic()
    labels = step_labels(shape.n_items, shape.fan)
    for trial in range(trials):
        run_id = f"race{processes}-{seed}-{trial}"
        cmd = shape.command(view, journal / f"{run_id}.log", run_id, rng.random())
        pids = server.spawn(**cmd, count=processes)
        outputs = []
        for pid in pids:
            try:
                outputs.append(server.outcome(pid))
            except WorkerError as exc:
                figures.violations.lost_runs.append(f"{run_id}: caller {pid}: {exc}")
        if any(out != outputs[0] for out in outputs):
            figures.violations.wrong_output.append(f"{run_id}: callers disagree: {outputs}")
        counts = Counter(
            e.label for e in read_journal(journal / f"{run_id}.log") if e.run_id == run_id
        )
        for label in labels:
            if counts[label] != 1:
                figures.violations.reexecuted.append(f"{run_id}/{label} ran {counts[label]}x")
        _check_final(view, run_id, outputs[0] if outputs else None, shape, figures.violations)
        figures.trials += 1
        figures.processes += processes
    if view.integrity() != "ok":
        figures.violations.other.append(f"integrity_check: {view.integrity()}")
    figures.seconds = time.monotonic() - started
    return figures
