"""The Devic emulator's core: one state machine behind both faces.

`DevicEmulator` holds the state (assistants, conversations, queued faults, the
record of requests) and answers one request in two steps, so each face can wait
its own way in between:

1. `_prepare` records the request, checks the route, the token and the body,
   picks a fault, and reserves the chat being continued (a second turn in a busy
   chat gets 409);
2. the face sleeps `delay` seconds (`time.sleep` in a server thread,
   `asyncio.sleep` in the async transport);
3. `_complete` runs the turn (appends the user turn, calls the reply function,
   appends the reply), releases the chat and says what the face must do: answer,
   drop the connection, or stall.

Everything shared sits behind one lock that is never held across a sleep or a
reply function, so the emulator is safe from server threads and asyncio tasks.
"""

from __future__ import annotations

import hmac
import json
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from email.utils import formatdate
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Literal, TypeAlias
from urllib.parse import unquote

if TYPE_CHECKING:
    from langchain_devic.testing._server import EmulatorServer
    from langchain_devic.testing._transport import EmulatorTransport

__all__ = [
    "DEFAULT_API_KEY",
    "Conversation",
    "DevicEmulator",
    "Fault",
    "FaultKind",
    "RecordedRequest",
    "ReplyFn",
]

#: The bearer token an emulator accepts unless told otherwise (a fake, local key).
DEFAULT_API_KEY = "emulator-key"
#: The path prefix every emulator also serves, whatever its `base_path`.
PLATFORM_PREFIX = "/api/v1"
#: How much of the user's message the default reply repeats, in characters.
ECHO_CHARS = 200
#: Headers never kept in the record, so a test log cannot hold a credential.
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization"})

JSON_CONTENT_TYPE = "application/json; charset=utf-8"
#: The `Server` header of every answer.
SERVER_NAME = "DevicEmulator"

FaultKind = Literal[
    "status",
    "latency",
    "drop",
    "drop_after_processing",
    "connect_error",
    "read_timeout",
    "malformed",
    "raw",
]
Face = Literal["transport", "server"]
Action = Literal["answer", "drop", "connect_error", "read_timeout"]

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
            when the path is not a messages route.
        chat_uuid: The `chatUuid` sent, when it is a string.
        message: The `message` sent, when it is a string.
        authorized: Whether the bearer token was accepted.
        status: The status answered, or `None` if no answer was sent (dropped,
            stalled, or still in flight).
        fault: The name of the fault applied to this request, if any.
        timestamp: `time.monotonic()` when the request arrived.
        query: The raw query string (without `?`), if any.
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


@dataclass(frozen=True)
class Conversation:
    """What a reply function sees: one chat, with the new user turn appended.

    Attributes:
        assistant_id: The assistant being run.
        chat_uuid: The conversation id (new or continued).
        messages: The whole history, oldest first, ending with the new user
            turn; each item is `{"role": "user" | "assistant", "content": str}`.
        context: The request's `context` object, if any.
        metadata: The request's `metadata` object, if any.
        request: The recorded request that carries this turn.
    """

    assistant_id: str
    chat_uuid: str
    messages: tuple[dict[str, str], ...]
    context: Mapping[str, Any] | None
    metadata: Mapping[str, Any] | None
    request: RecordedRequest

    @property
    def message(self) -> str:
        """The new user message (the last turn)."""
        return self.messages[-1]["content"]

    @property
    def turn(self) -> int:
        """How many user turns the chat has, this one included (1-based)."""
        return sum(1 for m in self.messages if m["role"] == "user")


#: A scripted assistant: the reply text, or raw response fields to merge in.
ReplyFn: TypeAlias = Callable[[Conversation], str | Mapping[str, Any]]


