"""DevicAgentTool: a graph hands a long task to a Devic agent, approvals included.

A Devic agent works through a task on its own, in a thread, for minutes or
hours; it may pause for a person's approval, hand off to sub-agents, and
reports tokens and cost. The tool starts one thread per tool call, exactly
once (its create carries the tag `langchain-call:<tool call id>`, and a call
made again, after a resume or a restart, finds the thread by that tag before
creating any), then follows it within `run_timeout` by polling, with
`devic_progress` custom events for each state change and each task done.

A thread that pauses for approval becomes a LangGraph `interrupt` inside a
graph: the payload is `{"type": "devic_approval", "thread_id", "agent_id",
"reason", "message"}`, and `Command(resume={"approved": bool, "message": str |
None})` (or a bare bool) is posted to Devic once, after which following goes
on. Outside a graph the tool raises `DevicApprovalRequired`; decide with
`ChatDevic.approve_thread` / `reject_thread` and call it again.

The other states: `completed` answers with the thread's last assistant
message; `approval_rejected` answers with a text saying so (the graph decided
it); `failed`, `terminated`, `guardrail_trigger` and `waiting_for_response`
raise `DevicRunError` (with `thread_id`, `state`, `finish_reason`,
`paused_reason`); `limit_exceeded` raises `DevicRateLimitError` with
`retry_after`. Cancelling the call (a cancelled task, Ctrl-C) leaves the thread
running on Devic and logs its id: the tool never pauses or completes a thread.
"""

from __future__ import annotations

import contextvars
import logging
import re
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from langchain_core.callbacks import adispatch_custom_event, dispatch_custom_event
from langchain_core.runnables import RunnableConfig, ensure_config
from pydantic import BaseModel, Field, PrivateAttr, model_validator

from langchain_devic import _wire
from langchain_devic._async_agents import (
    CALL_TAG,
    _AsyncAgentToolCalls,
    thread_id_of,
)
from langchain_devic._delegation import thread_key
from langchain_devic._devic_tool import DevicToolBase, with_chat_model
from langchain_devic._progress import PROGRESS_EVENT
from langchain_devic._sync_agents import _SyncAgentToolCalls
from langchain_devic.chat_models import ChatDevic
from langchain_devic.errors import (
    DevicApprovalRequired,
    DevicRateLimitError,
    DevicRunError,
)

__all__ = ["DevicAgentInput", "DevicAgentTool"]

logger = logging.getLogger("langchain_devic")

#: The tool call being run (set by `run` / `arun`, read by the calls).
_CALL_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "langchain_devic_agent_call", default=None
)
#: States that raise `DevicRunError`.
_RUN_ERRORS = frozenset(
    {"failed", "terminated", "guardrail_trigger", "waiting_for_response"}
)


class DevicAgentInput(BaseModel):
    """What a graph hands to a Devic agent."""

    task: str = Field(
        min_length=1,
        description="The task for the agent, in plain language, with every detail "
        "it needs: it does not see the rest of your conversation.",
    )


def tool_name(name: str, agent_id: str) -> str:
    """A tool name from an agent's name (`[a-z0-9_]`, at most 64 characters)."""
    slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    return (slug or f"devic_agent_{agent_id}")[:64]


def resume_decision(value: Any) -> tuple[bool, str | None]:
    """`(approved, message)` of a resume value: a bool, or `{"approved", "message"}`."""
    if isinstance(value, bool):
        return value, None
    if isinstance(value, Mapping) and isinstance(value.get("approved"), bool):
        message = value.get("message")
        return value["approved"], None if message is None else str(message)
    msg = (
        'Resume a Devic approval with {"approved": bool, "message": str | None} '
        f"or a bool; got {value!r}."
    )
    raise ValueError(msg)


def last_assistant_text(thread: Mapping[str, Any]) -> str:
    """The text of the thread's last assistant message ("" if none)."""
    for message in reversed(thread.get("threadContent") or []):
        if isinstance(message, Mapping) and message.get("role") == "assistant":
            text = _wire.message_text(message)
            if text:
                return text
    return ""


def _in_graph(config: RunnableConfig | None) -> bool:
    """Whether the call runs inside a LangGraph run (so it can interrupt)."""
    configurable = ensure_config(config).get("configurable") or {}
    return any(str(key).startswith("__pregel_") for key in configurable)


