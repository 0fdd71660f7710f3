"""Benchmark workloads, each run in its own process by ``run.py``.

Usage: ``python benchmarks/workloads.py NAME JSON_PARAMS``. The last line
printed on stdout is a JSON object with the measurements; timings are taken
inside the process, after imports and store opening unless said otherwise.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

# The step row the raw limits write: about the size of a durable step record.
_RAW_TABLE = """CREATE TABLE steps (
    run_id TEXT NOT NULL, step_id TEXT NOT NULL, result TEXT, finished_at REAL NOT NULL,
    PRIMARY KEY (run_id, step_id)) WITHOUT ROWID"""
_RAW_INSERT = "INSERT INTO steps (run_id, step_id, result, finished_at) VALUES (?, ?, ?, ?)"
_PG_TABLE = """CREATE TABLE steps (
    run_id text NOT NULL, step_id text NOT NULL, result text, finished_at double precision,
    PRIMARY KEY (run_id, step_id))"""
_PG_INSERT = "INSERT INTO steps (run_id, step_id, result, finished_at) VALUES ($1, $2, $3, $4)"


def _rss_kb(field: str = "VmRSS") -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _heavy_modules() -> list[str]:
    return [m for m in ("asyncpg", "redis", "pydantic") if m in sys.modules]


# -- raw limits ------------------------------------------------------------------


def raw_sqlite3(path: str, n: int, sync: str) -> float:
    """µs per single-row INSERT committed on its own, stdlib sqlite3."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL").fetchone()
    db.execute(f"PRAGMA synchronous = {sync}")
    db.execute(_RAW_TABLE)
    t0 = time.perf_counter()
    for i in range(n):
        db.execute(_RAW_INSERT, ("run-1", f"step#{i}", str(i), time.time()))
    elapsed = time.perf_counter() - t0
    db.close()
    return elapsed / n * 1e6


async def raw_aiosqlite(path: str, n: int, sync: str) -> float:
    """µs per single-row INSERT committed on its own (autocommit: one thread hop)."""
    import aiosqlite

    async with aiosqlite.connect(path, isolation_level=None) as db:
        await db.execute("PRAGMA journal_mode = WAL")
        await db.execute(f"PRAGMA synchronous = {sync}")
        await db.execute(_RAW_TABLE)
        t0 = time.perf_counter()
        for i in range(n):
            await db.execute(_RAW_INSERT, ("run-1", f"step#{i}", str(i), time.time()))
        elapsed = time.perf_counter() - t0
    return elapsed / n * 1e6


# -- durable workflows -------------------------------------------------------------


class Bench:
    """One app with the benchmark's tasks and workflows, on a given store."""

    def __init__(self, store: Any) -> None:
        from durable import Workflow

        self.wf = wf = Workflow("bench", db=store)
        self.crash_at: int | None = None
        self.body_started = 0.0
        self.last_called = 0.0

        @wf.task
        async def step(i: int) -> int:
            if i == self.crash_at:
                os._exit(17)
            return i

        @wf.workflow(id="seq-{n}{tag}")
        async def sequential(n: int, tag: str = "") -> int:
            self.body_started = time.perf_counter()
            total = 0
            for i in range(n):
                if i == n - 1:
                    self.last_called = time.perf_counter()
                total += await step(i)
            return total

        @wf.workflow(id="conc-{k}")
        async def concurrent(k: int, steps: int) -> int:
            total = 0
            for i in range(steps):
                total += await step(i)
            return total

        self.sequential = sequential
        self.concurrent = concurrent


def _sqlite_store(path: str, sync: str = "FULL") -> Any:
    from durable import SQLiteStore

    return SQLiteStore(path, synchronous=sync)  # type: ignore[arg-type]


async def durable_sequential(store: Any, n: int) -> float:
    """µs per step of one first execution of an n-step workflow (claim and finish included)."""
    bench = Bench(store)
    async with bench.wf:
        return await _first_execution(bench, n)


async def _first_execution(bench: Bench, n: int, tag: str = "") -> float:
    t0 = time.perf_counter()
    await bench.sequential(n=n, tag=tag)
    elapsed = time.perf_counter() - t0
    return elapsed / n * 1e6


