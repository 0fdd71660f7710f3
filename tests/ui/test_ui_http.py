"""The UI's pages and actions over HTTP (no browser): filters, CSRF, read-only, auth, 404s."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.routing import Mount
from tests.ui import _ui_app
from tests.ui.conftest import populate

import durable.ui
from durable.errors import ConfigurationError, RunNotFoundError
from durable.stores.base import NewRun, QueueLimits, Store
from durable.stores.memory import InMemoryStore

pytestmark = pytest.mark.asyncio


def needs(app: _ui_app.Demo, method: str) -> None:
    """Skip when the store does not implement ``method`` of the Store API yet."""
    if getattr(type(app.wf.store), method) is getattr(Store, method):
        pytest.skip(f"{type(app.wf.store).__name__} does not implement Store.{method} yet")


def client_for(asgi: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=asgi), base_url="http://ui.test")


@pytest.fixture
async def client(demo: _ui_app.Demo) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(durable.ui.app(demo.wf)) as http:
        yield http


def token_of(page: httpx.Response) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found is not None, "the page has no action form"
    return found.group(1)


def run_ids(page: httpx.Response) -> list[str]:
    return re.findall(r'data-run-id="([^"]+)"', page.text)


async def test_the_runs_page_lists_every_run_and_filters_by_status(
    client: httpx.AsyncClient,
) -> None:
    """All runs are listed newest first; ?status=failed keeps the failed one only."""
    everything = await client.get("/")
    assert everything.status_code == 200
    assert run_ids(everything) == ["order-bad", "greet-bob", "greet-ada"]
    failed = await client.get("/", params={"status": "failed"})
    assert run_ids(failed) == ["order-bad"]
    greetings = await client.get("/", params={"workflow": "greet"})
    assert run_ids(greetings) == ["greet-bob", "greet-ada"]


async def test_the_id_prefix_search_and_the_time_filter(client: httpx.AsyncClient) -> None:
    """?q= keeps runs whose id starts with it; ?since=15m keeps the runs just made."""
    assert run_ids(await client.get("/", params={"q": "greet-a"})) == ["greet-ada"]
    assert run_ids(await client.get("/", params={"q": "nothing"})) == []
    assert len(run_ids(await client.get("/", params={"since": "15m"}))) == 3
    assert (await client.get("/", params={"since": "forever"})).status_code == 400
    assert (await client.get("/", params={"status": "lost"})).status_code == 400


async def test_paging_offers_older_runs_when_a_page_is_full(client: httpx.AsyncClient) -> None:
    """With a page of two runs, the third is one "Older runs" click away."""
    first = await client.get("/", params={"limit": "2"})
    assert run_ids(first) == ["order-bad", "greet-bob"]
    found = re.search(r'id="next-page" href="([^"]+)"', first.text)
    assert found is not None
    following = await client.get("/" + found.group(1).replace("&amp;", "&"))
    assert "greet-ada" in run_ids(following)


async def test_a_failed_run_shows_its_error_and_traceback(client: httpx.AsyncClient) -> None:
    """The run page of a failed run shows the exception, its traceback and the inputs."""
    page = await client.get("/runs/order-bad")
    assert page.status_code == 200
    assert "cannot charge a negative amount: -1" in page.text
    assert 'id="run-traceback"' in page.text
    assert "Traceback (most recent call last)" in page.text
    assert "&#34;amount&#34;: -1" in page.text or '"amount": -1' in page.text


async def test_unknown_runs_actions_and_methods_are_refused(client: httpx.AsyncClient) -> None:
    """An unknown run is a 404 page, an unknown action a 404, a GET on an action a 405."""
    missing = await client.get("/runs/no-such-run")
    assert missing.status_code == 404
    assert "no-such-run" in missing.text
    assert (await client.get("/nowhere")).status_code == 404
    assert (await client.get("/runs/" + "x" * 5000)).status_code == 404  # not a valid run id
    bad_cursor = await client.get("/", params={"cursor": "not-a-cursor"})
    assert bad_cursor.status_code == 400
    assert "is not a cursor" in bad_cursor.text
    token = token_of(await client.get("/runs/order-bad"))
    unknown = await client.post("/actions/explode", data={"csrf_token": token, "run_id": "x"})
    assert unknown.status_code == 404
    assert (await client.get("/actions/cancel")).status_code == 405


async def test_cancel_needs_the_csrf_token(demo: _ui_app.Demo, client: httpx.AsyncClient) -> None:
    """A POST without the page's token is refused and changes nothing; with it, it cancels."""
    await demo.order.enqueue(order="q1", amount=3)
    page = await client.get("/runs/order-q1")
    token = token_of(page)
    refused = await client.post("/actions/cancel", data={"run_id": "order-q1"})
    assert refused.status_code == 403
    assert "CSRF" in refused.text
    forged = await client.post(
        "/actions/cancel", data={"run_id": "order-q1", "csrf_token": "x" * 43}
    )
    assert forged.status_code == 403
    assert (await demo.wf.get_run("order-q1")).status == "queued"
    done = await client.post("/actions/cancel", data={"run_id": "order-q1", "csrf_token": token})
    assert done.status_code == 303
    assert done.headers["location"].startswith("/runs/order-q1?notice=")
    assert (await demo.wf.get_run("order-q1")).status == "cancelled"


