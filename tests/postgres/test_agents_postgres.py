"""A Devic agent's approval across two processes, with PostgresSaver checkpoints.

Process 1 runs a LangGraph agent whose one tool is a `DevicAgentTool` until
the Devic thread pauses for approval (a LangGraph interrupt), prints the
interrupt and exits. Process 2, a fresh interpreter with nothing in memory,
resumes the same graph thread with `Command(resume={"approved": True})`: the
tool finds its Devic thread again by the tool call's tag, posts the approval
once and follows the thread to its answer. The Devic emulator runs here, in
the test process, and the claims are counted on its request log.

Run as a script (`python -m tests.postgres.test_agents_postgres DSN BASE_URL
API_KEY GRAPH_THREAD start|resume`), this module is the worker.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from langchain_devic.testing import AgentStep, DevicEmulator

API_KEY = "agents-postgres-key"
AGENT = "approver"
TOOL = "approver_agent"
#: Guards each worker against a hang; a normal run takes about a second.
GUARD = 60.0


# ------------------------------------------------------------------ worker


def worker(dsn: str, base_url: str, api_key: str, thread: str, step: str) -> None:
    """One worker process: run the graph (or resume it) and print the outcome."""
    import httpx
    from langchain.agents import create_agent
    from langchain_core.messages import ToolMessage
    from langgraph.checkpoint.postgres import PostgresSaver
    from langgraph.types import Command

    from langchain_devic import ChatDevic, DevicAgentTool
    from tests.postgres._worker import Planner

    model = ChatDevic(
        assistant_id="unused",
        api_key=api_key,
        base_url=base_url,
        poll_interval=0.05,
        max_poll_interval=0.2,
        run_timeout=30,
        http_client=httpx.Client(trust_env=False),  # 127.0.0.1, never a proxy
    )
    tool = DevicAgentTool(agent_id=AGENT, name=TOOL, chat_model=model)
    config: Any = {"configurable": {"thread_id": thread}}
    with PostgresSaver.from_conn_string(dsn) as saver:
        saver.setup()
        planner = Planner(tool_name=TOOL, argument="task", call_id="call-1")
        graph = create_agent(planner, [tool], checkpointer=saver)
        if step == "start":
            inputs: Any = {"messages": [("user", "Plan the launch")]}
        else:
            inputs = Command(resume={"approved": True, "message": "Go ahead"})
        state = graph.invoke(inputs, config, durability="sync")
    interrupts = [i.value for i in state.get("__interrupt__", [])]
    messages = state["messages"]
    print(
        json.dumps(
            {
                "interrupts": interrupts,
                "final": str(messages[-1].content),
                "artifact": next(
                    (
                        m.artifact
                        for m in reversed(messages)
                        if isinstance(m, ToolMessage)
                    ),
                    None,
                ),
            }
        ),
        flush=True,
    )


# ------------------------------------------------------------------- tests


@pytest.fixture(scope="module")
def emulator() -> DevicEmulator:
    emu = DevicEmulator(api_key=API_KEY, dialect="platform", random_seed=23)
    emu.agent_step_seconds = 0.02
    emu.add_agent(
        AGENT,
        [
            AgentStep.task("Draft the plan"),
            AgentStep.approval("Send the plan?", "The plan is drafted."),
            AgentStep.task("Send the plan"),
            AgentStep.say("The plan was sent."),
        ],
    )
    return emu


def run_worker(dsn: str, base_url: str, thread: str, step: str) -> dict[str, Any]:
    """Run one worker process to its end and read its outcome."""
    command = [sys.executable, "-m", "tests.postgres.test_agents_postgres"]
    command += [dsn, base_url, API_KEY, thread, step]
    env = {**os.environ, "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"}
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=GUARD,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    outcome: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return outcome


def test_approval_across_two_processes(
    postgres_dsn: str, emulator: DevicEmulator, base_url: str
) -> None:
    first = run_worker(postgres_dsn, base_url, "graph-1", "start")
    (asked,) = first["interrupts"]
    assert asked["type"] == "devic_approval"
    assert asked["agent_id"] == AGENT
    assert asked["reason"] == "Send the plan?"
    assert asked["message"] == "The plan is drafted."
    thread_id = asked["thread_id"]
    assert emulator.agent_thread(thread_id)["state"] == "paused_for_approval"

    second = run_worker(postgres_dsn, base_url, "graph-1", "resume")
    assert second["interrupts"] == []
    assert second["final"] == "Final answer: The plan was sent."
    artifact = second["artifact"]
    assert artifact["thread_id"] == thread_id
    assert artifact["state"] == "completed"
    assert artifact["tasks"] == [
        {"title": "Draft the plan", "completed": True},
        {"title": "Send the plan", "completed": True},
    ]

    creates = [
        r
        for r in emulator.requests
        if r.method == "POST" and r.path.endswith(f"/agents/{AGENT}/threads")
    ]
    assert len(creates) == 1
    assert creates[0].json["tags"] == ["langchain-call:call-1"]
    approvals = [
        r
        for r in emulator.requests
        if r.method == "POST" and r.path.endswith("/approval")
    ]
    assert len(approvals) == 1
    assert approvals[0].json == {"action": "approved", "message": "Go ahead"}
    thread = emulator.agent_thread(thread_id)
    assert thread["state"] == "completed"
    assert [c["state"] for c in thread["threadStatesChanges"]].count(
        "paused_for_approval"
    ) == 1


if __name__ == "__main__":
    worker(*sys.argv[1:6])
