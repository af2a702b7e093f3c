"""ChatDevic with the caller's tools over real HTTP, replayed from cassettes.

The emulator on 127.0.0.1 plays Devic's platform: the async send with `tools`,
the run waiting for the client, the tool-response route, the stream and the
realtime view. Recorded once against the loopback emulator; CI replays.
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver

from langchain_devic import ChatDevic
from langchain_devic.testing import DevicEmulator
from tests.calculator import add, calculator, divide, multiply
from tests.integration_tests.conftest import ENDPOINT, LIVE

pytestmark = pytest.mark.vcr
offline_only = pytest.mark.skipif(
    LIVE, reason="scripted emulator assistants exist only offline"
)

CALCULATOR = "calculator-http"


@pytest.fixture(autouse=True)
def scripted(emulator: DevicEmulator) -> None:
    emulator.add_assistant(CALCULATOR, calculator)


def model(assistant: str | None = None, **fields: Any) -> ChatDevic:
    return ChatDevic(
        assistant_id=assistant or ENDPOINT["assistant_id"],
        api_key=ENDPOINT["api_key"],
        base_url=ENDPOINT["base_url"],
        poll_interval=0.02,
        **fields,
    )


@tool
def unicode_customer(customer_name: str, description: str) -> str:
    """Create a customer with a name in its own language."""
    return f"Created customer: {customer_name} - {description}"


@pytest.mark.parametrize(
    ("request_text", "expected"),
    [
        ("Create a customer named '你好啊集团' (Hello Group)", "你好啊集团"),
        (
            "Create a customer named 'こんにちは株式会社' (Hello Corp)",
            "こんにちは株式会社",
        ),
    ],
    ids=["chinese", "japanese"],
)
def test_unicode_arguments_arrive_unescaped(request_text: str, expected: str) -> None:
    reply = model().bind_tools([unicode_customer]).invoke(request_text)
    assert isinstance(reply, AIMessage)
    (call,) = reply.tool_calls
    assert call["name"] == "unicode_customer"
    assert call["args"]["customer_name"] == expected


@offline_only
def test_an_agent_runs_tool_rounds_over_http() -> None:
    graph = create_agent(
        model=model(CALCULATOR),
        tools=[add, multiply, divide],
        checkpointer=InMemorySaver(),
    )
    config: Any = {"configurable": {"thread_id": "http-thread"}}
    first = graph.invoke({"messages": [("user", "What is (2 + 3) * 4?")]}, config)
    assert first["messages"][-1].content == "(2 + 3) * 4 = 20"
    second = graph.invoke({"messages": [("user", "Now divide it by zero.")]}, config)
    assert second["messages"][-1].content == "That failed: cannot divide by zero"
    chats = {
        m.response_metadata["chat_uuid"]
        for m in second["messages"]
        if isinstance(m, AIMessage)
    }
    assert len(chats) == 1


@offline_only
def test_a_stream_ends_with_the_tool_call_chunks() -> None:
    bound = model(CALCULATOR).bind_tools([add, multiply, divide])
    chunks = list(bound.stream("What is (2 + 3) * 4?"))
    assert all(isinstance(c, AIMessageChunk) for c in chunks)
    joined = chunks[0]
    for chunk in chunks[1:]:
        joined += chunk
    assert isinstance(joined, AIMessageChunk)
    assert joined.text == "Adding first."
    assert [c["name"] for c in joined.tool_calls] == ["add"]
    assert joined.tool_calls[0]["args"] == {"a": 2, "b": 3}
    assert chunks[-1].response_metadata["finish_reason"] == "tool_calls"
    result = add.invoke(joined.tool_calls[0])
    final = bound.invoke(
        [HumanMessage("What is (2 + 3) * 4?"), AIMessage(**_as_message(joined)), result]
    )
    assert [c["name"] for c in final.tool_calls] == ["multiply"]


def _as_message(chunk: AIMessageChunk) -> dict[str, Any]:
    return {
        "content": chunk.content,
        "tool_calls": chunk.tool_calls,
        "response_metadata": chunk.response_metadata,
    }
