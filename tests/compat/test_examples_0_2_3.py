"""python-durable 0.2.3's examples/ directory, run as published (see v0_2_3/SOURCE.md)."""

from __future__ import annotations

import asyncio
import runpy
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests import _services
from tests.compat._samples import sample_text
from tests.primitives._waiting import wait_for_run

from durable.testing import no_backoff


def load_example(name: str, directory: Path) -> dict[str, Any]:
    """Write example ``name`` to ``directory`` as a .py file and import it from there."""
    path = directory / f"{name}.py"
    path.write_text(sample_text("examples", name), encoding="utf-8")
    return runpy.run_path(str(path), run_name=f"example_{name}")


def files_in(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The examples keep their SQLite files in the working directory: a fresh one."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


async def test_examples(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """examples.py: every step runs once, repeated calls replay, retries wait 2 s then 4 s."""
    module = load_example("examples", workdir)
    try:
        with no_backoff() as waits:
            await module["main"]()
    finally:
        await module["wf"].close()
    out = capsys.readouterr().out
    # Example 2's call_flaky_api fails twice: exponential(base=2, max=30) waits 2 s, 4 s.
    assert waits == [2.0, 4.0]
    assert "[call_flaky_api] succeeded on attempt 3" in out
    assert "result: {'status': 'ok', 'data': [1, 2, 3]}" in out
    # Each step executes once, though every workflow but the flaky one is called twice.
    for line in (
        "[fetch_user] fetching user ord-42...",
        "[send_email] sending to ord-42@example.com for $49.99",
        "[push_record] pushing rec-4...",
        "[post_summary] all done — pushed 5 records",
        "[validate_invoice] validating 2 line(s) for Acme Corp",
        "[book_invoice] booking INV-",
    ):
        assert out.count(line) == 1, line
    assert "report: {'generated_for': '2024-01-15', 'by': 'Alice'}" in out
    bookings = [line for line in out.splitlines() if line.startswith("  result: {'reference'")]
    assert len(bookings) == 2
    assert bookings[0] == bookings[1]
    assert "All examples complete" in out
    assert (workdir / "examples.db").is_file()


async def test_in_memory_example(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """in_memory_example.py: two retries without waiting, then the second run replays."""
    module = load_example("in_memory_example", workdir)
    try:
        with no_backoff() as waits:
            await module["main"]()
    finally:
        await module["wf"].close()
    out = capsys.readouterr().out
    assert waits == [0.0, 0.0]
    assert out.count("[flaky_fetch] succeeded on attempt 3") == 1
    assert out.count("[transform] processing https://api.example.com/data") == 1
    assert out.count("result: transformed-ok") == 2
    assert files_in(workdir) == ["in_memory_example.py"]  # no database file


@pytest.mark.redis
async def test_redis_example(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """redis_example.py: retries, then a replay from Redis, on the local server it names."""
    await _services.redis_url()  # the example's localhost:6379 is the test server too
    url = "redis://localhost:6379/0"
    # Its prefix "example" is the example's own: start from no runs, leave none.
    await _services.delete_redis_prefix(url, "example:")
    try:
        module = load_example("redis_example", workdir)
        with no_backoff() as waits:
            await module["main"]()
    finally:
        await _services.delete_redis_prefix(url, "example:")
    out = capsys.readouterr().out
    assert waits == [0.0, 0.0]
    assert out.count("[flaky_fetch] succeeded on attempt 3") == 1
    assert out.count("[transform] processing") == 1
    assert out.count("result: transformed-ok") == 2


async def test_approval_example(workdir: Path) -> None:
    """approval.py over HTTP: the order waits for approval, then the webhook completes it once."""
    module = load_example("approval", workdir)
    wf = module["wf"]
    transport = httpx.ASGITransport(app=module["app"])
    run_id = "process-order-ord-100"
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            order = asyncio.ensure_future(client.post("/orders/ord-100"))
            await wait_for_run(wf, run_id, steps=1)  # validated, now waiting
            assert not order.done()
            approval = {"approved": True, "approver": "alice@example.com"}
            delivered = await client.post(f"/approve/{run_id}/manager-approval", json=approval)
            assert delivered.json() == {
                "status": "delivered",
                "run_id": run_id,
                "signal": "manager-approval",
            }
            fulfilled = {"status": "fulfilled", "order_id": "ord-100"}
            assert (await order).json() == fulfilled

            again = await client.post(f"/approve/{run_id}/manager-approval", json=approval)
            assert again.json()["status"] == "already_completed"
            assert (await client.post("/orders/ord-100")).json() == fulfilled
        run = await wf.get_run(run_id)
        assert [step.task for step in run.steps if not step.task.startswith("durable.")] == [
            "validate_order",
            "fulfill_order",
        ]
    finally:
        await wf.close()
