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
The log file is created `0600`, never through a symbolic link, and each
rewrite goes through a temporary file with an unpredictable name.

A browser page can reach a loopback port through a name it controls (DNS
rebinding), so every request must name a loopback host in its `Host` header
(`127.0.0.0/8`, `localhost`, `[::1]`, any port); another is refused with 421.
A request body is read only in a valid framing (a decimal `Content-Length`, or
chunks with hexadecimal sizes) and up to `MAX_BODY_BYTES` on every framing;
otherwise it is refused (400, or 413 `PAYLOAD_TOO_LARGE`), and the rest of what
the client sends is read and thrown away for a moment, so that it receives the
refusal instead of a reset connection.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import errno
import ipaddress
import json
import os
import re
import socket
import socketserver
import stat
import sys
import tempfile
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
    "is_loopback_host_header",
    "prepare_request_log",
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

#: After a refusal that leaves a body unread, what the server still reads (and
#: throws away) so the client gets the answer rather than a reset: at most
#: these bytes, for at most these seconds, until the client is this long quiet.
DISCARD_MAX_BYTES = 4 * MAX_BODY_BYTES
DISCARD_MAX_SECONDS = 5.0
DISCARD_IDLE_SECONDS = 1.0

#: The longest line a chunk size (with its extensions) or a trailer may take.
MAX_LINE = 8192
#: The most trailer lines a chunked body may end with.
MAX_TRAILERS = 100

_DECIMAL = re.compile(r"[0-9]{1,19}")
_HEX_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")
_PORT = re.compile(r"(?::[0-9]{0,5})?")


class _BodyError(Exception):
    """The request body could not be read (bad length or chunking, too large)."""

    def __init__(self, status: int, message: str, code: str = "BAD_REQUEST") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def _too_large() -> _BodyError:
    limit = f"{MAX_BODY_BYTES // (1024 * 1024)} MiB"
    return _BodyError(413, f"Request body over {limit}", "PAYLOAD_TOO_LARGE")


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
        refusal = self._host_refusal()
        if refusal is not None:
            self._refuse(refusal)
            return
        try:
            body = self._read_body()
        except _BodyError as exc:
            self._refuse(error_answer(exc.status, str(exc), exc.code, emulator.dialect))
            return
        if self.path.split("?", 1)[0] == REQUESTS_PATH:
            self._answer_log()
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
        if self.command != "GET":
            self._send(error_answer(405, "Use GET", "METHOD_NOT_ALLOWED", "flat"))
        elif not emulator._authorized(list(self.headers.items())):
            unauthorized = "Invalid or missing API key"
            self._send(error_answer(401, unauthorized, "UNAUTHORIZED", "flat"))
        else:
            payload = {"requests": [record_to_json(r) for r in emulator.requests]}
            body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
            self._send(Answer(200, (("Content-Type", JSON_CONTENT_TYPE),), body))

    def handle_expect_100(self) -> bool:
        """Refuse at once (no `100 Continue`) a request that will be refused anyway."""
        refusal = self._host_refusal()
        if refusal is None:
            try:
                self._body_framing()
            except _BodyError as exc:
                dialect = self.server.emulator.dialect
                refusal = error_answer(exc.status, str(exc), exc.code, dialect)
        if refusal is not None:
            self._refuse(refusal)
            return False
        return super().handle_expect_100()

    def _host_refusal(self) -> Answer | None:
        """A 421 unless the `Host` header names a loopback host (or is absent).

        A browser always sends one; a page served from a name that resolves to
        127.0.0.1 (DNS rebinding) sends its own name, which is refused here.
        """
        hosts = self.headers.get_all("Host") or []
        if not hosts or (len(hosts) == 1 and is_loopback_host_header(hosts[0])):
            return None
        message = (
            "The Devic emulator only answers requests addressed to a loopback "
            "host (127.0.0.1, localhost or [::1]); check the Host header"
        )
        dialect = self.server.emulator.dialect
        return error_answer(421, message, "MISDIRECTED_REQUEST", dialect)

    def _body_framing(self) -> int | None:
        """The declared body length (`None`: chunked), or a `_BodyError`."""
        codings = [
            coding.strip().lower()
            for value in self.headers.get_all("Transfer-Encoding") or []
            for coding in value.split(",")
            if coding.strip()
        ]
        lengths = {v.strip() for v in self.headers.get_all("Content-Length") or []}
        if codings:
            if codings != ["chunked"]:
                raise _BodyError(400, "Unsupported Transfer-Encoding")
            if lengths:  # a smuggling attempt or a broken proxy: answer, then close
                self.close_connection = True
            return None
        if not lengths:
            return 0
        raw = lengths.pop() if len(lengths) == 1 else ""  # two lengths: refused
        if not _DECIMAL.fullmatch(raw):
            raise _BodyError(400, "Invalid Content-Length")
        if int(raw) > MAX_BODY_BYTES:
            raise _too_large()
        return int(raw)

    def _read_body(self) -> bytes:
        length = self._body_framing()
        if length is None:
            return self._read_chunked()
        body = self.rfile.read(length) if length else b""
        if len(body) != length:
            raise _BodyError(400, "Request body shorter than its Content-Length")
        return body

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(MAX_LINE + 1)
            if not line.endswith(b"\n"):
                raise _BodyError(400, "Invalid chunked encoding")
            raw = line.split(b";", 1)[0].strip(b" \t\r\n")
            if not _HEX_SIZE.fullmatch(raw):
                raise _BodyError(400, "Invalid chunk size in chunked encoding")
            size = int(raw, 16)
            if size == 0:
                self._read_trailers()
                return b"".join(chunks)
            total += size
            if total > MAX_BODY_BYTES:
                raise _too_large()
            chunk = self.rfile.read(size)
            if len(chunk) != size or self.rfile.readline(3) not in (b"\r\n", b"\n"):
                raise _BodyError(400, "Invalid chunked encoding")
            chunks.append(chunk)

    def _read_trailers(self) -> None:
        for _ in range(MAX_TRAILERS):
            line = self.rfile.readline(MAX_LINE + 1)
            if line in (b"\r\n", b"\n", b""):
                return
            if not line.endswith(b"\n"):
                break
        raise _BodyError(400, "Invalid chunked encoding trailer")

    def _refuse(self, answer: Answer) -> None:
        """Answer, then close the connection without resetting it.

        What the client still sends (the rest of a body too large or badly
        framed) is read and thrown away, within bounds, so that it reads the
        answer instead of a reset.
        """
        self.close_connection = True
        with contextlib.suppress(OSError):
            self._send(answer)
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            self._discard_input()

    def _discard_input(self) -> None:
        deadline = time.monotonic() + DISCARD_MAX_SECONDS
        left = DISCARD_MAX_BYTES
        reader: Any = self.rfile
        while left > 0:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.server.closing.is_set():
                return
            self.connection.settimeout(min(DISCARD_IDLE_SECONDS, remaining))
            try:
                data = reader.read1(min(left, 65536))
            except TimeoutError:
                return
            if not data:
                return
            left -= len(data)

    def _send(self, answer: Answer) -> None:
        self.send_response_only(answer.status)
        for name, value in answer.wire_headers():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
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
            each answer; created `0600`, refused if it is a symbolic link or
            not a regular file; `None` keeps none (`GET /_emulator/requests`
            always answers the log).

    Raises:
        ValueError: If `host` is not a loopback address.
        OSError: If `log_path` cannot be written, is a symbolic link or is not
            a regular file (before any port is bound).
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
        if self.log_path is not None:
            prepare_request_log(self.log_path)
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