async def test_a_cross_site_post_is_refused_even_with_the_token(
    demo: _ui_app.Demo, client: httpx.AsyncClient
) -> None:
    """An Origin naming another site is refused before anything happens."""
    await demo.order.enqueue(order="q2", amount=3)
    token = token_of(await client.get("/runs/order-q2"))
    response = await client.post(
        "/actions/cancel",
        data={"run_id": "order-q2", "csrf_token": token},
        headers={"Origin": "https://evil.example"},
    )
    assert response.status_code == 403
    assert (await demo.wf.get_run("order-q2")).status == "queued"


async def test_a_bad_signal_payload_is_reported_on_the_run_page(
    demo: _ui_app.Demo, client: httpx.AsyncClient
) -> None:
    """A payload that is not JSON comes back as a message and sends nothing."""
    await demo.order.enqueue(order="q3", amount=3)
    token = token_of(await client.get("/runs/order-q3"))
    response = await client.post(
        "/actions/signal",
        data={"run_id": "order-q3", "csrf_token": token, "name": "approve", "payload": "{oops"},
    )
    assert response.status_code == 303
    page = await client.get(response.headers["location"])
    assert "the payload is not JSON" in page.text


async def test_read_only_mode_shows_no_actions_and_refuses_them(demo: _ui_app.Demo) -> None:
    """Read-only pages have no forms, and a POST with a valid token is still refused."""
    await demo.order.enqueue(order="q4", amount=3)
    async with client_for(durable.ui.app(demo.wf)) as writable:
        token = token_of(await writable.get("/runs/order-q4"))
        cookie = writable.cookies["durable_csrf"]
    async with client_for(durable.ui.app(demo.wf, read_only=True)) as http:
        page = await http.get("/runs/order-q4")
        assert page.status_code == 200
        assert '<form method="post"' not in page.text
        assert "read-only" in page.text
        http.cookies.set("durable_csrf", cookie)
        refused = await http.post(
            "/actions/cancel", data={"run_id": "order-q4", "csrf_token": token}
        )
        assert refused.status_code == 403
    assert (await demo.wf.get_run("order-q4")).status == "queued"


async def test_the_auth_hook_guards_every_page_and_action(demo: _ui_app.Demo) -> None:
    """False gives 403, an HTTPException its own answer, True lets the request through."""
    seen: list[str] = []

    async def auth(request: Request) -> bool:
        seen.append(request.url.path)
        user = request.headers.get("x-user")
        if user is None:
            raise HTTPException(401, "log in", headers={"WWW-Authenticate": "Basic"})
        return user == "admin"

    async with client_for(durable.ui.app(demo.wf, auth=auth)) as http:
        anonymous = await http.get("/")
        assert anonymous.status_code == 401
        assert anonymous.headers["www-authenticate"] == "Basic"
        assert (await http.get("/runs/order-bad", headers={"x-user": "eve"})).status_code == 403
        refused = await http.post("/actions/cancel", headers={"x-user": "eve"}, data={})
        assert refused.status_code == 403
        allowed = await http.get("/", headers={"x-user": "admin"})
        assert allowed.status_code == 200
        assert "order-bad" in allowed.text
    assert seen == ["/", "/runs/order-bad", "/actions/cancel", "/"]


