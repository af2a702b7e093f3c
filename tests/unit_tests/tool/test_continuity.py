"""The tool's thread record: the checkpoint is enough, exactly once through crashes.

In-process, no sockets: the emulator's transport. The same promises with real
worker processes on a real PostgreSQL are in tests/postgres.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.stores import InMemoryByteStore
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore as GraphMemoryStore

from langchain_devic import DevicAssistantTool, DevicLockError, DevicStoreError
from langchain_devic._delegation import chat_in_state, sent_since
from langchain_devic._stores import (
    ANSWERED_KEPT,
    Answer,
    Pending,
    ThreadItem,
    adapt_store,
    key_value_key,
    message_digest,
)
from langchain_devic.testing import DevicEmulator
from tests.unit_tests.conftest import API_KEY, ASSISTANT
from tests.unit_tests.tool.test_workers import (
    call,
    make_tool,
    reply,
    sends,
    start_run,
    thread,
    thread_item,
)


@pytest.fixture
def platform() -> DevicEmulator:
    return DevicEmulator(
        api_key=API_KEY,
        dialect="platform",
        random_seed=5,
        assistants={ASSISTANT: reply},
    )


def agent(tool: DevicAssistantTool, checkpointer: Any, store: Any = None) -> Any:
    from langchain.agents import create_agent

    from tests.unit_tests.tool.test_agent import ScriptedPlanner

    return create_agent(
        ScriptedPlanner(), [tool], checkpointer=checkpointer, store=store
    )


async def invoke(
    tool: DevicAssistantTool, tool_call: Any, config: Any, *, asynchronous: bool
) -> Any:
    """The tool's async call, or its sync call (from a test that awaits)."""
    if asynchronous:
        return await tool.ainvoke(tool_call, config)
    return tool.invoke(tool_call, config)


def tool_messages(state: dict[str, Any]) -> list[ToolMessage]:
    return [m for m in state["messages"] if isinstance(m, ToolMessage)]


def put_item(store: Any, thread_id: str, value: dict[str, Any]) -> None:
    store.mset(
        [(key_value_key(ASSISTANT, f"{thread_id}|"), json.dumps(value).encode())]
    )


# ------------------------------------------------- 1. the checkpoint is enough


def test_the_model_never_sees_the_runtime_argument(platform: DevicEmulator) -> None:
    tool = make_tool(platform)
    schema = tool.tool_call_schema.model_json_schema()  # type: ignore[union-attr]
    assert set(schema["properties"]) == {"message", "new_conversation"}


def test_the_checkpoint_alone_continues_the_chat_across_graph_instances(
    platform: DevicEmulator,
) -> None:
    """Two graphs (two processes' worth: separate tools, no store at all)
    sharing one checkpointer: the second finds the chat in the thread's
    messages and continues it."""
    saver = InMemorySaver()
    first = agent(make_tool(platform), saver)
    second = agent(make_tool(platform), saver)  # its own, empty in-memory store

    first.invoke({"messages": [HumanMessage("tides")]}, thread("t1"))
    state = second.invoke({"messages": [HumanMessage("spring tides")]}, thread("t1"))

    one, two = tool_messages(state)
    chat = one.artifact["chat_uuid"]
    assert two.artifact["chat_uuid"] == chat
    assert two.content == "Reply 2: Please research: spring tides"
    assert [r.chat_uuid for r in sends(platform)] == [None, chat]
    assert len(platform.conversations) == 1


def test_the_latest_artifact_of_this_assistant_wins() -> None:
    class Runtime:
        def __init__(self, messages: list[Any]) -> None:
            self.state = {"messages": messages}

    def tool_message(chat: str, assistant: str) -> ToolMessage:
        artifact = {"chat_uuid": chat, "assistant_id": assistant}
        return ToolMessage("r", tool_call_id="x", artifact=artifact)

    messages = [
        tool_message("old", ASSISTANT),
        HumanMessage("next"),
        tool_message("new", ASSISTANT),
        tool_message("theirs", "someone-else"),
    ]
    assert chat_in_state(Runtime(messages), ASSISTANT) == "new"
    assert chat_in_state(Runtime([]), ASSISTANT) is None
    assert chat_in_state(None, ASSISTANT) is None


# ------------------------------------------- 2. a repeated tool call, unsent


class DieAfterTool(BaseCallbackHandler):
    """Fails the graph once, after the tool returned, before its checkpoint."""

    raise_error = True

    def __init__(self) -> None:
        self.armed = True

    def on_tool_end(self, output: Any, **kwargs: Any) -> None:
        if self.armed:
            self.armed = False
            raise RuntimeError("worker died after the tool returned")


