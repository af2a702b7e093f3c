"""The Devic wire format: building requests and reading answers, as pure functions.

Requests follow the seed contract exactly (`message`, `chatUuid`, `context`,
`metadata`). Answers are read tolerantly: the seed shape, the platform envelope
(`{"success", "data", ...}`), message lists and chat objects, and the three
spellings of the conversation id. Nothing here does I/O, so every rule is tested
directly; `langchain_devic._client` does the HTTP.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

from langchain_devic._checks import (
    DEFAULT_BASE_URL,
    MAX_SEGMENT,
    REDACTED,
    excerpt,
    is_loopback_host,
    is_plain_loopback,
    redact,
    refuse_credentials,
    segment_problem,
    server_chat_id,
    validate_api_key,
    validate_assistant_id,
    validate_base_url,
    validate_chat_uuid,
)
from langchain_devic._error_answers import api_error, parse_retry_after
from langchain_devic.errors import DevicProtocolError

__all__ = [  # what the rest of the package reads here from other rooms
    "DEFAULT_BASE_URL",
    "MAX_SEGMENT",
    "REDACTED",
    "api_error",
    "excerpt",
    "is_loopback_host",
    "is_plain_loopback",
    "parse_retry_after",
    "redact",
    "refuse_credentials",
    "segment_problem",
    "server_chat_id",
    "validate_api_key",
    "validate_assistant_id",
    "validate_base_url",
    "validate_chat_uuid",
]

#: Spellings of the conversation id, in order of preference.
CHAT_ID_KEYS = ("chatUuid", "chatUid", "chatUID")
_ENVELOPE_KEYS = frozenset({"success", "data", "meta", "error", "timestamp"})
_SEED_KEYS = frozenset(
    {
        *CHAT_ID_KEYS,
        "message",
        "tokens_used",
        "timestamp",
        "inputTokens",
        "outputTokens",
    }
)

logger = logging.getLogger("langchain_devic")


@dataclass(frozen=True)
class DevicReply:
    """One assistant turn, as read from a 2xx answer.

    Attributes:
        text: The assistant's reply (may be the empty string).
        chat_uuid: The conversation id to continue with, or `None` if the answer
            had none and none was sent.
        tokens_used: Devic's total token count for the turn, if reported.
        input_tokens: The input part, when the platform reports a split.
        output_tokens: The output part, when the platform reports a split.
        timestamp: The server's timestamp, as sent.
        extra: Every field of the answer this parser does not know, kept as is.
    """

    text: str
    chat_uuid: str | None
    tokens_used: int | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    timestamp: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- URLs


def messages_url(base_url: str, assistant_id: str) -> str:
    """The endpoint URL, with the assistant id percent-encoded as one segment."""
    return f"{base_url}/assistants/{quote(assistant_id, safe='')}/messages"


# ------------------------------------------------------------------------ request


def build_request_body(
    message: str,
    chat_uuid: str | None,
    *,
    context: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON body of one turn, in the seed's field names.

    `chatUuid` is always present (`null` starts a new conversation, as in the
    seed's example). A continued turn also carries the id as `chatUid`, the name
    Devic's own platform clients send: a server that reads either name continues
    the chat (Devic ignores fields it does not know). `context` and `metadata`
    only when given; `extra` carries platform fields (`tools`, `tags`, ...) only
    when set.
    """
    body: dict[str, Any] = {"message": message, "chatUuid": chat_uuid}
    if chat_uuid is not None:
        body["chatUid"] = chat_uuid
    if context:
        body["context"] = dict(context)
    if metadata:
        body["metadata"] = dict(metadata)
    for key, value in (extra or {}).items():
        if value is not None:
            body[key] = value
    return body


def auth_headers(api_key: str) -> dict[str, str]:
    """The headers every request carries."""
    return {
        "Authorization": f"Bearer {api_key}",
        "Content-Type": "application/json",
        "Accept": "application/json",
    }


# ----------------------------------------------------------------------- answers


