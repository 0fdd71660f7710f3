"""Durable sleep and signals: an expense waits for an approval sent by another process.

    python examples/sleep_and_signals.py

The workflow asks for approval and waits for the ``decision`` signal. When
none arrives within its timeout it sends a reminder and waits again. The
approval is sent by a separate process (this script run with ``approve``),
which only knows the run id. After a durable cooling-off sleep the expense is
paid. Calling the run again replays everything instantly from SQLite.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from typing import Any

from durable import Workflow
from durable.errors import SignalTimeoutError

DB_PATH = os.environ.get("EXAMPLE_DB") or os.path.join(tempfile.mkdtemp(), "expenses.db")

wf = Workflow("expenses", db=DB_PATH)


@wf.task
async def notify_approver(expense_id: str) -> None:
    print(f"  task: asked a manager to approve {expense_id}", flush=True)


@wf.task
async def send_reminder(expense_id: str) -> None:
    print(f"  task: no answer yet, reminder sent for {expense_id}", flush=True)


@wf.task
async def pay_out(expense_id: str, amount: float, decision: dict[str, Any]) -> str:
    if not decision["approved"]:
        return f"{expense_id} rejected by {decision['by']}"
    print(f"  task: paying {amount:.2f} for {expense_id}", flush=True)
    return f"{expense_id} paid ({amount:.2f}), approved by {decision['by']}"


@wf.workflow(id="expense-{expense_id}")
async def expense_approval(expense_id: str, amount: float) -> str:
    await notify_approver(expense_id)
    try:
        decision = await wf.signal("decision", timeout=0.4)
    except SignalTimeoutError:
        await send_reminder(expense_id)
        decision = await wf.signal("decision")
    print("  workflow: approved; cooling-off period (durable sleep)", flush=True)
    await wf.sleep(0.3)
    result: str = await pay_out(expense_id, amount, decision)
    return result


async def approve(run_id: str) -> None:
    """What a web handler would do: deliver the decision to the waiting run."""
    await wf.send_signal(run_id, "decision", {"approved": True, "by": "lee"})
    await wf.close()


async def main() -> None:
    print(f"database: {DB_PATH}")
    print("starting expense-42; it will wait for a decision")
    run = asyncio.ensure_future(expense_approval("42", 129.5))
    await asyncio.sleep(0.7)  # long enough for the first wait to time out
    print("another process sends the decision signal")
    approver = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "approve", "expense-42", env={**os.environ, "EXAMPLE_DB": DB_PATH}
    )
    assert await approver.wait() == 0
    print(f"result: {await run}")

    started = time.monotonic()
    again = await expense_approval("42", 129.5)
    print(f"called again: {again} (replayed in {time.monotonic() - started:.3f}s)")
    info = await wf.get_run("expense-42")
    print("steps:", ", ".join(step.step_id for step in info.steps))
    await wf.close()


if __name__ == "__main__":
    if sys.argv[1:2] == ["approve"]:
        asyncio.run(approve(sys.argv[2]))
    else:
        asyncio.run(main())