async def _median_rounds(
    rounds: int, measures: dict[str, Callable[[int], Awaitable[float]]]
) -> dict[str, Any]:
    """Each series' median, and each series' samples round by round.

    Every round measures every series once, one after the other, so that a
    slow phase of the machine hits all of them; the order is reversed every
    other round, so that no series always goes first (or right after another
    one's setup). A ratio is then taken within each round: see ``run.py``.
    """
    samples: dict[str, list[float]] = {name: [] for name in measures}
    for r in range(rounds):
        order = list(measures.items())
        for name, measure in order if r % 2 == 0 else reversed(order):
            gc.collect()
            samples[name].append(await measure(r))
    medians: dict[str, Any] = {name: statistics.median(v) for name, v in samples.items()}
    return {**medians, "rounds": samples}


# -- workloads -----------------------------------------------------------------------


async def seq_sqlite(params: dict[str, Any]) -> dict[str, Any]:
    """A: raw commits and durable steps, FULL and NORMAL, interleaved rounds."""
    n, rounds = params["steps"], params["rounds"]
    with tempfile.TemporaryDirectory(dir=params.get("dir")) as tmp:

        def fresh(kind: str, r: int) -> str:
            return os.path.join(tmp, f"{kind}-{r}.db")

        def series(sync: str) -> dict[str, Callable[[int], Awaitable[float]]]:
            async def sqlite3_(r: int) -> float:
                return raw_sqlite3(fresh(f"s3{sync}", r), n, sync)

            async def aiosqlite_(r: int) -> float:
                return await raw_aiosqlite(fresh(f"aio{sync}", r), n, sync)

            async def durable_(r: int) -> float:
                return await durable_sequential(_sqlite_store(fresh(f"d{sync}", r), sync), n)

            return {
                f"sqlite3_{sync}": sqlite3_,
                f"aiosqlite_{sync}": aiosqlite_,
                f"durable_{sync}": durable_,
            }

        return await _median_rounds(rounds, {**series("FULL"), **series("NORMAL")})


async def _tick(lags_ms: list[float], stop: asyncio.Event) -> None:
    """Sleep 1 ms over and over, noting how much later than asked each wake-up came."""
    while not stop.is_set():
        t0 = time.perf_counter()
        await asyncio.sleep(0.001)
        lags_ms.append((time.perf_counter() - t0) * 1e3 - 1.0)


async def _ticking(work: Awaitable[Any]) -> tuple[list[float], float]:
    """The ticker's lags while ``work`` runs, and how long it ran."""
    lags: list[float] = []
    stop = asyncio.Event()
    ticker = asyncio.create_task(_tick(lags, stop))
    t0 = time.perf_counter()
    try:
        await work
    finally:
        elapsed = time.perf_counter() - t0
        stop.set()
        await ticker
    return lags, elapsed


def _p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]


async def loop_lag(params: dict[str, Any]) -> dict[str, Any]:
    """A's loop lag: a 1 ms ticker beside a sequential FULL workflow, then idle as long.

    The idle series is the floor of this machine (timer resolution, scheduler):
    what the store adds is the difference.
    """
    n, rounds = params["steps"], params["rounds"]
    busy: list[float] = []
    busy_p50: list[float] = []
    idle: list[float] = []
    with tempfile.TemporaryDirectory(dir=params.get("dir")) as tmp:
        for r in range(rounds):
            gc.collect()
            bench = Bench(_sqlite_store(os.path.join(tmp, f"lag-{r}.db"), "FULL"))
            async with bench.wf:
                lags, elapsed = await _ticking(bench.sequential(n=n))
            busy.append(_p99(lags))
            busy_p50.append(statistics.median(lags))
            lags, _ = await _ticking(asyncio.sleep(elapsed))
            idle.append(_p99(lags))
    return {
        "busy_p99_ms": statistics.median(busy),
        "busy_p50_ms": statistics.median(busy_p50),
        "idle_p99_ms": statistics.median(idle),
        "rounds": {"busy_p99_ms": busy, "idle_p99_ms": idle},
    }


async def prepare(params: dict[str, Any]) -> dict[str, Any]:
    """Run the sequential workflow to completion, or until a crash at ``crash_at``."""
    bench = Bench(_sqlite_store(params["path"]))
    bench.crash_at = params.get("crash_at")
    async with bench.wf:
        await bench.sequential(n=params["steps"])
    return {}


