"""What the emulator tests read a platform answer with, as Devic's own clients do."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def merge(events: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """What Devic's CLI and UI make of a stream: the last full view.

    A field a `partial` sets to `null` is gone.
    """
    view: dict[str, Any] = {}
    for event, data in events:
        if event == "snapshot":
            view = dict(data)
        elif event == "partial":
            view.update(data)
        elif event == "delta":
            message = view["streamingMessage"]
            text = message["content"].get("message", "") + data["append"]
            view["streamingMessage"] = {**message, "content": {"message": text}}
    return {key: value for key, value in view.items() if value is not None}


def nest(status: int, error: str, message: str) -> dict[str, Any]:
    """The nested error body of a failed run (`statusCode`, `error`, `message`)."""
    return {"statusCode": status, "error": error, "message": message}
