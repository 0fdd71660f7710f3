"""Closing the socket of a transport whose event loop is closed: asyncio's private attributes.

A selector transport closes its socket in a callback it schedules on its own
loop. Once that loop is closed, ``transport.close()`` marks the transport
closing but cannot schedule that callback ("Event loop is closed"), and
asyncio has no public way to close the socket now: left alone, the transport
closes it when collected, with a ResourceWarning ("unclosed transport").

The fast path closes the socket and unlinks it from the transport, as the
transport's own connection-lost callback does; a TLS transport wraps the
socket transport, which is closed next. Without it the caller keeps the
transport referenced (see ``durable.stores._loops``) instead of letting it be
collected with a warning.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys

from durable import _fastpaths

__all__ = ["available", "close_transport_now"]

# Checked against the source of CPython 3.11, 3.12 and 3.13: selector
# transports keep their socket in ``_sock`` and warn in ``__del__`` while it
# is set; ``_SSLProtocolTransport._ssl_protocol._transport`` is the socket
# transport under TLS.
_MINIMUM = (3, 11)
_BELOW = (3, 14)


def available() -> bool:
    """Whether :func:`close_transport_now` can close sockets on this Python."""
    version = ".".join(str(part) for part in sys.version_info[:3])
    return _fastpaths.enabled() and _fastpaths.version_in_range(version, _MINIMUM, _BELOW)


def close_transport_now(transport: asyncio.BaseTransport | None) -> bool:
    """Close a transport of a closed event loop, and its socket, synchronously.

    Returns False, having done nothing, when the fast path is not available:
    the caller must then keep the transport from being collected.
    """
    if not available():
        return False
    while transport is not None:
        with contextlib.suppress(RuntimeError):  # "Event loop is closed"
            transport.close()
        sock = getattr(transport, "_sock", None)
        if sock is not None:
            sock.close()
            transport._sock = None  # type: ignore[attr-defined]
        ssl_protocol = getattr(transport, "_ssl_protocol", None)
        transport = getattr(ssl_protocol, "_transport", None)
    return True
