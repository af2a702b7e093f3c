"""DevicAssistantTool behaviour, against the in-process emulator (no sockets).

Covers the conversation key (`thread_key`), the content-and-artifact answer,
one Devic chat per agent thread (in memory and in a shared store), the vanished
chat restart, the error policy (actionable errors become an error ToolMessage,
misconfiguration raises), usage propagation, async mirrors and construction.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
from collections.abc import Iterator, Sequence
from typing import Any
from unittest import mock
from uuid import UUID

import pytest
from langchain_core.callbacks import BaseCallbackHandler, get_usage_metadata_callback
from langchain_core.messages import BaseMessage, ToolMessage
from langchain_core.runnables import RunnableConfig, RunnableLambda
from langchain_core.stores import BaseStore, InMemoryStore
from pydantic import ValidationError

from langchain_devic import (
    ChatDevic,
    DevicAssistantTool,
    DevicAuthenticationError,
    DevicNotFoundError,
    DevicPermissionDeniedError,
)
from langchain_devic._locks import PROCESS_LOCKS
from langchain_devic._stores import ThreadItem, adapt_store, key_value_key
from langchain_devic.testing import DevicEmulator, Fault
from langchain_devic.tools import DevicAssistantInput, thread_key
from tests.unit_tests.conftest import API_KEY, ASSISTANT, BASE_URL, make_model

TOOL_NAME = "research_assistant"
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
#: A well-formed chat id the emulator has never issued.
BOGUS_CHAT = "00000000-0000-4000-8000-000000000000"


def key(thread_id: str, assistant: str = ASSISTANT) -> str:
    """The tool's key in a key-value store for a top-level agent thread."""
    return key_value_key(assistant, f"{thread_id}|")


def stored(tool: DevicAssistantTool, *thread_ids: str) -> list[str | None]:
    """The chat each top-level thread continues, as the tool's store says."""
    return [tool.get_chat_uuid(thread(t)) for t in thread_ids]


def seed(tool: DevicAssistantTool, thread_id: str, chat_uuid: str) -> None:
    """Point a thread of the tool's own store to `chat_uuid`."""
    store = adapt_store(tool.store, shared=False)
    store.put(tool.chat_model.assistant_id, f"{thread_id}|", ThreadItem(chat_uuid))


def value(chat_uuid: str) -> bytes:
    """What a key-value store holds for a thread: the item as UTF-8 JSON."""
    return json.dumps({"chat_uuid": chat_uuid}, separators=(",", ":")).encode()


def sends(emulator: DevicEmulator) -> list[Any]:
    """The requests that sent a message (reads of a chat left out)."""
    return [r for r in emulator.requests if r.route == "messages"]


def make_tool(
    emulator: DevicEmulator,
    *,
    store: BaseStore[str, Any] | None = None,
    **model_overrides: object,
) -> DevicAssistantTool:
    """A tool whose ChatDevic talks to `emulator` in-process."""
    params: dict[str, Any] = {
        "name": TOOL_NAME,
        "description": "Researches a topic and reports back.",
        "chat_model": make_model(emulator, **model_overrides),
    }
    if store is not None:
        params["store"] = store
    return DevicAssistantTool(**params)


def call(message: str, call_id: str = "call-1", **args: Any) -> dict[str, Any]:
    """A ToolCall dict, as an agent's model emits it."""
    return {
        "name": TOOL_NAME,
        "args": {"message": message, **args},
        "id": call_id,
        "type": "tool_call",
    }


def thread(thread_id: str, **configurable: Any) -> RunnableConfig:
    return {"configurable": {"thread_id": thread_id, **configurable}}


def sent_chat_ids(emulator: DevicEmulator) -> list[str | None]:
    return [r.chat_uuid for r in emulator.requests]


@pytest.fixture
def tool(emulator: DevicEmulator) -> DevicAssistantTool:
    return make_tool(emulator)


# ------------------------------------------------------------------ thread_key


