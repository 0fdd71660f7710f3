"""Rows both SQL stores share: a step as its parameter row, and lease renewal answers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from durable.stores.base import LeaseState, StepRecord

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


def lease_states(
    leases: Sequence[tuple[str, int]], renewed: Mapping[str, bool]
) -> dict[str, LeaseState]:
    """``renew_leases``' answer from the runs renewed (run id -> cancel requested)."""
    states: dict[str, LeaseState] = {}
    for run_id, _ in leases:
        cancel = renewed.get(run_id)
        if cancel is None:
            states[run_id] = LeaseState.LOST
        else:
            states[run_id] = LeaseState.CANCEL_REQUESTED if cancel else LeaseState.OWNED
    return states
