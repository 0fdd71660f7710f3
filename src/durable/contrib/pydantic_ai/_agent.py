"""DurableAgent: a Pydantic AI agent whose runs are durable workflows."""

from __future__ import annotations

import asyncio
import hashlib
import weakref
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic

from pydantic_ai import AbstractToolset, AgentRunResult
from pydantic_ai.agent import AbstractAgent
from pydantic_ai.messages import ModelMessage
from pydantic_ai.models import Model, infer_model
from pydantic_ai.tools import AgentDepsT, RunContext
from pydantic_ai.toolsets import ToolsetTool
from typing_extensions import TypeVar

from durable.contrib.pydantic_ai import _codec
from durable.contrib.pydantic_ai._config import MODEL_DEFAULTS, TOOL_DEFAULTS, TaskConfig
from durable.contrib.pydantic_ai._model import DurableModel, request_model
from durable.contrib.pydantic_ai._toolset import DurableToolset, call_tool
from durable.errors import ConfigurationError

if TYPE_CHECKING:
    from durable import Task, Workflow

OutputT = TypeVar("OutputT", default=str)


@dataclass(frozen=True, slots=True)
class _CallOptions:
    """What one ``run()`` call passes to the agent besides its stored inputs."""

    deps: Any = None
    model: Model | str | None = None
    toolsets: Sequence[AbstractToolset[Any]] = ()
    extra: dict[str, Any] = field(default_factory=dict)


# Dependencies, models and toolsets are live objects, not data: they reach the
# run's body through the call's context instead of its stored inputs.
_call_options: ContextVar[_CallOptions | None] = ContextVar("durable_agent_call", default=None)

# The agent behind each name on each app. Two agents under one name would
# share step names and default run ids, so one could be handed the other's
# results; wrapping the same agent again (a module reloaded) is harmless.
_agent_names: weakref.WeakKeyDictionary[Workflow, dict[str, weakref.ref[Any]]] = (
    weakref.WeakKeyDictionary()
)


