"""Read-only views of runs and steps for tooling: ``wf.get_run`` and ``wf.list_runs``.

:func:`signals_of` and :func:`children_of` add what an operator's view of one
run shows besides its steps.

Stored JSON is decoded to plain Python values (dicts, lists, strings, numbers,
booleans, None); timestamps become timezone-aware UTC datetimes.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from durable.engine import serde as _serde
from durable.engine.waits import SIGNAL_TASK_PREFIX, SLEEP_TASK
from durable.stores.base import RunRecord, RunStatus, StepRecord, Store

StepInfoStatus = Literal["completed", "failed", "waiting"]


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

    A sleep that has not woken yet is ``"waiting"``: ``wakes_at`` tells when
    it will, and ``finished_at`` and ``duration`` are None until then.
    """

    step_id: str
    position: int
    task: str
    status: StepInfoStatus
    attempts: int
    started_at: datetime
    finished_at: datetime | None
    duration: float | None
    result: Any
    error: ErrorInfo | None
    wakes_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class RunInfo:
    """A run as stored: status, inputs, outcome, timestamps and steps.

    ``finished_at`` and ``duration`` (seconds since creation) are None while
    the run is ``queued`` or ``running``. ``steps`` is ordered by call order;
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
    queue: str | None = None
    """The queue the run was enqueued in (or requeued to), None for a run called directly."""
    cursor: str = ""
    """Where the next page of :meth:`Workflow.list_runs` starts: pass it as ``cursor=``."""


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


def step_info(record: StepRecord, now: float | None = None) -> StepInfo:
    result = _json(record.result)
    wake_at = _wake_at(record, result)
    if wake_at is not None and wake_at > (time.time() if now is None else now):
        # The record holds the wake-up time, saved before the sleep began.
        return StepInfo(
            step_id=record.step_id,
            position=record.position,
            task=record.task,
            status="waiting",
            attempts=record.attempts,
            started_at=_datetime(record.started_at),
            finished_at=None,
            duration=None,
            result=result,
            error=None,
            wakes_at=_datetime(wake_at),
        )
    return StepInfo(
        step_id=record.step_id,
        position=record.position,
        task=record.task,
        status=record.status,
        attempts=record.attempts,
        started_at=_datetime(record.started_at),
        finished_at=_datetime(record.finished_at if wake_at is None else wake_at),
        duration=max(0.0, (record.finished_at if wake_at is None else wake_at) - record.started_at),
        result=result,
        error=error_info(record.error),
        wakes_at=None if wake_at is None else _datetime(wake_at),
    )


def _wake_at(record: StepRecord, result: Any) -> float | None:
    """The wake-up time of a durable sleep's record, None for any other step."""
    if record.task != SLEEP_TASK or record.status != "completed" or not isinstance(result, dict):
        return None
    wake_at = result.get("wake_at")
    return float(wake_at) if isinstance(wake_at, int | float) else None


def run_info(run: RunRecord, steps: tuple[StepRecord, ...] = (), *, cursor: str = "") -> RunInfo:
    finished = run.status in ("completed", "failed", "cancelled")
    inputs = _json(run.inputs)
    now = time.time()
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
        steps=tuple(step_info(s, now) for s in steps),
        queue=run.queue,
        cursor=cursor,
    )


@dataclass(frozen=True, slots=True)
class SignalInfo:
    """A signal sent to a run: its ``index``-th of that ``name``.

    ``received`` is true once a wait of the run took it (a ``durable.signal:``
    step recorded it); a signal sent but not waited for yet is false.
    """

    name: str
    index: int
    payload: Any
    received: bool


# How many unread signals of one name a view reads past the last one received.
_UNREAD_SIGNALS_SHOWN = 100
# How many of the runs created since a run began are searched for its children.
CHILD_SCAN_LIMIT = 1000


async def signals_of(
    store: Store, app: str, run_id: str, steps: tuple[StepInfo, ...]
) -> list[SignalInfo]:
    """The signals of every name the run waited for: received ones, then unread ones.

    Unread signals are read from the store past the last received index of
    each name. The store keeps no list of names: a signal of a name the run
    never waited for is not found.
    """
    received: dict[str, list[SignalInfo]] = {}
    for step in steps:
        if not step.task.startswith(SIGNAL_TASK_PREFIX) or not isinstance(step.result, dict):
            continue
        name = step.task.removeprefix(SIGNAL_TASK_PREFIX)
        index = step.result.get("index")
        taken = received.setdefault(name, [])
        if isinstance(index, int):
            taken.append(SignalInfo(name, index, step.result.get("payload"), received=True))
    signals = [signal for taken in received.values() for signal in taken]
    for name, taken in received.items():
        first_unread = max((signal.index for signal in taken), default=-1) + 1
        for index in range(first_unread, first_unread + _UNREAD_SIGNALS_SHOWN):
            payload = await store.read_signal(app, run_id, name, index)
            if payload is None:
                break
            signals.append(SignalInfo(name, index, _json(payload), received=False))
    return signals


async def children_of(store: Store, app: str, run: RunInfo) -> list[RunInfo]:
    """The child runs of ``run``, oldest first, among the runs created since it was.

    No index leads from a run to its children: the newest
    :data:`CHILD_SCAN_LIMIT` runs of the app created since ``run`` are
    searched, so a child followed by that many other runs is missed.
    """
    since = run.created_at.timestamp()
    newest = await store.list_runs(app, since=since, limit=CHILD_SCAN_LIMIT)
    children = [run_info(record) for record in newest if record.parent_run_id == run.run_id]
    children.sort(key=lambda child: child.created_at)
    return children
