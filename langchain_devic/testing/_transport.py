"""The emulator's in-process face: an `httpx` transport, sync and async, no sockets.

Hand it to a client (`httpx.Client(transport=emu.transport())` or
`ChatDevic(http_client=...)`) and every request is answered by the emulator's
core without touching the network. Faults that a real network would show as
exceptions are raised as the same `httpx` exceptions, and waits honour the
client's read timeout: a wait longer than it ends in `httpx.ReadTimeout` after
the timeout, and the turn still runs (as on a real server that kept working).
The SSE route really streams: the response's body is written as the run goes
(a sync iterator waits in the thread, an async one sleeps as a task), and a
stream quiet for longer than the read timeout raises `httpx.ReadTimeout`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import httpx

from langchain_devic.testing._core import Core, Exchange, Outcome
from langchain_devic.testing._render import Answer, Frames, StreamAnswer

__all__ = ["EmulatorTransport"]


class EmulatorTransport(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """An `httpx` transport (sync and async) answering from a `DevicEmulator`.

    Args:
        emulator: The emulator whose state answers the requests.
    """

    def __init__(self, emulator: Core) -> None:
        self.emulator = emulator

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.emulator!r})"

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Answer one request synchronously (latency is a `time.sleep`)."""
        exchange = self._begin(request, request.read())
        read_timeout = _read_timeout(request)
        outcome = exchange.play(time.sleep, read_timeout)
        answer = _answer(request, outcome)
        if isinstance(answer, StreamAnswer):
            stream = _SyncFrames(answer.frames, request, read_timeout)
            return _response(request, answer, stream=stream)
        return _response(request, answer)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Answer one request without blocking the event loop while waiting."""
        exchange = self._begin(request, await request.aread())
        read_timeout = _read_timeout(request)
        outcome = await exchange.aplay(asyncio.sleep, read_timeout)
        answer = _answer(request, outcome)
        if isinstance(answer, StreamAnswer):
            stream = _AsyncFrames(answer.frames, request, read_timeout)
            return _response(request, answer, stream=stream)
        return _response(request, answer)

    def close(self) -> None:
        """Nothing to release: the transport holds no connections."""

    async def aclose(self) -> None:
        """Nothing to release: the transport holds no connections."""

    def _begin(self, request: httpx.Request, body: bytes) -> Exchange:
        target = request.url.raw_path.decode("ascii", errors="replace")
        return self.emulator.begin(
            request.method,
            target,
            request.headers.multi_items(),
            body,
            face="transport",
        )


def _read_timeout(request: httpx.Request) -> float | None:
    """The client's read timeout for this request, if it set one."""
    timeouts = request.extensions.get("timeout")
    if isinstance(timeouts, dict):
        value = timeouts.get("read")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None


def _answer(request: httpx.Request, outcome: Outcome) -> Answer | StreamAnswer:
    """The answer of an outcome, or raise what a network would instead."""
    if outcome.action == "connect_error":
        raise httpx.ConnectError("connection refused", request=request)
    if outcome.action == "drop":
        raise httpx.RemoteProtocolError(
            "Server disconnected without sending a response.", request=request
        )
    if outcome.action == "read_timeout":
        raise httpx.ReadTimeout("timed out", request=request)
    answer = outcome.answer
    assert answer is not None  # noqa: S101 - "answer" outcomes carry one
    return answer


def _response(
    request: httpx.Request,
    answer: Answer | StreamAnswer,
    *,
    stream: httpx.SyncByteStream | httpx.AsyncByteStream | None = None,
) -> httpx.Response:
    """The `httpx` response of an answer (a stream's body comes from `stream`)."""
    extensions = {"http_version": b"HTTP/1.1"}
    if isinstance(answer, Answer):
        return httpx.Response(
            answer.status,
            headers=answer.wire_headers(),
            content=answer.body,
            request=request,
            extensions=extensions,
        )
    return httpx.Response(
        answer.status,
        headers=answer.wire_headers(),
        stream=stream,
        request=request,
        extensions=extensions,
    )


class _Silence:
    """Tells when a stream has been quiet for longer than the read timeout."""

    def __init__(self, request: httpx.Request, read_timeout: float | None) -> None:
        self._request = request
        self._timeout = read_timeout
        self._last = time.monotonic()

    def heard(self) -> None:
        self._last = time.monotonic()

    def too_long(self) -> bool:
        return self._timeout is not None and (
            time.monotonic() - self._last > self._timeout
        )

    def check(self) -> None:
        if self.too_long():
            raise httpx.ReadTimeout("timed out", request=self._request)


class _Body:
    """A stream's frames as a response body, each as soon as it is written."""

    def __init__(
        self, frames: Frames, request: httpx.Request, read_timeout: float | None
    ) -> None:
        self._frames = frames
        self._silence = _Silence(request, read_timeout)


class _SyncFrames(_Body, httpx.SyncByteStream):
    """The frames as a sync body."""

    def __iter__(self) -> Iterator[bytes]:
        for frame in self._frames.iterate(self._silence.too_long):
            self._silence.heard()
            yield frame
        self._silence.check()


class _AsyncFrames(_Body, httpx.AsyncByteStream):
    """The frames as an async body."""

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for frame in self._frames.aiterate(self._silence.too_long):
            self._silence.heard()
            yield frame
        self._silence.check()
