"""``Workflow`` under python-durable 0.2's module path (the same class as ``durable.Workflow``)."""

from durable._workflow import Workflow as Workflow
from durable._workflow import WorkflowFunction as WorkflowFunction

__all__ = ["Workflow", "WorkflowFunction"]