async def test_delete_removes_a_finished_run_and_refuses_a_queued_one() -> None:
    """Delete works on a finished run and is refused, with a message, on a queued one."""
    app = _ui_app.build(InMemoryStore())
    try:
        await populate(app)
        await app.order.enqueue(order="q5", amount=3)
        async with client_for(durable.ui.app(app.wf)) as http:
            token = token_of(await http.get("/runs/greet-ada"))
            deleted = await http.post(
                "/actions/delete", data={"run_id": "greet-ada", "csrf_token": token}
            )
            assert deleted.status_code == 303
            assert deleted.headers["location"].startswith("/?notice=")
            with pytest.raises(RunNotFoundError):
                await app.wf.get_run("greet-ada")
            kept = await http.post(
                "/actions/delete", data={"run_id": "order-q5", "csrf_token": token}
            )
            assert kept.status_code == 303
            assert "problem=" in kept.headers["location"]
            assert (await app.wf.get_run("order-q5")).status == "queued"
    finally:
        await app.wf.close()


async def test_links_follow_the_mount_path(demo: _ui_app.Demo) -> None:
    """Mounted under /ops/durable, every link and the stylesheet live under that prefix."""
    outer = Starlette(routes=[Mount("/ops/durable", app=durable.ui.app(demo.wf))])
    async with client_for(outer) as http:
        page = await http.get("/ops/durable/")
        assert page.status_code == 200
        assert 'href="/ops/durable/runs/order-bad"' in page.text
        assert 'href="/ops/durable/static/durable.css"' in page.text
        assert (await http.get("/ops/durable/static/durable.css")).status_code == 200
        token = token_of(await http.get("/ops/durable/runs/order-bad"))
        assert (
            'action="/ops/durable/actions/delete"'
            in (await http.get("/ops/durable/runs/order-bad")).text
        )
        assert token


async def test_a_store_alone_needs_the_app_name(demo: _ui_app.Demo) -> None:
    """app(store) names the missing app_name; app(store, app_name=...) shows that app's runs."""
    with pytest.raises(ConfigurationError, match="app_name"):
        durable.ui.app(demo.wf.store)
    with pytest.raises(ConfigurationError, match="Workflow or a Store"):
        durable.ui.app("ui.db")  # type: ignore[arg-type]
    async with client_for(durable.ui.app(demo.wf.store, app_name="ui-demo")) as http:
        assert run_ids(await http.get("/")) == ["order-bad", "greet-bob", "greet-ada"]
    async with client_for(durable.ui.app(demo.wf.store, app_name="other-app")) as http:
        assert run_ids(await http.get("/")) == []


async def test_queues_workers_and_schedules_pages(
    demo: _ui_app.Demo, client: httpx.AsyncClient
) -> None:
    """The queues page counts waiting runs per queue; the schedules page shows the cron."""
    needs(demo, "queue_stats")
    await demo.order.enqueue(order="q6", amount=1)
    await demo.order.enqueue(order="q7", amount=1)
    queues = await client.get("/queues")
    assert queues.status_code == 200
    row = re.search(r">orders</a></td>\s*<td class=\"num\">(\d+)</td>", queues.text)
    assert row is not None
    assert row.group(1) == "2"
    schedules = await client.get("/schedules")
    assert "0 3 * * *" in schedules.text
    assert "nightly_report" in schedules.text


async def test_the_queue_filter_keeps_the_runs_of_one_queue(
    demo: _ui_app.Demo, client: httpx.AsyncClient
) -> None:
    """?queue=orders lists the enqueued orders only, not the runs called directly."""
    await demo.order.enqueue(order="q8", amount=1)
    await demo.greet.enqueue(name="queued", queue="other")
    assert run_ids(await client.get("/", params={"queue": "orders"})) == ["order-q8"]
    assert run_ids(await client.get("/", params={"queue": "other"})) == ["greet-queued"]


async def test_retry_hands_a_failed_run_to_a_worker(
    demo: _ui_app.Demo, client: httpx.AsyncClient
) -> None:
    """Retry puts the failed run back in its queue, queued for a worker."""
    needs(demo, "requeue_run")
    token = token_of(await client.get("/runs/order-bad"))
    response = await client.post(
        "/actions/retry", data={"run_id": "order-bad", "csrf_token": token}
    )
    assert response.status_code == 303
    assert "notice=Retry+handed+to+a+worker" in response.headers["location"]
    run = await demo.wf.get_run("order-bad")
    assert (run.status, run.queue) == ("queued", "orders")


