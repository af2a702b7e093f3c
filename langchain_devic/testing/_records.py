"""What the emulator records and what reply functions see: its public value types.

`RecordedRequest` is one entry of the request log; `Conversation` is what a
reply function (`ReplyFn`) is asked with; `Outcome` tells a face how an
exchange ends. `plain` turns stored messages into the `{"role", "content"}`
dicts the log and reply functions show.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from langchain_devic.testing._chats import tool_names as schema_names
from langchain_devic.testing._faults import Action
from langchain_devic.testing._render import Answer, Message, Route, StreamAnswer
from langchain_devic.testing._script import Step

__all__ = [
    "DEFAULT_API_KEY",
    "Conversation",
    "Outcome",
    "RecordedRequest",
    "ReplyFn",
    "plain",
]

#: The bearer token an emulator accepts unless told otherwise (a fake, local key).
DEFAULT_API_KEY = "emulator-key"

# ------------------------------------------------------------------ public types


@dataclass(frozen=True)
class RecordedRequest:
    """One request the emulator received, as it came off the wire.

    The `Authorization` header is never stored (only whether it was accepted),
    so printing a record can never leak the token.

    Attributes:
        method: The HTTP method, upper case.
        path: The raw (still percent-encoded) path, without the query string.
        headers: The request headers, names lower-cased, credentials dropped.
        body: The raw request body.
        json: The body parsed as JSON, or `None` if it is not JSON.
        assistant_id: The percent-decoded assistant id from the path, or `None`
            when the path is no route.
        chat_uuid: The conversation id sent: a send's `chatUuid` (else its
            `chatUid`) when it is a string, or the chat a chat route's path
            names (percent-decoded).
        message: The `message` sent, when it is a string.
        authorized: Whether the bearer token was accepted.
        status: The status answered, or `None` if no answer was sent (dropped,
            stalled, or still in flight).
        fault: The kind of the fault applied to this request, if any.
        timestamp: `time.monotonic()` when the request arrived.
        query: The raw query string (without `?`), if any.
        route: Which route the path is (`messages`, `chats`, `chat`,
            `realtime`, `stream`, `stop`, `tool-response`), or `None`.
    """

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    json: Any
    assistant_id: str | None
    chat_uuid: str | None
    message: str | None
    authorized: bool
    status: int | None = None
    fault: str | None = None
    timestamp: float = 0.0
    query: str = ""
    route: Route | None = None


@dataclass(frozen=True)
class Conversation:
    """What a reply function sees: one chat, with the new user turn appended.

    A reply function is asked once per send, and again each time the client
    has answered every client tool call of a script that is then spent (see
    `CallTools`): the conversation then ends with the tool results, which
    `tool_results` also lists.

    Attributes:
        assistant_id: The assistant being run.
        chat_uuid: The conversation id (new or continued).
        messages: The whole history, oldest first, ending with the new user
            turn (or, in a later round, with this turn's tool results); each
            item is `{"role": "user" | "assistant" | "tool", "content": str}`.
            An assistant message's content is its text (`""` when it only
            called tools); a tool message's is its result's text, or the
            result as JSON text when it is not a string.
        context: The send's `context` object, if any.
        metadata: The send's `metadata` object, if any.
        request: The recorded send that started this turn (a later round
            has the same).
        tools: The client-side tools the chat has now, as sent: those the send
            declared (`tools`), or, in a later round, those restated on the
            first item of the last tool response (none if it had none).
        tool_results: The client's tool results of this turn so far, oldest
            first, each `{"tool_call_id", "name", "content"}`, `content` as
            the client sent it (a string or any JSON); empty in the first round.
    """

    assistant_id: str
    chat_uuid: str
    messages: tuple[dict[str, str], ...]
    context: Mapping[str, Any] | None
    metadata: Mapping[str, Any] | None
    request: RecordedRequest
    tools: tuple[Mapping[str, Any], ...] = ()
    tool_results: tuple[Mapping[str, Any], ...] = ()

    @property
    def message(self) -> str:
        """The new user message (the last user turn)."""
        return next(
            m["content"] for m in reversed(self.messages) if m["role"] == "user"
        )

    @property
    def tool_names(self) -> frozenset[str]:
        """The names of the client-side tools the chat has now (`tools`)."""
        return schema_names(self.tools)

    @property
    def turn(self) -> int:
        """How many user turns the chat has, this one included (1-based)."""
        return sum(1 for m in self.messages if m["role"] == "user")


#: A scripted assistant: the reply text, raw response fields to merge in, or a
#: script (steps such as `Write`, `ServerTool`, `CallTools`, `Fail`; a string is
#: a `Write`). Fields only shape a synchronous answer: in a later round (after
#: tool results) only their `message` counts.
ReplyFn: TypeAlias = Callable[
    [Conversation], str | Mapping[str, Any] | Sequence[Step | str] | Step
]


@dataclass(frozen=True)
class Outcome:
    """How an exchange ends, for its face to carry out.

    Attributes:
        action: Send `answer`, drop the connection, refuse it, or time out.
        answer: What to send, when `action` is `"answer"`: a body, or a
            stream of frames.
    """

    action: Action
    answer: Answer | StreamAnswer | None = None


def plain(messages: Iterable[Message]) -> list[dict[str, str]]:
    """Messages as `{"role", "content"}` (what reply functions and tests read)."""
    return [{"role": m.role, "content": m.readable} for m in messages]
