"""ChatDevic as the brain of a LangChain agent that runs the caller's tools.

`langchain.agents.create_agent` with `ChatDevic` as its model and local Python
tools, on a checkpointer, against the emulator's platform dialect (in-process,
no sockets). The Devic assistant is scripted: it calls the tools round by round
and reads their results, as a real one would. Every claim is checked on the
emulator's request log: one Devic chat per agent thread, one tool-response per
round, no message sent twice.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from langchain.agents import create_agent
from langchain_core.callbacks import get_usage_metadata_callback
from langchain_core.messages import AIMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver

from langchain_devic import ChatDevic, DevicConflictError
from langchain_devic.testing import DevicEmulator, RecordedRequest
from tests.calculator import add, calculator, divide, multiply

KEY = "agent-tools-TOKEN-7f21"
ASSISTANT = "calculator"


@pytest.fixture
def emulator() -> DevicEmulator:
    return DevicEmulator(
        api_key=KEY,
        dialect="platform",
        assistants={ASSISTANT: calculator},
        random_seed=3,
        write_interval=0.001,
    )


def calculator_model(emulator: DevicEmulator, **fields: Any) -> ChatDevic:
    transport = emulator.transport()
    return ChatDevic(
        assistant_id=ASSISTANT,
        api_key=KEY,
        base_url=emulator.base_url,
        http_client=httpx.Client(transport=transport),
        http_async_client=httpx.AsyncClient(transport=transport),
        poll_interval=0.005,
        max_poll_interval=0.02,
        **fields,
    )


def agent(emulator: DevicEmulator) -> Any:
    return create_agent(
        model=calculator_model(emulator),
        tools=[add, multiply, divide],
        checkpointer=InMemorySaver(),
    )


def routed(emulator: DevicEmulator, route: str) -> list[RecordedRequest]:
    return [r for r in emulator.requests if r.route == route and r.method == "POST"]


def bodies(emulator: DevicEmulator, route: str) -> list[dict[str, Any]]:
    return [json.loads(r.body) for r in routed(emulator, route)]


def check_first_turn(emulator: DevicEmulator, result: dict[str, Any]) -> str:
    """The multi-step task ran two tool rounds on one chat; returns the chat id."""
    messages = result["messages"]
    assert messages[-1].content == "(2 + 3) * 4 = 20"
    calls = [m for m in messages if isinstance(m, AIMessage) and m.tool_calls]
    assert [c.tool_calls[0]["name"] for c in calls] == ["add", "multiply"]
    assert calls[0].content == "Adding first."
    chats = {
        m.response_metadata["chat_uuid"] for m in messages if isinstance(m, AIMessage)
    }
    assert len(chats) == 1
    (chat,) = chats
    assert list(emulator.conversations) == [chat]
    (send,) = bodies(emulator, "messages")
    assert send["message"] == "What is (2 + 3) * 4?"
    assert {t["function"]["name"] for t in send["tools"]} == {
        "add",
        "multiply",
        "divide",
    }
    responses = bodies(emulator, "tool-response")
    assert [[r["content"] for r in b["responses"]] for b in responses] == [
        ["5"],
        ["20"],
    ]
    assert all("tools" in b["responses"][0] for b in responses)  # restated
    assert [r["tool_call_id"] for b in responses for r in b["responses"]] == [
        c.tool_calls[0]["id"] for c in calls
    ]
    return str(chat)


def test_an_agent_runs_tool_rounds_on_one_devic_chat(emulator: DevicEmulator) -> None:
    graph = agent(emulator)
    config: Any = {"configurable": {"thread_id": "thread-1"}}
    with get_usage_metadata_callback() as usage:
        first = graph.invoke({"messages": [("user", "What is (2 + 3) * 4?")]}, config)
        chat = check_first_turn(emulator, first)

        second = graph.invoke(
            {"messages": [("user", "Now divide it by zero.")]}, config
        )
    last = second["messages"][-1]
    assert last.content == "That failed: cannot divide by zero"
    failed = [m for m in second["messages"] if isinstance(m, ToolMessage)][-1]
    assert failed.status == "error"
    sends = bodies(emulator, "messages")
    assert [s["message"] for s in sends] == [
        "What is (2 + 3) * 4?",
        "Now divide it by zero.",
    ]
    assert sends[1]["chatUuid"] == chat  # the second turn continues the chat
    assert list(emulator.conversations) == [chat]
    error_round = bodies(emulator, "tool-response")[-1]["responses"][0]
    assert error_round["content"] == {"error": "cannot divide by zero"}

    (totals,) = usage.usage_metadata.values()
    history = ChatDevic(
        assistant_id=ASSISTANT,
        api_key=KEY,
        base_url=emulator.base_url,
        http_client=httpx.Client(transport=emulator.transport()),
    ).client.chat_totals(ASSISTANT, chat)
    assert history is not None
    assert totals["input_tokens"] == history[0]
    assert totals["output_tokens"] == history[1]
    assert totals["total_tokens"] == sum(history) > 0


def test_several_calls_in_one_round_are_answered_together(
    emulator: DevicEmulator,
) -> None:
    graph = agent(emulator)
    config: Any = {"configurable": {"thread_id": "thread-2"}}
    graph.invoke({"messages": [("user", "What is (2 + 3) * 4?")]}, config)
    graph.invoke({"messages": [("user", "Now divide it by zero.")]}, config)
    third = graph.invoke({"messages": [("user", "Two sums, please.")]}, config)
    assert third["messages"][-1].content == "Both sums: 2, 4"
    last_round = bodies(emulator, "tool-response")[-1]["responses"]
    assert [r["content"] for r in last_round] == ["2", "4"]
    assert len(emulator.conversations) == 1


async def test_the_async_agent_does_the_same(emulator: DevicEmulator) -> None:
    graph = agent(emulator)
    config: Any = {"configurable": {"thread_id": "thread-3"}}
    first = await graph.ainvoke(
        {"messages": [("user", "What is (2 + 3) * 4?")]}, config
    )
    check_first_turn(emulator, first)


def test_a_chat_left_waiting_is_named_and_stop_chat_frees_it(
    emulator: DevicEmulator,
) -> None:
    model = calculator_model(emulator, max_retries=0)
    call = model.bind_tools([add, multiply]).invoke("What is (2 + 3) * 4?")
    chat = call.response_metadata["chat_uuid"]
    assert [c["name"] for c in call.tool_calls] == ["add"]
    with pytest.raises(DevicConflictError, match="waits for the results of client"):
        model.invoke("Never mind.", chat_uuid=chat)
    assert model.stop_chat(chat) is True
    assert emulator.realtime(chat)["status"] == "completed"
    assert model.stop_chat(chat) is False  # nothing runs there any more


async def test_astop_chat_closes_the_wait_too(emulator: DevicEmulator) -> None:
    model = calculator_model(emulator)
    call = await model.bind_tools([add]).ainvoke("What is (2 + 3) * 4?")
    chat = call.response_metadata["chat_uuid"]
    assert await model.astop_chat(chat) is True
    assert emulator.realtime(chat)["status"] == "completed"
