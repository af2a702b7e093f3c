"""The emulator's network face: a threaded HTTP/1.1 server on a loopback port.

`EmulatorServer` runs a `ThreadingHTTPServer` in a daemon thread and answers
from the emulator's core, so real clients (curl, a notebook, `httpx` with real
sockets, vcrpy) can talk to it. It refuses any address that is not loopback,
never logs (request lines and headers could carry secrets), keeps connections
alive, writes an SSE stream chunk by chunk as it happens (flushing each frame,
then closing the connection), and on `close()` stops serving, ends open
streams, drops open connections and frees the port.

Another process can read the request log, which never holds a credential:
`GET /_emulator/requests` (with the emulator's bearer token) answers it as JSON
(`{"requests": [...]}`, one object per request, see `record_to_json`), and a
server built with `log_path` keeps that file as JSON lines, rewritten before
each answer leaves (so a client that has its answer finds its request there).
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import ipaddress
import json
import os
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

from langchain_devic.testing._core import Core, RecordedRequest
from langchain_devic.testing._render import (
    JSON_CONTENT_TYPE,
    SERVER_NAME,
    Answer,
    StreamAnswer,
    error_answer,
)

__all__ = [
    "REQUESTS_PATH",
    "EmulatorServer",
    "is_loopback_host",
    "record_to_json",
    "write_request_log",
]

#: The loopback admin route that answers the request log as JSON.
REQUESTS_PATH = "/_emulator/requests"

#: Request bodies larger than this are refused with 413.
MAX_BODY_BYTES = 16 * 1024 * 1024
#: How often the serving thread checks for shutdown, in seconds.
POLL_INTERVAL = 0.05


#: Seconds a finished stream stays open after its last frame.
STREAM_LINGER = 0.25


class _BodyError(Exception):
    """The request body could not be read (bad length or chunking, too large)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _Handler(BaseHTTPRequestHandler):
    """Hands each request to the emulator core and writes what it decides."""

    protocol_version = "HTTP/1.1"
    server_version = SERVER_NAME
    sys_version = ""
    server: _LoopbackHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        """Log nothing: request lines and headers may carry secrets."""

    def _dispatch(self) -> None:
        emulator = self.server.emulator
        if self.path.split("?", 1)[0] == REQUESTS_PATH:
            self._answer_log()
            return
        try:
            body = self._read_body()
        except _BodyError as exc:
            self.close_connection = True
            refusal = error_answer(
                exc.status, str(exc), "BAD_REQUEST", emulator.dialect
            )
            self._send(refusal)
            return
        try:
            exchange = emulator.begin(
                self.command, self.path, list(self.headers.items()), body, face="server"
            )
            outcome = exchange.play(time.sleep)
        except Exception as exc:
            # A bug (or a raising fault_policy) answers 500 instead of vanishing;
            # the traceback still goes to stderr via handle_error.
            self.close_connection = True
            failure = f"Emulator error: {type(exc).__name__}: {exc}"
            refusal = error_answer(500, failure, "INTERNAL_ERROR", emulator.dialect)
            with contextlib.suppress(OSError):
                self._send(refusal)
            raise
        self.server.write_log()  # before the answer: its client then finds it
        if isinstance(outcome.answer, StreamAnswer):
            self._stream(outcome.answer)
        elif outcome.answer is not None:
            self._send(outcome.answer)
        else:  # dropped, or a read timeout whose stall is over
            self._drop()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _dispatch

    def _answer_log(self) -> None:
        """The request log as JSON (GET, bearer token); itself never logged."""
        emulator = self.server.emulator
        self._read_body()
        if self.command != "GET":
            self._send(error_answer(405, "Use GET", "METHOD_NOT_ALLOWED", "flat"))
        elif not emulator._authorized(list(self.headers.items())):
            unauthorized = "Invalid or missing API key"
            self._send(error_answer(401, unauthorized, "UNAUTHORIZED", "flat"))
        else:
            payload = {"requests": [record_to_json(r) for r in emulator.requests]}
            body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
            self._send(Answer(200, (("Content-Type", JSON_CONTENT_TYPE),), body))

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        raw = self.headers.get("Content-Length")
        if raw is None:
            return b""
        try:
            length = int(raw)
        except ValueError:
            raise _BodyError(400, "Invalid Content-Length") from None
        if length < 0:
            raise _BodyError(400, "Invalid Content-Length")
        if length > MAX_BODY_BYTES:
            raise _BodyError(413, "Request body too large")
        return self.rfile.read(length)

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(65537)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise _BodyError(400, "Invalid chunked encoding") from None
            if size == 0:
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            total += size
            if total > MAX_BODY_BYTES:
                raise _BodyError(413, "Request body too large")
            chunks.append(self.rfile.read(size))
            self.rfile.readline(65537)

    def _send(self, answer: Answer) -> None:
        self.send_response_only(answer.status)
        for name, value in answer.wire_headers():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(answer.body)

    def _stream(self, answer: StreamAnswer) -> None:
        """Write the frames as chunks as they come, then close the connection."""
        self.close_connection = True
        self.send_response_only(answer.status)
        for name, value in answer.wire_headers():
            self.send_header(name, value)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command == "HEAD":
            return
        for frame in answer.frames.iterate(self.server.closing.is_set):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(frame), frame))
            self.wfile.flush()
        # A reader that handles each frame before it notices the end (Devic's
        # CLI `live` parser on Node does) hangs when the last frame and the end
        # arrive in one read: let the last frame travel alone.
        self.server.closing.wait(STREAM_LINGER)
        if not self.server.closing.is_set():
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

    def _drop(self) -> None:
        """Close the connection without a single byte of answer."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


class _LoopbackHTTPServer(ThreadingHTTPServer):
    """A threaded HTTP server that tracks its connections so it can drop them."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024

    def __init__(
        self, emulator: Core, host: str, port: int, log_path: Path | None = None
    ) -> None:
        self.emulator = emulator
        self.log_path = log_path
        self._log_lock = threading.Lock()
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        #: Set by `EmulatorServer.close()`: open streams end.
        self.closing = threading.Event()
        super().__init__((host, port), _Handler)

    def write_log(self) -> None:
        """Rewrite the JSON-lines request log, if this server keeps one."""
        if self.log_path is not None:
            with self._log_lock:
                write_request_log(self.log_path, self.emulator.requests)

    def server_bind(self) -> None:
        """Bind without the reverse DNS lookup `HTTPServer` does (it can be slow)."""
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Remember the connection, then serve it in its own thread."""
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        """Forget the connection and close it."""
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        """Shut every open connection, waking handler threads blocked on them."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet about connections the client (or `close()`) cut short."""
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


