"""Replay semantics: what a second call of a run id does, step ids, and the determinism guard."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests._journal import Journal, interrupt

from durable import Workflow
from durable.errors import NonDeterminismError, RunConflictError, TaskFailedError


class PaymentDeclined(Exception):
    """A module-level error type, so replay can rebuild it."""


async def test_completed_run_returns_stored_output_without_running(wf: Workflow) -> None:
    """Re-calling a completed run returns its stored output; neither body nor steps run."""
    journal = Journal()

    @wf.task
    async def step(x: int) -> int:
        journal("step")
        return x + 1

    @wf.workflow(id="r-{x}")
    async def flow(x: int) -> dict[str, int]:
        journal("body")
        return {"result": await step(x)}

    assert await flow(1) == {"result": 2}
    assert await flow(1) == {"result": 2}
    assert journal.entries == ["body", "step"]
    run = await wf.store.get_run(wf.name, "r-1")
    assert run is not None
    assert run.status == "completed"
    assert run.attempts == 1


@pytest.mark.parametrize("value", [None, 0, "", [], False, {}, 0.0])
async def test_falsy_results_replay(wf: Workflow, value: Any) -> None:
    """Falsy results (None, 0, "", [], False, {}) are replayed, never re-executed."""
    journal = Journal()
    fail = {"armed": True}

    @wf.task
    async def falsy() -> Any:
        journal("falsy")
        return value

    @wf.task
    async def boom() -> None:
        if fail["armed"]:
            raise RuntimeError("boom")

    @wf.workflow(id="falsy")
    async def flow() -> Any:
        result = await falsy()
        await boom()
        return result

    with pytest.raises(RuntimeError):
        await flow()
    fail["armed"] = False
    assert await flow() == value
    assert journal.entries == ["falsy"]


async def test_failed_run_resumes_and_reruns_failed_steps(wf: Workflow) -> None:
    """Re-calling a failed run replays completed steps and runs the failed one again."""
    journal = Journal()
    attempts = {"n": 0}

    @wf.task
    async def first() -> str:
        journal("first")
        return "ok"

    @wf.task
    async def flaky() -> str:
        journal("flaky")
        attempts["n"] += 1
        if attempts["n"] == 1:
            raise ValueError("first time fails")
        return "recovered"

    @wf.workflow(id="resume")
    async def flow() -> list[str]:
        return [await first(), await flaky()]

    with pytest.raises(ValueError, match="first time fails"):
        await flow()
    run = await wf.store.get_run(wf.name, "resume")
    assert run is not None
    assert run.status == "failed"
    assert await flow() == ["ok", "recovered"]
    assert journal.entries == ["first", "flaky", "flaky"]
    run = await wf.store.get_run(wf.name, "resume")
    assert run is not None
    assert run.attempts == 2


async def test_recorded_step_failure_replays_while_run_continues(wf: Workflow) -> None:
    """After an interruption, a caught step failure replays, so the except branch repeats."""
    journal = Journal()
    hang = {"armed": True}

    @wf.task
    async def charge() -> None:
        journal("charge")
        raise PaymentDeclined("card declined")

    @wf.task
    async def notify(text: str) -> str:
        journal(f"notify {text}")
        if hang["armed"]:
            hang["armed"] = False
            await asyncio.Event().wait()  # interrupted here, like a process dying
        return text

    @wf.workflow(id="pay")
    async def flow() -> str:
        try:
            await charge()
        except PaymentDeclined as exc:
            return await notify(f"declined: {exc}")
        return await notify("paid")

    await interrupt(asyncio.ensure_future(flow()), journal, 2)
    run = await wf.store.get_run(wf.name, "pay")
    assert run is not None
    assert run.status == "running"
    assert await flow() == "declined: card declined"
    assert journal.entries == ["charge"] + ["notify declined: card declined"] * 2


async def test_rerunning_a_failed_run_retries_its_failed_steps(wf: Workflow) -> None:
    """Re-calling a failed run clears its recorded step failures so they execute again."""
    journal = Journal()
    outcomes = iter([ConnectionError("down"), None])

    @wf.task
    async def call_api() -> str:
        journal("call_api")
        error = next(outcomes)
        if error is not None:
            raise error
        return "ok"

    @wf.workflow(id="api")
    async def flow() -> str:
        return await call_api()

    with pytest.raises(ConnectionError):
        await flow()
    assert await flow() == "ok"
    assert journal.entries == ["call_api", "call_api"]


async def test_unrebuildable_step_error_replays_as_task_failed_error(wf: Workflow) -> None:
    """A recorded failure whose type cannot be rebuilt replays as TaskFailedError."""

    class LocalError(Exception):
        pass

    journal = Journal()

    @wf.task
    async def odd() -> None:
        journal("odd")
        raise LocalError("not importable")

    @wf.task
    async def after(seen: str) -> str:
        journal(f"after {seen}")
        if len(journal) == 2:
            await asyncio.Event().wait()
        return seen

    @wf.workflow(id="odd")
    async def flow() -> str:
        try:
            await odd()
        except LocalError:
            return await after("LocalError")
        except TaskFailedError as exc:
            described = "LocalError: not importable" in str(exc)
            return await after("TaskFailedError" if described else f"bad message: {exc}")
        return "no error"

    await interrupt(asyncio.ensure_future(flow()), journal, 2)
    assert await flow() == "TaskFailedError"
    assert journal.entries == ["odd", "after LocalError", "after TaskFailedError"]


async def test_same_run_called_concurrently_executes_once(wf: Workflow) -> None:
    """Concurrent calls of one run id in a process share one execution and its output."""
    journal = Journal()
    gate = asyncio.Event()

    @wf.task
    async def slow() -> int:
        journal("slow")
        await gate.wait()
        return 7

    @wf.workflow(id="shared")
    async def flow() -> int:
        journal("body")
        return await slow()

    calls = [asyncio.ensure_future(flow()) for _ in range(5)]
    await asyncio.sleep(0.05)
    gate.set()
    assert await asyncio.gather(*calls) == [7] * 5
    assert journal.entries == ["body", "slow"]


async def test_gather_step_ids_are_stable_across_replays(wf: Workflow) -> None:
    """asyncio.gather allocates step ids in call order, whatever order steps finish in."""
    journal = Journal()
    crash = {"armed": True}

    @wf.task
    async def fetch(name: str, delay: float) -> str:
        journal(name)
        await asyncio.sleep(delay)
        return name

    @wf.task
    async def finish() -> None:
        if crash["armed"]:
            crash["armed"] = False
            raise RuntimeError("crash")

    @wf.workflow(id="fan-out")
    async def flow() -> list[str]:
        results = await asyncio.gather(fetch("a", 0.03), fetch("b", 0.0), fetch("c", 0.01))
        await finish()
        return list(results)

    with pytest.raises(RuntimeError):
        await flow()
    assert await flow() == ["a", "b", "c"]
    assert sorted(journal.entries) == ["a", "b", "c"]
    loaded = await wf.store.load_run(wf.name, "fan-out")
    assert loaded is not None
    steps = {s.step_id: s for s in loaded[1]}
    assert [steps[i].position for i in ("fetch", "fetch#1", "fetch#2")] == [0, 1, 2]
    assert steps["fetch"].result == '"a"'
    assert steps["fetch#1"].result == '"b"'


async def test_explicit_step_ids_are_scoped_by_task(wf: Workflow) -> None:
    """Two tasks using the same step_id never read each other's results."""

    @wf.task
    async def a() -> str:
        return "from a"

    @wf.task
    async def b() -> str:
        return "from b"

    @wf.workflow(id="scoped")
    async def flow() -> list[str]:
        return [await a(step_id="x"), await b(step_id="x")]

    assert await flow() == ["from a", "from b"]
    assert await flow() == ["from a", "from b"]