@dataclass(frozen=True)
class Fault:
    """A failure the emulator plays instead of (or around) a normal answer.

    Build faults with the classmethods (`Fault.status(429, retry_after=2)`,
    `Fault.drop()`, ...) and queue them with `DevicEmulator.inject`; each one is
    consumed by the next authorized POST to a messages route.

    Attributes:
        kind: Which failure this is; also its name in `RecordedRequest.fault`.
        code: The status answered (`status`, `malformed`, `raw`).
        seconds: How long to wait (`latency`, `read_timeout`).
        body: The body answered (`status`, `malformed`, `raw`).
        headers: Extra response headers, as `(name, value)` pairs.
    """

    kind: FaultKind
    code: int | None = None
    seconds: float = 0.0
    body: bytes | None = None
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def status(
        cls,
        code: int,
        *,
        retry_after: str | float | None = None,
        retry_after_ms: int | None = None,
        body: Mapping[str, Any] | bytes | None = None,
        retry_after_body: float | None = None,
    ) -> Fault:
        """Answer `code` with a Devic error body, without running the turn.

        A 500 is the exception: the turn runs, then the server fails, which is
        why a client must not retry a 500.

        Args:
            code: The HTTP status to answer.
            retry_after: The `Retry-After` header: seconds, or a string sent
                verbatim (e.g. an HTTP date).
            retry_after_ms: The `retry-after-ms` header, in milliseconds.
            body: The body to answer instead of the default error body.
            retry_after_body: The `retryAfter` field of the default 429 body.

        Returns:
            The fault.
        """
        _check_status(code)
        headers: list[tuple[str, str]] = [("Content-Type", JSON_CONTENT_TYPE)]
        if retry_after is not None:
            headers.append(("Retry-After", _format_seconds(retry_after)))
        if retry_after_ms is not None:
            headers.append(("retry-after-ms", str(int(retry_after_ms))))
        if body is None:
            payload = default_error_body(code, retry_after=retry_after_body)
            raw = _dump(payload)
        elif isinstance(body, bytes):
            raw = body
        else:
            raw = _dump(body)
        return cls(kind="status", code=code, body=raw, headers=tuple(headers))

    @classmethod
    def latency(cls, seconds: float) -> Fault:
        """Sleep `seconds` before handling this one request normally."""
        return cls(kind="latency", seconds=_check_seconds(seconds))

    @classmethod
    def drop(cls) -> Fault:
        """Close the connection without answering; the turn is not run."""
        return cls(kind="drop")

    @classmethod
    def drop_after_processing(cls) -> Fault:
        """Run the turn, then close the connection without answering."""
        return cls(kind="drop_after_processing")

    @classmethod
    def connect_error(cls) -> Fault:
        """Refuse the connection (transport face); the request is not recorded.

        The loopback server has already accepted the connection, so there it
        behaves like `drop()`.
        """
        return cls(kind="connect_error")

    @classmethod
    def read_timeout(cls, seconds: float = 0.0) -> Fault:
        """Run the turn, then stall `seconds` and never answer.

        The transport raises `httpx.ReadTimeout` after the stall (or after the
        client's read timeout, if shorter); the server closes the connection.
        """
        return cls(kind="read_timeout", seconds=_check_seconds(seconds))

    @classmethod
    def malformed(
        cls,
        body: bytes = b"<html>oops</html>",
        status: int = 200,
        content_type: str = "text/html",
    ) -> Fault:
        """Answer a body that is not a Devic reply; the turn is not run."""
        _check_status(status)
        return cls(
            kind="malformed",
            code=status,
            body=body,
            headers=(("Content-Type", content_type),),
        )

    @classmethod
    def raw(
        cls,
        status: int,
        body: bytes | Mapping[str, Any],
        headers: Mapping[str, str] | None = None,
    ) -> Fault:
        """Answer exactly this status, body and headers; the turn is not run.

        A mapping body is sent as JSON (with a JSON `Content-Type` unless
        `headers` names one). `Content-Length` is always computed.
        """
        _check_status(status)
        pairs = [
            (k, v) for k, v in (headers or {}).items() if k.lower() != "content-length"
        ]
        if isinstance(body, bytes):
            raw = body
        else:
            raw = _dump(body)
            if not any(k.lower() == "content-type" for k, _ in pairs):
                pairs.insert(0, ("Content-Type", JSON_CONTENT_TYPE))
        return cls(kind="raw", code=status, body=raw, headers=tuple(pairs))

    @property
    def name(self) -> str:
        """The fault's name, as stored in `RecordedRequest.fault`."""
        return self.kind

    @property
    def runs_turn(self) -> bool:
        """Whether the assistant runs the turn despite this fault."""
        if self.kind == "status":
            return self.code == HTTPStatus.INTERNAL_SERVER_ERROR
        return self.kind in {"latency", "drop_after_processing", "read_timeout"}


