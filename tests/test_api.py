"""Decorator options, bad input, db resolution and the public surface of the package."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import durable
from durable import InMemoryStore, SQLiteStore, Workflow
from durable.errors import ConfigurationError, DurableError, RunIdError


def test_all_is_sorted_and_complete() -> None:
    """durable.__all__ is sorted and names every public attribute."""
    assert durable.__all__ == sorted(durable.__all__)
    public = {name for name in dir(durable) if not name.startswith("_")}
    modules = {name for name in public if inspect.ismodule(getattr(durable, name))}
    assert public - modules == set(durable.__all__)


def test_importing_durable_loads_no_optional_driver() -> None:
    """import durable never imports asyncpg, redis, pydantic, click, rich or opentelemetry."""
    optional = ("asyncpg", "redis", "pydantic", "pytest", "click", "rich", "opentelemetry")
    code = (
        "import sys, durable, durable.testing, durable.backoff, durable.stores, durable.cli;"
        f"print(sorted(m for m in {optional!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_sync_function_is_rejected_at_decoration() -> None:
    """A non-async function given to either decorator is a ConfigurationError (a TypeError)."""
    wf = Workflow("api", db=InMemoryStore())

    def plain() -> None:
        return None

    with pytest.raises(
        TypeError, match=re.escape("'test_sync_function_is_rejected_at_decoration.<locals>.plain'")
    ):
        wf.task(plain)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="async def"):
        wf.workflow(plain)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="async def"):
        wf.task(retries=2)(plain)  # type: ignore[arg-type]


def test_unknown_template_placeholder_is_named() -> None:
    """An id template placeholder that is not a parameter is named with the available ones."""
    wf = Workflow("api", db=InMemoryStore())
    with pytest.raises(ConfigurationError) as info:

        @wf.workflow(id="pipeline-{sorce}")
        async def run_pipeline(source: str, day: int = 1) -> None:
            return None

    message = str(info.value)
    assert "{sorce}" in message
    assert "source, day" in message
    assert "run_pipeline" in message


def test_template_attribute_access_is_allowed() -> None:
    """Placeholders may reach into a parameter, e.g. {order.id} or {ids[0]}."""
    wf = Workflow("api", db=InMemoryStore())

    @wf.workflow(id="order-{order[id]}-{ids[0]}")
    async def ship(order: dict[str, Any], ids: list[int]) -> None:
        return None

    assert ship.id_template is not None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"retries": -1}, "retries must be an int >= 0"),
        ({"retries": True}, "retries must be an int >= 0"),
        ({"retries": 1.5}, "retries must be an int >= 0"),
        ({"backoff": 5}, "backoff must be callable"),
        ({"timeout": 0}, "timeout must be a number > 0"),
        ({"retry_on": "ValueError"}, "retry_on must be an exception type"),
    ],
)
def test_bad_task_options_name_the_task(options: dict[str, Any], message: str) -> None:
    """Invalid @wf.task options raise at decoration with the task's name."""
    wf = Workflow("api", db=InMemoryStore())

    async def my_task() -> None:
        return None

    with pytest.raises(ConfigurationError, match=message) as info:
        wf.task(**options)(my_task)
    assert "my_task" in str(info.value)


def test_step_id_parameter_is_reserved() -> None:
    """A task with its own parameter named step_id is rejected with a clear message."""
    wf = Workflow("api", db=InMemoryStore())
    with pytest.raises(ConfigurationError, match="'step_id' is reserved"):

        @wf.task
        async def bad(step_id: str) -> None:
            return None


def test_duplicate_names_are_rejected() -> None:
    """Two different functions registered under one name is a ConfigurationError."""
    wf = Workflow("api", db=InMemoryStore())

    @wf.task(name="shared")
    async def one() -> None:
        return None

    with pytest.raises(ConfigurationError, match="already has a task or workflow named 'shared'"):

        @wf.workflow(name="shared")
        async def two() -> None:
            return None


