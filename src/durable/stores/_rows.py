"""A step as the flat parameter row both SQL stores bind to their statements."""

from __future__ import annotations

from durable.stores.base import StepRecord

StepParams = tuple[str, str, int, str, int, str, str, str | None, str | None, int, float, float]


def step_params(app: str, run_id: str, token: int, step: StepRecord) -> StepParams:
    """(app, run id, token, then the step's fields in declaration order)."""
    return (
        app,
        run_id,
        token,
        step.step_id,
        step.position,
        step.task,
        step.status,
        step.result,
        step.error,
        step.attempts,
        step.started_at,
        step.finished_at,
    )
