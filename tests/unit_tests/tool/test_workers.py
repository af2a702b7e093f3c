"""DevicAssistantTool beyond one call at a time: stores, locks, in-flight marks.

In-process, no sockets: the emulator's transport (flat for the store adapters,
the platform dialect for crash-safe delegation). The PostgreSQL side (real
worker processes, advisory locks) is in tests/postgres.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from langchain_core.callbacks import BaseCallbackHandler, get_usage_metadata_callback
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.stores import BaseStore, InMemoryByteStore, InMemoryStore
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore as GraphMemoryStore
from pydantic import ValidationError

from langchain_devic import ChatDevic, DevicAssistantTool
from langchain_devic._locks import PROCESS_LOCKS, HandoffLock, LockTable
from langchain_devic._stores import (
    DevicStoreError,
    ThreadItem,
    adapt_store,
    graph_namespace,
    key_value_key,
    message_digest,
)
from langchain_devic.locks import (
    ConversationLock,
    DevicLockTimeoutError,
    InProcessLock,
    PostgresAdvisoryLock,
    advisory_key,
)
from langchain_devic.testing import DevicEmulator, Fail, Write
from tests.unit_tests.conftest import API_KEY, ASSISTANT, BASE_URL, make_model
from tests.unit_tests.tool.test_tools import call

TOOL_NAME = "research_assistant"
KEY_CHARS = re.compile(r"^[A-Za-z0-9._/-]+$")
#: A slow turn: written in 12 pieces, 0.03 s apart (the emulator's own clock).
SLOW_PIECES, SLOW_INTERVAL = 12, 0.03


def reply(conversation: Any) -> Any:
    """Echo the message; a message containing "slow" takes a while to write."""
    text = f"Reply {conversation.turn}: {conversation.message}"
    if "slow" in conversation.message:
        return [Write(text, pieces=SLOW_PIECES, interval=SLOW_INTERVAL)]
    if "fail" in conversation.message:
        return [Fail("the assistant tripped")]
    return text


@pytest.fixture
def platform() -> DevicEmulator:
    return DevicEmulator(
        api_key=API_KEY,
        dialect="platform",
        random_seed=3,
        assistants={ASSISTANT: reply},
    )


@pytest.fixture
def flat() -> DevicEmulator:
    return DevicEmulator(api_key=API_KEY, random_seed=2)


def make_tool(emulator: DevicEmulator, **fields: Any) -> DevicAssistantTool:
    overrides = {
        k: fields.pop(k)
        for k in list(fields)
        if k in {"run_timeout", "max_retries", "run_mode", "model"}
    }
    model = make_model(
        emulator, poll_interval=0.01, max_poll_interval=0.05, **overrides
    )
    return DevicAssistantTool(
        name=TOOL_NAME, description="Researches.", chat_model=model, **fields
    )


def thread(thread_id: str) -> RunnableConfig:
    return {"configurable": {"thread_id": thread_id}}


def sends(emulator: DevicEmulator) -> list[Any]:
    return [r for r in emulator.requests if r.route == "messages"]


def thread_item(store: Any, thread_id: str, assistant: str = ASSISTANT) -> Any:
    return adapt_store(store, shared=True).get(assistant, f"{thread_id}|")


def start_run(emulator: DevicEmulator, message: str, chat: str | None = None) -> str:
    """Another client's platform run (as a crashed worker left it): its chat."""
    with httpx.Client(transport=emulator.transport(), base_url=BASE_URL) as client:
        response = client.post(
            f"/assistants/{ASSISTANT}/messages",
            params={"async": "true"},
            json={"message": message, "chatUuid": chat},
            headers={"Authorization": f"Bearer {API_KEY}"},
        )
    assert response.status_code == 201, response.text
    chat_uuid: str = response.json()["chatUid"]
    return chat_uuid


def mark(store: Any, thread_id: str, chat: str, message: str) -> None:
    """The in-flight mark a worker leaves right after Devic accepted `message`."""
    pending = {"digest": message_digest(message), "sent_at": "2026-01-01T00:00:00Z"}
    value = json.dumps({"chat_uuid": chat, "pending": pending}).encode()
    store.mset([(key_value_key(ASSISTANT, f"{thread_id}|"), value)])