@pytest.mark.parametrize(
    ("run_id", "message"),
    [
        ("", "run id is empty"),
        ("x" * 1001, "1001 characters long, over the limit of 1000"),
        ("a\x00b", "control character"),
        ("line\nbreak", "control character"),
        ("bell\x07", "control character"),
    ],
)
async def test_bad_run_ids_are_rejected_at_call_time(run_id: str, message: str) -> None:
    """Empty, overlong and control-character run ids raise RunIdError naming the workflow."""
    store = InMemoryStore()
    wf = Workflow("api", db=store)

    @wf.workflow(id="{key}")
    async def keyed(key: str) -> None:
        return None

    with pytest.raises(RunIdError, match=message) as info:
        await keyed(run_id)
    assert "'keyed'" in str(info.value)
    with pytest.raises(RunIdError):
        await keyed.run(run_id, "ok")
    assert list(await store.list_runs("api")) == []


def test_workflow_option_validation() -> None:
    """Bad Workflow() arguments are rejected with the option named."""
    with pytest.raises(ConfigurationError, match="name"):
        Workflow("")
    for unstorable in ("app\x00", "app\ud800", "tab\tapp"):
        with pytest.raises(ConfigurationError, match=r"Workflow name .* control characters"):
            Workflow(unstorable, db=InMemoryStore())
    with pytest.raises(ConfigurationError, match="lease_ttl"):
        Workflow("a", db=InMemoryStore(), lease_ttl=0)
    with pytest.raises(ConfigurationError, match="heartbeat"):
        Workflow("a", db=InMemoryStore(), lease_ttl=5, heartbeat=10)
    with pytest.raises(ConfigurationError, match="scheme 'mysql'"):
        Workflow("a", db="mysql://localhost/x")
    with pytest.raises(TypeError, match="db must be"):
        Workflow("a", db=42)  # type: ignore[arg-type]


def test_db_accepts_paths_urls_and_stores(tmp_path: Path) -> None:
    """db= takes a path, a Path, a sqlite:/// URL or a Store instance."""
    store = InMemoryStore()
    assert Workflow("a", db=store).store is store
    assert isinstance(Workflow("a", db=str(tmp_path / "x.db")).store, SQLiteStore)
    assert isinstance(Workflow("a", db=tmp_path / "x.db").store, SQLiteStore)
    assert isinstance(Workflow("a", db=f"sqlite:///{tmp_path}/x.db").store, SQLiteStore)


def test_errors_share_one_base() -> None:
    """Every error class in durable.errors except the NonRetryableError marker is a DurableError."""
    from durable import errors

    classes = [
        obj
        for obj in vars(errors).values()
        if isinstance(obj, type)
        and issubclass(obj, Exception)
        and obj.__module__ == errors.__name__
    ]
    assert len(classes) > 10
    for cls in classes:
        assert issubclass(cls, DurableError) or cls is errors.NonRetryableError, cls


def test_decorated_functions_keep_name_doc_and_signature() -> None:
    """Decorators preserve __name__, __doc__ and the signature of the function."""
    wf = Workflow("api", db=InMemoryStore())

    @wf.task
    async def fetch(url: str, *, retries_hint: int = 1) -> dict[str, Any]:
        """Fetch a page."""
        return {}

    @wf.workflow(id="w-{n}")
    async def flow(n: int) -> None:
        """Run it."""

    assert fetch.__name__ == "fetch"
    assert fetch.__doc__ == "Fetch a page."
    assert str(inspect.signature(fetch)) == str(inspect.signature(fetch.fn))
    assert flow.__name__ == "flow"
    assert str(inspect.signature(flow)) == str(inspect.signature(flow.fn))
    assert list(inspect.signature(flow).parameters) == ["n"]


@pytest.mark.parametrize("step_id", ["", "tab\there", "nul\x00"])
async def test_bad_step_ids_name_the_task(step_id: str) -> None:
    """An empty step_id or one with control characters is rejected, naming the task."""
    wf = Workflow("api", db=InMemoryStore())

    @wf.task
    async def work() -> int:
        return 1

    @wf.workflow(id="steps")
    async def flow() -> int:
        return await work(step_id=step_id)

    with pytest.raises(ConfigurationError, match="task 'work': step_id"):
        await flow()


