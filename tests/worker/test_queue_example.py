"""The README's two-process queue example: a worker process and a starter process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.crash

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "queues"


def test_a_starter_and_a_worker_process(tmp_path: Path) -> None:
    """Orders enqueued by one process are executed by a `durable worker` process."""
    env = {**os.environ, "SHOP_DB": str(tmp_path / "shop.db")}
    worker = subprocess.Popen(
        [sys.executable, "-m", "durable", "worker", "shop:wf", "--queue", "orders"],
        cwd=EXAMPLE,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        starter = subprocess.run(
            [sys.executable, "starter.py"],
            cwd=EXAMPLE,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert starter.returncode == 0, starter.stderr
        lines = starter.stdout.splitlines()
        assert lines[0] == "enqueued order-1, order-2, order-3, order-4, order-5, order-vip"
        assert lines[1] == "order-vip charge-vip parcel-vip"
        assert lines[2:] == [f"order-{n} completed parcel-{n}" for n in range(1, 6)]
    finally:
        worker.send_signal(signal.SIGTERM)
        _, log = worker.communicate(timeout=60)
    assert worker.returncode == 0, log
    assert "serving app 'shop', queues: orders" in log
