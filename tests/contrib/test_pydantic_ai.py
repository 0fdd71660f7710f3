"""DurableAgent: model requests and tool calls are checkpointed steps, replayed on re-run."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterable, Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from pydantic_ai import Agent, ModelRetry, RunContext, ToolReturn
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart
from pydantic_ai.models.test import TestModel
from tests._journal import Journal
from tests.contrib._scripted import scripted_model

import durable
from durable import Workflow
from durable.backoff import constant, exponential
from durable.errors import ConfigurationError, SerializationError
from durable.pydantic_ai import DurableAgent, TaskConfig, durable_pipeline, durable_tool


class City(BaseModel):
    name: str
    country: str


def _tool_agent(journal: Journal, broken: set[str] | None = None) -> Agent[None, str]:
    """An agent with two tools, each journalled when its body runs, driven by a scripted model.

    A tool named in ``broken`` raises RuntimeError while it is there.
    """
    model = scripted_model(
        [("lookup", {"q": "a"}), ("lookup", {"q": "b"}), ("shout", {"word": "c"})],
        on_call=lambda k: journal(f"model:{k}"),
    )
    agent: Agent[None, str] = Agent(model, name="helper")
    broken = set() if broken is None else broken

    @agent.tool_plain
    async def lookup(q: str) -> str:
        journal(f"lookup:{q}")
        return f"found {q}"

    @agent.tool_plain
    async def shout(word: str) -> str:
        if "shout" in broken:
            journal(f"shout-failed:{word}")
            raise RuntimeError("service down")
        journal(f"shout:{word}")
        return word.upper()

    return agent


async def test_a_run_replays_its_result_without_model_or_tools(wf: Workflow) -> None:
    """Calling a completed run again returns the same result; no model call, no tool runs."""
    journal = Journal()
    durable = DurableAgent(_tool_agent(journal), wf)

    first = await durable.run("go", run_id="r1")
    assert first.output == "found a | found b | C"
    assert journal.entries == [
        "model:1",
        "lookup:a",
        "model:2",
        "lookup:b",
        "model:3",
        "shout:c",
        "model:4",
    ]
    assert first.usage.requests == 4
    assert first.usage.tool_calls == 3

    again = await durable.run("go", run_id="r1")
    assert len(journal) == 7
    assert again.output == first.output
    assert again.all_messages() == first.all_messages()
    assert again.new_messages() == first.new_messages()
    assert again.usage == first.usage


async def test_each_model_request_and_tool_call_is_its_own_step(wf: Workflow) -> None:
    """The run records one step per model request and per tool call, under stable ids."""
    durable = DurableAgent(_tool_agent(Journal()), wf)
    await durable.run("go", run_id="r-steps")
    info = await wf.get_run("r-steps")
    assert [(s.task, s.step_id) for s in info.steps] == [
        ("helper.model_request", "helper.model_request"),
        ("helper.tool_call", "helper.tool_call:1/lookup/call-0"),
        ("helper.model_request", "helper.model_request#1"),
        ("helper.tool_call", "helper.tool_call:2/lookup/call-1"),
        ("helper.model_request", "helper.model_request#2"),
        ("helper.tool_call", "helper.tool_call:3/shout/call-2"),
        ("helper.model_request", "helper.model_request#3"),
    ]


async def test_a_failed_run_resumes_after_its_recorded_steps(wf: Workflow) -> None:
    """A tool failing for good fails the run; calling it again reruns only that tool onwards."""
    journal = Journal()
    broken = {"shout"}
    durable = DurableAgent(_tool_agent(journal, broken), wf, tool_task_config=TaskConfig(retries=0))

    with pytest.raises(RuntimeError, match="service down"):
        await durable.run("go", run_id="r-fail")
    assert journal.entries[-1] == "shout-failed:c"
    before = len(journal)

    broken.clear()
    result = await durable.run("go", run_id="r-fail")
    assert result.output == "found a | found b | C"
    # Model requests 1-3 and both lookups replayed; only the failed tool and the last request ran.
    assert journal.entries[before:] == ["shout:c", "model:4"]


async def test_structured_output_comes_back_as_its_type(
    make_app: Callable[..., Workflow],
) -> None:
    """A model-typed output is that model on the first run and when read back by another app."""
    calls = Journal()

    def model() -> TestModel:
        return TestModel(custom_output_args={"name": "Mexico City", "country": "Mexico"})

    agent = Agent(model(), output_type=City, name="geo")

    @agent.tool_plain
    async def note() -> str:
        calls("note")
        return "noted"

    first = await DurableAgent(agent, make_app("ai")).run("capital?", run_id="geo-1")
    assert first.output == City(name="Mexico City", country="Mexico")

    other = DurableAgent(Agent(model(), output_type=City, name="geo"), make_app("ai"))
    replayed = await other.run("capital?", run_id="geo-1")
    assert type(replayed.output) is City
    assert replayed.output == first.output
    assert replayed.all_messages() == first.all_messages()
    assert calls.entries == ["note"]


async def test_message_history_reaches_the_model_and_the_result(wf: Workflow) -> None:
    """A run continuing a conversation sends the history to the model and keeps it on replay."""
    seen: list[int] = []

    def answer(messages: list[ModelMessage]) -> ModelResponse:
        seen.append(len(messages))
        return ModelResponse(parts=[TextPart(f"{len(messages)} messages")])

    durable = DurableAgent(Agent(TestModel(), name="chat"), wf)
    first = await durable.run("hello", run_id="chat-1")
    history = first.all_messages()

    durable_next = DurableAgent(Agent(scripted_model([], answer), name="chat2"), wf)
    second = await durable_next.run("and then?", run_id="chat-2", message_history=history)
    assert seen == [len(history) + 1]
    assert second.output == f"{len(history) + 1} messages"
    assert second.all_messages()[: len(history)] == history
    assert len(second.new_messages()) == 2
    assert isinstance(second.new_messages()[0], ModelRequest)

    replayed = await durable_next.run("and then?", run_id="chat-2", message_history=history)
    assert seen == [len(history) + 1]
    assert replayed.all_messages() == second.all_messages()
    assert replayed.new_messages() == second.new_messages()


async def test_model_retry_from_a_tool_is_an_outcome_not_a_failure(wf: Workflow) -> None:
    """A tool's ModelRetry is recorded and replayed: the tool is not retried by the step."""
    journal = Journal()
    model = scripted_model(
        [("check", {"n": 1}), ("check", {"n": 2})], on_call=lambda k: journal(f"model:{k}")
    )
    agent = Agent(model, name="checker")

    @agent.tool_plain
    async def check(n: int) -> str:
        journal(f"check:{n}")
        if n == 1:
            raise ModelRetry("try a bigger number")
        return f"ok {n}"

    durable = DurableAgent(agent, wf, tool_task_config=TaskConfig(retries=3, backoff=constant(0)))
    first = await durable.run("go", run_id="retry-1")
    assert journal.entries == ["model:1", "check:1", "model:2", "check:2", "model:3"]
    assert "try a bigger number" in str(first.all_messages())

    again = await durable.run("go", run_id="retry-1")
    assert len(journal) == 5
    assert again.all_messages() == first.all_messages()


