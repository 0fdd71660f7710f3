"""``wf.recover()`` in a fresh process resumes the runs whose owners died, from stored inputs."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
from tests.crash._harness import ForkServer, integrity_check, read_journal, sqlite_run
from tests.crash._worker import expected_output

pytestmark = pytest.mark.crash


def test_recover_resumes_dead_owners_runs_and_skips_live_ones(
    server: ForkServer, db_path: Path, journal_path: Path
) -> None:
    """Runs of SIGKILLed owners finish through recover(); a live owner's run is left alone."""
    base = {
        "store": {"kind": "sqlite", "path": str(db_path)},
        "journal": str(journal_path),
        "n_items": 3,
        "fan": 2,
    }
    killed = []
    for run_id in ("dead-1", "dead-2"):
        [pid] = server.spawn(**base, run_id=run_id, kill_after_save="item:i0")
        assert server.wait_exit(pid) == -signal.SIGKILL
        killed.append(pid)
    [live] = server.spawn(**base, run_id="live", stop_in_body="item:i1")
    server.wait_mark(live, "stopping-in item:i1")
    try:
        [recoverer] = server.spawn(**base, run_id="", recover=True)
        assert server.outcome(recoverer) == ["dead-1", "dead-2"]
        assert sqlite_run(db_path, "torture", "live")[0] == "running"  # type: ignore[index]
    finally:
        os.kill(live, signal.SIGCONT)
    assert server.outcome(live) == expected_output(3, 2)

    for run_id in ("dead-1", "dead-2", "live"):
        status, output, _ = sqlite_run(db_path, "torture", run_id)  # type: ignore[misc]
        assert status == "completed"
        assert json.loads(output) == expected_output(3, 2)  # type: ignore[arg-type]
    journal = read_journal(journal_path)
    for run_id in ("dead-1", "dead-2"):
        assert [e.label for e in journal if e.run_id == run_id and e.pid == recoverer] == [
            "item:i1",
            "item:i2",
            "fan",
            "fan#1",
            "last",
        ]
    assert not [e for e in journal if e.run_id == "live" and e.pid == recoverer]
    assert integrity_check(db_path) == "ok"
