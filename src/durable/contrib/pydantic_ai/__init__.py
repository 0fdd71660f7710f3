"""Durable Pydantic AI agents: every model request and tool call a checkpointed step.

Needs the ``pydantic-ai`` extra. Import it as ``durable.pydantic_ai``.
"""

from durable.contrib.pydantic_ai._agent import DurableAgent as DurableAgent
from durable.contrib.pydantic_ai._config import TaskConfig as TaskConfig
from durable.contrib.pydantic_ai._model import DurableModel as DurableModel
from durable.contrib.pydantic_ai._pipeline import durable_pipeline as durable_pipeline
from durable.contrib.pydantic_ai._pipeline import durable_tool as durable_tool
from durable.contrib.pydantic_ai._toolset import DurableToolset as DurableToolset

__all__ = [
    "DurableAgent",
    "DurableModel",
    "DurableToolset",
    "TaskConfig",
    "durable_pipeline",
    "durable_tool",
]
