"""The Workflow app: decorators, the registry, and the entry to durable runs."""

from __future__ import annotations

import asyncio
import functools
import inspect
import os
import signal
import threading
import time
from collections.abc import Callable, Coroutine, Iterable, Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, Self, TypeVar, overload

from durable import stores
from durable._handle import RunHandle
from durable._task import RetryFilter, Task, make_retry_filter
from durable.backoff import Backoff, exponential
from durable.engine import serde, waits
from durable.engine.context import RunContext, current_run
from durable.engine.executor import Executor
from durable.engine.ids import IdTemplate, derived_run_id, validate_run_id
from durable.engine.runtime import Runtime
from durable.engine.steps import ensure_may_continue, step_outcome
from durable.errors import (
    ConfigurationError,
    ResultTooLargeError,
    RunNotFoundError,
    SerializationError,
)
from durable.stores.base import NewRun, RunStatus, Store
from durable.worker import retention as _retention
from durable.worker.queues import DEFAULT_QUEUE, Queue, resolve
from durable.worker.schedules import Catchup, Schedule, Scheduler
from durable.worker.serve import DEFAULT_PARK_AFTER, Worker, park_seconds
from durable.worker.wakeup import Wakeup

if TYPE_CHECKING:
    from durable import _inspect, _listing
    from durable.engine.observe import Observer

P = ParamSpec("P")
R = TypeVar("R")

AsyncFn = Callable[P, Coroutine[Any, Any, R]]

DEFAULT_DB = "durable.db"
DEFAULT_MAX_VALUE_BYTES = 2 * 1024 * 1024
_RESERVED_NAME_CHARS = (":", "#")
_RESERVED_NAME_PREFIX = "durable."
_ENQUEUE_OPTIONS = frozenset({"queue", "priority", "delay", "not_before", "run_id"})


