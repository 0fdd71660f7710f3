"""The RunContext of the executing run, carried by a ContextVar, and step-id allocation.

``asyncio.gather`` and ``create_task`` copy the context, so every branch of a
run sees the same RunContext object; step ids are allocated when a task is
*called*, in call order, which keeps them identical on every replay.
"""

from __future__ import annotations

import asyncio
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from durable.errors import ConfigurationError, NonDeterminismError
from durable.stores.base import StepRecord

if TYPE_CHECKING:
    from durable.engine.observe import RunObservation
    from durable.engine.parking import ParkPolicy
    from durable.engine.runtime import Runtime


class RunContext:
    """Everything a task call needs to know about the run it belongs to."""

    # A plain slotted class: a dataclass would cost import time for no gain.
    __slots__ = (
        "_auto_counts",
        "_explicit_ids",
        "_next_position",
        "by_position",
        "cancel_requested",
        "checked_positions",
        "ended",
        "in_flight",
        "lease_lost",
        "main_task",
        "observation",
        "parent",
        "park",
        "parked",
        "resumed",
        "run_id",
        "runtime",
        "steps",
        "timed_out",
        "token",
        "workflow",
    )

    def __init__(
        self,
        runtime: Runtime,
        run_id: str,
        workflow: str,
        token: int,
        steps: dict[str, StepRecord],
        checked_positions: int,
        by_position: dict[int, StepRecord],
    ) -> None:
        self.runtime = runtime
        self.run_id = run_id
        self.workflow = workflow
        self.token = token
        self.steps = steps
        # Positions below this bound are contiguous in the record, so the call
        # order there must match; past the first gap (a failed step cleared for a
        # re-run, or steps lost in a crash) the code may legitimately differ.
        self.checked_positions = checked_positions
        self.by_position = by_position
        self.cancel_requested = False
        self.lease_lost = False
        # Set once the body has returned or raised: no step of the run may start.
        self.ended = False
        # The parent's context when this run executes as a child workflow.
        self.parent: RunContext | None = None
        # Executing because of Workflow.resume (or as a child of such a run).
        self.resumed = False
        # The task running the body, and the other tasks (asyncio.gather
        # branches, say) executing one of its steps right now.
        self.main_task: asyncio.Task[Any] | None = None
        # Set when the workflow's own timeout stopped the body.
        self.timed_out = False
        self.in_flight: set[asyncio.Task[Any]] = set()
        # The observer's view of this execution (tracing, metrics); None without one.
        self.observation: RunObservation | None = None
        # When a long wait parks the run (executed by a worker), and whether it did.
        self.park: ParkPolicy | None = None
        self.parked = False
        self._next_position = 0
        self._auto_counts: dict[str, int] = {}
        self._explicit_ids: set[str] = set()

    @classmethod
    def start(
        cls,
        runtime: Runtime,
        run_id: str,
        workflow: str,
        token: int,
        steps: tuple[StepRecord, ...],
    ) -> RunContext:
        by_position = {s.position: s for s in steps}
        contiguous = 0
        while contiguous in by_position:
            contiguous += 1
        return cls(
            runtime=runtime,
            run_id=run_id,
            workflow=workflow,
            token=token,
            steps={s.step_id: s for s in steps},
            checked_positions=contiguous,
            by_position=by_position,
        )

    def allocate(self, task: str, explicit: str | None) -> tuple[str, int]:
        """The (step id, position) of the next call of ``task``."""
        position = self._next_position
        self._next_position += 1
        if explicit is None:
            count = self._auto_counts.get(task, 0)
            self._auto_counts[task] = count + 1
            step_id = task if count == 0 else f"{task}#{count}"
        else:
            if not isinstance(explicit, str) or not explicit:
                raise ConfigurationError(
                    f"task {task!r}: step_id must be a non-empty string, got {explicit!r}"
                )
            import unicodedata  # on first use: import durable stays cheap

            if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in explicit):
                raise ConfigurationError(
                    f"task {task!r}: step_id {explicit[:80]!r} contains a control character"
                )
            step_id = f"{task}:{explicit}"
            if step_id in self._explicit_ids:
                raise ConfigurationError(
                    f"task {task!r} called twice with step_id={explicit!r} in run "
                    f"{self.run_id!r}; each call needs its own step_id"
                )
            self._explicit_ids.add(step_id)
        return step_id, position

    def branch_started(self) -> asyncio.Task[Any] | None:
        """Note a step starting in a task beside the body (a gather branch); that task.

        The run must not end while such a step still runs: see
        ``_stop_stragglers`` in the executor. Discard it from ``in_flight``
        when the step ends.
        """
        main = self.main_task
        # With its loop given, current_task() skips get_running_loop() and the
        # getpid() system call that comes with it.
        task = asyncio.current_task() if main is None else asyncio.current_task(main.get_loop())
        if task is None or task is main:
            return None
        self.in_flight.add(task)
        return task

    def cancelled_ancestor(self) -> RunContext | None:
        """The closest parent run (executing here) that was cancelled, if any."""
        ancestor = self.parent
        while ancestor is not None:
            if ancestor.cancel_requested:
                return ancestor
            ancestor = ancestor.parent
        return None

    def descends_from(self, run_id: str) -> RunContext | None:
        """This context or the parent context whose run is ``run_id``, if any."""
        node: RunContext | None = self
        while node is not None:
            if node.run_id == run_id:
                return node
            node = node.parent
        return None

    def recorded(self, task: str, step_id: str, position: int) -> StepRecord | None:
        """The stored record for this call, after checking the code still matches it."""
        record = self.steps.get(step_id)
        if record is not None and record.task != task:
            self._mismatch(step_id, task, record)
        if position < self.checked_positions:
            at_position = self.by_position[position]
            if at_position.task != task:
                self._mismatch(step_id, task, at_position)
        return record

    def _mismatch(self, step_id: str, task: str, found: StepRecord) -> None:
        raise NonDeterminismError(
            f"run {self.run_id!r} of workflow {self.workflow!r}: step {step_id!r} "
            f"(call #{found.position}) expected task {task!r} but the record was made "
            f"by task {found.task!r} (step {found.step_id!r}). The workflow code changed "
            "or is not deterministic between steps: move time, randomness and I/O into tasks."
        )


