"""A durable Pydantic AI agent, offline: every model request and tool call is a step.

    pip install "python-durable[pydantic-ai]"
    python examples/pydantic_ai_agent.py   # run it twice

A ``FunctionModel`` stands in for the LLM (no API key needed): it asks for
the weather, then books a hotel, then answers with a structured ``TripPlan``.
The first process makes three model requests and runs both tools; every
request and tool result is committed to SQLite as it happens. Run the script
again and the completed run's result comes back from the store: no model
request, no second booking, and the output is a ``TripPlan`` again. Had the
first process died after the booking, the next one would have continued with
the third model request, without booking twice.
"""

from __future__ import annotations

import asyncio
import os

from pydantic import BaseModel
from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelResponse, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from durable import Workflow
from durable.backoff import exponential
from durable.pydantic_ai import DurableAgent, TaskConfig

DB_PATH = os.environ.get("EXAMPLE_DB", "pydantic_ai_agent.db")


class TripPlan(BaseModel):
    city: str
    weather: str
    hotel: str


def fake_llm(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """Plays the LLM: one tool per turn, then the structured answer."""
    results = [
        part.content
        for message in messages
        for part in message.parts
        if isinstance(part, ToolReturnPart)
    ]
    print(f"  model request {len(results) + 1}")
    if not results:
        return ModelResponse(parts=[ToolCallPart("get_weather", {"city": "Lisbon"})])
    if len(results) == 1:
        return ModelResponse(parts=[ToolCallPart("book_hotel", {"city": "Lisbon"})])
    answer = {"city": "Lisbon", "weather": results[0], "hotel": results[1]}
    return ModelResponse(parts=[ToolCallPart(info.output_tools[0].name, answer)])


agent = Agent(FunctionModel(fake_llm), output_type=TripPlan, name="planner")


@agent.tool_plain
async def get_weather(city: str) -> str:
    print(f"  tool: weather for {city}")
    return "sunny, 24C"


@agent.tool_plain
async def book_hotel(city: str) -> str:
    # A side effect: on resume after a crash, a committed booking is not made again.
    print(f"  tool: booking a hotel in {city}")
    return "Hotel Avenida, confirmation H-1042"


wf = Workflow("trips", db=DB_PATH)
planner = DurableAgent(
    agent,
    wf,
    model_task_config=TaskConfig(retries=3, backoff=exponential(base=2, max=60)),
    tool_task_config=TaskConfig(retries=2),
)


async def main() -> None:
    async with wf:
        result = await planner.run("Plan a weekend in Lisbon", run_id="trip-lisbon")
    plan = result.output
    print(f"plan: {type(plan).__name__} city={plan.city} weather={plan.weather!r}")
    print(f"hotel: {plan.hotel}")
    print(f"messages: {len(result.all_messages())}, model requests: {result.usage.requests}")


if __name__ == "__main__":
    asyncio.run(main())
