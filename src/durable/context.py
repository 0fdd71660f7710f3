"""``RunContext``: the run the calling code belongs to, under python-durable 0.2's name.

Inside a workflow body, or a task called from one, :func:`current_run` tells
which run is executing::

    from durable.context import current_run

    @wf.task
    async def audit(event: str) -> None:
        run = current_run()
        log.info("%s in run %s of %s", event, run.run_id, run.workflow_id)

The step being executed (its idempotency key, attempt number, ...) is
:func:`durable.current_step`.
"""

from __future__ import annotations

from durable.engine.context import current_run as _current_run
from durable.engine.context import current_step as _current_step
from durable.errors import NotInWorkflowError

__all__ = ["RunContext", "current_run"]


class RunContext:
    """The executing run: its app, workflow name and run id.

    Unlike python-durable 0.2's class of this name it carries no store (the
    app's is ``wf.store``) and allocates no step ids: the engine does.
    """

    __slots__ = ("app", "run_id", "workflow")

    def __init__(self, app: str, workflow: str, run_id: str) -> None:
        self.app = app
        self.workflow = workflow
        self.run_id = run_id

    @property
    def workflow_id(self) -> str:
        """``"{app}.{workflow}"``, the form python-durable 0.2 gave this attribute."""
        return f"{self.app}.{self.workflow}"

    def __repr__(self) -> str:
        return f"<durable RunContext run {self.run_id!r} of {self.workflow_id!r}>"


def current_run() -> RunContext:
    """The run executing the calling code (a workflow body or a task called from it).

    Raises :class:`~durable.errors.NotInWorkflowError` anywhere else.
    """
    ctx = _current_run.get()
    if ctx is not None:
        return RunContext(ctx.runtime.app, ctx.workflow, ctx.run_id)
    # A task body runs outside the run's context (its task calls are plain
    # calls), but inside its step's.
    step = _current_step.get()
    if step is not None:
        return RunContext(step.app, step.workflow, step.run_id)
    raise NotInWorkflowError(
        "durable.context.current_run() is only available inside a workflow run"
    )
