"""Where `DevicAssistantTool` keeps each thread's chat: items, keys and stores.

One item per (assistant, agent thread): `{"chat_uuid": …}`, plus, while a
platform turn of that thread is in flight, `"pending": {"digest": <sha256 of the
message>, "sent_at": <ISO 8601>, "call_id", "confirmed"}` (the in-flight mark
that keeps a resumed call from sending the same turn twice: written as an
intent before the send, confirmed with the chat once Devic took the turn),
and `"answered"`: the last few tool calls answered on this thread (`call_id`,
message digest, the reply and its artifact), so a tool call LangGraph runs
again (its result was never checkpointed) gets the same reply, unsent.

Two kinds of store hold it, behind one `ThreadStore` face:

- a LangGraph `BaseStore` (`PostgresStore`, LangGraph's `InMemoryStore`, …):
  namespace `("langchain_devic", <assistant id>)` (a `.` in the id is written
  `%2E`, since LangGraph refuses dots in namespace labels), key = the thread
  key, value = the item as a dict;
- a langchain_core key-value `BaseStore` (`InMemoryStore`, `InMemoryByteStore`,
  `LocalFileStore`, `RedisStore`, `SQLStore`, …): key
  `langchain_devic/<assistant id as UTF-8 hex>/<sha256 of the thread key>`
  (only `A-Z a-z 0-9 . _ / -`, which every such store accepts), value the item
  as UTF-8 JSON bytes; `bytes`, `str` and `dict` values are read back.

Nothing here imports LangGraph: a LangGraph store is recognized only if its
module is already loaded (it must be, for the object to exist).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import sys
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

from langchain_core.runnables import RunnableConfig
from langchain_core.stores import BaseStore as KeyValueStore

from langchain_devic.errors import DevicStoreError

__all__ = [
    "ANSWERED_KEPT",
    "NAMESPACE",
    "Answer",
    "DevicStoreError",
    "Pending",
    "ThreadItem",
    "ThreadStore",
    "adapt_store",
    "graph_store",
    "is_store",
    "key_value_key",
    "message_digest",
]

logger = logging.getLogger("langchain_devic")

#: The first namespace label (LangGraph stores) and key segment (key-value ones).
NAMESPACE = "langchain_devic"
#: Where a running LangGraph graph keeps its runtime (and store) in the config.
_RUNTIME_KEY = "__pregel_runtime"
_LEGACY_STORE_KEY = "__pregel_store"


#: How many answered tool calls a thread's item keeps (the newest).
ANSWERED_KEPT = 8


@dataclass(frozen=True)
class Pending:
    """The in-flight mark: which message, when, by which tool call.

    `confirmed` is false for an intent (written before the send: Devic may or
    may not have the turn) and true once Devic took the turn up (the item's
    chat then holds it). Marks written before intents existed read as
    confirmed.
    """

    digest: str
    sent_at: str
    call_id: str | None = None
    confirmed: bool = True


@dataclass(frozen=True)
class Answer:
    """A tool call answered on this thread: its reply, kept for a re-run."""

    call_id: str
    digest: str
    content: str
    artifact: dict[str, Any]


@dataclass(frozen=True)
class ThreadItem:
    """What the store holds for one thread: its chat, maybe the mark, answers."""

    chat_uuid: str | None
    pending: Pending | None = None
    answered: tuple[Answer, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The item as stored (the mark only while a turn is in flight)."""
        item: dict[str, Any] = {"chat_uuid": self.chat_uuid}
        if self.pending is not None:
            item["pending"] = {
                "digest": self.pending.digest,
                "sent_at": self.pending.sent_at,
                "call_id": self.pending.call_id,
                "confirmed": self.pending.confirmed,
            }
        if self.answered:
            item["answered"] = [
                {
                    "call_id": a.call_id,
                    "digest": a.digest,
                    "content": a.content,
                    "artifact": a.artifact,
                }
                for a in self.answered
            ]
        return item

    def answer_for(self, call_id: str | None, digest: str) -> Answer | None:
        """The kept answer of this tool call id and message, if any."""
        if call_id is None:
            return None
        for answer in reversed(self.answered):
            if answer.call_id == call_id and answer.digest == digest:
                return answer
        return None

    def with_answer(self, answer: Answer | None) -> tuple[Answer, ...]:
        """The answers to keep once `answer` is added (the newest few)."""
        if answer is None:
            return self.answered
        kept = [a for a in self.answered if a.call_id != answer.call_id]
        return (*kept, answer)[-ANSWERED_KEPT:]

    @classmethod
    def parse(cls, value: Any) -> ThreadItem:
        """Read a stored value: a dict, or its UTF-8 JSON as `bytes` or `str`.

        Raises:
            ValueError: If the value is not an item.
        """
        if isinstance(value, bytes | bytearray | memoryview):
            value = bytes(value).decode("utf-8")
        if isinstance(value, str):
            value = json.loads(value)
        if not isinstance(value, Mapping):
            msg = f"expected an object, got {type(value).__name__}"
            raise ValueError(msg)
        chat = value.get("chat_uuid")
        if chat is not None and not isinstance(chat, str):
            msg = "chat_uuid is not a string"
            raise ValueError(msg)
        mark = value.get("pending")
        pending = None
        if isinstance(mark, Mapping) and isinstance(mark.get("digest"), str):
            call_id = mark.get("call_id")
            pending = Pending(
                mark["digest"],
                str(mark.get("sent_at") or ""),
                call_id if isinstance(call_id, str) else None,
                mark.get("confirmed", True) is not False,
            )
        answered: list[Answer] = []
        for entry in value.get("answered") or ():
            if (
                isinstance(entry, Mapping)
                and isinstance(entry.get("call_id"), str)
                and isinstance(entry.get("digest"), str)
                and isinstance(entry.get("content"), str)
                and isinstance(entry.get("artifact"), Mapping)
            ):
                answered.append(
                    Answer(
                        entry["call_id"],
                        entry["digest"],
                        entry["content"],
                        dict(entry["artifact"]),
                    )
                )
        return cls(chat, pending, tuple(answered[-ANSWERED_KEPT:]))


