"""What a durable agent stores: model responses, tool outcomes, run results, as JSON.

Values go through the same JSON form on the first run and on replay, so the
agent sees identical messages either way.
"""

from __future__ import annotations

import functools
from typing import Any

from pydantic import TypeAdapter
from pydantic_ai import AgentRunResult, ApprovalRequired, CallDeferred, ModelRetry, ToolReturn
from pydantic_ai.messages import ModelMessage, ModelMessagesTypeAdapter, ModelResponse
from pydantic_ai.output import NativeOutput, PromptedOutput, TextOutput, ToolOutput
from pydantic_core import PydanticSerializationError, to_jsonable_python

from durable.errors import SerializationError


def dump_messages(messages: list[ModelMessage]) -> list[Any]:
    """Messages as JSON-ready data (binary content as base64)."""
    return ModelMessagesTypeAdapter.dump_python(messages, mode="json")  # type: ignore[no-any-return]


def load_messages(data: list[Any]) -> list[ModelMessage]:
    """Messages back from :func:`dump_messages`."""
    return ModelMessagesTypeAdapter.validate_python(data)


def dump_response(response: ModelResponse) -> dict[str, Any]:
    """A model response as JSON-ready data."""
    data: dict[str, Any] = dump_messages([response])[0]
    return data


def load_response(data: dict[str, Any]) -> ModelResponse:
    """A model response back from :func:`dump_response`."""
    message = load_messages([data])[0]
    if not isinstance(message, ModelResponse):
        raise SerializationError(f"a stored model response decoded as {type(message).__name__}")
    return message


# -- Tool outcomes ---------------------------------------------------------------
# A tool ends in a value or in one of Pydantic AI's control-flow exceptions
# (ask the model again, defer the call, ask for approval). These are outcomes,
# not failures: they are stored as data, never retried, and raised again.


@functools.cache
def _tool_return_adapter() -> TypeAdapter[ToolReturn[Any]]:
    return TypeAdapter(ToolReturn[Any])


def dump_tool_outcome(
    call: str, outcome: Any = None, error: Exception | None = None
) -> dict[str, Any]:
    """A tool call's return value, or control-flow exception, as JSON-ready data."""
    if isinstance(error, ModelRetry):
        return {"retry": error.message}
    if isinstance(error, CallDeferred):
        return {"deferred": to_jsonable_python(error.metadata), "kind": error.kind}
    if isinstance(error, ApprovalRequired):
        return {"approval": to_jsonable_python(error.metadata)}
    try:
        if isinstance(outcome, ToolReturn):
            return {"tool_return": _tool_return_adapter().dump_python(outcome, mode="json")}
        return {"value": to_jsonable_python(outcome)}
    except PydanticSerializationError as exc:
        raise SerializationError(
            f"{call} returned a value that cannot be stored as JSON: {exc}. Return "
            "JSON-compatible data, a Pydantic model or a dataclass"
        ) from exc


def load_tool_outcome(data: dict[str, Any]) -> Any:
    """The tool's value back from :func:`dump_tool_outcome`, or its exception raised again."""
    if "retry" in data:
        raise ModelRetry(data["retry"])
    if "deferred" in data:
        raise CallDeferred(data["deferred"], kind=data.get("kind", "external"))
    if "approval" in data:
        raise ApprovalRequired(data["approval"])
    if "tool_return" in data:
        return _tool_return_adapter().validate_python(data["tool_return"])
    return data["value"]


# -- Run results -----------------------------------------------------------------


def output_type_of(spec: Any) -> Any:
    """The Python type of an agent's output, from its ``output_type`` spec (Any if unknown)."""
    if isinstance(spec, ToolOutput):
        return output_type_of(spec.output)
    if isinstance(spec, NativeOutput | PromptedOutput):
        return output_type_of(spec.outputs)
    if isinstance(spec, TextOutput):
        return output_type_of(spec.output_function)
    if isinstance(spec, type):
        return spec
    if isinstance(spec, list | tuple):
        options = tuple(output_type_of(item) for item in spec)
        if not options or Any in options:
            return Any
        return options[0] if len(options) == 1 else functools.reduce(_union, options)
    if callable(spec):
        # An output function: the run's output is what it returns.
        import typing

        try:
            return typing.get_type_hints(spec).get("return", Any)
        except Exception:  # unresolvable annotations: keep the JSON form
            return Any
    return Any


def _union(left: Any, right: Any) -> Any:
    return left | right


@functools.cache
def result_adapter(output_type: Any) -> TypeAdapter[AgentRunResult[Any]]:
    """The adapter that stores and rebuilds ``AgentRunResult[output_type]``."""
    try:
        return TypeAdapter(AgentRunResult[output_type])
    except Exception:  # a type Pydantic cannot describe: keep the output as JSON
        return TypeAdapter(AgentRunResult[Any])
