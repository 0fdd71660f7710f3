"""Crash-recovery demo: a pipeline is killed with SIGKILL mid-way, then resumed.

    python examples/demo.py

The parent starts the pipeline in a child process, kills it (SIGKILL: no
cleanup, no exception handlers) while step 4 of 6 is running, then runs the
same workflow again. Completed steps are replayed from SQLite; only the
interrupted and remaining steps execute.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from durable import Workflow

PAGES = 6
DB_PATH = os.environ.get("DEMO_DB", "demo.db")
JOURNAL = os.environ.get("DEMO_JOURNAL", "demo-journal.txt")

wf = Workflow("demo", db=DB_PATH)


def journal(line: str) -> None:
    # An append-only file outside the store: the proof of what really executed.
    with open(JOURNAL, "a") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


@wf.task(retries=2)
async def fetch_page(page: int) -> dict[str, object]:
    journal(f"fetch_page {page}")
    print(f"    executing fetch_page({page})", flush=True)
    await asyncio.sleep(0.15)  # stands in for an HTTP call
    return {"page": page, "rows": [page * 10 + i for i in range(3)]}


@wf.task
async def save_report(total: int) -> str:
    journal("save_report")
    print("    executing save_report", flush=True)
    return f"report: {total} rows summed"


@wf.workflow(id="import-{source}")
async def import_pages(source: str) -> str:
    total = 0
    for page in range(1, PAGES + 1):
        data = await fetch_page(page, step_id=f"page-{page}")
        total += sum(data["rows"])  # type: ignore[call-overload]
    return await save_report(total)


async def worker() -> None:
    print(await import_pages(source="crm"), flush=True)
    await wf.close()


def run_worker(env: dict[str, str], *, kill_at: str | None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--worker"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    for line in proc.stdout:
        print(line, end="", flush=True)
        lines.append(line)
        if kill_at is not None and kill_at in line:
            proc.send_signal(signal.SIGKILL)
            print("    *** SIGKILL ***", flush=True)
            break
    rest = proc.communicate()[0]
    print(rest, end="")
    return subprocess.CompletedProcess(proc.args, proc.returncode, "".join(lines) + rest)


def executed() -> list[str]:
    return Path(JOURNAL).read_text().splitlines() if Path(JOURNAL).exists() else []


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ)
        env["DEMO_DB"] = str(Path(tmp) / "demo.db")
        env["DEMO_JOURNAL"] = str(Path(tmp) / "journal.txt")
        global JOURNAL
        JOURNAL = env["DEMO_JOURNAL"]

        print("1) first run, killed while fetching page 4:")
        first = run_worker(env, kill_at="fetch_page(4)")
        print(f"   exit code {first.returncode} (-9 = SIGKILL)\n")
        ran_first = executed()

        print("2) the same call again, in a new process:")
        second = run_worker(env, kill_at=None)
        ran_second = executed()[len(ran_first) :]

        replayed = [step for step in ran_first if step not in ran_second]
        rerun = [step for step in ran_second if step in ran_first]
        print("\nexecuted before the crash:      ", ", ".join(ran_first))
        print("replayed from SQLite, not rerun:", ", ".join(replayed))
        print("executed after the restart:     ", ", ".join(ran_second))
        print("ran twice (in flight at SIGKILL):", ", ".join(rerun) or "none")
        assert second.returncode == 0, "the resumed run failed"
        # Only the step that was executing when the process died may run again.
        assert rerun == ["fetch_page 4"], rerun


if __name__ == "__main__":
    if "--worker" in sys.argv:
        asyncio.run(worker())
    else:
        main()
