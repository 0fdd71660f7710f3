"""How values look on the pages: durations, times, JSON and the step timeline."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    from durable._inspect import RunInfo, StepInfo

# What an empty cell shows.
NOTHING = "\N{EN DASH}"


def duration(seconds: float | None) -> str:
    """``"850 ms"``, ``"12.4 s"``, ``"3 min 5 s"``, ``"2 h 10 min"``; a dash for None."""
    if seconds is None:
        return NOTHING
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60)} s"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"
    return f"{int(seconds // 86400)} d {int(seconds % 86400 // 3600)} h"


def timestamp(moment: datetime | None) -> str:
    """A UTC time to the second, ``"2026-12-02 18:04:05"``; a dash for None."""
    if moment is None:
        return NOTHING
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def ago(moment: datetime | None, now: datetime | None = None) -> str:
    """How long before ``now`` this was, ``"5 min ago"``."""
    if moment is None:
        return ""
    seconds = ((now or datetime.now(UTC)) - moment).total_seconds()
    if seconds < 0:
        return "in " + duration(-seconds)
    if seconds < 1:
        return "just now"
    return f"{duration(seconds)} ago"


def pretty_json(value: Any) -> str:
    """Indented JSON for a stored value (they are all JSON)."""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def path_part(text: str) -> str:
    """``text`` quoted to be one segment of a URL path (run ids may hold ``/``)."""
    return quote(text, safe="")


@dataclass(frozen=True, slots=True)
class Bar:
    """Where a step sits on the run's timeline, in percent of the run's span."""

    step: StepInfo
    left: float
    width: float


def timeline(run: RunInfo, now: datetime | None = None) -> list[Bar]:
    """The run's steps placed between its creation and its end (or now)."""
    start = run.created_at
    end = run.finished_at or now or datetime.now(UTC)
    for step in run.steps:
        end = max(end, step.finished_at or step.wakes_at or step.started_at)
    span = max((end - start).total_seconds(), 1e-6)
    bars = []
    for step in run.steps:
        step_end = step.finished_at or end
        left = max(0.0, (step.started_at - start).total_seconds() / span * 100)
        width = max(0.5, (step_end - step.started_at).total_seconds() / span * 100)
        bars.append(Bar(step, round(min(left, 99.5), 2), round(min(width, 100 - left), 2)))
    return bars
