# Generated from _async_agent_calls.py by scripts/unasync.py: do not edit by hand.
# Change the async module, then run `python scripts/unasync.py`.
"""ChatDevic's agent calls: Devic's agents, their threads, approvals, feedback.

The sync calls are written once, here; the sync ones are generated from them
by `scripts/unasync.py` (`_sync_agent_calls.py`). Both are mixed into
`ChatDevic`; `DevicAgentTool` (`langchain_devic.agents`) follows threads.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from langchain_devic._sync_agents import (
    _approve,
    _get_agent,
    _get_thread,
    _list_agents,
    _list_threads,
    _thread_action,
)

if TYPE_CHECKING:
    from langchain_devic.chat_models import _ChatCore as _Base
else:
    _Base = object


class _SyncAgentCalls(_Base):
    """Devic's agents from a `ChatDevic` (same key, base URL and retries)."""

    def list_agents(self) -> list[dict[str, Any]]:
        """Devic's agents: `{"agent_id", "name", "description", "disabled", ...}`."""
        return _list_agents(self.client)

    def get_agent(self, agent_id: str) -> dict[str, Any]:
        """One agent, as `list_agents` shows it."""
        return _get_agent(self.client, agent_id)

    def list_agent_threads(
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
        return _list_threads(self.client, agent_id, params)

    def get_agent_thread(self, thread_id: str) -> dict[str, Any]:
        """One thread, with its tasks (Devic's `AgentThreadDto`)."""
        return _get_thread(self.client, thread_id)

    def approve_thread(
        self, thread_id: str, message: str | None = None
    ) -> dict[str, Any]:
        """Approve a thread that waits in `paused_for_approval` (posted once)."""
        return _approve(self.client, thread_id, True, message)

    def reject_thread(
        self, thread_id: str, message: str | None = None, *, retry: bool = False
    ) -> dict[str, Any]:
        """Reject a thread's approval; `retry=True` lets the agent try again.

        Without `retry` the thread ends in `approval_rejected`; with it the
        agent goes on with `message` as guidance.
        """
        return _approve(self.client, thread_id, False, message, retry)

    def send_thread_feedback(
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
        answer = _thread_action(self.client, thread_id, "feedback", body)
        return answer if isinstance(answer, dict) else {}
