"""The agent's toolsets, each tool call checkpointed as a step of the durable run."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic_ai import AbstractToolset, ApprovalRequired, CallDeferred, ModelRetry, WrapperToolset
from pydantic_ai.tools import RunContext
from pydantic_ai.toolsets import ToolsetTool

from durable.contrib.pydantic_ai import _codec

# (step id, toolset, tool name, arguments, run context, tool) -> the outcome as stored JSON.
CallStep = Callable[
    [str, AbstractToolset[Any], str, dict[str, Any], RunContext[Any], ToolsetTool[Any]],
    Awaitable[dict[str, Any]],
]


async def call_tool(
    toolset: AbstractToolset[Any],
    name: str,
    tool_args: dict[str, Any],
    ctx: RunContext[Any],
    tool: ToolsetTool[Any],
) -> dict[str, Any]:
    """The body of a tool-call step: one call of the real tool."""
    call = f"tool {name!r} (call {ctx.tool_call_id!r})"
    try:
        value = await toolset.call_tool(name, tool_args, ctx, tool)
    except (ModelRetry, CallDeferred, ApprovalRequired) as exc:
        return _codec.dump_tool_outcome(call, error=exc)
    return _codec.dump_tool_outcome(call, value)


def step_id_of(name: str, ctx: RunContext[Any]) -> str:
    """A tool call's step id, the same on every replay.

    Tool calls of one model response may run concurrently, so their order of
    arrival is no key; the call id comes from the recorded response and the
    run step tells apart the turns of a model that reuses call ids.
    """
    return f"{ctx.run_step}/{name}/{ctx.tool_call_id or '-'}"


@dataclass
class DurableToolset(WrapperToolset[Any]):
    """Wraps one of the agent's toolsets so that each tool call is one step of the run.

    On replay the recorded outcome is returned (or its ``ModelRetry``,
    ``CallDeferred`` or ``ApprovalRequired`` raised again) and the tool does
    not run.
    """

    step: CallStep

    async def call_tool(
        self, name: str, tool_args: dict[str, Any], ctx: RunContext[Any], tool: ToolsetTool[Any]
    ) -> Any:
        data = await self.step(step_id_of(name, ctx), self.wrapped, name, tool_args, ctx, tool)
        return _codec.load_tool_outcome(data)
