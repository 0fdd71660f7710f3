"""Signals: durable waits for external input, delivered by index, replayed, with timeouts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
from tests._journal import Journal
from tests.primitives._waiting import wait_for_run

from durable import DurableError, Workflow
from durable.errors import ConfigurationError, SerializationError, SignalTimeoutError


async def wait_for_journal(journal: Journal) -> None:
    """Poll until the journal has an entry."""
    for _ in range(500):
        if journal.entries:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the journal stayed empty")


@pytest.mark.parametrize("payload", [0, False, "", None, [], {}, {"ok": [1, 2.5, "x"]}])
async def test_any_json_payload_is_delivered_and_replayed(wf: Workflow, payload: Any) -> None:
    """Falsy and nested payloads arrive unchanged and replay without a new signal."""
    journal = Journal()
    fail = {"armed": True}

    @wf.task
    async def use(value: Any) -> None:
        journal("use")
        if fail["armed"]:
            raise RuntimeError("later step failed")

    @wf.workflow(id="payload")
    async def flow() -> Any:
        value = await wf.signal("data")
        await use(value)
        return value

    await wf.send_signal("payload", "data", payload)
    with pytest.raises(RuntimeError):
        await flow()
    fail["armed"] = False
    assert await flow() == payload
    assert journal.counts == {"use": 2}


async def test_signal_sent_before_the_wait_is_kept(wf: Workflow) -> None:
    """A signal sent before the run exists is received when the run waits for it."""

    @wf.workflow(id="early-{order}")
    async def flow(order: str) -> str:
        approval: str = await wf.signal("approve")
        return f"{order}: {approval}"

    await wf.send_signal("early-o1", "approve", "yes")
    assert await flow("o1") == "o1: yes"


async def test_signal_sent_while_waiting_wakes_the_run_promptly(
    make_app: Callable[..., Workflow],
) -> None:
    """A signal sent through the same app wakes the waiting run without a poll delay."""
    wf = make_app()

    @wf.workflow(id="prompt")
    async def flow() -> Any:
        return await wf.signal("go")

    call = asyncio.ensure_future(flow())
    await wait_for_run(wf, "prompt")
    await asyncio.sleep(2.5)  # the poll delay has grown to its 1 s maximum by now
    sent = time.monotonic()
    await wf.send_signal("prompt", "go", 42)
    assert await call == 42
    assert time.monotonic() - sent < 0.5


async def test_signal_from_another_app_instance_is_polled(
    make_app: Callable[..., Workflow],
) -> None:
    """A signal sent by another app on the same store (as another process would) arrives."""
    wf = make_app()
    sender = make_app()

    @wf.workflow(id="remote")
    async def flow() -> Any:
        return await wf.signal("go")

    call = asyncio.ensure_future(flow())
    await wait_for_run(wf, "remote")
    await sender.send_signal("remote", "go", {"from": "elsewhere"})
    assert await asyncio.wait_for(call, 5) == {"from": "elsewhere"}


async def test_kth_wait_receives_kth_signal(wf: Workflow) -> None:
    """Waits on one name receive that name's signals in order; other names are separate."""

    @wf.workflow(id="ordered")
    async def flow() -> list[Any]:
        first = await wf.signal("item")
        other = await wf.signal("other")
        second = await wf.signal("item")
        third = await wf.signal("item")
        return [first, second, third, other]

    for value in ("a", "b", "c"):
        await wf.send_signal("ordered", "item", value)
    await wf.send_signal("ordered", "other", "z")
    assert await flow() == ["a", "b", "c", "z"]
    info = await wf.get_run("ordered")
    assert [s.step_id for s in info.steps] == [
        "durable.signal:item",
        "durable.signal:other",
        "durable.signal:item#1",
        "durable.signal:item#2",
    ]
    assert info.steps[2].result == {"index": 1, "payload": "b"}


async def test_concurrent_waits_on_one_name_take_distinct_signals(wf: Workflow) -> None:
    """Two waits on the same name in asyncio.gather receive two different signals."""

    @wf.workflow(id="gathered")
    async def flow() -> list[Any]:
        return list(await asyncio.gather(wf.signal("vote"), wf.signal("vote")))

    call = asyncio.ensure_future(flow())
    await wait_for_run(wf, "gathered")
    await wf.send_signal("gathered", "vote", 1)
    await wf.send_signal("gathered", "vote", 2)
    assert sorted(await asyncio.wait_for(call, 5)) == [1, 2]