def _retry_after(thread: Mapping[str, Any]) -> float | None:
    """Seconds until a thread's limit resets (`pausedUntil` or `resetsAt`)."""
    limit = thread.get("limitExceeded")
    resets = thread.get("pausedUntil")
    if isinstance(limit, Mapping) and isinstance(limit.get("resetsAt"), (int, float)):
        resets = limit["resetsAt"]
    if isinstance(resets, (int, float)) and not isinstance(resets, bool):
        return max(resets / 1000 - time.time(), 0.0)
    return None


class _AgentToolCore(DevicToolBase):
    """The agent tool's fields, checks and what its two colours share."""

    args_schema: type[BaseModel] = DevicAgentInput
    response_format: Literal["content", "content_and_artifact"] = "content_and_artifact"

    agent_id: str
    """The Devic agent that runs the task (its `_id`)."""

    chat_model: ChatDevic
    """Where Devic is (key, base URL, timeouts, `run_timeout`, polling); built
    from ChatDevic's fields when not given."""

    thread_metadata: dict[str, Any] | None = None
    """`metadata` sent with each thread the tool starts."""

    _threads: dict[str, str] = PrivateAttr(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _build(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        agent_id = data.get("agent_id")
        if isinstance(agent_id, str):
            data.setdefault("name", tool_name(agent_id, agent_id))
            data.setdefault(
                "description",
                f"Hands a long task to the Devic agent '{agent_id}' and returns "
                "its answer.",
            )
        default = agent_id if isinstance(agent_id, str) else None
        return with_chat_model(data, default or "devic-agent")

    # ---------------------------------------------------------------- running

    def run(self, *args: Any, **kwargs: Any) -> Any:
        """Run the tool (the tool call's id is kept for the thread's tag)."""
        token = _CALL_ID.set(kwargs.get("tool_call_id"))
        try:
            return super().run(*args, **kwargs)
        finally:
            _CALL_ID.reset(token)

    async def arun(self, *args: Any, **kwargs: Any) -> Any:
        """Run the tool (the tool call's id is kept for the thread's tag)."""
        token = _CALL_ID.set(kwargs.get("tool_call_id"))
        try:
            return await super().arun(*args, **kwargs)
        finally:
            _CALL_ID.reset(token)

    def _tags(self, tool_call_id: str | None, config: Any) -> list[str]:
        call = tool_call_id or _CALL_ID.get()
        return [f"{CALL_TAG}{call}"] if call else []

    def _record_key(self, tool_call_id: str | None, config: Any) -> str | None:
        call = tool_call_id or _CALL_ID.get()
        key = thread_key(config) or ""
        if call:
            return f"{key}|call:{call}"
        return None

    def _remember(self, key: str | None, thread: Mapping[str, Any]) -> None:
        thread_id = thread_id_of(thread)
        if key is not None and thread_id is not None:
            self._threads[key] = thread_id

    def _forget(self, thread_id: str) -> None:
        for key in [k for k, v in self._threads.items() if v == thread_id]:
            del self._threads[key]

    def _decide(
        self, thread: Mapping[str, Any], config: Any, answered: int
    ) -> tuple[bool, str | None]:
        """The decision on an approval pause: a LangGraph interrupt, else raise."""
        thread_id = thread_id_of(thread) or ""
        reason = thread.get("pausedReason")
        reason = reason if isinstance(reason, str) else None
        if not _in_graph(config):
            raise DevicApprovalRequired(thread_id, reason)
        from langgraph.types import interrupt

        payload = {
            "type": "devic_approval",
            "thread_id": thread_id,
            "agent_id": self.agent_id,
            "reason": reason,
            "message": last_assistant_text(thread) or None,
        }
        changes = thread.get("threadStatesChanges") or []
        pauses = sum(
            1
            for c in changes
            if isinstance(c, Mapping) and c.get("state") == "paused_for_approval"
        )
        # Earlier pauses of this thread were answered by earlier resumes of this
        # node: LangGraph replays their values in order, so ask for them first.
        for _ in range(answered, max(pauses - 1, 0)):
            interrupt(payload)
        return resume_decision(interrupt(payload))

    @staticmethod
    def _log_decision(thread_id: str, approved: bool) -> None:
        verdict = "approved" if approved else "rejected"
        logger.info("Devic agent thread %s: approval %s.", thread_id, verdict)

    def _outcome(self, thread: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """The tool's answer for a thread that ended, or the error it raises."""
        thread_id = thread_id_of(thread) or ""
        state = str(thread.get("state"))
        self._forget(thread_id)
        finish = thread.get("finishReason")
        paused = thread.get("pausedReason")
        if state in _RUN_ERRORS:
            what = (
                "waits for a response this tool cannot give"
                if state == "waiting_for_response"
                else f"ended in {state}"
            )
            because = finish or paused
            msg = f"Devic agent thread {thread_id} {what}" + (
                f": {because}" if because else "."
            )
            error = DevicRunError(msg, chat_uuid=thread_id, status=state)
            error.thread_id = thread_id  # type: ignore[attr-defined]
            error.state = state  # type: ignore[attr-defined]
            error.finish_reason = finish  # type: ignore[attr-defined]
            error.paused_reason = paused  # type: ignore[attr-defined]
            raise error
        if state == "limit_exceeded":
            msg = f"Devic agent thread {thread_id} hit a usage limit" + (
                f": {finish}" if finish else "."
            )
            raise DevicRateLimitError(
                msg,
                status_code=429,
                code="LIMIT_EXCEEDED",
                retry_after=_retry_after(thread),
                is_retryable=False,
            )
        artifact = self._artifact(thread)
        if state == "approval_rejected":
            why = f" ({finish})" if finish and finish != "rejected" else ""
            return (
                f"The approval was rejected{why}; Devic agent thread {thread_id} "
                "stopped without finishing the task.",
                artifact,
            )
        return last_assistant_text(thread), artifact

    def _artifact(self, thread: Mapping[str, Any]) -> dict[str, Any]:
        usage = thread.get("tokenUsage")
        usage = usage if isinstance(usage, Mapping) else {}
        cost = usage.get("cost")
        total = cost.get("totalCost") if isinstance(cost, Mapping) else None
        tasks = [
            {"title": t.get("title"), "completed": bool(t.get("completed"))}
            for t in thread.get("tasks") or []
            if isinstance(t, Mapping)
        ]
        return {
            "thread_id": thread_id_of(thread),
            "agent_id": self.agent_id,
            "state": thread.get("state"),
            "tasks": tasks,
            "usage": {
                "input_tokens": _wire.token_count(usage.get("inputTokens"), "in"),
                "output_tokens": _wire.token_count(usage.get("outputTokens"), "out"),
            },
            "cost": float(total)
            if isinstance(total, (int, float)) and not isinstance(total, bool)
            else None,
        }

    # --------------------------------------------------------------- progress

    @staticmethod
    def _event_config(run_manager: Any) -> RunnableConfig | None:
        if run_manager is None:
            return None
        return {"callbacks": run_manager.get_child()}

    def _dispatch(self, event: dict[str, Any], config: Any, run_manager: Any) -> None:
        child = self._event_config(run_manager)
        if child is not None:
            dispatch_custom_event(PROGRESS_EVENT, event, config=child)

    async def _adispatch(
        self, event: dict[str, Any], config: Any, run_manager: Any
    ) -> None:
        child = self._event_config(run_manager)
        if child is not None:
            await adispatch_custom_event(PROGRESS_EVENT, event, config=child)


class DevicAgentTool(_SyncAgentToolCalls, _AsyncAgentToolCalls, _AgentToolCore):
    """Hands a long task to a Devic agent, with its approvals as LangGraph interrupts.

    Input `{"task": str}`; answer: the thread's last assistant message, and an
    artifact `{"thread_id", "agent_id", "state", "tasks": [{"title",
    "completed"}], "usage": {"input_tokens", "output_tokens"}, "cost"}`. See
    the module for the states, the interrupt and cancellation.

    Example:
        ```python
        from langchain_devic import DevicAgentTool

        researcher = DevicAgentTool(agent_id="researcher")
        ```
    """

    @classmethod
    def from_agent(
        cls, agent_id: str, *, chat_model: ChatDevic, **kwargs: Any
    ) -> DevicAgentTool:
        """A tool named and described from Devic's agent (read once, now)."""
        agent = chat_model.get_agent(agent_id)
        name = tool_name(str(agent.get("name") or agent_id), agent_id)
        description = str(agent.get("description") or "").strip() or (
            f"Hands a long task to the Devic agent '{agent.get('name') or agent_id}'."
        )
        kwargs.setdefault("name", name)
        kwargs.setdefault("description", description)
        return cls(agent_id=agent_id, chat_model=chat_model, **kwargs)

    if TYPE_CHECKING:

        def __init__(
            self,
            *,
            agent_id: str,
            chat_model: ChatDevic | None = None,
            thread_metadata: dict[str, Any] | None = None,
            **kwargs: Any,
        ) -> None: ...
