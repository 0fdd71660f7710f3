"""Checks shared by the stores, so every backend accepts and rejects the same text.

PostgreSQL text cannot hold a NUL character; the other stores reject it too,
so a run that works against one store works against all of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from durable.errors import RunIdError, SerializationError

if TYPE_CHECKING:
    from durable.stores.base import NewRun, StepRecord


def check_names(**names: str | None) -> None:
    """Raise :class:`RunIdError` if an id or name (app, run id, step id, ...) has a NUL."""
    for what, value in names.items():
        if value is not None and "\x00" in value:
            raise RunIdError(
                f"{what.replace('_', ' ')} must not contain a NUL character: {value!r}"
            )


def check_json(**values: str | None) -> None:
    """Raise :class:`SerializationError` if encoded JSON text holds a raw NUL character."""
    for what, value in values.items():
        if value is not None and "\x00" in value:
            raise SerializationError(
                f"{what.replace('_', ' ')} must not contain a raw NUL character"
            )


def check_claim(new: NewRun, owner: str, steal_from: str | None) -> None:
    """The text of a ``claim_run`` call."""
    check_names(
        app=new.app,
        run_id=new.run_id,
        workflow_name=new.workflow,
        parent_run_id=new.parent_run_id,
        owner=owner,
        steal_from=steal_from,
    )
    check_json(inputs=new.inputs, trace_context=new.trace_context)


def check_step(step: StepRecord) -> None:
    """The text of a ``save_step`` call."""
    # Every step save passes here: look for a NUL first, name it only if found.
    result, error = step.result, step.error
    if (
        "\x00" in step.step_id
        or "\x00" in step.task
        or (result is not None and "\x00" in result)
        or (error is not None and "\x00" in error)
    ):
        check_names(step_id=step.step_id, task_name=step.task)
        check_json(step_result=result, step_error=error)


def check_signal(app: str, run_id: str, name: str, payload: str) -> None:
    """The text of a ``send_signal`` call."""
    check_names(app=app, run_id=run_id, signal_name=name)
    check_json(signal_payload=payload)


def check_enqueue(new: NewRun) -> None:
    """The text and queue fields of an ``enqueue_run`` call."""
    if not new.queue:
        raise ValueError(f"run {new.run_id!r}: enqueue_run needs a queue name")
    check_names(
        app=new.app,
        run_id=new.run_id,
        workflow_name=new.workflow,
        parent_run_id=new.parent_run_id,
        queue_name=new.queue,
    )
    check_json(inputs=new.inputs, trace_context=new.trace_context)