current_run: ContextVar[RunContext | None] = ContextVar("durable_current_run", default=None)


class StepContext:
    """The task call being executed, as seen from inside its body.

    Returned by :func:`durable.current_step`. ``idempotency_key`` is the same
    on every attempt of the step and after any crash, and differs between
    steps and runs: pass it to payment or e-mail APIs so that a step that
    runs again after a crash does not charge or send twice.
    """

    __slots__ = ("app", "attempt", "run_id", "step_id", "task", "workflow")

    def __init__(
        self, app: str, workflow: str, run_id: str, step_id: str, task: str, attempt: int
    ) -> None:
        self.app = app
        self.workflow = workflow
        self.run_id = run_id
        self.step_id = step_id
        self.task = task
        self.attempt = attempt

    @property
    def idempotency_key(self) -> str:
        """A key for this step, stable across attempts, crashes, replays and versions.

        ``"dk1-"`` followed by the 64 hex digits of the SHA-256 of the JSON
        array ``[app, run_id, step_id]`` (compact, ASCII-escaped). It names the
        app, the run and the step without ambiguity: two apps with the same run
        id, or run ``"a:b"`` step ``"c"`` and run ``"a"`` step ``"b:c"``, get
        different keys. Its 68 characters fit the limits of payment APIs.
        """
        return idempotency_key(self.app, self.run_id, self.step_id)

    def __repr__(self) -> str:
        return (
            f"StepContext(run_id={self.run_id!r}, step_id={self.step_id!r}, "
            f"task={self.task!r}, attempt={self.attempt})"
        )


current_step: ContextVar[StepContext | None] = ContextVar("durable_current_step", default=None)


IDEMPOTENCY_KEY_PREFIX = "dk1-"


def idempotency_key(app: str, run_id: str, step_id: str) -> str:
    """The idempotency key of step ``step_id`` of run ``run_id`` of app ``app``.

    The format is part of the public contract (see
    :attr:`StepContext.idempotency_key`): keys stored by an external API must
    still match after an upgrade.
    """
    import hashlib  # on first use: import durable stays cheap
    import json

    canonical = json.dumps([app, run_id, step_id], ensure_ascii=True, separators=(",", ":"))
    return IDEMPOTENCY_KEY_PREFIX + hashlib.sha256(canonical.encode("ascii")).hexdigest()
