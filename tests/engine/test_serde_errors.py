"""Recorded errors: what is kept of an exception, and how it is rebuilt on replay."""

from __future__ import annotations

import asyncio
import json

import pytest
from tests._journal import Journal, interrupt

from durable import Workflow
from durable.engine import serde as _serde
from durable.errors import SerializationError, TaskFailedError


class HTTPStatusError(Exception):
    """Shaped like httpx.HTTPStatusError: a keyword-only argument kept as an attribute."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class WithResponse(Exception):
    """Carries one attribute JSON can keep and several it cannot."""

    def __init__(self, message: str, *, response: object, code: int) -> None:
        super().__init__(message)
        self.response = response
        self.code = code
        self.pair = (1, 2)  # would come back as a list
        self.by_id = {1: "a"}  # would come back with a string key
        self.ratio = float("nan")


class QuotaError(Exception):
    """Its message is made from attributes, not from args."""

    def __init__(self, *, used: int, limit: int) -> None:
        super().__init__()
        self.used = used
        self.limit = limit

    def __str__(self) -> str:
        return f"{self.used}/{self.limit} requests used"


class HandleError(Exception):
    """Its message needs an attribute that cannot be stored."""

    def __init__(self, *, handle: object) -> None:
        super().__init__()
        self.handle = handle

    def __str__(self) -> str:
        return f"bad handle {self.handle!r}"


class DefaultStatusError(Exception):
    """Rebuildable by cls(*args), but then with the wrong attribute."""

    def __init__(self, message: str, status: int = 500) -> None:
        super().__init__(message)
        self.status = status


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no message")


def roundtrip(exc: BaseException) -> BaseException | None:
    return _serde.rebuild_error(_serde.encode_error(exc))


def test_keyword_only_init_rebuilds_as_its_own_type() -> None:
    """An httpx-shaped error comes back as its class, with args, message and attribute."""
    rebuilt = roundtrip(HTTPStatusError("Server error '503'", status=503))
    assert type(rebuilt) is HTTPStatusError
    assert rebuilt.args == ("Server error '503'",)
    assert str(rebuilt) == "Server error '503'"
    assert rebuilt.status == 503


def test_attributes_that_are_not_json_are_absent() -> None:
    """Only attributes that come back from JSON as the same value are restored."""
    rebuilt = roundtrip(WithResponse("failed", response=object(), code=7))
    assert type(rebuilt) is WithResponse
    assert rebuilt.code == 7
    for name in ("response", "pair", "by_id", "ratio"):
        assert not hasattr(rebuilt, name), name


def test_message_made_from_attributes() -> None:
    """A __str__ that reads attributes works once they are restored."""
    rebuilt = roundtrip(QuotaError(used=100, limit=100))
    assert type(rebuilt) is QuotaError
    assert str(rebuilt) == "100/100 requests used"
    assert (rebuilt.used, rebuilt.limit) == (100, 100)


def test_message_that_cannot_be_remade_is_rejected() -> None:
    """If str() of the rebuilt error fails or differs, it is not rebuilt at all."""
    assert roundtrip(HandleError(handle=object())) is None


def test_recorded_attributes_override_init_defaults() -> None:
    """When cls(*args) works, the recorded attributes still win over __init__ defaults."""
    rebuilt = roundtrip(DefaultStatusError("gone", status=410))
    assert type(rebuilt) is DefaultStatusError
    assert rebuilt.status == 410


def test_plain_errors_still_rebuild() -> None:
    """Built-in and simple errors rebuild as before, notes included."""
    error = KeyError("user")
    error.add_note("while loading")
    rebuilt = roundtrip(error)
    assert type(rebuilt) is KeyError
    assert rebuilt.args == ("user",)
    assert rebuilt.__notes__ == ["while loading"]
    assert type(roundtrip(ValueError("bad", 3))) is ValueError


def test_error_class_defined_in_a_function_is_not_rebuilt() -> None:
    """A class not reachable by name from its module gives None (TaskFailedError on replay)."""

    class LocalError(Exception):
        pass

    assert roundtrip(LocalError("local")) is None


def test_unsafe_records_are_not_rebuilt() -> None:
    """Never an import, and never a class that is not an Exception."""
    record = json.loads(_serde.encode_error(HTTPStatusError("x", status=1)))
    for module, qualname in [
        ("durable_not_imported_module", "Error"),
        ("builtins", "SystemExit"),
        ("builtins", "object"),
        ("builtins", "len"),
    ]:
        text = json.dumps({**record, "module": module, "qualname": qualname})
        assert _serde.rebuild_error(text) is None


def test_records_without_attributes_still_rebuild() -> None:
    """Errors recorded before attributes were kept rebuild as they did."""
    record = json.loads(_serde.encode_error(ValueError("old")))
    del record["attributes"]
    rebuilt = _serde.rebuild_error(json.dumps(record))
    assert type(rebuilt) is ValueError
    assert str(rebuilt) == "old"


def test_attributes_are_bounded() -> None:
    """A huge attribute is left out; small ones are kept."""
    error = HTTPStatusError("big", status=413)
    error.body = "x" * 100_000  # type: ignore[attr-defined]
    text = _serde.encode_error(error)
    assert len(text) < 20_000
    rebuilt = roundtrip(error)
    assert type(rebuilt) is HTTPStatusError
    assert rebuilt.status == 413
    assert not hasattr(rebuilt, "body")


def test_error_whose_str_fails_is_still_recorded() -> None:
    """A broken __str__ does not stop the error from being recorded."""
    text = _serde.encode_error(Unprintable("x"))
    error_type, message = _serde.describe_error(text)
    assert error_type.endswith("Unprintable")
    assert "str() failed" in message
    assert _serde.rebuild_error(text) is None


def test_encode_phrases_results_and_arguments() -> None:
    """The message says "returned ... Return" for results, "got ... Pass" for arguments."""
    with pytest.raises(SerializationError) as result:
        _serde.encode(object(), what="task 't'")
    assert str(result.value).startswith("task 't' returned a value that cannot be stored as JSON")
    assert "Return dicts, lists" in str(result.value)

    what = "workflow 'wd': parameter 'd'"
    with pytest.raises(SerializationError) as argument:
        _serde.encode(object(), what=what, role="argument")
    message = str(argument.value)
    assert message.startswith(f"{what} got a value that cannot be stored as JSON")
    assert "Pass dicts, lists" in message
    assert "returned" not in message
    assert "Return" not in message


async def test_keyword_only_error_takes_the_same_branch_on_replay(wf: Workflow) -> None:
    """A recorded HTTPStatusError replays as itself, with its status: not as TaskFailedError."""
    journal = Journal()

    @wf.task
    async def fetch() -> None:
        journal("fetch")
        raise HTTPStatusError("Server error '503 Service Unavailable'", status=503)

    @wf.task
    async def after(seen: str) -> str:
        journal(f"after {seen}")
        if len(journal) == 2:
            await asyncio.Event().wait()  # the process "dies" here
        return seen

    @wf.workflow(id="http")
    async def flow() -> str:
        try:
            await fetch()
        except HTTPStatusError as exc:
            return await after(f"HTTPStatusError {exc.status}")
        except TaskFailedError:
            return await after("TaskFailedError")
        return "no error"

    await interrupt(asyncio.ensure_future(flow()), journal, 2)
    assert await flow() == "HTTPStatusError 503"
    # fetch ran once; its failure was replayed from the store the second time.
    assert journal.entries == ["fetch", "after HTTPStatusError 503", "after HTTPStatusError 503"]