async def test_duplicate_explicit_step_id_is_a_clear_error(wf: Workflow) -> None:
    """Calling one task twice with the same step_id in a run names task and step id."""

    @wf.task
    async def work(i: int) -> int:
        return i

    @wf.workflow(id="dup")
    async def flow() -> None:
        await work(1, step_id="same")
        await work(2, step_id="same")

    with pytest.raises(Exception, match=r"'work' called twice with step_id='same'"):
        await flow()


async def test_changed_code_is_detected_on_replay(make_app: Callable[..., Workflow]) -> None:
    """Replay that meets a step recorded by another task names run, step and both tasks."""
    old = make_app()
    crash = {"armed": True}

    @old.task
    async def charge() -> str:
        return "charged"

    @old.task
    async def ship() -> str:
        return "shipped"

    @old.task
    async def explode() -> None:
        if crash["armed"]:
            raise RuntimeError("crash")

    @old.workflow(id="order-1", name="order")
    async def order_v1() -> None:
        await charge()
        await ship()
        await explode()

    with pytest.raises(RuntimeError):
        await order_v1()

    new = make_app()

    @new.task(name="charge")
    async def charge2() -> str:
        return "charged"

    @new.task(name="refund")
    async def refund() -> str:
        return "refunded"

    @new.workflow(id="order-1", name="order")
    async def order_v2() -> None:
        await charge2()
        await refund()  # where version 1 called ship

    with pytest.raises(NonDeterminismError) as info:
        await order_v2()
    message = str(info.value)
    for fragment in ("'order-1'", "'refund'", "'ship'", "'order'"):
        assert fragment in message


