"""End-to-end: a LangGraph tool-calling agent delegating to a Devic assistant.

The agent's own model is a scripted planner (a real `BaseChatModel` whose
answers are derived from the messages it is given); the Devic assistant is the
in-process emulator. No sockets.
"""

from __future__ import annotations

import asyncio
import warnings
from typing import Any

import pytest
from langchain_core.callbacks import get_usage_metadata_callback
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.prebuilt import create_react_agent

from langchain_devic import DevicAssistantTool, DevicAuthenticationError
from langchain_devic.testing import DevicEmulator, Fault
from tests.unit_tests.conftest import ASSISTANT, make_model

TOOL_NAME = "research_assistant"


class ScriptedPlanner(BaseChatModel):
    """A deterministic tool-calling planner.

    On a new user turn it delegates the turn to the research assistant (one tool
    call, whose id counts the user turns so far); after a tool result it answers
    with that result. It never looks at anything but the messages it is given.
    """

    tool_name: str = TOOL_NAME

    @property
    def _llm_type(self) -> str:
        return "scripted-planner"

    def bind_tools(self, tools: Any, **kwargs: Any) -> ScriptedPlanner:
        names = {getattr(t, "name", None) for t in tools}
        assert self.tool_name in names, f"planner needs {self.tool_name}"
        return self

    def _plan(self, messages: list[BaseMessage]) -> AIMessage:
        last = messages[-1]
        if isinstance(last, ToolMessage):
            if last.status == "error":
                return AIMessage(
                    content=f"Final answer: the research assistant failed "
                    f"({last.content}); I will answer from what I know."
                )
            return AIMessage(content=f"Final answer: {last.content}")
        if isinstance(last, HumanMessage):
            turn = sum(isinstance(m, HumanMessage) for m in messages)
            return AIMessage(
                content="",
                tool_calls=[
                    {
                        "name": self.tool_name,
                        "args": {"message": f"Please research: {last.content}"},
                        "id": f"call-{turn}",
                    }
                ],
            )
        msg = f"the planner has no move after a {type(last).__name__}"
        raise AssertionError(msg)

    def _generate(
        self, messages: list[BaseMessage], *args: Any, **kwargs: Any
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self._plan(messages))])

    async def _agenerate(
        self, messages: list[BaseMessage], *args: Any, **kwargs: Any
    ) -> ChatResult:
        await asyncio.sleep(0)  # let concurrent threads interleave
        return self._generate(messages)


def make_tool(emulator: DevicEmulator, **overrides: object) -> DevicAssistantTool:
    return DevicAssistantTool(
        name=TOOL_NAME,
        description="Researches a topic in depth and reports back.",
        chat_model=make_model(emulator, **overrides),
    )


def make_agent(tool: DevicAssistantTool) -> Any:
    with warnings.catch_warnings():
        # create_react_agent is deprecated in langgraph 1.x (in favour of
        # langchain.agents.create_agent), and still the graph the brief names.
        warnings.simplefilter("ignore")
        return create_react_agent(
            ScriptedPlanner(), [tool], checkpointer=InMemorySaver()
        )


def thread(thread_id: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread_id}}


def user(text: str) -> dict[str, Any]:
    return {"messages": [HumanMessage(text)]}


def tool_messages(result: dict[str, Any]) -> list[ToolMessage]:
    return [m for m in result["messages"] if isinstance(m, ToolMessage)]


# ------------------------------------------------------------------ planner


def test_planner_derives_its_moves_from_the_messages() -> None:
    planner = ScriptedPlanner()
    first = planner.invoke([HumanMessage("cats")])
    assert first.tool_calls[0]["args"] == {"message": "Please research: cats"}
    assert first.tool_calls[0]["id"] == "call-1"
    done = planner.invoke(
        [
            HumanMessage("cats"),
            first,
            ToolMessage("cats purr", tool_call_id="call-1"),
        ]
    )
    assert done.content == "Final answer: cats purr"
    assert done.tool_calls == []


# ------------------------------------------------------------- conversations


def test_agent_thread_continues_one_devic_chat(emulator: DevicEmulator) -> None:
    tool = make_tool(emulator)
    agent = make_agent(tool)

    first = agent.invoke(user("solar panels"), thread("t1"))
    second = agent.invoke(user("and their cost"), thread("t1"))

    chat = tool_messages(first)[0].artifact["chat_uuid"]
    assert [r.chat_uuid for r in emulator.requests] == [None, chat]
    assert [r.message for r in emulator.requests] == [
        "Please research: solar panels",
        "Please research: and their cost",
    ]
    # The final answers carry the assistant's replies.
    assert first["messages"][-1].content == (
        f"Final answer: Reply 1 from {ASSISTANT}: Please research: solar panels"
    )
    assert second["messages"][-1].content == (
        f"Final answer: Reply 2 from {ASSISTANT}: Please research: and their cost"
    )
    # The checkpointer kept the thread: 2 user turns, 2 calls, 2 results, 2 answers.
    assert len(second["messages"]) == 8
    second_results = tool_messages(second)
    assert [m.artifact["chat_uuid"] for m in second_results] == [chat, chat]
    assert [m.tool_call_id for m in second_results] == ["call-1", "call-2"]
    # Inside LangGraph the tool node's namespace is `tools:<task>`: thread key
    # "t1|", as the thread's config (without a namespace) gives it too.
    assert tool.get_chat_uuid(thread("t1")) == chat

    # Another thread gets its own chat.
    other = agent.invoke(user("wind turbines"), thread("t2"))
    chat2 = tool_messages(other)[0].artifact["chat_uuid"]
    assert chat2 not in (None, chat)
    assert [r.chat_uuid for r in emulator.requests] == [None, chat, None]
    assert other["messages"][-1].content == (
        f"Final answer: Reply 1 from {ASSISTANT}: Please research: wind turbines"
    )
    assert [tool.get_chat_uuid(thread(t)) for t in ("t1", "t2")] == [chat, chat2]
    assert len(emulator.conversations[chat]) == 4
    assert len(emulator.conversations[chat2]) == 2


