"""The one door every HTTP exchange goes through: deadline, size cap, errors.

Every request langchain-devic sends passes through `send` / `asend` (a whole
answer) or `open_stream` / `aopen_stream` (a server-sent event stream). Each
keeps, at this one place, the promises the clients make:

- **A wall-clock deadline.** The exchange ends by `deadline` (monotonic seconds)
  whatever the server does: socket timeouts never exceed the time left, every
  chunk is checked, and a read that would block past the deadline is ended (by
  one watchdog thread per process for sync calls, by a cancel scope for async
  ones). Keep-alive comments and trickled bytes cannot stretch it.
- **A decoded-size cap.** The decoded bytes (after gzip or deflate) of an
  answer, and of each single event of a stream, never exceed `cap`.
  Decompression is bounded, so a small bomb never inflates in memory.
- **Errors that hold nothing secret.** Every httpx failure becomes a `Failure`
  carrying a redacted text and whether the request may have been processed; no
  httpx object (which holds the request and its `Authorization` header) is kept
  or chained.

The clients in `_client.py` decide what a failure means for their operation
(retry, settle an unknown outcome, give up).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import heapq
import itertools
import os
import re
import socket
import sys
import threading
import time
import zlib
from collections.abc import AsyncIterator, Iterator
from typing import Literal

import httpx

from langchain_devic import _wire

#: The encodings asked for (and decoded with a bound); others are refused.
ACCEPT_ENCODING = "gzip, deflate"
#: Decompressed bytes produced per step: a bomb costs at most this much at once.
PIECE = 64 * 1024

Kind = Literal[
    "connect",  # nothing was sent: refused, failed or timed-out connect
    "unsendable",  # nothing was sent: the request cannot be written (bad header)
    "timeout",  # the request was sent; no answer within the read timeout
    "broken",  # the request was sent; the connection failed before the answer ended
    "deadline",  # the wall-clock deadline passed
    "too_large",  # the decoded answer (or one event) is over the cap
    "undecodable",  # the answer's encoding is broken or was not asked for
]


class Failure(Exception):
    """An exchange that failed; carries text only, never an httpx object.

    Attributes:
        kind: What went wrong (see `Kind`).
        detail: A short description, redacted of the key.
        status_code: The answer's status when one came before the failure.
    """

    def __init__(self, kind: Kind, detail: str, status_code: int | None = None):
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.status_code = status_code
        #: A text-only copy of the httpx error behind it (no request attached).
        self.cause: BaseException | None = None

    @property
    def sent_nothing(self) -> bool:
        """Whether the request certainly never reached the server."""
        return self.kind in ("connect", "unsendable")


@dataclasses.dataclass(frozen=True)
class Answer:
    """A whole answer: its status, headers and decoded body."""

    status_code: int
    headers: httpx.Headers
    body: bytes

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300


# ------------------------------------------------------------------ decoding


class _Inflater:
    """One gzip or deflate layer, decompressing at most `PIECE` bytes a step."""

    def __init__(self, coding: str) -> None:
        self._raw_fallback = coding == "deflate"
        bits = zlib.MAX_WBITS | 16 if coding != "deflate" else zlib.MAX_WBITS
        self._zlib = zlib.decompressobj(bits)
        self._started = False

    def pieces(self, data: bytes) -> Iterator[bytes]:
        while data:
            try:
                out = self._zlib.decompress(data, PIECE)
            except zlib.error:
                if self._raw_fallback and not self._started:
                    # "deflate" is sent with or without its zlib header.
                    self._raw_fallback = False
                    self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
                    continue
                raise
            self._started = True
            if out:
                yield out
            data = self._zlib.unconsumed_tail

    def tail(self) -> Iterator[bytes]:
        out = self._zlib.flush(PIECE)
        if out:
            yield out


class Decoder:
    """The decoded pieces of a body, each at most `PIECE` bytes (per layer)."""

    def __init__(self, content_encoding: str | None) -> None:
        codings = [
            c.strip().lower() for c in (content_encoding or "").split(",") if c.strip()
        ]
        self._layers: list[_Inflater] = []
        for coding in reversed(codings):  # the last one applied is undone first
            if coding in ("identity", ""):
                continue
            if coding not in ("gzip", "x-gzip", "deflate"):
                msg = f"an answer in {coding!r} encoding, which was not asked for"
                raise Failure("undecodable", msg)
            self._layers.append(_Inflater(coding))

    def feed(self, raw: bytes) -> Iterator[bytes]:
        """The decoded pieces of the next raw bytes."""
        return self._through(iter([raw]), 0)

    def flush(self) -> Iterator[bytes]:
        """What the layers still hold at the end of the body."""
        return self._through(iter(()), 0, final=True)

    def _through(
        self, chunks: Iterator[bytes], layer: int, *, final: bool = False
    ) -> Iterator[bytes]:
        if layer == len(self._layers):
            yield from chunks
            return
        inflater = self._layers[layer]

        def inflated() -> Iterator[bytes]:
            try:
                for chunk in chunks:
                    yield from inflater.pieces(chunk)
                if final:
                    yield from inflater.tail()
            except zlib.error as exc:
                msg = f"an answer whose compressed body is broken ({exc})"
                raise Failure("undecodable", msg) from None

        yield from self._through(inflated(), layer + 1, final=final)


def too_large(cap: int, what: str = "answer") -> Failure:
    return Failure(
        "too_large",
        f"Devic's {what} is larger than {cap} bytes (max_response_bytes) once "
        "decoded; refused (a reply is a chat message). Raise max_response_bytes "
        "if your assistant really returns this much.",
    )


class BodyCollector:
    """A whole body, decoded, refused as soon as it passes the cap."""

    def __init__(self, content_encoding: str | None, cap: int) -> None:
        self._decoder = Decoder(content_encoding)
        self._cap = cap
        self._body = bytearray()

    def feed(self, raw: bytes) -> None:
        for piece in self._decoder.feed(raw):
            self._add(piece)

    def finish(self) -> bytes:
        for piece in self._decoder.flush():
            self._add(piece)
        return bytes(self._body)

    def _add(self, piece: bytes) -> None:
        self._body += piece
        if len(self._body) > self._cap:
            raise too_large(self._cap)


_LINE_END = re.compile(rb"[\r\n]")


class LineSplitter:
    """Text lines of an event stream, each line and each event within the cap.

    Lines end with CRLF, LF or CR. The event being gathered (its lines up to
    the blank line that ends it) may not pass the cap either.
    """

    def __init__(self, content_encoding: str | None, cap: int) -> None:
        self._decoder = Decoder(content_encoding)
        self._cap = cap
        self._buffer = bytearray()
        self._event_size = 0

    def feed(self, raw: bytes) -> list[str]:
        lines: list[str] = []
        for piece in self._decoder.feed(raw):
            self._buffer += piece
            self._split(lines)
        return lines

    def _split(self, lines: list[str]) -> None:
        buffer = self._buffer
        start = 0
        while True:
            found = _LINE_END.search(buffer, start)
            if found is None:
                break
            end = found.start()
            if buffer[end] == 0x0D:  # CR: a CRLF may be split across chunks
                if end + 1 == len(buffer):
                    break
                after = end + 2 if buffer[end + 1] == 0x0A else end + 1
            else:
                after = end + 1
            line = bytes(buffer[start:end])
            self._count(len(line))
            lines.append(line.decode("utf-8", errors="replace"))
            start = after
        del buffer[:start]
        if len(buffer) > self._cap:
            raise too_large(self._cap, "stream event")

    def _count(self, size: int) -> None:
        if size == 0:
            self._event_size = 0
            return
        self._event_size += size
        if self._event_size > self._cap:
            raise too_large(self._cap, "stream event")


# ---------------------------------------------------------------- the deadline


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise Failure("deadline", "the deadline passed")
    return left


def _bounded(request: httpx.Request, deadline: float) -> None:
    """Cap every socket timeout of `request` at the time left."""
    left = _left(deadline)
    timeouts = dict(request.extensions.get("timeout") or {})
    for name in ("connect", "read", "write", "pool"):
        value = timeouts.get(name)
        timeouts[name] = left if value is None else min(value, left)
    request.extensions["timeout"] = timeouts


class _Watchdog:
    """One thread per process that ends sync reads still blocked at their deadline.

    A socket timeout bounds each read, but not a read that started just before
    the deadline with a longer timeout; at the deadline the watchdog shuts the
    socket down, and the blocked read returns at once. A disarmed entry is
    never touched again (the connection may be reused by then).
    """

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._heap: list[tuple[float, int, socket.socket]] = []
        self._armed: set[int] = set()
        self._ids = itertools.count()
        self._thread: threading.Thread | None = None

    def arm(self, deadline: float, sock: socket.socket) -> int:
        with self._lock:
            token = next(self._ids)
            heapq.heappush(self._heap, (deadline, token, sock))
            self._armed.add(token)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="langchain-devic-deadlines", daemon=True
                )
                self._thread.start()
            self._lock.notify()
            return token

    def disarm(self, token: int) -> None:
        with self._lock:
            self._armed.discard(token)

    def _run(self) -> None:
        with self._lock:
            while True:
                while self._heap and self._heap[0][1] not in self._armed:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._lock.wait()
                    continue
                wait = self._heap[0][0] - time.monotonic()
                if wait > 0:
                    self._lock.wait(wait)
                    continue
                _, token, sock = heapq.heappop(self._heap)
                self._armed.discard(token)
                with contextlib.suppress(OSError):
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)


_WATCHDOG = _Watchdog()


def _reset_watchdog_in_child() -> None:
    global _WATCHDOG
    _WATCHDOG = _Watchdog()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_watchdog_in_child)


class _watched:  # lower case, like contextlib.nullcontext: used as `with _watched(...)`
    """While reading `response`, end its socket's reads at `deadline`.

    A class, not a generator: every sync exchange enters one.
    """

    __slots__ = ("_deadline", "_sock", "_token", "_watchdog")

    def __init__(self, response: httpx.Response, deadline: float) -> None:
        stream = response.extensions.get("network_stream")
        sock = stream.get_extra_info("socket") if stream is not None else None
        # No socket to watch (a mock or custom transport): chunk checks only.
        self._sock = sock if isinstance(sock, socket.socket) else None
        self._deadline = deadline
        self._watchdog = _WATCHDOG
        self._token: int | None = None

    def __enter__(self) -> None:
        if self._sock is not None:
            self._token = self._watchdog.arm(self._deadline, self._sock)

    def __exit__(self, *exc_info: object) -> None:
        if self._token is not None:
            self._watchdog.disarm(self._token)


# ------------------------------------------------------------------- failures


def failure_from(exc: httpx.HTTPError, secret: str, deadline: float) -> Failure:
    """The `Failure` for an httpx error: its kind and redacted text only."""
    detail = _wire.redact(str(exc) or type(exc).__name__, secret)
    if isinstance(exc, httpx.DecodingError):
        return Failure("undecodable", f"an answer that could not be decoded ({detail})")
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)):
        kind: Kind = "connect"
    elif isinstance(exc, (httpx.LocalProtocolError, httpx.UnsupportedProtocol)):
        kind = "unsendable"
    elif time.monotonic() >= deadline:
        kind = "deadline"
    elif isinstance(exc, httpx.TimeoutException):
        kind = "timeout"
    else:
        kind = "broken"
    failure = Failure(kind, f"{type(exc).__name__}: {detail}")
    failure.cause = type(exc)(detail)
    return failure


# ---------------------------------------------------------------- the two colours
# The sync door keeps the deadline with capped socket timeouts, a check per
# chunk and the watchdog (`_watched`); the async one with a cancel scope
# (`_atime_limit`). Everything else is one code, written async below.


class _AnyioLimit:
    """anyio's `fail_after` as an async context manager (Python 3.10, trio)."""

    def __init__(self, seconds: float) -> None:
        import anyio  # httpx's own dependency; imported when first needed

        self._scope = anyio.fail_after(seconds)

    async def __aenter__(self) -> None:
        self._scope.__enter__()

    async def __aexit__(self, *exc_info: object) -> bool | None:
        return self._scope.__exit__(*exc_info)  # type: ignore[arg-type]


