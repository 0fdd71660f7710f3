"""The long torture run: ``python -m tests.crash.torture --trials 1000 [--postgres DSN]``.

Runs the random-SIGKILL trials, the kill-at-every-write sweep and the races on a
fresh SQLite file (and on a fresh Postgres schema with ``--postgres``), prints
the figures, and exits non-zero on any violation.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import uuid
from pathlib import Path

from tests.crash._harness import fork_server
from tests.crash._torture import (
    Figures,
    PostgresView,
    SQLiteView,
    StoreView,
    races,
    random_kills,
    write_sweep,
)


def _print(name: str, figures: Figures) -> int:
    print(
        f"{name}: {figures.trials} trials, {figures.kills} kills, {figures.processes} "
        f"processes, {figures.violations.total()} violations, {figures.seconds:.1f}s",
        flush=True,
    )
    if figures.violations.total():
        print(f"  {figures.violations.report()}", flush=True)
    return figures.violations.total()


def _suite(view: StoreView, workdir: Path, trials: int, seed: int, sweep: bool) -> int:
    kind = view.spec["kind"]
    # Journals are named after run ids, which repeat from one store to the next.
    workdir = workdir / kind
    workdir.mkdir(exist_ok=True)
    bad = 0
    with fork_server() as server:
        bad += _print(
            f"random SIGKILL ({kind})",
            random_kills(server, view, workdir, trials=trials, seed=seed),
        )
        if sweep:
            bad += _print(f"crash at every write ({kind})", write_sweep(server, view, workdir))
        for n in (2, 8):
            figures = races(server, view, workdir, processes=n, trials=trials, seed=seed + n)
            bad += _print(f"race x{n} ({kind})", figures)
    return bad


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--postgres", metavar="DSN", help="also torture a Postgres store")
    args = parser.parse_args()
    bad = 0
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        bad += _suite(SQLiteView(workdir / "torture.db"), workdir, args.trials, args.seed, True)
        if args.postgres:
            schema = f"durable_torture_{uuid.uuid4().hex[:12]}"
            view = PostgresView(args.postgres, schema)
            try:
                bad += _suite(view, workdir, args.trials, args.seed, False)
            finally:
                view.close()
                from tests._services import drop_postgres_schema

                asyncio.run(drop_postgres_schema(args.postgres, schema))
    print(f"total violations: {bad}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
