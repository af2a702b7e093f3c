"""Time: `run_timeout` bounds a whole followed call on the wall clock.

Keep-alive comments, status-less events, a body trickled one byte at a time,
a slow stop answer and a long hand-off cannot stretch a followed call past
`run_timeout` (+ slack); a read outside a run (`load_chat`, `list_chats`,
`stop_chat`) is bounded by `timeout` and `max_retries`, not by `run_timeout`;
reads answered `503` with `Retry-After: 0` still wait the backoff step.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time

import pytest

from langchain_devic import (
    ChatDevic,
    DevicConnectError,
    DevicError,
    DevicTimeoutError,
)
from langchain_devic.testing import DevicEmulator, HandOff
from tests.hostile.conftest import (
    ASSISTANT,
    CHAT,
    CHATS,
    KEY,
    MESSAGES,
    REALTIME,
    SLACK,
    SSE_HEADERS,
    STOP,
    STREAM,
    HostileServer,
    Request,
    Writer,
    answer,
    call,
    in_turn,
    make_model,
    msg,
    sse,
    stopwatch,
    view,
)

RUN_TIMEOUT = 2.0
PROCESSING = view("processing", msg("u1", "user", "hi"))


def started(server: HostileServer) -> None:
    """The async send starts a run in chat `c1`; its view says `processing`."""
    server.on("POST", MESSAGES, answer(201, {"chatUid": CHAT}))
    server.on("GET", REALTIME, answer(200, PROCESSING))


# ------------------------------------------------------------ silent streams

QUIET = {
    "keep-alive comments": b": keep-alive\n\n",
    "status-less events": b"event: partial\ndata: {}\n\n",
}


@pytest.mark.parametrize("noise", list(QUIET), ids=list(QUIET))
def test_a_stream_that_only_keeps_alive_ends_at_run_timeout(
    hostile_server: HostileServer, way: str, noise: str
) -> None:
    started(hostile_server)

    def keep_alive(request: Request, writer: Writer) -> None:
        writer.head(200, SSE_HEADERS)
        writer.repeat(QUIET[noise], every=0.2, seconds=RUN_TIMEOUT + 3)

    hostile_server.on("GET", STREAM, keep_alive)
    model = make_model(hostile_server, way, run_mode="async", run_timeout=RUN_TIMEOUT)
    with stopwatch() as took, pytest.raises(DevicTimeoutError):
        call(way, model, "invoke", "hi")
    assert took[0] < RUN_TIMEOUT + SLACK


def test_a_realtime_read_trickled_byte_by_byte_ends_at_run_timeout(
    hostile_server: HostileServer, way: str
) -> None:
    """Polling (the stream route is missing); the view arrives 1 byte / 0.3 s."""
    hostile_server.on("POST", MESSAGES, answer(201, {"chatUid": CHAT}))
    body = json.dumps(PROCESSING).encode()

    def trickle(request: Request, writer: Writer) -> None:
        writer.head(
            200, {"Content-Type": "application/json", "Content-Length": str(len(body))}
        )
        writer.trickle(body, every=0.3)

    hostile_server.on("GET", REALTIME, trickle)
    hostile_server.max_life = RUN_TIMEOUT + 4
    model = make_model(
        hostile_server, way, run_mode="async", run_timeout=RUN_TIMEOUT, timeout=30
    )
    with stopwatch() as took, pytest.raises(DevicTimeoutError):
        call(way, model, "invoke", "hi")
    assert took[0] < RUN_TIMEOUT + SLACK


# --------------------------------------------------- cancelling, slow stop


def test_cancelling_astream_while_the_stop_answer_trickles_is_bounded(
    hostile_server: HostileServer, async_way: str
) -> None:
    """The best-effort stop has its own <= 5 s budget, and no more."""
    started(hostile_server)
    first = view(
        "processing",
        msg("u1", "user", "hi"),
        streamingMessage=msg("a1", "assistant", "Hel"),
    )

    def stream(request: Request, writer: Writer) -> None:
        writer.head(200, SSE_HEADERS)
        writer.write(sse("snapshot", first))
        writer.repeat(b": keep-alive\n\n", every=0.2, seconds=12)

    def slow_stop(request: Request, writer: Writer) -> None:
        writer.head(200, {"Content-Type": "application/json", "Content-Length": "100"})
        writer.trickle(b" " * 100, every=0.2)

    hostile_server.on("GET", STREAM, stream)
    hostile_server.on("POST", STOP, slow_stop)
    hostile_server.max_life = 14.0
    model = make_model(hostile_server, async_way, run_mode="async", run_timeout=60)

    async def cancel_after_first_chunk() -> float:
        got_one = asyncio.Event()

        async def consume() -> None:
            async for _ in model.astream("hi"):
                got_one.set()

        task = asyncio.create_task(consume())
        await asyncio.wait_for(got_one.wait(), 5)
        start = time.monotonic()
        task.cancel()
        await asyncio.wait({task}, timeout=12)
        took = time.monotonic() - start
        assert task.done(), "the cancellation was still running after 12 s"
        return took

    took = asyncio.run(cancel_after_first_chunk())
    assert hostile_server.count("POST", STOP) == 1
    assert took < 5.0 + SLACK


# ----------------------------------------------------------- the emulator


def test_the_emulators_long_hand_off_ends_at_run_timeout(way: str) -> None:
    """A 15 s hand-off with keep-alives every 0.5 s; run_timeout=2."""
    emulator = DevicEmulator(
        api_key=KEY,
        dialect="platform",
        assistants={ASSISTANT: lambda conversation: [HandOff(seconds=15), "done"]},
    )
    emulator.sse_keepalive = 0.5
    # Only bounds today's failure: the hand-off is cut short after 7 s.
    watchdog = threading.Timer(RUN_TIMEOUT + 5, emulator.reset)
    with emulator.serve() as server:
        model = ChatDevic(
            assistant_id=ASSISTANT,
            api_key=KEY,
            base_url=f"http://127.0.0.1:{server.port}/api/v1",
            async_transport=way if way != "sync" else "httpcore",
            run_mode="async",
            run_timeout=RUN_TIMEOUT,
        )
        watchdog.start()
        try:
            with stopwatch() as took, pytest.raises(DevicTimeoutError):
                call(way, model, "invoke", "hi")
        finally:
            watchdog.cancel()
            emulator.reset()
    assert took[0] < RUN_TIMEOUT + SLACK


# -------------------------------------------------------- reads outside runs


def free_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize(
    ("name", "args"),
    [("load_chat", ("x",)), ("list_chats", ()), ("stop_chat", ("x",))],
    ids=["load_chat", "list_chats", "stop_chat"],
)
def test_a_read_that_cannot_connect_fails_after_its_retries(
    way: str, name: str, args: tuple[str, ...]
) -> None:
    model = ChatDevic(
        assistant_id=ASSISTANT,
        api_key=KEY,
        base_url=f"http://127.0.0.1:{free_port()}/api/v1",
        async_transport=way if way != "sync" else "httpcore",
        max_retries=2,
        run_timeout=5.5,  # not the bound: only caps today's failure
    )
    with stopwatch() as took, pytest.raises(DevicConnectError):
        call(way, model, name, *args)
    assert took[0] < 5.0


def test_load_chat_is_bounded_by_timeout_not_run_timeout(
    hostile_server: HostileServer, way: str
) -> None:
    """The history trickles 1 byte / 0.2 s (each read within `timeout`)."""

    def trickle_once(request: Request, writer: Writer) -> None:
        writer.head(200, {"Content-Type": "application/json", "Content-Length": "500"})
        writer.trickle(b" " * 500, every=0.2)

    def refuse(request: Request, writer: Writer) -> None:
        writer.abort()

    hostile_server.on("GET", f"{CHATS}/x", in_turn(trickle_once, refuse))
    hostile_server.max_life = 4.0
    model = make_model(hostile_server, way, timeout=1, run_timeout=5.5)
    with stopwatch() as took, pytest.raises(DevicTimeoutError):
        call(way, model, "load_chat", "x")
    assert took[0] < 1.0 + SLACK


# ------------------------------------------------------ Retry-After: 0 reads


def test_reads_answered_503_retry_after_0_wait_the_backoff(
    hostile_server: HostileServer, way: str
) -> None:
    """Every read of the run answers 503 `Retry-After: 0`: no hot loop."""
    unavailable = answer(
        503, {"statusCode": 503, "message": "busy"}, {"Retry-After": "0"}
    )
    hostile_server.on("POST", MESSAGES, answer(201, {"chatUid": CHAT}))
    hostile_server.on("GET", STREAM, unavailable)
    hostile_server.on("GET", REALTIME, unavailable)
    model = make_model(hostile_server, way, run_mode="async", run_timeout=RUN_TIMEOUT)
    with stopwatch() as took, contextlib.suppress(DevicError):
        call(way, model, "invoke", "hi")
    reads = [r for r in hostile_server.requests if r.method == "GET"]
    assert len(reads) <= 10
    assert took[0] < RUN_TIMEOUT + SLACK