@pytest.mark.parametrize(
    ("configurable", "expected"),
    [
        ({"thread_id": "t1", "checkpoint_ns": "tools:abc"}, "t1|"),
        ({"thread_id": "t1", "checkpoint_ns": "research:9f2|tools:4c1"}, "t1|research"),
        (
            {"thread_id": "t1", "checkpoint_ns": "outer:1|research:9f2|tools:4c1"},
            "t1|outer|research",
        ),
        ({"thread_id": "t1"}, "t1|"),
        ({"thread_id": "t1", "checkpoint_ns": ""}, "t1|"),
        ({"thread_id": 42, "checkpoint_ns": "tools:abc"}, "42|"),
        ({"checkpoint_ns": "tools:abc"}, None),
        ({"thread_id": ""}, None),
        ({}, None),
    ],
)
def test_thread_key(configurable: dict[str, Any], expected: str | None) -> None:
    assert thread_key({"configurable": configurable}) == expected


def test_thread_key_of_no_config_is_none() -> None:
    assert thread_key(None) is None
    assert thread_key({}) is None


def test_thread_key_reads_the_context_var_config() -> None:
    """Inside a runnable, `thread_key(None)` sees the enclosing run's config."""
    inner = RunnableLambda(lambda _: thread_key(None))
    config = thread("t1", checkpoint_ns="research:9f2|tools:4c1")
    assert inner.invoke("x", config) == "t1|research"
    assert inner.invoke("x") is None


def test_thread_keys_differ_per_thread_and_per_parent_namespace() -> None:
    keys = {
        thread_key(thread("t1", checkpoint_ns="tools:a")),
        thread_key(thread("t1", checkpoint_ns="tools:b")),  # same thread, new call
        thread_key(thread("t2", checkpoint_ns="tools:a")),
        thread_key(thread("t1", checkpoint_ns="research:x|tools:a")),
        thread_key(thread("t1", checkpoint_ns="writer:y|tools:a")),
    }
    assert keys == {"t1|", "t2|", "t1|research", "t1|writer"}


# ------------------------------------------------------------ content/artifact


def test_tool_call_returns_reply_and_artifact(
    tool: DevicAssistantTool, emulator: DevicEmulator
) -> None:
    result = tool.invoke(call("Summarise the report"), thread("t1"))

    assert isinstance(result, ToolMessage)
    assert result.content == f"Reply 1 from {ASSISTANT}: Summarise the report"
    assert result.tool_call_id == "call-1"
    assert result.name == TOOL_NAME
    assert result.status == "success"
    (chat_id,) = emulator.conversations
    assert set(result.artifact) == {
        "chat_uuid",
        "assistant_id",
        "tokens_used",
        "timestamp",
        "restarted",
    }
    assert result.artifact["chat_uuid"] == chat_id
    assert result.artifact["assistant_id"] == ASSISTANT
    # The emulator bills the history's words (3) plus the reply's words (7).
    assert result.artifact["tokens_used"] == 10
    assert TIMESTAMP.match(result.artifact["timestamp"])
    assert result.artifact["restarted"] is False
    # What went on the wire: the agent's message verbatim, a new chat.
    (request,) = emulator.requests
    assert request.json == {"message": "Summarise the report", "chatUuid": None}
    assert request.assistant_id == ASSISTANT
    assert request.status == 200


def test_plain_args_invoke_returns_the_reply_text(
    tool: DevicAssistantTool,
) -> None:
    assert tool.invoke({"message": "Hello"}) == f"Reply 1 from {ASSISTANT}: Hello"


def test_scripted_assistant_reply_is_the_content(emulator: DevicEmulator) -> None:
    emulator.add_assistant(
        "analyst", lambda conv: f"turn {conv.turn}: {conv.message.upper()}"
    )
    tool = make_tool(emulator, model="analyst")
    result = tool.invoke(call("look at q3"), thread("t1"))
    assert result.content == "turn 1: LOOK AT Q3"
    assert result.artifact["assistant_id"] == "analyst"


# --------------------------------------------------------------- conversations


def test_same_thread_continues_one_chat(
    tool: DevicAssistantTool, emulator: DevicEmulator
) -> None:
    first = tool.invoke(call("first question"), thread("t1"))
    second = tool.invoke(call("second question", "call-2"), thread("t1"))

    chat = first.artifact["chat_uuid"]
    assert sent_chat_ids(emulator) == [None, chat]
    assert second.artifact["chat_uuid"] == chat
    assert second.content == f"Reply 2 from {ASSISTANT}: second question"
    assert emulator.conversations[chat] == [
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": f"Reply 1 from {ASSISTANT}: first question"},
        {"role": "user", "content": "second question"},
        {
            "role": "assistant",
            "content": f"Reply 2 from {ASSISTANT}: second question",
        },
    ]
    assert stored(tool, "t1") == [chat]