def _atime_limit(deadline: float) -> contextlib.AbstractAsyncContextManager[None]:
    """A scope that raises `TimeoutError` at `deadline`, for one async exchange.

    asyncio's own `timeout` where there is one (Python 3.11+, a third of
    anyio's cost, which every async exchange pays); anyio's elsewhere.
    """
    if sys.version_info >= (3, 11):
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # not asyncio (trio): anyio's scope
            return _AnyioLimit(_left(deadline))
        return asyncio.timeout(_left(deadline))
    return _AnyioLimit(_left(deadline))


def _time_limit(deadline: float) -> contextlib.AbstractContextManager[None]:
    """No scope for a sync exchange: its socket timeouts and watchdog keep it."""
    del deadline
    return contextlib.nullcontext()


def _awatched(
    response: httpx.Response, deadline: float
) -> contextlib.AbstractContextManager[None]:
    """No watchdog for an async exchange: its cancel scope ends a blocked read."""
    del response, deadline
    return contextlib.nullcontext()


async def _aclose_within(response: httpx.Response, deadline: float) -> None:
    """Close an answer; a close that hangs (a stuck TLS goodbye) is cut short."""
    import anyio

    with anyio.move_on_after(max(deadline - time.monotonic(), 0.0) + 1.0):
        await response.aclose()


