"""Printing for people (rich tables and panels) and for scripts (JSON)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import click
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from durable._inspect import ErrorInfo, RunInfo, SignalInfo, StepInfo

__all__ = ["console", "print_json", "print_run", "print_runs", "to_plain"]

_STATUS_STYLES = {
    "completed": "green",
    "failed": "red",
    "cancelled": "yellow",
    "running": "cyan",
    "queued": "blue",
    "waiting": "magenta",
}


def console() -> Console:
    """A console on the current stdout (looked up per call: tests swap stdout)."""
    return Console(highlight=False, soft_wrap=False)


def to_plain(value: Any) -> Any:
    """``value`` as JSON-ready data: dataclasses as dicts, datetimes as ISO 8601 text."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(key): to_plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_plain(item) for item in value]
    return value


def print_json(value: Any) -> None:
    """Print ``value`` as one JSON document on stdout."""
    click.echo(json.dumps(to_plain(value), indent=2, sort_keys=True, ensure_ascii=False))


def _when(moment: datetime | None) -> str:
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S")


def _seconds(duration: float | None) -> str:
    if duration is None:
        return ""
    if duration < 1:
        return f"{duration * 1000:.0f}ms"
    if duration < 120:
        return f"{duration:.1f}s"
    return f"{duration / 60:.1f}m"


def _status(status: str) -> Text:
    return Text(status, style=_STATUS_STYLES.get(status, ""))


def _brief(value: Any, width: int = 60) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


def print_runs(runs: Sequence[RunInfo]) -> None:
    """A table of runs, one a row."""
    table = Table(title=f"{len(runs)} run(s), newest first", title_justify="left")
    longest = max((len(run.run_id) for run in runs), default=6)
    table.add_column("run id", overflow="fold", min_width=min(longest, 36))
    table.add_column("workflow")
    table.add_column("status", no_wrap=True)
    table.add_column("queue")
    table.add_column("created (UTC)", no_wrap=True)
    table.add_column("took", justify="right", no_wrap=True)
    for run in runs:
        table.add_row(
            run.run_id,
            run.workflow,
            _status(run.status),
            run.queue or "",
            run.created_at.strftime("%m-%d %H:%M:%S"),
            _seconds(run.duration),
        )
    console().print(table)


def _error(error: ErrorInfo) -> Group:
    parts: list[Any] = [Text(str(error), style="bold red")]
    if error.traceback:
        parts.append(Text(error.traceback.rstrip()))
    return Group(*parts)


def _steps(steps: Sequence[StepInfo]) -> Table:
    table = Table(title="steps", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("step id", overflow="fold")
    table.add_column("task")
    table.add_column("status")
    table.add_column("attempts", justify="right")
    table.add_column("duration", justify="right")
    table.add_column("result or error", overflow="fold")
    for step in steps:
        outcome = str(step.error) if step.error is not None else _brief(step.result)
        table.add_row(
            str(step.position),
            step.step_id,
            step.task,
            _status(step.status),
            str(step.attempts),
            _seconds(step.duration),
            outcome,
        )
    return table


def print_run(run: RunInfo, children: Sequence[RunInfo], signals: Sequence[SignalInfo]) -> None:
    """Everything about one run: summary, inputs, outcome, steps, children and signals."""
    out = console()
    summary = Table.grid(padding=(0, 2))
    summary.add_column(style="bold")
    summary.add_column(overflow="fold")
    summary.add_row("run id", run.run_id)
    summary.add_row("workflow", run.workflow)
    summary.add_row("status", _status(run.status))
    if run.cancel_requested and run.status == "running":
        summary.add_row("", Text("cancel requested", style="yellow"))
    if run.queue is not None:
        summary.add_row("queue", run.queue)
    summary.add_row("attempts", str(run.attempts))
    summary.add_row("created", _when(run.created_at) + " UTC")
    if run.finished_at is not None:
        summary.add_row("finished", f"{_when(run.finished_at)} UTC ({_seconds(run.duration)})")
    if run.parent_run_id is not None:
        summary.add_row("parent run", run.parent_run_id)
    if run.owner is not None:
        summary.add_row("owner", run.owner)
    summary.add_row("inputs", json.dumps(run.inputs, ensure_ascii=False, default=str))
    if run.status == "completed":
        summary.add_row("output", json.dumps(run.output, ensure_ascii=False, default=str))
    out.print(Panel(summary, title=f"run {run.run_id}", title_align="left"))
    if run.error is not None:
        out.print(Panel(_error(run.error), title="error", title_align="left", border_style="red"))
    out.print(_steps(run.steps) if run.steps else Text("no steps recorded"))
    for step in run.steps:
        if step.error is not None and step.error.traceback:
            title = f"step {step.step_id} ({step.task}) error"
            out.print(Panel(_error(step.error), title=title, title_align="left"))
    if children:
        table = Table(title="child runs", title_justify="left")
        for column in ("run id", "workflow", "status"):
            table.add_column(column, overflow="fold")
        for child in children:
            table.add_row(child.run_id, child.workflow, _status(child.status))
        out.print(table)
    if signals:
        table = Table(title="signals", title_justify="left")
        for column in ("name", "index", "state", "payload"):
            table.add_column(column, overflow="fold")
        for signal in signals:
            state = "received" if signal.received else "not read yet"
            table.add_row(signal.name, str(signal.index), state, _brief(signal.payload))
        out.print(table)
