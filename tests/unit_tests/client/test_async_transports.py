"""The async client matrix on both transports ChatDevic can build, over real HTTP.

`async_transport="aiohttp"` swaps httpcore's pool for aiohttp's (through
`httpx-aiohttp`); everything above the transport must not notice. Each test
runs once per transport against the emulator served on 127.0.0.1: replies and
continued chats, typed 4xx/5xx errors, retries (and what is never retried),
the response size cap, refused redirects, platform runs streamed and polled, a
stop on cancel, `asyncio.run` per call, and the key kept out of every error,
log and client attribute.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import socket
import sys
import traceback
import warnings
from collections.abc import Iterator
from importlib.util import find_spec
from typing import Any

import pytest

from langchain_devic import (
    ChatDevic,
    DevicAPIError,
    DevicAuthenticationError,
    DevicBadRequestError,
    DevicConflictError,
    DevicConnectError,
    DevicConnectionError,
    DevicError,
    DevicNotFoundError,
    DevicProtocolError,
    DevicServerError,
    DevicTimeoutError,
    _client,
    _clock,
    _transports,
)
from langchain_devic.testing import DevicEmulator, EmulatorServer, Fault, Write

pytestmark = pytest.mark.allow_hosts(["127.0.0.1"])

KEY = "transport-matrix-TOKEN-7d3e"
ASSISTANT = "matrix"
TRANSPORTS = [
    "httpcore",
    pytest.param(
        "aiohttp",
        marks=pytest.mark.skipif(
            find_spec("httpx_aiohttp") is None,
            reason='needs httpx-aiohttp (pip install "langchain-devic[aiohttp]")',
        ),
    ),
]


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def emulator() -> DevicEmulator:
    return DevicEmulator(api_key=KEY, random_seed=11)


@pytest.fixture
def server(emulator: DevicEmulator) -> Iterator[EmulatorServer]:
    with emulator.serve() as running:
        yield running


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record every retry wait instead of sleeping."""
    recorded: list[float] = []

    async def fake_asleep(seconds: float) -> None:
        recorded.append(seconds)

    monkeypatch.setattr(_clock, "asleep", fake_asleep)
    return recorded


def make_model(base_url: str, transport: str, **fields: Any) -> ChatDevic:
    fields.setdefault("model", ASSISTANT)
    fields.setdefault("api_key", KEY)
    return ChatDevic(base_url=base_url, async_transport=transport, **fields)


