"""Run handles: follow, await and cancel a run from any process."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from durable.engine import body, serde
from durable.errors import RunNotFoundError, StoreUnavailableError
from durable.stores.base import RunRecord

if TYPE_CHECKING:
    from durable import _inspect
    from durable._workflow import Workflow, WorkflowFunction

R = TypeVar("R")

RunState = Literal["queued", "running", "waiting", "completed", "failed", "cancelled"]

# How often result() looks at a run executing in another process.
_POLL_MIN = 0.01
_POLL_MAX = 0.5


class RunHandle(Generic[R]):
    """A run, by id: ``await h.status()``, ``await h.result()``, ``await h.cancel()``.

    Returned by ``start()`` and ``enqueue()``, or made with ``wf.handle(run_id)``
    in any process. A handle holds no resources; it reads the store.
    """

    __slots__ = ("_workflow", "app", "run_id")

    def __init__(
        self, app: Workflow, run_id: str, workflow: WorkflowFunction[Any, R] | None = None
    ) -> None:
        self.app = app
        self.run_id = run_id
        self._workflow = workflow

    def __repr__(self) -> str:
        return f"RunHandle({self.run_id!r}, app={self.app.name!r})"

    async def status(self) -> RunState:
        """The run's status: ``"queued"``, ``"running"``, ``"waiting"``, or a final one.

        Final: ``"completed"``, ``"failed"``, ``"cancelled"``. ``"waiting"``:
        parked by a worker in a long sleep or signal wait.
        """
        return (await self._record()).status

    async def info(self) -> _inspect.RunInfo:
        """The run with its steps (see :meth:`durable.Workflow.get_run`)."""
        return await self.app.get_run(self.run_id)

    async def cancel(self) -> None:
        """Ask the run to stop (see :meth:`durable.Workflow.cancel`)."""
        await self.app.cancel(self.run_id)

    async def result(self, timeout: float | None = None) -> R:  # noqa: ASYNC109 - the API
        """Wait for the run to finish; its output, or its error raised.

        A failed run raises its error (its own type when it can be rebuilt,
        else :class:`~durable.errors.RunFailedError`); a cancelled one
        :class:`~durable.errors.RunCancelledError`. ``timeout`` (seconds)
        raises :class:`TimeoutError` if it has not finished by then; the run
        itself goes on. While the store is unreachable (a database restart,
        say) it keeps waiting, within ``timeout``.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = _POLL_MIN
        while True:
            try:
                run = await self._record()
            except StoreUnavailableError:
                if deadline is not None and time.monotonic() >= deadline:
                    raise
                await asyncio.sleep(_POLL_MAX)
                continue
            if run.status in ("completed", "failed", "cancelled"):
                return self._outcome(run)
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise TimeoutError(
                    f"run {self.run_id!r} of workflow {run.workflow!r} did not finish within "
                    f"{timeout}s; it is {run.status}"
                )
            local = self.app._executor.task_of(self.run_id)
            if local is not None:
                # Executing here: its end is the moment to look again.
                await asyncio.wait([local], timeout=remaining)
                continue
            await asyncio.sleep(delay if remaining is None else min(delay, remaining))
            delay = min(delay * 1.5, _POLL_MAX)

    async def _record(self) -> RunRecord:
        await self.app._executor.ensure_open()
        run = await self.app.store.get_run(self.app.name, self.run_id)
        if run is None:
            raise RunNotFoundError(f"app {self.app.name!r} has no run {self.run_id!r}")
        return run

    def _outcome(self, run: RunRecord) -> R:
        wf_fn = self._workflow or self.app._workflows.get(run.workflow)
        return body.outcome(wf_fn or _JsonOutput(run.workflow), run)  # type: ignore[no-any-return]


class _JsonOutput:
    """Decodes the output of a workflow not registered here: plain JSON values."""

    timeout = None
    result_type = None

    def __init__(self, name: str) -> None:
        self.name = name

    async def fn(self) -> None:
        raise NotImplementedError

    def decode_inputs(self, inputs: str) -> tuple[tuple[Any, ...], dict[str, Any]]:
        return (), serde.loads(inputs)

    def decode_output(self, output: str | None) -> Any:
        return None if output is None else serde.loads(output)
