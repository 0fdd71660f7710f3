"""Reading ``--since 2h`` / ``--older-than 30d`` style options."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import click

__all__ = ["Age", "Moment"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


def parse_age(text: str) -> timedelta | None:
    """``"90s"``, ``"15m"``, ``"2h"``, ``"30d"``, ``"1w"`` as a timedelta; None if not one."""
    match = _AGE.match(text)
    if match is None:
        return None
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


class Age(click.ParamType):
    """A duration such as ``30d`` or ``2h``."""

    name = "AGE"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> timedelta:
        if isinstance(value, timedelta):
            return value
        age = parse_age(str(value))
        if age is None:
            self.fail(f"{value!r} is not a duration like 90s, 15m, 2h, 30d or 1w", param, ctx)
        return age


class Moment(click.ParamType):
    """A moment: a duration back from now (``2h``) or an ISO 8601 time (UTC if no zone)."""

    name = "SINCE"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> datetime:
        if isinstance(value, datetime):
            return value
        text = str(value)
        age = parse_age(text)
        if age is not None:
            return datetime.now(UTC) - age
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            self.fail(f"{text!r} is neither a duration like 2h nor an ISO 8601 time", param, ctx)
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
