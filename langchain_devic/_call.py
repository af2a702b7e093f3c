"""One ChatDevic call, prepared: the assistant, what is sent, the client tools."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from langchain_devic import _runs
from langchain_devic._convert import CALL_KWARGS, DevicRequest


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


def check_call_kwargs(kwargs: Mapping[str, Any]) -> None:
    """Refuse, before any request, a keyword argument ChatDevic does not take."""
    if not kwargs:
        return
    unknown = sorted(
        k
        for k in kwargs
        if k not in CALL_KWARGS and k != "stream" and not k.startswith("ls_")
    )
    if unknown:
        msg = (
            f"ChatDevic got unexpected keyword argument(s) {unknown}; "
            f"it accepts {sorted(CALL_KWARGS)}."
        )
        raise TypeError(msg)


def check_tool_results(request: DevicRequest, tools: list[dict[str, Any]]) -> None:
    """Refuse tool results sent without the tools: Devic would go on without them."""
    if request.tool_responses and not tools:
        ids = ", ".join(sorted(request.answered))
        msg = (
            f"These ToolMessages answer tool calls ({ids}) of chat "
            f"{request.chat_uuid}, but this call has no tools bound: Devic would "
            "go on without your tools for the rest of the turn. Send the results "
            "with the model the tools were bound to (model.bind_tools([...]))."
        )
        raise ValueError(msg)


def check_resume(request: DevicRequest, kwargs: Mapping[str, Any]) -> bool:
    """Whether the call follows a turn already sent (which needs its chat)."""
    resume = bool(kwargs.get("resume"))
    if resume and request.chat_uuid is None:
        msg = "resume=True follows a turn already sent: pass its chat_uuid."
        raise ValueError(msg)
    return resume