async def test_concurrent_tool_calls_replay_by_call_id(wf: Workflow) -> None:
    """Tools called together in one response each get a step, and none reruns on replay."""
    journal = Journal()
    agent = Agent(TestModel(), name="fan")

    @agent.tool_plain
    async def alpha() -> str:
        journal("alpha")
        return "a"

    @agent.tool_plain
    async def beta() -> str:
        journal("beta")
        return "b"

    durable = DurableAgent(agent, wf)
    first = await durable.run("go", run_id="fan-1")
    assert sorted(journal.entries) == ["alpha", "beta"]
    info = await wf.get_run("fan-1")
    tool_steps = sorted(s.step_id for s in info.steps if s.task == "fan.tool_call")
    assert len(tool_steps) == 2
    assert all(s.startswith("fan.tool_call:1/") for s in tool_steps)

    again = await durable.run("go", run_id="fan-1")
    assert sorted(journal.entries) == ["alpha", "beta"]
    assert again.output == first.output


async def test_an_agent_run_inside_a_pipeline_is_a_child_run(wf: Workflow) -> None:
    """durable_pipeline runs agents and durable tools as steps; a re-run replays them all."""
    journal = Journal()
    durable = DurableAgent(_tool_agent(journal), wf)

    @durable_tool(wf)
    async def publish(text: str) -> str:
        journal(f"publish:{text}")
        return f"published {text}"

    @durable_pipeline(wf, id="pipe-{topic}")
    async def pipeline(topic: str) -> str:
        result = await durable.run(f"research {topic}", run_id=f"agent-{topic}")
        return await publish(result.output)

    out = await pipeline(topic="x")
    assert out == "published found a | found b | C"
    assert len(journal) == 8
    assert await pipeline(topic="x") == out
    assert len(journal) == 8
    info = await wf.get_run("pipe-x")
    assert [s.task for s in info.steps] == ["helper.run", "publish"]


