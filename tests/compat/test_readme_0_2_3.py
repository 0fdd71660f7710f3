"""python-durable 0.2.3's README code samples, run as published (see v0_2_3/SOURCE.md)."""

from __future__ import annotations

import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import BaseModel
from tests import _services
from tests._journal import Journal
from tests.compat._samples import run_readme_sample

from durable import Workflow
from durable.testing import no_backoff


def fake_httpx(journal: Journal) -> SimpleNamespace:
    """Stands in for httpx: the quick start calls an API this machine cannot reach."""

    class Response:
        def __init__(self, url: str) -> None:
            self.url = url

        def json(self) -> dict[str, Any]:
            return {"source": self.url, "users": ["ada", "grace"]}

    class AsyncClient:
        async def __aenter__(self) -> AsyncClient:
            return self

        async def __aexit__(self, *exc: object) -> None:
            return None

        async def get(self, url: str) -> Response:
            journal(f"GET {url}")
            return Response(url)

    return SimpleNamespace(AsyncClient=AsyncClient)


class FlakyDb:
    """A database whose inserts fail ``failures`` times before they succeed."""

    def __init__(self, journal: Journal, failures: int) -> None:
        self.journal = journal
        self.failures = failures
        self.rows: list[Any] = []

    async def insert(self, data: Any) -> None:
        self.journal("insert")
        if self.failures:
            self.failures -= 1
            raise ConnectionError("database restarting")
        self.rows.append(data)


async def test_quick_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The quick start runs in ./durable.db; its bare save_result task retries by default."""
    monkeypatch.chdir(tmp_path)
    journal = Journal()
    db = FlakyDb(journal, failures=2)
    namespace: dict[str, Any] = {"httpx": fake_httpx(journal), "db": db}
    try:
        with no_backoff() as waits:
            await run_readme_sample("quick_start", namespace)
        # Twice a failed insert: the app's default 3 retries, after 2 s and 4 s.
        assert waits == [2.0, 4.0]
        assert journal.entries == ["GET https://api.example.com/users"] + ["insert"] * 3
        assert db.rows == [{"source": "https://api.example.com/users", "users": ["ada", "grace"]}]

        await namespace["run_pipeline"](source="users")  # completed: nothing runs again
        assert len(journal) == 4
    finally:
        await namespace["wf"].close()
    assert (tmp_path / "durable.db").is_file()


async def test_signals(wf: Workflow) -> None:
    """The signals sample's complete() reaches the run, which ships once; a second is refused."""
    journal = Journal()

    @wf.task
    async def prepare_order(order_id: str) -> None:
        journal(f"prepare {order_id}")

    @wf.task
    async def ship_order(order_id: str) -> None:
        journal(f"ship {order_id}")

    namespace = {"wf": wf, "prepare_order": prepare_order, "ship_order": ship_order}
    # The sample delivers its signal before any run of order 42 exists.
    await run_readme_sample("signals", namespace)
    await namespace["process_order"]("42")
    assert journal.entries == ["prepare 42", "ship 42"]
    assert await wf.complete("order-42", "manager-approval", {"approved": False}) is False
    await namespace["process_order"]("42")
    assert journal.entries == ["prepare 42", "ship 42"]


@pytest.mark.redis
async def test_redis_store() -> None:
    """The Redis sample builds an app on RedisStore(url=..., ttl=...) that runs workflows."""
    await _services.redis_url()  # the sample's localhost:6379 is the test server too
    namespace = await run_readme_sample("redis_store", {})
    wf, store = namespace["wf"], namespace["store"]
    assert wf.store is store

    @wf.task
    async def greet(name: str) -> str:
        return f"hello {name}"

    @wf.workflow
    async def hello(name: str) -> str:
        return await greet(name)

    # A new run each time; the sample's ttl expires it a day after it finished.
    name = uuid.uuid4().hex
    try:
        assert await hello(name) == f"hello {name}"
        runs = await wf.list_runs(workflow="hello", status="completed")
        assert any(run.inputs == {"name": name} for run in runs)
    finally:
        await wf.close()


async def test_backoff_strategies(wf: Workflow) -> None:
    """Each backoff sample waits the seconds its comment states, between its retries."""
    namespace = await run_readme_sample("backoff", {"wf": wf})
    expected = {
        "exp_task": [2.0, 4.0, 8.0, 16.0, 32.0],
        "linear_task": [2.0, 5.0, 8.0],
        "const_task": [5.0, 5.0, 5.0],
    }
    for name, waits in expected.items():
        task = namespace[name]
        assert task.retries == len(waits), name
        assert [task.backoff(k) for k in range(1, task.retries + 1)] == waits, name


async def test_loops_with_step_id(wf: Workflow) -> None:
    """A failure mid-loop leaves the processed items checkpointed; the re-run does the rest."""
    journal = Journal()
    broken = {"c"}

    @wf.task(retries=0)
    async def process_item(item: str) -> str:
        journal(item)
        if item in broken:
            raise RuntimeError(f"cannot process {item}")
        return item.upper()

    namespace = {"wf": wf, "items": ["a", "b", "c", "d"], "process_item": process_item}
    await run_readme_sample("loops", namespace)
    with pytest.raises(RuntimeError, match="cannot process c"):
        await namespace["process_batch"]("b-1")
    broken.clear()
    await namespace["process_batch"]("b-1")
    assert journal.entries == ["a", "b", "c", "c", "d"]


class InvoiceDraft(BaseModel):
    customer: str


class ValidatedInvoice(BaseModel):
    """The sample elides its constructor arguments (``ValidatedInvoice(...)``)."""

    customer: str = "acme"
    total_cents: int = 1250

    def __init__(self, *elided: object, **fields: Any) -> None:
        super().__init__(**fields)


async def test_json_serialization(wf: Workflow) -> None:
    """model_dump() in one task and model_validate() in the next round-trip through the store."""
    namespace: dict[str, Any] = {
        "wf": wf,
        "InvoiceDraft": InvoiceDraft,
        "ValidatedInvoice": ValidatedInvoice,
    }
    await run_readme_sample("json_serialization", namespace)
    validate_invoice, book_invoice = namespace["validate_invoice"], namespace["book_invoice"]

    @wf.workflow(id="invoice-{customer}")
    async def invoice(customer: str) -> dict[str, Any]:
        data = await validate_invoice(InvoiceDraft(customer=customer))
        await book_invoice(data)
        return data

    assert await invoice("acme") == {"customer": "acme", "total_cents": 1250}
    run = await wf.get_run("invoice-acme")
    assert [step.task for step in run.steps] == ["validate_invoice", "book_invoice"]
    assert run.steps[0].result == {"customer": "acme", "total_cents": 1250}