async def test_timeout_raises_a_catchable_error_and_takes_no_signal(wf: Workflow) -> None:
    """A timed-out wait raises SignalTimeoutError; a later wait still gets the first signal."""
    journal = Journal()

    @wf.task
    async def remind() -> None:
        journal("remind")

    @wf.workflow(id="remind")
    async def flow() -> Any:
        try:
            return await wf.signal("approve", timeout=0.05)
        except SignalTimeoutError:
            await remind()
        return await wf.signal("approve")

    call = asyncio.ensure_future(flow())
    await wait_for_journal(journal)
    await wf.send_signal("remind", "approve", "late yes")
    assert await asyncio.wait_for(call, 5) == "late yes"
    assert journal.entries == ["remind"]
    # Replaying the completed run takes the same path without running anything.
    assert await flow() == "late yes"
    assert journal.entries == ["remind"]


async def test_timed_out_wait_replays_its_timeout(wf: Workflow) -> None:
    """A run interrupted after a timeout takes the except branch again on resume, signal or not."""
    journal = Journal()
    release = asyncio.Event()

    @wf.task
    async def finish(branch: str) -> str:
        journal(branch)
        await release.wait()
        return branch

    @wf.workflow(id="replay-timeout")
    async def flow() -> str:
        try:
            await wf.signal("approve", timeout=0.05)
        except SignalTimeoutError:
            return await finish("timed out")
        return await finish("approved")

    call = asyncio.ensure_future(flow())
    await wait_for_journal(journal)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await wf.send_signal("replay-timeout", "approve", "too late")
    release.set()
    assert await flow() == "timed out"
    assert journal.entries == ["timed out", "timed out"]


async def test_uncaught_timeout_fails_the_run_with_a_clear_error(wf: Workflow) -> None:
    """A wait that times out uncaught fails the run with SignalTimeoutError naming the signal."""

    @wf.workflow(id="no-answer")
    async def flow() -> Any:
        return await wf.signal("approve", timeout=0.05)

    with pytest.raises(SignalTimeoutError, match="'approve'"):
        await flow()
    info = await wf.get_run("no-answer")
    assert info.status == "failed"
    assert info.error is not None
    assert info.error.type == "durable.errors.SignalTimeoutError"


async def test_timeout_deadline_survives_an_interruption(wf: Workflow) -> None:
    """The deadline is recorded when the wait starts; a resumed wait only waits the rest."""

    @wf.workflow(id="deadline")
    async def flow() -> str:
        try:
            await wf.signal("approve", timeout=1.2)
        except SignalTimeoutError:
            return "timed out"
        return "approved"

    call = asyncio.ensure_future(flow())
    await wait_for_run(wf, "deadline", steps=1)
    await asyncio.sleep(0.9)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    deadline = (await wf.get_run("deadline")).steps[0].result["deadline"]
    started = time.time()
    assert await flow() == "timed out"
    assert time.time() >= deadline
    # Restarting the clock would wait 1.2 s; only the rest (~0.3 s) is waited.
    assert time.time() - started < 1.0


async def test_complete_delivers_a_name_once(wf: Workflow) -> None:
    """wf.complete(run_id, name, payload) delivers like send_signal, but only the first time."""

    @wf.workflow(id="alias")
    async def flow() -> Any:
        return await wf.signal("done")

    assert await wf.complete("alias", "done", {"status": "ok"}) is True
    assert await wf.complete("alias", "done", {"status": "late"}) is False
    assert await flow() == {"status": "ok"}


async def test_bad_signals_are_refused(wf: Workflow) -> None:
    """Unserializable payloads, empty names and bad timeouts raise clear errors."""

    @wf.workflow(id="bad-timeout")
    async def flow() -> Any:
        return await wf.signal("x", timeout=-1)

    with pytest.raises(SerializationError, match="payload of signal 'go'"):
        await wf.send_signal("r", "go", object())
    with pytest.raises(ConfigurationError, match="signal name"):
        await wf.send_signal("r", "", 1)
    with pytest.raises(ConfigurationError, match="timeout"):
        await flow()


@pytest.mark.parametrize("name", ["bad\x00name", "tab\there", "half \ud800"])
async def test_signal_names_no_store_keeps_are_refused_where_they_enter(
    wf: Workflow, name: str
) -> None:
    """A name with a control character or a lone surrogate fails its own call only.

    Waiting runs share their reads of the store: a name that broke the shared
    read would fail the waits of other runs. It never gets that far.
    """
    await wf.send_signal("good", "approved", {"ok": True})

    @wf.workflow(id="{run}")
    async def waiter(run: str, signal_name: str) -> Any:
        return await wf.signal(signal_name)

    bad = asyncio.create_task(waiter("bad", name))
    assert await waiter("good", "approved") == {"ok": True}
    with pytest.raises(ConfigurationError, match="signal name"):
        await bad
    with pytest.raises(ConfigurationError, match="signal name"):
        await wf.send_signal("good", name, 1)


async def test_signal_outside_a_workflow_is_an_error(wf: Workflow) -> None:
    """wf.signal outside a workflow raises a DurableError saying it needs a workflow."""
    with pytest.raises(DurableError, match="outside a workflow"):
        await wf.signal("go")
