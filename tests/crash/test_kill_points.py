"""SIGKILL at chosen points of a run (inside a step, between steps, mid-loop), then resume."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.crash._harness import ForkServer, integrity_check, read_journal, sqlite_steps
from tests.crash._worker import expected_output, step_labels

pytestmark = pytest.mark.crash

N_ITEMS, FAN = 5, 3
ALL = step_labels(N_ITEMS, FAN)


def _crash_then_resume(
    server: ForkServer, db_path: Path, journal_path: Path, **kill: Any
) -> tuple[list[str], list[str], set[str]]:
    """Run once with a kill point, then again; the bodies each process ran, and the steps
    committed at the kill."""
    cmd = {
        "store": {"kind": "sqlite", "path": str(db_path)},
        "journal": str(journal_path),
        "run_id": "kp",
        "n_items": N_ITEMS,
        "fan": FAN,
    }
    [first] = server.spawn(**cmd, **kill)
    assert server.wait_exit(first) == -9
    committed = set(sqlite_steps(db_path, "torture", "kp"))
    [second] = server.spawn(**cmd)
    assert server.outcome(second) == expected_output(N_ITEMS, FAN)
    journal = read_journal(journal_path)
    assert integrity_check(db_path) == "ok"
    assert set(sqlite_steps(db_path, "torture", "kp")) == set(ALL)
    return (
        [e.label for e in journal if e.pid == first],
        [e.label for e in journal if e.pid == second],
        committed,
    )


def test_kill_inside_a_step_reruns_only_that_step_and_the_rest(
    server: ForkServer, db_path: Path, journal_path: Path
) -> None:
    """A process killed inside step 3's body: the resume re-runs that step and the later ones."""
    ran1, ran2, committed = _crash_then_resume(
        server, db_path, journal_path, kill_in_body="item:i1"
    )
    assert ran1 == ["first", "item:i0", "item:i1"]
    assert committed == {"first", "item:i0"}
    assert ran2[:4] == ["item:i1", "item:i2", "item:i3", "item:i4"]
    assert sorted(ran2[4:]) == sorted(["fan", "fan#1", "fan#2", "last"])
    assert ran2[-1] == "last"


def test_kill_between_steps_never_reruns_the_committed_step(
    server: ForkServer, db_path: Path, journal_path: Path
) -> None:
    """A process killed right after step 1 committed: the resume starts at step 2."""
    ran1, ran2, committed = _crash_then_resume(
        server, db_path, journal_path, kill_after_save="first"
    )
    assert ran1 == ["first"]
    assert committed == {"first"}
    assert "first" not in ran2
    assert sorted(ran2) == sorted(ALL[1:])


def test_kill_mid_loop_processes_only_the_remaining_items(
    server: ForkServer, db_path: Path, journal_path: Path
) -> None:
    """A process killed after loop item 2 committed: the resume runs items 3 and 4 only."""
    ran1, ran2, committed = _crash_then_resume(
        server, db_path, journal_path, kill_after_save="item:i2"
    )
    assert ran1 == ["first", "item:i0", "item:i1", "item:i2"]
    assert committed == {"first", "item:i0", "item:i1", "item:i2"}
    assert ran2[:2] == ["item:i3", "item:i4"]
    assert sorted(ran2) == sorted(ALL[4:])


def test_kill_inside_the_fan_out_reruns_only_uncommitted_branches(
    server: ForkServer, db_path: Path, journal_path: Path
) -> None:
    """A process killed inside one gather branch: committed branches are not run again."""
    ran1, ran2, committed = _crash_then_resume(server, db_path, journal_path, kill_in_body="fan#2")
    assert ran1[: 1 + N_ITEMS] == ALL[: 1 + N_ITEMS]
    assert "fan#2" in ran1
    assert not committed & set(ran2)
    assert set(ran2) | committed == set(ALL)
