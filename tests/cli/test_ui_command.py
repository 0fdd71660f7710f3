"""`durable ui`: its options reach the server's run(), bad ones are usage errors, and it serves."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest
from click.testing import CliRunner

from durable import Workflow
from durable.cli._root import cli


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The calls the command makes to durable.ui.server.run, which records them."""
    calls: list[dict[str, Any]] = []
    server = types.ModuleType("durable.ui.server")

    def run(target: Workflow, **options: Any) -> None:
        calls.append({"target": target, **options})

    server.run = run  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "durable.ui.server", server)
    return calls


def invoke(*args: str) -> Any:
    env = {"DURABLE_DB": None, "DURABLE_APP": None}
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def test_defaults_bind_to_localhost(served: list[dict[str, Any]], tmp_path: Any) -> None:
    """By default the UI listens on 127.0.0.1:8233 with actions on, for the named app."""
    result = invoke("--db", str(tmp_path / "ui.db"), "--app", "shop", "ui")
    assert result.exit_code == 0, result.output
    [call] = served
    assert (call["host"], call["port"], call["read_only"]) == ("127.0.0.1", 8233, False)
    assert isinstance(call["target"], Workflow)
    assert call["target"].name == "shop"


def test_options_are_passed_on(served: list[dict[str, Any]], tmp_path: Any) -> None:
    """--host, --port and --read-only reach the server."""
    db = str(tmp_path / "ui.db")
    result = invoke(
        "--db", db, "--app", "shop", "ui", "--host", "0.0.0.0", "--port", "9000", "--read-only"
    )
    assert result.exit_code == 0, result.output
    assert [(c["host"], c["port"], c["read_only"]) for c in served] == [("0.0.0.0", 9000, True)]


def test_bad_options_are_usage_errors(served: list[dict[str, Any]], tmp_path: Any) -> None:
    """A port out of range or a missing app exits 2 without starting a server."""
    db = str(tmp_path / "ui.db")
    assert invoke("--db", db, "--app", "shop", "ui", "--port", "70000").exit_code == 2
    assert invoke("--db", db, "ui").exit_code == 2
    assert served == []


def test_the_command_serves_the_ui_over_http(tmp_path: Any) -> None:
    """A real `python -m durable ui` process prints its URL and serves the runs page."""
    import asyncio
    import re
    import socket
    import subprocess
    import time

    import httpx

    db = f"sqlite:///{tmp_path / 'ui.db'}"

    async def record_a_run() -> None:
        async with Workflow("shop", db=db) as wf:

            @wf.workflow(id="greet-{name}")
            async def greet(name: str) -> str:
                return f"hello {name}"

            await greet("ada")

    asyncio.run(record_a_run())
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-m", "durable", "--db", db, "--app", "shop"]
    process = subprocess.Popen(
        [*command, "ui", "--port", str(port), "--read-only"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        url = re.search(r"http://\S+", process.stdout.readline())
        assert url is not None
        assert url.group(0).rstrip("/") == f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                page = httpx.get(url.group(0), timeout=5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the UI server did not answer"
                time.sleep(0.1)
        assert page.status_code == 200
        assert "greet-ada" in page.text
    finally:
        process.terminate()
        process.communicate(timeout=30)