def test_other_thread_gets_a_new_chat(
    tool: DevicAssistantTool, emulator: DevicEmulator
) -> None:
    first = tool.invoke(call("for t1"), thread("t1"))
    other = tool.invoke(call("for t2"), thread("t2"))
    again = tool.invoke(call("t1 again"), thread("t1"))

    chat1, chat2 = first.artifact["chat_uuid"], other.artifact["chat_uuid"]
    assert chat1 != chat2
    assert sent_chat_ids(emulator) == [None, None, chat1]
    assert again.artifact["chat_uuid"] == chat1
    assert stored(tool, "t1", "t2") == [chat1, chat2]


def test_same_thread_other_parent_namespace_gets_its_own_chat(
    tool: DevicAssistantTool, emulator: DevicEmulator
) -> None:
    top = tool.invoke(call("top level"), thread("t1", checkpoint_ns="tools:1"))
    nested = tool.invoke(
        call("in research"), thread("t1", checkpoint_ns="research:9|tools:2")
    )
    top_again = tool.invoke(call("top again"), thread("t1", checkpoint_ns="tools:3"))

    assert top.artifact["chat_uuid"] != nested.artifact["chat_uuid"]
    assert sent_chat_ids(emulator) == [None, None, top.artifact["chat_uuid"]]
    assert top_again.artifact["chat_uuid"] == top.artifact["chat_uuid"]


def test_no_thread_id_starts_a_new_chat_each_call(
    tool: DevicAssistantTool, emulator: DevicEmulator
) -> None:
    first = tool.invoke(call("one"))
    second = tool.invoke(call("two", "call-2"))

    assert sent_chat_ids(emulator) == [None, None]
    assert [r.json["chatUuid"] for r in emulator.requests] == [None, None]
    assert first.artifact["chat_uuid"] != second.artifact["chat_uuid"]
    assert len(emulator.conversations) == 2
    assert list(tool.store.yield_keys()) == []


def test_new_conversation_repoints_the_thread(
    tool: DevicAssistantTool, emulator: DevicEmulator
) -> None:
    first = tool.invoke(call("old topic"), thread("t1"))
    fresh = tool.invoke(
        call("new topic", "call-2", new_conversation=True), thread("t1")
    )
    third = tool.invoke(call("more on it", "call-3"), thread("t1"))

    old_chat, new_chat = first.artifact["chat_uuid"], fresh.artifact["chat_uuid"]
    assert old_chat != new_chat
    assert sent_chat_ids(emulator) == [None, None, new_chat]
    assert fresh.content == f"Reply 1 from {ASSISTANT}: new topic"
    assert third.content == f"Reply 2 from {ASSISTANT}: more on it"
    assert third.artifact["chat_uuid"] == new_chat
    assert stored(tool, "t1") == [new_chat]
    # The old chat was left as it was.
    assert len(emulator.conversations[old_chat]) == 2


def test_agent_chat_uuid_in_config_does_not_leak(
    tool: DevicAssistantTool, emulator: DevicEmulator
) -> None:
    config = thread("t", chat_uuid="someone-elses")
    first = tool.invoke(call("hello"), config)
    second = tool.invoke(call("again", "call-2"), config)

    assert [r.json["chatUuid"] for r in emulator.requests] == [
        None,
        first.artifact["chat_uuid"],
    ]
    assert second.artifact["chat_uuid"] == first.artifact["chat_uuid"]
    assert "someone-elses" not in emulator.conversations


def test_agent_chat_uuid_in_context_var_config_does_not_leak(
    tool: DevicAssistantTool, emulator: DevicEmulator
) -> None:
    """Called inside another runnable, the tool ignores that run's chat_uuid."""
    step = RunnableLambda(lambda text: tool.invoke(call(text)))
    result = step.invoke("inner", thread("t9", chat_uuid="someone-elses"))

    assert [r.json["chatUuid"] for r in emulator.requests] == [None]
    assert stored(tool, "t9") == [result.artifact["chat_uuid"]]


