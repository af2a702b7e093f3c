"""Memory: `max_response_bytes` bounds the DECODED bytes of every answer and event.

A gzip bomb, a 40 MiB event-stream line, a 20 MiB event made of many short
`data:` lines and a 60 MiB stop answer are each refused (or dropped) without
the client ever holding them: `tracemalloc`'s peak during the call stays under
8 MiB with `max_response_bytes` = 1 MiB. Over the cap is a
`DevicProtocolError` whose message names `max_response_bytes`.
"""

from __future__ import annotations

import asyncio
import time
import tracemalloc
import zlib
from collections.abc import Callable
from typing import Any

import pytest

from langchain_devic import ChatDevic, DevicProtocolError
from tests.hostile.conftest import (
    CHAT,
    CHATS,
    MESSAGES,
    MIB,
    REALTIME,
    SLACK,
    SSE_HEADERS,
    STOP,
    STREAM,
    HostileServer,
    Request,
    Writer,
    answer,
    make_model,
    msg,
    sse,
    view,
)

CAP = 1 * MIB
PEAK = 8 * MIB
CHUNK = b"a" * 65536


def gzip_bomb(inflated: int) -> bytes:
    """A seed reply whose `message` is `inflated` bytes of "a", gzipped (~1/1000)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [packer.compress(b'{"chatUuid": "c1", "message": "')]
    parts += [packer.compress(CHUNK) for _ in range(inflated // len(CHUNK))]
    parts += [packer.compress(b'", "tokens_used": 3}'), packer.flush()]
    return b"".join(parts)


@pytest.fixture(scope="module")
def bomb() -> bytes:
    return gzip_bomb(40 * MIB)


def warm_then_measure(way: str, model: ChatDevic, action: Callable[[], Any]) -> Any:
    """Warm the client (imports, pool) with a small read, then trace `action`.

    Returns `(outcome, peak bytes, seconds)`; `outcome` is what `action`
    returned or the exception it raised.
    """

    def traced(run: Callable[[], Any]) -> tuple[Any, int, float]:
        tracemalloc.start()
        start = time.monotonic()
        try:
            outcome = run()
        except Exception as exc:
            outcome = exc
        took = time.monotonic() - start
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return outcome, peak, took

    if way == "sync":
        model.list_chats()
        return traced(action)

    async def main() -> tuple[Any, int, float]:
        await model.alist_chats()
        tracemalloc.start()
        start = time.monotonic()
        try:
            outcome = await action()
        except Exception as exc:
            outcome = exc
        took = time.monotonic() - start
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return outcome, peak, took

    return asyncio.run(main())


def serve_chat_list(server: HostileServer) -> None:
    server.on("GET", CHATS, answer(200, {"histories": []}))


def assert_refused(outcome: Any) -> None:
    assert isinstance(outcome, DevicProtocolError), repr(outcome)
    assert "max_response_bytes" in str(outcome)


# ------------------------------------------------------------------ answers


def test_a_gzip_bomb_seed_answer_is_refused_without_inflating_it(
    hostile_server: HostileServer, way: str, bomb: bytes
) -> None:
    serve_chat_list(hostile_server)

    def send_bomb(request: Request, writer: Writer) -> None:
        writer.respond(200, bomb, {"Content-Encoding": "gzip"})

    hostile_server.on("POST", MESSAGES, send_bomb)
    model = make_model(hostile_server, way, run_mode="sync", max_response_bytes=CAP)
    action = (
        (lambda: model.invoke("hi")) if way == "sync" else (lambda: model.ainvoke("hi"))
    )
    outcome, peak, _ = warm_then_measure(way, model, action)
    assert_refused(outcome)
    assert peak < PEAK


# ------------------------------------------------------------------- events


def huge_line(request: Request, writer: Writer) -> None:
    """One 40 MiB line: a `snapshot` event whose data never ends."""
    writer.head(200, SSE_HEADERS)
    writer.write(b'event: snapshot\ndata: {"status": "processing", "x": "')
    writer.write_many(CHUNK, 40 * MIB // len(CHUNK))
    writer.write(b'"}\n\n')


def many_lines(request: Request, writer: Writer) -> None:
    """One 20 MiB event of short `data:` lines (each line far under the cap)."""
    writer.head(200, SSE_HEADERS)
    writer.write(b'event: snapshot\ndata: {"status": "processing", "x": [\n')
    writer.write_many(b'data: "' + CHUNK[:4086] + b'",\n', 20 * MIB // 4096)
    writer.write(b'data: ""]}\n\n')


EVENTS = {"one 40 MiB line": huge_line, "a 20 MiB event of short lines": many_lines}


@pytest.mark.parametrize("shape", list(EVENTS), ids=list(EVENTS))
def test_one_event_over_the_cap_is_refused_without_holding_it(
    hostile_server: HostileServer, way: str, shape: str
) -> None:
    serve_chat_list(hostile_server)
    hostile_server.on("POST", MESSAGES, answer(201, {"chatUid": CHAT}))
    hostile_server.on("GET", STREAM, EVENTS[shape])
    done = view(
        "completed", msg("u1", "user", "hi"), msg("a1", "assistant", "small reply")
    )
    hostile_server.on("GET", REALTIME, answer(200, done))
    model = make_model(
        hostile_server, way, run_mode="async", run_timeout=8, max_response_bytes=CAP
    )
    action = (
        (lambda: model.invoke("hi")) if way == "sync" else (lambda: model.ainvoke("hi"))
    )
    outcome, peak, _ = warm_then_measure(way, model, action)
    assert_refused(outcome)
    assert peak < PEAK


# --------------------------------------------------------------- stop answer


def test_a_60_mib_stop_answer_neither_holds_the_cancel_nor_memory(
    hostile_server: HostileServer, way: str
) -> None:
    """The stream is closed (sync) or cancelled (async) after its first chunk."""
    serve_chat_list(hostile_server)
    hostile_server.on("POST", MESSAGES, answer(201, {"chatUid": CHAT}))
    first = view(
        "processing",
        msg("u1", "user", "hi"),
        streamingMessage=msg("a1", "assistant", "Hel"),
    )

    def stream(request: Request, writer: Writer) -> None:
        writer.head(200, SSE_HEADERS)
        writer.write(sse("snapshot", first))
        writer.repeat(b": keep-alive\n\n", every=0.2, seconds=8)

    def huge_stop(request: Request, writer: Writer) -> None:
        writer.head(
            200, {"Content-Type": "application/json", "Content-Length": str(60 * MIB)}
        )
        writer.write_many(CHUNK, 60 * MIB // len(CHUNK))

    hostile_server.on("GET", STREAM, stream)
    hostile_server.on("POST", STOP, huge_stop)
    model = make_model(hostile_server, way, run_mode="async", max_response_bytes=CAP)

    def close_after_first() -> None:
        chunks = model.stream("hi")
        next(chunks)
        chunks.close()

    async def cancel_after_first() -> None:
        got_one = asyncio.Event()

        async def consume() -> None:
            async for _ in model.astream("hi"):
                got_one.set()

        task = asyncio.create_task(consume())
        await asyncio.wait_for(got_one.wait(), 5)
        task.cancel()
        await asyncio.wait({task}, timeout=12)
        assert task.done(), "the cancellation was still running after 12 s"

    action = close_after_first if way == "sync" else cancel_after_first
    outcome, peak, took = warm_then_measure(way, model, action)
    assert not isinstance(outcome, Exception), repr(outcome)
    assert hostile_server.count("POST", STOP) == 1
    assert took < 5.0 + SLACK
    assert peak < PEAK
