"""Any acceptable run id (quotes, SQL, unicode) is stored and returned byte-identical."""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from durable import Workflow
from durable.errors import RunIdError
from durable.stores.sqlite import SQLiteStore

# Everything except control characters (Cc) and lone surrogates (Cs), which
# are rejected at call time.
_ID_TEXT = st.text(
    alphabet=st.characters(exclude_categories=("Cc", "Cs")), min_size=1, max_size=1000
)
_TRICKY = st.sampled_from(
    ["'; DROP TABLE durable_runs; --", '"quoted"', "100%_like\\", "ü/ß/日本/🙂", " ", "a" * 1000]
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(run_id=st.one_of(_ID_TEXT, _TRICKY))
def test_run_ids_round_trip_byte_identical(run_id: str) -> None:
    """A run stored under any non-control text id is found, listed and stored under that id."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ids.db"

        async def scenario() -> None:
            app = Workflow("ids", db=SQLiteStore(path))
            calls: list[str] = []

            @app.workflow
            async def echo(value: str) -> str:
                calls.append(value)
                return value

            try:
                assert await echo.run(run_id, run_id) == run_id
                assert await echo.run(run_id, run_id) == run_id
                run = await app.store.get_run("ids", run_id)
                assert run is not None
                assert run.run_id == run_id
                assert [r.run_id for r in await app.store.list_runs("ids")] == [run_id]
            finally:
                await app.close()
            assert calls == [run_id]

        asyncio.run(scenario())
        db = sqlite3.connect(path)
        try:
            db.text_factory = bytes
            stored = db.execute("SELECT run_id, output FROM durable_runs").fetchall()
        finally:
            db.close()
        assert [row[0] for row in stored] == [run_id.encode("utf-8")]


@pytest.mark.parametrize("bad", ["", "x" * 1001, "nul\x00", "esc\x1b[0m", "del\x7f", "c1\x85"])
async def test_unacceptable_run_ids_store_nothing(tmp_path: Path, bad: str) -> None:
    """A rejected run id raises RunIdError before anything reaches the database."""
    app = Workflow("ids", db=SQLiteStore(tmp_path / "ids.db"))
    ran: list[str] = []

    @app.workflow
    async def echo(value: str) -> str:
        ran.append(value)
        return value

    try:
        with pytest.raises(RunIdError):
            await echo.run(bad, "x")
        assert list(await app.store.list_runs("ids")) == []
    finally:
        await app.close()
    assert ran == []