def message_digest(message: str) -> str:
    """The mark's digest of a message: its SHA-256, hex."""
    return hashlib.sha256(message.encode("utf-8")).hexdigest()


def now_iso() -> str:
    """The current UTC time, ISO 8601 with milliseconds."""
    now = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    return now.replace("+00:00", "Z")


def key_value_key(assistant_id: str, thread: str) -> str:
    """A thread's key in a key-value store: only `A-Z a-z 0-9 . _ / -`."""
    thread_hash = hashlib.sha256(thread.encode("utf-8")).hexdigest()
    return f"{NAMESPACE}/{assistant_id.encode('utf-8').hex()}/{thread_hash}"


def graph_namespace(assistant_id: str) -> tuple[str, str]:
    """A thread's namespace in a LangGraph store (no `.` in any label)."""
    return NAMESPACE, quote(assistant_id, safe="").replace(".", "%2E")


def _graph_store_class() -> type[Any] | None:
    module = sys.modules.get("langgraph.store.base")
    return getattr(module, "BaseStore", None)


def is_store(value: Any) -> bool:
    """Whether `value` is a store the tool can use (either kind)."""
    graph_class = _graph_store_class()
    return isinstance(value, KeyValueStore) or (
        graph_class is not None and isinstance(value, graph_class)
    )


def graph_store(config: RunnableConfig) -> Any | None:
    """The store of the LangGraph graph running this call, if it has one.

    Read from the call's config (where LangGraph puts its runtime), else from
    `langgraph.config.get_store()` (which needs Python 3.11 in async code).
    """
    configurable = config.get("configurable") or {}
    store = getattr(configurable.get(_RUNTIME_KEY), "store", None)
    if store is None:
        store = configurable.get(_LEGACY_STORE_KEY)
    if store is None and "langgraph.config" in sys.modules:
        try:
            store = sys.modules["langgraph.config"].get_store()
        except Exception:  # outside a graph, or a graph without a store
            store = None
    return store if store is not None and is_store(store) else None


