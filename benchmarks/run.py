"""python-durable against the raw database limits, measured side by side in one run.

    python benchmarks/run.py            # everything (PostgreSQL when reachable)
    python benchmarks/run.py --quick    # fewer rounds and steps
    python benchmarks/run.py --no-postgres --steps 1000
    python benchmarks/run.py --only Q,L     # queues and workers (besides A)

Every workload runs in a fresh process (``workloads.py``), so replay and cold
start see a process that really starts cold. The machine is noisy: only the
ratios within one run mean anything, so each limit is measured by this script,
in the same run, with the same durability settings. For A, the limit and
python-durable are measured in the same round, back to back; the printed
ratio is the median of these per-round ratios, and the measured values are
the medians of each series.

Q and L measure queues and workers, with real worker processes
(``queue_worker.py``: ``wf.serve()`` as ``python -m durable worker`` runs it).
Q enqueues ``--queue-runs`` no-op runs, starts 1, 2 and 4 worker processes on
one PostgreSQL database (1 and 2 on one SQLite file), and times from the
moment the connected workers are let go until no run is queued or running;
the limit is the same number of processes, each one connection claiming one
row of a plain jobs table at a time (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite), marking it done and committing.
A worker claims up to its concurrency (16) runs per pass and executes them
concurrently, where the raw loop does one job per transaction. L enqueues one
run at a time (``--latency-samples``) to an idle worker process and takes
the time its first step records minus the time before the ``enqueue`` call.
On PostgreSQL the worker is woken by LISTEN/NOTIFY, so the poll interval is
only its fallback; SQLite workers of other processes poll, so there L
follows the poll interval. The full run reports L at ``--poll-interval
0.05``; the rows at the default 1.0 s (about a minute per store) run when L
is named in ``--only``.

P starts one worker (``wf.serve()`` in the workload's process) on an empty
store, measures its RSS once idle, then has another process enqueue
``--parked-runs`` runs that each take one step and sleep an hour; the worker
parks every one of them (``park_after=1.0``). Once none is queued or
running, RSS is measured again: the row is the growth above idle.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
WORKLOADS = os.path.join(HERE, "workloads.py")
PYTHON = sys.executable
DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"


@dataclass
class Row:
    workload: str
    measured: str
    limit: str = ""
    ratio: str = ""
    target: str = ""
    verdict: str = ""


def work(name: str, **params: Any) -> dict[str, Any]:
    """Run one workload in a fresh process; its JSON result."""
    proc = subprocess.run(
        [PYTHON, WORKLOADS, name, json.dumps(params)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"workload {name} failed ({proc.returncode}):\n{proc.stderr}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def paired_ratio(result: dict[str, Any], series: str, limit: str) -> float:
    """The median over rounds of ``series / limit``, both measured in the same round.

    Rounds are far apart in time on a noisy machine; within a round the two
    run back to back, so a ratio per round cancels what drifts between rounds.
    """
    rounds = result["rounds"]
    return statistics.median(
        value / base for value, base in zip(rounds[series], rounds[limit], strict=True)
    )


def paired_row(
    workload: str, result: dict[str, Any], series: str, limit: str, unit: str, max_ratio: float
) -> Row:
    """:func:`ratio_row` for two series of one workload, with their paired ratio."""
    return ratio_row(
        workload,
        result[series],
        result[limit],
        unit,
        max_ratio,
        ratio=paired_ratio(result, series, limit),
    )


def ratio_row(
    workload: str,
    value: float,
    limit: float,
    unit: str,
    max_ratio: float,
    *,
    lower: bool = True,
    ratio: float | None = None,
) -> Row:
    """A row comparing ``value`` with ``limit``; lower is better unless ``lower`` is false.

    ``ratio`` defaults to ``value / limit``.
    """
    ratio = value / limit if ratio is None else ratio
    ok = ratio <= max_ratio if lower else ratio >= max_ratio
    sign = "≤" if lower else "≥"
    return Row(
        workload,
        f"{value:,.1f} {unit}",
        f"{limit:,.1f} {unit}",
        f"{ratio:.2f}x",
        f"{sign} {max_ratio:g}x",
        verdict(ok),
    )


# -- A ------------------------------------------------------------------------------


def bench_sequential(args: argparse.Namespace, tmp: str) -> tuple[list[Row], float]:
    r = work("seq_sqlite", steps=args.steps, rounds=args.rounds, dir=tmp)
    rows = [
        paired_row("A seq FULL vs aiosqlite", r, "durable_FULL", "aiosqlite_FULL", "µs/step", 1.3),
        paired_row("A seq FULL vs sqlite3", r, "durable_FULL", "sqlite3_FULL", "µs/step", 1.6),
    ]
    for raw in ("aiosqlite", "sqlite3"):
        value, limit = r["durable_NORMAL"], r[f"{raw}_NORMAL"]
        rows.append(
            Row(
                f"A seq NORMAL vs {raw}",
                f"{value:,.1f} µs/step",
                f"{limit:,.1f} µs/step",
                f"{paired_ratio(r, 'durable_NORMAL', f'{raw}_NORMAL'):.2f}x",
                "(info)",
            )
        )
    return rows, r["aiosqlite_FULL"]


def bench_loop_lag(args: argparse.Namespace, tmp: str) -> Row:
    """p99 lateness of a 1 ms timer during A, against the same timer on an idle loop."""
    r = work("loop_lag", steps=args.steps, rounds=max(3, args.rounds // 2), dir=tmp)
    busy, idle = r["busy_p99_ms"], r["idle_p99_ms"]
    allowed = 1.0
    return Row(
        "A loop lag p99 during A (SQLite FULL)",
        f"{busy:.2f} ms (p50 {r['busy_p50_ms']:.2f})",
        f"{idle:.2f} ms idle",
        f"+{busy - idle:.2f} ms",
        f"≤ idle + {allowed:g} ms",
        verdict(busy - idle <= allowed),
    )


# -- B ------------------------------------------------------------------------------


def bench_replay(args: argparse.Namespace, tmp: str) -> list[Row]:
    completed: list[float] = []
    body: list[float] = []
    resumed: list[float] = []
    for i in range(args.rounds):
        done = os.path.join(tmp, f"replay-done-{i}.db")
        work("prepare", path=done, steps=args.steps)
        completed.append(work("replay", path=done, steps=args.steps)["call_us_per_step"])
        crashed = os.path.join(tmp, f"replay-crash-{i}.db")
        try:
            work("prepare", path=crashed, steps=args.steps, crash_at=args.steps - 1)
        except RuntimeError as exc:
            if "(17)" not in str(exc):
                raise
        else:
            raise RuntimeError("the crash before the last step did not happen")
        r = work("replay", path=crashed, steps=args.steps)
        body.append(r["body_replay_us_per_step"])
        resumed.append(r["call_us_per_step"])
    target = 10.0

    def row(name: str, values: list[float], *, judged: bool = True) -> Row:
        value = statistics.median(values)
        return Row(
            name,
            f"{value:,.2f} µs/step",
            target=f"≤ {target:g} µs" if judged else "(info)",
            verdict=verdict(value <= target) if judged else "",
        )

    return [
        row("B replay completed run (new process)", completed),
        row("B forced body replay (crash at last step)", body),
        row("B  whole resumed call incl. last step", resumed, judged=False),
    ]


# -- C and E ------------------------------------------------------------------------


def bench_concurrent(args: argparse.Namespace, tmp: str, ceiling_us: float) -> list[Row]:
    samples = [
        work(
            "concurrent",
            path=os.path.join(tmp, f"conc-{i}.db"),
            workflows=args.workflows,
            steps=10,
        )
        for i in range(max(1, args.rounds // 2 + 1))
    ]
    rate = statistics.median(s["steps_per_s"] for s in samples)
    failed = sum(s["failed"] for s in samples)
    ceiling = 1e6 / ceiling_us
    row = ratio_row(
        f"C {args.workflows}x10 concurrent, FULL", rate, ceiling, "steps/s", 3.0, lower=False
    )
    failures = Row(
        "C failed runs",
        f"{failed} of {args.workflows * len(samples)}",
        target="0",
        verdict=verdict(failed == 0),
    )
    if failed:
        failures.measured += f" ({next(s['first_failure'] for s in samples if s['failed'])})"
    peak = statistics.median(s["peak_rss_kb"] for s in samples) / 1024
    grown = statistics.median(s["rss_kb"] - s["rss_before_kb"] for s in samples) / 1024
    memory = Row("E RSS of C (peak; growth during C)", f"{peak:.1f} MB; +{grown:.1f} MB")
    return [row, failures, memory]


def bench_suspended(args: argparse.Namespace, tmp: str) -> Row:
    r = work("suspended", path=os.path.join(tmp, "idle.db"), runs=args.suspended)
    if r["per_run_kb"] is None:
        return Row(
            f"E per suspended run ({args.suspended})",
            "n/a (not implemented: no Workflow.signal / Workflow.sleep)",
        )
    return Row(
        f"E per suspended run ({args.suspended} on {r['waits_on']})",
        f"{r['per_run_kb']:.1f} KB/run",
        target="(info)",
    )


# -- D ------------------------------------------------------------------------------


def cold_env(tmp: str) -> dict[str, str]:
    """An environment where compiled bytecode is cached, as after ``pip install``.

    With PYTHONDONTWRITEBYTECODE set (common in containers) a source checkout
    would be compiled on every start while installed packages are not.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = os.path.join(tmp, "pycache")
    return env


