"""What the emulator says: every body, per dialect, and the headers.

Every byte an emulator answer carries is written here: the reply in the
`"flat"` dialect (the seed contract's `{"chatUuid", "message", "tokens_used",
"timestamp"}`) or the `"platform"` one (a list of `ChatMessage`), the platform's
other bodies (the async start, the realtime view, the chat history, the chat
list, the stop), the SSE frames of the stream route, the error bodies of both
dialects (the flat `{"success": false, "error": {...}}`, the platform's NestJS
`{"statusCode", "message", "error"}`), and the headers both faces send. Pure
functions and small value types; no state, no I/O.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import formatdate
from http import HTTPStatus
from typing import Any, Literal, Protocol, TypeAlias, TypedDict

__all__ = [
    "CLIENT_UID",
    "DIALECTS",
    "JSON_CONTENT_TYPE",
    "KEEPALIVE_FRAME",
    "ROUTE_METHODS",
    "SERVER_NAME",
    "SSE_CONTENT_TYPE",
    "Answer",
    "Dialect",
    "Frames",
    "Message",
    "MessageDetails",
    "Route",
    "StreamAnswer",
    "chat_history_body",
    "chats_body",
    "default_error_body",
    "dump",
    "enveloped",
    "error_answer",
    "flat_reply_body",
    "json_answer",
    "limit_answer",
    "message_list_body",
    "method_not_allowed",
    "now",
    "realtime_body",
    "replied_chat_id",
    "route_not_found",
    "sse_frame",
    "started_body",
    "stop_body",
    "stream_frames",
    "tool_response_body",
    "turn_tokens",
]

#: The answer shapes: the seed contract's flat body, or the platform's message list.
Dialect: TypeAlias = Literal["flat", "platform"]
DIALECTS: tuple[Dialect, ...] = ("flat", "platform")

#: The routes the emulator serves. Under `{prefix}/assistants/{id}/`:
#: `messages`, `chats`, `chats/{chat}` (`chat`), and `chats/{chat}/<realtime |
#: stream | stop | tool-response | feedback>`. And the assistants themselves:
#: `{prefix}/assistants` (`assistants`: list, create), `{prefix}/assistants/{id}`
#: (`assistant`: read, update, delete), and the chat search
#: `POST {prefix}/assistants/chats` (`search`). And the agents (see `_agents`):
#: `{prefix}/agents` (`agents`), `{prefix}/agents/{id}` (`agent`),
#: `{prefix}/agents/{id}/threads` (`agent-threads`),
#: `{prefix}/agents/threads/{thread}` (`agent-thread`) and its actions
#: (`agent-thread-action`), `{prefix}/agents/agents/{id}/costs/…` (`agent-costs`).
Route: TypeAlias = Literal[
    "messages",
    "chats",
    "chat",
    "realtime",
    "stream",
    "stop",
    "tool-response",
    "feedback",
    "assistants",
    "assistant",
    "search",
    "agents",
    "agent",
    "agent-threads",
    "agent-thread",
    "agent-thread-action",
    "agent-costs",
]
#: The methods each route answers.
ROUTE_METHODS: dict[Route, tuple[str, ...]] = {
    "messages": ("POST",),
    "chats": ("GET",),
    "chat": ("GET",),
    "realtime": ("GET",),
    "stream": ("GET",),
    "stop": ("POST",),
    "tool-response": ("POST",),
    "feedback": ("GET", "POST"),
    "assistants": ("GET", "POST"),
    "assistant": ("GET", "PATCH", "DELETE"),
    "search": ("POST",),
    "agents": ("GET", "POST"),
    "agent": ("GET", "PATCH", "DELETE"),
    "agent-threads": ("GET", "POST"),
    "agent-thread": ("GET", "PATCH"),
    "agent-thread-action": ("GET", "POST"),
    "agent-costs": ("GET",),
}

JSON_CONTENT_TYPE = "application/json; charset=utf-8"
SSE_CONTENT_TYPE = "text/event-stream; charset=utf-8"
#: The `Server` header of every answer.
SERVER_NAME = "DevicEmulator"
#: The Devic account every emulated chat belongs to (`clientUID`).
CLIENT_UID = "emulator-client"
#: An SSE comment: keeps a quiet stream alive, ignored by every reader.
KEEPALIVE_FRAME = b": keep-alive\n\n"
#: How many characters of the first user message name a chat.
NAME_CHARS = 60

_ERROR_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    408: "REQUEST_TIMEOUT",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    422: "UNPROCESSABLE_ENTITY",
    429: "TENANT_LIMIT_EXCEEDED",
    500: "INTERNAL_ERROR",
    502: "BAD_GATEWAY",
    503: "SERVICE_UNAVAILABLE",
    504: "GATEWAY_TIMEOUT",
}


@dataclass(frozen=True)
class Answer:
    """A complete HTTP answer: status, headers (without length) and body.

    Attributes:
        status: The HTTP status.
        headers: The answer's own headers, as `(name, value)` pairs.
        body: The body, sent as is.
    """

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def wire_headers(self) -> list[tuple[str, str]]:
        """What both faces send: `Server` and `Date`, the answer's own, the length."""
        return [*_common_headers(self.headers), ("Content-Length", str(len(self.body)))]


