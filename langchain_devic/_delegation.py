"""What a delegated turn is, and the rules the tool's calls share (pure).

`thread_key` names an agent thread's Devic conversation; `Turn` is one
delegated turn's outcome; `ended_badly` says when a run error ended a turn
(its in-flight mark is then cleared); `RAISED` lists what a person must fix.
"""

from __future__ import annotations

from dataclasses import dataclass

from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableConfig, ensure_config

from langchain_devic import _runs
from langchain_devic._stores import DevicStoreError
from langchain_devic.errors import FATAL_ERRORS, DevicError, DevicRunError

#: Raised to the caller (a person must fix them); every other Devic error
#: becomes an error ToolMessage the agent can read.
RAISED: tuple[type[DevicError], ...] = (*FATAL_ERRORS, DevicStoreError)


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


@dataclass(frozen=True)
class Turn:
    """One delegated turn: the reply, and how it was had."""

    reply: AIMessage
    restarted: bool = False
    recovered: bool = False
