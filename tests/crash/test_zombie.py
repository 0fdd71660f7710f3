"""A zombie owner: paused past its lease, replaced, then woken; its writes are fenced off."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest
from tests.crash._harness import ForkServer, integrity_check, read_journal, sqlite_run

pytestmark = pytest.mark.crash


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat", "rb") as f:
        stat = f.read()
    return stat[stat.rfind(b")") + 2 :].split()[0].decode()


def _step_results(path: Path, run_id: str) -> dict[str, int]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = db.execute(
            "SELECT step_id, result FROM durable_steps WHERE run_id = ?", (run_id,)
        ).fetchall()
    finally:
        db.close()
    return {step: json.loads(result) for step, result in rows}


def test_zombie_writes_are_rejected_and_it_adopts_the_winners_output(
    server: ForkServer, db_path: Path, journal_path: Path
) -> None:
    """An owner SIGSTOPped past its lease cannot commit after SIGCONT and returns the new
    owner's output."""
    cmd = {
        "store": {"kind": "sqlite", "path": str(db_path)},
        "journal": str(journal_path),
        "run_id": "zombie",
        "n_items": 3,
        "fan": 2,
        "lease_ttl": 1.0,
        "heartbeat": 0.3,
        "pid_results": True,
    }
    [zombie] = server.spawn(**cmd, stop_in_body="item:i1")
    server.wait_mark(zombie, "stopping-in item:i1")
    try:
        deadline = time.monotonic() + 30
        while _state(zombie) != "T":
            assert time.monotonic() < deadline, "the owner never stopped"
        [winner] = server.spawn(**cmd)
        output = server.outcome(winner)
        stored = sqlite_run(db_path, "torture", "zombie")
        results = _step_results(db_path, "zombie")
    finally:
        os.kill(zombie, signal.SIGCONT)
    assert server.outcome(zombie) == output
    assert output == {"total": winner, "parts": [winner, winner]}

    journal = read_journal(journal_path)
    assert [e.label for e in journal if e.pid == zombie] == ["first", "item:i0", "item:i1"]
    assert [e.label for e in journal if e.pid == winner] == [
        "item:i1",
        "item:i2",
        "fan",
        "fan#1",
        "last",
    ]
    # Nothing the zombie tried after waking reached the store.
    assert stored is not None
    assert stored[0] == "completed"
    assert stored[2] == 2
    assert sqlite_run(db_path, "torture", "zombie") == stored
    assert _step_results(db_path, "zombie") == results
    assert results["item:i1"] == winner
    assert results["first"] == zombie
    assert integrity_check(db_path) == "ok"
