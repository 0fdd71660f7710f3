"""JSON codec for stored values and errors; rebuilds annotated types on the way back.

Values are encoded with ``json.dumps`` (no NaN or infinity, no pickle).
Pydantic models and dataclasses are encoded as their fields; when the
function's return annotation names such a type, decoding rebuilds it, so a
task returns the same type whether it ran or replayed. Pydantic is never
imported here: models are recognised by their ``model_dump`` and
``model_validate`` methods.
"""

from __future__ import annotations

import dataclasses
import sys
import traceback
import types
import typing
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from durable.errors import ResultTooLargeError, SerializationError

if TYPE_CHECKING:
    import json

_NONE_TYPE = type(None)


def _default(value: object) -> object:
    dump = getattr(value, "model_dump", None)
    if callable(dump) and hasattr(type(value), "model_validate"):
        return dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# One encoder for the process (json.dumps builds a new one per call when given
# options), made on first use like the json module itself: import stays cheap.
_encoder: json.JSONEncoder | None = None


def _new_encoder() -> json.JSONEncoder:
    global _encoder
    import json

    _encoder = json.JSONEncoder(default=_default, allow_nan=False, separators=(",", ":"))
    return _encoder


def dumps(value: object) -> str:
    """Encode ``value`` as compact JSON; raises TypeError/ValueError as json does."""
    return (_encoder or _new_encoder()).encode(value)


def encode(value: object, *, what: str, limit: int | None = None) -> str:
    """Encode ``value`` or raise SerializationError naming ``what`` (e.g. a task and step)."""
    try:
        text = dumps(value)
    except (TypeError, ValueError, RecursionError) as exc:
        raise SerializationError(
            f"{what} returned a value that cannot be stored as JSON: {exc}. "
            "Return dicts, lists, strings, numbers, booleans or None "
            "(for a Pydantic model, a model or its .model_dump())."
        ) from exc
    if limit is not None and len(text) > limit:
        # Byte length only matters near the limit; len(text) is a cheap lower bound.
        size = len(text.encode("utf-8"))
        if size > limit:
            raise ResultTooLargeError(
                f"{what} produced {size} bytes of JSON, over the limit of {limit} bytes; "
                "store large data elsewhere and return a reference to it"
            )
    return text


def loads(text: str) -> Any:
    import json  # a dictionary lookup once imported

    return json.loads(text)


# -- Rebuilding annotated types ------------------------------------------------


def _is_model_type(tp: object) -> bool:
    return isinstance(tp, type) and callable(getattr(tp, "model_validate", None))


def rebuild(value: Any, annotation: Any) -> Any:
    """Turn decoded JSON back into ``annotation`` where it names a model or dataclass."""
    if annotation is None or annotation is Any or value is None:
        return value
    if _is_model_type(annotation):
        return annotation.model_validate(value)
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
        if not isinstance(value, dict):
            return value
        hints = _hints(annotation)
        init = {
            f.name: rebuild(value[f.name], hints.get(f.name))
            for f in dataclasses.fields(annotation)
            if f.init and f.name in value
        }
        return annotation(**init)
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not _NONE_TYPE]
        return rebuild(value, options[0]) if len(options) == 1 else value
    if origin is list and args and isinstance(value, list):
        return [rebuild(v, args[0]) for v in value]
    if origin is tuple and isinstance(value, list):
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(rebuild(v, args[0]) for v in value)
        if len(args) == len(value):
            return tuple(rebuild(v, a) for v, a in zip(value, args, strict=True))
        return tuple(value)
    if origin is dict and len(args) == 2 and isinstance(value, dict):
        return {k: rebuild(v, args[1]) for k, v in value.items()}
    return value


def _hints(obj: Any) -> dict[str, Any]:
    try:
        return typing.get_type_hints(obj)
    except Exception:  # unresolvable forward references: fall back to plain JSON
        return {}


def return_annotation(fn: Callable[..., Any]) -> Any:
    """The return type of ``fn`` if it names something worth rebuilding, else None."""
    annotation = _hints(fn).get("return")
    return annotation if _needs_rebuild(annotation) else None


def _needs_rebuild(annotation: Any) -> bool:
    if annotation is None:
        return False
    if _is_model_type(annotation) or (
        isinstance(annotation, type) and dataclasses.is_dataclass(annotation)
    ):
        return True
    if annotation is tuple:
        return True
    return typing.get_origin(annotation) is tuple or any(
        _needs_rebuild(a) for a in typing.get_args(annotation) if a is not Ellipsis
    )


# -- Errors ----------------------------------------------------------------------


def encode_error(exc: BaseException) -> str:
    """A JSON document describing ``exc``: type path, message, args, traceback."""
    cls = type(exc)
    try:
        args = loads(dumps(list(exc.args)))
    except (TypeError, ValueError, RecursionError):
        args = None
    return dumps(
        {
            "type": f"{cls.__module__}.{cls.__qualname__}",
            "module": cls.__module__,
            "qualname": cls.__qualname__,
            "message": str(exc),
            "args": args,
            "traceback": "".join(traceback.format_exception(exc)),
        }
    )


def describe_error(text: str) -> tuple[str, str]:
    """(type path, message) of an encoded error."""
    doc = loads(text)
    return str(doc.get("type", "")), str(doc.get("message", ""))


def rebuild_error(text: str) -> BaseException | None:
    """The original exception type rebuilt from its record, or None if impossible.

    Only classes of modules already imported are considered, so a stored type
    name can never cause an import (and its side effects).
    """
    doc = loads(text)
    module = sys.modules.get(str(doc.get("module", "")))
    qualname = str(doc.get("qualname", ""))
    args = doc.get("args")
    if module is None or not isinstance(args, list):
        return None
    obj: Any = module
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    if not (isinstance(obj, type) and issubclass(obj, Exception)):
        return None
    try:
        exc = obj(*args)
    except Exception:
        return None
    return exc if str(exc) == doc.get("message") else None
