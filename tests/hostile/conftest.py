"""A hostile HTTP server on loopback, and what every hostile test shares.

`hostile_server` is a small HTTP/1.1 server written on bare sockets: a test
registers a handler per (method, path); the handler gets the parsed `Request`
and a `Writer` that writes raw bytes, sleeps, trickles, keeps a connection
silently open or closes it abruptly. Every request is recorded, so a test
counts what the client sent (a turn is never posted twice).

Nothing here can hang a test: each connection lives at most `max_life`
seconds, every socket operation has a timeout, and teardown closes every
socket and joins every thread with a bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib.util import find_spec
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from langchain_devic import ChatDevic

KEY = "dk-test-secret-0123456789"
ASSISTANT = "asst"
CHAT = "c1"
PREFIX = f"/api/v1/assistants/{ASSISTANT}"
MESSAGES = f"{PREFIX}/messages"
CHATS = f"{PREFIX}/chats"
HISTORY = f"{CHATS}/{CHAT}"
STREAM = f"{HISTORY}/stream"
REALTIME = f"{HISTORY}/realtime"
STOP = f"{HISTORY}/stop"
TOOL_RESPONSE = f"{HISTORY}/tool-response"
MIB = 1024 * 1024
#: Slack on every wall-clock bound (scheduling on a busy 2-core machine).
SLACK = 1.5

_AIOHTTP = pytest.mark.skipif(
    find_spec("httpx_aiohttp") is None,
    reason='needs httpx-aiohttp (pip install "langchain-devic[aiohttp]")',
)
#: The async transports ChatDevic can build.
ASYNC_WAYS = ["httpcore", pytest.param("aiohttp", marks=_AIOHTTP)]
#: Every way to call: the sync client, and the async one on each transport.
WAYS = ["sync", *ASYNC_WAYS]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Allow loopback sockets (and nothing else) for every hostile test."""
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.path).startswith(here):
            item.add_marker(pytest.mark.allow_hosts(["127.0.0.1"]))


# ----------------------------------------------------------------- the server


@dataclass
class Request:
    """One request as the server read it (headers lower-cased)."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    path: str = field(init=False)
    query: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        parts = urlsplit(self.target)
        self.path, self.query = parts.path, dict(parse_qsl(parts.query))

    def json(self) -> Any:
        return json.loads(self.body or b"null")


class Gone(Exception):
    """The client went away, or the connection's time is up: stop writing."""


