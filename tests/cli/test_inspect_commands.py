"""`durable runs show` and `durable runs list`: what they print, on every store."""

from __future__ import annotations

import json

from tests.cli.conftest import Durable


def test_show_prints_a_failed_runs_steps_and_traceback(durable: Durable) -> None:
    """A failed run shows its error with the traceback and each step's outcome."""
    result = durable("runs", "show", "checkout-o-1")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "failed" in out
    assert "builtins.ValueError: card declined for o-1" in out
    assert "Traceback (most recent call last)" in out
    assert "raise ValueError" in out
    for task in ("add", "charge"):
        assert task in out


def test_show_json_has_steps_children_and_signals(durable: Durable) -> None:
    """--json gives the run, every step with attempts and duration, its children and signals."""
    failed = json.loads(durable("runs", "show", "checkout-o-1", "--json").stdout)
    assert failed["status"] == "failed"
    assert failed["inputs"] == {"order": "o-1"}
    assert failed["error"]["type"] == "builtins.ValueError"
    assert "card declined" in failed["error"]["traceback"]
    steps = {step["task"]: step for step in failed["steps"]}
    assert steps["add"]["status"] == "completed"
    assert steps["add"]["result"] == 3
    assert steps["charge"]["status"] == "failed"
    assert steps["charge"]["attempts"] >= 1
    assert all(step["duration"] is not None for step in failed["steps"])

    batch = json.loads(durable("runs", "show", "batch-2", "--json").stdout)
    assert batch["output"] == 2
    assert [child["run_id"] for child in batch["children"]] == ["total-0-0", "total-1-1"]
    assert {child["parent_run_id"] for child in batch["children"]} == {"batch-2"}

    approval = json.loads(durable("runs", "show", "approval-o-2", "--json").stdout)
    assert approval["output"] == {"by": "ana"}
    assert [(s["index"], s["payload"], s["received"]) for s in approval["signals"]] == [
        (0, {"by": "ana"}, True),
        (1, {"by": "late"}, False),
    ]


def test_show_tables_name_children_and_signals(durable: Durable) -> None:
    """The human view lists child runs and received and unread signals."""
    batch = durable("runs", "show", "batch-2").stdout
    assert "child runs" in batch
    assert "total-0-0" in batch
    assert "total-1-1" in batch
    approval = durable("runs", "show", "approval-o-2").stdout
    assert "signals" in approval
    assert "received" in approval
    assert "not read yet" in approval
    assert '"late"' in approval


def test_show_of_an_unknown_run_exits_1(durable: Durable) -> None:
    """An unknown run id is reported, naming the run and app, with exit status 1."""
    result = durable("runs", "show", "no-such-run")
    assert result.exit_code == 1
    assert "no run 'no-such-run'" in result.stderr
    assert "'shop'" in result.stderr
