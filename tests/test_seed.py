"""Every code sample and promise of the product description, as written."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel
from tests._journal import Journal

from durable import Workflow
from durable.backoff import constant, exponential, linear
from durable.stores.base import Store
from durable.testing import no_backoff


class _Response:
    def __init__(self, url: str) -> None:
        self.url = url

    def json(self) -> dict[str, Any]:
        return {"url": self.url, "users": ["ada", "grace"]}


class _FakeHttpx:
    """Stands in for httpx so the quick start runs without a network."""

    def __init__(self, journal: Journal, failures: int = 0) -> None:
        self.journal = journal
        self.failures = failures
        outer = self

        class AsyncClient:
            async def __aenter__(self) -> AsyncClient:
                return self

            async def __aexit__(self, *exc: object) -> None:
                return None

            async def get(self, url: str) -> _Response:
                outer.journal(f"GET {url}")
                if outer.failures:
                    outer.failures -= 1
                    raise ConnectionError("connection reset")
                return _Response(url)

        self.AsyncClient = AsyncClient


async def test_quick_start_runs_and_replays(wf: Workflow) -> None:
    """The seed's quick start runs every step once, then replays without re-executing."""
    journal = Journal()
    httpx = _FakeHttpx(journal)
    inserted: list[dict[str, Any]] = []

    class db:
        @staticmethod
        async def insert(data: dict[str, Any]) -> None:
            journal("insert")
            inserted.append(data)

    @wf.task(retries=3, backoff=exponential(base=2, max=60))
    async def fetch_data(url: str) -> dict:  # type: ignore[type-arg]
        async with httpx.AsyncClient() as client:
            return (await client.get(url)).json()

    @wf.task
    async def save_result(data: dict) -> None:  # type: ignore[type-arg]
        await db.insert(data)

    @wf.workflow(id="pipeline-{source}")
    async def run_pipeline(source: str) -> None:
        data = await fetch_data(f"https://api.example.com/{source}")
        await save_result(data)

    await run_pipeline(source="users")
    assert journal.entries == ["GET https://api.example.com/users", "insert"]
    await run_pipeline(source="users")
    assert journal.entries == ["GET https://api.example.com/users", "insert"]
    assert inserted == [{"url": "https://api.example.com/users", "users": ["ada", "grace"]}]


async def test_quick_start_resumes_after_a_crash(wf: Workflow) -> None:
    """After a crash in save_result, calling again replays fetch_data and reruns only the rest."""
    journal = Journal()
    httpx = _FakeHttpx(journal)
    crash = {"armed": True}

    @wf.task(retries=3, backoff=exponential(base=2, max=60))
    async def fetch_data(url: str) -> dict:  # type: ignore[type-arg]
        async with httpx.AsyncClient() as client:
            return (await client.get(url)).json()

    @wf.task
    async def save_result(data: dict) -> None:  # type: ignore[type-arg]
        journal("insert")
        if crash["armed"]:
            raise RuntimeError("database went away")

    @wf.workflow(id="pipeline-{source}")
    async def run_pipeline(source: str) -> None:
        data = await fetch_data(f"https://api.example.com/{source}")
        await save_result(data)

    with pytest.raises(RuntimeError, match="database went away"):
        await run_pipeline(source="users")
    crash["armed"] = False
    await run_pipeline(source="users")
    assert journal.counts == {"GET https://api.example.com/users": 1, "insert": 2}


async def test_quick_start_bare_save_result_retries_then_resumes(store: Store) -> None:
    """With the app defaults, the bare save_result retries 3 times; a re-call resumes it."""
    wf = Workflow("seed-defaults", db=store)  # no default_retries: the library's own
    journal = Journal()
    httpx = _FakeHttpx(journal)
    outage = {"failures": 5}

    @wf.task(retries=3, backoff=exponential(base=2, max=60))
    async def fetch_data(url: str) -> dict:  # type: ignore[type-arg]
        async with httpx.AsyncClient() as client:
            return (await client.get(url)).json()

    @wf.task
    async def save_result(data: dict) -> None:  # type: ignore[type-arg]
        journal("insert")
        if outage["failures"]:
            outage["failures"] -= 1
            raise ConnectionError("database restarting")

    @wf.workflow(id="pipeline-{source}")
    async def run_pipeline(source: str) -> None:
        data = await fetch_data(f"https://api.example.com/{source}")
        await save_result(data)

    try:
        with no_backoff() as waits, pytest.raises(ConnectionError):
            await run_pipeline(source="users")  # 4 attempts, all during the outage
        assert waits == [2.0, 4.0, 8.0]
        with no_backoff() as waits:
            await run_pipeline(source="users")  # fetch_data replays; save_result runs again
        assert waits == [2.0]
    finally:
        await wf.close()
    assert journal.counts == {"GET https://api.example.com/users": 1, "insert": 6}


