"""The emulator's state, and the one way a request goes through it.

`Core` keeps the assistants, the conversations, the queued faults and the log
of requests. A face hands it each request with `begin()`, which records it,
checks the route, the token, the body, the assistant and the chat, applies the
next fault, and reserves the chat being continued (a second turn in a busy chat
gets 409). The `Exchange` it returns knows how long the request must wait:
`play()` (a thread) or `aplay()` (a task) waits with the face's own sleep, then
calls `finish()`, which runs the turn and says how the face must end the
exchange: answer, drop the connection, or time out. A wait cut short (a
cancelled task, an interrupt) calls `abandon()`, which frees the chat.

Everything shared sits behind one lock that is never held across a wait or a
reply function, so the core is safe from server threads and asyncio tasks.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Generator, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, TypeAlias
from urllib.parse import unquote

from langchain_devic.testing._faults import NO_FAULT, Action, Face, Fault
from langchain_devic.testing._render import (
    DIALECTS,
    Answer,
    Dialect,
    error_answer,
    json_answer,
    method_not_allowed,
    now,
    replied_chat_id,
    reply_body,
    route_not_found,
)

__all__ = [
    "DEFAULT_API_KEY",
    "Conversation",
    "Core",
    "Exchange",
    "Outcome",
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
        fault: The kind of the fault applied to this request, if any.
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
class Outcome:
    """How an exchange ends, for its face to carry out.

    Attributes:
        action: Send `answer`, drop the connection, refuse it, or time out.
        answer: What to send, when `action` is `"answer"`.
    """

    action: Action
    answer: Answer | None = None


# --------------------------------------------------------------- internal types


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
    """A checked turn waiting to run; `chat` is reserved when it is continued."""

    slot: _Slot
    assistant_id: str
    chat_uuid: str | None
    message: str
    context: Mapping[str, Any] | None
    metadata: Mapping[str, Any] | None
    reply: ReplyFn
    chat: _Chat | None = None


# -------------------------------------------------------------------- exchange


class Exchange:
    """One request on its way through the core: begun, waited, then finished.

    Made by `Core.begin`. A face either calls `play` / `aplay` (wait, then
    finish, abandoning if the wait is cut short), or does the same by hand with
    `finish` and `abandon`.
    """

    def __init__(
        self,
        core: Core,
        slot: _Slot | None,
        *,
        delay: float = 0.0,
        answer: Answer | None = None,
        turn: _Turn | None = None,
        action: Action = "answer",
        stall: float = 0.0,
    ) -> None:
        self._core = core
        self._slot = slot
        self._answer = answer
        self._turn = turn
        self._action = action
        self._stall = stall
        self._outcome: Outcome | None = None
        #: Seconds to wait before the turn runs (latency, injected or not).
        self.delay = delay

    def finish(self) -> Outcome:
        """Run the turn (if any), settle the record and say how to end."""
        answer = self._answer
        if self._turn is not None:
            try:
                ran = self._core._run_turn(self._turn)
            finally:
                self._core._release(self._turn)
            if answer is None:
                answer = ran
        if self._action != "answer":
            self._core._settle(self._slot, None)
            return Outcome(self._action)
        assert answer is not None  # noqa: S101 - an answering exchange has one
        self._core._settle(self._slot, answer.status)
        return Outcome("answer", answer)

    def abandon(self) -> None:
        """The face stopped waiting (e.g. a cancelled task): free the chat."""
        if self._turn is not None:
            self._core._release(self._turn)
        self._core._settle(self._slot, None)

    def play(
        self, sleep: Callable[[float], object], read_timeout: float | None = None
    ) -> Outcome:
        """Wait with `sleep` (e.g. `time.sleep`), then finish.

        Args:
            sleep: The face's way to wait in its thread.
            read_timeout: The client's read timeout, if the face knows it: a
                longer wait ends there (see `_waits`).

        Returns:
            How the exchange ends.
        """
        with contextlib.closing(self._waits(read_timeout)) as waits:
            for seconds in waits:
                sleep(seconds)
        return self._ended()

    async def aplay(
        self,
        sleep: Callable[[float], Awaitable[object]],
        read_timeout: float | None = None,
    ) -> Outcome:
        """Wait with `sleep` (e.g. `asyncio.sleep`), then finish; see `play`."""
        with contextlib.closing(self._waits(read_timeout)) as waits:
            for seconds in waits:
                await sleep(seconds)
        return self._ended()

    def _waits(self, read_timeout: float | None) -> Generator[float, None, None]:
        """Each wait of this exchange, in order; finishes it on the way.

        The request waits `delay`, then the turn runs. If the client's read
        timeout is shorter than `delay`, the wait ends there with a
        `read_timeout` outcome, and the turn still runs, as on a real server
        that kept working. A `read_timeout` ending stalls (up to the client's
        timeout) before the face gives up. A face that stops waiting (the
        generator is closed at a wait) abandons the exchange.
        """
        wait, gives_up = self.delay, False
        if read_timeout is not None and wait > read_timeout:
            wait, gives_up = read_timeout, True
        try:
            if wait > 0:
                yield wait
        except BaseException:
            self.abandon()
            raise
        outcome = self.finish()
        if gives_up:
            outcome = Outcome("read_timeout")
        elif outcome.action == "read_timeout":
            stall = self._stall
            if read_timeout is not None:
                stall = min(stall, read_timeout)
            if stall > 0:
                yield stall
        self._outcome = outcome

    def _ended(self) -> Outcome:
        assert self._outcome is not None  # noqa: S101 - set when the waits run out
        return self._outcome


# ------------------------------------------------------------------------ core


class Core:
    """The emulator's state and its request handling, without any face.

    `DevicEmulator` (in `langchain_devic.testing`) adds the faces; its
    docstring documents the arguments and attributes.
    """

    def __init__(
        self,
        api_key: str = DEFAULT_API_KEY,
        assistants: Iterable[str] | Mapping[str, ReplyFn | None] | None = None,
        dialect: Dialect = "flat",
        random_seed: int = 0,
        base_path: str = "/v1",
    ) -> None:
        if not isinstance(api_key, str) or not api_key:
            msg = "api_key must be a non-empty string."
            raise ValueError(msg)
        if dialect not in DIALECTS:
            msg = f"dialect must be 'flat' or 'platform', got {dialect!r}."
            raise ValueError(msg)
        self._api_key = api_key.encode("utf-8")
        self.dialect: Dialect = dialect
        self.random_seed = random_seed
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
            f"{type(self).__name__}(dialect={self.dialect!r}, "
            f"random_seed={self.random_seed}, base_path={self.base_path!r})"
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

    # ------------------------------------------------------ the faces' entry

    def begin(
        self,
        method: str,
        target: str,
        headers: Iterable[tuple[str, str]],
        body: bytes,
        *,
        face: Face,
    ) -> Exchange:
        """Record a request and decide how it will be answered (no waiting).

        Args:
            method: The HTTP method.
            target: The raw request target: the percent-encoded path and query.
            headers: The request headers, as `(name, value)` pairs.
            body: The whole request body.
            face: The face that received it (a fault may act differently).

        Returns:
            The exchange; the face waits it out with `play` or `aplay`.
        """
        header_pairs = list(headers)
        slot = _Slot(self._record(method, target, header_pairs, body))
        record = slot.record
        with self._lock:
            self._slots.append(slot)
        if record.assistant_id is None:
            not_found = route_not_found(record.method, record.path)
            return Exchange(self, slot, answer=not_found)
        delay = max(self.latency, 0.0)
        if record.method != "POST":
            not_allowed = method_not_allowed(record.method)
            return Exchange(self, slot, delay=delay, answer=not_allowed)
        if not record.authorized:
            refusal = error_answer(401, "Invalid or missing API key", "UNAUTHORIZED")
            return Exchange(self, slot, delay=delay, answer=refusal)

        fault = self._next_fault(record)
        effect = NO_FAULT if fault is None else fault.effect(face)
        if fault is not None:
            slot.record = replace(record, fault=fault.kind)
        if not effect.arrives:
            self._forget(slot)
            return Exchange(self, None, action=effect.action)
        checked = self._check(slot, header_pairs) if effect.runs_turn else None
        turn = checked if isinstance(checked, _Turn) else None
        answer = checked if isinstance(checked, Answer) else None
        return Exchange(
            self,
            slot,
            delay=delay + effect.delay,
            answer=effect.answer if effect.answer is not None else answer,
            turn=turn,
            action=effect.action,
            stall=effect.stall,
        )

    # ------------------------------------------------------------ the request

    def _record(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes
    ) -> RecordedRequest:
        """The log entry of a request, as it came off the wire."""
        arrived = time.monotonic()
        path, _, query = target.partition("?")
        parsed = _parse_json(body)
        payload = parsed if isinstance(parsed, dict) else {}
        sent_chat = payload.get("chatUuid")
        sent_message = payload.get("message")
        return RecordedRequest(
            method=method.upper(),
            path=path,
            query=query,
            headers=_public_headers(headers),
            body=body,
            json=parsed,
            assistant_id=self._route(path),
            chat_uuid=sent_chat if isinstance(sent_chat, str) else None,
            message=sent_message if isinstance(sent_message, str) else None,
            authorized=self._authorized(headers),
            timestamp=arrived,
        )

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

    def _forget(self, slot: _Slot) -> None:
        """Take a request that never arrived out of the log."""
        with self._lock:
            if slot in self._slots:
                self._slots.remove(slot)

    def _check(self, slot: _Slot, headers: list[tuple[str, str]]) -> _Turn | Answer:
        """The turn a request asks for (its chat reserved), or the refusal."""
        record = slot.record
        problem = _body_problem(record.json, headers)
        if problem is not None:
            return error_answer(400, problem, "BAD_REQUEST")
        payload: dict[str, Any] = record.json
        chat_uuid: str | None = payload.get("chatUuid")
        assistant_id = record.assistant_id
        assert assistant_id is not None  # noqa: S101 - routed requests only
        with self._lock:
            if assistant_id in self._assistants:
                reply = self._assistants[assistant_id] or self.default_reply
            elif self._open:
                reply = self.default_reply
            else:
                message = f"Assistant '{assistant_id}' not found"
                return error_answer(404, message, "ASSISTANT_NOT_FOUND")
            chat = None
            if chat_uuid is not None:
                chat = self._chats.get(chat_uuid)
                if chat is None or chat.assistant_id != assistant_id:
                    return _chat_not_found(chat_uuid)
                if chat.busy:
                    message = "Chat is still processing a previous message"
                    return error_answer(409, message, "CHAT_BUSY")
                chat.busy = True
        return _Turn(
            slot=slot,
            assistant_id=assistant_id,
            chat_uuid=chat_uuid,
            message=payload["message"],
            context=payload.get("context"),
            metadata=payload.get("metadata"),
            reply=reply,
            chat=chat,
        )

    def _settle(self, slot: _Slot | None, status: int | None) -> None:
        """Write the status answered (or `None`) into the request's record."""
        if slot is not None:
            with self._lock:
                slot.record = replace(slot.record, status=status)

    # --------------------------------------------------------------- the turn

    def _run_turn(self, turn: _Turn) -> Answer:
        """Append the user turn, ask the assistant, append its reply, answer."""
        opened = self._open_turn(turn)
        if isinstance(opened, Answer):
            return opened
        chat_id, chat, conversation = opened
        try:
            text, overrides = _ask(turn.reply, conversation, self.default_reply)
        except Exception as exc:
            self._undo_turn(turn, chat_id, chat)
            failure = (
                f"The reply function of assistant '{turn.assistant_id}' raised "
                f"{type(exc).__name__}: {exc}"
            )
            return error_answer(500, failure, "INTERNAL_ERROR")
        with self._lock:
            chat.messages.append({"role": "assistant", "content": text})
            history = [dict(m) for m in chat.messages]
        dialect = self.dialect
        body = reply_body(
            dialect,
            chat_id=chat_id,
            assistant_id=turn.assistant_id,
            created_at=chat.created_at,
            history=history,
            metadata=turn.metadata,
            overrides=overrides,
        )
        replied = replied_chat_id(dialect, body)
        if isinstance(replied, str) and replied != chat_id:
            self._fork(chat_id, replied)
        try:
            return json_answer(200, body)
        except (TypeError, ValueError) as exc:
            failure = f"The reply of assistant '{turn.assistant_id}' is not JSON: {exc}"
            return error_answer(500, failure, "INTERNAL_ERROR")

    def _open_turn(self, turn: _Turn) -> tuple[str, _Chat, Conversation] | Answer:
        """Append the user turn to its chat (a new one, or the one reserved)."""
        with self._lock:
            if turn.chat_uuid is None:
                chat_id = self._new_chat_id()
                chat = _Chat(turn.assistant_id, now(), [], busy=True)
                self._chats[chat_id] = chat
                turn.chat = chat
            else:
                chat_id = turn.chat_uuid
                found = self._chats.get(chat_id)
                if found is None or found is not turn.chat:  # reset() meanwhile
                    return _chat_not_found(chat_id)
                chat = found
            chat.messages.append({"role": "user", "content": turn.message})
            conversation = Conversation(
                assistant_id=turn.assistant_id,
                chat_uuid=chat_id,
                messages=tuple(dict(m) for m in chat.messages),
                context=turn.context,
                metadata=turn.metadata,
                request=turn.slot.record,
            )
        return chat_id, chat, conversation

    def _undo_turn(self, turn: _Turn, chat_id: str, chat: _Chat) -> None:
        """Take back a user turn whose reply failed (and a chat it created)."""
        with self._lock:
            if chat.messages and chat.messages[-1]["content"] == turn.message:
                chat.messages.pop()
            if turn.chat_uuid is None and not chat.messages:
                self._chats.pop(chat_id, None)

    def _release(self, turn: _Turn) -> None:
        """Free the chat a turn reserved."""
        with self._lock:
            if turn.chat is not None:
                turn.chat.busy = False

    def _new_chat_id(self) -> str:
        """The next deterministic conversation id (call with the lock held)."""
        while True:
            rng = random.Random(f"{self.random_seed}:{self._counter}")  # noqa: S311 - ids, not secrets
            self._counter += 1
            chat_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            if chat_id not in self._chats:
                return chat_id

    def _fork(self, chat_id: str, new_id: str) -> None:
        """Register a scripted fork: the new id continues a copy of the history."""
        with self._lock:
            source = self._chats.get(chat_id)
            if source is not None and new_id not in self._chats:
                self._chats[new_id] = _Chat(
                    source.assistant_id,
                    now(),
                    [dict(m) for m in source.messages],
                )


