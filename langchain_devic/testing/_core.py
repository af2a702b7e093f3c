"""The emulator's state, and the one way a request goes through it.

`Core` keeps the assistants, the chats (`_chats.Chat`), the runs in progress,
the queued faults and the log of requests. A face hands it each request with
`begin()`, which records it, routes it, checks the method and the token,
applies the next fault for its route, and, for a send, checks the body, the
assistant and the chat and reserves the chat being continued (a second send to
a busy chat gets 409 at once). The `Exchange` it returns knows how long the
request must wait: `play()` (a thread) or `aplay()` (a task) waits with the
face's own sleep, starts the request's work (a turn, or a read of a chat), waits
for a synchronous run to end if there is one, and says how the face must end
the exchange: answer (a body, or a stream of SSE frames), drop the connection,
or time out. A wait cut short before the work started (a cancelled task, an
interrupt) calls `abandon()`, which frees the chat.

A turn is a run: the reply function is asked, its answer becomes a script
(`_script`), and the run plays it against the chat; an asynchronous send answers
as soon as the run has started, a synchronous one when it has ended or waits
for the client's tools. The tool-response route hands the client's answers to
the waiting run; once its script is spent, the reply function is asked again
(the conversation now ending with the tool results), in the same run.

Everything shared sits behind one lock (with one condition on it, notified on
every change) that is never held across a wait or a reply function, so the
core is safe from server threads, asyncio tasks and run threads.
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
from collections.abc import Awaitable, Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol, TypeAlias
from urllib.parse import parse_qs, unquote

from langchain_devic.testing._chats import Chat, Follower, Run, now_ms
from langchain_devic.testing._chats import tool_names as schema_names
from langchain_devic.testing._faults import NO_FAULT, Action, Face, Fault
from langchain_devic.testing._render import (
    DIALECTS,
    ROUTE_METHODS,
    SSE_CONTENT_TYPE,
    Answer,
    Dialect,
    Message,
    Route,
    StreamAnswer,
    chats_body,
    enveloped,
    error_answer,
    flat_reply_body,
    json_answer,
    limit_answer,
    message_list_body,
    method_not_allowed,
    replied_chat_id,
    route_not_found,
    started_body,
    stop_body,
    tool_response_body,
)
from langchain_devic.testing._script import STEP_TYPES, Fail, Step, Write, as_script

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
#: How often a request waiting for its synchronous run looks again, in seconds.
RUN_TICK = 0.005
#: The default pieces and interval (seconds) of a run's `Write` steps.
WRITE_PIECES = 4
WRITE_INTERVAL = 0.02
#: Seconds of quiet before an SSE stream sends a keep-alive comment.
SSE_KEEPALIVE = 15.0
#: The longest a stop waits for a run waiting on the client to end (a bound only:
#: the run's thread ends it as soon as it wakes).
STOP_WAIT_SECONDS = 5.0
#: The routes that name a chat in their path.
_CHAT_ROUTES: dict[str, Route] = {
    "realtime": "realtime",
    "stream": "stream",
    "stop": "stop",
    "tool-response": "tool-response",
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


# --------------------------------------------------------------- internal types


class _Slot:
    """A place in the request log, filled in as the request is answered."""

    __slots__ = ("record",)

    def __init__(self, record: RecordedRequest) -> None:
        self.record = record


class _Pending:
    """A synchronous send whose run is still going: the answer comes at its end.

    Or when the run first waits for the client's tools (`run.result` is set
    then): the send answers the turn so far, and the run keeps waiting.
    """

    def __init__(self, run: Run, answer: Callable[[], Answer]) -> None:
        self.run = run
        self._answer = answer

    def answer(self) -> Answer:
        return self._answer()


#: What starting a request's work gives: an answer, or a run to wait for.
_Started: TypeAlias = Answer | StreamAnswer | _Pending


class _Work(Protocol):
    """A request's work, done once its wait is over."""

    def start(self) -> _Started:
        """Do it: answer, or hand back the run to wait for."""
        ...

    def abandon(self) -> None:
        """The face gave up before `start`: let go of what was reserved."""
        ...