def _load_json(body: bytes, secret: str | None) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:
        failure = type(exc).__name__
    # Raised outside the handler: the decoder's error holds the whole body (which
    # may echo the token), and must not ride along as `__context__`.
    msg = (
        "Devic answered 2xx with a body that is not JSON "
        f"({failure}); first characters: {excerpt(body, secret)!r}"
    )
    raise DevicProtocolError(msg, body=excerpt(body, secret))


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _chat_id(obj: Mapping[str, Any]) -> str | None:
    for key in CHAT_ID_KEYS:
        value = obj.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _content_text(content: Any) -> str | None:
    """Text of a message's content: a string, or `{"message": ...}`."""
    if isinstance(content, str):
        return content
    if isinstance(content, Mapping):
        inner = content.get("message")
        if isinstance(inner, str):
            return inner
    return None


def _last_assistant(messages: list[Any]) -> Mapping[str, Any] | None:
    for item in reversed(messages):
        if isinstance(item, Mapping) and item.get("role") == "assistant":
            return item
    return None


def assistant_turn(
    messages: list[Any], sent_roles: frozenset[str] = frozenset({"user"})
) -> list[Mapping[str, Any]]:
    """The assistant messages after the last message the client sent.

    `sent_roles` names what the client sends: its `user` message, or `tool`
    results when it answered a tool call.
    """
    start = 0
    for index, item in enumerate(messages):
        if isinstance(item, Mapping) and item.get("role") in sent_roles:
            start = index + 1
    return assistant_messages(messages[start:])


def turn_after(
    chat: Mapping[str, Any], sent_text: str
) -> list[Mapping[str, Any]] | None:
    """The assistant messages after `sent_text`, if it is the chat's last user message.

    `None` when the chat's last user message is not `sent_text` (the send was
    not processed); else the turn's assistant messages so far (maybe none yet).
    """
    messages = view_messages(chat)
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if isinstance(message, Mapping) and message.get("role") == "user":
            text = message_text(message)
            if text is not None and sent_text in text:
                return assistant_messages(messages[index + 1 :])
            return None
    return None


def assistant_messages(messages: list[Any]) -> list[Mapping[str, Any]]:
    """The `assistant` messages of a message list, in order."""
    return [
        item
        for item in messages
        if isinstance(item, Mapping) and item.get("role") == "assistant"
    ]


def turn_text(turn: list[Mapping[str, Any]]) -> str | None:
    """The texts of a turn's assistant messages, joined by a blank line.

    Messages without text (a message that only calls tools) are skipped;
    `None` when no message of the turn has text.
    """
    texts = [
        text
        for item in turn
        if (text := _content_text(item.get("content"))) is not None and text != ""
    ]
    if not texts:
        has_empty = any(_content_text(item.get("content")) == "" for item in turn)
        return "" if has_empty else None
    return "\n\n".join(texts)


