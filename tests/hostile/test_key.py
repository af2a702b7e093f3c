"""The key stays home.

A plain-`http://` loopback base never goes through an environment proxy; a
base URL with `user:password@` is refused without echoing the password; an
httpx failure (a body that says gzip and is not) becomes a typed `DevicError`
holding no `httpx.Request` and no key; a chat id the server chose that equals
the key shows up in no error text and no log record.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from langchain_devic import ChatDevic, DevicError, DevicProtocolError
from tests.hostile.conftest import (
    ASSISTANT,
    CHAT,
    KEY,
    MESSAGES,
    HostileServer,
    Request,
    Writer,
    answer,
    call,
    make_model,
)

PROXY_VARIABLES = ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"]
REPLY = {"chatUuid": CHAT, "message": "hi there", "tokens_used": 3}


def reachable(start: BaseException) -> Iterator[Any]:
    """The error, its causes and contexts, and every object in their args and vars."""
    seen: set[int] = set()
    pending: list[Any] = [start]
    while pending:
        item = pending.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        if isinstance(item, BaseException):
            pending += [item.__cause__, item.__context__, *item.args]
            pending += list(vars(item).values())
        elif isinstance(item, list | tuple | set):
            pending += list(item)
        elif isinstance(item, dict):
            pending += [*item.keys(), *item.values()]


# ------------------------------------------------------------------- proxies


def test_a_loopback_base_never_goes_through_an_environment_proxy(
    hostile_server: HostileServer, way: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = HostileServer()
    try:
        for name in PROXY_VARIABLES:
            monkeypatch.setenv(name, f"http://127.0.0.1:{proxy.port}")
            monkeypatch.setenv(name.lower(), f"http://127.0.0.1:{proxy.port}")
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        hostile_server.on("POST", MESSAGES, answer(200, REPLY))
        model = make_model(hostile_server, way, run_mode="sync", max_retries=0)
        outcome: Any
        try:
            outcome = call(way, model, "invoke", "hi")
        except DevicError as error:
            outcome = error
    finally:
        proxy.close()
    assert proxy.connections == 0
    assert proxy.requests == []
    assert hostile_server.count("POST", MESSAGES) == 1
    assert getattr(outcome, "content", None) == "hi there", repr(outcome)


# ------------------------------------------------------------------ base URL


@pytest.mark.parametrize(
    "base_url",
    [
        "http://user:hunter2@127.0.0.1:1/api/v1",
        "https://user:hunter2@api.devic.ai/v1",
        "http://:hunter2@127.0.0.1:1/api/v1",
    ],
    ids=["loopback", "https", "password only"],
)
def test_a_base_url_with_credentials_is_refused_without_echoing_them(
    base_url: str,
) -> None:
    with pytest.raises(ValueError, match="base_url") as info:
        ChatDevic(assistant_id=ASSISTANT, api_key=KEY, base_url=base_url)
    for item in reachable(info.value):
        assert "hunter2" not in repr(item)
        assert "hunter2" not in str(item)
    errors = getattr(info.value, "errors", None)
    if callable(errors):
        assert "hunter2" not in repr(errors())


# ------------------------------------------------------------ httpx failures


def test_a_body_that_says_gzip_and_is_not_becomes_a_clean_devic_error(
    hostile_server: HostileServer, way: str
) -> None:
    def fake_gzip(request: Request, writer: Writer) -> None:
        writer.respond(200, b"this is not gzip at all", {"Content-Encoding": "gzip"})

    hostile_server.on("POST", MESSAGES, fake_gzip)
    model = make_model(hostile_server, way, run_mode="sync", max_retries=0)
    with pytest.raises(Exception) as info:  # noqa: PT011 - the type is the point
        call(way, model, "invoke", "hi")
    assert isinstance(info.value, DevicError), repr(info.value)
    for item in reachable(info.value):
        assert not isinstance(item, httpx.Request | httpx.Response), repr(item)
        assert KEY not in repr(item)
        assert KEY not in str(item)


# --------------------------------------------------- a chat id that is the key


def test_a_chat_id_equal_to_the_key_is_in_no_error_and_no_log(
    hostile_server: HostileServer, way: str, caplog: pytest.LogCaptureFixture
) -> None:
    hostile_server.on("POST", MESSAGES, answer(201, {"chatUid": KEY}))
    model = make_model(hostile_server, way, run_mode="async", run_timeout=3)
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "aiohttp", "langchain_devic"):
        caplog.set_level(logging.DEBUG, logger=name)
    with pytest.raises(DevicError) as info:
        call(way, model, "invoke", "hi")
    for item in reachable(info.value):
        assert KEY not in repr(item)
        assert KEY not in str(item)
    for record in caplog.records:
        assert KEY not in record.getMessage(), record.name
        assert KEY not in repr(record.args), record.name
    assert isinstance(info.value, DevicProtocolError), repr(info.value)
