"""The thread behind SQLiteStore: aiosqlite's own on the fast path, a plain executor otherwise."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import aiosqlite
import pytest

from durable import _fastpaths
from durable._fastpaths import aiosqlite as adapter
from durable.stores.base import NewRun, StepRecord
from durable.stores.sqlite import SQLiteStore

_STEP = StepRecord("s", 0, "t", "completed", '"ok"', None, 1, 1.0, 2.0)


async def _round_trip(store: SQLiteStore) -> None:
    """Claim, save, finish and read back one run, failing on any wrong answer."""
    got = await store.claim_run(NewRun("app", "r", "wf", "{}"), owner="o", lease_ttl=60)
    assert got.acquired
    saved = await store.save_step("app", "r", got.run.token, _STEP)
    assert saved.step == _STEP
    await store.finish_run("app", "r", got.run.token, "completed", output="1")
    loaded = await store.load_run("app", "r")
    assert loaded is not None
    assert loaded[0].status == "completed"
    assert loaded[1] == (_STEP,)


def _kind(store: SQLiteStore) -> str:
    thread = store._thread
    assert thread is not None
    return thread.kind


async def test_the_switch_decides_the_backend(tmp_path: Path) -> None:
    """With fast paths on and a checked aiosqlite the store runs on aiosqlite, else the executor."""
    store = SQLiteStore(tmp_path / "durable.db")
    await store.open()
    try:
        checked = _fastpaths.version_in_range(aiosqlite.__version__, *adapter.VERIFIED)
        expected = "aiosqlite" if _fastpaths.enabled() and checked else "executor"
        assert _kind(store) == expected
        await _round_trip(store)
    finally:
        await store.close()


async def test_disabled_fast_paths_take_the_executor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DURABLE_DISABLE_FAST_PATHS makes the store use the public executor, which works."""
    monkeypatch.setattr(_fastpaths, "_DISABLED", True)
    assert not adapter.fast_path_available()
    before = set(threading.enumerate())
    store = SQLiteStore(tmp_path / "durable.db")
    await store.open()
    try:
        assert _kind(store) == "executor"
        started = set(threading.enumerate()) - before
        assert [t.name.startswith("durable-sqlite") for t in started] == [True]
        await _round_trip(store)
    finally:
        await store.close()


async def test_unchecked_aiosqlite_version_takes_the_executor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An aiosqlite whose private queue was not checked (0.21 here) is not used privately."""
    monkeypatch.setattr(_fastpaths, "_DISABLED", False)
    monkeypatch.setattr(aiosqlite, "__version__", "0.21.0")
    store = SQLiteStore(tmp_path / "durable.db")
    await store.open()
    try:
        assert _kind(store) == "executor"
        await _round_trip(store)
    finally:
        await store.close()


async def test_checked_aiosqlite_takes_the_fast_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the switch on and a checked version, the store is backed by aiosqlite's thread."""
    if not _fastpaths.version_in_range(aiosqlite.__version__, *adapter.VERIFIED):
        pytest.skip(f"aiosqlite {aiosqlite.__version__} is outside the checked range")
    monkeypatch.setattr(_fastpaths, "_DISABLED", False)
    store = SQLiteStore(tmp_path / "durable.db")
    await store.open()
    try:
        assert _kind(store) == "aiosqlite"
        await _round_trip(store)
    finally:
        await store.close()


_REPORT_BACKEND = textwrap.dedent(
    """
    import asyncio, sys
    from durable.stores.sqlite import SQLiteStore

    async def main():
        store = SQLiteStore(sys.argv[1])
        await store.open()
        print(store._thread.kind, flush=True)

    asyncio.run(main())
    """
)


@pytest.mark.parametrize(("env", "expected"), [("1", "executor"), ("0", "aiosqlite")])
def test_environment_variable_is_obeyed_and_never_closed_store_exits(
    tmp_path: Path, env: str, expected: str
) -> None:
    """A process started with the variable set picks the fallback; either way it exits promptly."""
    if expected == "aiosqlite" and not _fastpaths.version_in_range(
        aiosqlite.__version__, *adapter.VERIFIED
    ):
        pytest.skip(f"aiosqlite {aiosqlite.__version__} is outside the checked range")
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", _REPORT_BACKEND, str(tmp_path / "durable.db")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={**os.environ, _fastpaths.ENV_VAR: env},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == expected
    assert time.monotonic() - started < 5
