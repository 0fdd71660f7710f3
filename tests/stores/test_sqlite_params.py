"""SQLiteStore binds parameters the way every supported Python accepts without a warning.

Python 3.12 deprecates binding a sequence to named or numbered placeholders
(``:name``, ``?1``); suites running with warnings as errors would fail. This
runs every store operation through a connection that refuses that, on any
Python version.
"""

from __future__ import annotations

import asyncio
import functools
import re
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from durable.errors import LeaseLostError
from durable.stores.base import NewRun, QueueLimits, StepRecord
from durable.stores.sqlite import SQLiteStore

_NAMED = re.compile(r"\?\d|[:@$][A-Za-z_]")


class _PositionalOnly(sqlite3.Connection):
    """A connection that notes every statement binding a sequence to named placeholders."""

    misbound: list[str]

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        if not isinstance(parameters, Mapping) and _NAMED.search(sql):
            _PositionalOnly.misbound.append(" ".join(sql.split()))
        return super().execute(sql, parameters)


@pytest.fixture
def misbound(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Statements bound by position to named placeholders, by connections opened from now on."""
    found: list[str] = []
    monkeypatch.setattr(_PositionalOnly, "misbound", found, raising=False)
    monkeypatch.setattr(
        sqlite3, "connect", functools.partial(sqlite3.connect, factory=_PositionalOnly)
    )
    return found


async def _every_operation(store: SQLiteStore) -> None:
    """Each store operation at least once, its hot and its slow paths alike."""
    step = StepRecord("s", 0, "t", "completed", '"ok"', None, 1, 1.0, 2.0)
    got = await store.claim_run(NewRun("app", "r", "wf", "{}"), owner="o", lease_ttl=60)
    token = got.run.token
    await store.save_step("app", "r", token, step)
    await store.save_step("app", "r", token, step)  # the existing step is answered
    with pytest.raises(LeaseLostError):
        await store.save_step("app", "r", token + 1, step)
    await asyncio.gather(*(store.save_step("app", "r", token, step) for _ in range(3)))
    await store.renew_lease("app", "r", token, 60)
    await store.renew_leases("app", [("r", token)], 60)
    assert await store.send_signal("app", "r", "go", "1") == 0
    assert await store.read_signal("app", "r", "go", 0) == "1"
    assert await store.read_signals("app", [("r", "go", 0)]) == {("r", "go", 0): "1"}
    assert (await store.get_run("app", "r")) is not None
    assert len(await store.list_runs("app", status="running", workflow="wf")) == 1
    await store.request_cancel("app", "r")
    await store.release_run("app", "r", token)
    again = await store.claim_run(NewRun("app", "r", "wf", "{}"), owner="p", lease_ttl=60)
    await store.finish_run("app", "r", again.run.token, "failed", error='"e"')
    restarted = await store.claim_run(NewRun("app", "r", "wf", "{}"), owner="p", lease_ttl=60)
    assert restarted.acquired
    loaded = await store.load_run("app", "r")
    assert loaded is not None
    assert loaded[1] == (step,)
    queued = NewRun("app", "q", "wf", "{}", queue="q", priority=1, not_before=0.0)
    assert (await store.enqueue_run(queued))[1]
    assert not (await store.enqueue_run(queued))[1]
    limits = [QueueLimits("q", concurrency=2, rate_limit=(5, 60.0))]
    claims = await store.claim_queued("app", limits, owner="w", lease_ttl=60, limit=2)
    assert [c.run.run_id for c in claims] == ["q"]


async def test_no_sequence_is_bound_to_named_placeholders(
    tmp_path: Path, misbound: list[str]
) -> None:
    """Every statement the store runs binds a sequence only to plain ``?`` placeholders."""
    store = SQLiteStore(tmp_path / "durable.db")
    try:
        await _every_operation(store)
    finally:
        await store.close()
    assert misbound == []