# ---------------------------------------------------------------------- stores


def test_shared_store_continues_across_tool_instances(
    emulator: DevicEmulator,
) -> None:
    """Two tool objects (say, two worker processes) sharing one store."""
    store = InMemoryStore()
    worker_a = make_tool(emulator, store=store)
    worker_b = make_tool(emulator, store=store)

    first = worker_a.invoke(call("start"), thread("t1"))
    second = worker_b.invoke(call("continue", "call-2"), thread("t1"))

    chat = first.artifact["chat_uuid"]
    assert [r.chat_uuid for r in sends(emulator)] == [None, chat]
    assert second.artifact["chat_uuid"] == chat
    assert second.content == f"Reply 2 from {ASSISTANT}: continue"
    assert store.mget([key("t1")]) == [value(chat)]


def test_separate_default_stores_do_not_share(emulator: DevicEmulator) -> None:
    worker_a = make_tool(emulator)
    worker_b = make_tool(emulator)
    worker_a.invoke(call("start"), thread("t1"))
    worker_b.invoke(call("start elsewhere"), thread("t1"))
    assert sent_chat_ids(emulator) == [None, None]


class DictStore(BaseStore[str, bytes]):
    """A minimal custom store, standing in for Redis or SQL."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.reads: list[str] = []
        self.writes: list[tuple[str, bytes]] = []

    def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        self.reads.extend(keys)
        return [self.data.get(key) for key in keys]

    def mset(self, key_value_pairs: Sequence[tuple[str, bytes]]) -> None:
        self.writes.extend(key_value_pairs)
        self.data.update(key_value_pairs)

    def mdelete(self, keys: Sequence[str]) -> None:
        for key in keys:
            self.data.pop(key, None)

    def yield_keys(self, *, prefix: str | None = None) -> Iterator[str]:
        for key in list(self.data):
            if prefix is None or key.startswith(prefix):
                yield key


def test_custom_base_store(emulator: DevicEmulator) -> None:
    store = DictStore()
    tool = make_tool(emulator, store=store)

    first = tool.invoke(call("start"), thread("t1"))
    tool.invoke(call("continue", "call-2"), thread("t1"))

    chat = first.artifact["chat_uuid"]
    assert [r.chat_uuid for r in sends(emulator)] == [None, chat]
    assert store.data == {key("t1"): value(chat)}
    assert store.reads == [key("t1"), key("t1")]
    # A shared store gets each turn's in-flight intent before the send (this
    # emulator answers the send at once: no run to confirm), then the bare
    # item when the turn ends.
    assert [json.loads(v).get("pending") is None for _, v in store.writes] == [
        False,
        True,
    ] * 2
    assert store.writes[1::2] == [(key("t1"), value(chat))] * 2
    # A second instance over the same custom store continues the chat too.
    other = make_tool(emulator, store=store)
    third = other.invoke(call("third", "call-3"), thread("t1"))
    assert third.content == f"Reply 3 from {ASSISTANT}: third"


def test_two_assistants_sharing_a_store_keep_their_own_chats(
    emulator: DevicEmulator,
) -> None:
    store = InMemoryStore()
    billing = make_tool(emulator, store=store, model="billing")
    research = make_tool(emulator, store=store, model="research")

    b1 = billing.invoke(call("invoice 7"), thread("t1"))
    r1 = research.invoke(call("market size"), thread("t1"))
    b2 = billing.invoke(call("and invoice 8"), thread("t1"))
    r2 = research.invoke(call("and growth"), thread("t1"))

    assert [(r.assistant_id, r.chat_uuid) for r in sends(emulator)] == [
        ("billing", None),
        ("research", None),
        ("billing", b1.artifact["chat_uuid"]),
        ("research", r1.artifact["chat_uuid"]),
    ]
    assert b2.artifact["restarted"] is False
    assert r2.content == "Reply 2 from research: and growth"


async def test_custom_base_store_async(emulator: DevicEmulator) -> None:
    store = DictStore()
    tool = make_tool(emulator, store=store)
    first = await tool.ainvoke(call("start"), thread("t1"))
    await tool.ainvoke(call("continue", "call-2"), thread("t1"))
    chat = first.artifact["chat_uuid"]
    assert [r.chat_uuid for r in sends(emulator)] == [None, chat]
    assert store.data == {key("t1"): value(chat)}


# ------------------------------------------------------------- vanished chat


def test_vanished_chat_restarts_once(
    tool: DevicAssistantTool,
    emulator: DevicEmulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    seed(tool, "t1", BOGUS_CHAT)

    with caplog.at_level(logging.WARNING, logger="langchain_devic"):
        result = tool.invoke(call("are you there?"), thread("t1"))

    assert [(r.chat_uuid, r.status) for r in emulator.requests] == [
        (BOGUS_CHAT, 404),
        (None, 200),
    ]
    new_chat = result.artifact["chat_uuid"]
    assert new_chat != BOGUS_CHAT
    assert new_chat in emulator.conversations
    assert result.status == "success"
    assert result.content == f"Reply 1 from {ASSISTANT}: are you there?"
    assert result.artifact["restarted"] is True
    assert stored(tool, "t1") == [new_chat]
    warnings = [
        r
        for r in caplog.records
        if r.name == "langchain_devic" and r.levelno == logging.WARNING
    ]
    assert len(warnings) == 1
    assert BOGUS_CHAT in warnings[0].getMessage()
    assert "starting a new conversation" in warnings[0].getMessage()

    # The next call continues the new chat, and is no longer a restart.
    after = tool.invoke(call("still here", "call-2"), thread("t1"))
    assert emulator.requests[-1].chat_uuid == new_chat
    assert after.artifact["restarted"] is False


async def test_vanished_chat_restarts_once_async(
    tool: DevicAssistantTool,
    emulator: DevicEmulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    seed(tool, "t1", BOGUS_CHAT)
    with caplog.at_level(logging.WARNING, logger="langchain_devic"):
        result = await tool.ainvoke(call("are you there?"), thread("t1"))
    assert [(r.chat_uuid, r.status) for r in emulator.requests] == [
        (BOGUS_CHAT, 404),
        (None, 200),
    ]
    assert result.artifact["restarted"] is True
    assert stored(tool, "t1") == [result.artifact["chat_uuid"]]
    assert any(BOGUS_CHAT in r.getMessage() for r in caplog.records)


def test_unknown_assistant_with_stored_chat_restarts_once_then_raises() -> None:
    """The rule reads no error code (Devic's codes are undocumented): a 404 while
    continuing a stored chat restarts once; the restart's 404 is raised."""
    emulator = DevicEmulator(api_key=API_KEY, assistants=["known"], random_seed=1)
    tool = make_tool(emulator, model="unknown")
    seed(tool, "t1", BOGUS_CHAT)

    with pytest.raises(DevicNotFoundError) as raised:
        tool.invoke(call("hello"), thread("t1"))

    assert raised.value.status_code == 404
    assert [(r.chat_uuid, r.status) for r in emulator.requests] == [
        (BOGUS_CHAT, 404),
        (None, 404),
    ]
    assert emulator.conversations == {}
    assert stored(tool, "t1") == [BOGUS_CHAT]


def _chat_not_found() -> Fault:
    body = {"success": False, "error": {"message": "gone", "code": "CHAT_NOT_FOUND"}}
    return Fault.status(404, body=body)


def test_second_404_raises(tool: DevicAssistantTool, emulator: DevicEmulator) -> None:
    """The fresh attempt 404s too: raised, not restarted again."""
    seed(tool, "t1", BOGUS_CHAT)
    emulator.inject(_chat_not_found(), _chat_not_found())

    with pytest.raises(DevicNotFoundError) as raised:
        tool.invoke(call("hello"), thread("t1"))

    assert raised.value.status_code == 404
    assert [(r.chat_uuid, r.status) for r in emulator.requests] == [
        (BOGUS_CHAT, 404),
        (None, 404),
    ]
    assert emulator.conversations == {}


def test_unknown_assistant_without_stored_chat_raises_at_once() -> None:
    emulator = DevicEmulator(api_key=API_KEY, assistants=["known"], random_seed=1)
    tool = make_tool(emulator, model="unknown")
    with pytest.raises(DevicNotFoundError):
        tool.invoke(call("hello"), thread("t1"))
    assert [(r.chat_uuid, r.status) for r in emulator.requests] == [(None, 404)]
    assert stored(tool, "t1") == [None]


async def test_second_404_raises_async(
    tool: DevicAssistantTool, emulator: DevicEmulator
) -> None:
    seed(tool, "t1", BOGUS_CHAT)
    emulator.inject(_chat_not_found(), _chat_not_found())
    with pytest.raises(DevicNotFoundError):
        await tool.ainvoke(call("hello"), thread("t1"))
    assert [(r.chat_uuid, r.status) for r in emulator.requests] == [
        (BOGUS_CHAT, 404),
        (None, 404),
    ]


# ---------------------------------------------------------------- error policy


def test_rate_limit_after_retries_is_an_error_tool_message(
    tool: DevicAssistantTool, emulator: DevicEmulator
) -> None:
    emulator.inject(Fault.status(429, retry_after=3600))

    result = tool.invoke(call("busy?"), thread("t1"))

    assert isinstance(result, ToolMessage)
    assert result.status == "error"
    assert result.tool_call_id == "call-1"
    assert "429" in result.content
    assert "Rate limit exceeded" in result.content
    assert API_KEY not in result.content
    # A wait of an hour is not slept through: one request, raised at once.
    assert [r.status for r in emulator.requests] == [429]
    assert stored(tool, "t1") == [None]


def test_rate_limit_retried_then_answered(
    tool: DevicAssistantTool, emulator: DevicEmulator
) -> None:
    emulator.inject(Fault.status(429, retry_after=0))
    result = tool.invoke(call("busy?"), thread("t1"))
    assert result.status == "success"
    assert [r.status for r in emulator.requests] == [429, 200]


@pytest.mark.parametrize(
    ("status", "words"),
    [(500, "Internal Server Error"), (400, "Bad Request"), (503, "503")],
)
def test_actionable_errors_are_error_tool_messages(
    tool: DevicAssistantTool, emulator: DevicEmulator, status: int, words: str
) -> None:
    # 503 is retried (max_retries=2): three answers, all 503.
    emulator.inject(*[Fault.status(status, retry_after=0)] * 3)

    result = tool.invoke(call("try"), thread("t1"))

    assert result.status == "error"
    assert str(status) in result.content
    assert words in result.content
    assert result.content.startswith("The Devic assistant could not answer:")
    assert API_KEY not in result.content
    assert emulator.requests[0].status == status


def test_error_message_never_shows_the_token(
    tool: DevicAssistantTool, emulator: DevicEmulator
) -> None:
    """Even when the server echoes the token back in its error body."""
    echo = {"success": False, "error": {"message": f"bad {API_KEY}", "code": "X"}}
    emulator.inject(Fault.status(400, body=echo))

    result = tool.invoke(call("try"), thread("t1"))

    assert result.status == "error"
    assert "400" in result.content
    assert API_KEY not in result.content


def test_wrong_api_key_raises(emulator: DevicEmulator) -> None:
    tool = make_tool(emulator, api_key="wrong-key")
    with pytest.raises(DevicAuthenticationError) as raised:
        tool.invoke(call("hello"), thread("t1"))
    assert raised.value.status_code == 401
    assert [r.status for r in emulator.requests] == [401]
    assert "wrong-key" not in str(raised.value)


def test_forbidden_raises(tool: DevicAssistantTool, emulator: DevicEmulator) -> None:
    emulator.inject(Fault.status(403))
    with pytest.raises(DevicPermissionDeniedError) as raised:
        tool.invoke(call("hello"), thread("t1"))
    assert raised.value.status_code == 403
    assert API_KEY not in str(raised.value)


async def test_wrong_api_key_raises_async(emulator: DevicEmulator) -> None:
    tool = make_tool(emulator, api_key="wrong-key")
    with pytest.raises(DevicAuthenticationError):
        await tool.ainvoke(call("hello"), thread("t1"))


# ---------------------------------------------------------------------- usage


def test_usage_reaches_get_usage_metadata_callback(
    tool: DevicAssistantTool, emulator: DevicEmulator
) -> None:
    with get_usage_metadata_callback() as callback:
        first = tool.invoke(call("first"), thread("t1"))
        second = tool.invoke(call("second, longer question", "call-2"), thread("t1"))

    billed = first.artifact["tokens_used"] + second.artifact["tokens_used"]
    assert first.artifact["tokens_used"] > 0
    assert second.artifact["tokens_used"] > first.artifact["tokens_used"]
    assert set(callback.usage_metadata) == {ASSISTANT}
    assert callback.usage_metadata[ASSISTANT]["total_tokens"] == billed


class RunRecorder(BaseCallbackHandler):
    """Records tool runs and the chat-model runs under them."""

    def __init__(self) -> None:
        self.tool_runs: list[UUID] = []
        self.model_parents: list[UUID | None] = []
        self.model_tags: list[list[str]] = []

    def on_tool_start(
        self, serialized: dict[str, Any], input_str: str, *, run_id: UUID, **kw: Any
    ) -> None:
        self.tool_runs.append(run_id)

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        **kw: Any,
    ) -> None:
        self.model_parents.append(parent_run_id)
        self.model_tags.append(list(tags or []))