def default_error_body(
    code: int, *, retry_after: float | None = None
) -> dict[str, Any]:
    """Devic's error body for `code`: the 429 limit shape, else the platform shape."""
    if code == HTTPStatus.TOO_MANY_REQUESTS:
        body: dict[str, Any] = {
            "statusCode": 429,
            "error": "TENANT_LIMIT_EXCEEDED",
            "message": "Rate limit exceeded",
        }
        if retry_after is not None:
            body["retryAfter"] = retry_after
        return body
    return _error(_reason(code), _code_name(code))


# --------------------------------------------------------------- internal types


@dataclass(frozen=True)
class _Answer:
    """A complete HTTP answer: status, headers (without length) and body."""

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


@dataclass
class _Chat:
    """One conversation held by the emulator."""

    assistant_id: str
    created_at: str
    messages: list[dict[str, str]]
    busy: bool = False


class _Slot:
    """A place in the request log, filled in as the request is answered."""

    __slots__ = ("record",)

    def __init__(self, record: RecordedRequest) -> None:
        self.record = record


@dataclass
class _Turn:
    """A validated turn waiting to run."""

    assistant_id: str
    chat_uuid: str | None
    message: str
    context: Mapping[str, Any] | None
    metadata: Mapping[str, Any] | None
    reply: ReplyFn
    chat: _Chat | None = None


@dataclass
class _Pending:
    """What `_prepare` decided; the face sleeps `delay`, then calls `_complete`."""

    slot: _Slot | None
    delay: float = 0.0
    answer: _Answer | None = None
    turn: _Turn | None = None
    action: Action = "answer"
    stall: float = 0.0
    fault: Fault | None = None


@dataclass(frozen=True)
class _Outcome:
    """What the face must do: answer, drop the connection, or stall."""

    action: Action
    answer: _Answer | None = None
    stall: float = 0.0


# -------------------------------------------------------------------- emulator


