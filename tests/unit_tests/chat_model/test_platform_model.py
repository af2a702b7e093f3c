"""ChatDevic over the emulator's platform dialect (in-process, no sockets).

Scripted assistants write in pieces, run server-side tools, hand off, fail or
hit a usage limit, in real time; the model follows them by stream and by
polling, and both ways must give what `invoke` gives.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, HumanMessage

from langchain_devic import ChatDevic, DevicRateLimitError, DevicRunError
from langchain_devic.testing import (
    DevicEmulator,
    Fail,
    HandOff,
    LimitExceeded,
    ServerTool,
    Write,
)

KEY = "platform-model-TOKEN-5e2a"

SCRIPTS: dict[str, Any] = {
    "writer": None,  # the default reply, written in pieces
    "worker": lambda c: [
        ServerTool("search", summary="Searching the docs", seconds=0.01),
        Write(f"Found it for {c.message}."),
        "Anything else?",
    ],
    "delegator": lambda c: [HandOff(0.02), "Done after the hand-off."],
    "failing": lambda c: [Write("partial"), Fail("the tool crashed")],
    "limited": lambda c: [LimitExceeded("Monthly token cap reached", resets_in=60)],
    "slow": lambda c: [Write(f"part {i}.", pieces=4, interval=0.02) for i in range(10)],
}


@pytest.fixture(params=["sse", "polling"])
def emulator(request: pytest.FixtureRequest) -> Iterator[DevicEmulator]:
    emu = DevicEmulator(
        api_key=KEY,
        dialect="platform",
        assistants=SCRIPTS,
        random_seed=7,
        sse=request.param == "sse",
        write_interval=0.002,
    )
    yield emu
    emu.wait_idle(5.0)


def model(emulator: DevicEmulator, assistant: str, **fields: Any) -> ChatDevic:
    transport = emulator.transport()
    return ChatDevic(
        assistant_id=assistant,
        api_key=KEY,
        base_url=emulator.base_url,
        http_client=httpx.Client(transport=transport),
        http_async_client=httpx.AsyncClient(transport=transport),
        poll_interval=0.005,
        max_poll_interval=0.02,
        **fields,
    )


def history_totals(
    emulator: DevicEmulator, assistant: str, chat: str
) -> dict[str, int]:
    client = model(emulator, assistant).client
    totals = client.chat_totals(assistant, chat)
    assert totals is not None
    return {"input_tokens": totals[0], "output_tokens": totals[1]}


class Progress(BaseCallbackHandler):
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def on_custom_event(self, name: str, data: Any, **kwargs: Any) -> None:
        assert name == "devic_progress"
        self.events.append(data)


def test_stream_joins_to_invoke_and_closes_with_usage(emulator: DevicEmulator) -> None:
    chunks = list(model(emulator, "worker").stream("the invoice"))
    emulator.wait_idle()
    invoked = model(emulator, "worker", run_mode="async").invoke("the invoice")
    streamed = "".join(c.text for c in chunks)
    assert streamed == invoked.text == "Found it for the invoice.\n\nAnything else?"
    assert len([c for c in chunks if c.text]) > 2  # written in pieces
    last = chunks[-1]
    assert last.chunk_position == "last"
    chat = last.response_metadata["chat_uuid"]
    totals = history_totals(emulator, "worker", chat)
    assert last.response_metadata["devic_chat_totals"] == totals
    assert last.usage_metadata is not None
    assert last.usage_metadata["input_tokens"] == totals["input_tokens"]
    assert last.usage_metadata["output_tokens"] == totals["output_tokens"]


def test_a_second_turn_counts_only_its_own_tokens(emulator: DevicEmulator) -> None:
    writer = model(emulator, "writer", run_mode="async")
    first = writer.invoke("one")
    second = writer.invoke([HumanMessage("one"), first, HumanMessage("two")])
    chat = first.response_metadata["chat_uuid"]
    assert second.response_metadata["chat_uuid"] == chat
    after = history_totals(emulator, "writer", chat)
    before = first.response_metadata["devic_chat_totals"]
    assert second.usage_metadata == {
        "input_tokens": after["input_tokens"] - before["input_tokens"],
        "output_tokens": after["output_tokens"] - before["output_tokens"],
        "total_tokens": sum(after.values()) - sum(before.values()),
    }
    assert second.text.endswith("two")


def test_progress_reports_server_steps_and_statuses(emulator: DevicEmulator) -> None:
    progress = Progress()
    list(model(emulator, "worker").stream("x", config={"callbacks": [progress]}))
    statuses = [
        e["status"] for e in progress.events if set(e) == {"chat_uuid", "status"}
    ]
    assert statuses[-1] == "completed"
    steps = [e for e in progress.events if "summary" in e]
    assert steps == [
        {
            "chat_uuid": progress.events[0]["chat_uuid"],
            "status": "processing",
            "summary": "Searching the docs",
            "tool": "search",
        }
    ]


def test_a_hand_off_shows_in_progress(emulator: DevicEmulator) -> None:
    progress = Progress()
    reply = model(emulator, "delegator", run_mode="async").invoke(
        "x", config={"callbacks": [progress]}
    )
    assert reply.text == "Done after the hand-off."
    assert "handed_off" in [e["status"] for e in progress.events]


async def test_progress_reaches_astream_events(emulator: DevicEmulator) -> None:
    events = [e async for e in model(emulator, "worker").astream_events("x")]
    custom = [e for e in events if e["event"] == "on_custom_event"]
    assert {e["name"] for e in custom} == {"devic_progress"}
    assert any(e["data"].get("tool") == "search" for e in custom)
    text = "".join(
        e["data"]["chunk"].text for e in events if e["event"] == "on_chat_model_stream"
    )
    assert text == "Found it for x.\n\nAnything else?"


def test_a_failed_run_raises_a_run_error(emulator: DevicEmulator) -> None:
    with pytest.raises(DevicRunError, match="the tool crashed") as raised:
        list(model(emulator, "failing").stream("x"))
    assert raised.value.status == "error"
    assert raised.value.chat_uuid


def test_a_usage_limit_is_a_rate_limit_error(emulator: DevicEmulator) -> None:
    with pytest.raises(DevicRateLimitError) as raised:
        model(emulator, "limited", run_mode="async").invoke("x")
    assert raised.value.code == "TENANT_LIMIT_EXCEEDED"
    assert raised.value.retry_after is not None
    assert 50 < raised.value.retry_after <= 60
    assert "Monthly token cap" in str(raised.value)


def test_closing_the_stream_early_stops_the_run(emulator: DevicEmulator) -> None:
    stream = model(emulator, "slow").stream("x")
    first = next(c for c in stream if c.text)
    assert first.text
    stream.close()
    emulator.wait_idle()
    stops = [r for r in emulator.requests if r.path.endswith("/stop")]
    assert len(stops) == 1
    chat = stops[0].path.split("/chats/")[1].split("/")[0]
    view = emulator.realtime(chat)
    assert view["status"] == "completed"  # a stopped run ends completed
    written = [m for m in view["chatHistory"] if m["role"] == "assistant"]
    assert 0 < len(written) < 10  # stopped after its current step


async def test_a_cancelled_task_stops_the_run(emulator: DevicEmulator) -> None:
    async def consume() -> None:
        async for _ in model(emulator, "slow").astream("x"):
            pass

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.15)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.to_thread(emulator.wait_idle)
    assert len([r for r in emulator.requests if r.path.endswith("/stop")]) == 1


def test_writes_are_sent_once(emulator: DevicEmulator) -> None:
    list(model(emulator, "worker").stream("x"))
    sends = [r for r in emulator.requests if r.method == "POST"]
    assert len(sends) == 1
    assert sends[0].query == "async=true"


def test_load_chat_round_trip_continues_the_chat(emulator: DevicEmulator) -> None:
    writer = model(emulator, "writer", run_mode="async")
    first = writer.invoke("remember me")
    chat = first.response_metadata["chat_uuid"]
    history = writer.load_chat(chat)
    assert [m.type for m in history] == ["human", "ai"]
    assert history[-1].text == first.text
    assert (
        history[-1].response_metadata["devic_chat_totals"]
        == first.response_metadata["devic_chat_totals"]
    )
    again = writer.invoke([*history, HumanMessage("and now?")])
    assert again.response_metadata["chat_uuid"] == chat
    assert len(emulator.conversations[chat]) == 4  # two turns, one chat
    assert again.usage_metadata is not None


def test_list_chats_is_newest_first(emulator: DevicEmulator) -> None:
    writer = model(emulator, "writer", run_mode="async")
    chats = [
        writer.invoke(f"chat {i}").response_metadata["chat_uuid"] for i in range(3)
    ]
    listed = writer.list_chats(limit=2)
    assert [c["chat_uuid"] for c in listed] == chats[::-1][:2]
    assert all(c["created_at"] and c["created_at"].endswith("Z") for c in listed)


async def test_async_history_twins(emulator: DevicEmulator) -> None:
    writer = model(emulator, "writer", run_mode="async")
    first = await writer.ainvoke("hello")
    chat = first.response_metadata["chat_uuid"]
    assert (await writer.alist_chats())[0]["chat_uuid"] == chat
    loaded = await writer.aload_chat(chat)
    assert isinstance(loaded[-1], AIMessage)
    assert loaded[-1].text == first.text


def test_the_one_call_on_the_platform_reads_the_message_list(
    emulator: DevicEmulator,
) -> None:
    writer = model(emulator, "writer", run_mode="sync")
    first = writer.invoke("one")
    second = writer.invoke([HumanMessage("one"), first, HumanMessage("two")])
    assert first.text.endswith("one")
    assert second.text.endswith("two")
    assert second.response_metadata["chat_uuid"] == first.response_metadata["chat_uuid"]
    sent = [r.json for r in emulator.requests if r.method == "POST"]
    assert (
        sent[1]["chatUid"]
        == sent[1]["chatUuid"]
        == first.response_metadata["chat_uuid"]
    )


def test_breaking_out_of_a_stream_stops_the_run(emulator: DevicEmulator) -> None:
    for chunk in model(emulator, "slow").stream("x"):
        if chunk.text:
            break
    emulator.wait_idle()
    assert len([r for r in emulator.requests if r.path.endswith("/stop")]) == 1


def test_breaking_out_of_an_async_stream_stops_the_run(emulator: DevicEmulator) -> None:
    async def main() -> None:
        async for chunk in model(emulator, "slow").astream("x"):
            if chunk.text:
                break

    asyncio.run(main())
    emulator.wait_idle()
    assert len([r for r in emulator.requests if r.path.endswith("/stop")]) == 1


@pytest.mark.parametrize("use_async", [False, True], ids=["invoke", "ainvoke"])
async def test_progress_reaches_handlers_when_langgraph_streams_messages(
    emulator: DevicEmulator, use_async: bool
) -> None:
    """LangGraph's "messages" mode makes an invoked model stream without lending
    its run manager: the progress still reaches the run's handlers."""
    from langchain_core.runnables import RunnableConfig
    from langgraph.graph import END, START, MessagesState, StateGraph

    worker = model(emulator, "worker", run_mode="async")

    def call(state: MessagesState) -> dict[str, Any]:
        return {"messages": [worker.invoke(state["messages"])]}

    async def acall(state: MessagesState, config: RunnableConfig) -> dict[str, Any]:
        # Before Python 3.11 an async node must hand its config on itself.
        return {"messages": [await worker.ainvoke(state["messages"], config)]}

    builder = StateGraph(MessagesState)
    builder.add_node("model", acall if use_async else call)
    builder.add_edge(START, "model")
    builder.add_edge("model", END)
    graph = builder.compile()
    progress = Progress()
    config: Any = {"callbacks": [progress]}
    inputs: Any = {"messages": [HumanMessage("x")]}
    if use_async:
        chunks = [
            c async for c in graph.astream(inputs, config, stream_mode="messages")
        ]
    else:
        chunks = list(graph.stream(inputs, config, stream_mode="messages"))
    assert len([c for c, _ in chunks if c.text]) > 1  # the reply streamed...
    assert any(e.get("tool") == "search" for e in progress.events)  # ...and reported
    assert progress.events[-1]["status"] == "completed"
