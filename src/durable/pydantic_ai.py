"""Durable Pydantic AI agents (the ``pydantic-ai`` extra).

from durable import Workflow
from durable.pydantic_ai import DurableAgent

agent = Agent("openai:gpt-5.2", name="geo")
durable_geo = DurableAgent(agent, Workflow("ai"))
result = await durable_geo.run("Capital of Mexico?", run_id="geo-mexico")

Every model request and tool call of a run is a checkpointed step; see
:class:`DurableAgent`.
"""

from durable.contrib.pydantic_ai import DurableAgent as DurableAgent
from durable.contrib.pydantic_ai import DurableModel as DurableModel
from durable.contrib.pydantic_ai import DurableToolset as DurableToolset
from durable.contrib.pydantic_ai import TaskConfig as TaskConfig
from durable.contrib.pydantic_ai import durable_pipeline as durable_pipeline
from durable.contrib.pydantic_ai import durable_tool as durable_tool

__all__ = [
    "DurableAgent",
    "DurableModel",
    "DurableToolset",
    "TaskConfig",
    "durable_pipeline",
    "durable_tool",
]