class Frames(Protocol):
    """The body of a stream: SSE frames as they happen, for a thread or a task.

    Iterating waits for the next frame; the iteration ends when the stream
    closes, or early once `stop()` is true (a face gives up or shuts down).
    """

    def iterate(self, stop: Callable[[], bool] | None = None) -> Iterator[bytes]:
        """The frames, waiting in the caller's thread."""
        ...

    def aiterate(self, stop: Callable[[], bool] | None = None) -> AsyncIterator[bytes]:
        """The frames, waiting as a task."""
        ...


@dataclass(frozen=True)
class StreamAnswer:
    """An answer whose body is written as it happens (the SSE route).

    Attributes:
        status: The HTTP status.
        headers: The answer's own headers (no length: the body is open-ended).
        frames: The body, frame by frame.
    """

    status: int
    headers: tuple[tuple[str, str], ...]
    frames: Frames

    def wire_headers(self) -> list[tuple[str, str]]:
        """What both faces send: `Server` and `Date`, then the answer's own."""
        return _common_headers(self.headers)


class MessageDetails(TypedDict, total=False):
    """What a message may carry besides its role and text (see `Message`)."""

    tool_calls: tuple[Mapping[str, Any], ...]
    tool_call_id: str | None
    summary: str | None
    data: Any
    files: tuple[Mapping[str, Any], ...]


@dataclass(frozen=True)
class Message:
    """One message of a chat, as the platform keeps it (a `ChatMessage`).

    Attributes:
        uid: The message's stable id.
        role: `user`, `assistant` or `tool`.
        text: `content.message`; `None` for an assistant message that only
            calls tools (its `content` is `{}`) and for a tool result that is
            not a string.
        timestamp: Epoch milliseconds.
        tool_calls: The tool calls an assistant message makes.
        tool_call_id: The call a `tool` message answers.
        summary: Devic's one-line description of a tool call or result.
        data: `content.data` when `text` is `None`: a client tool's result
            that is not a string (an object, a list, a number). `None` is no
            data, so a `null` result reads as an empty content.
        files: The files a user message came with, as sent
            (`{name, donwloadUrl, fileType}`), kept as `content.files`.
    """

    uid: str
    role: str
    text: str | None
    timestamp: int
    tool_calls: tuple[Mapping[str, Any], ...] = field(default=())
    tool_call_id: str | None = None
    summary: str | None = None
    data: Any = None
    files: tuple[Mapping[str, Any], ...] = field(default=())

    @property
    def readable(self) -> str:
        """The text a reader shows: `content.message`, else `content.data` as JSON.

        Devic's CLI reads a tool result the same way; an empty content is `""`.
        """
        if self.text is not None:
            return self.text
        if self.data is None:
            return ""
        return json.dumps(self.data, ensure_ascii=False)

    def to_json(self, chat_id: str) -> dict[str, Any]:
        """The `ChatMessage` object."""
        content: dict[str, Any] = {}
        if self.text is not None:
            content["message"] = self.text
        elif self.data is not None:
            content["data"] = self.data
        if self.files:
            content["files"] = [dict(f) for f in self.files]
        body: dict[str, Any] = {
            "uid": self.uid,
            "role": self.role,
            "content": content,
            "timestamp": self.timestamp,
            "chatUid": chat_id,
        }
        if self.tool_calls:
            body["tool_calls"] = [dict(call) for call in self.tool_calls]
        if self.tool_call_id is not None:
            body["tool_call_id"] = self.tool_call_id
        if self.summary is not None:
            body["summary"] = self.summary
        return body