def test_durable_tool_has_the_tool_defaults() -> None:
    """durable_tool is a task with 2 retries and exponential(2, max 30) backoff unless told."""
    app = Workflow("tools", db=":memory:")

    @durable_tool(app)
    async def fetch(city: str) -> str:
        return city

    @durable_tool(app, name="news", retries=5, backoff=constant(1))
    async def fetch_news(topic: str) -> str:
        return topic

    assert (fetch.name, fetch.retries) == ("fetch", 2)
    assert [fetch.backoff(k) for k in (1, 2, 3, 4, 5)] == [2, 4, 8, 16, 30]
    assert (fetch_news.name, fetch_news.retries, fetch_news.backoff(3)) == ("news", 5, 1)


def test_task_config_defaults_and_errors() -> None:
    """Unset TaskConfig fields take the agent defaults; a bad retry count names the agent."""
    app = Workflow("cfg", db=":memory:")
    agent = Agent(TestModel(), name="cfg")
    durable = DurableAgent(
        agent, app, model_task_config=TaskConfig(retries=5, backoff=exponential(base=3, max=9))
    )
    assert durable.model_task_config.retries == 5
    assert durable.model_task_config.backoff is not None
    assert durable.model_task_config.backoff(2) == 9
    assert durable.tool_task_config.retries == 2
    with pytest.raises(ConfigurationError, match=r"agent 'other': tool_task_config: retries"):
        DurableAgent(agent, app, name="other", tool_task_config=TaskConfig(retries=-1))


