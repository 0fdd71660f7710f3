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
import datetime
import sys
import traceback
import types
import typing
from collections.abc import Callable
from typing import Any, Literal

from durable._fastpaths.json import c_encoder, scanner
from durable.errors import ResultTooLargeError, SerializationError

_NONE_TYPE = type(None)


def _default(value: object) -> object:
    dump = getattr(value, "model_dump", None)
    if callable(dump) and hasattr(type(value), "model_validate"):
        return dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


class _Codec:
    """The json module's machinery, built once on first use (import stays cheap).

    ``json.dumps`` and ``json.loads`` look up or build an encoder or decoder
    on every call, which costs more than coding a small value: a step's
    result is coded on every task call, so these are kept instead.
    """

    __slots__ = ("checked", "fast", "loads", "scan", "string")

    def __init__(self) -> None:
        import json
        from json import encoder

        self.checked = json.JSONEncoder(default=_default, allow_nan=False, separators=(",", ":"))
        self.string = encoder.encode_basestring_ascii
        # The C encoder without cycle detection: a cycle ends in RecursionError,
        # and ``checked`` encodes that value again to report it as a cycle. Only
        # used under the default recursion limit: under a raised one, a cycle
        # could exhaust the C stack before Python's limit stops it.
        self.fast = c_encoder(_default, self.string)
        self.scan = scanner()
        self.loads = json.loads


_codec: _Codec | None = None
# CPython's default recursion limit.
_FAST_RECURSION_LIMIT = 1000


def _new_codec() -> _Codec:
    global _codec
    _codec = _Codec()
    return _codec


def dumps(value: object) -> str:
    """Encode ``value`` as compact JSON; raises TypeError/ValueError as json does."""
    codec = _codec or _new_codec()
    if type(value) is str:
        return codec.string(value)
    fast = codec.fast
    if fast is not None and sys.getrecursionlimit() <= _FAST_RECURSION_LIMIT:
        try:
            return "".join(fast(value, 0))
        except RecursionError:
            pass  # a cycle or very deep nesting: the checked encoder tells them apart
    return codec.checked.encode(value)


def encode(
    value: object,
    *,
    what: str,
    limit: int | None = None,
    role: Literal["result", "argument"] = "result",
) -> str:
    """Encode ``value`` or raise SerializationError naming ``what`` (e.g. a task and step).

    ``role`` phrases the error for what ``value`` is: a ``"result"`` that
    ``what`` returned (the default) or an ``"argument"`` passed as ``what``
    (e.g. ``what="workflow 'w': parameter 'd'"``).
    """
    try:
        text = dumps(value)
    except (TypeError, ValueError, RecursionError) as exc:
        if role == "argument":
            problem, advice = "got a value", "Pass"
        else:
            problem, advice = "returned a value", "Return"
        raise SerializationError(
            f"{what} {problem} that cannot be stored as JSON: {exc}. "
            f"{advice} dicts, lists, strings, numbers, booleans or None "
            "(for a Pydantic model, a model or its .model_dump())."
        ) from exc
    if limit is not None and len(text) > limit:
        # Byte length only matters near the limit; len(text) is a cheap lower bound.
        size = len(text.encode("utf-8"))
        if size > limit:
            verb, act = ("got", "pass") if role == "argument" else ("produced", "return")
            raise ResultTooLargeError(
                f"{what} {verb} {size} bytes of JSON, over the limit of {limit} bytes; "
                f"store large data elsewhere and {act} a reference to it"
            )
    return text


def loads(text: str) -> Any:
    """Decode JSON text; raises ``json.JSONDecodeError`` as ``json.loads`` does."""
    codec = _codec or _new_codec()
    if codec.scan is None:
        return codec.loads(text)
    try:
        value, end = codec.scan(text, 0)
    except Exception:
        return codec.loads(text)  # invalid or padded text: json words the error
    if end != len(text):
        return codec.loads(text)
    return value


# -- Rebuilding annotated types ------------------------------------------------


def _is_model_type(tp: object) -> bool:
    return isinstance(tp, type) and callable(getattr(tp, "model_validate", None))


def rebuild(value: Any, annotation: Any) -> Any:
    """Turn decoded JSON back into ``annotation`` where it names a model or dataclass."""
    if annotation is None or annotation is Any or value is None:
        return value
    if annotation is datetime.datetime and isinstance(value, str):
        # A schedule's tick arrives as ISO 8601 text (JSON has no datetime).
        return datetime.datetime.fromisoformat(value)
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
        if args[0] is int:
            # JSON object keys are strings; an int-keyed dict gets its keys back.
            try:
                return {int(k): rebuild(v, args[1]) for k, v in value.items()}
            except ValueError:
                pass
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
    origin = typing.get_origin(annotation)
    if origin is dict and typing.get_args(annotation)[:1] == (int,):
        return True  # JSON object keys come back as strings
    return origin is tuple or any(
        _needs_rebuild(a) for a in typing.get_args(annotation) if a is not Ellipsis
    )