class RecordingStore(InMemoryByteStore):
    """A byte store that remembers every item written, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.items: list[dict[str, Any]] = []

    def mset(self, key_value_pairs: Sequence[tuple[str, bytes]]) -> None:
        self.items.extend(json.loads(v) for _, v in key_value_pairs)
        super().mset(key_value_pairs)

    async def amset(self, key_value_pairs: Sequence[tuple[str, bytes]]) -> None:
        self.mset(key_value_pairs)


# ------------------------------------------------------------------ key rules


@pytest.mark.parametrize(
    ("assistant", "thread_key"),
    [
        (ASSISTANT, "t1|"),
        ("billing.v2", "user 42|research|writer"),
        ("ünïcode/assistant", "🧵 thread|"),
        ("a", "../../etc/passwd|"),
    ],
)
def test_key_value_keys_use_only_safe_characters(
    assistant: str, thread_key: str
) -> None:
    key = key_value_key(assistant, thread_key)
    assert KEY_CHARS.match(key), key
    root, assistant_hex, thread_hash = key.split("/")
    assert root == "langchain_devic"
    assert bytes.fromhex(assistant_hex).decode() == assistant
    assert re.fullmatch(r"[0-9a-f]{64}", thread_hash)


def test_key_value_keys_differ_per_assistant_and_thread() -> None:
    keys = {
        key_value_key(a, t) for a in ("a", "b", "a.b") for t in ("t1|", "t2|", "t1|x")
    }
    assert len(keys) == 9


def test_graph_namespace_has_no_dots() -> None:
    assert graph_namespace("support") == ("langchain_devic", "support")
    assert graph_namespace("billing.v2") == ("langchain_devic", "billing%2Ev2")
    assert graph_namespace("a/b") == ("langchain_devic", "a%2Fb")


def test_thread_item_round_trips_and_reads_every_value_shape() -> None:
    item = ThreadItem("chat-1")
    assert item.to_dict() == {"chat_uuid": "chat-1"}
    as_json = json.dumps(item.to_dict())
    for value in (
        as_json,
        as_json.encode(),
        item.to_dict(),
        bytearray(as_json, "utf-8"),
    ):
        assert ThreadItem.parse(value) == item
    with pytest.raises(ValueError, match="object"):
        ThreadItem.parse(b"[1, 2]")
    with pytest.raises(ValueError, match="chat_uuid"):
        ThreadItem.parse({"chat_uuid": 7})


# ------------------------------------------------------------- store adapters


def run_two_turns(emulator: DevicEmulator, store: Any) -> tuple[str, list[Any]]:
    tool = make_tool(emulator, store=store)
    first = tool.invoke(call("first"), thread("t1"))
    second = tool.invoke(call("second", "call-2"), thread("t1"))
    chat = first.artifact["chat_uuid"]
    assert second.artifact["chat_uuid"] == chat
    assert second.content == f"Reply 2 from {ASSISTANT}: second"
    return chat, [r.chat_uuid for r in sends(emulator)]


class FileStore(BaseStore[str, bytes]):
    """LangChain's LocalFileStore (now in langchain-classic), reduced to its rules.

    It refuses any key outside `^[a-zA-Z0-9_.\\-/]+$` (the issue saw `|`
    refused) and writes each value to the file named by its key.
    """

    KEY = re.compile(r"^[a-zA-Z0-9_.\-/]+$")

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        if not self.KEY.match(key):
            raise ValueError(f"Invalid characters in key: {key}")
        return self.root / key

    def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        paths = [self._path(k) for k in keys]
        return [p.read_bytes() if p.exists() else None for p in paths]

    def mset(self, key_value_pairs: Sequence[tuple[str, bytes]]) -> None:
        for key, value in key_value_pairs:
            path = self._path(key)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(value)

    def mdelete(self, keys: Sequence[str]) -> None:
        for key in keys:
            self._path(key).unlink(missing_ok=True)

    def yield_keys(self, *, prefix: str | None = None) -> Iterator[str]:
        for path in self.root.rglob("*"):
            if path.is_file():
                yield path.relative_to(self.root).as_posix()


def test_local_file_store_keeps_the_chat(flat: DevicEmulator, tmp_path: Path) -> None:
    """LocalFileStore refuses `|` in keys; the tool's keys are plain paths."""
    store = FileStore(tmp_path)
    with pytest.raises(ValueError, match="Invalid characters"):
        store.mset([("assistant|t1|", b"{}")])
    chat, sent = run_two_turns(flat, store)
    assert sent == [None, chat]
    (path,) = (p for p in tmp_path.rglob("*") if p.is_file())
    assert path.relative_to(tmp_path).as_posix() == key_value_key(ASSISTANT, "t1|")
    assert json.loads(path.read_bytes()) == {"chat_uuid": chat}


def test_in_memory_byte_store_gets_utf8_json_bytes(flat: DevicEmulator) -> None:
    store = InMemoryByteStore()
    chat, sent = run_two_turns(flat, store)
    assert sent == [None, chat]
    assert store.mget([key_value_key(ASSISTANT, "t1|")]) == [
        json.dumps({"chat_uuid": chat}, separators=(",", ":")).encode()
    ]