def test_devic_call_is_a_child_run_of_the_tool(tool: DevicAssistantTool) -> None:
    recorder = RunRecorder()
    config: RunnableConfig = {
        "configurable": {"thread_id": "t1"},
        "callbacks": [recorder],
        "tags": ["agent-tag"],
    }
    tool.invoke(call("hello"), config)
    assert len(recorder.tool_runs) == 1
    assert recorder.model_parents == [recorder.tool_runs[0]]
    assert "agent-tag" in recorder.model_tags[0]


async def test_devic_call_is_a_child_run_of_the_tool_async(
    tool: DevicAssistantTool,
) -> None:
    recorder = RunRecorder()
    config: RunnableConfig = {
        "configurable": {"thread_id": "t1"},
        "callbacks": [recorder],
    }
    await tool.ainvoke(call("hello"), config)
    assert len(recorder.tool_runs) == 1
    assert recorder.model_parents == [recorder.tool_runs[0]]


# ---------------------------------------------------------------------- async


async def test_ainvoke_continues_one_chat_per_thread(
    tool: DevicAssistantTool, emulator: DevicEmulator
) -> None:
    first = await tool.ainvoke(call("first"), thread("t1"))
    second = await tool.ainvoke(call("second", "call-2"), thread("t1"))
    other = await tool.ainvoke(call("other"), thread("t2"))

    chat = first.artifact["chat_uuid"]
    assert sent_chat_ids(emulator) == [None, chat, None]
    assert second.artifact["chat_uuid"] == chat
    assert second.content == f"Reply 2 from {ASSISTANT}: second"
    assert other.artifact["chat_uuid"] not in (None, chat)


