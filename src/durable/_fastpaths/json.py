"""The json module's C encoder, built without its cycle check, and its scanner.

``json.encoder.c_make_encoder`` is not part of the json module's documented
API. Building the encoder directly skips what ``json.dumps`` redoes on every
call (argument checks, an encoder object) and its cycle bookkeeping, which
costs more than encoding a small step result. Checked for the CPython
versions below; elsewhere, or with fast paths off, the caller uses a plain
:class:`json.JSONEncoder`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from durable import _fastpaths

# The CPython versions whose c_make_encoder takes the nine arguments used here.
_VERIFIED = ((3, 11), (3, 14))


def c_encoder(
    default: Callable[[Any], Any], encode_string: Callable[[str], str]
) -> Callable[[Any, int], Any] | None:
    """An ``iterencode``-like function of the C encoder, or None to use the public one.

    The encoder produces compact JSON (``","`` and ``":"``), ASCII only, with
    NaN and infinity refused; a cycle surfaces as RecursionError.
    """
    if not _fastpaths.enabled() or sys.implementation.name != "cpython":
        return None
    if not _VERIFIED[0] <= sys.version_info[:2] < _VERIFIED[1]:
        return None
    from json import encoder

    make = getattr(encoder, "c_make_encoder", None)  # None without the C accelerator
    if make is None:
        return None
    # markers=None: no cycle detection; allow_nan=False as json.dumps(allow_nan=False).
    fast: Callable[[Any, int], Any] = make(
        None, default, encode_string, None, ":", ",", False, False, False
    )
    return fast


def scanner() -> Callable[[str, int], tuple[Any, int]] | None:
    """The decoder's ``scan_once`` (value and end index from a position), or None.

    It is an undocumented attribute of :class:`json.JSONDecoder`: decoding
    with it skips the whitespace handling and checks that ``json.loads``
    repeats on every call. None means: use ``json.loads``.
    """
    if not _fastpaths.enabled():
        return None
    import json

    scan = getattr(json.JSONDecoder(), "scan_once", None)
    return scan if callable(scan) else None