def _check_announced(response: httpx.Response, cap: int) -> None:
    """Refuse at once an unencoded answer whose announced length is over the cap."""
    length = response.headers.get("content-length", "")
    encoded = response.headers.get("content-encoding")
    if length.isdigit() and int(length) > cap and not encoded:
        raise too_large(cap)


def _already_read(response: httpx.Response, cap: int) -> bytes | None:
    """The body a transport read itself (in-process ones do), held to the cap."""
    if not response.is_stream_consumed:
        return None
    if len(response.content) > cap:
        raise too_large(cap)
    return response.content


@dataclasses.dataclass
class Stream:
    """An open event stream: its status, headers and lines (str)."""

    status_code: int
    headers: httpx.Headers
    lines: Iterator[str]


@dataclasses.dataclass
class AsyncStream:
    """An open async event stream: its status, headers and lines (str)."""

    status_code: int
    headers: httpx.Headers
    lines: AsyncIterator[str]


# ------------------------------------------------------------------- the door


# unasync: twin
async def asend(
    http: httpx.AsyncClient,
    request: httpx.Request,
    *,
    deadline: float,
    cap: int,
    secret: str,
    read_body: bool = True,
) -> Answer:
    """One request and its whole decoded answer, by `deadline`, within `cap`."""
    status: list[int] = []
    try:
        async with _atime_limit(deadline):
            _bounded(request, deadline)
            response = await http.send(request, stream=True)
            status.append(response.status_code)
            try:
                body = b""
                if read_body:
                    with _awatched(response, deadline):
                        body = await _aread_all(response, deadline, cap)
                return Answer(response.status_code, response.headers, body)
            finally:
                await response.aclose()
    except TimeoutError:
        failure = Failure("deadline", "the deadline passed")
    except httpx.HTTPError as exc:
        failure = failure_from(exc, secret, deadline)
    except Failure as exc:
        failure = exc
    failure.status_code = status[0] if status else None
    raise failure


