"""examples/web_ui.py runs and its mounted UI answers as its docstring says."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "web_ui.py"


def test_the_web_ui_example_guards_and_shows_runs(tmp_path: Path) -> None:
    """Anonymous requests get 401; the operator sees the failed order and its error."""
    result = subprocess.run(
        [sys.executable, str(EXAMPLE), "--check"],
        cwd=tmp_path,
        env={**os.environ, "EXAMPLE_DB": str(tmp_path / "shop.db")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "order B2 failed: order B2: nothing to charge (0 cents)",
        "without a password: 401",
        "failed runs as the operator: 200, only B2 listed: True",
        "run page shows the error: True",
    ]
