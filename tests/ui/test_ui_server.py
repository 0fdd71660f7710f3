"""durable.ui.server: the URL it prints for each kind of bind address."""

from __future__ import annotations

import pytest

from durable.ui import server


@pytest.mark.parametrize(
    ("host", "printed"),
    [
        ("127.0.0.1", "http://127.0.0.1:8233/"),
        ("0.0.0.0", "http://127.0.0.1:8233/"),
        ("localhost", "http://localhost:8233/"),
        ("::1", "http://[::1]:8233/"),
    ],
)
def test_the_printed_url_is_one_a_browser_can_open(host: str, printed: str) -> None:
    """A wildcard bind prints a loopback address; IPv6 addresses get brackets."""
    assert server.url(host, 8233) == printed


def test_the_default_bind_is_loopback() -> None:
    """Without options the server is reachable from this machine only."""
    assert (server.DEFAULT_HOST, server.DEFAULT_PORT) == ("127.0.0.1", 8233)
