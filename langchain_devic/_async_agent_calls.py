"""ChatDevic's agent calls: Devic's agents, their threads, approvals, feedback.

The async calls are written once, here; the sync ones are generated from them
by `scripts/unasync.py` (`_sync_agent_calls.py`). Both are mixed into
`ChatDevic`; `DevicAgentTool` (`langchain_devic.agents`) follows threads.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from langchain_devic._async_agents import (
    _aapprove,
    _aget_agent,
    _aget_thread,
    _alist_agents,
    _alist_threads,
    _athread_action,
)

if TYPE_CHECKING:
    from langchain_devic.chat_models import _ChatCore as _Base
else:
    _Base = object


class _AsyncAgentCalls(_Base):
    """Devic's agents from a `ChatDevic` (same key, base URL and retries)."""

    async def alist_agents(self) -> list[dict[str, Any]]:
        """Devic's agents: `{"agent_id", "name", "description", "disabled", ...}`."""
        return await _alist_agents(self.async_client)

    async def aget_agent(self, agent_id: str) -> dict[str, Any]:
        """One agent, as `list_agents` shows it."""
        return await _aget_agent(self.async_client, agent_id)

    async def alist_agent_threads(
        self,
        agent_id: str,
        *,
        state: str | None = None,
        tags: Sequence[str] | None = None,
        offset: int | None = None,
        limit: int | None = None,
        omit_content: bool = False,
    ) -> list[dict[str, Any]]:
        """The agent's threads (Devic's `AgentThreadDto`s), filtered.

        Args:
            agent_id: The agent.
            state: Only threads in this state.
            tags: Only threads with any of these tags.
            offset: Skip this many.
            limit: At most this many.
            omit_content: Leave each thread's messages out.
        """
        params: dict[str, str] = {}
        if state is not None:
            params["state"] = state
        if tags:
            params["tags"] = ",".join(tags)
        if offset is not None:
            params["offset"] = str(offset)
        if limit is not None:
            params["limit"] = str(limit)
        if omit_content:
            params["omitContent"] = "true"
        return await _alist_threads(self.async_client, agent_id, params)

    async def aget_agent_thread(self, thread_id: str) -> dict[str, Any]:
        """One thread, with its tasks (Devic's `AgentThreadDto`)."""
        return await _aget_thread(self.async_client, thread_id)

    async def aapprove_thread(
        self, thread_id: str, message: str | None = None
    ) -> dict[str, Any]:
        """Approve a thread that waits in `paused_for_approval` (posted once)."""
        return await _aapprove(self.async_client, thread_id, True, message)

    async def areject_thread(
        self, thread_id: str, message: str | None = None, *, retry: bool = False
    ) -> dict[str, Any]:
        """Reject a thread's approval; `retry=True` lets the agent try again.

        Without `retry` the thread ends in `approval_rejected`; with it the
        agent goes on with `message` as guidance.
        """
        return await _aapprove(self.async_client, thread_id, False, message, retry)

    async def asend_thread_feedback(
        self,
        thread_id: str,
        *,
        feedback: bool | None = None,
        comment: str | None = None,
        message_id: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Leave feedback on a thread (or one of its messages)."""
        body: dict[str, Any] = {}
        for key, value in (
            ("messageId", message_id),
            ("feedback", feedback),
            ("feedbackComment", comment),
            ("feedbackData", data),
        ):
            if value is not None:
                body[key] = value
        answer = await _athread_action(self.async_client, thread_id, "feedback", body)
        return answer if isinstance(answer, dict) else {}