def _common_headers(own: tuple[tuple[str, str], ...]) -> list[tuple[str, str]]:
    names = {name.lower() for name, _ in own}
    pairs = [
        (name, value)
        for name, value in (
            ("Server", SERVER_NAME),
            ("Date", formatdate(usegmt=True)),
        )
        if name.lower() not in names
    ]
    pairs.extend(own)
    return pairs


# ---------------------------------------------------------------------- bodies


def dump(payload: Any) -> bytes:
    """`payload` as UTF-8 JSON, non-ASCII kept as is."""
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")


def json_answer(
    status: int, payload: Any, *, extra: tuple[tuple[str, str], ...] = ()
) -> Answer:
    """An answer with a JSON body and `extra` headers after its `Content-Type`."""
    return Answer(status, (("Content-Type", JSON_CONTENT_TYPE), *extra), dump(payload))


def enveloped(payload: Any) -> dict[str, Any]:
    """The gateway envelope Devic's clients unwrap: `{"success": true, "data"}`."""
    return {"success": True, "data": payload}


def error_answer(
    status: int,
    message: str,
    code: str,
    dialect: Dialect = "flat",
    *,
    extra: tuple[tuple[str, str], ...] = (),
) -> Answer:
    """A refusal, in the shape of `dialect`.

    The flat dialect's `{"success": false, "error": {"message", "code"}}`, or
    the platform's NestJS `{"statusCode", "message", "error": code}`.
    """
    if dialect == "platform":
        return json_answer(status, _nest_error(status, code, message), extra=extra)
    return json_answer(status, _error_body(message, code), extra=extra)


def default_error_body(
    code: int, *, retry_after: float | None = None
) -> dict[str, Any]:
    """Devic's error body for `code`: the 429 limit shape, else the platform shape.

    Args:
        code: The HTTP status.
        retry_after: The `retryAfter` field of the 429 body, in seconds.

    Returns:
        The body, ready to be dumped.
    """
    if code == HTTPStatus.TOO_MANY_REQUESTS:
        body = _nest_error(429, "TENANT_LIMIT_EXCEEDED", "Rate limit exceeded")
        if retry_after is not None:
            body["retryAfter"] = retry_after
        return body
    return _error_body(_reason(code), _code_name(code))