def iso_timestamp(value: Any) -> str | None:
    """A message timestamp as ISO 8601 UTC: epoch milliseconds are converted."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        if not math.isfinite(value):
            return None
        moment = datetime.fromtimestamp(value / 1000, tz=timezone.utc)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return str(value)


def unwrap_envelope(payload: Any) -> tuple[Any, dict[str, Any]]:
    """Unwrap `{"success", "data", ...}`; return the payload and envelope extras."""
    if (
        isinstance(payload, Mapping)
        and payload
        and set(payload) <= _ENVELOPE_KEYS
        and ("data" in payload or "success" in payload)
    ):
        extras = {k: v for k, v in payload.items() if k not in {"data", "success"}}
        return payload.get("data"), extras
    return payload, {}


def parse_reply(
    body: bytes, *, sent_chat_uuid: str | None, secret: str | None
) -> DevicReply:
    """Read one 2xx answer into a `DevicReply`, or raise `DevicProtocolError`.

    Accepted shapes: the seed object, the platform envelope around any shape, a
    list of chat messages, and a chat object with `messages`. The reply is the
    last `assistant` message. A reply without an id continues `sent_chat_uuid`.
    """
    payload, envelope = unwrap_envelope(_load_json(body, secret))
    if envelope.get("error") is not None or (
        isinstance(payload, Mapping) and payload.get("success") is False
    ):
        msg = f"Devic answered 2xx but reported an error: {excerpt(body, secret)!r}"
        raise DevicProtocolError(msg, body=excerpt(body, secret))

    text: str | None = None
    chat_uuid: str | None = None
    tokens: dict[str, int | None] = {}
    timestamp = envelope.pop("timestamp", None)
    extra: dict[str, Any] = dict(envelope)

    if isinstance(payload, list):
        turn = assistant_turn(payload)
        if turn:
            last = turn[-1]
            text = turn_text(turn)
            chat_uuid = _chat_id(last) or next(
                (c for m in payload if isinstance(m, Mapping) and (c := _chat_id(m))),
                None,
            )
            tokens = _token_fields(last)
            timestamp = iso_timestamp(last.get("timestamp"))
    elif isinstance(payload, Mapping):
        chat_uuid = _chat_id(payload)
        tokens = _token_fields(payload)
        timestamp = payload.get("timestamp", timestamp)
        messages = payload.get("messages", payload.get("chatContent"))
        if isinstance(messages, list) and "message" not in payload:
            chat_turn = assistant_turn(messages)
            if chat_turn:
                text = turn_text(chat_turn)
                tokens = {
                    k: v if v is not None else _token_fields(chat_turn[-1])[k]
                    for k, v in tokens.items()
                }
            extra.update(
                {k: v for k, v in payload.items() if k not in _SEED_KEYS | {"messages"}}
            )
        else:
            text = _content_text(payload.get("message"))
            extra.update({k: v for k, v in payload.items() if k not in _SEED_KEYS})

    if text is None:
        what = (
            "no conversation id and no reply text"
            if chat_uuid is None
            else f"conversation id {redact(chat_uuid, secret)!r} but no reply text"
        )
        msg = (
            f"Devic answered 2xx with {what}; this is not a Devic reply. "
            f"First characters: {excerpt(body, secret)!r}"
        )
        raise DevicProtocolError(msg, body=excerpt(body, secret))

    if extra and secret and secret in json.dumps(extra, default=str):
        extra = json.loads(redact(json.dumps(extra, default=str), secret))
    return DevicReply(
        text=text,
        chat_uuid=server_chat_id(chat_uuid, secret) or sent_chat_uuid,
        tokens_used=tokens.get("tokens_used"),
        input_tokens=tokens.get("input_tokens"),
        output_tokens=tokens.get("output_tokens"),
        timestamp=str(timestamp) if timestamp is not None else None,
        extra=extra,
    )


def token_count(value: Any, name: str) -> int | None:
    """A token count from the server: a non-negative integer, else absent.

    A negative, fractional or non-numeric count is logged at WARNING and
    treated as absent, never put into usage.
    """
    count = _as_int(value)
    if value is None:
        return None
    if count is None or count < 0:
        logger.warning("Devic sent an unusable %s (%.40r); ignored.", name, value)
        return None
    return count


def _token_fields(obj: Mapping[str, Any]) -> dict[str, int | None]:
    """Token figures of an answer, or of a message (its `messageTokenUsage`)."""
    usage = obj.get("messageTokenUsage")
    source = usage if isinstance(usage, Mapping) else obj
    return {
        "tokens_used": token_count(obj.get("tokens_used"), "tokens_used"),
        "input_tokens": token_count(source.get("inputTokens"), "inputTokens"),
        "output_tokens": token_count(source.get("outputTokens"), "outputTokens"),
    }


# ------------------------------------------------------------------ platform runs


@dataclass(frozen=True)
class RunStarted:
    """The answer to an async send that started a run: the chat to follow."""

    chat_uuid: str
    note: str | None = None


def _is_finished_answer(payload: Any) -> bool:
    """Whether an async send's answer already holds the reply (no run to follow).

    A reply shape: the seed's body with `tokens_used`, a message list, or a chat
    object / `messages` list with an assistant message. A bare
    `{"chatUid", "message"?}` is a started run.
    """
    if isinstance(payload, list):
        return True
    if not isinstance(payload, Mapping):
        return False
    if "tokens_used" in payload:
        return True
    messages = payload.get("messages", payload.get("chatContent"))
    return isinstance(messages, list) and _last_assistant(messages) is not None


def parse_run_start(
    body: bytes, *, sent_chat_uuid: str | None, secret: str | None
) -> RunStarted | DevicReply:
    """Read an async send's 2xx answer: a started run, or an already finished reply."""
    payload, _ = unwrap_envelope(_load_json(body, secret))
    if _is_finished_answer(payload):
        return parse_reply(body, sent_chat_uuid=sent_chat_uuid, secret=secret)
    chat_uuid = _chat_id(payload) if isinstance(payload, Mapping) else None
    chat_uuid = chat_uuid or sent_chat_uuid
    if chat_uuid is None:
        msg = (
            "Devic answered the async send without a conversation id to follow; "
            f"first characters: {excerpt(body, secret)!r}"
        )
        raise DevicProtocolError(msg, body=excerpt(body, secret))
    note = payload.get("message") if isinstance(payload, Mapping) else None
    return RunStarted(
        server_chat_id(chat_uuid, secret) or chat_uuid,
        note if isinstance(note, str) else None,
    )