def test_import_durable_does_not_import_pydantic_ai() -> None:
    """import durable loads neither pydantic nor pydantic_ai; durable.pydantic_ai loads both."""
    code = (
        "import sys, durable\n"
        "print(sorted(m for m in ('pydantic', 'pydantic_ai') if m in sys.modules))\n"
        "import durable.pydantic_ai\n"
        "print(sorted(m for m in ('pydantic', 'pydantic_ai') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out == ["[]", "['pydantic', 'pydantic_ai']"]


async def test_deps_reach_tools_which_see_their_step(wf: Workflow) -> None:
    """deps reach the tools, and a tool body sees its step's idempotency key."""
    seen: list[tuple[str, str, str, str]] = []
    agent = Agent(scripted_model([("charge", {"cents": 500})]), deps_type=str, name="pay")

    @agent.tool
    async def charge(ctx: RunContext[str], cents: int) -> str:
        step = durable.current_step()
        seen.append((ctx.deps, step.run_id, step.step_id, step.idempotency_key))
        return f"charged {cents} to {ctx.deps}"

    result = await DurableAgent(agent, wf).run("pay", run_id="pay-1", deps="acct-7")
    assert result.output == "charged 500 to acct-7"
    [(deps, run_id, step_id, key)] = seen
    assert (deps, run_id, step_id) == ("acct-7", "pay-1", "pay.tool_call:1/charge/call-0")
    assert key.startswith("dk1-")


async def test_streamed_requests_and_tool_returns_replay(wf: Workflow) -> None:
    """With an event handler the model still runs once per request; a ToolReturn keeps its type."""
    journal = Journal()
    model = scripted_model([("report", {})], on_call=lambda k: journal(f"model:{k}"))
    agent = Agent(model, name="streamer")

    @agent.tool_plain
    async def report() -> ToolReturn[str]:
        journal("report")
        return ToolReturn(return_value="filed", content="see the attached report")

    events: list[str] = []

    async def handler(ctx: RunContext[None], stream: AsyncIterable[Any]) -> None:
        async for event in stream:
            events.append(type(event).__name__)

    durable = DurableAgent(agent, wf)
    first = await durable.run("go", run_id="stream-1", event_stream_handler=handler)
    assert first.output == "filed"
    assert journal.entries == ["model:1", "report", "model:2"]
    assert "PartStartEvent" in events
    assert "see the attached report" in str(first.all_messages())

    again = await durable.run("go", run_id="stream-1", event_stream_handler=handler)
    assert len(journal) == 3
    assert again.all_messages() == first.all_messages()


def test_two_agents_cannot_share_a_name_on_one_app() -> None:
    """Another agent under a name used on the app is refused; the same agent or app is fine."""
    app = Workflow("names", db=":memory:")
    first = Agent(TestModel())
    DurableAgent(first, app)
    assert DurableAgent(first, app).name == "agent"
    with pytest.raises(
        ConfigurationError, match=r"app 'names' already has a durable agent 'agent'"
    ):
        DurableAgent(Agent(TestModel()), app)
    assert DurableAgent(Agent(TestModel()), app, name="second").name == "second"
    assert DurableAgent(Agent(TestModel()), Workflow("other", db=":memory:")).name == "agent"


def test_run_sync_records_the_run_in_sqlite(tmp_path: Path) -> None:
    """run_sync runs the agent durably from sync code; a second call replays from the file."""
    journal = Journal()
    app = Workflow("sync-ai", db=tmp_path / "ai.db")
    durable = DurableAgent(_tool_agent(journal), app)
    assert durable.run_sync("go", run_id="sync-1").output == "found a | found b | C"
    assert durable.run_sync("go", run_id="sync-1").output == "found a | found b | C"
    assert journal.counts["lookup:a"] == 1
    assert journal.counts["model:4"] == 1
    asyncio.run(app.close())


async def test_a_durable_tool_registered_on_the_agent_runs_once(wf: Workflow) -> None:
    """A durable_tool given to the agent (the python-durable 0.2 pattern) runs once per call."""
    journal = Journal()

    @durable_tool(wf)
    async def web_search(query: str) -> str:
        journal(f"search:{query}")
        return f"results for {query}"

    agent = Agent(scripted_model([("web_search", {"query": "q"})]), tools=[web_search], name="s")
    durable = DurableAgent(agent, wf)
    assert (await durable.run("find", run_id="search-1")).output == "results for q"
    assert (await durable.run("find", run_id="search-1")).output == "results for q"
    assert journal.entries == ["search:q"]


async def test_signal_waits_inside_a_pipeline(wf: Workflow) -> None:
    """DurableAgent.signal waits durably for a signal, the poll argument accepted and unused."""
    journal = Journal()
    durable = DurableAgent(_tool_agent(journal), wf)

    @durable_pipeline(wf, id="review-{doc}")
    async def review(doc: str) -> dict[str, Any]:
        result = await durable.run(f"review {doc}", run_id=f"review-agent-{doc}")
        approval = await durable.signal("approval", poll=0.5)
        return {"result": result.output, "approval": approval}

    handle = await review.start(doc="d1")
    await wf.send_signal("review-d1", "approval", {"ok": True})
    assert await handle.result() == {"result": "found a | found b | C", "approval": {"ok": True}}


async def test_a_model_given_to_run_is_used_and_none_is_an_error(wf: Workflow) -> None:
    """An agent without a model runs with run(model=...); without one the error names it."""
    durable = DurableAgent(Agent(name="bare"), wf)
    with pytest.raises(ConfigurationError, match=r"agent 'bare' has no model"):
        await durable.run("hi", run_id="bare-1")
    result = await durable.run("hi", run_id="bare-2", model=TestModel(custom_output_text="hey"))
    assert result.output == "hey"


async def test_per_tool_config_and_inline_tools(wf: Workflow) -> None:
    """A tool configured by name gets its own task and retries; one set to None runs inline."""
    journal = Journal()
    failures = {"lookup": 2}
    model = scripted_model(
        [("lookup", {"q": "a"}), ("shout", {"word": "b"})],
        on_call=lambda k: journal(f"model:{k}"),
    )
    agent = Agent(model, name="cfg")

    @agent.tool_plain
    async def lookup(q: str) -> str:
        journal(f"lookup:{q}")
        if failures["lookup"]:
            failures["lookup"] -= 1
            raise ConnectionError("flaky")
        return f"found {q}"

    @agent.tool_plain
    async def shout(word: str) -> str:
        journal(f"shout:{word}")
        return word.upper()

    durable = DurableAgent(
        agent,
        wf,
        tool_task_config=TaskConfig(retries=0),
        tool_task_config_by_name={
            "lookup": TaskConfig(retries=2, backoff=constant(0)),
            "shout": None,
        },
    )
    first = await durable.run("go", run_id="cfg-1")
    assert first.output == "found a | B"
    assert journal.entries == [
        "model:1",
        "lookup:a",
        "lookup:a",
        "lookup:a",
        "model:2",
        "shout:b",
        "model:3",
    ]
    info = await wf.get_run("cfg-1")
    assert [(s.task, s.attempts) for s in info.steps if "tool_call" in s.task] == [
        ("cfg.tool_call.lookup", 3)
    ]

    failures["lookup"] = 5
    # Completed: nothing runs again, the inline tool included.
    assert (await durable.run("go", run_id="cfg-1")).output == "found a | B"
    assert len(journal) == 7


async def test_a_tool_result_that_is_not_json_fails_without_retries(wf: Workflow) -> None:
    """A tool returning what JSON cannot hold fails the run at once, naming the tool."""
    journal = Journal()
    agent = Agent(scripted_model([("opaque", {})]), name="opaque")

    @agent.tool_plain
    async def opaque() -> object:
        journal("opaque")
        return object()

    durable = DurableAgent(agent, wf, tool_task_config=TaskConfig(retries=2))
    with pytest.raises(SerializationError, match=r"tool 'opaque' \(call 'call-0'\) returned"):
        await durable.run("go", run_id="opaque-1")
    assert journal.entries == ["opaque"]
