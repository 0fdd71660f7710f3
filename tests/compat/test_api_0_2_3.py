"""The public names and options of python-durable 0.2.3, as its users import and call them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tests._journal import Journal

import durable
from durable import InMemoryStore, Workflow
from durable.backoff import Backoff, constant, exponential
from durable.errors import ConfigurationError, NotInWorkflowError
from durable.testing import no_backoff


def _modules_after(code: str) -> list[str]:
    """The optional drivers loaded by a fresh interpreter after running ``code``."""
    probe = (
        f"{code}\nimport sys\n"
        "print(sorted(m for m in ('asyncpg', 'redis', 'pydantic', 'pydantic_ai') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return eval(out.stdout)  # type: ignore[no-any-return] # a list literal we printed


def test_every_0_2_name_imports_from_durable_without_loading_drivers() -> None:
    """The names 0.2.3 exported import from durable; only RedisStore's use loads redis."""
    names = (
        "Workflow, Store, SQLiteStore, InMemoryStore, RunContext, "
        "exponential, linear, constant, BackoffStrategy"
    )
    assert _modules_after(f"from durable import {names}") == []
    assert _modules_after("import durable.store, durable.workflow, durable.context") == []
    assert _modules_after("from durable import RedisStore") == ["redis"]
    assert _modules_after("from durable.redis_store import RedisStore") == ["redis"]


def test_0_2_module_paths_name_the_same_objects() -> None:
    """durable.store, durable.workflow, durable.context and durable.redis_store are aliases."""
    import durable.context
    import durable.redis_store
    import durable.store
    import durable.stores.memory
    import durable.stores.redis
    import durable.workflow

    assert durable.store.Store is durable.Store
    assert durable.store.SQLiteStore is durable.SQLiteStore
    assert durable.store.InMemoryStore is durable.stores.memory.InMemoryStore
    assert durable.workflow.Workflow is durable.Workflow
    assert durable.context.RunContext is durable.RunContext
    assert durable.redis_store.RedisStore is durable.stores.redis.RedisStore is durable.RedisStore
    assert durable.BackoffStrategy is Backoff
    assert (durable.exponential, durable.linear, durable.constant) == (
        exponential,
        durable.backoff.linear,
        constant,
    )


def test_version_sorts_after_0_2_3() -> None:
    """The package version is newer than 0.2.3, the last release of the former codebase."""
    parts = tuple(int(p) for p in durable.__version__.split("."))
    assert parts > (0, 2, 3)


def test_missing_redis_extra_is_named(tmp_path: Path) -> None:
    """Without the redis package, durable.RedisStore says which extra to install."""
    (tmp_path / "redis.py").write_text("raise ModuleNotFoundError('no redis', name='redis')\n")
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); sys.modules.pop('redis', None)\n"
        "import durable\n"
        "try:\n    durable.RedisStore\nexcept ImportError as exc:\n    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True
    )
    assert "pip install 'python-durable[redis]'" in out.stdout


async def test_bare_task_gets_the_app_defaults() -> None:
    """A bare @wf.task retries default_retries times with default_backoff; its own options win."""
    wf = Workflow("defaults", db=InMemoryStore(), default_retries=2, default_backoff=constant(7))
    journal = Journal()

    @wf.task
    async def bare() -> None:
        journal("bare")
        raise ConnectionError("down")

    @wf.task(retries=1)
    async def own_retries() -> None:
        journal("own")
        raise ConnectionError("down")

    @wf.task(backoff=constant(1))
    async def own_backoff() -> None:
        journal("backoff")
        raise ConnectionError("down")

    @wf.workflow(id="d-{which}")
    async def flow(which: str) -> None:
        await {"bare": bare, "own": own_retries, "backoff": own_backoff}[which]()

    for which, waits_expected in (
        ("bare", [7.0, 7.0]),
        ("own", [7.0]),
        ("backoff", [1.0, 1.0]),
    ):
        with no_backoff() as waits, pytest.raises(ConnectionError):
            await flow(which)
        assert waits == waits_expected, which
    assert journal.counts == {"bare": 3, "own": 2, "backoff": 3}


async def test_default_is_three_retries_with_exponential_backoff() -> None:
    """Without options an app's bare task makes 4 attempts, waiting 2, 4 and 8 seconds."""
    wf = Workflow("defaults", db=InMemoryStore())
    journal = Journal()

    @wf.task
    async def flaky() -> None:
        journal("attempt")
        raise ConnectionError("down")

    @wf.workflow(id="only")
    async def flow() -> None:
        await flaky()

    with no_backoff() as waits, pytest.raises(ConnectionError):
        await flow()
    assert waits == [2.0, 4.0, 8.0]
    assert len(journal) == 4
    assert (flaky.retries, wf.default_retries) == (3, 3)


async def test_defaults_do_not_apply_outside_a_workflow() -> None:
    """Outside a workflow a task is the plain function: one call, no retries."""
    wf = Workflow("defaults", db=InMemoryStore())
    journal = Journal()

    @wf.task
    async def flaky() -> None:
        journal("call")
        raise ConnectionError("down")

    with pytest.raises(ConnectionError):
        await flaky()
    assert len(journal) == 1


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"default_retries": -1}, "default_retries"),
        ({"default_retries": True}, "default_retries"),
        ({"default_backoff": 5}, "default_backoff"),
    ],
)
def test_bad_defaults_are_named(options: dict[str, Any], named: str) -> None:
    """An invalid default names the app and the option."""
    with pytest.raises(ConfigurationError, match=rf"Workflow 'bad': {named} must"):
        Workflow("bad", db=InMemoryStore(), **options)


def test_0_2_options_may_be_passed_positionally(tmp_path: Path) -> None:
    """Workflow(name, db, default_retries, default_backoff), in 0.2's order, still works."""
    backoff = constant(1)
    wf = Workflow("app", str(tmp_path / "jobs.db"), 5, backoff)
    assert isinstance(wf.store, durable.SQLiteStore)
    assert (wf.default_retries, wf.default_backoff) == (5, backoff)


async def test_run_context_inside_a_run(tmp_path: Path) -> None:
    """current_run() gives the run id and "app.workflow" id in a body and in its tasks."""
    from durable.context import RunContext, current_run

    wf = Workflow("shop", db=InMemoryStore())
    seen: list[RunContext] = []

    @wf.task
    async def step() -> None:
        seen.append(current_run())

    @wf.workflow(id="order-{n}")
    async def order(n: int) -> None:
        seen.append(current_run())
        await step()

    await order(7)
    assert [(c.run_id, c.workflow_id, c.app, c.workflow) for c in seen] == [
        ("order-7", "shop.order", "shop", "order"),
        ("order-7", "shop.order", "shop", "order"),
    ]
    with pytest.raises(NotInWorkflowError, match="current_run"):
        current_run()


async def test_store_setup_opens_it(tmp_path: Path) -> None:
    """store.setup(), 0.2's name for opening a store, makes it usable, as open() does."""
    store = durable.SQLiteStore(tmp_path / "s.db")
    await store.setup()
    try:
        assert await store.send_signal_once("app", "run", "go", "1") is True
    finally:
        await store.close()
