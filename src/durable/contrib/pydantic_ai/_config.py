"""Retry options for the steps a durable agent records."""

from __future__ import annotations

from dataclasses import dataclass

from durable.backoff import Backoff, exponential
from durable.errors import ConfigurationError


@dataclass(frozen=True, slots=True)
class TaskConfig:
    """How the steps of one kind (model requests or tool calls) are retried.

    ``retries`` is how many times a failing step is retried after its first
    attempt, waiting ``backoff(k)`` seconds before retry k; ``timeout`` bounds
    each attempt in seconds. A field left ``None`` takes the agent's default
    for that kind of step.
    """

    retries: int | None = None
    backoff: Backoff | None = None
    timeout: float | None = None

    def resolve(self, default: TaskConfig, *, what: str) -> TaskConfig:
        """This config with its unset fields taken from ``default``, checked."""
        retries = default.retries if self.retries is None else self.retries
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ConfigurationError(f"{what}: retries must be an int >= 0, got {retries!r}")
        backoff = self.backoff or default.backoff
        if backoff is not None and not callable(backoff):
            raise ConfigurationError(
                f"{what}: backoff must be callable (see durable.backoff), got {backoff!r}"
            )
        return TaskConfig(
            retries=retries,
            backoff=backoff,
            timeout=default.timeout if self.timeout is None else self.timeout,
        )


# The defaults python-durable 0.2 gave agents: model calls are the expensive,
# flaky part, so they get one retry more than tools.
MODEL_DEFAULTS = TaskConfig(retries=3, backoff=exponential(base=2, max=60))
TOOL_DEFAULTS = TaskConfig(retries=2, backoff=exponential(base=2, max=30))
