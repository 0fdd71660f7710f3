"""The UI in a real headless Chromium, over a real server, store and worker processes.

Each test runs on SQLite and on PostgreSQL, and saves a screenshot of each
page it visits under test-output/screenshots/.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests import _services
from tests.ui import _browser, _ui_app
from tests.ui.conftest import populate

pytestmark = [pytest.mark.browser, pytest.mark.asyncio]


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    """One headless Chromium for the module's tests."""
    session = _browser.new_driver()
    try:
        yield session
    finally:
        session.quit()


@pytest.fixture(
    params=[pytest.param("sqlite"), pytest.param("postgres", marks=pytest.mark.postgres)]
)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The URL of a fresh database of each kind."""
    if request.param == "sqlite":
        yield str(tmp_path / "ui.db")
        return
    dsn = await _services.postgres_dsn()
    schema = _services.unique_name("ui")
    try:
        yield f"{dsn}?schema={schema}"
    finally:
        await _services.drop_postgres_schema(dsn, schema)


@pytest.fixture
async def demo(db: str) -> AsyncIterator[_ui_app.Demo]:
    """The demo app on ``db`` with two completed runs and a failed one."""
    app = _ui_app.build(db)
    await populate(app)
    try:
        yield app
    finally:
        await app.wf.close()


@pytest.fixture
def ui(demo: _ui_app.Demo, db: str) -> Iterator[str]:
    """The URL of a UI server process showing the demo app."""
    process, url = _browser.start_ui(db)
    try:
        yield url
    finally:
        _browser.stop(process)


@pytest.fixture
def worker(demo: _ui_app.Demo, db: str) -> Iterator[None]:
    """A worker process executing the demo app's queued runs."""
    process = _browser.start_worker(db)
    try:
        yield
    finally:
        _browser.stop(process)


def shot(driver: Any, db: str, name: str) -> None:
    _browser.screenshot(driver, name if "://" not in db else f"postgres-{name}")


def listed(driver: Any) -> list[str]:
    rows = driver.find_elements("css selector", "#runs tbody tr")
    return [row.get_attribute("data-run-id") for row in rows]


async def running(app: _ui_app.Demo, run_id: str) -> None:
    """Wait until the worker has charged the order and waits for its approval."""

    async def waiting_for_signal() -> bool:
        run = await app.wf.get_run(run_id)
        return run.status == "running" and any(step.task == "charge" for step in run.steps)

    await _browser.eventually(waiting_for_signal, f"run {run_id} to wait for its signal")


async def test_the_runs_page_filters_and_a_failed_run_shows_its_traceback(
    driver: Any, ui: str, db: str
) -> None:
    """Load the runs page, filter it to failed runs, open the failed run, read the traceback."""
    from selenium.webdriver.support.ui import Select

    driver.get(ui)
    assert driver.title.startswith("Runs")
    assert listed(driver) == ["order-bad", "greet-bob", "greet-ada"]
    shot(driver, db, "runs")

    Select(driver.find_element("id", "filter-status")).select_by_value("failed")
    _browser.navigate(driver, driver.find_element("id", "apply-filters").click)
    assert listed(driver) == ["order-bad"]
    assert "status=failed" in driver.current_url
    shot(driver, db, "runs-failed")

    _browser.navigate(driver, driver.find_element("link text", "order-bad").click)
    assert driver.find_element("id", "run-id").text == "order-bad"
    traceback = driver.find_element("id", "run-traceback").text
    assert "Traceback (most recent call last)" in traceback
    assert "ValueError: cannot charge a negative amount: -1" in traceback
    shot(driver, db, "run-failed")


async def test_cancel_a_running_run_from_its_page(
    driver: Any, ui: str, db: str, demo: _ui_app.Demo, worker: None
) -> None:
    """Clicking Cancel on a run a worker executes leaves it cancelled in the store."""
    await demo.order.enqueue(order="to-cancel", amount=7)
    await running(demo, "order-to-cancel")

    driver.get(f"{ui}runs/order-to-cancel")
    assert driver.find_element("css selector", "#run-status .status").text == "running"
    shot(driver, db, "run-running")

    def cancel() -> None:
        driver.find_element("id", "action-cancel").click()
        driver.switch_to.alert.accept()  # the "Cancel run ...?" confirmation

    _browser.navigate(driver, cancel)
    notice = driver.find_element("css selector", ".flash.notice").text
    assert notice == "Cancel requested."

    async def cancelled() -> bool:
        return (await demo.wf.get_run("order-to-cancel")).status == "cancelled"

    await _browser.eventually(cancelled, "the run to be cancelled")
    driver.refresh()
    assert driver.find_element("css selector", "#run-status .status").text == "cancelled"


