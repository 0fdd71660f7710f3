"""The primitives' examples run as scripts and print what their docstrings promise."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run_example(name: str, tmp_path: Path) -> list[str]:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        cwd=tmp_path,
        env={**os.environ, "EXAMPLE_DB": str(tmp_path / "example.db")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_sleep_and_signals_example(tmp_path: Path) -> None:
    """The expense waits, is reminded, gets a signal from another process and pays once."""
    out = run_example("sleep_and_signals.py", tmp_path)
    assert out.count("  task: asked a manager to approve 42") == 1
    assert out.count("  task: no answer yet, reminder sent for 42") == 1
    assert out.count("  task: paying 129.50 for 42") == 1
    assert "result: 42 paid (129.50), approved by lee" in out
    assert any(line.startswith("called again: 42 paid (129.50)") for line in out)


def test_child_workflows_example(tmp_path: Path) -> None:
    """Each child ships once although the parent ran twice; children have their own run ids."""
    out = run_example("child_workflows.py", tmp_path)
    assert (
        "children: [('ship-A7-chair', 'completed'), ('ship-A7-desk', 'completed'), "
        "('ship-A7-lamp', 'completed')]"
    ) in out
    assert (
        "result: ['TRACK-LAMP', 'TRACK-DESK', 'TRACK-CHAIR', 'invoice for A7: 3 shipments']"
    ) in out
    assert (
        "executions: {'book_courier chair': 1, 'book_courier desk': 1, "
        "'book_courier lamp': 1, 'send_invoice': 2}"
    ) in out


def test_cancel_and_inspect_example(tmp_path: Path) -> None:
    """The batch is cancelled mid-way, refuses a plain call, and resume processes each item once."""
    out = run_example("cancel_and_inspect.py", tmp_path)
    processed = [line for line in out if line.startswith("  task: processing item")]
    assert processed == [f"  task: processing item {i}" for i in range(5)]
    assert out.index("cancelling batch-nightly") < out.index("  task: processing item 4")
    assert any(line.startswith("  run batch-nightly: cancelled") for line in out)
    assert "calling it again raises RunCancelledError" in out
    assert "resumed result: 30" in out
    assert "runs: [('batch-nightly', 'completed')]" in out


def test_idempotent_payments_example(tmp_path: Path) -> None:
    """Killed after the provider charged, the step runs again with the same key: one charge."""
    out = run_example("idempotent_payments.py", tmp_path)
    charged = [line for line in out if line.startswith("    charged A7")]
    assert len(charged) == 2
    assert charged[0] == charged[1]  # the same key both times, and the same charge
    assert charged[0].endswith(": ch_1")
    assert "with key 'dk1-" in charged[0]
    assert "    *** SIGKILL ***" in out
    assert any(line.startswith("provider ledger: 1 charge(s)") for line in out)