class DevicEmulator:
    """A faithful local Devic: bearer auth, conversations, scripted replies, faults.

    One core serves two faces: `transport()` (an in-process `httpx` transport,
    no sockets) and `serve()` (a real HTTP server on a loopback port). Both give
    the same answers for the same requests and seed.

    Args:
        api_key: The bearer token the emulator accepts.
        assistants: `None` accepts any assistant id with the default reply;
            otherwise only these ids exist (a mapping gives each its reply
            function, `None` meaning the default reply).
        dialect: `"seed"` answers the seed contract's flat body; `"platform"`
            answers the platform's envelope with a chat object.
        seed: Makes conversation ids deterministic.
        base_path: The path prefix of the messages route (`/api/v1` is always
            served too).

    Attributes:
        dialect: The answer shape; may be switched between requests.
        latency: Seconds every messages request waits before it is answered.
        fault_policy: Consulted (with the recorded request) when no fault is
            queued; return a `Fault` to apply or `None`. Use seeded randomness
            for soak tests.
    """

    def __init__(
        self,
        api_key: str = DEFAULT_API_KEY,
        assistants: Iterable[str] | Mapping[str, ReplyFn | None] | None = None,
        dialect: Literal["seed", "platform"] = "seed",
        seed: int = 0,
        base_path: str = "/v1",
    ) -> None:
        if not isinstance(api_key, str) or not api_key:
            msg = "api_key must be a non-empty string."
            raise ValueError(msg)
        if dialect not in ("seed", "platform"):
            msg = f"dialect must be 'seed' or 'platform', got {dialect!r}."
            raise ValueError(msg)
        self._api_key = api_key.encode("utf-8")
        self.dialect: Literal["seed", "platform"] = dialect
        self.seed = seed
        self.base_path = _normalize_base_path(base_path)
        self.latency: float = 0.0
        self.fault_policy: Callable[[RecordedRequest], Fault | None] | None = None
        self._lock = threading.RLock()
        self._open = assistants is None
        self._assistants: dict[str, ReplyFn | None] = {}
        if isinstance(assistants, str):
            self._assistants[assistants] = None
        elif isinstance(assistants, Mapping):
            self._assistants.update(assistants)
        elif assistants is not None:
            self._assistants.update(dict.fromkeys(assistants))
        self._chats: dict[str, _Chat] = {}
        self._slots: list[_Slot] = []
        self._faults: deque[Fault] = deque()
        self._counter = 0
        prefixes = [self.base_path, PLATFORM_PREFIX]
        self._prefixes = tuple(dict.fromkeys(p + "/assistants/" for p in prefixes))

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(dialect={self.dialect!r}, seed={self.seed}, "
            f"base_path={self.base_path!r})"
        )

    # ----------------------------------------------------------- configuration

    def add_assistant(self, assistant_id: str, reply: ReplyFn | None = None) -> None:
        """Create (or re-script) an assistant; `reply=None` uses the default reply."""
        if not isinstance(assistant_id, str) or not assistant_id:
            msg = "assistant_id must be a non-empty string."
            raise ValueError(msg)
        with self._lock:
            self._assistants[assistant_id] = reply

    def inject(self, *faults: Fault) -> None:
        """Queue faults; each is consumed, in order, by the next messages request."""
        for fault in faults:
            if not isinstance(fault, Fault):
                msg = f"inject() takes Fault objects, got {type(fault).__name__}."
                raise TypeError(msg)
        with self._lock:
            self._faults.extend(faults)

    def reset(self) -> None:
        """Forget requests, conversations and queued faults (and restart the ids)."""
        with self._lock:
            self._slots.clear()
            self._chats.clear()
            self._faults.clear()
            self._counter = 0

    @staticmethod
    def default_reply(conversation: Conversation) -> str:
        """The default assistant: numbers the turn and echoes the user's message."""
        message = conversation.message
        if len(message) > ECHO_CHARS:
            message = message[:ECHO_CHARS] + "…"
        return f"Reply {conversation.turn} from {conversation.assistant_id}: {message}"

    # --------------------------------------------------------------- inspection

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, in arrival order (a snapshot)."""
        with self._lock:
            return [slot.record for slot in self._slots]

    @property
    def conversations(self) -> dict[str, list[dict[str, str]]]:
        """Each chat id's history, oldest turn first (a snapshot)."""
        with self._lock:
            return {
                chat_id: [dict(m) for m in chat.messages]
                for chat_id, chat in self._chats.items()
            }

    @property
    def queued_faults(self) -> tuple[Fault, ...]:
        """The faults injected but not yet consumed, next first."""
        with self._lock:
            return tuple(self._faults)

    def chat_owner(self, chat_uuid: str) -> str | None:
        """The assistant a chat id belongs to, or `None` if there is no such chat."""
        with self._lock:
            chat = self._chats.get(chat_uuid)
            return chat.assistant_id if chat is not None else None

    # -------------------------------------------------------------------- faces

    @property
    def base_url(self) -> str:
        """The base URL to pair with `transport()` (loopback, so plain HTTP is fine)."""
        return f"http://127.0.0.1{self.base_path}"

    def transport(self) -> EmulatorTransport:
        """An `httpx` transport (sync and async) answering from this emulator."""
        from langchain_devic.testing._transport import EmulatorTransport

        return EmulatorTransport(self)

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> EmulatorServer:
        """Serve this emulator over HTTP on a loopback address, in the background.

        Args:
            host: A loopback address (`127.0.0.0/8`, `::1` or `localhost`).
            port: The port; `0` picks a free one (read it from `.port`).

        Returns:
            The running server; use it as a context manager or call `close()`.

        Raises:
            ValueError: If `host` is not a loopback address.
        """
        from langchain_devic.testing._server import EmulatorServer

        return EmulatorServer(self, host=host, port=port)

    # ------------------------------------------------------------- the core

    def _prepare(
        self,
        method: str,
        target: str,
        headers: Iterable[tuple[str, str]],
        body: bytes,
        *,
        face: Face,
    ) -> _Pending:
        """Record a request and decide how it will be answered (no waiting)."""
        arrived = time.monotonic()
        method = method.upper()
        path, _, query = target.partition("?")
        header_pairs = list(headers)
        parsed = _parse_json(body)
        assistant_id = self._route(path)
        payload = parsed if isinstance(parsed, dict) else {}
        sent_chat = payload.get("chatUuid")
        sent_message = payload.get("message")
        record = RecordedRequest(
            method=method,
            path=path,
            query=query,
            headers=_public_headers(header_pairs),
            body=body,
            json=parsed,
            assistant_id=assistant_id,
            chat_uuid=sent_chat if isinstance(sent_chat, str) else None,
            message=sent_message if isinstance(sent_message, str) else None,
            authorized=self._authorized(header_pairs),
            timestamp=arrived,
        )
        slot = _Slot(record)
        with self._lock:
            self._slots.append(slot)

        if assistant_id is None:
            not_found = {
                "statusCode": 404,
                "error": "NOT_FOUND",
                "message": f"Cannot {method} {path[:200]}",
            }
            return _Pending(slot, answer=_json_answer(404, not_found))
        delay = max(self.latency, 0.0)
        if method != "POST":
            not_allowed = {
                "statusCode": 405,
                "error": "METHOD_NOT_ALLOWED",
                "message": f"Method {method} is not allowed here; use POST.",
            }
            answer = _json_answer(405, not_allowed, extra=(("Allow", "POST"),))
            return _Pending(slot, delay=delay, answer=answer)
        if not record.authorized:
            unauthorized = _error("Invalid or missing API key", "UNAUTHORIZED")
            return _Pending(slot, delay=delay, answer=_json_answer(401, unauthorized))

        fault = self._next_fault(record)
        if fault is None:
            return self._validate(slot, record, delay, headers=header_pairs)
        slot.record = replace(record, fault=fault.name)
        if fault.kind == "connect_error":
            if face == "transport":
                with self._lock:
                    if slot in self._slots:
                        self._slots.remove(slot)
                return _Pending(None, action="connect_error", fault=fault)
            return _Pending(slot, delay=delay, action="drop", fault=fault)
        if fault.kind in {"status", "malformed", "raw"}:
            assert fault.code is not None  # noqa: S101 - set by every constructor
            canned = _Answer(fault.code, fault.headers, fault.body or b"")
        else:
            canned = None
        if not fault.runs_turn:
            action: Action = "drop" if fault.kind == "drop" else "answer"
            return _Pending(
                slot, delay=delay, answer=canned, action=action, fault=fault
            )

        pending = self._validate(slot, record, delay, headers=header_pairs)
        pending.fault = fault
        if fault.kind == "latency":
            pending.delay += fault.seconds
        elif fault.kind == "drop_after_processing":
            pending.action = "drop"
        elif fault.kind == "read_timeout":
            pending.action = "read_timeout"
            pending.stall = fault.seconds
        else:  # a 500: the turn runs, then the server fails
            pending.answer = canned
        return pending

    def _validate(
        self,
        slot: _Slot,
        record: RecordedRequest,
        delay: float,
        *,
        headers: list[tuple[str, str]],
    ) -> _Pending:
        """Check the body, the assistant and the chat; reserve the chat."""

        def refuse(status: int, message: str, code: str) -> _Pending:
            answer = _json_answer(status, _error(message, code))
            return _Pending(slot, delay=delay, answer=answer)

        content_type = next(
            (v for k, v in headers if k.lower() == "content-type"), ""
        ).lower()
        if "json" not in content_type:
            return refuse(400, "Content-Type must be application/json", "BAD_REQUEST")
        payload = record.json
        message = payload.get("message") if isinstance(payload, dict) else None
        if not isinstance(payload, dict) or not isinstance(message, str) or not message:
            return refuse(
                400,
                "'message' is required and must be a non-empty string",
                "BAD_REQUEST",
            )
        chat_uuid = payload.get("chatUuid")
        if chat_uuid is not None and not isinstance(chat_uuid, str):
            return refuse(400, "'chatUuid' must be a string or null", "BAD_REQUEST")
        for name in ("context", "metadata"):
            value = payload.get(name)
            if value is not None and not isinstance(value, dict):
                return refuse(400, f"'{name}' must be an object", "BAD_REQUEST")

        assistant_id = record.assistant_id
        assert assistant_id is not None  # noqa: S101 - routed requests only
        with self._lock:
            if assistant_id in self._assistants:
                reply = self._assistants[assistant_id] or self.default_reply
            elif self._open:
                reply = self.default_reply
            else:
                return refuse(
                    404, f"Assistant '{assistant_id}' not found", "ASSISTANT_NOT_FOUND"
                )
            chat = None
            if chat_uuid is not None:
                chat = self._chats.get(chat_uuid)
                if chat is None or chat.assistant_id != assistant_id:
                    return refuse(
                        404, f"Chat '{chat_uuid}' not found", "CHAT_NOT_FOUND"
                    )
                if chat.busy:
                    return refuse(
                        409, "Chat is still processing a previous message", "CHAT_BUSY"
                    )
                chat.busy = True
        turn = _Turn(
            assistant_id=assistant_id,
            chat_uuid=chat_uuid,
            message=message,
            context=payload.get("context"),
            metadata=payload.get("metadata"),
            reply=reply,
            chat=chat,
        )
        return _Pending(slot, delay=delay, turn=turn)

    def _complete(self, pending: _Pending) -> _Outcome:
        """Run the turn (if any), settle the record and say what to send."""
        answer = pending.answer
        if pending.turn is not None:
            try:
                result = self._run_turn(pending.turn, pending.slot)
            finally:
                self._release(pending.turn)
            if answer is None:
                answer = result
        if pending.action != "answer":
            self._settle(pending.slot, None)
            return _Outcome(pending.action, stall=pending.stall)
        if answer is None:  # pragma: no cover - every answering path sets one
            answer = _json_answer(500, _error("No answer", "INTERNAL_ERROR"))
        self._settle(pending.slot, answer.status)
        return _Outcome("answer", answer=answer)

    def _abandon(self, pending: _Pending) -> None:
        """The face gave up while waiting (e.g. a cancelled task): free the chat."""
        if pending.turn is not None:
            self._release(pending.turn)
        self._settle(pending.slot, None)

    # ------------------------------------------------------------- internals

    def _route(self, path: str) -> str | None:
        """The percent-decoded assistant id of a messages path, else `None`."""
        for prefix in self._prefixes:
            if path.startswith(prefix):
                segment, sep, rest = path[len(prefix) :].partition("/")
                if sep and rest == "messages" and segment:
                    return unquote(segment)
        return None

    def _authorized(self, headers: list[tuple[str, str]]) -> bool:
        """Whether exactly one `Authorization: Bearer <api_key>` header was sent."""
        values = [v for k, v in headers if k.lower() == "authorization"]
        if len(values) != 1:
            return False
        scheme, _, token = values[0].strip().partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(token.strip().encode("utf-8"), self._api_key)

    def _next_fault(self, record: RecordedRequest) -> Fault | None:
        """The next queued fault, else what the fault policy says."""
        with self._lock:
            if self._faults:
                return self._faults.popleft()
        policy = self.fault_policy
        return policy(record) if policy is not None else None

    def _new_chat_id(self) -> str:
        """The next deterministic conversation id (call with the lock held)."""
        while True:
            rng = random.Random(f"{self.seed}:{self._counter}")  # noqa: S311 - ids, not secrets
            self._counter += 1
            chat_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            if chat_id not in self._chats:
                return chat_id

    def _release(self, turn: _Turn) -> None:
        with self._lock:
            if turn.chat is not None:
                turn.chat.busy = False

    def _settle(self, slot: _Slot | None, status: int | None) -> None:
        if slot is not None:
            with self._lock:
                slot.record = replace(slot.record, status=status)

    def _run_turn(self, turn: _Turn, slot: _Slot | None) -> _Answer:
        """Append the user turn, ask the assistant, append its reply, answer."""
        with self._lock:
            if turn.chat_uuid is None:
                chat_id = self._new_chat_id()
                chat = _Chat(turn.assistant_id, _now(), [], busy=True)
                self._chats[chat_id] = chat
                turn.chat = chat
            else:
                chat_id = turn.chat_uuid
                found = self._chats.get(chat_id)
                if found is None or found is not turn.chat:  # reset() meanwhile
                    return _json_answer(
                        404, _error(f"Chat '{chat_id}' not found", "CHAT_NOT_FOUND")
                    )
                chat = found
            chat.messages.append({"role": "user", "content": turn.message})
            conversation = Conversation(
                assistant_id=turn.assistant_id,
                chat_uuid=chat_id,
                messages=tuple(dict(m) for m in chat.messages),
                context=turn.context,
                metadata=turn.metadata,
                request=slot.record if slot is not None else _NO_RECORD,
            )
        try:
            result = turn.reply(conversation)
            if isinstance(result, str):
                text, overrides = result, None
            elif isinstance(result, Mapping):
                overrides = dict(result)
                scripted = overrides.get("message")
                text = (
                    scripted
                    if isinstance(scripted, str)
                    else self.default_reply(conversation)
                )
            else:
                kind = type(result).__name__
                msg = f"a reply function must return str or Mapping, not {kind}"
                raise TypeError(msg)
        except Exception as exc:
            with self._lock:
                if chat.messages and chat.messages[-1]["content"] == turn.message:
                    chat.messages.pop()
                if turn.chat_uuid is None and not chat.messages:
                    self._chats.pop(chat_id, None)
            failure = (
                f"The reply function of assistant '{turn.assistant_id}' raised "
                f"{type(exc).__name__}: {exc}"
            )
            return _json_answer(500, _error(failure, "INTERNAL_ERROR"))

        with self._lock:
            chat.messages.append({"role": "assistant", "content": text})
            history = [dict(m) for m in chat.messages]
            created_at = chat.created_at
        input_tokens = max(1, sum(len(m["content"].split()) for m in history[:-1]))
        output_tokens = max(1, len(text.split()))
        now = _now()
        body: dict[str, Any]
        if self.dialect == "platform":
            data: dict[str, Any] = {
                "chatUid": chat_id,
                "assistantIdentifier": turn.assistant_id,
                "createdAt": created_at,
                "messages": [_platform_message(m) for m in history],
                "metadata": dict(turn.metadata or {}),
                "inputTokens": input_tokens,
                "outputTokens": output_tokens,
            }
            if overrides is not None:
                if isinstance(overrides.get("message"), str):
                    del overrides["message"]
                _merge(data, overrides)
            body = {"success": True, "data": data, "timestamp": now}
            answered_id = data.get("chatUid")
        else:
            body = {
                "chatUuid": chat_id,
                "message": text,
                "tokens_used": input_tokens + output_tokens,
                "timestamp": now,
            }
            if overrides is not None:
                _merge(body, overrides)
            answered_id = body.get("chatUuid")
        if isinstance(answered_id, str) and answered_id != chat_id:
            self._fork(chat_id, answered_id)
        try:
            return _json_answer(200, body)
        except (TypeError, ValueError) as exc:
            failure = f"The reply of assistant '{turn.assistant_id}' is not JSON: {exc}"
            return _json_answer(500, _error(failure, "INTERNAL_ERROR"))

    def _fork(self, chat_id: str, new_id: str) -> None:
        """Register a scripted fork: the new id continues a copy of the history."""
        with self._lock:
            source = self._chats.get(chat_id)
            if source is not None and new_id not in self._chats:
                self._chats[new_id] = _Chat(
                    source.assistant_id,
                    _now(),
                    [dict(m) for m in source.messages],
                )