def is_loopback_host_header(value: str) -> bool:
    """Whether a `Host` header names a loopback host, with any port or none.

    `127.0.0.1:8765`, `localhost`, `[::1]:80` are; `evil.example:8765`,
    `127.0.0.1.nip.io` or `localhost:http` are not.
    """
    value = value.strip()
    if value.startswith("["):
        host, bracket, port = value[1:].partition("]")
        if not bracket:
            return False
    elif value.count(":") == 1:
        host, _, port = value.partition(":")
        port = ":" + port
    else:  # a bare name, or an unbracketed IPv6 address
        host, port = value, ""
    return bool(host) and _PORT.fullmatch(port) is not None and is_loopback_host(host)


def prepare_request_log(path: str | os.PathLike[str]) -> None:
    """Create (or check) the request log file: `0600`, never through a symlink.

    Raises:
        OSError: If `path` is a symbolic link, not a regular file, or cannot be
            opened for writing; `strerror` says which.
    """
    flags = os.O_WRONLY | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
    flags |= getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    if os.path.islink(path):  # also where O_NOFOLLOW does not exist
        raise OSError(errno.ELOOP, _SYMLINK_REFUSED, os.fspath(path))
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise OSError(errno.ELOOP, _SYMLINK_REFUSED, os.fspath(path)) from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            msg = "not a regular file"
            raise OSError(errno.EINVAL, msg, os.fspath(path))
    finally:
        os.close(fd)


_SYMLINK_REFUSED = "is a symbolic link; refusing to write the request log through it"


def write_request_log(path: Path, records: Sequence[RecordedRequest]) -> None:
    """Write `records` to `path` as JSON lines, in one atomic replace.

    A reader never sees half a log. The lines go to a new `0600` file with an
    unpredictable name beside `path` (`mkstemp`), which then replaces `path`:
    a symbolic link planted at `path` is replaced, never written through.
    """
    lines = [json.dumps(record_to_json(r), ensure_ascii=False) for r in records]
    fd, partial = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=".tmp", dir=path.parent
    )
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write("".join(line + "\n" for line in lines))
        os.replace(partial, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(partial)
        raise