# --------------------------------------------------------------------- helpers


def _ask(
    reply: ReplyFn,
    conversation: Conversation,
    default: Callable[[Conversation], str],
) -> tuple[str, dict[str, Any] | None]:
    """Call a reply function: the reply text, and the fields it asks to set.

    Raises:
        TypeError: If the reply function returns neither a string nor a mapping.
    """
    result = reply(conversation)
    if isinstance(result, str):
        return result, None
    if isinstance(result, Mapping):
        overrides = dict(result)
        scripted = overrides.get("message")
        text = scripted if isinstance(scripted, str) else default(conversation)
        return text, overrides
    kind = type(result).__name__
    msg = f"a reply function must return str or Mapping, not {kind}"
    raise TypeError(msg)


def _body_problem(payload: Any, headers: list[tuple[str, str]]) -> str | None:
    """What is wrong with a messages request's body, or `None`."""
    content_type = next(
        (v for k, v in headers if k.lower() == "content-type"), ""
    ).lower()
    if "json" not in content_type:
        return "Content-Type must be application/json"
    message = payload.get("message") if isinstance(payload, dict) else None
    if not isinstance(payload, dict) or not isinstance(message, str) or not message:
        return "'message' is required and must be a non-empty string"
    chat_uuid = payload.get("chatUuid")
    if chat_uuid is not None and not isinstance(chat_uuid, str):
        return "'chatUuid' must be a string or null"
    for name in ("context", "metadata"):
        value = payload.get(name)
        if value is not None and not isinstance(value, dict):
            return f"'{name}' must be an object"
    return None


def _chat_not_found(chat_uuid: str) -> Answer:
    return error_answer(404, f"Chat '{chat_uuid}' not found", "CHAT_NOT_FOUND")


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
