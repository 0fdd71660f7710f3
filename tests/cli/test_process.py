"""`python -m durable` in a real process: exit codes, output, env configuration, missing extra."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from signal import SIGTERM
from typing import Any

import pytest
from tests.cli import _shop
from tests.cli.test_action_commands import stored

from durable.cli import MISSING_EXTRA

ROOT = Path(__file__).parents[2]


def durable(
    *args: str, env: dict[str, str] | None = None, python: tuple[str, ...] = ("-m", "durable")
) -> subprocess.CompletedProcess[str]:
    """Run the command in a child process with the repository importable."""
    environ = {key: value for key, value in os.environ.items() if not key.startswith("DURABLE_")}
    environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *sys.path])
    return subprocess.run(
        [sys.executable, *python, *args],
        env={**environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_show_json_in_a_process(seeded: str) -> None:
    """`python -m durable runs show --json` prints the failed run's JSON and exits 0."""
    result = durable("--db", seeded, "--app", _shop.APP, "runs", "show", "checkout-o-1", "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert (doc["run_id"], doc["status"]) == ("checkout-o-1", "failed")
    assert "card declined for o-1" in doc["error"]["message"]


def test_connection_from_the_environment(seeded: str) -> None:
    """DURABLE_DB and DURABLE_APP stand for --db and --app; cancel reaches the store."""
    result = durable(
        "runs", "cancel", "approval-o-queued", env={"DURABLE_DB": seeded, "DURABLE_APP": "shop"}
    )
    assert result.returncode == 0, result.stderr
    assert stored(seeded, "approval-o-queued").status == "cancelled"


def test_unknown_run_and_usage_errors_exit_1_and_2(seeded: str) -> None:
    """An unknown run exits 1; a missing --app or an unknown option exits 2."""
    missing = durable("--db", seeded, "--app", "shop", "runs", "show", "nope")
    assert missing.returncode == 1
    assert "no run 'nope'" in missing.stderr
    no_app = durable("--db", seeded, "runs", "show", "checkout-o-1")
    assert no_app.returncode == 2
    assert "--app NAME" in no_app.stderr
    bad_option = durable("--db", seeded, "--app", "shop", "runs", "show", "--colour")
    assert bad_option.returncode == 2
    assert "No such option" in bad_option.stderr


def test_without_the_cli_extra_one_line_says_what_to_install(tmp_path: Path) -> None:
    """With click and rich not importable, the command prints the pip line and exits 2."""
    hide = (
        "import runpy, sys; sys.modules['click'] = None; sys.modules['rich'] = None; "
        "sys.argv[0] = 'durable'; runpy.run_module('durable', run_name='__main__')"
    )
    result = durable("runs", "list", python=("-c", hide))
    assert result.returncode == 2
    assert result.stderr.strip() == MISSING_EXTRA
    assert "pip install 'python-durable[cli]'" in result.stderr


def wait_for_status(db: str, run_id: str, wanted: str, process: subprocess.Popen[Any]) -> None:
    """Poll the store until the run has ``wanted`` status; fail if ``process`` exits first."""
    deadline = time.monotonic() + 120  # a hang guard, not a speed check
    while (run := stored(db, run_id)) is None or run.status != wanted:
        assert process.poll() is None, f"process exited early: {process.communicate()}"
        assert time.monotonic() < deadline, f"run {run_id!r} never became {wanted}"
        time.sleep(0.1)


_HOLD_A_RUN = """
import asyncio, sys
from tests.cli._shop import build

async def main():
    shop = build(sys.argv[1])
    async with shop.wf:
        await shop.approval(order="o-stuck")

asyncio.run(main())
"""


@pytest.mark.crash
def test_stuck_and_failed_runs_handed_to_a_worker_complete(
    seeded: str, app_module: str, tmp_path: Path
) -> None:
    """A run whose process was SIGKILLed is resumed, a failed one retried, by a worker process."""
    environ = {key: value for key, value in os.environ.items() if not key.startswith("DURABLE_")}
    environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *sys.path])
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_A_RUN, seeded], env=environ)
    try:
        wait_for_status(seeded, "approval-o-stuck", "running", holder)
    finally:
        holder.kill()
        holder.wait(timeout=60)

    shop = ("--db", seeded, "--app", "shop")
    resume = durable(*shop, "runs", "resume", "approval-o-stuck")
    assert resume.returncode == 0, resume.stderr
    assert "approval-o-stuck: queued, for a worker to continue" in resume.stdout
    assert durable(*shop, "signal", "approval-o-stuck", "approve", '"ok"').returncode == 0
    retry = durable(*shop, "runs", "retry", "checkout-o-1")
    assert retry.returncode == 0, retry.stderr
    assert stored(seeded, "checkout-o-1").status == "queued"

    environ["SHOP_CHARGE_OK"] = "1"
    command = [sys.executable, "-m", "durable", "worker", app_module, "--poll-interval", "0.1"]
    worker = subprocess.Popen(
        [*command, "--grace", "0"],
        cwd=tmp_path,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_status(seeded, "checkout-o-1", "completed", worker)
        wait_for_status(seeded, "approval-o-stuck", "completed", worker)
    finally:
        worker.send_signal(SIGTERM)
        worker.communicate(timeout=60)
    assert worker.returncode == 0
    shown = durable(*shop, "runs", "show", "checkout-o-1", "--json")
    assert json.loads(shown.stdout)["output"] == "charged o-1"
    stuck = json.loads(durable(*shop, "runs", "show", "approval-o-stuck", "--json").stdout)
    assert stuck["output"] == "ok"
