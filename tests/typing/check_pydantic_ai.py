"""Type-checked by mypy, never run: durable agents keep the agent's output and deps types."""

from __future__ import annotations

from typing import assert_type

from pydantic import BaseModel
from pydantic_ai import Agent, AgentRunResult
from pydantic_ai.messages import ModelMessage

from durable import Task, Workflow, WorkflowFunction
from durable.backoff import constant
from durable.pydantic_ai import DurableAgent, TaskConfig, durable_pipeline, durable_tool

wf = Workflow("typing-ai")


class Plan(BaseModel):
    steps: list[str]


planner = DurableAgent(
    Agent("test", output_type=Plan, deps_type=int),
    wf,
    model_task_config=TaskConfig(retries=5, backoff=constant(1)),
    tool_task_config=TaskConfig(timeout=30.0),
)


@durable_tool(wf, retries=3)
async def fetch(city: str) -> str:
    return city


@durable_pipeline(wf, id="research-{topic}")
async def research(topic: str) -> list[str]:
    result = await planner.run(topic, run_id=f"plan-{topic}", deps=3)
    assert_type(result, AgentRunResult[Plan])
    assert_type(result.output, Plan)
    assert_type(result.all_messages(), list[ModelMessage])
    assert_type(await fetch(topic), str)
    await planner.run(topic, deps="three")  # type: ignore[arg-type]
    return result.output.steps


fetch_task: Task[[str], str] = fetch
research_flow: WorkflowFunction[[str], list[str]] = research
TaskConfig(retries="3")  # type: ignore[arg-type]
