"""Checks shared by the stores, so every backend accepts and rejects the same text.

PostgreSQL text cannot hold a NUL character; the other stores reject it too,
so a run that works against one store works against all of them.
"""

from __future__ import annotations

from durable.errors import RunIdError, SerializationError


def check_names(**names: str | None) -> None:
    """Raise :class:`RunIdError` if an id or name (app, run id, step id, ...) has a NUL."""
    for what, value in names.items():
        if value is not None and "\x00" in value:
            raise RunIdError(
                f"{what.replace('_', ' ')} must not contain a NUL character: {value!r}"
            )


def check_json(**values: str | None) -> None:
    """Raise :class:`SerializationError` if encoded JSON text holds a raw NUL character."""
    for what, value in values.items():
        if value is not None and "\x00" in value:
            raise SerializationError(
                f"{what.replace('_', ' ')} must not contain a raw NUL character"
            )