class ThreadStore:
    """One face over both kinds of store; `shared` says whether others see it.

    Reads that fail raise `DevicStoreError` (nothing was sent yet); a value that
    is not an item is logged and taken as no item (the thread starts a new
    chat rather than stay blocked).
    """

    def __init__(self, store: Any, *, shared: bool) -> None:
        self.store = store
        self.shared = shared

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({type(self.store).__name__}, shared={self.shared})"
        )

    # unasync: twin
    async def aget(self, assistant_id: str, thread: str) -> ThreadItem | None:
        """The thread's item, or `None`."""
        await self._averify()
        try:
            raw = await self._aread(assistant_id, thread)
        except Exception as exc:
            raise self._failed("read", exc) from exc
        return self._item(raw, assistant_id, thread)

    async def _averify(self) -> None:
        """Check, once per store object, that it reads back what it wrote."""

    async def aput(self, assistant_id: str, thread: str, item: ThreadItem) -> None:
        """Store the thread's item (`DevicStoreError` if the store fails)."""
        try:
            await self._awrite(assistant_id, thread, item.to_dict())
        except Exception as exc:
            raise self._failed("write", exc) from exc

    async def _aread(self, assistant_id: str, thread: str) -> Any:
        raise NotImplementedError

    async def _awrite(
        self, assistant_id: str, thread: str, item: dict[str, Any]
    ) -> None:
        raise NotImplementedError

    # unasync: twin-end
    # unasync: generated (the block above, made sync: do not edit)
    def get(self, assistant_id: str, thread: str) -> ThreadItem | None:
        """The thread's item, or `None`."""
        self._verify()
        try:
            raw = self._read(assistant_id, thread)
        except Exception as exc:
            raise self._failed("read", exc) from exc
        return self._item(raw, assistant_id, thread)

    def _verify(self) -> None:
        """Check, once per store object, that it reads back what it wrote."""

    def put(self, assistant_id: str, thread: str, item: ThreadItem) -> None:
        """Store the thread's item (`DevicStoreError` if the store fails)."""
        try:
            self._write(assistant_id, thread, item.to_dict())
        except Exception as exc:
            raise self._failed("write", exc) from exc

    def _read(self, assistant_id: str, thread: str) -> Any:
        raise NotImplementedError

    def _write(self, assistant_id: str, thread: str, item: dict[str, Any]) -> None:
        raise NotImplementedError

    # unasync: generated-end

    # ---------------------------------------------------------------- helpers

    def _item(self, raw: Any, assistant_id: str, thread: str) -> ThreadItem | None:
        if raw is None:
            return None
        try:
            return ThreadItem.parse(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            logger.warning(
                "Ignoring an unreadable item for thread %r of assistant %r in %s "
                "(%s); the thread starts a new conversation.",
                thread,
                assistant_id,
                type(self.store).__name__,
                exc,
            )
            return None

    def _failed(self, what: str, exc: Exception) -> DevicStoreError:
        return DevicStoreError(
            f"Could not {what} the thread's chat in {type(self.store).__name__}: "
            f"{type(exc).__name__}: {exc}. Check that the store is reachable and "
            "accepts string keys and bytes values."
        )


class _KeyValueThreadStore(ThreadStore):
    """A langchain_core key-value store: JSON bytes under a plain-ASCII key."""

    # unasync: twin
    async def _aread(self, assistant_id: str, thread: str) -> Any:
        return (await self.store.amget([key_value_key(assistant_id, thread)]))[0]

    async def _awrite(
        self, assistant_id: str, thread: str, item: dict[str, Any]
    ) -> None:
        await self.store.amset(
            [(key_value_key(assistant_id, thread), _json_bytes(item))]
        )

    # unasync: twin-end
    # unasync: generated (the block above, made sync: do not edit)
    def _read(self, assistant_id: str, thread: str) -> Any:
        return (self.store.mget([key_value_key(assistant_id, thread)]))[0]

    def _write(self, assistant_id: str, thread: str, item: dict[str, Any]) -> None:
        self.store.mset([(key_value_key(assistant_id, thread), _json_bytes(item))])

    # unasync: generated-end


#: LangGraph stores that read back what they wrote (checked once each).
_VERIFIED: weakref.WeakSet[Any] = weakref.WeakSet()
#: Where the check writes: a namespace no thread uses.
_PROBE_NAMESPACE = (NAMESPACE, "_probe")
_PROBE_KEY = "probe|"
_PROBE_VALUE = {"chat_uuid": "probe"}


class _GraphThreadStore(ThreadStore):
    """A LangGraph store: the item as a dict under the raw thread key.

    A store that is not in memory is checked on first use: an item written is
    read back (a PostgreSQL database in `SQL_ASCII` answers keys as bytes and
    finds nothing, so every thread would silently start a new chat).
    """

    def _needs_check(self) -> bool:
        module = type(self.store).__module__
        if module.startswith("langgraph.store.memory"):
            return False
        try:
            return self.store not in _VERIFIED
        except TypeError:  # not weakly referenceable: checked every time
            return True

    def _checked(self, found: Any) -> None:
        ok = (
            found is not None
            and found.key == _PROBE_KEY
            and tuple(found.namespace) == _PROBE_NAMESPACE
            and found.value == _PROBE_VALUE
        )
        if not ok:
            raise self._unreadable(f"read back {found!r}")
        with contextlib.suppress(TypeError):
            _VERIFIED.add(self.store)

    def _unreadable(self, what: str) -> DevicStoreError:
        return DevicStoreError(
            f"{type(self.store).__name__} does not read back what it writes "
            f"(wrote {_PROBE_VALUE!r} under {_PROBE_KEY!r}, {what}); every thread "
            "would start a new Devic chat. A PostgreSQL database must use the UTF-8 "
            "encoding (SQL_ASCII returns keys as bytes): create it with "
            "ENCODING 'UTF8' (e.g. CREATE DATABASE ... ENCODING 'UTF8' TEMPLATE "
            "template0) and point the store at it."
        )

    # unasync: twin
    async def _averify(self) -> None:
        if not self._needs_check():
            return
        try:
            await self.store.aput(
                _PROBE_NAMESPACE, _PROBE_KEY, _PROBE_VALUE, index=False
            )
            found = await self.store.aget(_PROBE_NAMESPACE, _PROBE_KEY)
        except Exception as exc:
            raise self._failed("read", exc) from exc
        self._checked(found)

    async def _aread(self, assistant_id: str, thread: str) -> Any:
        found = await self.store.aget(graph_namespace(assistant_id), thread)
        return None if found is None else found.value

    async def _awrite(
        self, assistant_id: str, thread: str, item: dict[str, Any]
    ) -> None:
        await self.store.aput(graph_namespace(assistant_id), thread, item, index=False)

    # unasync: twin-end
    # unasync: generated (the block above, made sync: do not edit)
    def _verify(self) -> None:
        if not self._needs_check():
            return
        try:
            self.store.put(_PROBE_NAMESPACE, _PROBE_KEY, _PROBE_VALUE, index=False)
            found = self.store.get(_PROBE_NAMESPACE, _PROBE_KEY)
        except Exception as exc:
            raise self._failed("read", exc) from exc
        self._checked(found)

    def _read(self, assistant_id: str, thread: str) -> Any:
        found = self.store.get(graph_namespace(assistant_id), thread)
        return None if found is None else found.value

    def _write(self, assistant_id: str, thread: str, item: dict[str, Any]) -> None:
        self.store.put(graph_namespace(assistant_id), thread, item, index=False)

    # unasync: generated-end


def _json_bytes(item: Mapping[str, Any]) -> bytes:
    return json.dumps(item, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def adapt_store(store: Any, *, shared: bool) -> ThreadStore:
    """The `ThreadStore` face of a LangGraph or key-value store.

    Raises:
        TypeError: If `store` is neither.
    """
    graph_class = _graph_store_class()
    if graph_class is not None and isinstance(store, graph_class):
        return _GraphThreadStore(store, shared=shared)
    if isinstance(store, KeyValueStore):
        return _KeyValueThreadStore(store, shared=shared)
    msg = (
        "store must be a langchain_core key-value BaseStore (InMemoryStore, "
        "InMemoryByteStore, LocalFileStore, RedisStore, SQLStore, ...) or a "
        "LangGraph BaseStore (PostgresStore, langgraph's InMemoryStore, ...); got "
        f"{type(store).__name__}."
    )
    raise TypeError(msg)
