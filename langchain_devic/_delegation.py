"""What a delegated turn is, and the rules the tool's calls share (pure).

`thread_key` names an agent thread's Devic conversation; `Turn` is one
delegated turn's outcome; `ended_badly` says when a run error ended a turn
(its in-flight mark is then cleared); `RAISED` lists what a person must fix.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.runnables import RunnableConfig, ensure_config

from langchain_devic import _runs
from langchain_devic._stores import DevicStoreError, ThreadStore
from langchain_devic.errors import (
    FATAL_ERRORS,
    DevicError,
    DevicLockError,
    DevicRunError,
)

#: Raised to the caller (a person must fix them, or the graph must be resumed
#: once the database is back); every other Devic error becomes an error
#: ToolMessage the agent can read.
RAISED: tuple[type[DevicError], ...] = (*FATAL_ERRORS, DevicStoreError, DevicLockError)


def call_id_of(runtime: Any) -> str | None:
    """The tool call id LangGraph's `ToolNode` passed in `runtime`, if any."""
    call_id = getattr(runtime, "tool_call_id", None)
    return call_id if isinstance(call_id, str) and call_id else None


def chat_in_state(runtime: Any, assistant_id: str) -> str | None:
    """The chat of this assistant's latest tool reply in the graph's messages.

    `runtime` is the `ToolRuntime` LangGraph's `ToolNode` (and so
    `create_agent`) injects; its `state` holds the thread's messages, restored
    from the checkpoint. The latest `ToolMessage` whose artifact names this
    assistant gives the chat the thread continues.
    """
    state = getattr(runtime, "state", None)
    if isinstance(state, Mapping):
        messages = state.get("messages")
    else:
        messages = getattr(state, "messages", state)
    if not isinstance(messages, list | tuple):
        return None
    for message in reversed(messages):
        artifact = getattr(message, "artifact", None)
        if (
            isinstance(message, ToolMessage)
            and isinstance(artifact, Mapping)
            and artifact.get("assistant_id") == assistant_id
            and isinstance(artifact.get("chat_uuid"), str)
        ):
            chat: str = artifact["chat_uuid"]
            return chat
    return None


def ended_badly(error: DevicError) -> bool:
    """Whether a run error ended the turn (it failed, hit a limit, or waits)."""
    if isinstance(error, DevicRunError):
        return error.status in _runs.ENDED_BADLY
    return getattr(error, "code", None) == "TENANT_LIMIT_EXCEEDED"


def thread_key(config: RunnableConfig | None) -> str | None:
    """The conversation key of an agent thread, or `None` outside any thread.

    It is `thread_id` plus the parent checkpoint namespace with task ids removed
    (`"research:9f2…|tools:4c1…"` → `"research"`), so every tool call of one
    thread, at one level of the graph, shares one Devic conversation.
    """
    configurable = ensure_config(config).get("configurable") or {}
    thread_id = configurable.get("thread_id")
    if thread_id is None or thread_id == "":
        return None
    namespace = str(configurable.get("checkpoint_ns") or "")
    parents = [segment.split(":", 1)[0] for segment in namespace.split("|")[:-1]]
    return f"{thread_id}|{'|'.join(parents)}"


@dataclass
class Record:
    """One call's hold on its thread's record: where, under which lock.

    `chat` is the chat the store holds (as read, then as written: the value a
    write that changes it is compared against); `sent` whether this call has
    sent its turn (said by a lost lock's error).
    """

    store: ThreadStore
    key: str
    held: Any
    chat: str | None
    sent: bool = False

    def losable(self, method: str) -> bool:
        """Whether the lock held can be lost (it has a `check` / `acheck`)."""
        return callable(getattr(self.held, method, None))

    def lost_note(self) -> str:
        if self.sent:
            return (
                "The turn was sent to Devic; this call wrote nothing more. Call "
                "again with the same message (resume the graph): the turn is "
                "settled by reading Devic, never sent twice."
            )
        return "Nothing was sent to Devic; call again."

    def changed_note(self, current: str | None, chat: str | None) -> str:
        return (
            f"The thread's chat changed under this call (read {self.chat!r}, now "
            f"{current!r}; this call would write {chat!r}): another worker "
            f"holds the thread, so its lock was lost. Not written. {self.lost_note()}"
        )


def sent_since(created_at: Any, since: str, slack: float = 300.0) -> bool:
    """Whether a chat created at `created_at` may hold a send made at `since`.

    Both ISO 8601; `slack` seconds allow for clocks that differ. Unknown
    times count as possible.
    """
    try:
        created = datetime.fromisoformat(str(created_at).replace("Z", "+00:00"))
        start = datetime.fromisoformat(since.replace("Z", "+00:00"))
    except ValueError:
        return True
    if created.tzinfo is None:
        created = created.replace(tzinfo=timezone.utc)
    if start.tzinfo is None:
        start = start.replace(tzinfo=timezone.utc)
    return created >= start - timedelta(seconds=slack)


@dataclass(frozen=True)
class Turn:
    """One delegated turn: the reply, and how it was had."""

    reply: AIMessage
    restarted: bool = False
    recovered: bool = False
