"""Idempotency keys: a payment step killed after the charge, then resumed, charges once.

    python examples/idempotent_payments.py

A task body runs at least once: if the process dies after the payment
provider accepted a charge but before the step's result was committed, the
step runs again on resume. ``durable.current_step().idempotency_key`` is the
same on every attempt and after any crash, so the provider (here a stand-in
that keeps its ledger in a file) recognises the repeat and answers with the
first charge instead of charging again.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import durable
from durable import Workflow

DB_PATH = os.environ.get("EXAMPLE_DB", "payments.db")
LEDGER = Path(os.environ.get("EXAMPLE_LEDGER", "provider-ledger.json"))

wf = Workflow("shop", db=DB_PATH)


def provider_charge(idempotency_key: str, order_id: str, cents: int) -> str:
    """A payment provider: one charge per idempotency key, kept in its own ledger."""
    ledger = json.loads(LEDGER.read_text()) if LEDGER.exists() else {}
    if idempotency_key in ledger:
        return str(ledger[idempotency_key]["charge_id"])
    charge_id = f"ch_{len(ledger) + 1}"
    ledger[idempotency_key] = {"charge_id": charge_id, "order": order_id, "cents": cents}
    LEDGER.write_text(json.dumps(ledger))
    return charge_id


@wf.task(retries=3)
async def charge(order_id: str, cents: int) -> str:
    step = durable.current_step()
    charge_id = provider_charge(step.idempotency_key, order_id, cents)
    print(f"    charged {order_id} with key {step.idempotency_key!r}: {charge_id}", flush=True)
    await asyncio.sleep(0.3)  # the process is killed here, before the step commits
    return charge_id


@wf.task
async def send_receipt(order_id: str, charge_id: str) -> str:
    print(f"    receipt for {order_id} ({charge_id})", flush=True)
    return f"receipt sent for {order_id}"


@wf.workflow(id="checkout-{order_id}")
async def checkout(order_id: str, cents: int) -> str:
    charge_id = await charge(order_id, cents)
    return await send_receipt(order_id, charge_id)


def run_worker(env: dict[str, str], *, kill_after: str | None) -> int:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--worker"], env=env, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        print(line, end="", flush=True)
        if kill_after is not None and kill_after in line:
            proc.send_signal(signal.SIGKILL)
            print("    *** SIGKILL ***", flush=True)
            break
    print(proc.communicate()[0], end="")
    return proc.returncode


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ)
        env["EXAMPLE_DB"] = env.get("EXAMPLE_DB", str(Path(tmp) / "payments.db"))
        env["EXAMPLE_LEDGER"] = str(Path(tmp) / "ledger.json")
        print("1) checkout, killed right after the provider accepted the charge:")
        print(f"   exit code {run_worker(env, kill_after='charged')}\n")
        print("2) the same checkout again: the charge step runs again, with the same key:")
        assert run_worker(env, kill_after=None) == 0
        ledger = json.loads(Path(env["EXAMPLE_LEDGER"]).read_text())
        print(f"\nprovider ledger: {len(ledger)} charge(s): {ledger}")
        assert len(ledger) == 1, ledger  # one key: the retried charge was not made twice


async def worker() -> None:
    print("   ", await checkout("A7", 12950), flush=True)
    await wf.close()


if __name__ == "__main__":
    if "--worker" in sys.argv:
        asyncio.run(worker())
    else:
        main()