class EmulatorServer:
    """A `DevicEmulator` served over HTTP on a loopback port, in a daemon thread.

    Use it as a context manager (`with emu.serve() as server:`) or call
    `close()`; either way the port is free again afterwards.

    Args:
        emulator: The emulator whose state answers the requests.
        host: A loopback address (`127.0.0.0/8`, `::1` or `localhost`).
        port: The port; `0` picks a free one.
        log_path: A file to keep the request log in, as JSON lines (one
            `record_to_json` object per request), rewritten as a whole before
            each answer; `None` keeps none (`GET /_emulator/requests` always
            answers the log).

    Raises:
        ValueError: If `host` is not a loopback address.
    """

    #: The loopback admin route that answers the request log as JSON.
    REQUESTS_PATH = REQUESTS_PATH

    def __init__(
        self,
        emulator: Core,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        log_path: str | os.PathLike[str] | None = None,
    ) -> None:
        if not is_loopback_host(host):
            msg = (
                f"Refusing to serve the Devic emulator on {host!r}: it accepts a "
                "fake key and must only listen on a loopback address "
                "(127.0.0.0/8, ::1 or localhost)."
            )
            raise ValueError(msg)
        bind_host = host.strip().strip("[]")
        if bind_host.lower() == "localhost":
            bind_host = "127.0.0.1"
        self.emulator = emulator
        self.log_path = None if log_path is None else Path(log_path)
        self._httpd = _LoopbackHTTPServer(emulator, bind_host, port, self.log_path)
        self._httpd.write_log()  # an empty log exists as soon as the server does
        self.host: str = bind_host
        self.port: int = int(self._httpd.server_address[1])
        self._closed = False
        self._close_lock = threading.Lock()
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": POLL_INTERVAL},
            name=f"devic-emulator-{self.port}",
            daemon=True,
        )
        self._thread.start()

    @property
    def base_url(self) -> str:
        """The base URL to give a client, e.g. `http://127.0.0.1:8765/v1`."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{self.emulator.base_path}"

    @property
    def requests_url(self) -> str:
        """The admin URL that answers the request log as JSON."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{REQUESTS_PATH}"

    @property
    def closed(self) -> bool:
        """Whether `close()` has been called."""
        return self._closed

    def close(self) -> None:
        """Stop serving, drop open connections and free the port (idempotent)."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
            self._httpd.closing.set()
            self._httpd.shutdown()
            self._thread.join()
            self._httpd.server_close()
            self._httpd.drop_connections()
            self._httpd.write_log()  # the final state of every request

    def __enter__(self) -> EmulatorServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "serving"
        return f"{type(self).__name__}({self.base_url!r}, {state})"


def is_loopback_host(host: str) -> bool:
    """Whether `host` is a loopback address: 127.0.0.0/8, `::1` or `localhost`.

    Brackets around an IPv6 address and surrounding blanks are ignored; a name
    that merely starts with a loopback address (`127.0.0.1.example.com`) is not
    loopback.
    """
    host = host.strip().strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def record_to_json(record: RecordedRequest) -> dict[str, Any]:
    """A recorded request as a JSON object (it never holds a credential).

    Every field of `RecordedRequest`; the raw `body` is text when it is UTF-8,
    else `{"base64": ...}`.
    """
    out: dict[str, Any] = {}
    for field in dataclasses.fields(record):
        value = getattr(record, field.name)
        if isinstance(value, bytes):
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError:
                value = {"base64": base64.b64encode(value).decode("ascii")}
        out[field.name] = value
    return out


def write_request_log(path: Path, records: Sequence[RecordedRequest]) -> None:
    """Write `records` to `path` as JSON lines, in one atomic replace.

    A reader never sees half a log.
    """
    lines = [json.dumps(record_to_json(r), ensure_ascii=False) for r in records]
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    partial.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    os.replace(partial, path)