_NO_RECORD = RecordedRequest(
    method="POST",
    path="",
    headers={},
    body=b"",
    json=None,
    assistant_id=None,
    chat_uuid=None,
    message=None,
    authorized=True,
)


# --------------------------------------------------------------------- helpers


def _normalize_base_path(base_path: str) -> str:
    path = base_path.strip().rstrip("/")
    if path and not path.startswith("/"):
        path = "/" + path
    return path


def _public_headers(headers: list[tuple[str, str]]) -> dict[str, str]:
    """Headers with lower-cased names, duplicates joined, credentials dropped."""
    kept: dict[str, str] = {}
    for name, value in headers:
        key = name.lower()
        if key in SECRET_HEADERS:
            continue
        kept[key] = f"{kept[key]}, {value}" if key in kept else value
    return kept


def _parse_json(body: bytes) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None


def _dump(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")


def _error(message: str, code: str) -> dict[str, Any]:
    return {"success": False, "error": {"message": message, "code": code}}


def _json_answer(
    status: int, payload: Any, *, extra: tuple[tuple[str, str], ...] = ()
) -> _Answer:
    return _Answer(
        status, (("Content-Type", JSON_CONTENT_TYPE), *extra), _dump(payload)
    )


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


def _check_status(code: int) -> None:
    if isinstance(code, bool) or not isinstance(code, int) or not 100 <= code <= 599:
        msg = f"HTTP status must be an int in 100..599, got {code!r}."
        raise ValueError(msg)


def _check_seconds(seconds: float) -> float:
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, (int, float))
        or seconds < 0
    ):
        msg = f"seconds must be a number >= 0, got {seconds!r}."
        raise ValueError(msg)
    return float(seconds)


def _format_seconds(value: str | float) -> str:
    if isinstance(value, str):
        return value
    seconds = float(value)
    return str(int(seconds)) if seconds.is_integer() else repr(seconds)


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


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