async def test_run_id_of_another_workflow_is_a_conflict(wf: Workflow) -> None:
    """One run id used by two workflows of an app is a RunConflictError naming both."""

    @wf.workflow(id="job-{n}")
    async def first(n: int) -> int:
        return n

    @wf.workflow(id="job-{n}")
    async def second(n: int) -> int:
        return n

    assert await first(1) == 1
    with pytest.raises(RunConflictError, match=r"'first'.*'second'"):
        await second(1)


async def test_apps_sharing_a_store_are_isolated(make_app: Callable[..., Workflow]) -> None:
    """The same run id in two apps on one store names two independent runs."""
    apps = [make_app("app-a"), make_app("app-b")]
    journal = Journal()
    for app in apps:

        @app.task
        async def step(tag: str) -> str:
            journal(tag)
            return tag

        @app.workflow(id="same-id")
        async def flow(tag: str) -> str:
            return await step(tag)

        assert await flow(app.name) == app.name
    assert journal.entries == ["app-a", "app-b"]


async def test_results_are_json_round_tripped_on_first_run(wf: Workflow) -> None:
    """A first execution returns the stored form, so it equals what a replay returns."""

    @wf.task
    async def pair() -> tuple[int, int]:
        return (1, 2)

    @wf.task
    async def keys() -> dict[Any, str]:
        return {1: "one"}

    @wf.workflow(id="shapes")
    async def flow() -> list[Any]:
        return [await pair(), await keys()]

    first = await flow()
    assert first == [[1, 2], {"1": "one"}]
    assert await flow() == first


async def test_derived_run_id_is_stable_per_arguments(wf: Workflow) -> None:
    """Without an id template, equal arguments give the same run and others a new one."""
    journal = Journal()

    @wf.task
    async def step(n: int) -> int:
        journal(f"step {n}")
        return n

    @wf.workflow
    async def flow(n: int, label: str = "x") -> int:
        return await step(n)

    await flow(1)
    await flow(n=1, label="x")
    await flow(2)
    assert journal.entries == ["step 1", "step 2"]
    runs = await wf.store.list_runs(wf.name)
    assert len(runs) == 2
    assert all(r.run_id.startswith("flow-") for r in runs)


async def test_explicit_run_id_with_run(wf: Workflow) -> None:
    """fn.run(run_id, ...) executes under that id and replays on a second call."""
    journal = Journal()

    @wf.task
    async def step(n: int) -> int:
        journal("step")
        return n * 3

    @wf.workflow(id="templated-{n}")
    async def flow(n: int) -> int:
        return await step(n)

    assert await flow.run("my-own-id", 2) == 6
    assert await flow.run("my-own-id", 2) == 6
    assert journal.entries == ["step"]
    assert await wf.store.get_run(wf.name, "my-own-id") is not None
    assert await wf.store.get_run(wf.name, "templated-2") is None


_TEARDOWN_SCRIPT = """
import asyncio
from durable import Workflow
from durable.stores.memory import InMemoryStore

wf = Workflow("teardown", db=InMemoryStore())
runs = []

@wf.task
async def work() -> str:
    runs.append("work")
    if len(runs) == 1:
        await asyncio.Event().wait()
    return "done"

@wf.workflow(id="torn-down")
async def flow() -> str:
    return await work()

async def main() -> None:
    for attempt in range(20):
        runs.clear()
        first = asyncio.ensure_future(flow.run(f"torn-down-{attempt}"))
        while not runs:
            await asyncio.sleep(0)
        execution = next(
            t for t in asyncio.all_tasks() if t.get_name() == f"durable-run:torn-down-{attempt}"
        )
        execution.cancel()
        while not execution.done():
            await asyncio.sleep(0)
        # Often its done-callbacks are still pending here: the call must not spin.
        assert await flow.run(f"torn-down-{attempt}") == "done"
        first.cancel()
    print("ok")

asyncio.run(main())
"""


def test_call_during_teardown_of_a_cancelled_execution_starts_anew(tmp_path: Path) -> None:
    """A call that finds a cancelled execution not yet forgotten starts a new one, not a spin."""
    script = tmp_path / "teardown.py"
    script.write_text(_TEARDOWN_SCRIPT)
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