def limit_answer(details: Mapping[str, Any], now_ms: int) -> Answer:
    """The 429 of a synchronous send stopped by a tenant limit (both dialects).

    The body is NestJS-style with `TENANT_LIMIT_EXCEEDED`, `retryAfter`
    (seconds) and the `details`; `Retry-After` says the same in whole seconds.
    """
    resets_at = details.get("resetsAt")
    wait = max(0, -(-(int(resets_at) - now_ms) // 1000)) if resets_at else 0
    body = _nest_error(
        429, "TENANT_LIMIT_EXCEEDED", str(details.get("message") or "Limit exceeded")
    )
    body["retryAfter"] = wait
    body["details"] = dict(details)
    return json_answer(429, body, extra=(("Retry-After", str(wait)),))


def route_not_found(method: str, path: str) -> Answer:
    """The framework's 404 for a path that is no route (NestJS shape)."""
    message = f"Cannot {method} {path[:200]}"
    return json_answer(404, _nest_error(404, "NOT_FOUND", message))


def method_not_allowed(method: str, allowed: str = "POST") -> Answer:
    """The 405 for a route asked with another method than its own.

    `allowed` is the `Allow` header's value: one method, or several joined
    by `, `.
    """
    message = f"Method {method} is not allowed here; use {allowed}."
    return json_answer(
        405,
        _nest_error(405, "METHOD_NOT_ALLOWED", message),
        extra=(("Allow", allowed),),
    )


def turn_tokens(
    before: Sequence[str | None], written: Sequence[str | None]
) -> tuple[int, int]:
    """A turn's deterministic token counts: words in, words out (each at least 1).

    Args:
        before: The texts of the chat up to the turn's user message.
        written: The texts the assistant wrote in the turn.

    Returns:
        `(input_tokens, output_tokens)`.
    """
    return max(1, _words(before)), max(1, _words(written))


def flat_reply_body(
    *,
    chat_id: str,
    text: str,
    tokens: tuple[int, int],
    overrides: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The seed contract's reply: `{"chatUuid", "message", "tokens_used", "timestamp"}`.

    Args:
        chat_id: The conversation id.
        text: The reply.
        tokens: The turn's `(input, output)` counts; `tokens_used` is their sum.
        overrides: Fields a reply function asked for; a `None` value deletes
            the field.

    Returns:
        The body, ready to be dumped.
    """
    body: dict[str, Any] = {
        "chatUuid": chat_id,
        "message": text,
        "tokens_used": sum(tokens),
        "timestamp": now(),
    }
    _merge(body, overrides or {})
    return body


def message_list_body(
    *,
    chat_id: str,
    history: Sequence[Message],
    tokens: tuple[int, int],
    overrides: Mapping[str, Any] | None,
) -> list[dict[str, Any]]:
    """The platform's synchronous reply: the chat as a list of `ChatMessage`.

    The turn's last assistant message carries the turn's counts as
    `messageTokenUsage` `{"inputTokens", "outputTokens"}` (only here: the
    stored messages have none).

    Args:
        chat_id: The conversation id (`chatUid` on each message).
        history: The whole chat, ending with the turn's messages.
        tokens: The turn's `(input, output)` counts.
        overrides: Fields a reply function asked for, merged into the turn's
            last assistant message (a `None` value deletes the field); a
            `message` string is already that message's text.

    Returns:
        The body, ready to be dumped.
    """
    body = [message.to_json(chat_id) for message in history]
    fields = dict(overrides or {})
    if isinstance(fields.get("message"), str):
        del fields["message"]
    asked = max((i for i, m in enumerate(body) if m["role"] == "user"), default=-1)
    replies = [m for m in body[asked + 1 :] if m["role"] == "assistant"]
    if replies:
        input_tokens, output_tokens = tokens
        replies[-1]["messageTokenUsage"] = {
            "inputTokens": input_tokens,
            "outputTokens": output_tokens,
        }
        _merge(replies[-1], fields)
    return body


def replied_chat_id(body: Mapping[str, Any]) -> object:
    """The conversation id a flat reply answers (a reply function may change it)."""
    return body.get("chatUuid")


def started_body(chat_id: str) -> dict[str, Any]:
    """The answer to an asynchronous send: the run's chat, `{"chatUid"}`."""
    return {"chatUid": chat_id}


def stop_body(chat_id: str, *, closes_tool_wait: bool = False) -> dict[str, Any]:
    """The answer to a stop request.

    A stop that ends a wait for client tools says so with the newer API's
    `outcome: "tool_wait_closed"`.
    """
    body: dict[str, Any] = {
        "chatUid": chat_id,
        "message": "Stop requested. The chat will finish its current step and "
        "complete.",
    }
    if closes_tool_wait:
        body["outcome"] = "tool_wait_closed"
    return body


def tool_response_body(chat_id: str) -> dict[str, Any]:
    """The answer to accepted client tool responses (an `AsyncResponse`)."""
    return {"chatUid": chat_id, "message": "Tool responses received"}


def realtime_body(
    *,
    chat_id: str,
    status: str,
    updated_ms: int,
    history: Sequence[Message],
    streaming: Message | None,
    fields: Mapping[str, Any],
) -> dict[str, Any]:
    """The realtime view of a chat (`RealtimeChatHistory`); no token counts.

    Args:
        chat_id: The chat.
        status: Its realtime status.
        updated_ms: When it last changed, epoch ms (`lastUpdatedAt`).
        history: The chat's finished messages (`chatHistory`).
        streaming: The assistant message being written, if any.
        fields: The status's own fields (`pendingToolCalls`,
            `handedOffSubThreadId`, `limitExceeded`, `errorMessage`, ...).

    Returns:
        The body, ready to be dumped.
    """
    body: dict[str, Any] = {
        "chatUID": chat_id,
        "clientUID": CLIENT_UID,
        "status": status,
        "lastUpdatedAt": updated_ms,
        "chatHistory": [message.to_json(chat_id) for message in history],
        "pendingToolCalls": [],
    }
    if streaming is not None:
        body["streamingMessage"] = streaming.to_json(chat_id)
    body.update(fields)
    return body


def chat_history_body(
    *,
    chat_id: str,
    assistant_id: str,
    history: Sequence[Message],
    created_ms: int,
    edited_ms: int,
    tokens: tuple[int, int],
    metadata: Mapping[str, Any] | None,
    content: bool = True,
    options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The stored chat (`ChatHistory`), with the chat's token totals.

    Args:
        chat_id: The chat.
        assistant_id: Its assistant.
        history: Its finished messages.
        created_ms: When it began, epoch ms.
        edited_ms: When it last changed, epoch ms.
        tokens: The chat's `(input, output)` totals over every turn.
        metadata: The last `metadata` object sent to it.
        content: Whether to include `chatContent` (the list's `omitContent`).
        options: What the sends set on the chat and its history shows:
            `tenantId`, `subtenantId`, `userName`, `tags`, `llm`, `provider`.

    Returns:
        The body, ready to be dumped.
    """
    first = next((m.text for m in history if m.role == "user" and m.text), "")
    input_tokens, output_tokens = tokens
    body: dict[str, Any] = {
        "chatUID": chat_id,
        "clientUID": CLIENT_UID,
        "name": first[:NAME_CHARS],
        "assistantSpecializationIdentifier": assistant_id,
        "creationTimestampMs": created_ms,
        "lastEditTimestampMs": edited_ms,
        "inputTokens": input_tokens,
        "outputTokens": output_tokens,
        "tokenUsage": {"inputTokens": input_tokens, "outputTokens": output_tokens},
        "metadata": dict(metadata or {}),
        "handedOff": False,
    }
    body.update(options or {})
    if content:
        body["chatContent"] = [message.to_json(chat_id) for message in history]
    return body


def chats_body(
    histories: Sequence[Mapping[str, Any]], *, total: int, offset: int, limit: int
) -> dict[str, Any]:
    """One page of an assistant's chats (`ListConversationsResponse`)."""
    return {
        "histories": list(histories),
        "total": total,
        "offset": offset,
        "limit": limit,
        "hasMore": offset + len(histories) < total,
    }


# ---------------------------------------------------------------------- SSE


def sse_frame(event: str, data: Any) -> bytes:
    """One SSE frame: `event: <event>` and one `data:` line of JSON."""
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


def stream_frames(
    old: Mapping[str, Any], new: Mapping[str, Any]
) -> list[tuple[str, dict[str, Any]]]:
    """The SSE events that take a reader from the realtime view `old` to `new`.

    Text added to the same `streamingMessage` is a `delta` (`{"append"}`);
    every other top-level field that changed is in one `partial` (a field that
    went away is `null` there), with `lastUpdatedAt`. The `delta` comes first:
    it applies to the message the reader already has.

    Returns:
        `(event, data)` pairs; none when nothing a reader sees changed.
    """
    frames: list[tuple[str, dict[str, Any]]] = []
    keys = [*new, *(k for k in old if k not in new)]
    changed = {
        key: new.get(key)
        for key in keys
        if key not in {"lastUpdatedAt", "streamingMessage"}
        and old.get(key) != new.get(key)
    }
    before, after = old.get("streamingMessage"), new.get("streamingMessage")
    if before != after:
        appended = _appended(before, after)
        if appended is None:
            changed["streamingMessage"] = after
        else:
            frames.append(("delta", {"append": appended}))
    if changed:
        changed["lastUpdatedAt"] = new.get("lastUpdatedAt")
        frames.append(("partial", changed))
    return frames


def now() -> str:
    """The current UTC time as Devic writes it (`2025-10-29T14:58:25Z`)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------- helpers


def _appended(before: Any, after: Any) -> str | None:
    """The text `after` adds to the same streaming message `before`, else `None`."""
    if not isinstance(before, Mapping) or not isinstance(after, Mapping):
        return None
    old_text = before.get("content", {}).get("message", "")
    new_text = after.get("content", {}).get("message", "")
    same = {k: v for k, v in before.items() if k != "content"} == {
        k: v for k, v in after.items() if k != "content"
    }
    if not same or not new_text.startswith(old_text) or new_text == old_text:
        return None
    return str(new_text[len(old_text) :])


def _words(texts: Sequence[str | None]) -> int:
    return sum(len(text.split()) for text in texts if text)


def _error_body(message: str, code: str) -> dict[str, Any]:
    return {"success": False, "error": {"message": message, "code": code}}


def _nest_error(status: int, error: str, message: str) -> dict[str, Any]:
    """The NestJS-style error body: `{"statusCode", "error", "message"}`."""
    return {"statusCode": status, "error": error, "message": message}


def _reason(code: int) -> str:
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return "Error"


def _code_name(code: int) -> str:
    if code in _ERROR_CODES:
        return _ERROR_CODES[code]
    try:
        return HTTPStatus(code).name
    except ValueError:
        return f"HTTP_{code}"


def _merge(target: dict[str, Any], overrides: Mapping[str, Any]) -> None:
    """`target.update(overrides)`, where a `None` value deletes the key."""
    for key, value in overrides.items():
        if value is None:
            target.pop(key, None)
        else:
            target[key] = value