class Writer:
    """Raw access to one connection; every wait ends at the connection's deadline."""

    def __init__(self, sock: socket.socket, stop: threading.Event, life: float):
        self.sock, self._stop = sock, stop
        self._deadline = time.monotonic() + life

    def write(self, data: bytes) -> None:
        if self._stop.is_set() or time.monotonic() > self._deadline:
            raise Gone
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise Gone from exc

    def head(self, status: int, headers: dict[str, str] | None = None) -> None:
        """The status line and headers; the body follows (closed by `close`)."""
        lines = [f"HTTP/1.1 {status} X"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        lines.append("Connection: close")
        self.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    def respond(
        self, status: int, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> None:
        """A whole answer with its `Content-Length` (JSON unless told otherwise)."""
        fields = {"Content-Type": "application/json", **(headers or {})}
        fields.setdefault("Content-Length", str(len(body)))
        self.head(status, fields)
        self.write(body)

    def json(self, status: int, payload: Any, headers: dict[str, str] | None = None):
        self.respond(status, json.dumps(payload).encode(), headers)

    def sleep(self, seconds: float) -> None:
        """Stay silent; `Gone` once the server stops or the deadline passes."""
        remaining = self._deadline - time.monotonic()
        if self._stop.wait(min(seconds, max(remaining, 0.0))) or remaining < seconds:
            raise Gone

    hold = sleep

    def trickle(self, data: bytes, every: float = 0.2, size: int = 1) -> None:
        """Write `data` `size` bytes at a time, one piece every `every` seconds."""
        for start in range(0, len(data), size):
            self.sleep(every)
            self.write(data[start : start + size])

    def repeat(self, data: bytes, every: float, seconds: float) -> None:
        """Write `data` every `every` seconds for `seconds` (keep-alives)."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.write(data)
            self.sleep(every)

    def write_many(self, chunk: bytes, count: int) -> None:
        """Write one chunk `count` times: a huge body held once, in memory."""
        for _ in range(count):
            self.write(chunk)

    def abort(self) -> None:
        """Close abruptly: a TCP reset, no answer."""
        with contextlib.suppress(OSError):
            self.sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
        self.sock.close()
        raise Gone


Handler = Callable[[Request, Writer], None]


def answer(status: int, payload: Any, headers: dict[str, str] | None = None):
    """A handler that answers `payload` as JSON."""
    return lambda request, writer: writer.json(status, payload, headers)


def in_turn(*handlers: Handler) -> Handler:
    """A handler playing `handlers` one request after another (the last repeats)."""
    queue = list(handlers)

    def play(request: Request, writer: Writer) -> None:
        handler = queue.pop(0) if len(queue) > 1 else queue[0]
        handler(request, writer)

    return play


class HostileServer:
    """An HTTP/1.1 server on 127.0.0.1 whose answers the test writes by hand."""

    def __init__(self, max_life: float = 10.0) -> None:
        self.max_life = max_life
        self.requests: list[Request] = []
        self.connections = 0
        self._routes: dict[tuple[str, str], Handler] = {}
        self._stop = threading.Event()
        self._socks: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port: int = self._listener.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}/api/v1"
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def on(self, method: str, path: str, handler: Handler) -> None:
        self._routes[(method, path)] = handler

    def count(self, method: str, path: str) -> int:
        return sum(r.method == method and r.path == path for r in self.requests)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except OSError:
                continue
            with self._lock:
                self.connections += 1
                self._socks.add(sock)
            thread = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, sock: socket.socket) -> None:
        sock.settimeout(5.0)
        try:
            request = self._read(sock)
            if request is not None:
                self.requests.append(request)
                key = (request.method, request.path)
                default = answer(404, {"statusCode": 404, "message": "no route"})
                self._routes.get(key, default)(
                    request, Writer(sock, self._stop, self.max_life)
                )
        except (Gone, OSError):
            pass
        finally:
            with self._lock:
                self._socks.discard(sock)
            with contextlib.suppress(OSError):
                sock.close()

    @staticmethod
    def _read(sock: socket.socket) -> Request | None:
        data = b""
        while b"\r\n\r\n" not in data:
            piece = sock.recv(65536)
            if not piece or len(data) > 65536:
                return None
            data += piece
        head, _, body = data.partition(b"\r\n\r\n")
        line, *header_lines = head.decode("latin-1").split("\r\n")
        method, target, _ = line.split(" ", 2)
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (h.partition(":") for h in header_lines)
        }
        length = min(int(headers.get("content-length", "0")), 4 * MIB)
        while len(body) < length:
            piece = sock.recv(65536)
            if not piece:
                break
            body += piece
        return Request(method, target, headers, body)

    def close(self) -> None:
        """Stop: close every socket, join every thread (a few seconds at most)."""
        self._stop.set()
        self._listener.close()
        with self._lock:
            for sock in self._socks:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        end = time.monotonic() + 3.0
        for thread in self._threads:
            thread.join(max(end - time.monotonic(), 0.01))


@pytest.fixture
def hostile_server() -> Iterator[HostileServer]:
    server = HostileServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(params=WAYS)
def way(request: pytest.FixtureRequest) -> str:
    """`"sync"`, or the async transport an async call goes through."""
    return str(request.param)


@pytest.fixture(params=ASYNC_WAYS)
def async_way(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# ------------------------------------------------------------ client helpers


def make_model(server: HostileServer, way: str = "sync", **fields: Any) -> ChatDevic:
    """The model under test, pointed at `server`."""
    transport = way if way != "sync" else "httpcore"
    return ChatDevic(
        assistant_id=ASSISTANT,
        api_key=KEY,
        base_url=server.base_url,
        async_transport=transport,
        **fields,
    )


def call(way: str, model: ChatDevic, name: str, *args: Any, **kwargs: Any) -> Any:
    """`model.<name>(...)`, or its async twin in a fresh event loop.

    `"stream"` collects every chunk into a list.
    """
    if way == "sync":
        if name == "stream":
            return list(model.stream(*args, **kwargs))
        return getattr(model, name)(*args, **kwargs)

    async def run() -> Any:
        if name == "stream":
            return [chunk async for chunk in model.astream(*args, **kwargs)]
        return await getattr(model, "a" + name)(*args, **kwargs)

    return asyncio.run(run())


def sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}


def msg(uid: str, role: str, text: str | None, **extra: Any) -> dict[str, Any]:
    """A platform `ChatMessage`."""
    content = {} if text is None else {"message": text}
    return {"uid": uid, "role": role, "content": content, **extra}


def view(status: str, *messages: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A realtime view of chat `c1`."""
    return {"chatUID": CHAT, "status": status, "chatHistory": list(messages), **extra}


def history(*messages: dict[str, Any]) -> dict[str, Any]:
    """The history of chat `c1`, as `GET …/chats/c1` answers it."""
    return {
        "chatUID": CHAT,
        "chatContent": list(messages),
        "tokenUsage": {"inputTokens": 10, "outputTokens": 5},
    }


@contextlib.contextmanager
def stopwatch() -> Iterator[list[float]]:
    """`with stopwatch() as took:` then `took[0]` is the seconds spent inside."""
    took: list[float] = []
    start = time.monotonic()
    try:
        yield took
    finally:
        took.append(time.monotonic() - start)
