"""Reading ``--since 2h`` / ``--older-than 30d`` style options (click callbacks)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import click

__all__ = ["age", "moment", "parse_age"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


def parse_age(text: str) -> timedelta | None:
    """``"90s"``, ``"15m"``, ``"2h"``, ``"30d"``, ``"1w"`` as a timedelta; None if not one."""
    match = _AGE.match(text)
    if match is None:
        return None
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


def age(ctx: click.Context, param: click.Parameter, value: str | None) -> timedelta | None:
    """An option's duration such as ``30d`` or ``2h``."""
    if value is None:
        return None
    parsed = parse_age(value)
    if parsed is None:
        raise click.BadParameter(f"{value!r} is not a duration like 90s, 15m, 2h, 30d or 1w")
    return parsed


def moment(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    """An option's moment: a duration back from now (``2h``) or ISO 8601 (UTC if no zone)."""
    if value is None:
        return None
    back = parse_age(value)
    if back is not None:
        return datetime.now(UTC) - back
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is neither a duration like 2h nor an ISO 8601 time"
        ) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
