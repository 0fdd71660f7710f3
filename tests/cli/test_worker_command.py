"""`durable worker` / `python -m durable worker`: arguments and errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def durable(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "durable", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_without_a_command_it_prints_usage_and_exits_2(tmp_path: Path) -> None:
    result = durable(cwd=tmp_path)
    assert result.returncode == 2
    assert "Usage: durable" in result.stderr


def test_worker_help_names_its_options(tmp_path: Path) -> None:
    result = durable("worker", "--help", cwd=tmp_path)
    assert result.returncode == 0
    for option in ("module:attr", "--queue", "--concurrency", "--grace", "--poll-interval"):
        assert option in result.stdout


def test_a_bad_app_path_is_named(tmp_path: Path) -> None:
    (tmp_path / "notapp.py").write_text("wf = 42\n")
    missing = durable("worker", "nosuchmodule:wf", cwd=tmp_path)
    assert missing.returncode == 1
    assert "cannot import 'nosuchmodule'" in missing.stderr
    wrong = durable("worker", "notapp:wf", cwd=tmp_path)
    assert wrong.returncode == 1
    assert "'notapp:wf' is int, not a durable.Workflow" in wrong.stderr
    absent = durable("worker", "notapp:other", cwd=tmp_path)
    assert "has no attribute 'other'" in absent.stderr
    shape = durable("worker", "notapp", cwd=tmp_path)
    assert shape.returncode == 2
    assert "expected module:attr" in shape.stderr