async def replay(params: dict[str, Any]) -> dict[str, Any]:
    """B: call a prepared run id again in a fresh process."""
    n = params["steps"]
    bench = Bench(_sqlite_store(params["path"]))
    async with bench.wf:
        t0 = time.perf_counter()
        await bench.sequential(n=n)
        elapsed = time.perf_counter() - t0
    out: dict[str, Any] = {"call_us_per_step": elapsed / n * 1e6}
    if bench.body_started:
        # The body ran (a resumed run): the span up to the last call is pure replay.
        out["body_replay_us_per_step"] = (bench.last_called - bench.body_started) / (n - 1) * 1e6
    return out


async def _concurrent(bench: Bench, workflows: int, steps: int) -> dict[str, Any]:
    rss_before = _rss_kb()
    t0 = time.perf_counter()
    results = await asyncio.gather(
        *(bench.concurrent(k=k, steps=steps) for k in range(workflows)),
        return_exceptions=True,
    )
    elapsed = time.perf_counter() - t0
    failures = [r for r in results if isinstance(r, BaseException)]
    return {
        "steps_per_s": workflows * steps / elapsed,
        "failed": len(failures),
        "first_failure": repr(failures[0]) if failures else None,
        "rss_kb": _rss_kb(),
        "rss_before_kb": rss_before,
        "peak_rss_kb": _rss_kb("VmHWM"),
    }


async def concurrent(params: dict[str, Any]) -> dict[str, Any]:
    """C: many workflows started together on one SQLite store."""
    bench = Bench(_sqlite_store(params["path"], params.get("sync", "FULL")))
    async with bench.wf:
        return await _concurrent(bench, params["workflows"], params["steps"])


async def one_step(params: dict[str, Any]) -> dict[str, Any]:
    """D: a whole process running a 1-step workflow (timed from outside)."""
    from durable import SQLiteStore, Workflow

    wf = Workflow("cold", db=SQLiteStore(params["path"]))

    @wf.task
    async def hello() -> str:
        return "hi"

    @wf.workflow(id="one")
    async def main() -> str:
        return await hello()

    async with wf:
        await main()
    return {"heavy": _heavy_modules()}


async def suspended(params: dict[str, Any]) -> dict[str, Any]:
    """E: RSS per run suspended on a signal (or a sleep) in this process."""
    from durable import Workflow

    wf = Workflow("idle", db=_sqlite_store(params["path"], "NORMAL"))
    waits_on: str | None = None
    if hasattr(wf, "signal"):
        waits_on = "signal"
    elif hasattr(wf, "sleep"):
        waits_on = "sleep"
    if waits_on is None:
        return {"per_run_kb": None}

    @wf.workflow(id="idle-{k}")
    async def idle(k: int) -> None:
        if waits_on == "signal":
            await wf.signal("go")  # type: ignore[attr-defined]
        else:
            await wf.sleep(3600)  # type: ignore[attr-defined]

    count = params["runs"]
    async with wf:
        gc.collect()
        before = _rss_kb()
        tasks = [asyncio.ensure_future(idle(k=k)) for k in range(count)]
        # Suspended means: every run claimed and parked on its wait.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            running = await wf.store.list_runs("idle", status="running", limit=count + 1)
            if len(running) >= count:
                break
        await asyncio.sleep(0.5)
        gc.collect()
        after = _rss_kb()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return {"per_run_kb": (after - before) / count, "waits_on": waits_on}


# -- PostgreSQL ------------------------------------------------------------------------


async def _pg_schema(dsn: str, schema: str, *, drop: bool) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        if not drop:
            await conn.execute(f'CREATE SCHEMA "{schema}"')
    finally:
        await conn.close()


def _pg_store(dsn: str, schema: str, pool: int = 10) -> Any:
    from durable.stores.postgres import PostgresStore

    return PostgresStore(dsn, schema=schema, min_size=1, max_size=pool)


async def pg_seq(params: dict[str, Any]) -> dict[str, Any]:
    """Postgres A: raw asyncpg inserts and durable steps, interleaved rounds.

    Both sides keep their connection from round to round, as a service does
    (the raw limit is defined on one persistent connection): each round is a
    new run on the same store, and new rows on the same raw connection.
    """
    import asyncpg

    dsn, n = params["dsn"], params["steps"]
    schema = f"durable_bench_{os.getpid()}"
    raw_schema = f"{schema}_raw"
    await _pg_schema(dsn, schema, drop=True)
    await _pg_schema(dsn, raw_schema, drop=False)
    conn = await asyncpg.connect(dsn, server_settings={"search_path": raw_schema})
    bench = Bench(_pg_store(dsn, schema))
    try:
        await conn.execute(_PG_TABLE)

        async def raw(r: int) -> float:
            t0 = time.perf_counter()
            for i in range(n):
                await conn.execute(_PG_INSERT, f"run-{r}", f"step#{i}", str(i), time.time())
            return (time.perf_counter() - t0) / n * 1e6

        async def durable_(r: int) -> float:
            return await _first_execution(bench, n, tag=f"-{r}")

        async with bench.wf:
            return await _median_rounds(params["rounds"], {"asyncpg": raw, "durable": durable_})
    finally:
        await conn.close()
        await _pg_schema(dsn, raw_schema, drop=True)
        await _pg_schema(dsn, schema, drop=True)


