"""Parking a run in a long wait: its coroutine ends, and the store keeps it until it is due.

Under a worker, a run whose ``wf.sleep`` lasts longer than ``park_after``
seconds, or whose ``wf.signal`` wait has gone on that long, is parked: the
store marks it ``waiting`` with its wake time (the sleep's end, the signal
wait's deadline, or none), its lease is dropped and its body unwinds, so
nothing of it stays in the process. When the wake time passes or a signal
arrives, any worker claims it back from its queue and replays its recorded
steps up to the wait, which then finds its time passed or its signal stored.

When the worker stops (SIGTERM), it sets :attr:`ParkPolicy.now` and wakes its
runs' waits: every wait that may park parks at once, however short, so that
the run's next worker takes it when it is due instead of this one holding it
through the grace period.

Parking ends the body by raising :class:`Parked`, a ``BaseException`` so that
a workflow's ``except Exception`` does not swallow it. Only the body's own
task parks, and only while no other step of the run is in flight (a
``gather`` branch): those would be cut off mid-step.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from durable.engine.context import RunContext
from durable.errors import LeaseLostError

__all__ = ["ParkPolicy", "Parked", "may_park", "park"]


class Parked(BaseException):
    """Unwinds the body of a run that was just parked in the store."""


class ParkPolicy:
    """When a run executed by a worker parks: ``after`` seconds of waiting.

    ``queue`` is where a run without a queue of its own (adopted, or started
    with ``start()``) waits to be woken. ``now``: the worker is stopping, so
    every wait parks at once. ``on_park`` is told each parked run's wake
    time, so the worker can wake for it rather than wait for its next poll.
    """

    __slots__ = ("after", "now", "on_park", "queue")

    def __init__(
        self, after: float, queue: str, on_park: Callable[[float], None] | None = None
    ) -> None:
        self.after = after
        self.queue = queue
        self.on_park = on_park
        self.now = False

    def parks(self, seconds: float | None) -> bool:
        """Whether a wait with ``seconds`` left (None: no end) parks now."""
        return self.now or seconds is None or seconds > self.after


def may_park(ctx: RunContext) -> ParkPolicy | None:
    """The run's policy if the wait being awaited now may park it, else None."""
    policy = ctx.park
    if policy is None or ctx.in_flight or ctx.parent is not None:
        return None
    main = ctx.main_task
    if main is None or asyncio.current_task(main.get_loop()) is not main:
        return None
    return policy


async def park(
    ctx: RunContext,
    policy: ParkPolicy,
    *,
    wake_at: float | None,
    signal: tuple[str, int] | None = None,
) -> None:
    """Park the run until ``wake_at`` or ``signal`` (name, index); raises :class:`Parked`."""
    runtime = ctx.runtime
    try:
        await runtime.store.park_run(
            runtime.app, ctx.run_id, ctx.token, queue=policy.queue, wake_at=wake_at, signal=signal
        )
    except LeaseLostError:
        ctx.lease_lost = True
        raise
    if wake_at is not None and policy.on_park is not None:
        policy.on_park(wake_at)
    # No step of this execution may start while the body unwinds: the run
    # belongs to whichever worker wakes it.
    ctx.parked = True
    ctx.ended = True
    raise Parked