async def test_ainvoke_new_conversation(
    tool: DevicAssistantTool, emulator: DevicEmulator
) -> None:
    await tool.ainvoke(call("old"), thread("t1"))
    fresh = await tool.ainvoke(call("new", new_conversation=True), thread("t1"))
    await tool.ainvoke(call("more"), thread("t1"))
    assert sent_chat_ids(emulator) == [None, None, fresh.artifact["chat_uuid"]]


async def test_ainvoke_error_is_an_error_tool_message(
    tool: DevicAssistantTool, emulator: DevicEmulator
) -> None:
    emulator.inject(Fault.status(500))
    result = await tool.ainvoke(call("try"), thread("t1"))
    assert isinstance(result, ToolMessage)
    assert result.status == "error"
    assert "500" in result.content
    assert API_KEY not in result.content
    assert [r.status for r in emulator.requests] == [500]


async def test_ainvoke_rate_limit_is_an_error_tool_message(
    tool: DevicAssistantTool, emulator: DevicEmulator
) -> None:
    emulator.inject(Fault.status(429, retry_after=3600))
    result = await tool.ainvoke(call("try"), thread("t1"))
    assert result.status == "error"
    assert "429" in result.content
    assert [r.status for r in emulator.requests] == [429]


# ---------------------------------------------------------------- construction


