"""A process running a durable agent on a SQLite file, for the SIGKILL test.

Usage: python _agent_child.py DB JOURNAL [--hang-in-third-tool]

Every model request and tool body appends ``<pid> <label>`` to JOURNAL (a
file outside the store) before it acts. With ``--hang-in-third-tool`` the
third tool call never returns, so the parent can kill the process while the
first two tool calls are committed. The run's output is printed as JSON.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

from pydantic_ai import Agent
from tests.contrib._scripted import scripted_model

from durable import Workflow
from durable.pydantic_ai import DurableAgent


def main() -> None:
    db, journal_path = sys.argv[1], sys.argv[2]
    hang = "--hang-in-third-tool" in sys.argv[3:]

    def journal(label: str) -> None:
        with open(journal_path, "a") as f:
            f.write(f"{os.getpid()} {label}\n")
            f.flush()
            os.fsync(f.fileno())

    model = scripted_model(
        [("lookup", {"q": "a"}), ("lookup", {"q": "b"}), ("shout", {"word": "c"})],
        on_call=lambda k: journal(f"model:{k}"),
    )
    agent = Agent(model, name="crashy")

    @agent.tool_plain
    async def lookup(q: str) -> str:
        journal(f"lookup:{q}")
        return f"found {q}"

    @agent.tool_plain
    async def shout(word: str) -> str:
        journal(f"shout:{word}")
        if hang:
            await asyncio.Event().wait()  # killed here by the parent
        return word.upper()

    async def run() -> None:
        async with Workflow("crash-ai", db=db, lease_ttl=2.0) as wf:
            durable = DurableAgent(agent, wf)
            result = await durable.run("go", run_id="agent-crash")
            print(json.dumps({"output": result.output, "requests": result.usage.requests}))

    asyncio.run(run())


if __name__ == "__main__":
    main()