async def _aread_all(response: httpx.Response, deadline: float, cap: int) -> bytes:
    body = _already_read(response, cap)
    if body is not None:
        return body
    _check_announced(response, cap)
    collector = BodyCollector(response.headers.get("content-encoding"), cap)
    async for raw in response.aiter_raw():
        _left(deadline)
        collector.feed(raw)
    return collector.finish()


@contextlib.asynccontextmanager
async def aopen_stream(
    http: httpx.AsyncClient,
    request: httpx.Request,
    *,
    deadline: float,
    cap: int,
    secret: str,
) -> AsyncIterator[AsyncStream]:
    """An event stream whose lines each fit the cap, all read by `deadline`.

    Each read of the stream is bounded on its own, ending at the deadline.
    """
    failure: Failure | None = None
    try:
        async with _atime_limit(deadline):
            _bounded(request, deadline)
            response = await http.send(request, stream=True)
    except TimeoutError:
        failure = Failure("deadline", "the deadline passed")
    except httpx.HTTPError as exc:
        failure = failure_from(exc, secret, deadline)
    if failure is not None:
        raise failure

    async def lines() -> AsyncIterator[str]:
        failure: Failure | None = None
        if response.is_stream_consumed:
            for line in LineSplitter(None, cap).feed(response.content + b"\n"):
                yield line
            return
        splitter = LineSplitter(response.headers.get("content-encoding"), cap)
        raw_chunks = response.aiter_raw()
        try:
            while True:
                async with _atime_limit(deadline):
                    raw = await _anext_chunk(raw_chunks)
                if raw is None:
                    return
                _left(deadline)
                for line in splitter.feed(raw):
                    yield line
        except TimeoutError:
            failure = Failure("deadline", "the deadline passed")
        except httpx.HTTPError as exc:
            failure = failure_from(exc, secret, deadline)
        if failure is not None:
            raise failure

    try:
        with _awatched(response, deadline):
            yield AsyncStream(response.status_code, response.headers, lines())
    finally:
        # unasync: async-only
        await _aclose_within(response, deadline)
        # unasync: end
        # unasync: sync: response.close()


