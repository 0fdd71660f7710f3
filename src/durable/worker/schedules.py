"""Schedules: a workflow enqueued on every tick of a cron expression, once per tick.

Every worker that serves the app computes the ticks that came due and
enqueues a run for each under a run id derived from the workflow and the
tick, so however many workers serve, the store holds one run per tick.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from durable.errors import ConfigurationError

if TYPE_CHECKING:
    from durable.stores.base import Store

__all__ = ["CATCHUP_POLICIES", "Catchup", "Schedule", "Scheduler"]

logger = logging.getLogger("durable.worker")

Catchup = Literal["latest", "all", "none"]
CATCHUP_POLICIES: tuple[Catchup, ...] = ("latest", "all", "none")

# At most this many missed ticks are enqueued by one catch-up ("all").
MAX_CATCHUP = 1000
# Under catchup="none", a tick is still on time this long after it came due.
ON_TIME = timedelta(seconds=10)
# How many of a workflow's newest runs are read to find its last tick.
_HISTORY = 50


class Schedule:
    """The workflow ``workflow`` enqueued on each tick of ``cron`` in ``timezone``.

    ``cron`` has five fields (minute hour day month weekday) or six, the sixth
    being seconds. ``catchup`` says what happens to ticks missed while no
    worker ran: ``"latest"`` enqueues the newest of them, ``"all"`` every one
    (up to 1,000), ``"none"`` none.
    """

    __slots__ = ("_zone", "catchup", "cron", "queue", "timezone", "workflow")

    def __init__(
        self,
        cron: str,
        *,
        workflow: str,
        timezone: str = "UTC",
        catchup: Catchup = "latest",
        queue: str | None = None,
    ) -> None:
        croniter = _croniter()
        where = f"schedule of workflow {workflow!r}"
        if not isinstance(cron, str) or not croniter.is_valid(cron):
            raise ConfigurationError(f"{where}: {cron!r} is not a valid cron expression")
        if catchup not in CATCHUP_POLICIES:
            raise ConfigurationError(
                f"{where}: catchup must be one of {CATCHUP_POLICIES}, got {catchup!r}"
            )
        try:
            from zoneinfo import ZoneInfo

            self._zone = ZoneInfo(timezone)
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigurationError(f"{where}: unknown timezone {timezone!r}") from exc
        self.cron = cron
        self.workflow = workflow
        self.timezone = timezone
        self.catchup: Catchup = catchup
        self.queue = queue

    def __repr__(self) -> str:
        return (
            f"Schedule({self.cron!r}, workflow={self.workflow!r}, timezone={self.timezone!r}, "
            f"catchup={self.catchup!r})"
        )

    def next_tick(self, after: datetime | None = None) -> datetime:
        """The first tick strictly after ``after`` (default now), in the schedule's timezone."""
        start = (after or datetime.now(UTC)).astimezone(self._zone)
        tick: datetime = _croniter()(self.cron, start).get_next(datetime)
        return tick

    def latest_tick(self, until: datetime) -> datetime:
        """The last tick at or before ``until``."""
        start = until.astimezone(self._zone) + timedelta(microseconds=1)
        tick: datetime = _croniter()(self.cron, start).get_prev(datetime)
        return tick

    def ticks(self, after: datetime, until: datetime, limit: int) -> list[datetime]:
        """Up to ``limit`` ticks in (after, until], oldest first."""
        found: list[datetime] = []
        iterator = _croniter()(self.cron, after.astimezone(self._zone))
        while len(found) < limit:
            tick: datetime = iterator.get_next(datetime)
            if tick > until:
                break
            found.append(tick)
        return found

    def run_id(self, tick: datetime) -> str:
        """The run id of the tick's run: the same in every process."""
        return f"{self.workflow}@{tick.astimezone(UTC).isoformat()}"

    def tick_of(self, run_id: str) -> datetime | None:
        """The tick a run id of this schedule names, None for other run ids."""
        prefix = f"{self.workflow}@"
        if not run_id.startswith(prefix):
            return None
        try:
            tick = datetime.fromisoformat(run_id[len(prefix) :])
        except ValueError:
            return None
        return tick if tick.tzinfo is not None else None


Enqueue = Callable[[Schedule, datetime], Awaitable[Any]]


class Scheduler:
    """Enqueues the due ticks of some schedules; one per worker."""

    def __init__(self, app: str, store: Store, schedules: Sequence[Schedule], enqueue: Enqueue):
        self.app = app
        self.store = store
        self.schedules = list(schedules)
        self.enqueue = enqueue
        # The newest tick known to be enqueued, per schedule (by workflow name).
        self._last: dict[str, datetime] = {}

    async def run_due(self, now: datetime | None = None) -> int:
        """Enqueue the ticks that came due; how many were enqueued."""
        now = now or datetime.now(UTC)
        enqueued = 0
        for schedule in self.schedules:
            last = self._last.get(schedule.workflow)
            if last is None:
                last = await self._last_from_store(schedule, now)
            due = schedule.ticks(last, now, MAX_CATCHUP + 1)
            if not due:
                self._last[schedule.workflow] = last
                continue
            for tick in self._to_enqueue(schedule, due, now):
                await self.enqueue(schedule, tick)
                enqueued += 1
            self._last[schedule.workflow] = due[-1]
        return enqueued

    def seconds_to_next(self, now: datetime | None = None) -> float | None:
        """Seconds until the next tick of any schedule; None without schedules."""
        now = now or datetime.now(UTC)
        nexts = [schedule.next_tick(now) for schedule in self.schedules]
        return min((tick - now).total_seconds() for tick in nexts) if nexts else None

    def _to_enqueue(self, schedule: Schedule, due: list[datetime], now: datetime) -> list[datetime]:
        if schedule.catchup == "all":
            if len(due) > MAX_CATCHUP:
                logger.warning(
                    "schedule of %r missed over %d ticks; enqueueing the newest %d",
                    schedule.workflow,
                    MAX_CATCHUP,
                    MAX_CATCHUP,
                    extra={"action": "schedule_catchup_capped"},
                )
            return due[-MAX_CATCHUP:]
        if schedule.catchup == "latest":
            return due[-1:]
        return [tick for tick in due if now - tick <= ON_TIME]

    async def _last_from_store(self, schedule: Schedule, now: datetime) -> datetime:
        """The schedule's newest enqueued tick; for a schedule never run, the last tick
        before now (a new schedule does not catch up on ticks from before it existed)."""
        runs = await self.store.list_runs(self.app, workflow=schedule.workflow, limit=_HISTORY)
        ticks = [tick for run in runs if (tick := schedule.tick_of(run.run_id)) is not None]
        return max(ticks) if ticks else schedule.latest_tick(now)


def _croniter() -> Any:
    try:
        from croniter import croniter
    except ImportError:
        raise ConfigurationError(
            'schedules need croniter: pip install "python-durable[cron]"'
        ) from None
    return croniter