async def test_fetch_data_retries_with_the_seed_backoff(wf: Workflow) -> None:
    """retries=3 with exponential(base=2, max=60) retries a flaky call after 2s and 4s."""
    journal = Journal()
    httpx = _FakeHttpx(journal, failures=2)

    @wf.task(retries=3, backoff=exponential(base=2, max=60))
    async def fetch_data(url: str) -> dict:  # type: ignore[type-arg]
        async with httpx.AsyncClient() as client:
            return (await client.get(url)).json()

    @wf.workflow(id="pipeline-{source}")
    async def run_pipeline(source: str) -> dict:  # type: ignore[type-arg]
        return await fetch_data(f"https://api.example.com/{source}")

    with no_backoff() as waits:
        result = await run_pipeline(source="users")
    assert result["url"] == "https://api.example.com/users"
    assert waits == [2.0, 4.0]
    assert len(journal) == 3


@pytest.mark.parametrize(
    ("backoff", "retries", "expected"),
    [
        (exponential(base=2, max=60), 5, [2.0, 4.0, 8.0, 16.0, 32.0]),
        (linear(start=2, step=3), 3, [2.0, 5.0, 8.0]),
        (constant(5), 3, [5.0, 5.0, 5.0]),
    ],
)
async def test_backoff_samples_wait_as_commented(
    wf: Workflow, backoff: Any, retries: int, expected: list[float]
) -> None:
    """The three backoff samples wait exactly the seconds their comments state."""
    attempts = Journal()

    @wf.task(retries=retries, backoff=backoff)
    async def always_fails() -> None:
        attempts("attempt")
        raise ConnectionError("down")

    @wf.workflow(id="backoff-sample")
    async def flow() -> None:
        await always_fails()

    with no_backoff() as waits, pytest.raises(ConnectionError):
        await flow()
    assert waits == expected
    assert len(attempts) == retries + 1


async def test_loop_with_step_id_resumes_only_remaining_items(wf: Workflow) -> None:
    """A crash mid-loop resumes with only the items not yet checkpointed."""
    journal = Journal()
    items = ["a", "b", "c", "d", "e"]
    fail_on = {"value": "d"}

    @wf.task
    async def process_item(item: str) -> str:
        journal(item)
        if item == fail_on["value"]:
            raise RuntimeError(f"crash on {item}")
        return item.upper()

    @wf.workflow(id="batch-{batch_id}")
    async def process_batch(batch_id: str) -> None:
        for i, item in enumerate(items):
            await process_item(item, step_id=f"item-{i}")

    with pytest.raises(RuntimeError):
        await process_batch(batch_id="42")
    fail_on["value"] = ""
    await process_batch(batch_id="42")
    assert journal.entries == ["a", "b", "c", "d", "d", "e"]


async def test_tasks_are_plain_functions_outside_workflows(wf: Workflow, tmp_path: Any) -> None:
    """Outside a workflow a task runs as the plain async function and stores nothing."""
    calls = Journal()

    @wf.task(retries=3)
    async def double(x: int) -> int:
        calls("double")
        return x * 2

    assert await double(21) == 42
    assert await double(21) == 42
    assert len(calls) == 2
    assert list(await wf.store.list_runs(wf.name)) == []


class InvoiceDraft(BaseModel):
    customer: str
    amount_cents: int


class ValidatedInvoice(BaseModel):
    customer: str
    amount_cents: int
    vat_cents: int


async def test_pydantic_model_dump_pattern(wf: Workflow) -> None:
    """The seed's model_dump()/model_validate() pattern round-trips through the store."""
    booked: list[ValidatedInvoice] = []

    @wf.task
    async def validate_invoice(draft: InvoiceDraft) -> dict:  # type: ignore[type-arg]
        validated = ValidatedInvoice(
            customer=draft.customer,
            amount_cents=draft.amount_cents,
            vat_cents=draft.amount_cents // 5,
        )
        return validated.model_dump()

    @wf.task
    async def book_invoice(data: dict) -> dict:  # type: ignore[type-arg]
        invoice = ValidatedInvoice.model_validate(data)
        booked.append(invoice)
        return {"booked": invoice.customer}

    @wf.workflow(id="invoice-{customer}")
    async def invoice_flow(customer: str, amount_cents: int) -> dict:  # type: ignore[type-arg]
        data = await validate_invoice(InvoiceDraft(customer=customer, amount_cents=amount_cents))
        return await book_invoice(data)

    assert await invoice_flow("acme", 1000) == {"booked": "acme"}
    assert await invoice_flow("acme", 1000) == {"booked": "acme"}
    assert booked == [ValidatedInvoice(customer="acme", amount_cents=1000, vat_cents=200)]


async def test_default_store_is_durable_db_in_the_working_directory(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Workflow("my-app") with no db keeps its runs in ./durable.db."""
    monkeypatch.chdir(tmp_path)
    wf = Workflow("my-app")

    @wf.task
    async def step() -> int:
        return 1

    @wf.workflow(id="only")
    async def flow() -> int:
        return await step()

    try:
        assert await flow() == 1
    finally:
        await wf.close()
    assert (tmp_path / "durable.db").exists()
