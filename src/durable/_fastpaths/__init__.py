"""Fast paths that rely on private attributes of other libraries, each behind a guard.

Every use of a private attribute of aiosqlite, asyncio, asyncpg, redis or the
json module lives in one module here, one per library. Each fast path:

- checks the library's version against the range it was written for, and
  looks the private attribute up defensively;
- has a fallback built on public APIs only, used when the check fails;
- is switched off entirely when the environment variable
  ``DURABLE_DISABLE_FAST_PATHS`` is set to ``1`` (read once, at import), so the
  test suite can prove that every fallback works on its own.

Nothing outside this package may touch another library's private attributes.
"""

from __future__ import annotations

import os

__all__ = ["ENV_VAR", "enabled", "version_in_range", "version_tuple"]

ENV_VAR = "DURABLE_DISABLE_FAST_PATHS"

_DISABLED = os.environ.get(ENV_VAR, "").strip().lower() in ("1", "true", "yes", "on")


def enabled() -> bool:
    """False when ``DURABLE_DISABLE_FAST_PATHS=1``: every adapter takes its public fallback."""
    return not _DISABLED


def version_tuple(version: str) -> tuple[int, ...]:
    """``"0.22.1"`` -> ``(0, 22, 1)``; stops at the first part that is not a number."""
    parts: list[int] = []
    for piece in version.split("."):
        digits = ""
        for ch in piece:
            if not ch.isdigit():
                break
            digits += ch
        if not digits:
            break
        parts.append(int(digits))
        if len(digits) != len(piece):
            break
    return tuple(parts)


def version_in_range(version: str, minimum: tuple[int, ...], below: tuple[int, ...]) -> bool:
    """True when ``minimum <= version < below``: the range a fast path was checked against."""
    parsed = version_tuple(version)
    return minimum <= parsed < below
