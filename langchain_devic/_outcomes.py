"""What a failed write means: unknown outcomes, how a chat settles them, the notes.

A write that may have landed (a 502 or 504, a failure after the request was
written, a 2xx that cannot be read) is never re-posted blindly: these pure
functions say whether an error is such an outcome, what the chat shows of it,
and the note every such error carries (what happened, and what to do).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from langchain_devic import _wire
from langchain_devic.errors import (
    DevicAPIError,
    DevicConflictError,
    DevicError,
    DevicServerError,
)

logger = logging.getLogger("langchain_devic")

#: The shape of a 2xx parser: `_wire.parse_reply` or `_wire.parse_run_start`.
Parse = Callable[..., "_wire.DevicReply | _wire.RunStarted"]


def outcome_unknown(error: DevicError) -> bool:
    """Whether a failed write may still have landed (no clear refusal came)."""
    if getattr(error, "_sent_nothing", False):
        return False
    if isinstance(error, DevicAPIError):
        return isinstance(error, DevicServerError) and not error.is_retryable
    return not error.is_retryable


def with_note(error: DevicError, note: str) -> DevicError:
    """`error`, its message extended with `note` (what it means for the caller)."""
    error.message = f"{error.message} {note}"
    error.args = (error.message,)
    return error


def explained(error: DevicError, chat_uuid: str | None) -> DevicError:
    """A write's final error; a busy chat's says what may hold it and what to do."""
    if isinstance(error, DevicConflictError) and chat_uuid is not None:
        return with_note(
            error,
            f"(chat {chat_uuid} is busy: a turn is still running there, or it "
            "waits for the results of client tool calls. Wait and send again, "
            "answer the calls with ToolMessages, or stop the run with "
            "ChatDevic.stop_chat.)",
        )
    return error


def unsettled(error: DevicError, chat_uuid: str | None) -> DevicError:
    """A write of unknown outcome that cannot be settled: say so, never resend."""
    error.is_retryable = False
    if chat_uuid is None:
        note = (
            "The turn may still have run on Devic, in a new chat whose id is "
            "unknown: check the assistant's chats before sending it again (it "
            "was not retried, so it cannot have been posted twice)."
        )
    else:
        note = (
            f"The turn may still have run on Devic: check conversation "
            f"{chat_uuid} (load_chat) before sending it again (it was not "
            "retried, so it cannot have been posted twice)."
        )
    return with_note(error, note)


def settle_failed(error: DevicError, chat_uuid: str, failure: DevicError) -> DevicError:
    error.is_retryable = False
    return with_note(
        error,
        f"The turn may still have run on Devic: whether it reached "
        f"conversation {chat_uuid} is unknown (the chat could not be read: "
        f"{failure.message}). Check it (load_chat) before sending it again (it "
        "was not retried, so it cannot have been posted twice).",
    )


def settle_answers(
    error: DevicError,
    chat_uuid: str,
    view: dict[str, Any] | DevicError,
    answered: set[str],
) -> None:
    """After a write of unknown outcome: return if the results landed, or raise."""
    if isinstance(view, DevicError):
        raise with_note(
            error,
            f"Whether the tool results reached chat {chat_uuid} is unknown (its "
            f"view could not be read: {view.message}). Read the chat before "
            "invoking again: if it still waits, the same messages resend them.",
        ) from None
    if answered & _wire.pending_call_ids(view):
        raise with_note(
            error,
            f"The tool results were not delivered to chat {chat_uuid} (it "
            "still waits for them). Invoking again with the same messages "
            "resends them.",
        ) from None
    logger.info("Tool results for chat %s landed after all.", chat_uuid)


def settled_send(
    chat: Mapping[str, Any], chat_uuid: str, message: str, parse: Parse
) -> _wire.DevicReply | _wire.RunStarted | None:
    """What a chat says of a send of unknown outcome, as far as it can say.

    `None`: the message is not the chat's last user message, so it was not
    processed. A started run for an async send; for the one call, the
    reply when the chat already holds it (else the caller follows the run).
    """
    turn = _wire.turn_after(chat, message)
    if turn is None:
        return None
    if parse is not _wire.parse_reply:
        return _wire.RunStarted(chat_uuid)
    text = _wire.turn_text(turn)
    if text is None:
        return _wire.RunStarted(chat_uuid)  # still running: follow it
    timestamp = _wire.iso_timestamp(turn[-1].get("timestamp"))
    return _wire.DevicReply(
        text=text,
        chat_uuid=chat_uuid,
        timestamp=timestamp,
        extra={"recovered": True},
    )


def unsent_write(error: DevicError, what: str) -> DevicError:
    """A write (not a turn) of unknown outcome: say so, never resend it."""
    error.is_retryable = False
    return with_note(
        error,
        f"The {what} may have been written on Devic all the same: it was not "
        "sent again (so it cannot have been written twice). Read it back "
        "before sending it again.",
    )
