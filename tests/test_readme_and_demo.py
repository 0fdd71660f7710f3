"""The README's quick start and the crash demo run as documented."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _quick_start() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None
    return match.group(1)


def test_readme_quick_start_runs_then_replays(tmp_path: Path) -> None:
    """The quick start runs both steps, and a second process replays without running any."""
    script = tmp_path / "quickstart.py"
    script.write_text(_quick_start())
    first = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [
        "fetching https://api.example.com/users",
        "saving 2 users",
    ]
    assert (tmp_path / "durable.db").exists()
    second = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert second.returncode == 0, second.stderr
    assert second.stdout == ""


def test_demo_kills_and_resumes(tmp_path: Path) -> None:
    """The demo's SIGKILLed pipeline resumes: pages 1-3 replay, only page 4 runs twice."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "demo.py")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "exit code -9" in out
    assert "replayed from SQLite, not rerun: fetch_page 1, fetch_page 2, fetch_page 3" in out
    assert "ran twice (in flight at SIGKILL): fetch_page 4" in out
    assert "report: " in out