async def pg_concurrent(params: dict[str, Any]) -> dict[str, Any]:
    """Postgres C: many workflows started together, on a pool of the given size."""
    dsn = params["dsn"]
    schema = f"durable_bench_{os.getpid()}"
    await _pg_schema(dsn, schema, drop=True)
    try:
        bench = Bench(_pg_store(dsn, schema, params["pool"]))
        async with bench.wf:
            return await _concurrent(bench, params["workflows"], params["steps"])
    finally:
        await _pg_schema(dsn, schema, drop=True)


# -- queues and workers (Q, L) ---------------------------------------------------------

_QUEUE_WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "queue_worker.py")
_PG_JOBS = """CREATE TABLE jobs (
    id bigserial PRIMARY KEY, payload text, status text NOT NULL DEFAULT 'queued',
    done_at double precision)"""
_SQLITE_JOBS = """CREATE TABLE jobs (
    id INTEGER PRIMARY KEY, payload TEXT, status TEXT NOT NULL DEFAULT 'queued', done_at REAL)"""


async def _spawn_workers(count: int, params: dict[str, Any]) -> list[Any]:
    """``count`` worker processes, each connected and waiting on its gate (or serving)."""
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            _QUEUE_WORKER,
            json.dumps(params),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        for _ in range(count)
    ]
    for proc in procs:
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        if line.strip() != b"ready":
            raise RuntimeError(f"a worker did not start (exit {await proc.wait()})")
    return procs


async def _stop_workers(procs: list[Any]) -> None:
    for proc in procs:
        if proc.returncode is None:
            proc.terminate()
    for proc in procs:
        try:
            await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def _timed_drain(procs: list[Any], left: Callable[[], Awaitable[bool]]) -> float:
    """Open the gates of ``procs``; seconds until ``left()`` says nothing is left."""
    t0 = time.perf_counter()
    for proc in procs:
        proc.stdin.write(b"go\n")
    await asyncio.gather(*(proc.stdin.drain() for proc in procs))
    deadline = t0 + 600
    while await left():
        if time.perf_counter() > deadline:
            raise RuntimeError("the queue was not drained in 600 s")
        await asyncio.sleep(0.005)
    return time.perf_counter() - t0


def _queue_store(params: dict[str, Any], tag: str) -> dict[str, Any]:
    if params["backend"] == "pg":
        return {"kind": "pg", "dsn": params["dsn"], "schema": f"durable_qbench_{tag}"}
    return {"kind": "sqlite", "path": os.path.join(params["dir"], f"q-{tag}.db")}


async def queue_throughput(params: dict[str, Any]) -> dict[str, Any]:
    """Q: ``runs`` queued no-op runs drained by ``processes`` worker processes.

    The runs are enqueued first, the workers started and connected, and only
    then timed: from opening their gates until the store has no queued or
    running run left.
    """
    sys.path.insert(0, os.path.dirname(_QUEUE_WORKER))
    from queue_worker import APP, make_app

    runs, procs_n = params["runs"], params["processes"]
    store = _queue_store(params, f"{os.getpid()}_{procs_n}")
    if store["kind"] == "pg":
        await _pg_schema(store["dsn"], store["schema"], drop=True)
    wf, noop, _ = make_app(store)
    try:
        async with wf:
            for start in range(0, runs, 100):
                await asyncio.gather(*(noop.enqueue(k=k) for k in range(start, start + 100)))

            async def left() -> bool:
                for status in ("queued", "running"):
                    if await wf.store.list_runs(APP, status=status, limit=1):
                        return True
                return False

            procs = await _spawn_workers(
                procs_n,
                {"kind": "durable", "store": store, "gate": True, **params.get("worker", {})},
            )
            try:
                elapsed = await _timed_drain(procs, left)
            finally:
                await _stop_workers(procs)
            done = len(await wf.store.list_runs(APP, status="completed", limit=runs + 1))
    finally:
        if store["kind"] == "pg":
            await _pg_schema(store["dsn"], store["schema"], drop=True)
    return {"runs_per_s": runs / elapsed, "completed": done, "runs": runs}


