"""examples/parked_waits.py runs as a script and prints what its docstring promises."""

from __future__ import annotations

from pathlib import Path

from tests.primitives.test_examples import run_example


def test_parked_waits_example(tmp_path: Path) -> None:
    """Three runs park in one slot's queue, on a sleep then a signal; each step runs once."""
    out = run_example("parked_waits.py", tmp_path)
    assert "all three sleep at once, parked, in a queue with one slot" in out
    assert "all three wait for an answer, parked" in out
    for user in ("ann", "bob", "cy"):
        assert out.count(f"  task: welcome {user}") == 1
        assert out.count(f"  task: asked to upgrade {user}") == 1
        assert out.count(f"  task: got 'yes' from {user}") == 1
        assert f"result: {user}: yes" in out
