"""Store outages are waited out: the database stops and starts again while runs execute.

Workers, runs started with ``start()`` and direct callers all keep going
through the outage; no error reaches an awaiting caller and no committed
step runs again.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections import defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import ModuleType
from urllib.parse import urlsplit

import pytest
from tests import _services
from tests._proxy import TcpProxy

pytestmark = pytest.mark.crash

HERE = Path(__file__).resolve().parent
OUTAGE_SECONDS = 20.0


class PrivateServer:
    """A PostgreSQL server of the test's own, in a temporary directory: ours to stop.

    The shared test server is left alone; this one is made with ``initdb`` as
    the ``postgres`` user (PostgreSQL refuses to run as root).
    """

    def __init__(self) -> None:
        binaries = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
        if not binaries or shutil.which("runuser") is None or os.geteuid() != 0:
            _services.unavailable(
                "a private PostgreSQL server needs root, runuser and /usr/lib/postgresql/*/bin"
            )
        self.bin = binaries[-1].parent
        # Not under pytest's tmp_path: the postgres user cannot enter root's.
        self.directory = Path(tempfile.mkdtemp(prefix="durable-pg-"))
        shutil.chown(self.directory, "postgres")
        self.data = self.directory / "data"
        self.port = _free_port()
        self.dsn = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, *command: str) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *command]

    async def create(self) -> None:
        await _run(
            *self._as_postgres(
                str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres"
            )
        )

    async def start(self) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        await _run(
            *self._as_postgres(
                str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options, "-w", "start"
            )
        )

    async def stop(self, *, check: bool = True) -> None:
        await _run(
            *self._as_postgres(
                str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"
            ),
            check=check,
        )

    async def remove(self) -> None:
        await self.stop(check=False)
        shutil.rmtree(self.directory, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _run(*command: str, check: bool = True) -> None:
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, err = await process.communicate()
    assert process.returncode == 0 or not check, f"{command}: {err.decode()}"


def _load_app(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.syspath_prepend(str(HERE))
    monkeypatch.delitem(sys.modules, "_outage_app", raising=False)
    return importlib.import_module("_outage_app")


def _executions(journal: Path) -> dict[tuple[str, int], list[float]]:
    """Start times of every execution of each (run, step)."""
    runs: dict[tuple[str, int], list[float]] = defaultdict(list)
    for line in journal.read_text().splitlines():
        run_id, k, _pid, at = line.split()
        runs[run_id, int(k)].append(float(at))
    return runs


async def _runs_through_outages(
    db: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    outage: Callable[[], Awaitable[None]],
    restore: Callable[[], Awaitable[None]],
    app_name: str = "outage",
) -> None:
    """Workers, started runs and direct callers of one app, while the store goes away twice."""
    journal = tmp_path / "journal"
    env = {"OUTAGE_DB": db, "OUTAGE_JOURNAL": str(journal), "OUTAGE_APP": app_name}
    app = _load_app(env, monkeypatch)
    worker_command = [sys.executable, "-m", "durable", "worker", "_outage_app:wf"]
    workers = [
        subprocess.Popen(worker_command, cwd=HERE, env={**os.environ, **env})  # noqa: ASYNC220
        for _ in range(2)
    ]
    enqueued = list(range(24))
    started = list(range(100, 106))
    direct = list(range(200, 204))
    try:
        async with app.wf:
            handles = [await app.job.enqueue(n=n) for n in enqueued]
            handles += [await app.job.start(n=n) for n in started]
            waiting = asyncio.gather(
                *(handle.result(timeout=600) for handle in handles),
                *(app.job(n=n) for n in direct),
            )
            await asyncio.sleep(2.0)
            for _ in range(2):
                await outage()
                await asyncio.sleep(OUTAGE_SECONDS)
                await restore()
                await asyncio.sleep(3.0)
            results = await waiting
            runs = {run_id: await app.wf.get_run(run_id) for run_id, _ in _executions(journal)}
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        codes = [worker.wait(timeout=120) for worker in workers]
    finally:
        for worker in workers:
            worker.kill()
            worker.wait()

    per_step = sum(range(app.STEPS))
    assert results == [n * per_step for n in [*enqueued, *started, *direct]]
    assert codes == [0, 0], "a worker stopped by SIGTERM exits 0"
    committed = {
        (run_id, k): step.finished_at.timestamp()
        for run_id, run in runs.items()
        for k, step in enumerate(sorted(run.steps, key=lambda step: step.position))
        if step.finished_at is not None
    }
    for key, starts in _executions(journal).items():
        assert key in committed, f"step {key} ran but was never recorded"
        late = [at for at in starts if at > committed[key]]
        assert not late, f"step {key} ran again after it was committed"


async def test_postgresql_stopped_twice_while_runs_execute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server stopped (fast shutdown) for 20 s, twice."""
    server = PrivateServer()
    try:
        await server.create()
        await server.start()
        await _runs_through_outages(server.dsn, tmp_path, monkeypatch, server.stop, server.start)
    finally:
        await server.remove()


async def test_redis_unreachable_twice_while_runs_execute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every connection to Redis dropped and refused for 20 s, twice (through a proxy)."""
    url = urlsplit(await _services.redis_url())
    proxy = TcpProxy(url.hostname or "127.0.0.1", url.port or 6379)
    await proxy.up()
    prefix = _services.unique_name("outage")
    db = f"redis://127.0.0.1:{proxy.port}{url.path or '/0'}?prefix={prefix}"
    try:
        await _runs_through_outages(db, tmp_path, monkeypatch, proxy.down, proxy.up)
    finally:
        await proxy.close()
        await _services.delete_redis_prefix(url.geturl(), prefix)