def test_a_tools_node_run_again_returns_the_same_reply_unsent(
    platform: DevicEmulator,
) -> None:
    store = GraphMemoryStore()
    graph = agent(make_tool(platform), InMemorySaver(), store)
    config = thread("t1")
    dying = {**config, "callbacks": [DieAfterTool()]}

    with pytest.raises(RuntimeError, match="after the tool returned"):
        graph.invoke({"messages": [HumanMessage("tides")]}, dying)
    assert len(sends(platform)) == 1
    state = graph.invoke(None, config)  # LangGraph runs the tools node again

    (message,) = tool_messages(state)
    assert message.content == "Reply 1: Please research: tides"
    assert message.status == "success"
    assert len(sends(platform)) == 1  # answered from the record
    item = adapt_store(store, shared=True).get(ASSISTANT, "t1|")
    assert item is not None
    assert [a.call_id for a in item.answered] == [message.tool_call_id]
    assert message.artifact == item.answered[0].artifact
    # The send carried the call id where Devic's chat search finds it.
    (send,) = sends(platform)
    assert f"langchain-call:{message.tool_call_id}" in send.json["tags"]


def test_the_same_call_id_with_another_message_is_sent() -> None:
    item = ThreadItem("c", answered=(Answer("call-1", message_digest("a"), "r", {}),))
    assert item.answer_for("call-1", message_digest("a")) is not None
    assert item.answer_for("call-1", message_digest("b")) is None
    assert item.answer_for(None, message_digest("a")) is None


def test_answered_calls_are_bounded_and_round_trip() -> None:
    item = ThreadItem("c")
    for n in range(ANSWERED_KEPT + 3):
        answer = Answer(f"call-{n}", "d", f"reply {n}", {"chat_uuid": "c"})
        item = ThreadItem("c", None, item.with_answer(answer))
    assert len(item.answered) == ANSWERED_KEPT
    assert item.answered[-1].call_id == f"call-{ANSWERED_KEPT + 2}"
    assert ThreadItem.parse(json.dumps(item.to_dict())) == item


# ----------------------------------------- 3. intent before the send, settled


def test_an_unconfirmed_intent_of_a_new_chat_is_found_by_reading_devic(
    platform: DevicEmulator,
) -> None:
    """The worker died between the send and the mark: the chat was never
    recorded. The next call finds it among the assistant's chats."""
    start_run(platform, "unrelated")  # another thread's chat, older
    platform.wait_idle()
    chat = start_run(platform, "tides")
    platform.wait_idle()
    store = InMemoryByteStore()
    intent = Pending(message_digest("tides"), "2020-01-01T00:00:00Z", "c1", False)
    put_item(store, "t1", ThreadItem(None, intent).to_dict())
    tool = make_tool(platform, store=store)

    result = tool.invoke(call("tides"), thread("t1"))

    assert result.artifact["recovered"] is True
    assert result.artifact["chat_uuid"] == chat
    assert result.content == "Reply 1: tides"
    assert [r.message for r in sends(platform)] == ["unrelated", "tides"]
    assert thread_item(store, "t1").pending is None


def test_an_unconfirmed_intent_on_a_known_chat_is_settled_by_its_history(
    platform: DevicEmulator,
) -> None:
    chat = start_run(platform, "first")
    platform.wait_idle()
    start_run(platform, "second", chat)  # sent, then the worker died
    platform.wait_idle()
    store = InMemoryByteStore()
    intent = Pending(message_digest("second"), "2026-01-01T00:00:00Z", "c2", False)
    put_item(store, "t1", ThreadItem(chat, intent).to_dict())

    result = make_tool(platform, store=store).invoke(call("second"), thread("t1"))

    assert result.artifact["recovered"] is True
    assert result.content == "Reply 2: second"
    assert [r.message for r in sends(platform)] == ["first", "second"]


def test_an_unconfirmed_intent_never_sent_is_sent_once(
    platform: DevicEmulator,
) -> None:
    chat = start_run(platform, "first")
    platform.wait_idle()
    store = InMemoryByteStore()
    intent = Pending(message_digest("second"), "2026-01-01T00:00:00Z", "c2", False)
    put_item(store, "t1", ThreadItem(chat, intent).to_dict())

    result = make_tool(platform, store=store).invoke(call("second"), thread("t1"))

    assert "recovered" not in result.artifact
    assert result.content == "Reply 2: second"
    assert [(r.message, r.chat_uuid) for r in sends(platform)] == [
        ("first", None),
        ("second", chat),
    ]