def test_chat_model_and_fields_are_exclusive(emulator: DevicEmulator) -> None:
    with pytest.raises(ValueError, match="not both") as raised:
        DevicAssistantTool(
            name=TOOL_NAME,
            description="d",
            chat_model=make_model(emulator),
            assistant_id="other",
        )
    assert isinstance(raised.value, ValidationError)
    assert "assistant_id" in str(raised.value)


def test_builds_its_chat_model_from_fields(emulator: DevicEmulator) -> None:
    tool = DevicAssistantTool(
        name=TOOL_NAME,
        description="d",
        assistant_id="built",
        api_key=API_KEY,
        base_url=BASE_URL,
        max_retries=0,
        http_client=make_model(emulator).http_client,
    )
    assert isinstance(tool.chat_model, ChatDevic)
    assert tool.chat_model.assistant_id == "built"
    assert tool.chat_model.max_retries == 0
    assert tool.chat_model.api_key.get_secret_value() == API_KEY
    result = tool.invoke(call("hi"))
    assert result.content == "Reply 1 from built: hi"
    assert emulator.requests[0].assistant_id == "built"


def test_builds_its_chat_model_from_env() -> None:
    env = {"DEVIC_API_KEY": "env-key", "DEVIC_ASSISTANT_ID": "env-assistant"}
    with mock.patch.dict(os.environ, env):
        tool = DevicAssistantTool(name=TOOL_NAME, description="d")
    assert tool.chat_model.assistant_id == "env-assistant"
    assert tool.chat_model.api_key.get_secret_value() == "env-key"


