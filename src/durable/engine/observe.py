"""Hooks for watching runs and steps: what tracing and metrics plug into.

An app has no observer by default (``Runtime.observer`` is None), and the
engine then makes no call at all: one ``is None`` test per hook point is the
whole cost. ``Workflow.set_observer`` installs one;
``durable.contrib.otel.instrument`` installs the OpenTelemetry observer.

The engine calls, in order, for every execution of a run in a process:

- :meth:`Observer.trace_context` when a call records a new run (``await``,
  ``start``, ``enqueue``): opaque text kept with the run, handed back in
  ``RunRecord.trace_context`` to every later execution, in any process;
- :meth:`Observer.run_started` when this process starts executing the run's
  body (a first run, a resume, a takeover), in the task that runs the body;
- for each step: :meth:`RunObservation.step_replayed` when its record
  answers, else :meth:`RunObservation.attempt_started` and
  :meth:`StepObservation.ended` around each attempt of its body (in the
  task running it), with :meth:`RunObservation.retrying` between attempts;
- :meth:`RunObservation.ended` once, when the execution stops.

Hooks must be quick and must not raise: they run on the engine's hot path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from durable.stores.base import RunRecord

RunOutcome = Literal["completed", "failed", "cancelled", "interrupted", "lost", "parked"]
"""How one execution of a run ended.

``completed``, ``failed`` and ``cancelled`` are recorded outcomes;
``interrupted``: the caller was cancelled (or the process is stopping) and
the run was handed back, unfinished; ``lost``: another process took the run
over, and its outcome is that process's; ``parked``: a long wait parked the
run in the store, and the worker that wakes it runs a new execution.
"""


class StepObservation(Protocol):
    """One attempt of a step's body, as an observer follows it."""

    def ended(self, error: BaseException | None) -> None:
        """The attempt returned (``error`` None) or raised ``error``."""


class RunObservation(Protocol):
    """One execution of a run in this process, as an observer follows it."""

    def step_replayed(self, step_id: str, task: str) -> None:
        """A step's stored record answered the call; its body did not run."""

    def attempt_started(self, step_id: str, task: str, attempt: int) -> StepObservation:
        """Attempt ``attempt`` (1, 2, ...) of a step's body is about to run."""

    def retrying(self, step_id: str, task: str, attempt: int, delay: float) -> None:
        """Attempt ``attempt`` failed and the step runs again after ``delay`` seconds."""

    def ended(self, outcome: RunOutcome, error: BaseException | None) -> None:
        """The execution stopped; ``error`` is what the body raised, if anything."""


class Observer(Protocol):
    """Watches the runs of one app: installed with ``Workflow.set_observer``."""

    def trace_context(self) -> str | None:
        """Text to store with a run being recorded now (None: nothing to store)."""

    def run_started(self, run: RunRecord, *, recorded_steps: int, takeover: bool) -> RunObservation:
        """This process starts executing ``run`` (its claim acquired it).

        ``recorded_steps``: steps already stored, which replay; ``takeover``:
        the run was taken from an owner that died or lost its lease.
        """
