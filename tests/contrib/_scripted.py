"""A scripted model for agent tests: one tool call per turn, then a final answer."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pydantic_ai.messages import (
    ModelMessage,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel


def scripted_model(
    tools: Sequence[tuple[str, dict[str, object]]],
    answer: Callable[[list[ModelMessage]], ModelResponse] | None = None,
    *,
    on_call: Callable[[int], None] | None = None,
) -> FunctionModel:
    """A model that calls ``tools`` one per turn, then answers with the tool results.

    ``on_call(k)`` is told of each request before it is answered: k is its
    turn in the conversation (1 + the tool results so far), the same number
    whichever process makes the request.
    """

    def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        returned = [
            part
            for message in messages
            for part in message.parts
            if isinstance(part, ToolReturnPart)
        ]
        if on_call is not None:
            on_call(len(returned) + 1)
        if len(returned) < len(tools):
            name, args = tools[len(returned)]
            return ModelResponse(
                parts=[ToolCallPart(name, args, tool_call_id=f"call-{len(returned)}")]
            )
        if answer is not None:
            return answer(messages)
        return ModelResponse(parts=[TextPart(" | ".join(str(p.content) for p in returned))])

    return FunctionModel(respond)