async def raw_queue_pg(params: dict[str, Any]) -> dict[str, Any]:
    """Q's limit: ``runs`` rows of a jobs table claimed and completed by raw asyncpg processes."""
    import asyncpg

    runs, procs_n = params["runs"], params["processes"]
    schema = f"durable_qbench_raw_{os.getpid()}"
    await _pg_schema(params["dsn"], schema, drop=False)
    conn = await asyncpg.connect(params["dsn"], server_settings={"search_path": schema})
    try:
        await conn.execute(_PG_JOBS)
        await conn.execute("CREATE INDEX jobs_queued ON jobs (id) WHERE status = 'queued'")
        await conn.executemany(
            "INSERT INTO jobs (payload) VALUES ($1)", [(json.dumps({"k": k}),) for k in range(runs)]
        )
        await conn.execute("VACUUM ANALYZE jobs")

        async def left() -> bool:
            return bool(
                await conn.fetchval("SELECT EXISTS (SELECT 1 FROM jobs WHERE status <> 'done')")
            )

        procs = await _spawn_workers(
            procs_n, {"kind": "raw_pg", "dsn": params["dsn"], "schema": schema, "gate": True}
        )
        try:
            elapsed = await _timed_drain(procs, left)
        finally:
            await _stop_workers(procs)
        done = await conn.fetchval("SELECT count(*) FROM jobs WHERE status = 'done'")
    finally:
        await conn.close()
        await _pg_schema(params["dsn"], schema, drop=True)
    return {"runs_per_s": runs / elapsed, "completed": done, "runs": runs}


async def raw_queue_sqlite(params: dict[str, Any]) -> dict[str, Any]:
    """Q's SQLite limit: the same jobs table in one file, claimed with BEGIN IMMEDIATE."""
    runs, procs_n = params["runs"], params["processes"]
    path = os.path.join(params["dir"], f"q-raw-{os.getpid()}-{procs_n}.db")
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL").fetchone()
    db.execute(_SQLITE_JOBS)
    db.executemany(
        "INSERT INTO jobs (payload) VALUES (?)", [(json.dumps({"k": k}),) for k in range(runs)]
    )

    async def left() -> bool:
        row = db.execute("SELECT EXISTS (SELECT 1 FROM jobs WHERE status <> 'done')").fetchone()
        return bool(row[0])

    procs = await _spawn_workers(procs_n, {"kind": "raw_sqlite", "path": path, "gate": True})
    try:
        elapsed = await _timed_drain(procs, left)
    finally:
        await _stop_workers(procs)
    done = db.execute("SELECT count(*) FROM jobs WHERE status = 'done'").fetchone()[0]
    db.close()
    return {"runs_per_s": runs / elapsed, "completed": done, "runs": runs}


async def queue_latency(params: dict[str, Any]) -> dict[str, Any]:
    """L: enqueue-to-first-step latency on one idle worker process, one run at a time.

    The worker polls every ``poll_interval`` seconds (enqueues from another
    process do not wake it). Before each enqueue this process waits a random
    fraction of the poll interval, so that enqueues fall at random points of
    the worker's polling cycle. Latency: the ``time.time()`` the first step
    returned, minus the ``time.time()`` just before the ``enqueue`` call.
    """
    import random

    sys.path.insert(0, os.path.dirname(_QUEUE_WORKER))
    from queue_worker import make_app

    poll = params["poll_interval"]
    store = _queue_store(params, f"lat_{os.getpid()}")
    if store["kind"] == "pg":
        await _pg_schema(store["dsn"], store["schema"], drop=True)
    wf, _, stamp = make_app(store)
    latencies: list[float] = []
    try:
        async with wf:
            procs = await _spawn_workers(
                1, {"kind": "durable", "store": store, "poll_interval": poll, "concurrency": 16}
            )
            try:
                await asyncio.sleep(0.5)  # past its first pass
                for k in range(params["samples"]):
                    await asyncio.sleep(random.uniform(0, poll))
                    t0 = time.time()
                    handle = await stamp.enqueue(k=k)
                    first_step = await handle.result(timeout=poll * 5 + 30)
                    latencies.append((first_step - t0) * 1e3)
            finally:
                await _stop_workers(procs)
    finally:
        if store["kind"] == "pg":
            await _pg_schema(store["dsn"], store["schema"], drop=True)
    latencies.sort()
    return {
        "p50_ms": statistics.median(latencies),
        # Inclusive: with few samples, the exclusive method extrapolates past the maximum.
        "p99_ms": statistics.quantiles(latencies, n=100, method="inclusive")[98],
        "max_ms": latencies[-1],
        "samples": latencies,
    }


