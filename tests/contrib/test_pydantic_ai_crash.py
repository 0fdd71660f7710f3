"""A process SIGKILLed mid-agent: the next process resumes without repeating committed steps."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.crash

ROOT = Path(__file__).resolve().parents[2]
CHILD = Path(__file__).with_name("_agent_child.py")
DEADLINE = 60.0


def _spawn(db: Path, journal: Path, *flags: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, str(CHILD), str(db), str(journal), *flags],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _journal(path: Path) -> list[tuple[int, str]]:
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    return [(int(pid), label) for pid, label in (line.split(" ", 1) for line in lines)]


def _wait_for(path: Path, label: str, proc: subprocess.Popen[str]) -> None:
    """Wait until the journal holds ``label`` from ``proc``; fail if it dies first."""
    deadline = time.monotonic() + DEADLINE
    while (proc.pid, label) not in _journal(path):
        if proc.poll() is not None:
            _, err = proc.communicate()
            pytest.fail(f"the child exited ({proc.returncode}) before {label!r}:\n{err}")
        if time.monotonic() > deadline:
            proc.kill()
            proc.communicate()
            pytest.fail(f"the child never reached {label!r}")
        time.sleep(0.01)


def test_sigkill_after_two_of_three_tool_calls_resumes_with_the_third(tmp_path: Path) -> None:
    """Killed inside the 3rd tool: the resume repeats no model request and no earlier tool."""
    db, journal = tmp_path / "agent.db", tmp_path / "journal.txt"

    first = _spawn(db, journal, "--hang-in-third-tool")
    _wait_for(journal, "shout:c", first)
    first.send_signal(signal.SIGKILL)
    first.communicate()
    assert first.returncode == -signal.SIGKILL
    ran_first = [label for pid, label in _journal(journal) if pid == first.pid]
    assert ran_first == ["model:1", "lookup:a", "model:2", "lookup:b", "model:3", "shout:c"]

    second = _spawn(db, journal)
    out, err = second.communicate(timeout=DEADLINE)
    assert second.returncode == 0, err
    assert json.loads(out) == {"output": "found a | found b | C", "requests": 4}
    ran_second = [label for pid, label in _journal(journal) if pid == second.pid]
    # The third tool was in flight, so it runs again; then only the final model request.
    assert ran_second == ["shout:c", "model:4"]
