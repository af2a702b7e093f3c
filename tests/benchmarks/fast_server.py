"""A fast loopback HTTP/1.1 server for the fan-out benchmark, run in its own process.

`python -m tests.benchmarks.fast_server --latency 0.1` listens on 127.0.0.1 (a
free port), prints `READY <port>` and answers every request, after `latency`
seconds, with a fixed flat Devic reply, keeping connections alive. One asyncio
loop and no per-request thread: the threaded emulator tops out near 67 % of
ideal for any client on two cores, which would hide the clients' differences.
It checks the bearer token (401 otherwise) and nothing else.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys

from tests.benchmarks._common import API_KEY

REPLY = json.dumps(
    {
        "chatUuid": "chat-fanout-1",
        "message": "Reply from the fast server.",
        "tokens_used": 7,
        "timestamp": "2026-01-01T00:00:00Z",
    }
).encode()
AUTH = f"authorization: bearer {API_KEY}".encode().lower()


def response(status: bytes, body: bytes) -> bytes:
    """A complete keep-alive HTTP/1.1 response."""
    head = (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n\r\n"
    )
    return head + body


OK = response(b"200 OK", REPLY)
UNAUTHORIZED = response(b"401 Unauthorized", b'{"error": "unauthorized"}')


def take_request(buffer: bytes) -> tuple[bytes, bytes, bytes] | None:
    """The first complete request in `buffer`: (lowercased head, body, the rest).

    `None` while the request is incomplete. Bodies are framed by
    `content-length` only (what httpx and aiohttp send for JSON).
    """
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = buffer[:end].lower()
    length = 0
    for line in head.split(b"\r\n")[1:]:
        if line.startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    total = end + 4 + length
    if len(buffer) < total:
        return None
    return head, buffer[end + 4 : total], buffer[total:]


class Handler(asyncio.Protocol):
    """One connection: requests in order, each answered after the latency."""

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (request := take_request(self.buffer)) is not None:
            head, _, self.buffer = request
            answer = OK if AUTH in head else UNAUTHORIZED
            asyncio.get_running_loop().call_later(self.latency, self._send, answer)

    def _send(self, answer: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(answer)


async def serve(latency: float) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: Handler(latency), "127.0.0.1", 0, backlog=1024
    )
    port = server.sockets[0].getsockname()[1]
    print(f"READY {port}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.1)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.latency))
    return 0


if __name__ == "__main__":
    sys.exit(main())