def test_api_key_not_in_repr() -> None:
    tool = DevicAssistantTool(
        name=TOOL_NAME, description="d", assistant_id="a", api_key=API_KEY
    )
    assert API_KEY not in repr(tool)
    assert API_KEY not in str(tool)
    assert API_KEY not in repr(tool.chat_model)


def test_api_key_not_in_validation_error() -> None:
    with pytest.raises(ValidationError) as raised:
        DevicAssistantTool(
            name=TOOL_NAME, description="d", assistant_id="..", api_key=API_KEY
        )
    assert API_KEY not in str(raised.value)


def test_args_schema(tool: DevicAssistantTool) -> None:
    assert tool.args_schema is DevicAssistantInput
    schema = tool.tool_call_schema.model_json_schema()
    assert set(schema["properties"]) == {"message", "new_conversation"}
    assert schema["required"] == ["message"]
    assert schema["properties"]["message"]["type"] == "string"
    assert schema["properties"]["new_conversation"]["type"] == "boolean"
    assert schema["properties"]["new_conversation"]["default"] is False
    assert DevicAssistantInput(message="x").new_conversation is False
    assert tool.response_format == "content_and_artifact"
    assert tool.name == TOOL_NAME
    assert schema["description"] == "Researches a topic and reports back."


def test_empty_message_is_refused_before_any_request(
    tool: DevicAssistantTool, emulator: DevicEmulator
) -> None:
    with pytest.raises(ValidationError):
        tool.invoke(call(""), thread("t1"))
    assert emulator.requests == []


# ------------------------------------------------- parallel calls, one thread


async def test_parallel_calls_in_one_thread_share_one_chat(
    tool: DevicAssistantTool, emulator: DevicEmulator
) -> None:
    """Two tool calls of one agent turn run one after the other in one chat."""
    emulator.latency = 0.02
    first, second = await asyncio.gather(
        tool.ainvoke(call("part one", "call-1"), thread("t1")),
        tool.ainvoke(call("part two", "call-2"), thread("t1")),
    )
    chat = first.artifact["chat_uuid"]
    assert second.artifact["chat_uuid"] == chat
    assert [(r.chat_uuid, r.status) for r in emulator.requests] == [
        (None, 200),
        (chat, 200),
    ]
    assert len(PROCESS_LOCKS) == 0  # locks are dropped once idle


def test_parallel_calls_in_one_thread_share_one_chat_sync(
    tool: DevicAssistantTool, emulator: DevicEmulator
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    emulator.latency = 0.02
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(
            pool.map(
                lambda i: tool.invoke(call(f"part {i}", f"call-{i}"), thread("t1")),
                range(2),
            )
        )
    chats = {r.artifact["chat_uuid"] for r in results}
    assert len(chats) == 1
    (chat,) = chats
    assert [(r.chat_uuid, r.status) for r in emulator.requests] == [
        (None, 200),
        (chat, 200),
    ]
    assert len(PROCESS_LOCKS) == 0