async def test_start_now_drops_the_delay_of_a_queued_run(
    demo: _ui_app.Demo, client: httpx.AsyncClient
) -> None:
    """ "Start now" on a run delayed by an hour makes it ready at once."""
    needs(demo, "requeue_run")
    await demo.order.enqueue(order="later", amount=1, delay=3600)
    [before] = await demo.wf.queue_stats()
    assert (before.ready, before.delayed) == (0, 1)
    page = await client.get("/runs/order-later")
    assert "Start now" in page.text
    started = await client.post(
        "/actions/resume", data={"run_id": "order-later", "csrf_token": token_of(page)}
    )
    assert started.status_code == 303
    [after] = await demo.wf.queue_stats()
    assert (after.ready, after.delayed) == (1, 0)


async def test_resume_hands_a_cancelled_run_back_to_its_queue(
    demo: _ui_app.Demo, client: httpx.AsyncClient
) -> None:
    """A cancelled run offers "Resume on a worker"; clicking it queues the run again."""
    needs(demo, "requeue_run")
    await demo.order.enqueue(order="regret", amount=1, delay=3600)
    await demo.wf.cancel("order-regret")
    page = await client.get("/runs/order-regret")
    assert "Resume on a worker" in page.text
    resumed = await client.post(
        "/actions/resume", data={"run_id": "order-regret", "csrf_token": token_of(page)}
    )
    assert resumed.status_code == 303
    run = await demo.wf.get_run("order-regret")
    assert run.status == "queued"
    assert not run.cancel_requested


async def test_a_refused_action_explains_why(demo: _ui_app.Demo, client: httpx.AsyncClient) -> None:
    """Retrying a completed run is refused, and the run page says why."""
    needs(demo, "requeue_run")
    token = token_of(await client.get("/runs/greet-ada"))
    response = await client.post(
        "/actions/retry", data={"run_id": "greet-ada", "csrf_token": token}
    )
    assert response.status_code == 303
    page = await client.get(response.headers["location"])
    assert "it is completed" in page.text
    assert (await demo.wf.get_run("greet-ada")).status == "completed"


async def test_parent_and_child_runs_link_to_each_other(
    demo: _ui_app.Demo, client: httpx.AsyncClient
) -> None:
    """A parent's page links to its child run, and the child's page to its parent."""
    await demo.bundle(name="kit")
    parent = await client.get("/runs/bundle-kit")
    children = parent.text.split('id="children"', 1)
    assert len(children) == 2
    assert 'href="/runs/greet-kit-gift"' in children[1]
    child = await client.get("/runs/greet-kit-gift")
    assert 'href="/runs/bundle-kit"' in child.text.split("<dt>Parent</dt>", 1)[1]


async def test_the_queues_page_answers_on_every_store(client: httpx.AsyncClient) -> None:
    """The queues page renders (statistics, or why there are none) with its workers table."""
    page = await client.get("/queues")
    assert page.status_code == 200
    assert "<h2>Workers</h2>" in page.text
    assert ('id="queues"' in page.text) != ('id="queues-unsupported"' in page.text)


async def test_a_message_in_a_crafted_link_is_not_shown(client: httpx.AsyncClient) -> None:
    """Only messages the UI signed itself appear: a link cannot put words in its mouth."""
    page = await client.get("/runs/order-bad", params={"problem": "Call +1 555 0100 now"})
    assert page.status_code == 200
    assert "555 0100" not in page.text
    forged = await client.get("/", params={"notice": "All good", "sig": "0" * 32})
    assert "All good" not in forged.text


async def test_a_parked_run_is_filtered_badged_and_signalled(
    demo: _ui_app.Demo, client: httpx.AsyncClient
) -> None:
    """?status=waiting lists a parked run; its page shows the badge, Cancel and the signal form."""
    needs(demo, "park_run")
    store, app = demo.wf.store, demo.wf.name
    await store.enqueue_run(NewRun(app, "greet-zed", "greet", "{}", None, "default", 0, None))
    [claim] = await store.claim_queued(
        app, [QueueLimits("default")], owner="w", lease_ttl=60.0, limit=1
    )
    await store.park_run(app, "greet-zed", claim.run.token, queue="default", wake_at=None)
    assert run_ids(await client.get("/", params={"status": "waiting"})) == ["greet-zed"]
    page = await client.get("/runs/greet-zed")
    assert page.status_code == 200
    assert 'class="status status-waiting"' in page.text
    assert 'id="signal-form"' in page.text
    assert "Cancel" in page.text
