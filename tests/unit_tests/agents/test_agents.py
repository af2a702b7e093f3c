"""DevicAgentTool and ChatDevic's agent calls against the emulator's agents."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command
from typing_extensions import TypedDict

from langchain_devic import (
    ChatDevic,
    DevicAgentTool,
    DevicApprovalRequired,
    DevicError,
    DevicRateLimitError,
    DevicRunError,
    DevicTimeoutError,
)
from langchain_devic.testing import AgentStep, DevicEmulator, Fault
from tests.unit_tests.conftest import make_model


@pytest.fixture
def agents(emulator: DevicEmulator) -> DevicEmulator:
    emulator.agent_step_seconds = 0.01
    emulator.add_agent("researcher", profile={"name": "Research Agent"})
    return emulator


@pytest.fixture
def fast(agents: DevicEmulator) -> ChatDevic:
    return make_model(agents, poll_interval=0.01, max_poll_interval=0.05)


def call(task: str, call_id: str = "call-1") -> dict[str, Any]:
    return {"type": "tool_call", "id": call_id, "name": "t", "args": {"task": task}}


class Events(BaseCallbackHandler):
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def on_custom_event(self, name: str, data: Any, **kwargs: Any) -> None:
        if name == "devic_progress":
            self.events.append(data)


def test_completed_answer_artifact_and_progress(
    agents: DevicEmulator, fast: ChatDevic
) -> None:
    tool = DevicAgentTool.from_agent("researcher", chat_model=fast)
    assert tool.name == "research_agent"
    seen = Events()
    message = tool.invoke(call("find X"), {"callbacks": [seen]})
    assert message.content == "Done: find X"
    artifact = message.artifact
    assert artifact["state"] == "completed"
    assert artifact["agent_id"] == "researcher"
    assert artifact["tasks"] == [
        {"title": "Read the task", "completed": True},
        {"title": "Do the work", "completed": True},
    ]
    assert artifact["usage"]["input_tokens"] > 0
    assert artifact["cost"] > 0
    tasks = [e["task"] for e in seen.events if "task" in e]
    assert tasks == ["Read the task", "Do the work"]
    assert any(e.get("state") == "completed" for e in seen.events)


def test_one_thread_per_tool_call(agents: DevicEmulator, fast: ChatDevic) -> None:
    tool = DevicAgentTool(agent_id="researcher", chat_model=fast)
    first = tool.invoke(call("find X"))
    again = DevicAgentTool(agent_id="researcher", chat_model=fast).invoke(
        call("find X")
    )
    assert first.artifact["thread_id"] == again.artifact["thread_id"]
    threads = fast.list_agent_threads("researcher")
    assert len(threads) == 1
    assert threads[0]["tags"] == ["langchain-call:call-1"]


@pytest.mark.parametrize(
    "state", ["failed", "terminated", "guardrail_trigger", "waiting_for_response"]
)
def test_run_error_states(agents: DevicEmulator, fast: ChatDevic, state: str) -> None:
    agents.add_agent("a", [AgentStep.task("t"), AgentStep.end(state, "why")])
    tool = DevicAgentTool(agent_id="a", chat_model=fast)
    with pytest.raises(DevicRunError) as info:
        tool.invoke(call("go"))
    error: Any = info.value
    assert error.state == state
    assert error.thread_id == error.chat_uuid
    assert "why" in str(error)


def test_limit_exceeded(agents: DevicEmulator, fast: ChatDevic) -> None:
    agents.add_agent("a", [AgentStep.end("limit_exceeded", "cap", resets_in=60)])
    with pytest.raises(DevicRateLimitError) as info:
        DevicAgentTool(agent_id="a", chat_model=fast).invoke(call("go"))
    assert info.value.retry_after is not None
    assert 50 < info.value.retry_after <= 60


def test_hand_off_followed(agents: DevicEmulator, fast: ChatDevic) -> None:
    agents.add_agent("sub", [AgentStep.say("sub done")])
    agents.add_agent("a", [AgentStep.hand_off("sub"), AgentStep.say("all done")])
    seen = Events()
    tool = DevicAgentTool(agent_id="a", chat_model=fast)
    message = tool.invoke(call("go"), {"callbacks": [seen]})
    assert message.content == "all done"
    hand_offs = [e for e in seen.events if e.get("state") == "handed_off"]
    assert hand_offs
    assert hand_offs[0]["sub_thread_id"]


def test_under_construction_keeps_following(
    agents: DevicEmulator, fast: ChatDevic
) -> None:
    agents.add_agent("a", [AgentStep.end("under_construction"), AgentStep.say("ok")])
    assert (
        DevicAgentTool(agent_id="a", chat_model=fast).invoke(call("go")).content == "ok"
    )


def test_paused_until_is_slept_not_polled(
    agents: DevicEmulator, fast: ChatDevic
) -> None:
    agents.add_agent("a", [AgentStep.pause(0.6), AgentStep.say("woke")])
    tool = DevicAgentTool(agent_id="a", chat_model=fast)
    assert tool.invoke(call("go")).content == "woke"
    reads = [r for r in agents.requests if r.route == "agent-thread"]
    # Hot polling at 10 ms for 0.6 s would read about 60 times.
    assert len(reads) < 15


def test_run_timeout(agents: DevicEmulator) -> None:
    agents.add_agent("a", [AgentStep.pause(30)])
    model = make_model(agents, poll_interval=0.01, run_timeout=0.5)
    with pytest.raises(DevicTimeoutError, match="goes on on Devic"):
        DevicAgentTool(agent_id="a", chat_model=model).invoke(call("go"))


def test_approval_outside_graph_and_rejection(
    agents: DevicEmulator, fast: ChatDevic
) -> None:
    script = [AgentStep.approval("Send it?", "Draft"), AgentStep.say("Sent.")]
    agents.add_agent("a", script)
    tool = DevicAgentTool(agent_id="a", chat_model=fast)
    with pytest.raises(DevicApprovalRequired) as info:
        tool.invoke(call("go"))
    assert info.value.reason == "Send it?"
    fast.approve_thread(info.value.thread_id, "yes")
    message = tool.invoke(call("go"))
    assert message.content == "Sent."
    assert message.artifact["thread_id"] == info.value.thread_id
    with pytest.raises(DevicApprovalRequired) as second:
        tool.invoke(call("again", "call-2"))
    fast.reject_thread(second.value.thread_id, "no")
    rejected = tool.invoke(call("again", "call-2"))
    assert "rejected" in rejected.content
    assert rejected.artifact["state"] == "approval_rejected"


class State(TypedDict):
    task: str
    answer: str


def graph_of(tool: DevicAgentTool, saver: Any) -> Any:
    def delegate(state: State, config: RunnableConfig) -> dict[str, str]:
        message = tool.invoke(call(state["task"], "call-g"), config)
        return {"answer": str(message.content)}

    builder = StateGraph(State)
    builder.add_node("delegate", delegate)
    builder.add_edge(START, "delegate")
    builder.add_edge("delegate", END)
    return builder.compile(checkpointer=saver)


def test_approvals_as_interrupts(agents: DevicEmulator, fast: ChatDevic) -> None:
    script = [
        AgentStep.approval("First?", "one"),
        AgentStep.approval("Second?", "two"),
        AgentStep.say("both approved"),
    ]
    agents.add_agent("a", script)
    graph = graph_of(DevicAgentTool(agent_id="a", chat_model=fast), InMemorySaver())
    config: Any = {"configurable": {"thread_id": "g1"}}
    out = graph.invoke({"task": "go", "answer": ""}, config)
    first = out["__interrupt__"][0].value
    assert first["type"] == "devic_approval"
    assert first["reason"] == "First?"
    assert first["message"] == "one"
    out = graph.invoke(Command(resume={"approved": True, "message": "ok"}), config)
    assert out["__interrupt__"][0].value["reason"] == "Second?"
    out = graph.invoke(Command(resume=True), config)
    assert out["answer"] == "both approved"
    threads = fast.list_agent_threads("a")
    assert len(threads) == 1
    posted = [r for r in agents.requests if r.path.endswith("/approval")]
    assert len(posted) == 2


def test_cancellation_leaves_thread_running(
    agents: DevicEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    agents.add_agent("a", [AgentStep.pause(30)])
    model = make_model(agents, poll_interval=0.01)
    tool = DevicAgentTool(agent_id="a", chat_model=model)

    async def main() -> None:
        task = asyncio.create_task(tool.ainvoke(call("go")))
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    with caplog.at_level(logging.WARNING, logger="langchain_devic"):
        asyncio.run(main())
    (thread,) = model.list_agent_threads("a")
    assert thread["state"] == "paused"
    assert thread["_id"] in caplog.text
    assert not [r for r in agents.requests if r.path.endswith(("/pause", "/complete"))]


def test_async_calls(agents: DevicEmulator, fast: ChatDevic) -> None:
    async def main() -> None:
        listed = await fast.alist_agents()
        assert listed[0] == {
            "agent_id": "researcher",
            "name": "Research Agent",
            "description": "Emulated Devic agent 'researcher'.",
            "disabled": False,
            "archived": False,
        }
        assert (await fast.aget_agent("researcher"))["name"] == "Research Agent"
        tool = DevicAgentTool(agent_id="researcher", chat_model=fast)
        message = await tool.ainvoke(call("find Y"))
        assert message.content == "Done: find Y"
        thread_id = message.artifact["thread_id"]
        thread = await fast.aget_agent_thread(thread_id)
        assert thread["state"] == "completed"
        entry = await fast.asend_thread_feedback(thread_id, feedback=True)
        assert entry["feedback"] is True
        done = await fast.alist_agent_threads("researcher", state="completed")
        assert [t["_id"] for t in done] == [thread_id]

    asyncio.run(main())


# ---------------------------------------------------------------- construction


def test_chat_model_and_its_fields_are_exclusive(fast: ChatDevic) -> None:
    with pytest.raises(ValueError, match="not both") as raised:
        DevicAgentTool(agent_id="a", chat_model=fast, run_timeout=5)
    assert "run_timeout" in str(raised.value)


def test_builds_its_chat_model_from_fields_naming_the_agent() -> None:
    tool = DevicAgentTool(agent_id="researcher", api_key="k", run_timeout=7)
    assert tool.chat_model.run_timeout == 7
    assert tool.chat_model.assistant_id == "researcher"
    named = DevicAgentTool(agent_id="researcher", api_key="k", assistant_id="other")
    assert named.chat_model.assistant_id == "other"


def test_a_base_url_with_credentials_is_refused_unrepeated() -> None:
    with pytest.raises(ValueError, match="user name or password") as raised:
        DevicAgentTool(agent_id="a", api_key="k", base_url="http://u:pw@127.0.0.1:9")
    assert "pw" not in str(raised.value)


# ------------------------------------------------------ writes of unknown outcome


@pytest.mark.parametrize("way", ["sync", "async"])
def test_a_thread_started_but_unanswered_is_found_by_its_tag_not_started_again(
    agents: DevicEmulator, fast: ChatDevic, way: str
) -> None:
    # The tool first looks the thread up by its tag (a GET, answered), then
    # creates it (a POST, run and its answer lost).
    lookup, create = Fault.latency(0.0), Fault.drop_after_processing()
    agents.inject(lookup.on("agent-threads"), create.on("agent-threads"))
    tool = DevicAgentTool(agent_id="researcher", chat_model=fast)
    task = call("find X", "call-lost")
    message = tool.invoke(task) if way == "sync" else asyncio.run(tool.ainvoke(task))
    methods = [r.method for r in agents.requests if r.route == "agent-threads"]
    assert methods[:3] == ["GET", "POST", "GET"]  # the POST's answer was lost
    assert message.content == "Done: find X"
    created = [
        r for r in agents.requests if r.route == "agent-threads" and r.method == "POST"
    ]
    assert len(created) == 1
    assert len(fast.list_agent_threads("researcher")) == 1


def test_a_thread_write_of_unknown_outcome_is_raised_never_sent_twice(
    agents: DevicEmulator, fast: ChatDevic
) -> None:
    message = DevicAgentTool(agent_id="researcher", chat_model=fast).invoke(
        call("find X")
    )
    thread_id = message.artifact["thread_id"]
    agents.inject(Fault.drop_after_processing().on("agent-thread-action"))
    with pytest.raises(DevicError, match="not sent again") as raised:
        fast.send_thread_feedback(thread_id, feedback=True, comment="good")
    assert raised.value.is_retryable is False
    sent = [r for r in agents.requests if r.route == "agent-thread-action"]
    assert len(sent) == 1