def test_sent_since_allows_for_clock_skew() -> None:
    assert sent_since("2026-01-01T00:00:00Z", "2026-01-01T00:04:00Z")
    assert not sent_since("2026-01-01T00:00:00Z", "2026-01-01T00:06:00Z")
    assert sent_since(None, "2026-01-01T00:00:00Z")


# --------------------------------------------------------- 4. a lost lock


class LosableLock:
    """A lock whose hold is lost at the `lose_at`-th check (1-based)."""

    def __init__(self, lose_at: int | None) -> None:
        self.lose_at, self.checks = lose_at, 0

    def _check(self) -> None:
        self.checks += 1
        if self.lose_at is not None and self.checks >= self.lose_at:
            raise DevicLockError("The test lock was lost.")

    @contextmanager
    def hold(self, scope: str, key: str) -> Iterator[Any]:
        class Held:
            check = self._check

        yield Held()

    @asynccontextmanager
    async def ahold(self, scope: str, key: str) -> AsyncIterator[Any]:
        outer = self

        class Held:
            async def acheck(self) -> None:
                outer._check()

        yield Held()


@pytest.mark.parametrize("asynchronous", [False, True])
async def test_a_lock_lost_before_the_send_sends_nothing(
    platform: DevicEmulator, asynchronous: bool
) -> None:
    store = InMemoryByteStore()
    tool = make_tool(platform, store=store, lock=LosableLock(lose_at=1))
    with pytest.raises(DevicLockError, match="Nothing was sent"):
        await invoke(tool, call("tides"), thread("t1"), asynchronous=asynchronous)
    assert sends(platform) == []
    assert thread_item(store, "t1") is None


def test_a_lock_lost_after_the_send_writes_nothing_and_the_next_call_recovers(
    platform: DevicEmulator,
) -> None:
    """Checks: intent write (1), before the send (2), the mark (3), the end (4)."""
    store = InMemoryByteStore()
    lost = make_tool(platform, store=store, lock=LosableLock(lose_at=4))
    with pytest.raises(DevicLockError, match="The turn was sent"):
        lost.invoke(call("tides"), thread("t1"))
    item = thread_item(store, "t1")
    assert item.pending is not None  # left as it was: confirmed
    assert item.pending.confirmed

    result = make_tool(platform, store=store).invoke(call("tides"), thread("t1"))
    assert result.artifact["recovered"] is True
    assert result.content == "Reply 1: tides"
    assert len(sends(platform)) == 1


def test_a_chat_changed_under_the_call_is_not_overwritten(
    platform: DevicEmulator,
) -> None:
    """Compare-and-set: the thread's chat changed since this call read it."""
    store = InMemoryByteStore()

    class Sneaky(LosableLock):
        def _check(self) -> None:
            super()._check()
            if self.checks == 3:  # another worker took the thread meanwhile
                put_item(store, "t1", {"chat_uuid": "someone-elses-chat"})

    tool = make_tool(platform, store=store, lock=Sneaky(lose_at=None))
    with pytest.raises(DevicLockError, match="changed under this call"):
        tool.invoke(call("tides"), thread("t1"))
    assert thread_item(store, "t1").chat_uuid == "someone-elses-chat"


# ---------------------------------------- 6. a store that cannot read back


class ForgetfulStore(GraphMemoryStore):
    """A LangGraph store that finds nothing it wrote (like SQL_ASCII PostgreSQL)."""

    __module__ = "tests.unit_tests.tool.test_continuity"

    def batch(self, ops: Any) -> list[Any]:
        results = super().batch(ops)
        return [
            None if type(op).__name__ == "GetOp" else r
            for op, r in zip(ops, results, strict=True)
        ]

    async def abatch(self, ops: Any) -> list[Any]:
        return self.batch(ops)


@pytest.mark.parametrize("asynchronous", [False, True])
async def test_a_store_that_cannot_read_back_is_refused_with_the_fix(
    platform: DevicEmulator, asynchronous: bool
) -> None:
    tool = make_tool(platform, store=ForgetfulStore())
    with pytest.raises(DevicStoreError, match="UTF-8") as caught:
        await invoke(tool, call("tides"), thread("t1"), asynchronous=asynchronous)
    assert "SQL_ASCII" in caught.value.message
    assert sends(platform) == []