# -- Errors ----------------------------------------------------------------------


# An exception's attributes are kept up to this much JSON in all; larger ones
# are left out (the message and traceback are always kept).
_ATTRIBUTES_LIMIT = 8192


def encode_error(exc: BaseException) -> str:
    """A JSON document describing ``exc``: type path, message, args, attributes, traceback.

    ``attributes`` holds the entries of the exception's ``__dict__`` whose value
    comes back equal from JSON (strings, numbers, lists, dicts with string
    keys, ...), within a size budget; the others are left out.
    """
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
            "message": _message(exc),
            "args": args,
            "attributes": _attributes(exc),
            "traceback": "".join(traceback.format_exception(exc)),
        }
    )


def _message(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # a broken __str__ must not hide the error itself
        return f"<{type(exc).__name__}: str() failed>"


def _attributes(exc: BaseException) -> dict[str, Any]:
    import json

    kept: dict[str, Any] = {}
    budget = _ATTRIBUTES_LIMIT
    for name, value in list(getattr(exc, "__dict__", {}).items()):
        if not isinstance(name, str):
            continue
        try:
            # Plain JSON, no conversion of models or dataclasses: an attribute is
            # kept only if it comes back as the very same value.
            text = json.dumps(value, allow_nan=False, separators=(",", ":"))
            same = _same(json.loads(text), value)
        except Exception:  # not JSON, or a value whose comparison fails
            continue
        if same and len(text) + len(name) <= budget:
            kept[name] = value
            budget -= len(text) + len(name)
    return kept


def _same(decoded: Any, value: Any) -> bool:
    """``decoded == value`` with the same types throughout (1 is not True, a list not a tuple)."""
    if type(decoded) is not type(value):
        return False
    if isinstance(value, list):
        return len(decoded) == len(value) and all(map(_same, decoded, value))
    if isinstance(value, dict):
        return decoded.keys() == value.keys() and all(_same(decoded[k], value[k]) for k in value)
    return bool(decoded == value)


def describe_error(text: str) -> tuple[str, str]:
    """(type path, message) of an encoded error."""
    doc = loads(text)
    return str(doc.get("type", "")), str(doc.get("message", ""))


def rebuild_error(text: str) -> BaseException | None:
    """The original exception type rebuilt from its record, or None if impossible.

    Only ``Exception`` subclasses reachable by name in modules already imported
    are considered, so a stored type name can never cause an import (and its
    side effects); a class defined inside a function is never found. The
    exception is made by ``cls(*args)``, or else without calling ``__init__``
    (``cls.__new__(cls, *args)``), which rebuilds classes whose ``__init__``
    takes other arguments (keyword-only ones, for example). The recorded
    attributes are then restored; those that could not be recorded are absent.
    The result is accepted only if its ``str()`` equals the recorded message.
    """
    doc = loads(text)
    module = sys.modules.get(str(doc.get("module", "")))
    qualname = str(doc.get("qualname", ""))
    args = doc.get("args")
    attributes = doc.get("attributes")
    if module is None or not isinstance(args, list):
        return None
    if not isinstance(attributes, dict):
        attributes = {}
    obj: Any = module
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    if not (isinstance(obj, type) and issubclass(obj, Exception)):
        return None
    message = doc.get("message")
    for make in (_by_init, _without_init):
        exc = make(obj, args, attributes)
        if exc is not None and _has_message(exc, message):
            return exc
    return None


def _by_init(cls: type[Exception], args: list[Any], attributes: dict[str, Any]) -> Exception | None:
    try:
        exc = cls(*args)
        exc.__dict__.update(attributes)
    except Exception:
        return None
    return exc


def _without_init(
    cls: type[Exception], args: list[Any], attributes: dict[str, Any]
) -> Exception | None:
    try:
        exc = cls.__new__(cls, *args)
        if not isinstance(exc, cls):
            return None
        exc.args = tuple(args)
        # Straight into __dict__: no property setter or __setattr__ runs.
        exc.__dict__.update(attributes)
    except Exception:
        return None
    return exc


def _has_message(exc: BaseException, message: object) -> bool:
    try:
        return str(exc) == message
    except Exception:  # a __str__ needing an attribute that was not restored
        return False
