"""A task called without await: Python's warning names the task and its step."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from durable import Workflow


async def test_a_forgotten_await_warns_with_the_task_name(tmp_path: Path) -> None:
    """The 'never awaited' RuntimeWarning names the durable task and step, not an internal."""
    app = Workflow("forgetful", db=tmp_path / "f.db")

    @app.task
    async def send_invoice(order_id: str) -> None: ...

    @app.workflow(id="order-{order_id}")
    async def order(order_id: str) -> str:
        send_invoice(order_id)  # type: ignore[unused-coroutine]  # the bug under test
        return "done"

    with pytest.warns(RuntimeWarning) as caught:
        await order("7")
    gc.collect()
    messages = [str(w.message) for w in caught]
    assert any("durable task 'send_invoice' (step 'send_invoice')" in m for m in messages), messages
    assert not any("_checkpointed" in m or "run_task" in m for m in messages), messages
    await app.close()