def _parked_app(params: dict[str, Any]) -> tuple[Any, Any]:
    """P's app: ``nap(k)`` runs one step, then sleeps an hour (parked under a worker)."""
    from durable import Workflow

    if params["backend"] == "pg":
        from durable.stores.postgres import PostgresStore

        store: Any = PostgresStore(params["dsn"], schema=params["schema"])
    else:
        store = _sqlite_store(params["path"], "NORMAL")
    wf = Workflow("pbench", db=store, park_after=1.0)

    @wf.task
    async def touch(k: int) -> int:
        return k

    @wf.workflow(id="nap-{k}", queue="naps")
    async def nap(k: int) -> None:
        await touch(k)
        await wf.sleep(3600)

    return wf, nap


async def parked_enqueue(params: dict[str, Any]) -> dict[str, Any]:
    """P's enqueuer, a process of its own: ``runs`` runs of ``nap``."""
    wf, nap = _parked_app(params)
    async with wf:
        for start in range(0, params["runs"], 500):
            end = min(start + 500, params["runs"])
            await asyncio.gather(*(nap.enqueue(k) for k in range(start, end)))
    return {"enqueued": params["runs"]}


async def parked_rss(params: dict[str, Any]) -> dict[str, Any]:
    """P: RSS of one worker (this process) before and after ``runs`` runs parked in it.

    The worker serves an empty store first (idle RSS); another process then
    enqueues the runs, which the worker claims, runs to their hour-long sleep
    and parks. Once none is queued or running, RSS is measured again.
    """
    if params["backend"] == "pg":
        await _pg_schema(params["dsn"], params["schema"], drop=True)
    wf, _ = _parked_app(params)
    try:
        async with wf:
            worker = asyncio.ensure_future(
                wf.serve(concurrency=256, poll_interval=0.2, handle_signals=False)
            )
            await asyncio.sleep(2.0)
            gc.collect()
            idle = _rss_kb()
            started = time.monotonic()
            enqueuer = await asyncio.create_subprocess_exec(
                sys.executable,
                __file__,
                "parked_enqueue",
                json.dumps(params),
                stdout=asyncio.subprocess.DEVNULL,
            )
            await enqueuer.wait()

            async def left() -> bool:
                for status in ("queued", "running"):
                    if await wf.store.list_runs("pbench", status=status, limit=1):
                        return True
                return False

            while await left():  # noqa: ASYNC110 - the store is polled
                await asyncio.sleep(0.5)
            elapsed = time.monotonic() - started
            await asyncio.sleep(1.0)
            gc.collect()
            parked = _rss_kb()
            peak = _rss_kb("VmHWM")
            active = wf._executor.active_runs
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)
            waiting = len(await wf.store.list_runs("pbench", status="waiting", limit=10**7))
    finally:
        if params["backend"] == "pg":
            await _pg_schema(params["dsn"], params["schema"], drop=True)
    return {
        "idle_kb": idle,
        "parked_kb": parked,
        "peak_kb": peak,
        "waiting": waiting,
        "active": active,
        "seconds": elapsed,
    }


WORKLOADS: dict[str, Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]] = {
    "seq_sqlite": seq_sqlite,
    "loop_lag": loop_lag,
    "prepare": prepare,
    "replay": replay,
    "concurrent": concurrent,
    "one_step": one_step,
    "suspended": suspended,
    "pg_seq": pg_seq,
    "pg_concurrent": pg_concurrent,
    "queue_throughput": queue_throughput,
    "raw_queue_pg": raw_queue_pg,
    "raw_queue_sqlite": raw_queue_sqlite,
    "queue_latency": queue_latency,
    "parked_enqueue": parked_enqueue,
    "parked_rss": parked_rss,
}


def main() -> None:
    name, raw_params = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "{}"
    result = asyncio.run(WORKLOADS[name](json.loads(raw_params)))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
