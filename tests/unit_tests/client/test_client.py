"""Unit tests for the HTTP client (`langchain_devic._client`).

Every test talks to a scripted `httpx.MockTransport`: no socket is opened, and
`_clock.sleep` / `_clock.asleep` are replaced so retries never really wait;
the waits are recorded and asserted instead.
"""

from __future__ import annotations

import json
import logging
import math
import traceback
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from langchain_core.exceptions import (
    ModelAPIError,
    ModelAuthenticationError,
    ModelConnectionError,
    ModelInvalidRequestError,
    ModelNotFoundError,
    ModelPermissionDeniedError,
    ModelRateLimitError,
    ModelTimeoutError,
)

from langchain_devic import _clock, _retry
from langchain_devic._client import AsyncDevicClient, DevicClient
from langchain_devic._version import __version__
from langchain_devic._wire import DevicReply
from langchain_devic.errors import (
    DevicAPIError,
    DevicAuthenticationError,
    DevicBadRequestError,
    DevicConflictError,
    DevicConnectionError,
    DevicError,
    DevicGatewayError,
    DevicNotFoundError,
    DevicPermissionDeniedError,
    DevicProtocolError,
    DevicRateLimitError,
    DevicServerError,
    DevicTimeoutError,
)

TOKEN = "devic-test-TOKEN-4f9a1c"
BASE_URL = "https://api.devic.ai/v1"
ASSISTANT = "asst-123"
PATH = f"/v1/assistants/{ASSISTANT}/messages"

SEED_REPLY = {
    "chatUuid": "chat-new-1",
    "message": "hello from devic",
    "tokens_used": 845,
    "timestamp": "2025-10-29T14:58:25Z",
}


# ----------------------------------------------------------------------- helpers


Step = httpx.Response | Callable[[httpx.Request], httpx.Response]


class Script:
    """A MockTransport handler that plays scripted steps and records requests.

    A step is an `httpx.Response` or a callable taking the request (which may
    raise an httpx exception). A request beyond the script fails the test.
    """

    def __init__(self, *steps: Step) -> None:
        self.steps = list(steps)
        self.requests: list[httpx.Request] = []

    @property
    def calls(self) -> int:
        return len(self.requests)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if not self.steps:
            msg = f"unexpected request #{len(self.requests)}: {request.url}"
            raise AssertionError(msg)
        step = self.steps.pop(0)
        if isinstance(step, httpx.Response):
            return step
        return step(request)


def ok(payload: Any = None) -> httpx.Response:
    return httpx.Response(200, json=SEED_REPLY if payload is None else payload)