class TextStore(BaseStore[str, Any]):
    """Like a Redis client with decode_responses=True: values come back as str."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}

    def mget(self, keys: Sequence[str]) -> list[Any]:
        return [self.data.get(k) for k in keys]

    def mset(self, key_value_pairs: Sequence[tuple[str, Any]]) -> None:
        for key, value in key_value_pairs:
            self.data[key] = value.decode() if isinstance(value, bytes) else value

    def mdelete(self, keys: Sequence[str]) -> None:
        for key in keys:
            self.data.pop(key, None)

    def yield_keys(self, *, prefix: str | None = None) -> Iterator[str]:
        yield from (k for k in list(self.data) if k.startswith(prefix or ""))


def test_a_store_that_answers_str_values(flat: DevicEmulator) -> None:
    store = TextStore()
    chat, sent = run_two_turns(flat, store)
    assert sent == [None, chat]
    assert json.loads(store.data[key_value_key(ASSISTANT, "t1|")]) == {
        "chat_uuid": chat
    }


def test_a_store_holding_dicts_is_read_back(flat: DevicEmulator) -> None:
    store = InMemoryStore()
    tool = make_tool(flat, store=store)
    first = tool.invoke(call("first"), thread("t1"))
    chat = first.artifact["chat_uuid"]
    store.mset([(key_value_key(ASSISTANT, "t1|"), {"chat_uuid": chat})])
    tool.invoke(call("second", "call-2"), thread("t1"))
    assert [r.chat_uuid for r in sends(flat)] == [None, chat]


def test_langgraph_store_namespace_key_and_value(flat: DevicEmulator) -> None:
    store = GraphMemoryStore()
    tool = make_tool(flat, store=store, model="billing.v2")
    first = tool.invoke(call("first"), thread("t1"))
    tool.invoke(call("second", "call-2"), thread("t1"))
    chat = first.artifact["chat_uuid"]
    assert [r.chat_uuid for r in sends(flat)] == [None, chat]
    (found,) = store.search(("langchain_devic",))
    assert found.namespace == ("langchain_devic", "billing%2Ev2")
    assert found.key == "t1|"
    assert found.value == {"chat_uuid": chat}
    assert tool.get_chat_uuid(thread("t1")) == chat


async def test_langgraph_store_async(flat: DevicEmulator) -> None:
    store = GraphMemoryStore()
    tool = make_tool(flat, store=store)
    first = await tool.ainvoke(call("first"), thread("t1"))
    await tool.ainvoke(call("second", "call-2"), thread("t1"))
    chat = first.artifact["chat_uuid"]
    assert [r.chat_uuid for r in sends(flat)] == [None, chat]
    assert await tool.aget_chat_uuid(thread("t1")) == chat


def test_an_unreadable_item_is_logged_and_a_new_chat_starts(
    flat: DevicEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    store = InMemoryByteStore()
    store.mset([(key_value_key(ASSISTANT, "t1|"), b"\xff not json")])
    tool = make_tool(flat, store=store)
    with caplog.at_level(logging.WARNING, logger="langchain_devic"):
        result = tool.invoke(call("hello"), thread("t1"))
    assert result.status == "success"
    assert [r.chat_uuid for r in sends(flat)] == [None]
    assert any("unreadable item" in r.getMessage() for r in caplog.records)
    assert thread_item(store, "t1") == ThreadItem(result.artifact["chat_uuid"])


class BrokenStore(InMemoryByteStore):
    """A store whose reads and/or writes fail, like a database that went away."""

    def __init__(self, *, reads: bool = False, writes: bool = False) -> None:
        super().__init__()
        self.fail_reads, self.fail_writes = reads, writes

    def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        if self.fail_reads:
            raise ConnectionError("store is down")
        return super().mget(keys)

    def mset(self, key_value_pairs: Sequence[tuple[str, bytes]]) -> None:
        if self.fail_writes:
            raise ConnectionError("store is read-only now")
        super().mset(key_value_pairs)


def test_a_store_that_cannot_be_read_raises_before_anything_is_sent(
    flat: DevicEmulator,
) -> None:
    tool = make_tool(flat, store=BrokenStore(reads=True))
    with pytest.raises(DevicStoreError, match="Could not read") as raised:
        tool.invoke(call("hello"), thread("t1"))
    assert "store is down" in str(raised.value)
    assert raised.value.is_retryable
    assert flat.requests == []


@pytest.mark.parametrize("dialect", ["flat", "platform"])
def test_a_store_that_cannot_be_written_keeps_the_reply(
    dialect: str, caplog: pytest.LogCaptureFixture
) -> None:
    emulator = DevicEmulator(api_key=API_KEY, dialect=dialect, random_seed=1)  # type: ignore[arg-type]
    tool = make_tool(emulator, store=BrokenStore(writes=True))
    with caplog.at_level(logging.ERROR, logger="langchain_devic"):
        result = tool.invoke(call("hello"), thread("t1"))
    assert result.status == "success"
    assert result.content.endswith("hello")
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors
    assert all("Could not write" in e for e in errors)
    assert [r.message for r in sends(emulator)] == ["hello"]


def test_store_must_be_a_store() -> None:
    with pytest.raises(ValidationError, match="store must be"):
        DevicAssistantTool(
            name="t", description="d", assistant_id="a", api_key="k", store={}
        )
    with pytest.raises(ValidationError, match="lock must have"):
        DevicAssistantTool(
            name="t", description="d", assistant_id="a", api_key="k", lock=object()
        )
    tool = DevicAssistantTool(
        name="t", description="d", assistant_id="a", api_key="k", store=None
    )
    assert isinstance(tool.store, InMemoryStore)
    assert "store" not in tool.model_fields_set  # None means the default
    assert isinstance(tool.lock, InProcessLock)


def test_langgraph_and_psycopg_stay_optional_at_import() -> None:
    code = (
        "import sys, langchain_devic.tools, langchain_devic.locks; "
        "print(sorted(m for m in ('langgraph', 'psycopg', 'psycopg_pool') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "[]"


# ------------------------------------------------------------ the graph's store


def planner_agent(tool: DevicAssistantTool, store: Any) -> Any:
    from langchain.agents import create_agent

    from tests.unit_tests.tool.test_agent import ScriptedPlanner

    return create_agent(
        ScriptedPlanner(), [tool], checkpointer=InMemorySaver(), store=store
    )


def test_without_a_store_the_tool_uses_the_graphs_store(flat: DevicEmulator) -> None:
    store = GraphMemoryStore()
    tool = make_tool(flat)  # no store of its own
    agent = planner_agent(tool, store)
    config = thread("t1")
    agent.invoke({"messages": [HumanMessage("tides")]}, config)
    agent.invoke({"messages": [HumanMessage("spring tides")]}, config)
    (item,) = store.search(("langchain_devic", ASSISTANT))
    assert item.key == "t1|"
    chat = item.value["chat_uuid"]
    assert [r.chat_uuid for r in sends(flat)] == [None, chat]
    assert list(tool.store.yield_keys()) == []  # its own store stayed empty
    assert tool.get_chat_uuid(thread("t1")) is None  # outside the graph: its own


async def test_the_graphs_store_async(flat: DevicEmulator) -> None:
    store = GraphMemoryStore()
    agent = planner_agent(make_tool(flat), store)
    await agent.ainvoke({"messages": [HumanMessage("tides")]}, thread("a1"))
    await agent.ainvoke({"messages": [HumanMessage("more")]}, thread("a1"))
    (item,) = store.search(("langchain_devic", ASSISTANT))
    assert [r.chat_uuid for r in sends(flat)] == [None, item.value["chat_uuid"]]


def test_an_explicit_store_wins_over_the_graphs(flat: DevicEmulator) -> None:
    graph_store, own = GraphMemoryStore(), InMemoryByteStore()
    agent = planner_agent(make_tool(flat, store=own), graph_store)
    agent.invoke({"messages": [HumanMessage("tides")]}, thread("t1"))
    assert graph_store.search(("langchain_devic",)) == []
    assert thread_item(own, "t1") is not None


# --------------------------------------------------------------- lock sharing


def overlapping(*calls: Any) -> list[Any]:
    """Run the callables at once, each in its own thread; their results."""
    results: list[Any] = [None] * len(calls)
    barrier = threading.Barrier(len(calls))

    def run(index: int) -> None:
        barrier.wait(timeout=5)
        results[index] = calls[index]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
        assert not t.is_alive(), "hang guard"
    return results


def test_two_tool_instances_share_the_process_lock(flat: DevicEmulator) -> None:
    flat.latency = 0.05
    store = InMemoryStore()
    a, b = make_tool(flat, store=store), make_tool(flat, store=store)
    results = overlapping(
        lambda: a.invoke(call("from a"), thread("t1")),
        lambda: b.invoke(call("from b"), thread("t1")),
    )
    chats = {r.artifact["chat_uuid"] for r in results}
    assert len(chats) == 1
    assert sorted(r.chat_uuid is None for r in sends(flat)) == [False, True]
    assert [r.status for r in sends(flat)] == [200, 200]
    assert len(PROCESS_LOCKS) == 0


def test_a_sync_and_an_async_call_share_the_lock(flat: DevicEmulator) -> None:
    flat.latency = 0.05
    store = InMemoryStore()
    tool = make_tool(flat, store=store)
    results = overlapping(
        lambda: tool.invoke(call("sync"), thread("t1")),
        lambda: asyncio.run(tool.ainvoke(call("async"), thread("t1"))),
    )
    assert len({r.artifact["chat_uuid"] for r in results}) == 1
    assert sorted(r.chat_uuid is None for r in sends(flat)) == [False, True]


def test_two_event_loops_share_the_lock(flat: DevicEmulator) -> None:
    flat.latency = 0.05
    tool = make_tool(flat)  # even the default store: one process, one lock
    results = overlapping(
        *[
            lambda i=i: asyncio.run(tool.ainvoke(call(f"loop {i}"), thread("t1")))
            for i in range(3)
        ]
    )
    assert len({r.artifact["chat_uuid"] for r in results}) == 1
    assert [r.chat_uuid is None for r in sends(flat)] == [True, False, False]


async def test_an_async_waiter_never_blocks_its_loop() -> None:
    lock = InProcessLock(timeout=5)
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with lock.hold("a", "t"):
            held.set()
            release.wait(5)

    thread_ = threading.Thread(target=holder)
    thread_.start()
    assert held.wait(5)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while not release.is_set():
            ticks += 1
            if ticks == 20:
                release.set()
            await asyncio.sleep(0.001)

    async def waiter() -> str:
        async with lock.ahold("a", "t"):
            return "got it"

    got, _ = await asyncio.wait_for(asyncio.gather(waiter(), ticker()), 10)
    thread_.join(5)
    assert got == "got it"
    assert ticks >= 20  # the loop ran while the waiter waited


def test_the_lock_times_out_with_a_typed_error() -> None:
    lock = InProcessLock(timeout=0.05)
    with lock.hold("a", "t"):
        result: list[BaseException] = []

        def other() -> None:
            try:
                with lock.hold("a", "t"):
                    pass
            except DevicLockTimeoutError as exc:
                result.append(exc)

        t = threading.Thread(target=other)
        t.start()
        t.join(5)
    (error,) = result
    assert error.is_retryable
    assert "Nothing was sent" in str(error)
    assert len(PROCESS_LOCKS) == 0


async def test_the_lock_times_out_async() -> None:
    lock = InProcessLock(timeout=0.05)
    async with lock.ahold("a", "t"):
        with pytest.raises(DevicLockTimeoutError):
            async with lock.ahold("a", "t"):
                pass
    async with lock.ahold("a", "t"):  # and it is free again
        pass
    assert len(PROCESS_LOCKS) == 0


def test_a_lock_timeout_is_an_error_tool_message(flat: DevicEmulator) -> None:
    tool = make_tool(flat, lock=InProcessLock(timeout=0.01))
    with InProcessLock().hold(ASSISTANT, "t1|"):
        result = overlapping(lambda: tool.invoke(call("hello"), thread("t1")))[0]
    assert isinstance(result, ToolMessage)
    assert result.status == "error"
    assert "could not be taken" in result.content
    assert flat.requests == []


def test_a_custom_lock_is_used(flat: DevicEmulator) -> None:
    held: list[tuple[str, str]] = []

    class Recording(InProcessLock):
        def hold(self, scope: str, key: str) -> Any:
            held.append((scope, key))
            return super().hold(scope, key)

    tool = make_tool(flat, lock=Recording())
    tool.invoke(call("hello"), thread("t1"))
    tool.invoke(call("no thread"))  # nothing to lock without a thread
    assert held == [(ASSISTANT, "t1|")]
    assert isinstance(Recording(), ConversationLock)


# ----------------------------------------------------------- HandoffLock


def test_handoff_lock_serves_threads_and_tasks_in_arrival_order() -> None:
    lock = HandoffLock()
    order: list[str] = []
    assert lock.acquire()
    queued = threading.Event()

    def thread_waiter() -> None:
        assert lock.acquire(5)
        order.append("thread")
        lock.release()

    async def task_waiter() -> None:
        queued.set()
        assert await lock.aacquire(5)
        order.append("task")
        lock.release()

    loop_thread = threading.Thread(target=lambda: asyncio.run(task_waiter()))
    loop_thread.start()
    assert queued.wait(5)
    while not lock._queue:  # the task is queued first
        threading.Event().wait(0.001)
    waiter = threading.Thread(target=thread_waiter)
    waiter.start()
    while len(lock._queue) < 2:
        threading.Event().wait(0.001)
    lock.release()
    loop_thread.join(5)
    waiter.join(5)
    assert order == ["task", "thread"]
    assert not lock.locked


async def test_a_cancelled_waiter_passes_the_lock_on() -> None:
    lock = HandoffLock()
    assert lock.acquire()
    first = asyncio.ensure_future(lock.aacquire())
    second = asyncio.ensure_future(lock.aacquire(5))
    await asyncio.sleep(0.01)
    lock.release()  # granted to `first` ...
    first.cancel()  # ... which is cancelled before it runs: it passes it on
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await second
    lock.release()
    assert not lock.locked


def test_a_waiter_of_a_closed_loop_is_skipped() -> None:
    lock = HandoffLock()
    assert lock.acquire()
    loop = asyncio.new_event_loop()
    task = loop.create_task(lock.aacquire())
    loop.run_until_complete(asyncio.sleep(0.01))  # the task is queued
    task.cancel()
    loop.run_until_complete(asyncio.sleep(0))  # ... and leaves the queue
    loop.close()
    lock.release()
    assert not lock.locked
    assert lock.acquire(0)


def test_timed_out_thread_waiter_leaves_the_queue() -> None:
    table = LockTable()
    errors: list[BaseException] = []

    def wait() -> None:
        try:
            with table.hold("k", 0.01):
                pass
        except TimeoutError as exc:
            errors.append(exc)

    with table.hold("k"):
        overlapping(wait)
    assert [type(e) for e in errors] == [TimeoutError]
    assert len(table) == 0


def test_advisory_keys_are_stable_signed_64_bit_numbers() -> None:
    # Pinned: every process, machine and Python version must agree on it.
    assert advisory_key("a", "t") == -2572191820951819296
    assert advisory_key("a", "t") != advisory_key("t", "a")
    for scope, key in [("x", ""), ("billing", "t1|research"), ("é", "🧵")]:
        number = advisory_key(scope, key)
        assert -(2**63) <= number < 2**63


def test_postgres_lock_hides_its_connection_string() -> None:
    lock = PostgresAdvisoryLock("postgresql://devic:s3cret-pw@db.internal/app")
    assert "s3cret" not in repr(lock)
    assert isinstance(lock, ConversationLock)
    with pytest.raises(TypeError, match="connection string or a psycopg"):
        PostgresAdvisoryLock(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout"):
        PostgresAdvisoryLock("postgresql://x", timeout=-1)


# ------------------------------------------------ crash-safe delegation


def test_a_platform_turn_marks_then_clears(platform: DevicEmulator) -> None:
    store = RecordingStore()
    tool = make_tool(platform, store=store)
    first = tool.invoke(call("first"), thread("t1"))
    second = tool.invoke(call("second", "call-2"), thread("t1"))
    chat = first.artifact["chat_uuid"]
    assert first.content == "Reply 1: first"
    assert second.content == "Reply 2: second"
    assert second.artifact["chat_uuid"] == chat
    digest, second_digest = message_digest("first"), message_digest("second")
    # Per turn: the intent (before the send), confirmed with the chat once
    # Devic took it, then the turn's end without a mark.
    assert [
        (
            item.get("pending", {}).get("digest"),
            item.get("pending", {}).get("confirmed"),
        )
        for item in store.items
    ] == [
        (digest, False),
        (digest, True),
        (None, None),
        (second_digest, False),
        (second_digest, True),
        (None, None),
    ]
    assert [item["chat_uuid"] for item in store.items] == [None] + [chat] * 5
    assert [(r.query, r.chat_uuid) for r in sends(platform)] == [
        ("async=true", None),
        ("async=true", chat),
    ]
    assert "recovered" not in second.artifact


async def test_a_platform_turn_marks_then_clears_async(platform: DevicEmulator) -> None:
    store = RecordingStore()
    tool = make_tool(platform, store=store)
    first = await tool.ainvoke(call("first"), thread("t1"))
    await tool.ainvoke(call("second", "call-2"), thread("t1"))
    assert [item.get("pending") is None for item in store.items] == [
        False,
        False,
        True,
        False,
        False,
        True,
    ]
    assert [r.chat_uuid for r in sends(platform)] == [
        None,
        first.artifact["chat_uuid"],
    ]


@pytest.mark.parametrize("still_running", [True, False])
def test_a_resumed_call_recovers_the_turn_without_sending(
    platform: DevicEmulator, still_running: bool
) -> None:
    """A worker died after Devic accepted the message: the next call of the
    same message follows the run (or reads the chat) and never sends again."""
    message = "slow question" if still_running else "quick question"
    chat = start_run(platform, message)
    if not still_running:
        platform.wait_idle()
    store = InMemoryByteStore()
    mark(store, "t1", chat, message)
    tool = make_tool(platform, store=store)

    result = tool.invoke(call(message), thread("t1"))

    assert result.status == "success"
    assert result.content == f"Reply 1: {message}"
    assert result.artifact["recovered"] is True
    assert result.artifact["chat_uuid"] == chat
    assert [r.message for r in sends(platform)] == [message]  # only the first send
    assert thread_item(store, "t1") == ThreadItem(chat)  # the mark is cleared


async def test_a_resumed_call_recovers_the_turn_async(platform: DevicEmulator) -> None:
    chat = start_run(platform, "slow question")
    store = InMemoryByteStore()
    mark(store, "t1", chat, "slow question")
    tool = make_tool(platform, store=store)
    result = await tool.ainvoke(call("slow question"), thread("t1"))
    assert result.artifact["recovered"] is True
    assert result.content == "Reply 1: slow question"
    assert len(sends(platform)) == 1
    assert thread_item(store, "t1") == ThreadItem(chat)


def test_an_interrupted_follow_keeps_the_mark_for_the_next_worker(
    platform: DevicEmulator,
) -> None:
    """Worker A gives up following (run_timeout); worker B, same message,
    picks the run up instead of posting the turn a second time."""
    store = InMemoryByteStore()
    impatient = make_tool(platform, store=store, run_timeout=0.05)
    patient = make_tool(platform, store=store)

    first = impatient.invoke(call("slow question"), thread("t1"))
    assert first.status == "error"
    assert "run_timeout" in first.content
    item = thread_item(store, "t1")
    assert item.pending is not None
    assert item.pending.digest == message_digest("slow question")

    second = patient.invoke(call("slow question"), thread("t1"))
    assert second.status == "success"
    assert second.artifact["recovered"] is True
    assert second.content == "Reply 1: slow question"
    assert [r.message for r in sends(platform)] == ["slow question"]
    assert thread_item(store, "t1").pending is None


@pytest.mark.parametrize("asynchronous", [False, True])
def test_another_message_waits_for_the_marked_run_then_sends(
    platform: DevicEmulator, asynchronous: bool
) -> None:
    chat = start_run(platform, "slow first")
    store = InMemoryByteStore()
    mark(store, "t1", chat, "slow first")
    tool = make_tool(platform, store=store, max_retries=0)

    if asynchronous:
        result = asyncio.run(tool.ainvoke(call("next"), thread("t1")))
    else:
        result = tool.invoke(call("next"), thread("t1"))

    assert result.status == "success"
    assert result.content == "Reply 2: next"
    assert result.artifact["chat_uuid"] == chat
    assert "recovered" not in result.artifact
    assert [(r.message, r.status) for r in sends(platform)] == [
        ("slow first", 201),
        ("next", 201),
    ]
    assert [m["content"] for m in platform.conversations[chat]] == [
        "slow first",
        "Reply 1: slow first",
        "next",
        "Reply 2: next",
    ]
    assert thread_item(store, "t1") == ThreadItem(chat)


@pytest.mark.parametrize("asynchronous", [False, True])
def test_a_busy_chat_without_a_mark_is_waited_out_not_lost(
    platform: DevicEmulator, asynchronous: bool
) -> None:
    """The chat runs a turn this tool did not start (no mark): the 409 is
    waited out, then the message is sent again (a 409 was not processed)."""
    chat = start_run(platform, "slow other")
    store = InMemoryByteStore()
    store.mset(
        [(key_value_key(ASSISTANT, "t1|"), b'{"chat_uuid":"%s"}' % chat.encode())]
    )
    tool = make_tool(platform, store=store, max_retries=0)

    if asynchronous:
        result = asyncio.run(tool.ainvoke(call("mine"), thread("t1")))
    else:
        result = tool.invoke(call("mine"), thread("t1"))

    assert result.status == "success"
    assert result.content == "Reply 2: mine"
    statuses = [(r.message, r.status) for r in sends(platform)]
    assert statuses[0] == ("slow other", 201)
    assert statuses[1] == ("mine", 409)
    assert statuses[-1] == ("mine", 201)
    assert {s for m, s in statuses if m == "mine"} == {409, 201}
    assert [m["content"] for m in platform.conversations[chat]][2:] == [
        "mine",
        "Reply 2: mine",
    ]


def test_a_failed_run_clears_the_mark(platform: DevicEmulator) -> None:
    store = InMemoryByteStore()
    tool = make_tool(platform, store=store)
    result = tool.invoke(call("please fail"), thread("t1"))
    assert result.status == "error"
    assert "the assistant tripped" in result.content
    item = thread_item(store, "t1")
    assert item.pending is None
    assert item.chat_uuid is not None
    again = tool.invoke(call("please fail"), thread("t1"))  # not "recovered"
    assert again.status == "error"
    assert [r.message for r in sends(platform)] == ["please fail", "please fail"]


def test_a_vanished_chat_restarts_on_the_platform_path(
    platform: DevicEmulator,
) -> None:
    store = InMemoryByteStore()
    bogus = "00000000-0000-4000-8000-000000000000"
    store.mset(
        [(key_value_key(ASSISTANT, "t1|"), b'{"chat_uuid":"%s"}' % bogus.encode())]
    )
    tool = make_tool(platform, store=store)
    result = tool.invoke(call("hello"), thread("t1"))
    assert result.artifact["restarted"] is True
    assert [(r.chat_uuid, r.status) for r in sends(platform)] == [
        (bogus, 404),
        (None, 201),
    ]
    assert thread_item(store, "t1") == ThreadItem(result.artifact["chat_uuid"])


def test_new_conversation_on_the_platform_path(platform: DevicEmulator) -> None:
    store = InMemoryByteStore()
    tool = make_tool(platform, store=store)
    old = tool.invoke(call("old"), thread("t1")).artifact["chat_uuid"]
    new = tool.invoke(call("new", new_conversation=True), thread("t1"))
    assert new.artifact["chat_uuid"] != old
    assert new.content == "Reply 1: new"
    assert thread_item(store, "t1") == ThreadItem(new.artifact["chat_uuid"])


def test_run_mode_sync_keeps_the_one_call(platform: DevicEmulator) -> None:
    store = RecordingStore()
    tool = make_tool(platform, store=store, run_mode="sync")
    tool.invoke(call("hello"), thread("t1"))
    assert [r.query for r in sends(platform)] == [""]
    assert all("pending" not in item for item in store.items)


class Recorder(BaseCallbackHandler):
    def __init__(self) -> None:
        self.models: list[Any] = []
        self.events: list[dict[str, Any]] = []

    def on_chat_model_start(self, serialized: Any, messages: Any, **kw: Any) -> None:
        self.models.append((messages, kw.get("parent_run_id")))

    def on_custom_event(self, name: str, data: Any, **kw: Any) -> None:
        assert name == "devic_progress"
        self.events.append(data)


def test_a_platform_turn_is_a_chat_model_child_run_with_usage(
    platform: DevicEmulator,
) -> None:
    tool = make_tool(platform, store=InMemoryByteStore())
    recorder = Recorder()
    config: RunnableConfig = {**thread("t1"), "callbacks": [recorder]}
    with get_usage_metadata_callback() as usage:
        first = tool.invoke(call("first"), config)
        second = tool.invoke(call("second", "call-2"), config)
    ((messages, parent), _) = recorder.models
    assert messages == [[HumanMessage("first")]]
    assert parent is not None
    assert first.artifact["tokens_used"] > 0
    assert second.artifact["tokens_used"] > 0
    billed = first.artifact["tokens_used"] + second.artifact["tokens_used"]
    assert usage.usage_metadata[ASSISTANT]["total_tokens"] == billed
    assert {e["status"] for e in recorder.events} >= {"completed"}
    assert {e["chat_uuid"] for e in recorder.events} == {first.artifact["chat_uuid"]}


def test_a_model_built_by_the_tool_works_on_the_platform_path(
    platform: DevicEmulator,
) -> None:
    tool = DevicAssistantTool(
        name=TOOL_NAME,
        description="d",
        assistant_id=ASSISTANT,
        api_key=API_KEY,
        base_url=BASE_URL,
        http_client=httpx.Client(transport=platform.transport()),
        store=InMemoryByteStore(),
    )
    assert isinstance(tool.chat_model, ChatDevic)
    assert tool.invoke(call("hi"), thread("t1")).content == "Reply 1: hi"


# ------------------------------------------------------------------ emulator


def test_latency_delays_turns_never_refusals(platform: DevicEmulator) -> None:
    """A busy chat's 409 answers at once, whatever latency is set or injected."""
    from langchain_devic.testing import Fault

    chat = start_run(platform, "slow busy")
    platform.latency = 30.0
    platform.inject(Fault.latency(60.0))
    headers = [
        ("Authorization", f"Bearer {API_KEY}"),
        ("Content-Type", "application/json"),
    ]
    path = f"/v1/assistants/{ASSISTANT}/messages?async=true"
    busy = json.dumps({"message": "again", "chatUuid": chat}).encode()
    refused = platform.begin("POST", path, headers, busy, face="transport")
    assert refused.delay == 0.0  # answered at once ...
    assert platform.queued_faults == ()  # ... although the fault was consumed
    fresh = json.dumps({"message": "new", "chatUuid": None}).encode()
    turn = platform.begin("POST", path, headers, fresh, face="transport")
    assert turn.delay == 30.0  # a turn waits
    turn.abandon()
    refused.abandon()


def test_a_marked_turn_whose_chat_vanished_restarts_in_a_new_chat(
    platform: DevicEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    bogus = "00000000-0000-4000-8000-000000000000"
    store = InMemoryByteStore()
    mark(store, "t1", bogus, "hello")
    tool = make_tool(platform, store=store)
    with caplog.at_level(logging.WARNING, logger="langchain_devic"):
        result = tool.invoke(call("hello"), thread("t1"))
    assert result.status == "success"
    assert result.artifact["restarted"] is True
    assert "recovered" not in result.artifact
    assert [(r.chat_uuid, r.status) for r in sends(platform)] == [(None, 201)]
    assert thread_item(store, "t1") == ThreadItem(result.artifact["chat_uuid"])
    assert any(bogus in r.getMessage() for r in caplog.records)