@dataclass
class _Turn:
    """A checked send waiting to run; `chat` is reserved when it is continued."""

    core: Core
    slot: _Slot
    assistant_id: str
    chat_uuid: str | None
    message: str
    context: Mapping[str, Any] | None
    metadata: Mapping[str, Any] | None
    tools: tuple[Mapping[str, Any], ...]
    reply: ReplyFn
    mode: Literal["sync", "async"]
    chat: Chat | None = None

    def start(self) -> _Started:
        return self.core._start_turn(self)

    def abandon(self) -> None:
        self.core._release(self)


@dataclass
class _Read:
    """The work of a route that reads (or stops) a chat: one function."""

    answer: Callable[[], Answer | StreamAnswer]

    def start(self) -> _Started:
        return self.answer()

    def abandon(self) -> None:
        """Nothing was reserved."""


# -------------------------------------------------------------------- exchange


class Exchange:
    """One request on its way through the core: begun, waited, then finished.

    Made by `Core.begin`. A face either calls `play` / `aplay` (wait, start
    the work, wait for a synchronous run, abandoning if the first wait is cut
    short), or does the same by hand with `finish` and `abandon`.
    """

    def __init__(
        self,
        core: Core,
        slot: _Slot | None,
        *,
        delay: float = 0.0,
        answer: Answer | None = None,
        work: _Work | None = None,
        action: Action = "answer",
        stall: float = 0.0,
    ) -> None:
        self._core = core
        self._slot = slot
        self._answer = answer
        self._work = work
        self._action = action
        self._stall = stall
        self._outcome: Outcome | None = None
        #: Seconds to wait before the work starts (latency, injected or not).
        self.delay = delay

    def finish(self) -> Outcome:
        """Start the work, wait for its run, settle the record, say how to end."""
        started = self._start()
        while isinstance(started, _Pending) and started.run.result is None:
            time.sleep(RUN_TICK)
        return self._conclude(started)

    def abandon(self) -> None:
        """The face stopped waiting (e.g. a cancelled task): free the chat."""
        work, self._work = self._work, None
        if work is not None:
            work.abandon()
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

    def _start(self) -> _Started | None:
        work, self._work = self._work, None
        return work.start() if work is not None else None

    def _conclude(self, started: _Started | None) -> Outcome:
        """Settle the record with what is answered, and say how to end."""
        if isinstance(started, _Pending):
            started = started.answer()
        answer = self._answer if self._answer is not None else started
        if self._action != "answer":
            self._core._settle(self._slot, None)
            return Outcome(self._action)
        assert answer is not None  # noqa: S101 - an answering exchange has one
        self._core._settle(self._slot, answer.status)
        return Outcome("answer", answer)

    def _waits(self, read_timeout: float | None) -> Generator[float, None, None]:
        """Each wait of this exchange, in order; finishes it on the way.

        The request waits `delay`, then its work starts; a synchronous send
        then waits for its run to end. If the client's read timeout comes
        first, the wait ends there with a `read_timeout` outcome, and the turn
        still runs, as on a real server that kept working. A `read_timeout`
        ending stalls (up to the client's timeout) before the face gives up. A
        face that stops waiting (the generator is closed at a wait) abandons
        the exchange; a run already started goes on.
        """
        began = time.monotonic()
        wait, gives_up = self.delay, False
        if read_timeout is not None and wait > read_timeout:
            wait, gives_up = read_timeout, True
        try:
            if wait > 0:
                yield wait
            started = self._start()
            while isinstance(started, _Pending) and started.run.result is None:
                left = (
                    None
                    if read_timeout is None
                    else read_timeout - (time.monotonic() - began)
                )
                if left is not None and left <= 0:
                    break
                yield RUN_TICK if left is None else min(RUN_TICK, left)
        except BaseException:
            self.abandon()
            raise
        if isinstance(started, _Pending) and started.run.result is None:
            self._core._settle(self._slot, None)
            self._outcome = Outcome("read_timeout")
            return
        outcome = self._conclude(started)
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
        *,
        sse: bool = True,
        envelope: bool = False,
        write_pieces: int = WRITE_PIECES,
        write_interval: float = WRITE_INTERVAL,
    ) -> None:
        if not isinstance(api_key, str) or not api_key:
            msg = "api_key must be a non-empty string."
            raise ValueError(msg)
        if dialect not in DIALECTS:
            msg = f"dialect must be 'flat' or 'platform', got {dialect!r}."
            raise ValueError(msg)
        # A `Write` checks its own pieces and interval the same way.
        Write("", pieces=write_pieces, interval=write_interval)
        self._api_key = api_key.encode("utf-8")
        self.dialect: Dialect = dialect
        self.random_seed = random_seed
        self.base_path = _normalize_base_path(base_path)
        self.latency: float = 0.0
        self.fault_policy: Callable[[RecordedRequest], Fault | None] | None = None
        self.sse = sse
        self.envelope = envelope
        self.write_pieces = write_pieces
        self.write_interval = write_interval
        self.sse_keepalive = SSE_KEEPALIVE
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._open = assistants is None
        self._assistants: dict[str, ReplyFn | None] = {}
        if isinstance(assistants, str):
            self._assistants[assistants] = None
        elif isinstance(assistants, Mapping):
            self._assistants.update(assistants)
        elif assistants is not None:
            self._assistants.update(dict.fromkeys(assistants))
        self._chats: dict[str, Chat] = {}
        self._runs: set[Run] = set()
        self._slots: list[_Slot] = []
        self._faults: deque[Fault] = deque()
        self._counter = 0
        self._order = 0
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
        """Queue faults; each is consumed, in order, by the next request it is for."""
        for fault in faults:
            if not isinstance(fault, Fault):
                msg = f"inject() takes Fault objects, got {type(fault).__name__}."
                raise TypeError(msg)
        with self._lock:
            self._faults.extend(faults)

    def reset(self) -> None:
        """Forget requests, chats and queued faults (and restart the ids).

        Runs in progress are cancelled where they stand (a run waiting for
        the client's tools too), and streams of the forgotten chats close.
        """
        with self._changed:
            for run in self._runs:
                run.cancelled.set()
            for chat in self._chats.values():
                chat.gone = True
            self._slots.clear()
            self._chats.clear()
            self._faults.clear()
            self._counter = 0
            self._changed.notify_all()

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
        """Each chat id's history, oldest message first (a snapshot).

        Each message is `{"role", "content"}`; see `Conversation.messages`.
        """
        with self._lock:
            return {
                chat_id: _plain(chat.messages) for chat_id, chat in self._chats.items()
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

    def realtime(self, chat_uuid: str) -> dict[str, Any]:
        """A chat's realtime view now, as the realtime route answers it.

        Raises:
            KeyError: If there is no such chat.
        """
        with self._lock:
            return self._chats[chat_uuid].view()

    def wait_idle(self, timeout: float = 5.0) -> None:
        """Wait until no run is working: each has ended or waits for the client.

        A run waiting for client tool responses would never end by itself, so
        it counts as idle; answer it (or stop it) and wait again.

        Args:
            timeout: The longest wait, in seconds.

        Raises:
            TimeoutError: If runs are still working after `timeout`; it names
                their chats.
        """
        with self._changed:
            if self._changed.wait_for(
                lambda: all(run.waiting for run in self._runs), timeout
            ):
                return
            busy = sorted(run.chat.chat_id for run in self._runs if not run.waiting)
        msg = f"Runs still going after {timeout} s in chats {busy}."
        raise TimeoutError(msg)

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

        A refusal (no route, wrong method, bad token, bad body, unknown
        assistant or chat, busy chat) answers at once: latency, injected or
        not, delays the work, never a refusal.

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
        route = record.route
        if route is None or (route == "stream" and not self.sse):
            not_found = route_not_found(record.method, record.path)
            return Exchange(self, slot, answer=not_found)
        if record.method != ROUTE_METHODS[route]:
            not_allowed = method_not_allowed(record.method, ROUTE_METHODS[route])
            return Exchange(self, slot, answer=not_allowed)
        if not record.authorized:
            refusal = self._refusal(401, "Invalid or missing API key", "UNAUTHORIZED")
            return Exchange(self, slot, answer=refusal)

        fault = self._next_fault(record, route)
        effect = NO_FAULT if fault is None else fault.effect(face)
        if fault is not None:
            slot.record = replace(record, fault=fault.kind)
        if not effect.arrives:
            self._forget(slot)
            return Exchange(self, None, action=effect.action)
        delay = effect.delay + (max(self.latency, 0.0) if route == "messages" else 0.0)
        checked = self._check(route, slot, header_pairs) if effect.runs_turn else None
        if isinstance(checked, Answer) and effect.answer is None:
            if effect.action == "answer":
                return Exchange(self, slot, answer=checked)  # refused at once
            delay = 0.0
        return Exchange(
            self,
            slot,
            delay=delay,
            answer=effect.answer if effect.answer is not None else _refused(checked),
            work=None if isinstance(checked, Answer) else checked,
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
        routed = self._route(path)
        route, assistant_id, path_chat = routed or (None, None, None)
        sent_message = payload.get("message")
        sent_chat = path_chat if route != "messages" else _sent_chat(payload)
        return RecordedRequest(
            method=method.upper(),
            path=path,
            query=query,
            headers=_public_headers(headers),
            body=body,
            json=parsed,
            assistant_id=assistant_id,
            chat_uuid=sent_chat,
            message=sent_message if isinstance(sent_message, str) else None,
            authorized=self._authorized(headers),
            timestamp=arrived,
            route=route,
        )

    def _route(self, path: str) -> tuple[Route, str, str | None] | None:
        """The route of a path, its decoded assistant id and chat id, else `None`."""
        for prefix in self._prefixes:
            if not path.startswith(prefix):
                continue
            parts = [unquote(part) for part in path[len(prefix) :].split("/")]
            if not all(parts):
                continue
            match parts:
                case [assistant_id, "messages"]:
                    return "messages", assistant_id, None
                case [assistant_id, "chats"]:
                    return "chats", assistant_id, None
                case [assistant_id, "chats", chat_id]:
                    return "chat", assistant_id, chat_id
                case [assistant_id, "chats", chat_id, tail] if tail in _CHAT_ROUTES:
                    return _CHAT_ROUTES[tail], assistant_id, chat_id
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

    def _next_fault(self, record: RecordedRequest, route: Route) -> Fault | None:
        """The next queued fault for this route, else what the fault policy says.

        The policy is asked about sends (the messages route) only.
        """
        with self._lock:
            for index, fault in enumerate(self._faults):
                if route in fault.routes:
                    del self._faults[index]
                    return fault
        policy = self.fault_policy
        if policy is None or route != "messages":
            return None
        return policy(record)

    def _forget(self, slot: _Slot) -> None:
        """Take a request that never arrived out of the log."""
        with self._lock:
            if slot in self._slots:
                self._slots.remove(slot)

    def _settle(self, slot: _Slot | None, status: int | None) -> None:
        """Write the status answered (or `None`) into the request's record."""
        if slot is not None:
            with self._lock:
                slot.record = replace(slot.record, status=status)

    def _refusal(self, status: int, message: str, code: str) -> Answer:
        """An error answer in the emulator's dialect."""
        return error_answer(status, message, code, self.dialect)

    def _ok(self, status: int, payload: Any) -> Answer:
        """A JSON answer; in the platform dialect, enveloped if asked to be."""
        if self.dialect == "platform" and self.envelope:
            payload = enveloped(payload)
        return json_answer(status, payload)

    def _check(
        self, route: Route, slot: _Slot, headers: list[tuple[str, str]]
    ) -> _Work | Answer:
        """The work a request asks for, or its refusal (answered at once)."""
        record = slot.record
        if route == "messages":
            return self._check_send(slot, headers)
        readers: dict[Route, Callable[[RecordedRequest], Answer | StreamAnswer]] = {
            "chats": self._answer_chats,
            "chat": self._answer_history,
            "realtime": self._answer_realtime,
            "stream": self._answer_stream,
            "stop": self._answer_stop,
            "tool-response": self._answer_tool_response,
        }
        reader = readers[route]
        return _Read(lambda: reader(record))

    # -------------------------------------------------------------- the send

    def _check_send(
        self, slot: _Slot, headers: list[tuple[str, str]]
    ) -> _Turn | Answer:
        """The turn a send asks for (its chat reserved), or the refusal."""
        record = slot.record
        problem = _body_problem(record.json, headers)
        if problem is not None:
            return self._refusal(400, problem, "BAD_REQUEST")
        payload: dict[str, Any] = record.json
        chat_uuid = record.chat_uuid
        assistant_id = record.assistant_id
        assert assistant_id is not None  # noqa: S101 - routed requests only
        asynchronous = self.dialect == "platform" and _flag(record.query, "async")
        with self._lock:
            reply = self._reply_of(assistant_id)
            if reply is None:
                return self._assistant_not_found(assistant_id)
            chat = None
            if chat_uuid is not None:
                chat = self._chats.get(chat_uuid)
                if chat is None or chat.assistant_id != assistant_id:
                    return self._chat_not_found(chat_uuid)
                if chat.busy:
                    message = "Chat is still processing a previous message"
                    return self._refusal(409, message, "CHAT_BUSY")
                chat.busy = True
        return _Turn(
            core=self,
            slot=slot,
            assistant_id=assistant_id,
            chat_uuid=chat_uuid,
            message=payload["message"],
            context=payload.get("context"),
            metadata=payload.get("metadata"),
            tools=tuple(payload.get("tools") or ()),
            reply=reply,
            mode="async" if asynchronous else "sync",
            chat=chat,
        )

    def _reply_of(self, assistant_id: str) -> ReplyFn | None:
        """The reply function of an assistant, `None` if there is no such assistant."""
        if assistant_id in self._assistants:
            return self._assistants[assistant_id] or self.default_reply
        return self.default_reply if self._open else None

    def _start_turn(self, turn: _Turn) -> _Started:
        """Append the user turn, ask the assistant for a script, start its run.

        An asynchronous send answers `{"chatUid"}` (201) as soon as the run has
        started; a synchronous one answers when it has ended.
        """
        opened = self._open_turn(turn)
        if isinstance(opened, Answer):
            return opened
        chat, conversation = opened
        try:
            steps, overrides = self._script_of(
                turn.reply, conversation, at_once=turn.mode == "sync"
            )
        except Exception as exc:
            self._undo_turn(turn, chat)
            return self._refusal(500, _reply_failure(turn, exc), "INTERNAL_ERROR")
        with self._changed:
            run = Run(
                chat,
                steps,
                changed=self._changed,
                runs=self._runs,
                write_pieces=self.write_pieces,
                write_interval=self.write_interval,
                tools=turn.tools,
                ask_again=lambda run: self._ask_again(turn, run),
            )
            chat.run = run
            self._runs.add(run)
        wait = run.advance()
        if wait is not None:
            run.start(wait)
        if turn.mode == "async":
            return self._ok(201, started_body(chat.chat_id))
        return _Pending(run, lambda: self._sync_answer(run, overrides))

    def _open_turn(self, turn: _Turn) -> tuple[Chat, Conversation] | Answer:
        """Append the user turn to its chat (a new one, or the one reserved)."""
        with self._changed:
            if turn.chat_uuid is None:
                chat_id = self._new_chat_id()
                self._order += 1
                chat = Chat(chat_id, turn.assistant_id, self._order)
                chat.busy = True
                self._chats[chat_id] = chat
                turn.chat = chat
            else:
                found = self._chats.get(turn.chat_uuid)
                if found is None or found is not turn.chat:  # reset() meanwhile
                    return self._chat_not_found(turn.chat_uuid)
                chat = found
            chat.add("user", turn.message)
            if turn.metadata is not None:
                chat.metadata = turn.metadata
            chat.status, chat.fields, chat.streaming = "processing", {}, None
            chat.touch()
            self._changed.notify_all()
            conversation = _conversation(turn, chat, turn.tools, ())
        return chat, conversation

    def _ask_again(self, turn: _Turn, run: Run) -> tuple[Step, ...]:
        """The next round of a turn whose client tools were answered.

        The reply function sees the chat ending with the tool results; its
        script is played in the same run (a plain reply in pieces). If it
        raises, the round is a `Fail` with what it raised.
        """
        with self._lock:
            conversation = _conversation(
                turn, run.chat, run.tools, tuple(dict(a) for a in run.answers)
            )
        try:
            steps, _ = self._script_of(turn.reply, conversation, at_once=False)
        except Exception as exc:
            return (Fail(_reply_failure(turn, exc)),)
        return steps

    def _script_of(
        self, reply: ReplyFn, conversation: Conversation, *, at_once: bool
    ) -> tuple[tuple[Step, ...], dict[str, Any] | None]:
        """The steps of a round, and the answer fields the reply function asked for.

        A plain reply is one `Write`: in one piece with no wait when `at_once`
        (a synchronous send), else in pieces.

        Raises:
            TypeError: If the reply function returns no reply, fields or script.
        """
        result = reply(conversation)
        overrides = None
        if isinstance(result, Mapping):
            overrides = dict(result)
            scripted = overrides.get("message")
            result = (
                scripted
                if isinstance(scripted, str)
                else self.default_reply(conversation)
            )
        if isinstance(result, str):
            if at_once:
                return (Write(result, pieces=1, interval=0),), overrides
            return (Write(result),), overrides
        if isinstance(result, (Sequence, *STEP_TYPES)):
            return as_script(result), overrides
        kind = type(result).__name__
        msg = f"a reply function must return str, Mapping or a script, not {kind}"
        raise TypeError(msg)

    def _sync_answer(self, run: Run, overrides: Mapping[str, Any] | None) -> Answer:
        """The answer to a synchronous send, from its run's result.

        The run has ended, or waits for the client's tools: then the send
        answers the turn so far (the platform's message list ends with the
        assistant message that calls them; the flat reply is the text written
        so far), and the tool-response route carries the turn on.
        """
        chat, result = run.chat, run.result
        assert result is not None  # noqa: S101 - a pending send waits for it
        if result.status == "error":
            failure = str(result.fields.get("errorMessage") or "The assistant failed")
            return self._refusal(500, failure, "INTERNAL_ERROR")
        if result.status == "limit_exceeded":
            return limit_answer(result.fields.get("limitExceeded") or {}, now_ms())
        if self.dialect == "platform":
            body = message_list_body(
                chat_id=chat.chat_id,
                history=result.messages,
                tokens=result.tokens,
                overrides=overrides,
            )
            return self._ok(200, body)
        flat = flat_reply_body(
            chat_id=chat.chat_id,
            text="\n\n".join(result.written),
            tokens=result.tokens,
            overrides=overrides,
        )
        replied = replied_chat_id(flat)
        if isinstance(replied, str) and replied != chat.chat_id:
            self._fork(chat, replied)
        try:
            return json_answer(200, flat)
        except (TypeError, ValueError) as exc:
            failure = f"The reply of assistant '{chat.assistant_id}' is not JSON: {exc}"
            return self._refusal(500, failure, "INTERNAL_ERROR")

    def _undo_turn(self, turn: _Turn, chat: Chat) -> None:
        """Take back a user turn whose reply failed (and a chat it created)."""
        with self._changed:
            last = chat.messages[-1] if chat.messages else None
            if last is not None and last.role == "user" and last.text == turn.message:
                chat.messages.pop()
            chat.busy = False
            chat.status = "completed"
            if turn.chat_uuid is None and not chat.messages:
                self._chats.pop(chat.chat_id, None)
            chat.touch()
            self._changed.notify_all()

    def _release(self, turn: _Turn) -> None:
        """Free the chat a turn reserved, before its run started."""
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

    def _fork(self, source: Chat, new_id: str) -> None:
        """Register a scripted fork: the new id continues a copy of the history."""
        with self._lock:
            if new_id not in self._chats:
                self._order += 1
                self._chats[new_id] = Chat(
                    new_id, source.assistant_id, self._order, source.messages
                )

    # ------------------------------------------------------------- the reads

    def _find_chat(self, record: RecordedRequest) -> Chat | Answer:
        """The chat a chat route names (call with the lock held), or the 404."""
        assistant_id, chat_id = record.assistant_id, record.chat_uuid
        assert assistant_id is not None  # noqa: S101 - routed requests only
        assert chat_id is not None  # noqa: S101 - chat routes name one
        if self._reply_of(assistant_id) is None:
            return self._assistant_not_found(assistant_id)
        chat = self._chats.get(chat_id)
        if chat is None or chat.assistant_id != assistant_id:
            return self._chat_not_found(chat_id)
        return chat

    def _answer_history(self, record: RecordedRequest) -> Answer:
        """`GET …/chats/{chat}`: the stored chat with its token totals."""
        return self._answer_chat(record, lambda chat: chat.history())

    def _answer_realtime(self, record: RecordedRequest) -> Answer:
        """`GET …/chats/{chat}/realtime`: the realtime view."""
        return self._answer_chat(record, Chat.view)

    def _answer_chat(
        self, record: RecordedRequest, body: Callable[[Chat], dict[str, Any]]
    ) -> Answer:
        """A body read from the chat a route names, or the 404."""
        with self._lock:
            chat = self._find_chat(record)
            if isinstance(chat, Answer):
                return chat
            payload = body(chat)
        return self._ok(200, payload)

    def _answer_stream(self, record: RecordedRequest) -> Answer | StreamAnswer:
        """`GET …/chats/{chat}/stream`: the realtime view as SSE frames."""
        with self._lock:
            chat = self._find_chat(record)
            if isinstance(chat, Answer):
                return chat
        follower = Follower(chat, self._changed, self.sse_keepalive)
        headers = (("Content-Type", SSE_CONTENT_TYPE), ("Cache-Control", "no-cache"))
        return StreamAnswer(200, headers, follower)

    def _answer_stop(self, record: RecordedRequest) -> Answer:
        """`POST …/chats/{chat}/stop`: end the run at its next step boundary.

        A run waiting for the client's tools ends before the answer leaves
        (`completed`, with `stopReason: "tool_wait_closed"`), so the chat takes
        a new message at once.
        """
        with self._changed:
            chat = self._find_chat(record)
            if isinstance(chat, Answer):
                return chat
            run = chat.run
            if run is None or run.done:
                message = f"Chat '{chat.chat_id}' is not currently processing"
                return self._refusal(400, message, "BAD_REQUEST")
            waiting = run.waiting
            run.stop_requested = True
            self._changed.notify_all()
            if waiting:  # the answer says the wait is closed: make it so first
                self._changed.wait_for(lambda: run.done, STOP_WAIT_SECONDS)
        return self._ok(201, stop_body(chat.chat_id, closes_tool_wait=waiting))

    def _answer_tool_response(self, record: RecordedRequest) -> Answer:
        """`POST …/chats/{chat}/tool-response`: the client answers pending calls.

        Only a chat whose run waits takes one, and only answers to its pending
        calls; the run keeps waiting until every call is answered (201
        `{"chatUid", "message"}` each time).
        """
        with self._changed:
            chat = self._find_chat(record)
            if isinstance(chat, Answer):
                return chat
            run = chat.run
            if run is None or run.done or not run.waiting:
                message = f"Chat '{chat.chat_id}' is not waiting for a tool response"
                return self._refusal(400, message, "BAD_REQUEST")
            pending = [str(call["id"]) for call in run.pending]
            problem = _responses_problem(record.json, pending)
            if problem is not None:
                return self._refusal(400, problem, "BAD_REQUEST")
            run.answer(record.json["responses"])
        return self._ok(201, tool_response_body(chat.chat_id))

    def _answer_chats(self, record: RecordedRequest) -> Answer:
        """`GET …/assistants/{id}/chats`: the assistant's chats, newest first."""
        assistant_id = record.assistant_id
        assert assistant_id is not None  # noqa: S101 - routed requests only
        query = parse_qs(record.query)
        paging = _paging(query)
        if isinstance(paging, str):
            return self._refusal(400, paging, "BAD_REQUEST")
        offset, limit = paging
        content = not _flag(record.query, "omitContent")
        with self._lock:
            if self._reply_of(assistant_id) is None:
                return self._assistant_not_found(assistant_id)
            chats = sorted(
                (c for c in self._chats.values() if c.assistant_id == assistant_id),
                key=lambda c: c.order,
                reverse=True,
            )
            end = len(chats) if limit is None else offset + limit
            page = [chat.history(content=content) for chat in chats[offset:end]]
        body = chats_body(
            page,
            total=len(chats),
            offset=offset,
            limit=len(chats) if limit is None else limit,
        )
        return self._ok(200, body)

    def _assistant_not_found(self, assistant_id: str) -> Answer:
        message = f"Assistant '{assistant_id}' not found"
        return self._refusal(404, message, "ASSISTANT_NOT_FOUND")

    def _chat_not_found(self, chat_uuid: str) -> Answer:
        return self._refusal(404, f"Chat '{chat_uuid}' not found", "CHAT_NOT_FOUND")


# --------------------------------------------------------------------- helpers


def _refused(checked: _Work | Answer | None) -> Answer | None:
    return checked if isinstance(checked, Answer) else None


def _plain(messages: Iterable[Message]) -> list[dict[str, str]]:
    """Messages as `{"role", "content"}` (what reply functions and tests read)."""
    return [{"role": m.role, "content": m.readable} for m in messages]


def _conversation(
    turn: _Turn,
    chat: Chat,
    tools: tuple[Mapping[str, Any], ...],
    tool_results: tuple[Mapping[str, Any], ...],
) -> Conversation:
    """What the reply function of `turn` sees of `chat` now (lock held)."""
    return Conversation(
        assistant_id=turn.assistant_id,
        chat_uuid=chat.chat_id,
        messages=tuple(_plain(chat.messages)),
        context=turn.context,
        metadata=turn.metadata,
        request=turn.slot.record,
        tools=tools,
        tool_results=tool_results,
    )


def _reply_failure(turn: _Turn, exc: Exception) -> str:
    return (
        f"The reply function of assistant '{turn.assistant_id}' raised "
        f"{type(exc).__name__}: {exc}"
    )


#: What a tool-response body must look like, for its refusals.
_RESPONSES_SHAPE = (
    'the body must be {"responses": [{"tool_call_id": str, "role": "tool", '
    '"content": <any JSON>, "tools"?: [...]}, ...]} with at least one response'
)


def _responses_problem(payload: Any, pending: Sequence[str]) -> str | None:
    """What is wrong with a tool-response body (given the pending ids), or `None`."""
    responses = payload.get("responses") if isinstance(payload, dict) else None
    if (
        not isinstance(responses, list)
        or not responses
        or not all(isinstance(r, dict) for r in responses)
    ):
        return _RESPONSES_SHAPE
    seen: set[str] = set()
    for index, response in enumerate(responses):
        call_id = response.get("tool_call_id")
        where = f"responses[{index}]"
        if not isinstance(call_id, str):
            return f"{where}: 'tool_call_id' is required and must be a string"
        if response.get("role") != "tool":
            return f"{where}: 'role' must be 'tool', got {response.get('role')!r}"
        if "content" not in response:
            return f"{where}: 'content' is required (any JSON)"
        if call_id in seen:
            return f"{where}: tool call '{call_id}' is answered twice"
        if call_id not in pending:
            waiting = ", ".join(f"'{p}'" for p in pending)
            return f"{where}: tool call '{call_id}' is not pending (pending: {waiting})"
        seen.add(call_id)
    tools = responses[0].get("tools")
    if tools is not None and (
        not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools)
    ):
        return "responses[0]: 'tools' must be a list of objects"
    return None


def _sent_chat(payload: Mapping[str, Any]) -> str | None:
    """The conversation id a send names: `chatUuid`, else `chatUid` (strings only)."""
    for name in ("chatUuid", "chatUid"):
        value = payload.get(name)
        if isinstance(value, str):
            return value
    return None


def _flag(query: str, name: str) -> bool:
    """Whether a query parameter is set to `true` or `1`."""
    values = parse_qs(query).get(name, [])
    return any(value.lower() in {"true", "1"} for value in values)


def _paging(query: Mapping[str, list[str]]) -> tuple[int, int | None] | str:
    """`(offset, limit)` of a list request (no limit = every chat), or the problem."""
    numbers: dict[str, int | None] = {"offset": 0, "limit": None}
    for name in numbers:
        values = query.get(name)
        if not values:
            continue
        try:
            value = int(values[-1])
        except ValueError:
            return f"'{name}' must be an integer"
        if value < 0:
            return f"'{name}' must be >= 0"
        numbers[name] = value
    offset = numbers["offset"]
    assert offset is not None  # noqa: S101 - defaulted above
    return offset, numbers["limit"]


def _body_problem(payload: Any, headers: list[tuple[str, str]]) -> str | None:
    """What is wrong with a send's body, or `None`."""
    content_type = next(
        (v for k, v in headers if k.lower() == "content-type"), ""
    ).lower()
    if "json" not in content_type:
        return "Content-Type must be application/json"
    message = payload.get("message") if isinstance(payload, dict) else None
    if not isinstance(payload, dict) or not isinstance(message, str) or not message:
        return "'message' is required and must be a non-empty string"
    for name in ("chatUuid", "chatUid"):
        chat = payload.get(name)
        if chat is not None and not isinstance(chat, str):
            return f"'{name}' must be a string or null"
    both = payload.get("chatUuid"), payload.get("chatUid")
    if None not in both and both[0] != both[1]:
        return "'chatUuid' and 'chatUid' name different chats"
    for name in ("context", "metadata"):
        value = payload.get(name)
        if value is not None and not isinstance(value, dict):
            return f"'{name}' must be an object"
    tools = payload.get("tools")
    if tools is not None and (
        not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools)
    ):
        return "'tools' must be a list of objects"
    return None


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