def tool_response_body(
    responses: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] | None
) -> dict[str, Any]:
    """The body of `POST …/tool-response`: the answers, tools restated on the first.

    Devic takes the client tools that stay available for the rest of the turn
    from the first response; without them the model can call none again.
    """
    items = [dict(response) for response in responses]
    if items and tools:
        items[0]["tools"] = [dict(tool) for tool in tools]
    return {"responses": items}


def parse_tool_ack(
    body: bytes, *, sent_chat_uuid: str | None, secret: str | None
) -> RunStarted:
    """Read a tool-response's 2xx answer (`{chatUid, message?}`): the run goes on."""
    payload, _ = unwrap_envelope(_load_json(body, secret)) if body.strip() else ({}, {})
    chat_uuid = _chat_id(payload) if isinstance(payload, Mapping) else None
    note = payload.get("message") if isinstance(payload, Mapping) else None
    return RunStarted(
        server_chat_id(chat_uuid, secret) or sent_chat_uuid or "",
        note if isinstance(note, str) else None,
    )


def pending_calls(view: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The client tool calls a run waits for (empty unless it waits).

    `pendingToolCalls` when the view has it; else, as Devic's own UI does, the
    unanswered `tool_calls` of the last assistant message that made any.
    """
    if view.get("status") != "waiting_for_tool_response":
        return []
    calls = view.get("pendingToolCalls")
    if isinstance(calls, list):
        return [call for call in calls if isinstance(call, dict)]
    messages = view_messages(view)
    answered = {
        m.get("tool_call_id")
        for m in messages
        if isinstance(m, Mapping) and m.get("role") == "tool"
    }
    for message in reversed(messages):
        made = message.get("tool_calls") if isinstance(message, Mapping) else None
        if isinstance(made, list) and made and message.get("role") == "assistant":
            return [
                call
                for call in made
                if isinstance(call, dict) and call.get("id") not in answered
            ]
    return []


def pending_call_ids(view: Mapping[str, Any]) -> frozenset[str]:
    """The ids of the client tool calls a realtime view says are still pending."""
    return frozenset(
        call["id"] for call in pending_calls(view) if isinstance(call.get("id"), str)
    )


def parse_view(body: bytes, *, secret: str | None) -> dict[str, Any]:
    """Read a realtime view (`…/chats/{chat}/realtime`): a dict with a `status`."""
    payload, _ = unwrap_envelope(_load_json(body, secret))
    if not isinstance(payload, Mapping) or not isinstance(payload.get("status"), str):
        msg = (
            "Devic's realtime view has no status; first characters: "
            f"{excerpt(body, secret)!r}"
        )
        raise DevicProtocolError(msg, body=excerpt(body, secret))
    return dict(payload)


def view_messages(view: Mapping[str, Any]) -> list[Any]:
    """The chat's messages in a realtime view or a chat history."""
    for key in ("chatHistory", "chatContent", "messages"):
        messages = view.get(key)
        if isinstance(messages, list):
            return messages
    return []


def message_text(message: Any) -> str | None:
    """A `ChatMessage`'s text (`content.message`, or a plain string content)."""
    if not isinstance(message, Mapping):
        return None
    return _content_text(message.get("content"))


@dataclass(frozen=True)
class SSEEvent:
    """One server-sent event: its name and its decoded JSON data."""

    event: str
    data: Any


class SSEDecoder:
    """Server-sent events from lines (the `text/event-stream` format).

    Feed it each line without its line break; it returns an event when a blank
    line ends one. Comments and unknown fields are ignored; a `data` field that
    is not JSON becomes a `DevicProtocolError`.
    """

    def __init__(self) -> None:
        self._event = "message"
        self._data: list[str] = []

    def feed(self, line: str) -> SSEEvent | None:
        """Take one line; return the event it completes, if any."""
        if line == "":
            if not self._data:
                self._event = "message"
                return None
            event, data = self._event, "\n".join(self._data)
            self._event, self._data = "message", []
            try:
                return SSEEvent(event, json.loads(data))
            except ValueError:
                msg = f"Devic's event stream sent a {event!r} event that is not JSON."
                raise DevicProtocolError(msg) from None
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        return None


def apply_event(view: dict[str, Any], event: SSEEvent) -> dict[str, Any]:
    """The realtime view after one stream event (`snapshot`, `partial`, `delta`)."""
    data = event.data
    if event.event == "snapshot" and isinstance(data, Mapping):
        payload, _ = unwrap_envelope(data)
        return dict(payload) if isinstance(payload, Mapping) else view
    if event.event == "partial" and isinstance(data, Mapping):
        return {**view, **data}
    if event.event == "delta" and isinstance(data, Mapping):
        append = data.get("append")
        streaming = view.get("streamingMessage")
        if isinstance(append, str) and isinstance(streaming, Mapping):
            content = streaming.get("content")
            text = _content_text(content) or ""
            content = dict(content) if isinstance(content, Mapping) else {}
            content["message"] = text + append
            return {**view, "streamingMessage": {**streaming, "content": content}}
    return view


def chat_totals(payload: Any) -> tuple[int, int] | None:
    """A chat's token totals `(input, output)` from its history, if it has them."""
    if not isinstance(payload, Mapping):
        return None
    for source in (payload.get("tokenUsage"), payload):
        if isinstance(source, Mapping):
            inp = token_count(source.get("inputTokens"), "inputTokens")
            out = token_count(source.get("outputTokens"), "outputTokens")
            if inp is not None or out is not None:
                return inp or 0, out or 0
    return None


def parse_chat(body: bytes, *, secret: str | None) -> dict[str, Any]:
    """Read a chat history (`GET …/chats/{chat}`) as a dict."""
    payload, _ = unwrap_envelope(_load_json(body, secret))
    if not isinstance(payload, Mapping):
        msg = f"Devic's chat history is not an object: {excerpt(body, secret)!r}"
        raise DevicProtocolError(msg, body=excerpt(body, secret))
    return dict(payload)


def _chat_summary(item: Mapping[str, Any]) -> dict[str, Any]:
    created = item.get("creationTimestampMs", item.get("createdAt"))
    updated = item.get(
        "lastEditTimestampMs", item.get("updatedAt", item.get("lastUpdatedAt"))
    )
    name = item.get("name")
    return {
        "chat_uuid": _chat_id(item),
        "name": name if isinstance(name, str) else None,
        "created_at": iso_timestamp(created),
        "updated_at": iso_timestamp(updated),
    }


def parse_chat_list(body: bytes, *, secret: str | None) -> list[dict[str, Any]]:
    """Read a list of chats: a bare list, `{"histories"}` or `{"chats"}`, enveloped.

    Each chat becomes `{"chat_uuid", "name", "created_at", "updated_at"}` (ISO
    8601 or `None`), newest first.
    """
    payload, _ = unwrap_envelope(_load_json(body, secret))
    if isinstance(payload, Mapping):
        payload = payload.get("histories", payload.get("chats", payload.get("data")))
    if not isinstance(payload, list):
        msg = f"Devic's chat list is not a list: {excerpt(body, secret)!r}"
        raise DevicProtocolError(msg, body=excerpt(body, secret))
    chats = [_chat_summary(item) for item in payload if isinstance(item, Mapping)]
    return sorted(
        chats, key=lambda c: c["updated_at"] or c["created_at"] or "", reverse=True
    )


def run_url(base_url: str, assistant_id: str, chat_uuid: str, route: str = "") -> str:
    """A chat's URL (`…/chats/{chat}`), or one of its routes (`realtime`, `stop`…)."""
    validate_assistant_id(assistant_id)
    validate_chat_uuid(chat_uuid)
    chat = f"{base_url}/assistants/{quote(assistant_id, safe='')}/chats/"
    chat += quote(chat_uuid, safe="")
    return f"{chat}/{route}" if route else chat


def chats_url(base_url: str, assistant_id: str) -> str:
    """The URL of an assistant's chat list."""
    return f"{base_url}/assistants/{quote(assistant_id, safe='')}/chats"
