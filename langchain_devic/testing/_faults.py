"""Fault injection: every kind of failure the emulator can play, each in one place.

A `Fault` is data: a kind and its parameters, built and checked by one
classmethod per kind. `Fault.effect()` turns it into an `Effect`, the only thing
the core reads: whether the turn runs, how much longer the request waits, what
is answered instead, and how the exchange ends. The core applies every effect
the same way, so a new kind is its name in `FaultKind`, its classmethod and its
branch in `Fault.effect`, all in this file (mypy checks that no kind lacks a
branch).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from http import HTTPStatus
from typing import Any, Literal, NoReturn, TypeAlias

from langchain_devic.testing._render import (
    JSON_CONTENT_TYPE,
    ROUTE_METHODS,
    Answer,
    Route,
    default_error_body,
    dump,
)

__all__ = ["Action", "Effect", "Face", "Fault", "FaultKind"]

FaultKind: TypeAlias = Literal[
    "status",
    "latency",
    "drop",
    "drop_after_processing",
    "connect_error",
    "read_timeout",
    "malformed",
    "raw",
]
#: Which face received the request: the in-process transport or the server.
Face: TypeAlias = Literal["transport", "server"]
#: How an exchange ends: an answer, a dropped connection, a stall that ends in
#: a read timeout, or a refused connection (in-process transport only).
Action: TypeAlias = Literal["answer", "drop", "connect_error", "read_timeout"]


@dataclass(frozen=True)
class Effect:
    """What a fault does to one exchange.

    Attributes:
        runs_turn: Whether the request is checked and its turn run as usual.
        delay: Seconds added to the wait before the turn.
        answer: Sent instead of the turn's own answer (or of a refusal).
        action: How the exchange ends.
        stall: Seconds a `read_timeout` ending waits before giving up.
        arrives: `False` when the request never reaches the emulator: it leaves
            the request log and nothing waits.
    """

    runs_turn: bool = False
    delay: float = 0.0
    answer: Answer | None = None
    action: Action = "answer"
    stall: float = 0.0
    arrives: bool = True


#: A request without a fault: checked, run and answered as usual.
NO_FAULT = Effect(runs_turn=True)


@dataclass(frozen=True)
class Fault:
    """A failure the emulator plays instead of (or around) a normal answer.

    Build faults with the classmethods (`Fault.status(429, retry_after=2)`,
    `Fault.drop()`, ...) and queue them with `DevicEmulator.inject`; each one is
    consumed by the next authorized request to one of its routes: the messages
    route (sync or async sends), unless `on()` names others
    (`Fault.drop().on("realtime")`).

    Attributes:
        kind: Which failure this is; also what `RecordedRequest.fault` says.
        code: The status answered (`status`, `malformed`, `raw`).
        seconds: How long to wait (`latency`, `read_timeout`).
        body: The body answered (`status`, `malformed`, `raw`).
        headers: Extra response headers, as `(name, value)` pairs.
        routes: The routes whose requests consume it (see `Route`).
    """

    kind: FaultKind
    code: int | None = None
    seconds: float = 0.0
    body: bytes | None = None
    headers: tuple[tuple[str, str], ...] = ()
    routes: tuple[Route, ...] = ("messages",)

    def on(self, *routes: Route) -> Fault:
        """This fault, consumed by requests to `routes` instead.

        Args:
            routes: Route names: `messages`, `chats`, `chat` (the history),
                `realtime`, `stream`, `stop`, `tool-response`.

        Returns:
            A copy of the fault for those routes.

        Raises:
            ValueError: If no route or an unknown one is named.
        """
        unknown = [route for route in routes if route not in ROUTE_METHODS]
        if not routes or unknown:
            msg = (
                f"on() takes route names among {sorted(ROUTE_METHODS)}, got {routes!r}."
            )
            raise ValueError(msg)
        return replace(self, routes=tuple(routes))

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
            body = default_error_body(code, retry_after=retry_after_body)
        raw = body if isinstance(body, bytes) else dump(body)
        return cls(kind="status", code=code, body=raw, headers=tuple(headers))

    @classmethod
    def latency(cls, seconds: float) -> Fault:
        """Sleep `seconds` before handling this one request normally.

        Only the work waits: a refusal (such as the 409 of a busy chat)
        still answers at once.
        """
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
            raw = dump(body)
            if not any(k.lower() == "content-type" for k, _ in pairs):
                pairs.insert(0, ("Content-Type", JSON_CONTENT_TYPE))
        return cls(kind="raw", code=status, body=raw, headers=tuple(pairs))

    @property
    def runs_turn(self) -> bool:
        """Whether the assistant runs the turn despite this fault."""
        return self.effect("server").runs_turn

    def effect(self, face: Face) -> Effect:
        """What this fault does to a request that reached `face`.

        Args:
            face: The face that received the request.

        Returns:
            The effect the core applies.
        """
        match self.kind:
            case "status":
                failed = self.code == HTTPStatus.INTERNAL_SERVER_ERROR
                return Effect(runs_turn=failed, answer=self._canned())
            case "latency":
                return Effect(runs_turn=True, delay=self.seconds)
            case "drop":
                return Effect(action="drop")
            case "drop_after_processing":
                return Effect(runs_turn=True, action="drop")
            case "connect_error" if face == "transport":
                return Effect(action="connect_error", arrives=False)
            case "connect_error":  # the server has accepted the connection
                return Effect(action="drop")
            case "read_timeout":
                return Effect(runs_turn=True, action="read_timeout", stall=self.seconds)
            case "malformed" | "raw":
                return Effect(answer=self._canned())
            case _:
                _unknown(self.kind)

    def _canned(self) -> Answer:
        """The answer this fault's `code`, `headers` and `body` make."""
        code = 200 if self.code is None else self.code
        return Answer(code, self.headers, self.body or b"")


# --------------------------------------------------------------------- checks


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


def _unknown(kind: NoReturn) -> NoReturn:
    """Fail on a kind without a branch (mypy reports it before any run does)."""
    msg = f"unknown fault kind {kind!r}"
    raise ValueError(msg)