class WorkflowFunction(Generic[P, R]):
    """A workflow entry point made by ``@wf.workflow``.

    Awaiting a call starts the run or, for a run id seen before, resumes it
    (see the README's "Calling a run again"). ``fn.run(run_id, ...)`` does the
    same with an explicit run id instead of the ``id=`` template.
    """

    def __init__(
        self,
        app: Workflow,
        fn: AsyncFn[P, R],
        *,
        name: str,
        id_template: str | None,
        timeout: float | None,
        queue: str | None = None,
    ) -> None:
        self.app = app
        self.fn = fn
        self.name = name
        self.timeout = timeout
        self.queue = queue
        self.signature = inspect.signature(fn)
        self.id_template = (
            None if id_template is None else IdTemplate(id_template, self.signature, workflow=name)
        )
        self.result_type = serde.return_annotation(fn)
        functools.update_wrapper(self, fn)

    def __repr__(self) -> str:
        return f"<durable workflow {self.name!r} of app {self.app.name!r}>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, R]:
        return self.app._start(self, None, args, kwargs)

    def run(self, run_id: str, /, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, R]:
        """Run (or resume) the workflow under an explicit ``run_id``."""
        return self.app._start(self, run_id, args, kwargs)

    async def start(self, *args: P.args, **kwargs: P.kwargs) -> RunHandle[R]:
        """Start the run in this process, in the background; its handle.

        Returns once the run and its inputs are recorded in the store, so any
        process sees it at once. Starting a run id that exists returns its
        handle (a failed run is restarted, as calling it would); other
        arguments under that id raise :class:`~durable.errors.RunConflictError`.
        Should this process die, a worker (or ``wf.recover()``) finishes it.
        """
        return await self.app._start_background(self, args, kwargs)

    async def enqueue(
        self,
        *args: Any,
        queue: str | Queue | None = None,
        priority: int = 0,
        delay: float | timedelta | None = None,
        not_before: datetime | float | None = None,
        run_id: str | None = None,
        **kwargs: Any,
    ) -> RunHandle[R]:
        """Record the run in a queue for a worker to execute; its handle.

        ``queue`` defaults to the workflow's ``queue=``, else ``"default"``.
        Lower ``priority`` runs first, first in first out within a priority;
        ``delay`` (seconds or a timedelta) or ``not_before`` (a timezone-aware
        datetime or a Unix timestamp) hold it back until then. The other
        arguments are the workflow's. Returns once the run is recorded;
        enqueueing a run id that exists returns its handle unchanged (other
        arguments raise :class:`~durable.errors.RunConflictError`).
        """
        clash = _ENQUEUE_OPTIONS.intersection(self.signature.parameters)
        if clash:
            raise ConfigurationError(
                f"workflow {self.name!r} has parameter(s) {sorted(clash)}, which enqueue() "
                "takes as its own options; rename them to enqueue this workflow"
            )
        return await self.app._enqueue(
            self, args, kwargs, queue, priority, delay, not_before, run_id
        )

    # -- inputs and outputs ------------------------------------------------------

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"workflow {self.name!r}: {exc}") from None
        bound.apply_defaults()
        return dict(bound.arguments)

    def encode_inputs(self, arguments: dict[str, Any]) -> str:
        try:
            text = serde.dumps(arguments)
        except (TypeError, ValueError, RecursionError):
            for name, value in arguments.items():
                serde.encode(
                    value, what=f"workflow {self.name!r}: parameter {name!r}", role="argument"
                )
            raise SerializationError(
                f"workflow {self.name!r}: arguments cannot be stored as JSON"
            ) from None
        limit = self.app.max_value_bytes
        if len(text) > limit and len(text.encode("utf-8")) > limit:
            # Name the largest argument: that is the one to pass by reference.
            sizes = {name: len(serde.dumps(value)) for name, value in arguments.items()}
            biggest = max(sizes, key=sizes.__getitem__)
            raise ResultTooLargeError(
                f"workflow {self.name!r}: its arguments take {len(text.encode('utf-8'))} bytes "
                f"as JSON, over the limit of {limit} (max_value_bytes); the largest is "
                f"parameter {biggest!r} ({sizes[biggest]} characters). Store large data "
                "elsewhere and pass a reference"
            )
        return text

    @functools.cached_property
    def _parameter_hints(self) -> dict[str, Any]:
        # Resolved on first use, not at decoration: annotations may name
        # classes defined later in the module.
        return serde._hints(self.fn)

    def decode_inputs(self, inputs: str) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Positional and keyword arguments to call the function with stored inputs."""
        arguments = serde.loads(inputs)
        hints = self._parameter_hints
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        for name, param in self.signature.parameters.items():
            if name not in arguments:
                continue
            value = arguments[name]
            annotation = hints.get(name)
            if param.kind is param.VAR_POSITIONAL:
                args.extend(serde.rebuild(v, annotation) for v in value)
            elif param.kind is param.VAR_KEYWORD:
                kwargs.update({k: serde.rebuild(v, annotation) for k, v in value.items()})
            elif param.kind is param.POSITIONAL_ONLY or (
                param.kind is param.POSITIONAL_OR_KEYWORD and not kwargs
            ):
                args.append(serde.rebuild(value, annotation))
            else:
                kwargs[name] = serde.rebuild(value, annotation)
        return tuple(args), kwargs

    def decode_output(self, output: str | None) -> R:
        value: Any = None if output is None else serde.loads(output)
        if self.result_type is not None:
            value = serde.rebuild(value, self.result_type)
        return value  # type: ignore[no-any-return]

    def resolve_run_id(self, explicit: str | None, arguments: dict[str, Any], inputs: str) -> str:
        if explicit is not None:
            return validate_run_id(explicit, workflow=self.name)
        if self.id_template is not None:
            return self.id_template.resolve(arguments)
        canonical = serde.dumps(serde.loads(inputs) if inputs else None)
        return derived_run_id(self.name, canonical)


class Workflow:
    """A durable app: a name, a store, and the tasks and workflows registered on it.

    ``db`` is a SQLite path (``"jobs.db"``, ``"sqlite:///jobs.db"``), a URL
    (``"postgresql://..."``, ``"redis://..."``, needing the matching extra) or a
    :class:`~durable.stores.base.Store` instance; default ``durable.db`` in the
    working directory. Nothing is opened until the first run.

    A bare ``@wf.task`` gets ``default_retries`` retries (3) waiting
    ``default_backoff`` (``exponential(base=2, max=60)``: 2, 4, 8 s); a task's
    own ``retries=`` and ``backoff=`` override them. Tests skip the waits with
    :func:`durable.testing.no_backoff`.

    ``lease_ttl`` is how long a run stays owned by a process that stopped
    heartbeating (seconds); ``heartbeat`` is how often a live owner renews it
    (default a third of the TTL). ``max_value_bytes`` bounds each stored
    result, input set and output. ``park_after`` (seconds) is when a run
    executed by a worker (``serve()``) parks in a ``wf.sleep`` or
    ``wf.signal`` wait instead of waiting in memory (see ``serve()``).

    ``retention`` (a timedelta or seconds): where this app's worker runs
    (:meth:`serve`), finished runs older than that are pruned in the
    background, at start and then periodically; None (the default) keeps
    every run.
    """

    def __init__(
        self,
        name: str,
        db: str | os.PathLike[str] | Store | None = None,
        default_retries: int = 3,
        default_backoff: Backoff | None = None,
        *,
        lease_ttl: float = 30.0,
        heartbeat: float | None = None,
        max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
        park_after: float = DEFAULT_PARK_AFTER,
        retention: timedelta | float | None = None,
    ) -> None:
        if not isinstance(name, str) or not name.strip():
            raise ConfigurationError(f"Workflow name must be a non-empty string, got {name!r}")
        if not name.isprintable():
            # Every store keys the app's runs by this name: it must be storable text.
            raise ConfigurationError(
                f"Workflow name {name[:80]!r} must not contain control characters or "
                "lone surrogates"
            )
        _positive("lease_ttl", lease_ttl)
        heartbeat = lease_ttl / 3 if heartbeat is None else heartbeat
        _positive("heartbeat", heartbeat)
        if heartbeat >= lease_ttl:
            raise ConfigurationError(
                f"heartbeat ({heartbeat}s) must be shorter than lease_ttl ({lease_ttl}s)"
            )
        if isinstance(max_value_bytes, bool) or not isinstance(max_value_bytes, int):
            raise ConfigurationError(f"max_value_bytes must be an int, got {max_value_bytes!r}")
        if max_value_bytes <= 0:
            raise ConfigurationError(f"max_value_bytes must be > 0, got {max_value_bytes!r}")
        self.default_retries = _check_retries(
            f"Workflow {name!r}: default_retries", default_retries
        )
        self.default_backoff = _check_backoff(
            f"Workflow {name!r}: default_backoff", default_backoff
        )
        self.name = name
        self.store: Store = stores.from_url(DEFAULT_DB if db is None else db)
        self.lease_ttl = float(lease_ttl)
        self.heartbeat = float(heartbeat)
        self.max_value_bytes = max_value_bytes
        self.park_after = park_seconds(park_after)
        self.retention = (
            None if retention is None else _retention.age_in_seconds(retention, "retention")
        )
        self._tasks: dict[str, Task[Any, Any]] = {}
        self._workflows: dict[str, WorkflowFunction[Any, Any]] = {}
        self._queues: dict[str, Queue] = {}
        self._schedules: dict[str, Schedule] = {}
        self._wakeup = Wakeup()
        self._runtime = Runtime(
            app=name,
            store=self.store,
            lease_ttl=self.lease_ttl,
            heartbeat=self.heartbeat,
            max_value_bytes=max_value_bytes,
            workflows=self._workflows,
        )
        self._executor = Executor(self._runtime)

    def __repr__(self) -> str:
        return f"<durable Workflow {self.name!r} store={type(self.store).__name__}>"

    async def __aenter__(self) -> Self:
        await self._executor.ensure_open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def set_observer(self, observer: Observer | None) -> None:
        """Watch this app's runs and steps with ``observer`` (None: stop watching).

        ``durable.contrib.otel.instrument(wf)`` installs OpenTelemetry tracing
        and metrics this way; see ``durable.engine.observe`` for the hooks.
        """
        self._runtime.observer = observer

    async def close(self) -> None:
        """Close the store. Runs in flight lose their lease renewals; a later run reopens it."""
        await self._executor.close()

    def _replace_store(self, store: Store) -> Store:
        """Use ``store`` from now on; the store used until now (see durable.testing)."""
        self._executor.detach_store()
        previous, self.store = self.store, store
        self._runtime.store = store
        return previous

    # -- decorators --------------------------------------------------------------

    @overload
    def task(self, fn: AsyncFn[P, R], /) -> Task[P, R]: ...

    @overload
    def task(
        self,
        *,
        retries: int | None = None,
        backoff: Backoff | None = None,
        retry_on: type[BaseException] | tuple[type[BaseException], ...] | RetryFilter = Exception,
        timeout: float | None = None,
        name: str | None = None,
    ) -> Callable[[AsyncFn[P, R]], Task[P, R]]: ...

    def task(
        self,
        fn: AsyncFn[P, R] | None = None,
        *,
        retries: int | None = None,
        backoff: Backoff | None = None,
        retry_on: type[BaseException] | tuple[type[BaseException], ...] | RetryFilter = Exception,
        timeout: float | None = None,
        name: str | None = None,
    ) -> Any:
        """Make an async function a checkpointed, retried task.

        Inside a workflow each call is a step: its result is stored before the
        workflow continues, and on re-run a completed step returns the stored
        result without running. Outside a workflow it is the plain function.

        ``retries`` is how many times a failing call is retried after the
        first attempt, waiting ``backoff(k)`` seconds before retry k; they
        default to the app's ``default_retries`` (3) and ``default_backoff``
        (``exponential(base=2, max=60)``). ``retry_on`` limits retries to some
        exception types or to errors a predicate accepts; raising
        :class:`~durable.errors.NonRetryableError` always stops retries.
        ``timeout`` bounds each attempt (a timed-out attempt counts as failed).
        """

        def decorate(func: AsyncFn[P, R]) -> Task[P, R]:
            task_name = self._check_function(func, "task", name)
            where = f"task {task_name!r}"
            task_retries = self.default_retries if retries is None else retries
            task_backoff = self.default_backoff if backoff is None else backoff
            if timeout is not None:
                _positive(f"task {task_name!r}: timeout", timeout)
            if "step_id" in inspect.signature(func).parameters:
                raise ConfigurationError(
                    f"task {task_name!r}: the parameter name 'step_id' is reserved for "
                    "checkpointing loop iterations; rename the parameter"
                )
            task = Task(
                self,
                func,
                name=task_name,
                retries=_check_retries(f"{where}: retries", task_retries),
                backoff=_check_backoff(f"{where}: backoff", task_backoff),
                retry_on=make_retry_filter(retry_on, task=task_name),
                timeout=timeout,
            )
            self._register(task_name, func, task, self._tasks)
            return task

        if fn is not None:
            return decorate(fn)
        return decorate

    @overload
    def workflow(self, fn: AsyncFn[P, R], /) -> WorkflowFunction[P, R]: ...

    @overload
    def workflow(
        self,
        *,
        id: str | None = None,
        name: str | None = None,
        timeout: float | None = None,
        queue: str | Queue | None = None,
    ) -> Callable[[AsyncFn[P, R]], WorkflowFunction[P, R]]: ...

    def workflow(
        self,
        fn: AsyncFn[P, R] | None = None,
        *,
        id: str | None = None,
        name: str | None = None,
        timeout: float | None = None,
        queue: str | Queue | None = None,
    ) -> Any:
        """Mark the entry point of a durable run.

        ``id`` is a ``str.format`` template over the function's parameters
        (``id="pipeline-{source}"``) giving the run id; without it the id is
        derived from the workflow name and arguments. ``timeout`` (seconds,
        counted from the run's creation) fails a run that takes longer.
        ``queue`` is the queue ``enqueue()`` uses by default.
        """

        def decorate(func: AsyncFn[P, R]) -> WorkflowFunction[P, R]:
            workflow_name = self._check_function(func, "workflow", name)
            if timeout is not None:
                _positive(f"workflow {workflow_name!r}: timeout", timeout)
            queue_name = None if queue is None else self._queue_name(queue)
            wf_fn = WorkflowFunction(
                self,
                func,
                name=workflow_name,
                id_template=id,
                timeout=timeout,
                queue=queue_name,
            )
            self._register(workflow_name, func, wf_fn, self._workflows)
            return wf_fn

        if fn is not None:
            return decorate(fn)
        return decorate

    def _check_function(self, fn: object, kind: str, name: str | None) -> str:
        if not callable(fn):
            example = "retries=3" if kind == "task" else 'id="job-{job_id}"'
            raise ConfigurationError(
                f"@wf.{kind} expects an async function, got {fn!r}; its options are "
                f"keyword-only, e.g. @wf.{kind}({example})"
            )
        label = getattr(fn, "__qualname__", repr(fn))
        if not inspect.iscoroutinefunction(fn):
            raise ConfigurationError(
                f"@wf.{kind} needs an async function, but {label!r} is not a coroutine "
                "function; define it with 'async def'"
            )
        resolved = getattr(fn, "__name__", None) if name is None else name
        if not isinstance(resolved, str) or not resolved:
            hint = "" if name is not None else f"; pass a name, e.g. @wf.{kind}(name=...)"
            raise ConfigurationError(f"{kind} {label!r}: name must be a non-empty string{hint}")
        # Step ids are built as name, name#k and name:step_id, and the library's
        # own steps are named durable.*: a name using these could address
        # another task's step and be handed its result.
        if any(ch in resolved for ch in _RESERVED_NAME_CHARS) or not resolved.isprintable():
            raise ConfigurationError(
                f"{kind} name {resolved!r} ({label}) must not contain ':', '#' or control "
                "characters: they separate the parts of step ids"
            )
        if resolved.startswith(_RESERVED_NAME_PREFIX):
            raise ConfigurationError(
                f"{kind} name {resolved!r} ({label}) is reserved: names starting with "
                f"{_RESERVED_NAME_PREFIX!r} belong to python-durable's own steps"
            )
        return resolved

    def _register(self, name: str, fn: Any, obj: Any, registry: dict[str, Any]) -> None:
        for existing in (self._tasks.get(name), self._workflows.get(name)):
            if existing is None:
                continue
            same_code = (existing.fn.__module__, existing.fn.__qualname__) == (
                fn.__module__,
                fn.__qualname__,
            )
            if not (same_code and existing in registry.values()):
                raise ConfigurationError(
                    f"app {self.name!r} already has a task or workflow named {name!r} "
                    f"({existing.fn.__module__}.{existing.fn.__qualname__}); "
                    "pass name=... to tell them apart"
                )
        registry[name] = obj

    # -- running -----------------------------------------------------------------

    def _start(
        self,
        wf_fn: WorkflowFunction[P, R],
        explicit_id: str | None,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Coroutine[Any, Any, R]:
        parent = current_run.get()
        if parent is None:
            return self._run_top_level(wf_fn, explicit_id, args, kwargs)
        # A child workflow is one step of its parent, allocated at call time
        # like a task so that its position is stable across replays.
        step_id, position = parent.allocate(wf_fn.name, None)
        return self._run_child(parent, step_id, position, wf_fn, explicit_id, args, kwargs)

    async def _run_top_level(
        self,
        wf_fn: WorkflowFunction[P, R],
        explicit_id: str | None,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> R:
        arguments = wf_fn.bind(args, kwargs)
        inputs = wf_fn.encode_inputs(arguments)
        run_id = wf_fn.resolve_run_id(explicit_id, arguments, inputs)
        output: R = await self._executor.execute(wf_fn, run_id, inputs, parent=None)
        return output

    async def _run_child(
        self,
        parent: RunContext,
        step_id: str,
        position: int,
        wf_fn: WorkflowFunction[P, R],
        explicit_id: str | None,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> R:
        ensure_may_continue(parent)
        record = parent.recorded(wf_fn.name, step_id, position)
        if record is None:
            arguments = wf_fn.bind(args, kwargs)
            inputs = wf_fn.encode_inputs(arguments)
            run_id = wf_fn.resolve_run_id(explicit_id, arguments, inputs)
            record = await self._executor.run_child(
                parent, step_id, position, wf_fn, run_id, inputs
            )
        return step_outcome(parent, record, wf_fn.result_type)  # type: ignore[no-any-return]

    # -- background runs, queues and workers -----------------------------------------

    def queue(
        self,
        name: str,
        *,
        concurrency: int | None = None,
        worker_concurrency: int | None = None,
        rate_limit: tuple[int, float] | None = None,
    ) -> Queue:
        """Declare the queue ``name`` and its flow control; the :class:`Queue`.

        ``concurrency`` caps its runs executing at once across all workers,
        ``worker_concurrency`` per worker process, ``rate_limit=(n, seconds)``
        its starts per window across all workers. Every process that serves
        or enqueues to the queue should declare it alike.
        """
        declared = Queue(
            name,
            concurrency=concurrency,
            worker_concurrency=worker_concurrency,
            rate_limit=rate_limit,
        )
        existing = self._queues.get(name)
        if existing is not None and not existing.same_as(declared):
            raise ConfigurationError(
                f"app {self.name!r}: queue {name!r} is already declared as {existing!r}"
            )
        return self._queues.setdefault(name, declared)

    def _queue_name(self, queue: str | Queue) -> str:
        if isinstance(queue, Queue):
            return self.queue(
                queue.name,
                concurrency=queue.concurrency,
                worker_concurrency=queue.worker_concurrency,
                rate_limit=queue.rate_limit,
            ).name
        if not isinstance(queue, str) or not queue:
            raise ConfigurationError(f"queue must be a queue name or a Queue, got {queue!r}")
        return Queue(queue).name

    def schedule(
        self,
        cron: str,
        *,
        timezone: str = "UTC",
        catchup: Catchup = "latest",
        queue: str | Queue | None = None,
    ) -> Callable[[WorkflowFunction[P, R]], WorkflowFunction[P, R]]:
        """Enqueue the workflow on every tick of ``cron``, once per tick across all workers.

        Goes above ``@wf.workflow``; the workflow takes ``scheduled_at:
        datetime`` (the tick, in ``timezone``) and no other parameter without
        a default. ``cron`` has five fields, or six with seconds last.
        ``catchup`` is what happens to ticks missed while no worker ran:
        ``"latest"`` (the newest of them runs), ``"all"`` or ``"none"``.
        Workers (``wf.serve()``) enqueue the ticks, in the workflow's queue
        unless ``queue=`` names another.
        """

        def decorate(wf_fn: WorkflowFunction[P, R]) -> WorkflowFunction[P, R]:
            if not isinstance(wf_fn, WorkflowFunction) or wf_fn.app is not self:
                raise ConfigurationError(
                    f"@wf.schedule(...) goes above @wf.workflow of the same app, got {wf_fn!r}"
                )
            _check_scheduled(wf_fn)
            if wf_fn.name in self._schedules:
                raise ConfigurationError(f"workflow {wf_fn.name!r} already has a schedule")
            self._schedules[wf_fn.name] = Schedule(
                cron,
                workflow=wf_fn.name,
                timezone=timezone,
                catchup=catchup,
                queue=None if queue is None else self._queue_name(queue),
            )
            return wf_fn

        return decorate

    def schedules(self) -> list[Schedule]:
        """The schedules of this app (``schedule.next_tick()`` tells when each runs next)."""
        return list(self._schedules.values())

    async def _enqueue_tick(self, schedule: Schedule, tick: datetime) -> None:
        wf_fn = self._workflows[schedule.workflow]
        arguments = {"scheduled_at": tick.isoformat()}
        run_id = schedule.run_id(tick)
        await self._enqueue(wf_fn, (), arguments, schedule.queue, 0, None, None, run_id)

    def handle(self, run_id: str) -> RunHandle[Any]:
        """A handle on the run ``run_id`` of this app, from any process."""
        validate_run_id(run_id, app=self.name)
        return RunHandle(self, run_id)

    async def _start_background(
        self, wf_fn: WorkflowFunction[P, R], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> RunHandle[R]:
        arguments = wf_fn.bind(args, kwargs)
        inputs = wf_fn.encode_inputs(arguments)
        run_id = wf_fn.resolve_run_id(None, arguments, inputs)
        await self._executor.start(wf_fn, run_id, inputs)
        return RunHandle(self, run_id, wf_fn)

    async def _enqueue(
        self,
        wf_fn: WorkflowFunction[P, R],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        queue: str | Queue | None,
        priority: int,
        delay: float | timedelta | None,
        not_before: datetime | float | None,
        explicit_id: str | None,
    ) -> RunHandle[R]:
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise ConfigurationError(
                f"workflow {wf_fn.name!r}: priority must be an int, got {priority!r}"
            )
        if delay is not None and not_before is not None:
            raise ConfigurationError(f"workflow {wf_fn.name!r}: pass delay or not_before, not both")
        wake: float | None = None
        if delay is not None:
            wake = time.time() + waits.seconds_of(delay, f"workflow {wf_fn.name!r}: delay")
        elif not_before is not None:
            wake = waits.timestamp_of(not_before)
        queue_name = self._queue_name(queue or wf_fn.queue or DEFAULT_QUEUE)
        arguments = wf_fn.bind(args, kwargs)
        inputs = wf_fn.encode_inputs(arguments)
        run_id = wf_fn.resolve_run_id(explicit_id, arguments, inputs)
        await self._executor.ensure_open()
        new = NewRun(
            self.name,
            run_id,
            wf_fn.name,
            inputs,
            None,
            queue_name,
            priority,
            wake,
            self._runtime.trace_context(),
        )
        run, created = await self.store.enqueue_run(new)
        if not created:
            self._executor.check_existing(wf_fn, run, inputs)
        self._wakeup.notify()
        if wake is not None:
            self._wakeup.notify_at(wake)
        return RunHandle(self, run_id, wf_fn)

    async def serve(
        self,
        *,
        queues: Sequence[str] | None = None,
        concurrency: int = 16,
        poll_interval: float = 1.0,
        grace: float = 30.0,
        handle_signals: bool = True,
        park_after: float | None = None,
    ) -> None:
        """Be a worker: execute this app's queued runs and adopt its orphaned ones.

        Serves ``queues`` (names), or every queue declared or named by a
        workflow and ``"default"``;
        at most ``concurrency`` runs at once in this process. Runs whose
        process died are adopted (at once on this host, at lease expiry from
        other hosts). Returns when cancelled or, with ``handle_signals`` in the
        main thread, on SIGTERM or SIGINT: it stops claiming, gives in-flight
        runs ``grace`` seconds to finish (runs in a sleep or signal wait
        park at once) and releases the rest to other
        workers, which resume them from their completed steps.

        A run that sleeps longer than ``park_after`` seconds (default: the
        Workflow's), or has waited that long for a signal, is parked: it
        leaves memory and its queue's slot, and any worker resumes it when
        its time comes or its signal arrives.
        """
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ConfigurationError(f"concurrency must be an int >= 1, got {concurrency!r}")
        _positive("poll_interval", poll_interval)
        if isinstance(grace, bool) or not isinstance(grace, int | float) or grace < 0:
            raise ConfigurationError(f"grace must be a number >= 0, got {grace!r}")
        served = resolve(
            self._queues,
            None if queues is None else list(queues),
            [wf_fn.queue for wf_fn in self._workflows.values() if wf_fn.queue is not None],
        )
        worker = Worker(
            self._runtime,
            self._executor,
            served,
            concurrency=concurrency,
            wakeup=self._wakeup,
            poll_interval=poll_interval,
            recover_interval=max(0.5, min(5.0, self.lease_ttl / 3)),
            grace=grace,
            park_after=self.park_after if park_after is None else park_seconds(park_after),
            scheduler=Scheduler(self.name, self.store, self.schedules(), self._enqueue_tick)
            if self._schedules
            else None,
            pruner=None
            if self.retention is None
            else _retention.Pruner(self.store, self.name, self.retention),
        )
        loop = asyncio.get_running_loop()
        hooked: list[signal.Signals] = []
        if handle_signals and threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                try:
                    loop.add_signal_handler(signum, worker.stop)
                    hooked.append(signum)
                except (NotImplementedError, RuntimeError):
                    pass  # not available on this platform or loop
        try:
            await worker.run()
        finally:
            for signum in hooked:
                loop.remove_signal_handler(signum)

    async def recover(self) -> list[str]:
        """Resume every run of this app whose owner died; returns their run ids.

        Runs are resumed from their stored inputs, concurrently, and awaited;
        a run whose workflow is not registered in this process is skipped
        with a warning. Errors of the resumed runs are recorded in the store
        and logged, not raised here.
        """
        return await self._executor.recover()

    # -- durable waits (inside a workflow) -----------------------------------------

    def sleep(self, seconds: float | timedelta) -> Coroutine[Any, Any, None]:
        """Sleep durably inside a workflow: ``await wf.sleep(3600)``.

        The wake-up time is recorded as a step on first execution; after a
        crash the resumed run sleeps only the time that remains, and a sleep
        already over replays at once. A cancel interrupts it.
        """
        ctx = waits.context_for("wf.sleep()")
        duration = waits.seconds_of(seconds, "wf.sleep() seconds")
        step_id, position = ctx.allocate(waits.SLEEP_TASK, None)
        return waits.sleep_step(ctx, step_id, position, seconds=duration, until=None)

    def sleep_until(self, when: datetime | float) -> Coroutine[Any, Any, None]:
        """Sleep durably until ``when`` (a timezone-aware datetime or a Unix timestamp)."""
        ctx = waits.context_for("wf.sleep_until()")
        until = waits.timestamp_of(when)
        step_id, position = ctx.allocate(waits.SLEEP_TASK, None)
        return waits.sleep_step(ctx, step_id, position, seconds=None, until=until)

    def signal(
        self, name: str, timeout: float | timedelta | None = None, *, poll: float | None = None
    ) -> Coroutine[Any, Any, Any]:
        """Wait durably for the signal ``name`` sent to this run; its payload.

        The k-th wait on a name in a run receives the k-th signal of that name
        sent with :meth:`send_signal` (from any process, before or after the
        wait starts). The payload is recorded, so the wait replays. With
        ``timeout`` (seconds, counted from the first time this wait ran) it
        raises :class:`~durable.errors.SignalTimeoutError`, which the workflow
        may catch; a timed-out wait takes no signal.

        ``poll`` is accepted for code written for python-durable 0.2 and
        ignored: waits are polled by one shared reader every 20 ms to 1 s,
        and a signal sent by this process wakes its wait at once.
        """
        if poll is not None:
            _positive("wf.signal() poll", poll)
        ctx = waits.context_for("wf.signal()")
        name = waits.check_signal_name(name)
        limit = None if timeout is None else waits.seconds_of(timeout, "wf.signal() timeout")
        deadline_step = None
        if limit is not None:
            deadline_step = ctx.allocate(waits.DEADLINE_TASK_PREFIX + name, None)
        step_id, position = ctx.allocate(waits.SIGNAL_TASK_PREFIX + name, None)
        return waits.signal_step(
            ctx, name, step_id, position, limit=limit, deadline_step=deadline_step
        )

    # -- controlling and inspecting runs (from anywhere) ---------------------------

    async def send_signal(self, run_id: str, name: str, payload: Any = None) -> None:
        """Deliver the signal ``name`` with a JSON ``payload`` to the run ``run_id``.

        The signal is stored, so it is kept until the run waits for it, even if
        the run has not started yet or its process is down.
        """
        name = waits.check_signal_name(name)
        validate_run_id(run_id, app=self.name)
        text = waits.encode_payload(payload, name=name, run_id=run_id, limit=self.max_value_bytes)
        await self._executor.ensure_open()
        await self.store.send_signal(self.name, run_id, name, text)
        self._runtime.waits.signal_sent(run_id, name)
        self._wakeup.notify()  # a worker here may have parked the run

    async def complete(self, run_id: str, name: str, payload: Any = None) -> bool:
        """Deliver the signal ``name`` to the run ``run_id`` once; True if this call did.

        The first delivery of a name to a run wins, whichever process makes
        it: later calls (and calls after :meth:`send_signal` sent that name)
        store nothing and return False, so a webhook delivered twice is
        harmless. The run need not have started yet. A ``None`` payload is
        delivered as ``{}``, as python-durable 0.2 did.
        """
        name = waits.check_signal_name(name)
        validate_run_id(run_id, app=self.name)
        payload = {} if payload is None else payload
        text = waits.encode_payload(payload, name=name, run_id=run_id, limit=self.max_value_bytes)
        await self._executor.ensure_open()
        delivered = await self.store.send_signal_once(self.name, run_id, name, text)
        if delivered:
            self._runtime.waits.signal_sent(run_id, name)
            self._wakeup.notify()  # a worker here may have parked the run
        return delivered

    async def cancel(self, run_id: str) -> None:
        """Ask the run ``run_id`` to stop.

        A running run (in this process or another) stops at its next step
        boundary at the latest, a sleep or signal wait at once in this process
        and within a heartbeat elsewhere; it is then ``cancelled`` and calling
        it raises :class:`~durable.errors.RunCancelledError` until
        :meth:`resume`. A failed run becomes cancelled; a completed run is
        unchanged.
        """
        validate_run_id(run_id, app=self.name)
        await self._executor.ensure_open()
        run = await self.store.request_cancel(self.name, run_id)
        if run is None:
            raise _not_found(self.name, run_id)
        # Executing here: stop at once rather than at the next heartbeat. The
        # child runs it waits on stop with it.
        self._executor.cancel_requested(run_id)
        self._runtime.waits.cancel_requested(run_id)
        # Executed nowhere (its process died): it is cancelled right now.
        await self._executor.cancel_unowned(run)

    async def resume(self, run_id: str) -> Any:
        """Continue a cancelled (or failed) run from where it stopped; its output.

        Completed steps replay; the workflow must be registered in this
        process. A completed run returns its output; a running one is awaited.
        """
        validate_run_id(run_id, app=self.name)
        await self._executor.ensure_open()
        run = await self.store.get_run(self.name, run_id)
        if run is None:
            raise _not_found(self.name, run_id)
        wf_fn = self._workflows.get(run.workflow)
        if wf_fn is None:
            raise ConfigurationError(
                f"cannot resume run {run_id!r}: its workflow {run.workflow!r} is not "
                f"registered on app {self.name!r} in this process"
            )
        return await self._executor.execute(
            wf_fn, run_id, run.inputs, parent=run.parent_run_id, resume=True
        )

    async def get_run(self, run_id: str) -> _inspect.RunInfo:
        """The run ``run_id`` with its steps; raises RunNotFoundError if there is none."""
        validate_run_id(run_id, app=self.name)
        await self._executor.ensure_open()
        loaded = await self.store.load_run(self.name, run_id)
        if loaded is None:
            raise _not_found(self.name, run_id)
        from durable import _inspect

        return _inspect.run_info(*loaded)

    async def list_runs(
        self,
        *,
        status: RunStatus | None = None,
        workflow: str | None = None,
        queue: str | None = None,
        since: datetime | timedelta | None = None,
        until: datetime | timedelta | None = None,
        id_prefix: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> list[_inspect.RunInfo]:
        """Runs of this app, newest first, filtered (their ``steps`` left empty).

        Filters: ``status``, ``workflow`` and ``queue`` names; ``since``
        (inclusive) and ``until`` (exclusive) bound the creation time, each an
        aware datetime or a timedelta meaning that long ago; ``id_prefix``
        keeps run ids starting with it (literally). At most ``limit`` runs;
        pass the last one's ``cursor`` to get the next page.
        """
        from durable import _listing

        return await _listing.list_runs(
            self,
            status=status,
            workflow=workflow,
            queue=queue,
            since=since,
            until=until,
            id_prefix=id_prefix,
            limit=limit,
            cursor=cursor,
        )

    async def queue_stats(self) -> list[_listing.QueueStats]:
        """Each queue of this app: queued (ready, delayed), running, oldest ready run."""
        from durable import _listing

        known = [*self._queues, *(f.queue for f in self._workflows.values() if f.queue)]
        return await _listing.queue_stats(self, known)

    async def requeue(self, run_id: str) -> RunHandle[Any]:
        """Hand the run to a worker: put it (back) in its queue as ``queued``.

        For a failed run (its failed steps run again, as calling it again
        would), a cancelled one (continued as :meth:`resume` would, by a
        worker), a queued one (claimable at once, its delay dropped) and a
        running one whose process is dead or lease expired. Raises
        :class:`~durable.errors.RunConflictError` for a completed or parked
        run or one whose owner is alive, RunNotFoundError for an unknown id.
        """
        from durable import _listing

        validate_run_id(run_id, app=self.name)
        run = await _listing.requeue(self, run_id, DEFAULT_QUEUE)
        self._wakeup.notify()
        return RunHandle(self, run_id, self._workflows.get(run.workflow))

    async def delete_run(self, run_id: str) -> None:
        """Delete the finished run ``run_id`` with its steps and signals.

        Raises :class:`~durable.errors.RunNotFoundError` when there is no such
        run and :class:`~durable.errors.RunNotFinishedError` when it is queued
        or running (cancel it first); the check and the delete are atomic.
        Child runs are runs of their own and are kept; their parent link
        keeps the deleted run's id.
        """
        validate_run_id(run_id, app=self.name)
        await self._executor.ensure_open()
        if await self.store.delete_run(self.name, run_id) is None:
            raise _not_found(self.name, run_id)

    async def prune(
        self,
        older_than: timedelta | float,
        statuses: Iterable[str] = ("completed", "failed", "cancelled"),
        *,
        dry_run: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Delete finished runs that finished more than ``older_than`` ago; how many.

        ``older_than`` is a timedelta or seconds; ``statuses`` are the final
        statuses to prune (an unfinished one raises ConfigurationError:
        queued and running runs are never pruned). Runs go in batches, each
        its own transaction; ``progress`` is called with the running total
        after each. ``dry_run`` counts what would go and deletes nothing.
        """
        seconds = _retention.age_in_seconds(older_than, "older_than")
        await self._executor.ensure_open()
        return await _retention.prune(
            self.store,
            self.name,
            older_than=seconds,
            statuses=statuses,
            dry_run=dry_run,
            progress=progress,
        )


def _not_found(app: str, run_id: str) -> RunNotFoundError:
    return RunNotFoundError(f"app {app!r} has no run {run_id!r}")


def _check_scheduled(wf_fn: WorkflowFunction[Any, Any]) -> None:
    """A scheduled workflow takes ``scheduled_at: datetime`` and nothing else required."""
    where = f"scheduled workflow {wf_fn.name!r}"
    parameters = wf_fn.signature.parameters
    if "scheduled_at" not in parameters:
        raise ConfigurationError(f"{where} must take a parameter `scheduled_at: datetime`")
    if wf_fn._parameter_hints.get("scheduled_at") is not datetime:
        raise ConfigurationError(f"{where}: annotate its parameter as `scheduled_at: datetime`")
    required = [
        name
        for name, param in parameters.items()
        if name != "scheduled_at"
        and param.default is param.empty
        and param.kind not in (param.VAR_POSITIONAL, param.VAR_KEYWORD)
    ]
    if required:
        raise ConfigurationError(
            f"{where}: its parameters {required} need defaults (a tick passes scheduled_at only)"
        )


def _positive(what: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigurationError(f"{what} must be a number > 0, got {value!r}")
    if value == float("inf"):
        raise ConfigurationError(f"{what} must be finite, got {value!r}")


def _check_retries(what: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigurationError(f"{what} must be an int >= 0, got {value!r}")
    return value


def _check_backoff(what: str, value: Backoff | None) -> Backoff:
    if value is None:
        return exponential(base=2, max=60)
    if not callable(value):
        raise ConfigurationError(f"{what} must be callable (see durable.backoff), got {value!r}")
    return value
