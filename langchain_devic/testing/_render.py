"""What the emulator says: reply and error bodies per dialect, and the headers.

Every byte an emulator answer carries is written here: the reply body in the
`"flat"` dialect (the seed contract's `{"chatUuid", "message", "tokens_used",
"timestamp"}`) or the `"platform"` one (an envelope around a chat object), the
error bodies of both shapes, and the headers both faces send. Pure functions and
one small value type; no state, no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import formatdate
from http import HTTPStatus
from typing import Any, Literal, TypeAlias

__all__ = [
    "DIALECTS",
    "JSON_CONTENT_TYPE",
    "SERVER_NAME",
    "Answer",
    "Dialect",
    "default_error_body",
    "dump",
    "error_answer",
    "json_answer",
    "method_not_allowed",
    "now",
    "replied_chat_id",
    "reply_body",
    "route_not_found",
]

#: The answer shapes: the seed contract's flat body, or the platform's envelope.
Dialect: TypeAlias = Literal["flat", "platform"]
DIALECTS: tuple[Dialect, ...] = ("flat", "platform")

JSON_CONTENT_TYPE = "application/json; charset=utf-8"
#: The `Server` header of every answer.
SERVER_NAME = "DevicEmulator"

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
        own = {name.lower() for name, _ in self.headers}
        pairs = [
            (name, value)
            for name, value in (
                ("Server", SERVER_NAME),
                ("Date", formatdate(usegmt=True)),
            )
            if name.lower() not in own
        ]
        pairs.extend(self.headers)
        pairs.append(("Content-Length", str(len(self.body))))
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


def error_answer(status: int, message: str, code: str) -> Answer:
    """Devic's `{"success": false, "error": {"message", "code"}}` answer."""
    return json_answer(status, _error_body(message, code))


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


def route_not_found(method: str, path: str) -> Answer:
    """The framework's 404 for a path that is no route (NestJS shape)."""
    message = f"Cannot {method} {path[:200]}"
    return json_answer(404, _nest_error(404, "NOT_FOUND", message))


def method_not_allowed(method: str) -> Answer:
    """The 405 for a messages route asked with another method than POST."""
    message = f"Method {method} is not allowed here; use POST."
    return json_answer(
        405,
        _nest_error(405, "METHOD_NOT_ALLOWED", message),
        extra=(("Allow", "POST"),),
    )


def reply_body(
    dialect: Dialect,
    *,
    chat_id: str,
    assistant_id: str,
    created_at: str,
    history: Sequence[Mapping[str, str]],
    metadata: Mapping[str, Any] | None,
    overrides: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The body of a turn's 200 answer in `dialect`.

    Token counts are words: the input is every turn before the reply (at least
    1), the output the reply's words (at least 1).

    Args:
        dialect: `"flat"` or `"platform"`.
        chat_id: The conversation id.
        assistant_id: The assistant that replied.
        created_at: When the chat began (ISO 8601).
        history: The whole chat, ending with the reply.
        metadata: The request's `metadata` object (echoed by the platform).
        overrides: Fields a reply function asked for; a `None` value deletes
            the field. In the platform dialect they go into `data`, except a
            `message` string, which is already the reply.

    Returns:
        The body, ready to be dumped.
    """
    text = history[-1]["content"]
    input_tokens = max(1, sum(len(m["content"].split()) for m in history[:-1]))
    output_tokens = max(1, len(text.split()))
    fields = dict(overrides or {})
    if dialect == "flat":
        body: dict[str, Any] = {
            "chatUuid": chat_id,
            "message": text,
            "tokens_used": input_tokens + output_tokens,
            "timestamp": now(),
        }
        _merge(body, fields)
        return body
    if isinstance(fields.get("message"), str):
        del fields["message"]
    data: dict[str, Any] = {
        "chatUid": chat_id,
        "assistantIdentifier": assistant_id,
        "createdAt": created_at,
        "messages": [_platform_message(m) for m in history],
        "metadata": dict(metadata or {}),
        "inputTokens": input_tokens,
        "outputTokens": output_tokens,
    }
    _merge(data, fields)
    return {"success": True, "data": data, "timestamp": now()}


def replied_chat_id(dialect: Dialect, body: Mapping[str, Any]) -> object:
    """The conversation id a reply body answers (a reply function may change it)."""
    if dialect == "flat":
        return body.get("chatUuid")
    return body["data"].get("chatUid")


def now() -> str:
    """The current UTC time as Devic writes it (`2025-10-29T14:58:25Z`)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------- helpers


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


def _platform_message(message: Mapping[str, str]) -> dict[str, Any]:
    if message["role"] == "assistant":
        content: dict[str, Any] = {
            "message": message["content"],
            "data": None,
            "files": [],
        }
    else:
        content = {"message": message["content"]}
    return {"role": message["role"], "content": content}
