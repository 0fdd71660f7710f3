"""examples/pydantic_ai_agent.py runs offline and replays from the store in a second process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "pydantic_ai_agent.py"


def _run(tmp_path: Path) -> list[str]:
    result = subprocess.run(
        [sys.executable, str(EXAMPLE)],
        cwd=tmp_path,
        env={**os.environ, "EXAMPLE_DB": str(tmp_path / "example.db")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_example_runs_then_replays_without_model_or_tools(tmp_path: Path) -> None:
    """The first process asks the model 3 times and runs both tools; the second runs nothing."""
    answer = [
        "plan: TripPlan city=Lisbon weather='sunny, 24C'",
        "hotel: Hotel Avenida, confirmation H-1042",
        "messages: 7, model requests: 3",
    ]
    assert _run(tmp_path) == [
        "  model request 1",
        "  tool: weather for Lisbon",
        "  model request 2",
        "  tool: booking a hotel in Lisbon",
        "  model request 3",
        *answer,
    ]
    assert _run(tmp_path) == answer
