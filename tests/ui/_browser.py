"""Real processes and a real Chromium for the browser tests.

The UI runs as ``durable.ui.server.run`` in a child process, as ``durable ui``
runs it, and workers run as ``durable worker`` processes; Chromium is driven
through Debian's chromedriver, never one downloaded by Selenium Manager.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from tests import _services

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
SCREENSHOTS = ROOT / "test-output" / "screenshots"
CHROMIUM = os.environ.get("DURABLE_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("DURABLE_TEST_CHROMEDRIVER", "/usr/bin/chromedriver")
# A bound on waits for other processes, never an expectation of speed.
PATIENCE = 60.0


def new_driver() -> Any:
    """A headless Chromium session; skips (or fails when services are required) without one."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if shutil.which(path) is None]
    if missing:
        _services.unavailable(
            f"browser tests need Chromium and chromedriver: {', '.join(missing)} not found "
            "(apt-get install chromium chromium-driver)"
        )
    webdriver = _services.import_driver("selenium.webdriver")
    service_module = _services.import_driver("selenium.webdriver.chrome.service")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,900",
    ):
        options.add_argument(argument)
    # Both paths are given, so Selenium Manager has nothing to look up or download.
    service = service_module.Service(executable_path=CHROMEDRIVER)
    return webdriver.Chrome(service=service, options=options)


def navigate(driver: Any, act: Callable[[], object]) -> None:
    """Do ``act`` (a click that loads a page) and wait until the new page replaced the old.

    A click returns before the page it submits has loaded: reading elements
    at once could read the old page, or elements going stale under us.
    """
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    page = driver.find_element("tag name", "html")
    act()
    WebDriverWait(driver, PATIENCE).until(expected_conditions.staleness_of(page))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def child_env(db: str) -> dict[str, str]:
    return {
        **os.environ,
        "UI_DB": db,
        "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT), *sys.path]),
    }


def start_ui(db: str) -> tuple[subprocess.Popen[str], str]:
    """The UI server of the demo app on ``db`` and the URL it printed."""
    port = free_port()
    code = f"import _ui_app; from durable.ui import server; server.run(_ui_app.wf, port={port})"
    process = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=HERE,
        env=child_env(db),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    found = re.search(r"http://\S+", line)
    if found is None:
        process.kill()
        process.wait()
        raise AssertionError(f"the UI server printed no URL: {line!r}")
    url = found.group(0)
    wait_for_port(port, process)
    return process, url


def wait_for_port(port: int, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the UI server exited with status {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"the UI server did not listen on port {port}")


def start_worker(db: str) -> subprocess.Popen[str]:
    """A ``durable worker`` process serving the demo app on ``db``."""
    command = [sys.executable, "-m", "durable", "worker", "_ui_app:wf"]
    options = ["--poll-interval", "0.1", "--log-level", "WARNING"]
    return subprocess.Popen([*command, *options], cwd=HERE, env=child_env(db), text=True)


def stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=PATIENCE)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdout is not None:
        process.stdout.close()


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Wait until ``check()`` is true, failing with ``what`` after PATIENCE seconds."""
    deadline = time.monotonic() + PATIENCE
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting for {what}")
        await asyncio.sleep(0.05)


def screenshot(driver: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))