def _wall(argv: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, env=env)
    return time.perf_counter() - t0


def _import_us(module: str, env: dict[str, str]) -> float:
    """Cumulative import time of ``module`` in a fresh interpreter (-X importtime)."""
    proc = subprocess.run(
        [PYTHON, "-X", "importtime", "-c", f"import {module}"],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    for line in proc.stderr.splitlines():
        parts = [p.strip() for p in line.removeprefix("import time:").split("|")]
        if len(parts) == 3 and parts[2] == module:
            return float(parts[1])
    raise RuntimeError(f"no import time reported for {module}")


def bench_cold(args: argparse.Namespace, tmp: str) -> list[Row]:
    repeats = args.cold_repeats
    samples: dict[str, list[float]] = {k: [] for k in ("pass", "aio", "durable", "one", "imp")}
    imp_aio: list[float] = []
    imp_durable: list[float] = []
    env = cold_env(tmp)
    _wall([PYTHON, "-c", "import durable, aiosqlite"], env)  # fills the bytecode cache
    for i in range(repeats):
        # Interleaved, so that noise hits all of them alike.
        samples["pass"].append(_wall([PYTHON, "-c", "pass"], env))
        samples["aio"].append(_wall([PYTHON, "-c", "import aiosqlite"], env))
        samples["durable"].append(_wall([PYTHON, "-c", "import durable"], env))
        path = os.path.join(tmp, f"cold-{i}.db")
        argv = [PYTHON, WORKLOADS, "one_step", json.dumps({"path": path})]
        samples["one"].append(_wall(argv, env))
        imp_aio.append(_import_us("aiosqlite", env))
        imp_durable.append(_import_us("durable", env))
    # Minimums: start-up is fixed work, and noise on a busy machine only adds.
    med = {k: min(v) * 1e3 for k, v in samples.items() if v}
    base = med["pass"]
    aio, durable = min(imp_aio) / 1e3, min(imp_durable) / 1e3
    heavy = subprocess.run(
        [
            PYTHON,
            "-c",
            "import sys, durable, durable.stores; "
            "print(','.join(m for m in ('asyncpg', 'redis', 'pydantic') if m in sys.modules))",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    one = work("one_step", path=os.path.join(tmp, "cold-check.db"))
    heavy_after_run = ",".join(one["heavy"])
    return [
        ratio_row("D import durable (-X importtime, min)", durable, aio, "ms", 1.2),
        ratio_row(
            "D import, process wall minus bare python (min)",
            med["durable"] - base,
            med["aio"] - base,
            "ms",
            1.2,
        ),
        Row(
            "D 1-step workflow process vs import aiosqlite",
            f"{med['one']:.1f} ms",
            f"{med['aio']:.1f} ms",
            f"{med['one'] / med['aio']:.2f}x",
            "(info)",
        ),
        Row(
            "D asyncpg/redis/pydantic imported",
            f"{heavy or 'none'}; after a run: {heavy_after_run or 'none'}",
            target="none",
            verdict=verdict(not heavy and not heavy_after_run),
        ),
    ]


# -- PostgreSQL -------------------------------------------------------------------


def postgres_reachable(dsn: str) -> str | None:
    """None when a server answers at ``dsn``, else why not."""
    code = (
        "import asyncio, asyncpg, sys\n"
        "async def main():\n"
        "    conn = await asyncpg.connect(sys.argv[1], timeout=3)\n"
        "    await conn.close()\n"
        "asyncio.run(main())\n"
    )
    proc = subprocess.run([PYTHON, "-c", code, dsn], capture_output=True, text=True, check=False)
    if proc.returncode == 0:
        return None
    return (proc.stderr.strip().splitlines() or ["unknown error"])[-1]


def bench_postgres(args: argparse.Namespace) -> list[Row]:
    dsn = args.pg_dsn
    why = postgres_reachable(dsn)
    if why is not None:
        return [Row("PG (skipped)", f"no server at {dsn}: {why}")]
    # A round costs about a second: twice the rounds steady the ratio.
    r = work("pg_seq", dsn=dsn, steps=args.steps, rounds=2 * args.rounds)
    rows = [paired_row("PG A seq vs asyncpg insert", r, "durable", "asyncpg", "µs/step", 1.3)]
    # Every round runs each pool size once, so that a slow phase hits them all.
    samples: dict[int, list[dict[str, Any]]] = {pool: [] for pool in args.pg_pools}
    for _ in range(args.rounds):
        for pool in args.pg_pools:
            samples[pool].append(
                work("pg_concurrent", dsn=dsn, pool=pool, workflows=args.workflows, steps=10)
            )
    rates = {
        pool: statistics.median(s["steps_per_s"] for s in got) for pool, got in samples.items()
    }
    failed = sum(s["failed"] for got in samples.values() for s in got)
    first = args.pg_pools[0]
    for pool in args.pg_pools:
        rows.append(
            Row(
                f"PG C {args.workflows}x10, pool {pool}",
                f"{rates[pool]:,.0f} steps/s",
                f"{1e6 / r['asyncpg']:,.0f} steps/s",
                f"{rates[pool] * r['asyncpg'] / 1e6:.2f}x",
                "scales with pool" if pool != first else "(base)",
                "" if pool == first else verdict(rates[pool] > rates[first] * 1.1),
            )
        )
    rows.append(Row("PG C failed runs", str(failed), target="0", verdict=verdict(failed == 0)))
    return rows


# -- Q and L: queues and workers ------------------------------------------------------


def bench_queue_throughput(args: argparse.Namespace, tmp: str) -> list[Row]:
    """Q: queued no-op runs/s drained by N worker processes, against a raw jobs-table loop.

    Every round runs every configuration once (ours and raw, each process
    count), so that a slow phase hits them all; ratios are paired per round.
    """
    runs = args.queue_runs
    configs: list[tuple[str, int]] = [("sqlite", n) for n in (1, 2)]
    rows: list[Row] = []
    if args.postgres:
        why = postgres_reachable(args.pg_dsn)
        if why is None:
            configs = [*(("pg", n) for n in (1, 2, 4)), *configs]
        else:
            rows.append(Row("Q PG (skipped)", f"no server at {args.pg_dsn}: {why}"))
    ours: dict[tuple[str, int], list[float]] = {c: [] for c in configs}
    raw: dict[tuple[str, int], list[float]] = {c: [] for c in configs}
    failed = 0
    for _ in range(max(1, args.rounds // 2)):
        for backend, n in configs:
            common = {"dir": tmp, "dsn": args.pg_dsn, "runs": runs, "processes": n}
            got = work("queue_throughput", backend=backend, **common)
            failed += runs - got["completed"]
            ours[backend, n].append(got["runs_per_s"])
            limit = work("raw_queue_pg" if backend == "pg" else "raw_queue_sqlite", **common)
            raw[backend, n].append(limit["runs_per_s"])
    for backend, n in configs:
        value = statistics.median(ours[backend, n])
        limit = statistics.median(raw[backend, n])
        ratio = statistics.median(
            o / r for o, r in zip(ours[backend, n], raw[backend, n], strict=True)
        )
        name = "PG" if backend == "pg" else "SQLite"
        raw_name = "SKIP LOCKED" if backend == "pg" else "BEGIN IMMEDIATE"
        row = Row(
            f"Q {runs} no-op runs, {n} worker proc, {name} vs raw {raw_name}",
            f"{value:,.0f} runs/s",
            f"{limit:,.0f} jobs/s",
            f"{ratio:.2f}x",
            "(info)",
        )
        if (backend, n) == ("pg", 4):
            row.target = "≥ 0.5x"
            row.verdict = verdict(ratio >= 0.5)
        rows.append(row)
    rows.append(Row("Q runs not completed", str(failed), target="0", verdict=verdict(failed == 0)))
    return rows


def bench_queue_latency(args: argparse.Namespace, tmp: str, polls: list[float]) -> list[Row]:
    """L: enqueue-to-first-step latency on an idle worker process, p50 and p99."""
    backends = ["sqlite"]
    rows: list[Row] = []
    if args.postgres:
        why = postgres_reachable(args.pg_dsn)
        if why is None:
            backends.insert(0, "pg")
        else:
            rows.append(Row("L PG (skipped)", f"no server at {args.pg_dsn}: {why}"))
    for backend in backends:
        for poll in polls:
            r = work(
                "queue_latency",
                backend=backend,
                dir=tmp,
                dsn=args.pg_dsn,
                poll_interval=poll,
                samples=args.latency_samples,
            )
            p50, p99 = r["p50_ms"], r["p99_ms"]
            name = "PG" if backend == "pg" else "SQLite"
            wake = "LISTEN/NOTIFY" if backend == "pg" else "polling"
            rows.append(
                Row(
                    f"L enqueue→1st step, {name}, poll {poll:g} s ({wake})",
                    f"p50 {p50:,.1f} ms, p99 {p99:,.1f} ms ({len(r['samples'])} runs)",
                    target="p50 ≤ 5 ms, p99 ≤ 50 ms",
                    verdict=verdict(p50 <= 5 and p99 <= 50),
                )
            )
    return rows


def bench_parked(args: argparse.Namespace, tmp: str) -> list[Row]:
    """P: RSS of one worker with many parked runs, above its idle RSS."""
    backends = ["sqlite"]
    rows: list[Row] = []
    if args.postgres:
        why = postgres_reachable(args.pg_dsn)
        if why is None:
            backends.insert(0, "pg")
        else:
            rows.append(Row("P PG (skipped)", f"no server at {args.pg_dsn}: {why}"))
    for backend in backends:
        r = work(
            "parked_rss",
            backend=backend,
            path=os.path.join(tmp, "parked.db"),
            dsn=args.pg_dsn,
            schema=f"durable_pbench_{os.getpid()}",
            runs=args.parked_runs,
        )
        grown_mb = (r["parked_kb"] - r["idle_kb"]) / 1024
        name = "PG" if backend == "pg" else "SQLite"
        parked_all = r["waiting"] == args.parked_runs and r["active"] == 0
        rows.append(
            Row(
                f"P worker RSS, {r['waiting']:,} parked runs, {name}",
                f"+{grown_mb:,.1f} MB above idle {r['idle_kb'] / 1024:,.1f} MB "
                f"(peak {r['peak_kb'] / 1024:,.1f} MB, all parked in {r['seconds']:,.0f} s)",
                target="< 50 MB",
                verdict=verdict(grown_mb < 50 and parked_all),
            )
        )
    return rows


# -- output -------------------------------------------------------------------------


def table(rows: list[Row]) -> str:
    header = Row("workload", "measured", "raw limit", "ratio", "target", "")
    cells = [header, *rows]
    fields = ("workload", "measured", "limit", "ratio", "target", "verdict")
    widths = {f: max(len(getattr(c, f)) for c in cells) for f in fields}
    lines = []
    for i, c in enumerate(cells):
        lines.append("  ".join(getattr(c, f).ljust(widths[f]) for f in fields).rstrip())
        if i == 0:
            lines.append("  ".join("-" * widths[f] for f in fields))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, for a smoke run")
    parser.add_argument("--steps", type=int, default=500, help="steps of workloads A and B")
    parser.add_argument("--rounds", type=int, default=None, help="repetitions (median taken)")
    parser.add_argument("--workflows", type=int, default=200, help="concurrent runs of C")
    parser.add_argument("--suspended", type=int, default=1000, help="suspended runs of E")
    parser.add_argument(
        "--postgres", action=argparse.BooleanOptionalAction, default=True, help="PG workloads"
    )
    parser.add_argument(
        "--pg-dsn", default=os.environ.get("DURABLE_BENCH_POSTGRES_DSN", DEFAULT_DSN)
    )
    parser.add_argument(
        "--pg-pools", type=lambda s: [int(p) for p in s.split(",")], default=[1, 4, 16]
    )
    parser.add_argument(
        "--queue-runs", type=int, default=2000, help="runs enqueued before the workers of Q start"
    )
    parser.add_argument(
        "--latency-samples", type=int, default=50, help="runs enqueued one by one in L"
    )
    parser.add_argument(
        "--parked-runs", type=int, default=100_000, help="runs parked in one worker in P"
    )
    parser.add_argument(
        "--only",
        type=lambda s: {p.strip().upper() for p in s.split(",")},
        default=None,
        help="workloads to run besides A, e.g. 'C,PG' or 'Q,L,P' (default: all)",
    )
    parser.add_argument(
        "--dir", default=None, help="where the database files go (default: a temp dir)"
    )
    args = parser.parse_args()
    if args.rounds is None:
        args.rounds = 3 if args.quick else 7
    args.cold_repeats = 5 if args.quick else 15
    if args.quick:
        args.steps = min(args.steps, 200)

    import aiosqlite

    print(
        f"python-durable benchmark: Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}, aiosqlite {aiosqlite.__version__}, "
        f"{os.cpu_count()} CPUs, {args.steps} steps, {args.rounds} rounds"
        " (medians; ratios of A: median of the per-round ratios)",
        flush=True,
    )
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="durable-bench-", dir=args.dir) as tmp:
        stages: list[tuple[str, Any]] = []
        seq_rows, ceiling = bench_sequential(args, tmp)
        rows += seq_rows
        rows.append(bench_loop_lag(args, tmp))
        stages.append(("B", lambda: bench_replay(args, tmp)))
        stages.append(("C", lambda: bench_concurrent(args, tmp, ceiling)))
        stages.append(("D", lambda: bench_cold(args, tmp)))
        stages.append(("E", lambda: [bench_suspended(args, tmp)]))
        if args.postgres:
            stages.append(("PG", lambda: bench_postgres(args)))
        stages.append(("Q", lambda: bench_queue_throughput(args, tmp)))
        # At the default poll interval a sample takes about a second: these rows
        # (about a minute per store) run only when L is asked for by name.
        explicit_l = args.only is not None and "L" in args.only
        polls = [1.0, 0.05] if explicit_l else [0.05]
        stages.append(("L", lambda: bench_queue_latency(args, tmp, polls)))
        stages.append(("P", lambda: bench_parked(args, tmp)))
        for name, stage in stages:
            if args.only is None or name in args.only:
                rows += stage()
    print(table(rows))
    missed = [r.workload for r in rows if r.verdict == "MISS"]
    print(f"\n{len(missed)} target(s) missed" + (": " + "; ".join(missed) if missed else ""))


if __name__ == "__main__":
    main()
