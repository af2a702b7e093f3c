"""One ChatDevic call, prepared: the assistant, what is sent, the client tools."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from langchain_devic import _runs
from langchain_devic._convert import DevicRequest


@dataclass(frozen=True)
class Call:
    """One call, prepared: the assistant, what is sent, and the client tools."""

    assistant_id: str
    request: DevicRequest
    tools: list[dict[str, Any]]
    close_tool_wait: bool = False
    #: Called with the chat id once Devic has taken the turn up (a run started).
    on_started: Callable[[str], Any] | None = None
    #: Follow the chat's turn of this message instead of sending it.
    resume: bool = False

    @property
    def needs_run(self) -> bool:
        """Client tools, tool results and the run hooks exist only in runs."""
        return bool(
            self.tools
            or self.request.tool_responses
            or self.on_started is not None
            or self.resume
        )

    @property
    def extra(self) -> dict[str, Any] | None:
        """Devic's send fields besides message, chat, context and metadata.

        The message options, `files` and `previousConversation` of the request,
        and the tools the assistant may call; `None` when there are none.
        """
        extra = dict(self.request.fields or {})
        if self.tools:
            extra["tools"] = self.tools
        return extra or None

    def tracker(self, chat_uuid: str) -> _runs.RunTracker:
        """The tracker of this call's run in `chat_uuid`."""
        return _runs.RunTracker(
            chat_uuid,
            self.request.message or None,
            client_tools=bool(self.tools),
            answered=self.request.answered,
        )
