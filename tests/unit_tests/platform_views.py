"""Platform-shaped test data: `ChatMessage`s and realtime views of one chat."""

from __future__ import annotations

from typing import Any

CHAT = "chat-run-1"


def msg(uid: str, role: str, text: str | None, **extra: Any) -> dict[str, Any]:
    """A `ChatMessage`; `text=None` gives the empty content of a tool-call-only one."""
    content = {} if text is None else {"message": text}
    return {
        "uid": uid,
        "role": role,
        "content": content,
        "timestamp": 1_700_000_000_000,
        **extra,
    }


def view(status: str, *messages: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """The realtime view of `CHAT` with this status and history."""
    return {"chatUID": CHAT, "status": status, "chatHistory": list(messages), **extra}