def assert_no_key(exc: BaseException) -> None:
    """The key appears nowhere a person, a log or a handler could see it."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    for error in seen:
        assert KEY not in str(error)
        assert KEY not in repr(error)
        assert KEY not in repr(vars(error))
        assert KEY not in "".join(traceback.format_exception(error))


def sends(emulator: DevicEmulator) -> int:
    return len([r for r in emulator.requests if r.method == "POST"])


# ------------------------------------------------------------------- building


async def test_the_aiohttp_client_is_built_like_the_default(
    server: EmulatorServer,
) -> None:
    pytest.importorskip("httpx_aiohttp")
    model = make_model(server.base_url, "aiohttp")
    http = model.async_client.http
    transport = http._transport
    assert type(transport).__mro__[1].__name__ == "AiohttpTransport"
    assert transport.ssl_context is _client.shared_ssl_context()
    assert transport.limits == _client.DEFAULT_LIMITS
    assert http.follow_redirects is False
    for holder in (model.async_client, http, transport):
        assert KEY not in repr(vars(holder))


def test_without_httpx_aiohttp_the_error_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_transports, "_AIOHTTP_CLIENT", None)
    monkeypatch.setitem(sys.modules, "httpx_aiohttp", None)
    with pytest.raises(ImportError, match=r"langchain-devic\[aiohttp\]"):
        _client.build_async_http("aiohttp")


def test_an_unknown_transport_is_refused() -> None:
    with pytest.raises(ValueError, match="async_transport"):
        ChatDevic(model=ASSISTANT, api_key=KEY, async_transport="curl")  # type: ignore[arg-type]


# ---------------------------------------------------------------- the one call


async def test_a_reply_and_a_continued_chat(
    server: EmulatorServer, emulator: DevicEmulator, transport: str
) -> None:
    model = make_model(server.base_url, transport)
    first = await model.ainvoke("one")
    assert first.text == f"Reply 1 from {ASSISTANT}: one"
    chat = first.response_metadata["chat_uuid"]
    second = await model.ainvoke("two", chat_uuid=chat)
    assert second.text == f"Reply 2 from {ASSISTANT}: two"
    assert second.response_metadata["chat_uuid"] == chat
    sent = [(r.message, r.chat_uuid) for r in emulator.requests]
    assert sent == [("one", None), ("two", chat)]


@pytest.mark.parametrize(
    ("fault", "kind"),
    [
        (Fault.status(400), DevicBadRequestError),
        (Fault.status(404), DevicNotFoundError),
        (Fault.status(500), DevicServerError),
    ],
)
async def test_errors_are_typed_and_not_retried(
    server: EmulatorServer,
    emulator: DevicEmulator,
    transport: str,
    waits: list[float],
    fault: Fault,
    kind: type[DevicAPIError],
) -> None:
    emulator.inject(fault)
    with pytest.raises(kind) as raised:
        await make_model(server.base_url, transport).ainvoke("hi")
    assert raised.value.status_code == fault.code
    assert not raised.value.is_retryable
    assert sends(emulator) == 1
    assert waits == []
    assert_no_key(raised.value)


async def test_a_wrong_key_is_an_authentication_error_without_the_key(
    server: EmulatorServer, emulator: DevicEmulator, transport: str
) -> None:
    wrong = KEY[::-1]
    model = make_model(server.base_url, transport, api_key=wrong)
    with pytest.raises(DevicAuthenticationError) as raised:
        await model.ainvoke("hi")
    assert raised.value.status_code == 401
    for text in (str(raised.value), repr(raised.value)):
        assert wrong not in text


async def test_503_and_409_are_retried_after_retry_after(
    server: EmulatorServer, emulator: DevicEmulator, transport: str, waits: list[float]
) -> None:
    emulator.inject(Fault.status(503, retry_after=1), Fault.status(409, retry_after=2))
    reply = await make_model(server.base_url, transport).ainvoke("hi")
    assert reply.text == f"Reply 1 from {ASSISTANT}: hi"
    assert waits == [1.0, 2.0]
    assert sends(emulator) == 3


async def test_retries_exhausted_raise_the_last_refusal(
    server: EmulatorServer, emulator: DevicEmulator, transport: str, waits: list[float]
) -> None:
    emulator.inject(*[Fault.status(409, retry_after=0)] * 3)
    with pytest.raises(DevicConflictError):
        await make_model(server.base_url, transport, max_retries=2).ainvoke("hi")
    assert sends(emulator) == 3


async def test_a_read_timeout_is_not_retried(
    server: EmulatorServer, emulator: DevicEmulator, transport: str, waits: list[float]
) -> None:
    emulator.inject(Fault.read_timeout(2.0))
    model = make_model(server.base_url, transport, timeout=0.3)
    with pytest.raises(DevicTimeoutError) as raised:
        await model.ainvoke("hi")
    assert not raised.value.is_retryable
    assert "within 0.3 s" in str(raised.value)
    assert sends(emulator) == 1
    assert waits == []
    assert_no_key(raised.value)


async def test_a_connection_dropped_after_the_turn_is_not_retried(
    server: EmulatorServer, emulator: DevicEmulator, transport: str, waits: list[float]
) -> None:
    """httpx-aiohttp alone maps this disconnect to `ConnectTimeout` ("nothing
    was sent"): the turn would be retried, so posted twice."""
    emulator.inject(Fault.drop_after_processing())
    with pytest.raises(DevicConnectionError) as raised:
        await make_model(server.base_url, transport).ainvoke("hi")
    assert not isinstance(raised.value, DevicConnectError)
    assert not raised.value.is_retryable
    assert sends(emulator) == 1
    assert waits == []
    assert len(emulator.conversations) == 1  # the turn ran once
    assert_no_key(raised.value)


async def test_a_refused_connection_is_retried_then_raised(
    transport: str, waits: list[float]
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    model = make_model(f"http://127.0.0.1:{port}/v1", transport, max_retries=2)
    with pytest.raises(DevicConnectError) as raised:
        await model.ainvoke("hi")
    assert raised.value.is_retryable
    assert len(waits) == 2
    assert_no_key(raised.value)


async def test_an_answer_over_the_size_cap_is_refused(
    server: EmulatorServer, transport: str
) -> None:
    model = make_model(server.base_url, transport, max_response_bytes=200)
    with pytest.raises(DevicProtocolError, match="larger than 200 bytes"):
        await model.ainvoke("x" * 500)


async def test_a_redirect_is_refused_not_followed(
    server: EmulatorServer, emulator: DevicEmulator, transport: str, waits: list[float]
) -> None:
    elsewhere = f"{server.base_url}/assistants/{ASSISTANT}/messages?stolen=1"
    emulator.inject(Fault.raw(307, b"", headers={"Location": elsewhere}))
    with pytest.raises(DevicAPIError) as raised:
        await make_model(server.base_url, transport).ainvoke("hi")
    assert raised.value.status_code == 307
    assert len(emulator.requests) == 1  # the Location was never requested
    assert_no_key(raised.value)


async def test_the_key_stays_out_of_logs(
    server: EmulatorServer,
    emulator: DevicEmulator,
    transport: str,
    waits: list[float],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    emulator.inject(Fault.status(503, retry_after=0), Fault.drop_after_processing())
    with pytest.raises(DevicConnectionError):
        await make_model(server.base_url, transport).ainvoke("hi")
    assert caplog.records
    assert KEY not in caplog.text


# -------------------------------------------------------------- platform runs


def slow(conversation: object) -> list[Write]:
    return [Write(f"part {i}.", pieces=2, interval=0.02) for i in range(10)]


@pytest.fixture(params=["sse", "polling"])
def platform(request: pytest.FixtureRequest) -> Iterator[DevicEmulator]:
    emulator = DevicEmulator(
        api_key=KEY,
        dialect="platform",
        assistants={ASSISTANT: None, "slow": slow},
        random_seed=5,
        sse=request.param == "sse",
        write_interval=0.002,
    )
    yield emulator
    emulator.wait_idle(5.0)


async def test_a_platform_run_streamed_and_polled(
    platform: DevicEmulator, transport: str
) -> None:
    with platform.serve() as running:
        model = make_model(
            running.base_url, transport, poll_interval=0.01, max_poll_interval=0.05
        )
        chunks = [chunk async for chunk in model.astream("hello")]
        invoked = await make_model(
            running.base_url, transport, run_mode="async", poll_interval=0.01
        ).ainvoke("hello")
        await asyncio.to_thread(platform.wait_idle)
    streamed = "".join(chunk.text for chunk in chunks)
    assert streamed == invoked.text
    assert streamed.endswith("hello")
    assert chunks[-1].usage_metadata is not None
    kinds = {r.path.rsplit("/", 1)[-1] for r in platform.requests}
    assert "stream" in kinds  # tried first; without SSE it answers 404
    assert ("realtime" in kinds) is not platform.sse


async def test_a_cancelled_task_stops_the_run(
    platform: DevicEmulator, transport: str
) -> None:
    with platform.serve() as running:
        model = make_model(
            running.base_url, transport, model="slow", poll_interval=0.01
        )

        async def consume() -> None:
            async for _ in model.astream("x"):
                pass

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.15)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.to_thread(platform.wait_idle)
    stops = [r for r in platform.requests if r.path.endswith("/stop")]
    assert len(stops) == 1
    assert stops[0].status == 201


# ------------------------------------------------------------- loops and keys


@pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="counts descriptors in /proc"
)
def test_asyncio_run_per_call_keeps_no_client(
    server: EmulatorServer, transport: str
) -> None:
    model = make_model(server.base_url, transport)
    asyncio.run(model.ainvoke("warm up"))
    gc.collect()
    before = len(os.listdir("/proc/self/fd"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        for index in range(30):
            reply = asyncio.run(model.ainvoke(f"call {index}"))
            assert reply.text.endswith(f"call {index}")
            assert model.pools.async_clients() == 0
        gc.collect()
    assert len(os.listdir("/proc/self/fd")) - before <= 3
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]


async def test_no_client_object_holds_the_key_in_plain_text(
    server: EmulatorServer, transport: str
) -> None:
    model = make_model(server.base_url, transport)
    await model.ainvoke("hi")
    client = model.async_client
    http = client.http
    holders: list[Any] = [client, http, http._transport]
    session = getattr(http._transport, "client", None)
    if session is not None:
        holders.append(session)
    for holder in holders:
        assert KEY not in repr(vars(holder))
    with pytest.raises(DevicError):
        await make_model(server.base_url, transport, max_response_bytes=1).ainvoke("x")