def err(
    status: int,
    payload: Any = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    if payload is None:
        payload = {"success": False, "error": {"message": f"failed {status}"}}
    return httpx.Response(status, json=payload, headers=headers)


def raw(status: int, content: bytes, headers: dict[str, str] | None = None):
    return httpx.Response(status, content=content, headers=headers)


def connect_error(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("refused", request=request)


def connect_timeout(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectTimeout("connect timed out", request=request)


def read_timeout(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("slow", request=request)


def remote_closed(request: httpx.Request) -> httpx.Response:
    raise httpx.RemoteProtocolError(
        "Server disconnected without sending a response.", request=request
    )


def read_error(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadError("connection reset", request=request)


def write_timeout(request: httpx.Request) -> httpx.Response:
    raise httpx.WriteTimeout("write timed out", request=request)


def make_client(script: Script, **settings: Any) -> DevicClient:
    settings.setdefault("api_key", TOKEN)
    settings.setdefault("base_url", BASE_URL)
    return DevicClient(
        http_client=httpx.Client(transport=httpx.MockTransport(script)), **settings
    )


def make_async_client(script: Script, **settings: Any) -> AsyncDevicClient:
    settings.setdefault("api_key", TOKEN)
    settings.setdefault("base_url", BASE_URL)
    return AsyncDevicClient(
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(script)),
        **settings,
    )


def assert_no_token(exc: BaseException) -> None:
    """The token appears nowhere a person or a log could see it."""
    texts = [
        str(exc),
        repr(exc),
        repr(exc.args),
        *(str(a) for a in exc.args),
        str(getattr(exc, "message", "")),
        str(getattr(exc, "body", "")),
        str(getattr(exc, "code", "")),
        repr(vars(exc)),
        "".join(traceback.format_exception(exc)),
    ]
    for text in texts:
        assert TOKEN not in text


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record every retry wait instead of sleeping (sync and async)."""
    recorded: list[float] = []

    def fake_sleep(seconds: float) -> None:
        recorded.append(seconds)

    async def fake_asleep(seconds: float) -> None:
        recorded.append(seconds)

    monkeypatch.setattr(_clock, "sleep", fake_sleep)
    monkeypatch.setattr(_clock, "asleep", fake_asleep)
    return recorded


def assert_backoff(wait: float, attempt: int) -> None:
    base = min(0.5 * 2**attempt, 8.0)
    assert base <= wait <= base * 1.25


# ------------------------------------------------------- status codes (sync)


@pytest.mark.parametrize(
    ("status", "cls", "family"),
    [
        (400, DevicBadRequestError, ModelInvalidRequestError),
        (401, DevicAuthenticationError, ModelAuthenticationError),
        (403, DevicPermissionDeniedError, ModelPermissionDeniedError),
        (404, DevicNotFoundError, ModelNotFoundError),
        (422, DevicBadRequestError, ModelInvalidRequestError),
    ],
)
def test_client_errors_are_typed_and_not_retried(
    status: int, cls: type[DevicAPIError], family: type[Exception], waits: list
) -> None:
    payload = {
        "success": False,
        "error": {"message": f"the server says no ({status})", "code": "E_TEST"},
    }
    script = Script(err(status, payload))
    client = make_client(script)
    with pytest.raises(cls) as info:
        client.send_message(ASSISTANT, "hi")
    exc = info.value
    assert type(exc) is cls
    assert isinstance(exc, family)
    assert isinstance(exc, DevicAPIError)
    assert exc.status_code == status
    assert exc.code == "E_TEST"
    assert exc.message == f"the server says no ({status})"
    assert exc.body == json.dumps(payload, separators=(",", ":"))
    assert exc.retry_after is None
    assert exc.is_retryable is False
    assert str(status) in str(exc)
    assert script.calls == 1
    assert waits == []
    assert_no_token(exc)


def test_409_then_success_is_retried_once_after_backoff(waits: list) -> None:
    script = Script(
        err(409, {"success": False, "error": {"message": "chat busy"}}), ok()
    )
    reply = make_client(script).send_message(ASSISTANT, "hi")
    assert reply.text == "hello from devic"
    assert reply.chat_uuid == "chat-new-1"
    assert script.calls == 2
    assert len(waits) == 1
    assert 0.5 <= waits[0] <= 0.625
    # The very same request (same body) is sent again.
    assert script.requests[0].content == script.requests[1].content


def test_409_exhausted_raises_conflict_error(waits: list) -> None:
    script = Script(err(409), err(409), err(409))
    with pytest.raises(DevicConflictError) as info:
        make_client(script).send_message(ASSISTANT, "hi")
    exc = info.value
    assert isinstance(exc, ModelAPIError)
    assert exc.status_code == 409
    assert exc.is_retryable is True
    assert script.calls == 3
    assert len(waits) == 2
    assert_no_token(exc)


def test_429_retry_after_1_waits_exactly_one_second(waits: list) -> None:
    script = Script(err(429, headers={"Retry-After": "1"}), ok())
    reply = make_client(script).send_message(ASSISTANT, "hi")
    assert reply.text == "hello from devic"
    assert script.calls == 2
    assert waits == [1.0]


def test_429_retry_after_3600_raises_at_once(waits: list) -> None:
    payload = {"success": False, "error": {"message": "slow down", "code": "RATE"}}
    script = Script(err(429, payload, headers={"Retry-After": "3600"}))
    with pytest.raises(DevicRateLimitError) as info:
        make_client(script).send_message(ASSISTANT, "hi")
    exc = info.value
    assert isinstance(exc, ModelRateLimitError)
    assert exc.status_code == 429
    assert exc.retry_after == 3600
    assert exc.code == "RATE"
    assert exc.message == "slow down"
    assert exc.is_retryable is True  # retryable in principle, just not by us now
    assert "3600" in str(exc)
    assert script.calls == 1
    assert waits == []
    assert_no_token(exc)


def test_500_is_not_retried(waits: list) -> None:
    payload = {"success": False, "error": {"message": "boom", "code": "INTERNAL"}}
    script = Script(err(500, payload), ok())
    with pytest.raises(DevicServerError) as info:
        make_client(script).send_message(ASSISTANT, "hi")
    exc = info.value
    assert isinstance(exc, ModelAPIError)
    assert exc.status_code == 500
    assert exc.code == "INTERNAL"
    assert exc.message.startswith("boom ")
    assert "may still have run" in exc.message
    assert exc.is_retryable is False
    assert script.calls == 1
    assert waits == []
    assert_no_token(exc)


def test_503_then_success(waits: list) -> None:
    script = Script(raw(503, b"<html>unavailable</html>"), ok())
    reply = make_client(script).send_message(ASSISTANT, "hi")
    assert reply.text == "hello from devic"
    assert script.calls == 2
    assert len(waits) == 1
    assert_backoff(waits[0], 0)


@pytest.mark.parametrize("status", [502, 504])
def test_gateway_errors_on_a_new_chat_are_an_unknown_outcome(
    status: int, waits: list
) -> None:
    """A gateway may have passed the turn on: with no chat to read, never resend."""
    script = Script(raw(status, b"<html>bad gateway</html>"), ok())
    with pytest.raises(DevicGatewayError) as info:
        make_client(script).send_message(ASSISTANT, "hi")
    assert info.value.is_retryable is False
    assert "may still have run" in info.value.message
    assert script.calls == 1
    assert waits == []


@pytest.mark.parametrize("status", [408, 503])
def test_retryable_statuses_are_retryable_server_side_errors(
    status: int, waits: list
) -> None:
    script = Script(err(status))
    with pytest.raises(DevicAPIError) as info:
        make_client(script, max_retries=0).send_message(ASSISTANT, "hi")
    exc = info.value
    assert isinstance(exc, ModelAPIError)
    assert exc.status_code == status
    assert exc.is_retryable is True
    assert script.calls == 1
    assert waits == []


def test_retries_exhausted_after_max_retries(waits: list) -> None:
    script = Script(err(503), err(503), err(503))
    with pytest.raises(DevicServerError) as info:
        make_client(script, max_retries=2).send_message(ASSISTANT, "hi")
    exc = info.value
    assert exc.status_code == 503
    assert exc.message == "failed 503"
    assert script.calls == 3
    assert len(waits) == 2
    assert 0.5 <= waits[0] <= 0.625
    assert 1.0 <= waits[1] <= 1.25
    assert_no_token(exc)


def test_max_retries_zero_sends_once(waits: list) -> None:
    script = Script(err(503))
    with pytest.raises(DevicServerError):
        make_client(script, max_retries=0).send_message(ASSISTANT, "hi")
    assert script.calls == 1
    assert waits == []


def test_negative_max_retries_is_refused() -> None:
    with pytest.raises(ValueError, match="max_retries"):
        make_client(Script(), max_retries=-1)


# -------------------------------------------------------- transport failures


def test_connect_error_then_success(waits: list) -> None:
    script = Script(connect_error, ok())
    reply = make_client(script).send_message(ASSISTANT, "hi")
    assert reply.text == "hello from devic"
    assert script.calls == 2
    assert len(waits) == 1
    assert_backoff(waits[0], 0)


def test_connect_timeout_then_success(waits: list) -> None:
    script = Script(connect_timeout, ok())
    reply = make_client(script).send_message(ASSISTANT, "hi")
    assert reply.chat_uuid == "chat-new-1"
    assert script.calls == 2
    assert len(waits) == 1


def test_connect_errors_exhausted_raise_connection_error(waits: list) -> None:
    script = Script(connect_error, connect_error, connect_error)
    with pytest.raises(DevicConnectionError) as info:
        make_client(script).send_message(ASSISTANT, "hi")
    exc = info.value
    assert isinstance(exc, ModelConnectionError)
    assert exc.is_retryable is True  # nothing was sent: safe to try again later
    assert "api.devic.ai" in exc.message
    assert isinstance(exc.__cause__, httpx.ConnectError)
    assert script.calls == 3
    assert len(waits) == 2
    assert_no_token(exc)


def test_read_timeout_is_not_retried(waits: list) -> None:
    script = Script(read_timeout, ok())
    with pytest.raises(DevicTimeoutError) as info:
        make_client(script).send_message(ASSISTANT, "hi")
    exc = info.value
    assert isinstance(exc, ModelTimeoutError)
    assert exc.is_retryable is False
    assert "slow" in exc.message
    assert script.calls == 1
    assert waits == []
    assert_no_token(exc)


def test_write_timeout_is_not_retried(waits: list) -> None:
    script = Script(write_timeout, ok())
    with pytest.raises(DevicTimeoutError) as info:
        make_client(script).send_message(ASSISTANT, "hi")
    assert info.value.is_retryable is False
    assert script.calls == 1
    assert waits == []


@pytest.mark.parametrize("failure", [remote_closed, read_error])
def test_connection_lost_after_send_is_not_retried(
    failure: Callable[[httpx.Request], httpx.Response], waits: list
) -> None:
    script = Script(failure, ok())
    with pytest.raises(DevicConnectionError) as info:
        make_client(script).send_message(ASSISTANT, "hi")
    exc = info.value
    assert isinstance(exc, ModelConnectionError)
    assert exc.is_retryable is False
    assert "not retried" in exc.message
    assert script.calls == 1
    assert waits == []
    assert_no_token(exc)


def test_transport_error_text_is_redacted(waits: list) -> None:
    def leaky(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"refused for Bearer {TOKEN}", request=request)

    script = Script(leaky)
    with pytest.raises(DevicConnectionError) as info:
        make_client(script, max_retries=0).send_message(ASSISTANT, "hi")
    exc = info.value
    for text in (str(exc), repr(exc), repr(exc.args), exc.message):
        assert TOKEN not in text
    assert "[REDACTED]" in exc.message


# ------------------------------------------------------- malformed 2xx answers


def test_non_json_200_is_a_protocol_error(waits: list) -> None:
    script = Script(raw(200, b"<html><body>Gateway says hello</body></html>"))
    with pytest.raises(DevicProtocolError) as info:
        make_client(script).send_message(ASSISTANT, "hi")
    exc = info.value
    assert "<html><body>Gateway says hello" in exc.message
    assert "not JSON" in exc.message
    assert exc.body.startswith("<html>")
    assert exc.is_retryable is False
    assert script.calls == 1
    assert waits == []
    assert_no_token(exc)


def test_json_without_reply_or_id_is_a_protocol_error(waits: list) -> None:
    script = Script(ok({"ok": True}))
    with pytest.raises(DevicProtocolError) as info:
        make_client(script).send_message(ASSISTANT, "hi")
    exc = info.value
    assert "no conversation id and no reply text" in exc.message
    assert '{"ok":true}' in exc.message
    assert exc.is_retryable is False
    assert script.calls == 1
    assert_no_token(exc)


def test_200_echoing_the_token_in_a_non_json_body_is_redacted() -> None:
    script = Script(raw(200, f"oops Authorization: Bearer {TOKEN}".encode()))
    with pytest.raises(DevicProtocolError) as info:
        make_client(script).send_message(ASSISTANT, "hi")
    assert_no_token(info.value)
    assert "[REDACTED]" in info.value.message


def test_response_over_max_response_bytes_is_refused(waits: list) -> None:
    script = Script(raw(200, b"x" * 5000))
    with pytest.raises(DevicProtocolError) as info:
        make_client(script, max_response_bytes=1000).send_message(ASSISTANT, "hi")
    exc = info.value
    assert "larger than 1000 bytes" in exc.message
    assert "max_response_bytes" in exc.message
    assert script.calls == 1
    assert waits == []
    assert_no_token(exc)


def test_streamed_response_without_length_over_limit_is_refused() -> None:
    chunks_sent: list[int] = []

    def chunks():
        for _ in range(50):
            chunks_sent.append(1)
            yield b"y" * 500

    script = Script(httpx.Response(200, content=chunks()))
    with pytest.raises(DevicProtocolError, match="larger than 1000 bytes"):
        make_client(script, max_response_bytes=1000).send_message(ASSISTANT, "hi")
    assert script.calls == 1
    # Reading stopped as soon as the limit was crossed.
    assert len(chunks_sent) < 50


def test_response_at_the_limit_is_accepted() -> None:
    body = json.dumps(SEED_REPLY).encode()
    script = Script(raw(200, body))
    reply = make_client(script, max_response_bytes=len(body)).send_message(
        ASSISTANT, "hi"
    )
    assert reply.text == "hello from devic"


def test_deeply_nested_json_is_a_protocol_error() -> None:
    script = Script(raw(200, b"[" * 100000 + b"]" * 100000))
    with pytest.raises(DevicProtocolError) as info:
        make_client(script).send_message(ASSISTANT, "hi")
    assert script.calls == 1
    assert len(info.value.message) < 1000


def test_non_utf8_body_is_a_protocol_error() -> None:
    script = Script(raw(200, b'{"chatUuid": "c1", "message": "caf\xe9 \xff\xfe"}'))
    with pytest.raises(DevicProtocolError) as info:
        make_client(script).send_message(ASSISTANT, "hi")
    assert script.calls == 1
    assert_no_token(info.value)


# ------------------------------------------------------------- answer shapes


def test_seed_reply_is_parsed() -> None:
    script = Script(ok({**SEED_REPLY, "brandNew": {"x": 1}}))
    reply = make_client(script).send_message(ASSISTANT, "hi")
    assert isinstance(reply, DevicReply)
    assert reply.text == "hello from devic"
    assert reply.chat_uuid == "chat-new-1"
    assert reply.tokens_used == 845
    assert reply.timestamp == "2025-10-29T14:58:25Z"
    assert reply.extra == {"brandNew": {"x": 1}}


def test_envelope_reply_is_unwrapped() -> None:
    envelope = {"success": True, "data": SEED_REPLY, "timestamp": "2025-11-01"}
    reply = make_client(Script(ok(envelope))).send_message(ASSISTANT, "hi")
    assert reply.text == "hello from devic"
    assert reply.chat_uuid == "chat-new-1"
    assert reply.tokens_used == 845


def test_message_list_reply_keeps_the_sent_chat_uuid() -> None:
    payload = [
        {"role": "user", "content": "hi"},
        {
            "role": "assistant",
            "content": {"message": "hello", "data": None, "files": []},
        },
    ]
    script = Script(ok(payload))
    reply = make_client(script).send_message(ASSISTANT, "hi", chat_uuid="chat-X")
    assert reply.text == "hello"
    assert reply.chat_uuid == "chat-X"


def test_message_list_reply_for_new_conversation_warns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    payload = [{"role": "assistant", "content": "hello"}]
    with caplog.at_level(logging.WARNING, logger="langchain_devic"):
        reply = make_client(Script(ok(payload))).send_message(ASSISTANT, "hi")
    assert reply.text == "hello"
    assert reply.chat_uuid is None
    assert any(
        r.name == "langchain_devic" and r.levelno == logging.WARNING
        for r in caplog.records
    )


@pytest.mark.parametrize("key", ["chatUid", "chatUID"])
def test_chat_object_reply_with_token_split(key: str) -> None:
    payload = {
        key: "chat-obj-7",
        "assistantIdentifier": ASSISTANT,
        "createdAt": "2025-10-29T14:58:25Z",
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": {"message": "from object"}},
        ],
        "inputTokens": 10,
        "outputTokens": 5,
    }
    reply = make_client(Script(ok(payload))).send_message(ASSISTANT, "hi")
    assert reply.text == "from object"
    assert reply.chat_uuid == "chat-obj-7"
    assert reply.input_tokens == 10
    assert reply.output_tokens == 5
    assert reply.extra["assistantIdentifier"] == ASSISTANT


@pytest.mark.parametrize("key", ["chatUuid", "chatUid", "chatUID"])
def test_all_spellings_of_the_chat_id(key: str) -> None:
    payload = {key: "chat-sp-1", "message": "yes"}
    reply = make_client(Script(ok(payload))).send_message(ASSISTANT, "hi")
    assert reply.chat_uuid == "chat-sp-1"
    assert reply.text == "yes"


def test_forked_conversation_returns_new_id_and_warns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    script = Script(ok({"chatUuid": "chat-B-222", "message": "forked"}))
    with caplog.at_level(logging.WARNING, logger="langchain_devic"):
        reply = make_client(script).send_message(ASSISTANT, "hi", chat_uuid="chat-A")
    assert reply.chat_uuid == "chat-B-222"
    records = [
        r
        for r in caplog.records
        if r.name == "langchain_devic" and r.levelno == logging.WARNING
    ]
    assert len(records) == 1
    text = records[0].getMessage()
    assert "chat-A" in text
    assert "chat-B-222" in text


def test_same_chat_uuid_back_does_not_warn(caplog: pytest.LogCaptureFixture) -> None:
    script = Script(ok({"chatUuid": "chat-A", "message": "same"}))
    with caplog.at_level(logging.WARNING, logger="langchain_devic"):
        reply = make_client(script).send_message(ASSISTANT, "hi", chat_uuid="chat-A")
    assert reply.chat_uuid == "chat-A"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


# --------------------------------------------------------- Retry-After variants


def test_retry_after_ms_header(waits: list) -> None:
    script = Script(err(429, headers={"retry-after-ms": "250"}), ok())
    make_client(script).send_message(ASSISTANT, "hi")
    assert script.calls == 2
    assert waits == [0.25]


def test_retry_after_http_date(waits: list) -> None:
    when = datetime.now(timezone.utc) + timedelta(seconds=2)
    header = format_datetime(when, usegmt=True)
    script = Script(err(503, headers={"Retry-After": header}), ok())
    make_client(script).send_message(ASSISTANT, "hi")
    assert script.calls == 2
    assert len(waits) == 1
    assert 0 <= waits[0] <= 3


def test_retry_after_zero_retries_at_once(waits: list) -> None:
    script = Script(err(429, headers={"Retry-After": "0"}), ok())
    make_client(script).send_message(ASSISTANT, "hi")
    assert script.calls == 2
    assert waits == [0]


def test_body_retry_after_is_used_without_header(waits: list) -> None:
    payload = {"statusCode": 429, "error": "RATE", "message": "wait", "retryAfter": 2}
    script = Script(err(429, payload), ok())
    make_client(script).send_message(ASSISTANT, "hi")
    assert script.calls == 2
    assert waits == [2.0]


def test_header_wins_over_body_retry_after(waits: list) -> None:
    payload = {"statusCode": 429, "error": "RATE", "message": "wait", "retryAfter": 9}
    script = Script(err(429, payload, headers={"Retry-After": "3"}), ok())
    make_client(script).send_message(ASSISTANT, "hi")
    assert waits == [3.0]


def test_retry_after_over_60_on_503_raises_at_once(waits: list) -> None:
    script = Script(err(503, headers={"Retry-After": "61"}), ok())
    with pytest.raises(DevicServerError) as info:
        make_client(script).send_message(ASSISTANT, "hi")
    exc = info.value
    assert exc.status_code == 503
    assert exc.retry_after == 61
    assert script.calls == 1
    assert waits == []


def test_retry_after_exactly_60_is_waited(waits: list) -> None:
    script = Script(err(429, headers={"Retry-After": "60"}), ok())
    make_client(script).send_message(ASSISTANT, "hi")
    assert waits == [60.0]


@pytest.mark.parametrize(
    "headers",
    [{"Retry-After": "nan"}, {"retry-after-ms": "nan"}, {"Retry-After": "garbage"}],
)
def test_malformed_retry_after_falls_back_to_backoff(
    headers: dict[str, str], waits: list
) -> None:
    script = Script(err(503, headers=headers), ok())
    make_client(script).send_message(ASSISTANT, "hi")
    assert script.calls == 2
    assert len(waits) == 1
    # A real sleep(nan) raises ValueError: the wait must be a finite backoff.
    assert math.isfinite(waits[0])
    assert_backoff(waits[0], 0)


# ---------------------------------------------------------------- error bodies


def test_error_body_success_false_shape() -> None:
    payload = {
        "success": False,
        "error": {"message": "Provider not configured", "code": "NO_PROVIDER"},
    }
    with pytest.raises(DevicBadRequestError) as info:
        make_client(Script(err(400, payload))).send_message(ASSISTANT, "hi")
    assert info.value.message == "Provider not configured"
    assert info.value.code == "NO_PROVIDER"


def test_error_body_status_code_shape(waits: list) -> None:
    payload = {
        "statusCode": 429,
        "error": "TENANT_LIMIT_EXCEEDED",
        "message": "Monthly limit reached",
        "retryAfter": 86400,
    }
    script = Script(err(429, payload))
    with pytest.raises(DevicRateLimitError) as info:
        make_client(script).send_message(ASSISTANT, "hi")
    exc = info.value
    assert exc.message == "Monthly limit reached"
    assert exc.code == "TENANT_LIMIT_EXCEEDED"
    assert exc.retry_after == 86400
    assert script.calls == 1
    assert waits == []
    assert_no_token(exc)


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (401, {"error": {"message": f"bad key {TOKEN}"}}),
        (401, {"success": False, "error": {"message": "no", "code": TOKEN}}),
        (403, {"statusCode": 403, "error": "FORBIDDEN", "message": f"key={TOKEN}"}),
        (400, {"message": "bad", "echo": {"headers": f"Bearer {TOKEN}"}}),
        (500, f"Authorization: Bearer {TOKEN} rejected"),
        (404, f"{TOKEN}"),
    ],
)
def test_token_echoed_in_error_body_is_redacted(status: int, body: Any) -> None:
    content = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    script = Script(raw(status, content))
    with pytest.raises(DevicAPIError) as info:
        make_client(script).send_message(ASSISTANT, "hi")
    exc = info.value
    assert exc.status_code == status
    assert_no_token(exc)
    assert "[REDACTED]" in exc.body


def test_long_error_body_is_excerpted() -> None:
    page = b"<html>" + b"x" * 5000 + b"</html>"
    script = Script(raw(502, page))
    with pytest.raises(DevicServerError) as info:
        make_client(script, max_retries=0).send_message(ASSISTANT, "hi")
    assert info.value.body.startswith("<html>xxx")
    assert len(info.value.body) <= 301


# --------------------------------------------------------------- request shape


def test_request_for_a_new_conversation() -> None:
    script = Script(ok())
    make_client(script).send_message(ASSISTANT, "hi")
    assert script.calls == 1
    request = script.requests[0]
    assert request.method == "POST"
    assert str(request.url) == f"https://api.devic.ai{PATH}"
    assert request.url.path == PATH
    assert json.loads(request.content) == {"message": "hi", "chatUuid": None}
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"].startswith("langchain-devic/")
    assert request.headers["User-Agent"] == f"langchain-devic/{__version__}"


def test_request_for_a_continued_conversation() -> None:
    script = Script(ok({"chatUuid": "chat-7", "message": "again"}))
    make_client(script).send_message(
        ASSISTANT,
        "and then?",
        chat_uuid="chat-7",
        context={"system": "Be brief.", "lang": "en"},
        metadata={"userId": "u-1"},
    )
    request = script.requests[0]
    assert json.loads(request.content) == {
        "message": "and then?",
        "chatUuid": "chat-7",
        "chatUid": "chat-7",
        "context": {"system": "Be brief.", "lang": "en"},
        "metadata": {"userId": "u-1"},
    }
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["Content-Type"] == "application/json"


def test_extra_platform_fields_only_when_set() -> None:
    script = Script(ok())
    make_client(script).send_message(
        ASSISTANT, "hi", extra={"tags": ["a"], "userName": None}
    )
    assert json.loads(script.requests[0].content) == {
        "message": "hi",
        "chatUuid": None,
        "tags": ["a"],
    }


def test_default_headers_cannot_override_authorization() -> None:
    script = Script(ok())
    make_client(
        script, default_headers={"X-Trace": "t1", "Authorization": "Bearer other"}
    ).send_message(ASSISTANT, "hi")
    request = script.requests[0]
    assert request.headers["X-Trace"] == "t1"
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"


def test_secret_str_api_key_is_accepted() -> None:
    from pydantic import SecretStr

    script = Script(ok())
    client = make_client(script, api_key=SecretStr(TOKEN))
    client.send_message(ASSISTANT, "hi")
    assert script.requests[0].headers["Authorization"] == f"Bearer {TOKEN}"
    assert TOKEN not in repr(client)


@pytest.mark.parametrize("assistant_id", ["../admin", "x?y#z", "a%2Fb", "a\x00b"])
def test_assistant_id_that_is_not_one_segment_is_refused(assistant_id: str) -> None:
    script = Script(ok())
    with pytest.raises(ValueError, match="not a valid Devic assistant id"):
        make_client(script).send_message(assistant_id, "hi")
    assert script.calls == 0


@pytest.mark.parametrize("assistant_id", ["a b", "support.v2", "ü"])
def test_assistant_id_is_one_quoted_path_segment(assistant_id: str) -> None:
    script = Script(ok())
    make_client(script).send_message(assistant_id, "hi")
    request = script.requests[0]
    quoted = quote(assistant_id, safe="").encode()
    assert request.url.raw_path == b"/v1/assistants/" + quoted + b"/messages"
    segment = request.url.raw_path.split(b"/")[3]
    assert segment == quoted
    for char in (b"/", b"?", b"#"):
        assert char not in segment
    assert request.url.query == b""
    assert request.url.fragment == ""
    assert request.url.host == "api.devic.ai"


def test_plain_http_base_url_is_refused_before_any_request() -> None:
    script = Script(ok())
    with pytest.raises(ValueError, match="http"):
        make_client(script, base_url="http://example.com")
    assert script.calls == 0


def test_loopback_http_base_url_is_accepted() -> None:
    script = Script(ok())
    make_client(script, base_url="http://127.0.0.1:8080/v1").send_message(
        ASSISTANT, "hi"
    )
    assert str(script.requests[0].url) == f"http://127.0.0.1:8080{PATH}"


def test_cross_origin_redirect_drops_authorization() -> None:
    def redirect(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            307, headers={"Location": "https://collector.example.net/steal"}
        )

    script = Script(redirect, ok())
    http = httpx.Client(follow_redirects=True, transport=httpx.MockTransport(script))
    client = DevicClient(http_client=http, api_key=TOKEN, base_url=BASE_URL)
    client.send_message(ASSISTANT, "hi")
    assert script.calls == 2
    first, second = script.requests
    assert first.headers["Authorization"] == f"Bearer {TOKEN}"
    assert second.url.host == "collector.example.net"
    assert "authorization" not in second.headers
    for value in second.headers.values():
        assert TOKEN not in value


def test_built_client_does_not_follow_redirects() -> None:
    client = DevicClient(api_key=TOKEN, base_url=BASE_URL)
    try:
        assert client.http.follow_redirects is False
    finally:
        client.close()


def test_http_client_is_reused_across_calls() -> None:
    script = Script(ok(), ok())
    http = httpx.Client(transport=httpx.MockTransport(script))
    client = DevicClient(http_client=http, api_key=TOKEN, base_url=BASE_URL)
    assert client.http is client.http
    assert client.http is http
    client.send_message(ASSISTANT, "one")
    client.send_message(ASSISTANT, "two")
    assert client.http is http
    assert script.calls == 2


def test_close_leaves_a_user_supplied_client_open() -> None:
    http = httpx.Client(transport=httpx.MockTransport(Script()))
    client = DevicClient(http_client=http, api_key=TOKEN, base_url=BASE_URL)
    client.close()
    assert not http.is_closed
    assert client.http is http
    http.close()


def test_close_closes_a_client_it_built() -> None:
    client = DevicClient(api_key=TOKEN, base_url=BASE_URL)
    built = client.http
    assert client.http is built
    client.close()
    assert built.is_closed
    # A later call builds a fresh pool rather than using a closed one.
    rebuilt = client.http
    assert rebuilt is not built
    assert not rebuilt.is_closed
    client.close()
    client.close()  # idempotent


def test_client_repr_hides_the_token() -> None:
    client = make_client(Script())
    assert TOKEN not in repr(client)
    assert TOKEN not in str(client)


def test_float_timeout_is_read_timeout_with_5s_connect() -> None:
    client = make_client(Script(), timeout=30.0)
    assert client.timeout.read == 30.0
    assert client.timeout.connect == 5.0
    custom = httpx.Timeout(7.0)
    assert make_client(Script(), timeout=custom).timeout is custom


def test_info_log_on_retry_hides_token(
    caplog: pytest.LogCaptureFixture, waits: list
) -> None:
    script = Script(err(503), ok())
    with caplog.at_level(logging.DEBUG, logger="langchain_devic"):
        make_client(script).send_message(ASSISTANT, "hi")
    assert any("Retrying" in r.getMessage() for r in caplog.records)
    assert TOKEN not in caplog.text


# --------------------------------------------------------------- retry policy


def test_backoff_delay_bounds() -> None:
    for _ in range(200):
        assert 0.5 <= _retry.backoff_delay(0) <= 0.625
        assert 1.0 <= _retry.backoff_delay(1) <= 1.25
        assert 8.0 <= _retry.backoff_delay(5) <= 10.0
        assert 8.0 <= _retry.backoff_delay(30) <= 10.0


def test_backoff_delay_is_jittered() -> None:
    import random

    rng = random.Random(1234)
    values = {_retry.backoff_delay(0, rng) for _ in range(20)}
    assert len(values) > 1


def test_retry_wait_prefers_the_server() -> None:
    assert _retry.retry_wait(3.0, 0) == 3.0
    assert _retry.retry_wait(0.0, 4) == 0.0
    assert 0.5 <= _retry.retry_wait(None, 0) <= 0.625


def test_pre_send_errors_are_only_connect_phase() -> None:
    assert set(_retry.PRE_SEND_ERRORS) == {
        httpx.ConnectError,
        httpx.ConnectTimeout,
        httpx.PoolTimeout,
    }
    assert httpx.ReadTimeout not in _retry.PRE_SEND_ERRORS
    assert httpx.RemoteProtocolError not in _retry.PRE_SEND_ERRORS


# ------------------------------------------------------------------ async twin


async def test_async_409_then_success(waits: list) -> None:
    script = Script(err(409), ok())
    client = make_async_client(script)
    reply = await client.send_message(ASSISTANT, "hi")
    assert reply.text == "hello from devic"
    assert script.calls == 2
    assert len(waits) == 1
    assert 0.5 <= waits[0] <= 0.625


async def test_async_429_retry_after_1_then_success(waits: list) -> None:
    script = Script(err(429, headers={"Retry-After": "1"}), ok())
    reply = await make_async_client(script).send_message(ASSISTANT, "hi")
    assert reply.chat_uuid == "chat-new-1"
    assert script.calls == 2
    assert waits == [1.0]


async def test_async_429_retry_after_3600_raises_at_once(waits: list) -> None:
    script = Script(err(429, headers={"Retry-After": "3600"}))
    with pytest.raises(DevicRateLimitError) as info:
        await make_async_client(script).send_message(ASSISTANT, "hi")
    exc = info.value
    assert isinstance(exc, ModelRateLimitError)
    assert exc.retry_after == 3600
    assert exc.status_code == 429
    assert script.calls == 1
    assert waits == []
    assert_no_token(exc)


async def test_async_500_is_not_retried(waits: list) -> None:
    script = Script(err(500, {"success": False, "error": {"message": "boom"}}), ok())
    with pytest.raises(DevicServerError) as info:
        await make_async_client(script).send_message(ASSISTANT, "hi")
    exc = info.value
    assert isinstance(exc, ModelAPIError)
    assert exc.status_code == 500
    assert exc.message.startswith("boom ")
    assert exc.is_retryable is False
    assert script.calls == 1
    assert waits == []
    assert_no_token(exc)


@pytest.mark.parametrize(
    ("status", "cls", "family"),
    [
        (400, DevicBadRequestError, ModelInvalidRequestError),
        (401, DevicAuthenticationError, ModelAuthenticationError),
        (403, DevicPermissionDeniedError, ModelPermissionDeniedError),
        (404, DevicNotFoundError, ModelNotFoundError),
    ],
)
async def test_async_client_errors(
    status: int, cls: type[DevicAPIError], family: type[Exception], waits: list
) -> None:
    script = Script(err(status, {"error": {"message": f"bad key {TOKEN}"}}))
    with pytest.raises(cls) as info:
        await make_async_client(script).send_message(ASSISTANT, "hi")
    assert isinstance(info.value, family)
    assert info.value.status_code == status
    assert script.calls == 1
    assert_no_token(info.value)


async def test_async_retries_exhausted(waits: list) -> None:
    script = Script(err(503), err(503), err(503))
    with pytest.raises(DevicServerError):
        await make_async_client(script, max_retries=2).send_message(ASSISTANT, "hi")
    assert script.calls == 3
    assert len(waits) == 2
    assert 0.5 <= waits[0] <= 0.625
    assert 1.0 <= waits[1] <= 1.25


async def test_async_connect_error_then_success(waits: list) -> None:
    script = Script(connect_error, ok())
    reply = await make_async_client(script).send_message(ASSISTANT, "hi")
    assert reply.text == "hello from devic"
    assert script.calls == 2
    assert len(waits) == 1


async def test_async_read_timeout_is_not_retried(waits: list) -> None:
    script = Script(read_timeout, ok())
    with pytest.raises(DevicTimeoutError) as info:
        await make_async_client(script).send_message(ASSISTANT, "hi")
    exc = info.value
    assert isinstance(exc, ModelTimeoutError)
    assert exc.is_retryable is False
    assert script.calls == 1
    assert waits == []
    assert_no_token(exc)


async def test_async_remote_protocol_error_is_not_retried(waits: list) -> None:
    script = Script(remote_closed, ok())
    with pytest.raises(DevicConnectionError) as info:
        await make_async_client(script).send_message(ASSISTANT, "hi")
    assert info.value.is_retryable is False
    assert script.calls == 1
    assert waits == []


async def test_async_malformed_retry_after_falls_back_to_backoff(
    waits: list,
) -> None:
    # A real asyncio.sleep(nan) never returns: the wait must be a finite backoff.
    script = Script(err(503, headers={"Retry-After": "nan"}), ok())
    await make_async_client(script).send_message(ASSISTANT, "hi")
    assert script.calls == 2
    assert len(waits) == 1
    assert math.isfinite(waits[0])


async def test_async_body_retry_after_nan_falls_back_to_backoff(
    waits: list,
) -> None:
    # Python's json accepts the NaN literal, so a body can carry it.
    body = b'{"statusCode": 429, "error": "RATE", "retryAfter": NaN}'
    script = Script(raw(429, body), ok())
    await make_async_client(script).send_message(ASSISTANT, "hi")
    assert script.calls == 2
    assert len(waits) == 1
    assert math.isfinite(waits[0])


async def test_async_forked_conversation_warns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    script = Script(ok({"chatUuid": "chat-B-222", "message": "forked"}))
    with caplog.at_level(logging.WARNING, logger="langchain_devic"):
        reply = await make_async_client(script).send_message(
            ASSISTANT, "hi", chat_uuid="chat-A"
        )
    assert reply.chat_uuid == "chat-B-222"
    records = [
        r
        for r in caplog.records
        if r.name == "langchain_devic" and r.levelno == logging.WARNING
    ]
    assert len(records) == 1
    assert "chat-A" in records[0].getMessage()
    assert "chat-B-222" in records[0].getMessage()


async def test_async_protocol_errors(waits: list) -> None:
    for body in (b"not json", b'{"ok": true}', b"[" * 100000 + b"]" * 100000):
        script = Script(raw(200, body))
        with pytest.raises(DevicProtocolError):
            await make_async_client(script).send_message(ASSISTANT, "hi")
        assert script.calls == 1
    assert waits == []


async def test_async_response_over_max_response_bytes() -> None:
    script = Script(raw(200, b"x" * 5000))
    client = make_async_client(script, max_response_bytes=1000)
    with pytest.raises(DevicProtocolError, match="larger than 1000 bytes"):
        await client.send_message(ASSISTANT, "hi")


async def test_async_request_shape() -> None:
    script = Script(ok())
    await make_async_client(script).send_message(
        "a b", "hi", chat_uuid="c-1", context={"k": "v"}
    )
    request = script.requests[0]
    assert request.url.raw_path == b"/v1/assistants/a%20b/messages"
    assert json.loads(request.content) == {
        "message": "hi",
        "chatUuid": "c-1",
        "chatUid": "c-1",
        "context": {"k": "v"},
    }
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["User-Agent"].startswith("langchain-devic/")


async def test_async_cross_origin_redirect_drops_authorization() -> None:
    def redirect(request: httpx.Request) -> httpx.Response:
        return httpx.Response(307, headers={"Location": "https://other.example.net/x"})

    script = Script(redirect, ok())
    http = httpx.AsyncClient(
        follow_redirects=True, transport=httpx.MockTransport(script)
    )
    client = AsyncDevicClient(http_client=http, api_key=TOKEN, base_url=BASE_URL)
    await client.send_message(ASSISTANT, "hi")
    assert script.calls == 2
    assert "authorization" not in script.requests[1].headers
    await http.aclose()


async def test_async_http_client_reuse_and_aclose() -> None:
    http = httpx.AsyncClient(transport=httpx.MockTransport(Script()))
    client = AsyncDevicClient(http_client=http, api_key=TOKEN, base_url=BASE_URL)
    assert client.http is client.http is http
    await client.aclose()
    assert not http.is_closed
    await http.aclose()

    owned = AsyncDevicClient(api_key=TOKEN, base_url=BASE_URL)
    built = owned.http
    assert owned.http is built
    assert built.follow_redirects is False
    await owned.aclose()
    assert built.is_closed


def test_sync_and_async_errors_share_the_base() -> None:
    for cls in (
        DevicBadRequestError,
        DevicRateLimitError,
        DevicServerError,
        DevicConnectionError,
        DevicTimeoutError,
        DevicProtocolError,
    ):
        assert issubclass(cls, DevicError)
