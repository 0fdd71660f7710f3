"""examples/retention.py runs as a script and prints what its docstring promises."""

from __future__ import annotations

from pathlib import Path

from tests.primitives.test_examples import run_example


def test_retention_example(tmp_path: Path) -> None:
    """A waiting run is refused and kept; finished runs are deleted, counted, then pruned."""
    out = run_example("retention.py", tmp_path)
    assert "order 4 failed: card declined" in out
    refused = [line for line in out if line.startswith("refused: ")]
    assert len(refused) == 1
    assert "'refund-9'" in refused[0]
    assert "running" in refused[0]
    assert (
        "after delete_run: [('order-2', 'completed'), ('order-3', 'completed'), "
        "('order-4', 'failed'), ('refund-9', 'running')]"
    ) in out
    assert "would prune: 3" in out
    assert "pruned failed: 1" in out
    assert "  progress: 2 deleted" in out
    assert "pruned: 2" in out
    assert "left: [('refund-9', 'running')]" in out
    assert out[-1] == "refund of 9 approved by lee"