class DurableAgent(Generic[AgentDepsT, OutputT]):
    """A Pydantic AI agent whose every run is a durable workflow run of ``wf``.

    Each model request and each tool call is a checkpointed step: when a run
    is called again after a crash, recorded responses and tool results are
    replayed (the model is not asked again, a tool does not run again) and
    the agent continues from the first step that has no record. A completed
    run returns its stored result.

    ``model_task_config`` and ``tool_task_config`` set the retries, backoff
    and timeout of model requests (default: 3 retries, ``exponential(base=2,
    max=60)``) and of tool calls (default: 2 retries, ``exponential(base=2,
    max=30)``). ``tool_task_config_by_name`` overrides that per tool name: a
    ``TaskConfig`` (its unset fields from ``tool_task_config``) or ``None``,
    which runs the tool inline, not as a step (for quick, pure tools).
    ``name`` (default the agent's name, else ``"agent"``) prefixes the names
    of the workflow and tasks it registers on ``wf``: ``{name}.run``,
    ``{name}.model_request``, ``{name}.tool_call`` and, per configured tool,
    ``{name}.tool_call.{tool}``.
    """

    def __init__(
        self,
        agent: AbstractAgent[AgentDepsT, OutputT],
        wf: Workflow,
        *,
        name: str | None = None,
        model_task_config: TaskConfig | None = None,
        tool_task_config: TaskConfig | None = None,
        tool_task_config_by_name: Mapping[str, TaskConfig | None] | None = None,
    ) -> None:
        self.agent = agent
        self.wf = wf
        self.name = name or agent.name or "agent"
        taken = _agent_names.setdefault(wf, {})
        holder = taken.get(self.name)
        if holder is not None and holder() not in (None, agent):
            raise ConfigurationError(
                f"app {wf.name!r} already has a durable agent {self.name!r}; "
                "pass name=... (or name the Agent) to tell them apart"
            )
        self.model_task_config = (model_task_config or TaskConfig()).resolve(
            MODEL_DEFAULTS, what=f"agent {self.name!r}: model_task_config"
        )
        self.tool_task_config = (tool_task_config or TaskConfig()).resolve(
            TOOL_DEFAULTS, what=f"agent {self.name!r}: tool_task_config"
        )
        self._model_task = wf.task(
            name=f"{self.name}.model_request",
            retries=self.model_task_config.retries or 0,
            backoff=self.model_task_config.backoff,
            timeout=self.model_task_config.timeout,
        )(request_model)
        self._tool_task = self._tool_step(f"{self.name}.tool_call", self.tool_task_config)
        self._tool_tasks: dict[str, Task[..., dict[str, Any]] | None] = {}
        for tool, config in (tool_task_config_by_name or {}).items():
            self._tool_tasks[tool] = (
                None
                if config is None
                else self._tool_step(
                    f"{self.name}.tool_call.{tool}",
                    config.resolve(
                        self.tool_task_config, what=f"agent {self.name!r}: tool {tool!r}"
                    ),
                )
            )
        self._result = _codec.result_adapter(_codec.output_type_of(agent.output_type))
        self._workflow = wf.workflow(name=f"{self.name}.run")(self._run_body)
        taken[self.name] = weakref.ref(agent)

    def _tool_step(self, name: str, config: TaskConfig) -> Task[..., dict[str, Any]]:
        return self.wf.task(
            name=name,
            retries=config.retries or 0,
            backoff=config.backoff,
            timeout=config.timeout,
        )(call_tool)

    def __repr__(self) -> str:
        return (
            f"<DurableAgent {self.name!r} of app {self.wf.name!r} "
            f"model_retries={self.model_task_config.retries} "
            f"tool_retries={self.tool_task_config.retries}>"
        )

    async def run(
        self,
        prompt: str | None = None,
        *,
        run_id: str | None = None,
        deps: AgentDepsT = None,  # type: ignore[assignment]
        message_history: Sequence[ModelMessage] | None = None,
        model: Model | str | None = None,
        toolsets: Sequence[AbstractToolset[AgentDepsT]] | None = None,
        **kwargs: Any,
    ) -> AgentRunResult[OutputT]:
        """Run the agent durably; its result, the same on the first run and on replay.

        ``run_id`` names the run (default: derived from the agent's name and
        the prompt); calling again with the same run id resumes it from its
        recorded steps or, once complete, returns its stored result. The
        prompt and ``message_history`` are stored with the run. ``deps``,
        ``model``, ``toolsets`` and other keyword arguments of
        ``Agent.run()`` (``model_settings``, ``usage_limits``, ...) are
        passed to the agent as they are and not stored: give them again when
        resuming. Inside a workflow the agent run is a child run of it.
        """
        if prompt is not None and not isinstance(prompt, str):
            raise ConfigurationError(
                f"agent {self.name!r}: the prompt must be a string or None, got "
                f"{type(prompt).__name__}"
            )
        rid = run_id or _default_run_id(self.name, prompt or "")
        history = None if message_history is None else _codec.dump_messages(list(message_history))
        options = _CallOptions(deps, model, tuple(toolsets or ()), kwargs)
        token = _call_options.set(options)
        try:
            data = await self._workflow.run(rid, prompt, history)
        finally:
            _call_options.reset(token)
        return self._result.validate_python(data)

    def run_sync(
        self,
        prompt: str | None = None,
        *,
        run_id: str | None = None,
        deps: AgentDepsT = None,  # type: ignore[assignment]
        message_history: Sequence[ModelMessage] | None = None,
        **kwargs: Any,
    ) -> AgentRunResult[OutputT]:
        """:meth:`run` from synchronous code (starts an event loop)."""
        return asyncio.run(
            self.run(prompt, run_id=run_id, deps=deps, message_history=message_history, **kwargs)
        )

    async def signal(self, name: str, *, poll: float = 2.0) -> Any:
        """Wait durably, inside a workflow, for the signal ``name``; its payload.

        The same as ``wf.signal(name)``. ``poll`` is accepted for python-durable
        0.2 code and not needed: a waiting run is woken when the signal is sent.
        """
        return await self.wf.signal(name)

    async def _run_body(
        self, prompt: str | None, message_history: list[Any] | None = None
    ) -> dict[str, Any]:
        options = _call_options.get() or _CallOptions()
        history = None if message_history is None else _codec.load_messages(message_history)
        agent = self.agent
        chosen = options.model or agent.model
        if chosen is None:
            raise ConfigurationError(
                f"agent {self.name!r} has no model: give the Agent a model or pass model= to run()"
            )
        model = DurableModel(infer_model(chosen), self._model_task)
        toolsets = [
            DurableToolset(ts, self._call_step) for ts in (*agent.toolsets, *options.toolsets)
        ]
        # agent.toolsets starts with the agent's own function tools, wrapped
        # here like the rest: tools=[] keeps the unwrapped ones out of the run.
        with agent.override(model=model, toolsets=toolsets, tools=[]):
            result = await agent.run(
                prompt, deps=options.deps, message_history=history, **options.extra
            )
        data: dict[str, Any] = self._result.dump_python(result, mode="json")
        return data

    def _call_step(
        self,
        step_id: str,
        toolset: AbstractToolset[Any],
        name: str,
        tool_args: dict[str, Any],
        ctx: RunContext[Any],
        tool: ToolsetTool[Any],
    ) -> Any:
        task = self._tool_tasks.get(name, self._tool_task)
        if task is None:  # configured to run inline: its outcome is not recorded
            return call_tool(toolset, name, tool_args, ctx, tool)
        return task.with_step_id(step_id)(toolset, name, tool_args, ctx, tool)


def _default_run_id(agent: str, prompt: str) -> str:
    # The run id python-durable 0.2 gave a run without one: the same prompt
    # to the same agent is the same run.
    digest = hashlib.sha256(prompt.encode()).hexdigest()[:12]
    return f"agent-{agent}-{digest}"
