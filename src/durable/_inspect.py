"""Read-only views of runs and steps for tooling: ``wf.get_run`` and ``wf.list_runs``.

Stored JSON is decoded to plain Python values (dicts, lists, strings, numbers,
booleans, None); timestamps become timezone-aware UTC datetimes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from durable import _serde
from durable.stores.base import RunRecord, RunStatus, StepRecord, StepStatus


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """An error recorded for a run or a step."""

    type: str
    """The exception's import path, e.g. ``"builtins.ValueError"``."""
    message: str
    traceback: str

    def __str__(self) -> str:
        return f"{self.type}: {self.message}"


@dataclass(frozen=True, slots=True)
class StepInfo:
    """One recorded step of a run.

    ``task`` is the task or child workflow name; durable waits appear as
    ``durable.sleep`` (result ``{"wake_at": <timestamp>}``) and
    ``durable.signal:<name>`` (result ``{"index": <n>, "payload": <payload>}``).
    ``duration`` is in seconds, from the first attempt's start to the record.
    """

    step_id: str
    position: int
    task: str
    status: StepStatus
    attempts: int
    started_at: datetime
    finished_at: datetime
    duration: float
    result: Any
    error: ErrorInfo | None


@dataclass(frozen=True, slots=True)
class RunInfo:
    """A run as stored: status, inputs, outcome, timestamps and steps.

    ``finished_at`` and ``duration`` (seconds since creation) are None while
    the run is ``running``. ``steps`` is ordered by call order;
    :meth:`Workflow.list_runs` leaves it empty (use ``get_run`` for steps).
    """

    run_id: str
    workflow: str
    status: RunStatus
    inputs: dict[str, Any]
    output: Any
    error: ErrorInfo | None
    attempts: int
    cancel_requested: bool
    parent_run_id: str | None
    owner: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    duration: float | None
    steps: tuple[StepInfo, ...] = ()


def _datetime(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, tz=UTC)


def _json(text: str | None) -> Any:
    return None if text is None else _serde.loads(text)


def error_info(text: str | None) -> ErrorInfo | None:
    if text is None:
        return None
    try:
        doc = json.loads(text)
    except ValueError:
        return ErrorInfo(type="", message=text, traceback="")
    if not isinstance(doc, dict):
        return ErrorInfo(type="", message=str(doc), traceback="")
    return ErrorInfo(
        type=str(doc.get("type", "")),
        message=str(doc.get("message", "")),
        traceback=str(doc.get("traceback", "")),
    )


def step_info(record: StepRecord) -> StepInfo:
    return StepInfo(
        step_id=record.step_id,
        position=record.position,
        task=record.task,
        status=record.status,
        attempts=record.attempts,
        started_at=_datetime(record.started_at),
        finished_at=_datetime(record.finished_at),
        duration=max(0.0, record.finished_at - record.started_at),
        result=_json(record.result),
        error=error_info(record.error),
    )


def run_info(run: RunRecord, steps: tuple[StepRecord, ...] = ()) -> RunInfo:
    finished = run.status != "running"
    inputs = _json(run.inputs)
    return RunInfo(
        run_id=run.run_id,
        workflow=run.workflow,
        status=run.status,
        inputs=inputs if isinstance(inputs, dict) else {},
        output=_json(run.output),
        error=error_info(run.error),
        attempts=run.attempts,
        cancel_requested=run.cancel_requested,
        parent_run_id=run.parent_run_id,
        owner=run.owner,
        created_at=_datetime(run.created_at),
        updated_at=_datetime(run.updated_at),
        finished_at=_datetime(run.updated_at) if finished else None,
        duration=max(0.0, run.updated_at - run.created_at) if finished else None,
        steps=tuple(step_info(s) for s in steps),
    )