async def test_send_a_signal_and_see_the_run_complete(
    driver: Any, ui: str, db: str, demo: _ui_app.Demo, worker: None
) -> None:
    """A signal sent from the run page reaches the worker's run, which completes with it."""
    await demo.order.enqueue(order="to-approve", amount=12)
    await running(demo, "order-to-approve")

    driver.get(f"{ui}runs/order-to-approve")
    driver.find_element("id", "signal-name").send_keys("approve")
    driver.find_element("id", "signal-payload").send_keys('"alice"')
    _browser.navigate(driver, driver.find_element("id", "send-signal").click)
    assert driver.find_element("css selector", ".flash.notice").text == "Signal 'approve' sent."

    async def completed() -> bool:
        return (await demo.wf.get_run("order-to-approve")).status == "completed"

    await _browser.eventually(completed, "the signalled run to complete")
    output = (await demo.wf.get_run("order-to-approve")).output
    assert output == {"order": "to-approve", "receipt": {"charged": 12}, "approved_by": "alice"}

    driver.refresh()
    assert driver.find_element("css selector", "#run-status .status").text == "completed"
    assert '"approved_by": "alice"' in driver.find_element("id", "run-output").text
    assert "approve" in driver.find_element("id", "signals").text
    shot(driver, db, "run-completed")


async def test_retry_a_failed_run_once_its_cause_is_fixed(
    driver: Any, ui: str, db: str, demo: _ui_app.Demo, worker: None, tmp_path: Path
) -> None:
    """A run failed for want of a file; once the file exists, Retry lets a worker complete it."""
    flag = tmp_path / "warehouse-ready"
    with pytest.raises(RuntimeError, match="the warehouse is not ready"):
        await demo.dispatch(order="D4", ready_flag=str(flag))
    flag.touch()

    driver.get(f"{ui}runs/dispatch-D4")
    assert "the warehouse is not ready" in driver.find_element("id", "run-traceback").text
    _browser.navigate(driver, driver.find_element("id", "action-retry").click)
    assert driver.find_element("css selector", ".flash.notice").text == "Retry handed to a worker."

    async def completed() -> bool:
        return (await demo.wf.get_run("dispatch-D4")).status == "completed"

    await _browser.eventually(completed, "the retried run to complete")
    driver.refresh()
    assert driver.find_element("css selector", "#run-status .status").text == "completed"
    assert driver.find_element("id", "run-output").text == '"shipped D4"'
    assert driver.find_elements("id", "run-error") == []


async def test_the_queues_and_schedules_pages(
    driver: Any, ui: str, db: str, demo: _ui_app.Demo
) -> None:
    """The queues page counts the waiting orders; the schedules page shows the nightly cron."""
    await demo.order.enqueue(order="waiting-1", amount=1)
    await demo.order.enqueue(order="waiting-2", amount=1)

    driver.get(f"{ui}queues")
    row = driver.find_element("css selector", "#queues tbody tr")
    cells = [cell.text for cell in row.find_elements("css selector", "td")]
    assert cells[:5] == ["orders", "2", "2", "0", "0"]  # waiting, ready, delayed, running
    shot(driver, db, "queues")

    _browser.navigate(driver, driver.find_element("link text", "Schedules").click)
    cells = [cell.text for cell in driver.find_elements("css selector", "#schedules td")]
    assert cells[:5] == ["nightly_report", "0 3 * * *", "UTC", "none", "default"]
    shot(driver, db, "schedules")


async def test_live_refresh_shows_a_new_run_without_a_reload(
    driver: Any, ui: str, demo: _ui_app.Demo
) -> None:
    """With "Live refresh" ticked, a run enqueued meanwhile appears on the open runs page."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(ui)
    box = driver.find_element("id", "live")
    if not box.is_selected():
        box.click()
    marker = driver.execute_script("window.durableMarker = 1; return window.durableMarker;")
    assert "greet-new" not in listed(driver)
    await demo.greet.enqueue(name="new")
    WebDriverWait(driver, _browser.PATIENCE).until(lambda d: "greet-new" in listed(d))
    # The same document was updated in place: no navigation happened.
    assert driver.execute_script("return window.durableMarker;") == marker
    driver.execute_script("window.localStorage.removeItem('durable-ui-live');")