def test_positional_option_is_a_clear_type_error() -> None:
    """@wf.task(3) or @wf.workflow("id") explains that options are keyword-only."""
    wf = Workflow("api", db=InMemoryStore())
    with pytest.raises(TypeError, match=r"keyword-only, e\.g\. @wf\.task\(retries=3\)"):
        wf.task(3)  # type: ignore[call-overload]
    with pytest.raises(TypeError, match=r"keyword-only, e\.g\. @wf\.workflow\(id="):
        wf.workflow("pipeline-{source}")  # type: ignore[call-overload]


@pytest.mark.parametrize("name", ["a:b", "send#1", "durable.sleep", "durable.signal", "tab\there"])
def test_names_that_could_address_another_step_are_rejected(name: str) -> None:
    """':' and '#' build step ids and 'durable.' names the library's steps: refused."""
    wf = Workflow("api", db=InMemoryStore())

    async def fn() -> None:
        return None

    with pytest.raises(ConfigurationError, match=re.escape(repr(name))):
        wf.task(name=name)(fn)
    with pytest.raises(ConfigurationError, match=re.escape(repr(name))):
        wf.workflow(name=name)(fn)


def test_a_function_without_a_name_asks_for_one() -> None:
    """A callable without __name__ (a partial) is told to pass name=."""
    import functools

    wf = Workflow("api", db=InMemoryStore())

    async def fn(x: int) -> int:
        return x

    with pytest.raises(ConfigurationError, match=r"name=\.\.\."):
        wf.task(functools.partial(fn, 1))
    assert wf.task(name="fn-1")(functools.partial(fn, 1)).name == "fn-1"


@pytest.mark.parametrize("run_id", ["", "x" * 1001, "line\nbreak", 5, None])
async def test_run_control_methods_check_run_ids(run_id: Any) -> None:
    """get_run, cancel, resume and send_signal refuse ids no run can have: RunIdError."""
    store = InMemoryStore()
    wf = Workflow("api", db=store)
    for call in (
        wf.get_run(run_id),
        wf.cancel(run_id),
        wf.resume(run_id),
        wf.send_signal(run_id, "go", 1),
    ):
        with pytest.raises(RunIdError, match="app 'api'"):
            await call
    assert list(await store.list_runs("api")) == []


async def test_oversized_workflow_arguments_are_refused_naming_the_parameter() -> None:
    """max_value_bytes bounds the stored inputs too; nothing is stored."""
    from durable.errors import ResultTooLargeError

    store = InMemoryStore()
    wf = Workflow("api", db=store, max_value_bytes=1000)

    @wf.workflow(id="report-{name}")
    async def report(name: str, rows: list[str]) -> int:
        return len(rows)

    with pytest.raises(ResultTooLargeError, match="parameter 'rows'") as info:
        await report("big", ["x" * 100] * 20)
    assert "'report'" in str(info.value)
    assert list(await store.list_runs("api")) == []
    assert await report("small", ["x"]) == 1


async def test_a_non_json_argument_is_named_as_an_argument() -> None:
    """The error for an argument that JSON cannot hold names the parameter, as an argument."""
    from durable.errors import SerializationError

    wf = Workflow("api", db=InMemoryStore())

    @wf.workflow(id="wd")
    async def wd(d: object) -> None:
        return None

    with pytest.raises(SerializationError, match="parameter 'd' got a value") as info:
        await wd(object())
    assert "returned" not in str(info.value)


def test_the_library_prints_nothing_unless_logging_is_configured(tmp_path: Path) -> None:
    """Failed steps log warnings, but an app that configured no logging sees no output."""
    script = (
        "import asyncio, durable\n"
        f"wf = durable.Workflow('quiet', db={str(tmp_path / 'q.db')!r})\n"
        "@wf.task(retries=0)\n"
        "async def boom() -> None:\n"
        "    raise KeyError('x')\n"
        "@wf.workflow(id='quiet')\n"
        "async def flow() -> str:\n"
        "    try:\n"
        "        await boom()\n"
        "    except KeyError:\n"
        "        return 'caught'\n"
        "    return 'no'\n"
        "print(asyncio.run(flow()))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout == "caught\n"
    assert done.stderr == ""