async def test_a_step_recorded_by_another_task_is_not_handed_over(wf: Workflow) -> None:
    """If the first writer of a step id was another task, the save raises NonDeterminismError."""
    from durable.stores.base import StepRecord

    @wf.task
    async def mine() -> str:
        # Another writer (older code, say) records this step id first.
        run = await wf.store.get_run(wf.name, "contested")
        assert run is not None
        theirs = StepRecord("mine", 0, "theirs", "completed", '"not yours"', None, 1, 1.0, 2.0)
        await wf.store.save_step(wf.name, "contested", run.token, theirs)
        return "mine"

    @wf.workflow(id="contested")
    async def flow() -> str:
        return await mine()

    with pytest.raises(NonDeterminismError, match="recorded for task 'theirs', not 'mine'"):
        await flow()


async def test_a_run_id_called_with_other_arguments_is_a_conflict(wf: Workflow) -> None:
    """A failed, completed or running run called again with other arguments raises
    RunConflictError naming the run and the parameters, and leaves the run as it was."""
    seen: list[int] = []

    @wf.task
    async def check(n: int) -> int:
        seen.append(n)
        if len(seen) == 1:
            raise ValueError("first attempt fails the run")
        return n

    @wf.workflow(id="report-{day}")
    async def report(day: str, n: int) -> int:
        return await check(n)

    with pytest.raises(ValueError, match="first attempt"):
        await report("mon", 0)
    with pytest.raises(RunConflictError, match=r"run 'report-mon'.*differing: 'n'"):
        await report("mon", 5)
    failed = await wf.get_run("report-mon")
    assert failed.status == "failed"
    assert [(s.task, s.status) for s in failed.steps] == [("check", "failed")]
    assert seen == [0]
    assert await report("mon", 0) == 0  # the same arguments resume it
    with pytest.raises(RunConflictError, match="differing: 'n'"):
        await report("mon", 7)  # completed: still not another run's output
    with pytest.raises(RunConflictError, match="differing: 'n'"):
        await report.run("report-mon", "mon", 7)  # an explicit run id behaves alike
    assert await report.run("report-mon", "mon", 0) == 0
    assert (await wf.get_run("report-mon")).inputs == {"day": "mon", "n": 0}


async def test_a_run_executing_here_called_with_other_arguments_is_a_conflict(
    wf: Workflow,
) -> None:
    """A second caller joining a run in flight with other arguments gets RunConflictError."""
    release = asyncio.Event()

    @wf.task
    async def wait_for_release() -> None:
        await release.wait()

    @wf.workflow(id="job")
    async def job(n: int) -> int:
        await wait_for_release()
        return n

    first = asyncio.create_task(job(1))
    await asyncio.sleep(0.05)
    with pytest.raises(RunConflictError, match=r"run 'job'.*differing: 'n'"):
        await job(2)
    release.set()
    assert await first == 1


async def test_the_body_gets_the_stored_arguments_on_its_first_execution_too(
    wf: Workflow,
) -> None:
    """Arguments go through JSON before the first execution, as on any resume: one code path."""
    seen: list[Any] = []

    @wf.workflow(id="order-{order_id}")
    async def order(order_id: str, qty: dict[int, int], raw: dict[Any, Any], pair: Any) -> int:
        seen.append((qty, raw, pair))
        return qty[1]

    assert await order("o1", {1: 2, 2: 3}, {1: "a"}, (1, 2)) == 2
    assert await wf.resume("order-o1") == 2
    assert seen == [({1: 2, 2: 3}, {"1": "a"}, [1, 2])]


async def test_gather_branches_still_running_when_the_run_fails_are_stopped(
    wf: Workflow,
) -> None:
    """A failed sibling ends the run only once the other branches stopped: no double charge."""
    journal = Journal()

    @wf.task
    async def charge_card() -> str:
        journal("charge start")
        await asyncio.sleep(0.3)
        journal("charge end")
        return "charged"

    validations = Journal()

    @wf.task
    async def validate() -> None:
        validations("validate")
        if len(validations) == 1:
            raise ValueError("invalid address")

    @wf.workflow(id="checkout")
    async def checkout() -> list[Any]:
        return list(await asyncio.gather(charge_card(), validate()))

    with pytest.raises(ValueError, match="invalid address"):
        await checkout()
    assert journal.entries == ["charge start"]  # stopped, not left running
    assert await checkout() == ["charged", None]
    assert journal.entries == ["charge start", "charge start", "charge end"]
