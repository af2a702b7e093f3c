"""A loopback Devic platform server for the follow benchmark, run in its own process.

`python -m tests.benchmarks.follow_server [--no-stream]` listens on 127.0.0.1 (a
free port), prints `READY <port>` and serves platform runs under `/v1`, each
answered at once from one asyncio loop (no thread per request or stream):

- `POST /v1/assistants/{id}/messages?async=true` starts a run and answers
  `{"chatUid": "c<n>"}`. The run writes `--pieces` pieces of text, evenly over
  `--seconds`, then completes. A message containing `stuck` starts a run that
  writes two pieces and never finishes; one containing `warm` completes in
  0.3 s.
- `GET …/chats/{chat}/stream?partial=1`: server-sent events, a `snapshot` of the
  run as it stands, a `delta` (`{"append": piece}`) per piece written after
  that, and a `completed` snapshot at the end (chunked, keep-alive). A stuck
  run's stream sends a keep-alive comment every `--keepalive` seconds (0:
  silence) until the client goes. With `--no-stream` the route answers 404, so
  clients poll the realtime view.
- `GET …/chats/{chat}/realtime`: the run's realtime view at this moment.
- `GET …/chats/{chat}`: the chat's history with its token totals.
- `POST …/chats/{chat}/stop`: the run completes with what it wrote.
- `GET /stats`: request counters, peak open streams and connections, and this
  process's CPU seconds, so a client can tell whether the server kept up.

Every route checks the bearer token (401 otherwise). Lower-case paths only
(`fast_server.take_request` lowercases the head).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from tests.benchmarks.fast_server import AUTH, UNAUTHORIZED, response, take_request

#: How long a run whose message contains `warm` takes (pools and imports warm-up).
WARM_SECONDS = 0.3
#: How many pieces a stuck run writes before it stalls for good.
STUCK_PIECES = 2
NOT_FOUND = response(b"404 Not Found", b'{"error": "not found"}')
STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
    b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n"
)
END_OF_CHUNKS = b"0\r\n\r\n"


def reply_text(pieces: int) -> str:
    """The whole reply of a finished run of `pieces` pieces (clients check it)."""
    return "".join(piece(index) for index in range(pieces))


def piece(index: int) -> str:
    """The text a run writes as its `index`-th piece."""
    return f"Piece {index} of the reply. "


def chunk(data: bytes) -> bytes:
    """One chunk of a `transfer-encoding: chunked` body."""
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def event(name: str, data: Any) -> bytes:
    """One server-sent event, as a chunk."""
    return chunk(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())


@dataclass
class Run:
    """One platform run: its clock, and how far it has written."""

    chat: str
    message: str
    started: float  # loop time
    started_ms: int  # epoch ms, for the views' timestamps
    seconds: float
    pieces: int
    stuck: bool = False
    stopped_at: int | None = None  # pieces written when stopped

    @property
    def interval(self) -> float:
        return self.seconds / self.pieces

    def written(self, now: float) -> int:
        """Pieces written by loop time `now`."""
        if self.stopped_at is not None:
            return self.stopped_at
        count = min(self.pieces, int((now - self.started) / self.interval))
        return min(count, STUCK_PIECES) if self.stuck else count

    def finished(self, now: float) -> bool:
        if self.stopped_at is not None:
            return True
        return not self.stuck and now - self.started >= self.seconds

    def text(self, written: int) -> str:
        return "".join(piece(index) for index in range(written))

    def messages(self, now: float) -> list[dict[str, Any]]:
        user = {
            "uid": f"u-{self.chat}",
            "role": "user",
            "content": {"message": self.message},
            "timestamp": self.started_ms,
        }
        if not self.finished(now):
            return [user]
        reply = {
            "uid": f"a-{self.chat}",
            "role": "assistant",
            "content": {"message": self.text(self.written(now))},
            "timestamp": self.updated_ms(now),
        }
        return [user, reply]

    def updated_ms(self, now: float) -> int:
        return self.started_ms + round(self.written(now) * self.interval * 1000)

    def view(self, now: float) -> dict[str, Any]:
        """The realtime view at loop time `now`."""
        finished = self.finished(now)
        view: dict[str, Any] = {
            "chatUID": self.chat,
            "status": "completed" if finished else "processing",
            "lastUpdatedAt": self.updated_ms(now),
            "chatHistory": self.messages(now),
        }
        if not finished:
            view["streamingMessage"] = {
                "uid": f"a-{self.chat}",
                "role": "assistant",
                "content": {"message": self.text(self.written(now))},
                "timestamp": self.updated_ms(now),
            }
        return view


@dataclass
class State:
    """Every run of this server, and the counters `/stats` reports."""

    seconds: float
    pieces: int
    stream: bool
    keepalive: float
    runs: dict[str, Run] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)
    streams_open: int = 0
    connections_open: int = 0

    def count_open(self, key: str, delta: int) -> None:
        value = getattr(self, f"{key}_open") + delta
        setattr(self, f"{key}_open", value)
        self.counts[f"{key}_peak"] = max(self.counts[f"{key}_peak"], value)

    def start(self, message: str, loop: asyncio.AbstractEventLoop) -> Run:
        chat = f"c{len(self.runs) + 1}"
        seconds = WARM_SECONDS if "warm" in message else self.seconds
        run = Run(
            chat,
            message,
            loop.time(),
            int(time.time() * 1000),
            seconds,
            self.pieces,
            stuck="stuck" in message,
        )
        self.runs[chat] = run
        return run


def json_answer(payload: Any) -> bytes:
    return response(b"200 OK", json.dumps(payload).encode())


class RunHandler(asyncio.Protocol):
    """One connection: requests in order, each answered at once (or streamed)."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.timers: list[asyncio.TimerHandle] = []
        self.streaming = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.state.count_open("connections", 1)

    def connection_lost(self, exc: Exception | None) -> None:
        self.state.count_open("connections", -1)
        self._end_stream()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (request := take_request(self.buffer)) is not None:
            head, body, self.buffer = request
            self.state.counts["requests"] += 1
            if AUTH not in head:
                self._write(UNAUTHORIZED)
                continue
            method, target = head.split(b" ", 2)[:2]
            path, _, _ = target.partition(b"?")
            self._route(method, path.decode().strip("/").split("/"), body)

    def _route(self, method: bytes, parts: list[str], body: bytes) -> None:
        state, loop = self.state, asyncio.get_running_loop()
        if parts == ["stats"]:
            stats = {**state.counts, "cpu_seconds": time.process_time()}
            self._write(json_answer(stats))
            return
        # v1 / assistants / {id} / messages | chats / {chat} / {route}
        if len(parts) < 4 or parts[:2] != ["v1", "assistants"]:
            self._write(NOT_FOUND)
            return
        if method == b"post" and parts[3:] == ["messages"]:
            state.counts["sends"] += 1
            started = state.start(json.loads(body)["message"], loop)
            self._write(json_answer({"chatUid": started.chat}))
            return
        run = state.runs.get(parts[4]) if len(parts) > 4 else None
        if run is None or parts[3] != "chats":
            self._write(NOT_FOUND)
            return
        route, now = "/".join(parts[5:]), loop.time()
        state.counts[route or "history"] += 1
        if method == b"get" and route == "":
            history = {
                "chatUID": run.chat,
                "messages": run.messages(now),
                "tokenUsage": {"inputTokens": 12, "outputTokens": 3 * run.pieces},
            }
            self._write(json_answer(history))
        elif method == b"get" and route == "realtime":
            self._write(json_answer(run.view(now)))
        elif method == b"get" and route == "stream":
            if state.stream:
                self._stream(run, loop)
            else:
                self._write(NOT_FOUND)
        elif method == b"post" and route == "stop":
            if not run.finished(now):
                run.stopped_at = run.written(now)
            self._write(json_answer({"chatUid": run.chat}))
        else:
            self._write(NOT_FOUND)

    # --------------------------------------------------------------- streams

    def _stream(self, run: Run, loop: asyncio.AbstractEventLoop) -> None:
        """The run's events: a snapshot now, its pieces as written, its end."""
        now = loop.time()
        self.streaming = True
        self.state.count_open("streams", 1)
        self._write(STREAM_HEAD + event("snapshot", run.view(now)))
        if run.finished(now):
            self._finish(run)
            return
        last = STUCK_PIECES if run.stuck else run.pieces
        for index in range(run.written(now), last):
            at = run.started + (index + 1) * run.interval
            self.timers.append(loop.call_at(at, self._delta, run, index))
        if run.stuck:
            if self.state.keepalive > 0:
                self._keepalive(loop)
            return
        end = run.started + run.seconds
        self.timers.append(loop.call_at(end, self._finish, run))

    def _delta(self, run: Run, index: int) -> None:
        if run.stopped_at is not None and index >= run.stopped_at:
            return
        self._write(event("delta", {"append": piece(index)}))
        self.state.counts["deltas"] += 1

    def _keepalive(self, loop: asyncio.AbstractEventLoop) -> None:
        self._write(chunk(b": keep-alive\n\n"))
        self.timers.append(loop.call_later(self.state.keepalive, self._keepalive, loop))

    def _finish(self, run: Run) -> None:
        now = asyncio.get_running_loop().time()
        self._write(event("snapshot", run.view(now)) + END_OF_CHUNKS)
        self._end_stream()

    def _end_stream(self) -> None:
        for timer in self.timers:
            timer.cancel()
        self.timers.clear()
        if self.streaming:
            self.streaming = False
            self.state.count_open("streams", -1)

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)


async def serve(state: State) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: RunHandler(state), "127.0.0.1", 0, backlog=4096
    )
    port = server.sockets[0].getsockname()[1]
    print(f"READY {port}", flush=True)
    async with server:
        await server.serve_forever()


@contextlib.contextmanager
def follow_server(*args: str) -> Iterator[str]:
    """This server in its own process (`args` are its options); yields its base URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.benchmarks.follow_server", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("READY "), f"unexpected banner: {line!r}"
        yield f"http://127.0.0.1:{int(line.split()[1])}/v1"
    finally:
        process.terminate()
        process.wait(timeout=10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="run length")
    parser.add_argument("--pieces", type=int, default=20, help="pieces per run")
    parser.add_argument(
        "--keepalive", type=float, default=1.0, help="stuck streams' comment interval"
    )
    parser.add_argument(
        "--no-stream", action="store_true", help="the stream route answers 404"
    )
    args = parser.parse_args()
    state = State(args.seconds, args.pieces, not args.no_stream, args.keepalive)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(state))
    return 0


if __name__ == "__main__":
    sys.exit(main())