async def _anext_chunk(chunks: AsyncIterator[bytes]) -> bytes | None:
    try:
        return await anext(chunks)
    except StopAsyncIteration:
        return None


# unasync: twin-end
# unasync: generated (the block above, made sync: do not edit)
def send(
    http: httpx.Client,
    request: httpx.Request,
    *,
    deadline: float,
    cap: int,
    secret: str,
    read_body: bool = True,
) -> Answer:
    """One request and its whole decoded answer, by `deadline`, within `cap`."""
    status: list[int] = []
    try:
        with _time_limit(deadline):
            _bounded(request, deadline)
            response = http.send(request, stream=True)
            status.append(response.status_code)
            try:
                body = b""
                if read_body:
                    with _watched(response, deadline):
                        body = _read_all(response, deadline, cap)
                return Answer(response.status_code, response.headers, body)
            finally:
                response.close()
    except TimeoutError:
        failure = Failure("deadline", "the deadline passed")
    except httpx.HTTPError as exc:
        failure = failure_from(exc, secret, deadline)
    except Failure as exc:
        failure = exc
    failure.status_code = status[0] if status else None
    raise failure


def _read_all(response: httpx.Response, deadline: float, cap: int) -> bytes:
    body = _already_read(response, cap)
    if body is not None:
        return body
    _check_announced(response, cap)
    collector = BodyCollector(response.headers.get("content-encoding"), cap)
    for raw in response.iter_raw():
        _left(deadline)
        collector.feed(raw)
    return collector.finish()


@contextlib.contextmanager
def open_stream(
    http: httpx.Client,
    request: httpx.Request,
    *,
    deadline: float,
    cap: int,
    secret: str,
) -> Iterator[Stream]:
    """An event stream whose lines each fit the cap, all read by `deadline`.

    Each read of the stream is bounded on its own, ending at the deadline.
    """
    failure: Failure | None = None
    try:
        with _time_limit(deadline):
            _bounded(request, deadline)
            response = http.send(request, stream=True)
    except TimeoutError:
        failure = Failure("deadline", "the deadline passed")
    except httpx.HTTPError as exc:
        failure = failure_from(exc, secret, deadline)
    if failure is not None:
        raise failure

    def lines() -> Iterator[str]:
        failure: Failure | None = None
        if response.is_stream_consumed:
            for line in LineSplitter(None, cap).feed(response.content + b"\n"):
                yield line
            return
        splitter = LineSplitter(response.headers.get("content-encoding"), cap)
        raw_chunks = response.iter_raw()
        try:
            while True:
                with _time_limit(deadline):
                    raw = _next_chunk(raw_chunks)
                if raw is None:
                    return
                _left(deadline)
                for line in splitter.feed(raw):
                    yield line
        except TimeoutError:
            failure = Failure("deadline", "the deadline passed")
        except httpx.HTTPError as exc:
            failure = failure_from(exc, secret, deadline)
        if failure is not None:
            raise failure

    try:
        with _watched(response, deadline):
            yield Stream(response.status_code, response.headers, lines())
    finally:
        response.close()


def _next_chunk(chunks: Iterator[bytes]) -> bytes | None:
    try:
        return next(chunks)
    except StopIteration:
        return None


# unasync: generated-end


def budget(seconds: float) -> float:
    """A deadline `seconds` from now."""
    return time.monotonic() + seconds


__all__ = [
    "ACCEPT_ENCODING",
    "Answer",
    "AsyncStream",
    "BodyCollector",
    "Decoder",
    "Failure",
    "LineSplitter",
    "Stream",
    "aopen_stream",
    "asend",
    "budget",
    "failure_from",
    "open_stream",
    "send",
]
