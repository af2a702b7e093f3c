"""The emulator's in-process face: an `httpx` transport, sync and async, no sockets.

Hand it to a client (`httpx.Client(transport=emu.transport())` or
`ChatDevic(http_client=...)`) and every request is answered by the emulator's
core without touching the network. Faults that a real network would show as
exceptions are raised as the same `httpx` exceptions, and waits honour the
client's read timeout: a wait longer than it ends in `httpx.ReadTimeout` after
the timeout, and the turn still runs (as on a real server that kept working).
"""

from __future__ import annotations

import asyncio
import time

import httpx

from langchain_devic.testing._core import Core, Exchange, Outcome

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
        return _respond(request, exchange.play(time.sleep, _read_timeout(request)))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Answer one request without blocking the event loop while waiting."""
        exchange = self._begin(request, await request.aread())
        outcome = await exchange.aplay(asyncio.sleep, _read_timeout(request))
        return _respond(request, outcome)

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


def _respond(request: httpx.Request, outcome: Outcome) -> httpx.Response:
    """Turn the core's outcome into a response, or raise what a network would."""
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
    return httpx.Response(
        answer.status,
        headers=answer.wire_headers(),
        content=answer.body,
        request=request,
        extensions={"http_version": b"HTTP/1.1"},
    )