async def test_agent_async_thread_continues_one_devic_chat(
    emulator: DevicEmulator,
) -> None:
    tool = make_tool(emulator)
    agent = make_agent(tool)
    first = await agent.ainvoke(user("tides"), thread("a1"))
    second = await agent.ainvoke(user("spring tides"), thread("a1"))
    chat = tool_messages(first)[0].artifact["chat_uuid"]
    assert [r.chat_uuid for r in emulator.requests] == [None, chat]
    assert second["messages"][-1].content == (
        f"Final answer: Reply 2 from {ASSISTANT}: Please research: spring tides"
    )


async def test_concurrent_threads_never_share_a_chat(
    emulator: DevicEmulator,
) -> None:
    latency = 0.05
    emulator.latency = latency  # each answer waits, so the threads overlap
    tool = make_tool(emulator)
    agent = make_agent(tool)
    rounds = 3

    for n in range(rounds):
        results = await asyncio.gather(
            agent.ainvoke(user(f"c1 round {n}"), thread("c1")),
            agent.ainvoke(user(f"c2 round {n}"), thread("c2")),
        )
        for name, result in zip(("c1", "c2"), results, strict=True):
            assert result["messages"][-1].content == (
                f"Final answer: Reply {n + 1} from {ASSISTANT}: "
                f"Please research: {name} round {n}"
            )

    chats = {name: tool.get_chat_uuid(thread(name)) for name in ("c1", "c2")}
    assert chats["c1"] is not None
    assert chats["c2"] is not None
    assert chats["c1"] != chats["c2"]
    assert set(emulator.conversations) == set(chats.values())
    for name, chat in chats.items():
        user_turns = [
            m["content"] for m in emulator.conversations[chat] if m["role"] == "user"
        ]
        assert user_turns == [
            f"Please research: {name} round {n}" for n in range(rounds)
        ]
        sent = [
            r.chat_uuid
            for r in emulator.requests
            if (r.message or "").startswith(f"Please research: {name} ")
        ]
        assert sent == [None] + [chat] * (rounds - 1)
    assert all(r.status == 200 for r in emulator.requests)
    assert len(emulator.requests) == 2 * rounds
    # Each round's two requests arrived while the other was still being answered.
    arrivals = [r.timestamp for r in emulator.requests]
    for n in range(rounds):
        assert abs(arrivals[2 * n + 1] - arrivals[2 * n]) < latency


# --------------------------------------------------------------------- usage


def test_agent_usage_includes_the_devic_calls(emulator: DevicEmulator) -> None:
    tool = make_tool(emulator)
    agent = make_agent(tool)

    with get_usage_metadata_callback() as callback:
        agent.invoke(user("volcanoes"), thread("u1"))
        result = agent.invoke(user("which are active"), thread("u1"))

    billed = [m.artifact["tokens_used"] for m in tool_messages(result)]
    assert len(billed) == 2
    assert all(tokens > 0 for tokens in billed)
    assert set(callback.usage_metadata) == {ASSISTANT}
    usage = callback.usage_metadata[ASSISTANT]
    assert usage["total_tokens"] == sum(billed)
    assert usage["input_tokens"] + usage["output_tokens"] == sum(billed)


# -------------------------------------------------------------- error policy


def test_rate_limit_in_graph_becomes_an_error_tool_message(
    emulator: DevicEmulator,
) -> None:
    tool = make_tool(emulator)
    agent = make_agent(tool)
    emulator.inject(Fault.status(429, retry_after=3600))

    result = agent.invoke(user("glaciers"), thread("e1"))

    (failed,) = tool_messages(result)
    assert failed.status == "error"
    assert "429" in failed.content
    assert failed.tool_call_id == "call-1"
    final = result["messages"][-1]
    assert isinstance(final, AIMessage)
    assert final.content == (
        f"Final answer: the research assistant failed ({failed.content}); "
        "I will answer from what I know."
    )
    assert [r.status for r in emulator.requests] == [429]
    # The thread has no chat yet, so the next turn starts one and succeeds.
    after = agent.invoke(user("glaciers again"), thread("e1"))
    assert tool_messages(after)[-1].status == "success"
    assert emulator.requests[-1].chat_uuid is None


async def test_server_error_in_async_graph_becomes_an_error_tool_message(
    emulator: DevicEmulator,
) -> None:
    agent = make_agent(make_tool(emulator))
    emulator.inject(Fault.status(500))
    result = await agent.ainvoke(user("deserts"), thread("e2"))
    (failed,) = tool_messages(result)
    assert failed.status == "error"
    assert "500" in failed.content
    assert result["messages"][-1].content.startswith(
        "Final answer: the research assistant failed"
    )


def test_wrong_api_key_raises_out_of_the_graph(emulator: DevicEmulator) -> None:
    agent = make_agent(make_tool(emulator, api_key="wrong-key"))
    with pytest.raises(DevicAuthenticationError) as raised:
        agent.invoke(user("anything"), thread("e3"))
    assert raised.value.status_code == 401
    assert [r.status for r in emulator.requests] == [401]


async def test_wrong_api_key_raises_out_of_the_async_graph(
    emulator: DevicEmulator,
) -> None:
    agent = make_agent(make_tool(emulator, api_key="wrong-key"))
    with pytest.raises(DevicAuthenticationError):
        await agent.ainvoke(user("anything"), thread("e4"))
