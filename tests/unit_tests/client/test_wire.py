"""Unit tests for the pure wire functions (`langchain_devic._wire`)."""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from langchain_devic import _checks, _wire
from langchain_devic._wire import (
    DevicReply,
    api_error,
    build_request_body,
    excerpt,
    messages_url,
    parse_reply,
    parse_retry_after,
    redact,
    validate_assistant_id,
    validate_base_url,
)
from langchain_devic.errors import (
    DevicAuthenticationError,
    DevicBadRequestError,
    DevicNotFoundError,
    DevicProtocolError,
    DevicRateLimitError,
    DevicServerError,
)

TOKEN = "devic-test-TOKEN-4f9a1c"


def body(payload: Any) -> bytes:
    return json.dumps(payload).encode()


def parse(payload: Any, sent: str | None = None) -> DevicReply:
    return parse_reply(body(payload), sent_chat_uuid=sent, secret=TOKEN)


def assert_no_token(exc: BaseException) -> None:
    for text in (
        str(exc),
        repr(exc),
        repr(exc.args),
        str(getattr(exc, "message", "")),
        str(getattr(exc, "body", "")),
        str(getattr(exc, "code", "")),
        repr(vars(exc)),
    ):
        assert TOKEN not in text


# ---------------------------------------------------------------- base URL


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com",
        "http://example.com/v1",
        "http://127.0.0.1.example.com",
        "http://localhost.example.com/v1",
        "http://10.0.0.1/v1",
        "ftp://x",
        "ws://127.0.0.1/v1",
        "api.devic.ai/v1",
        "",
        "https://",
    ],
)
def test_validate_base_url_refuses(url: str) -> None:
    with pytest.raises(ValueError, match="base_url"):
        validate_base_url(url)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:8080/v1", "http://127.0.0.1:8080/v1"),
        ("http://127.5.6.7/v1", "http://127.5.6.7/v1"),
        ("http://LOCALHOST/v1", "http://localhost/v1"),
        ("http://localhost:9/v1", "http://localhost:9/v1"),
        ("http://[::1]:9/v1", "http://[::1]:9/v1"),
        ("HTTPS://api.devic.ai/v1/", "https://api.devic.ai/v1"),
        ("https://api.devic.ai/v1", "https://api.devic.ai/v1"),
        ("https://api.devic.ai/api/v1", "https://api.devic.ai/api/v1"),
        ("  https://api.devic.ai/v1  ", "https://api.devic.ai/v1"),
    ],
)
def test_validate_base_url_accepts(url: str, expected: str) -> None:
    assert validate_base_url(url) == expected


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.255.255.254", True),
        ("localhost", True),
        ("LocalHost", True),
        ("::1", True),
        ("[::1]", True),
        ("127.0.0.1.example.com", False),
        ("localhost.evil", False),
        ("128.0.0.1", False),
        ("0.0.0.0", False),  # noqa: S104 - a host name, not a bind
        ("api.devic.ai", False),
    ],
)
def test_is_loopback_host(host: str, loopback: bool) -> None:
    assert _wire.is_loopback_host(host) is loopback


# ------------------------------------------------------------ assistant ids


@pytest.mark.parametrize(
    "assistant_id",
    ["", ".", "..", " ", " .. ", "../admin", "a/b", "x?y", "a%2F", "\x1b"],
)
def test_validate_assistant_id_refuses(assistant_id: str) -> None:
    with pytest.raises(ValueError, match="assistant_id"):
        validate_assistant_id(assistant_id)


@pytest.mark.parametrize("assistant_id", ["asst-1", "...", "a.b", "a b", "ü"])
def test_validate_assistant_id_accepts(assistant_id: str) -> None:
    assert validate_assistant_id(assistant_id) == assistant_id


@pytest.mark.parametrize(
    "assistant_id", ["../admin", "a b", "x?y#z", "ü", "%2e%2e", "a/b/c", "..."]
)
def test_messages_url_quotes_one_segment(assistant_id: str) -> None:
    url = httpx.URL(messages_url("https://api.devic.ai/v1", assistant_id))
    quoted = quote(assistant_id, safe="").encode()
    assert url.raw_path == b"/v1/assistants/" + quoted + b"/messages"
    segment = url.raw_path.split(b"/")[3]
    assert b"/" not in segment
    assert b"?" not in segment
    assert b"#" not in segment
    assert url.host == "api.devic.ai"
    assert url.query == b""
    assert url.fragment == ""


def test_messages_url_seed_path() -> None:
    assert (
        messages_url("https://api.devic.ai/v1", "asst-1")
        == "https://api.devic.ai/v1/assistants/asst-1/messages"
    )


# ----------------------------------------------------------- request body


def test_build_request_body_new_conversation() -> None:
    assert build_request_body("hi", None) == {"message": "hi", "chatUuid": None}


def test_build_request_body_continued_with_context_and_metadata() -> None:
    context = {"system": "Be brief."}
    metadata = {"userId": "u-1", "language": "en"}
    result = build_request_body("next", "chat-1", context=context, metadata=metadata)
    assert result == {
        "message": "next",
        "chatUuid": "chat-1",
        "chatUid": "chat-1",  # the platform clients' name, same value
        "context": {"system": "Be brief."},
        "metadata": {"userId": "u-1", "language": "en"},
    }
    # The caller's mappings are copied, not aliased.
    assert result["context"] is not context
    assert json.loads(json.dumps(result)) == result


def test_build_request_body_omits_empty_optional_objects() -> None:
    assert build_request_body("hi", "c", context={}, metadata={}) == {
        "message": "hi",
        "chatUuid": "c",
        "chatUid": "c",
    }


def test_build_request_body_extra_fields_only_when_set() -> None:
    result = build_request_body(
        "hi", None, extra={"tags": ["x"], "userName": None, "tenantId": "t1"}
    )
    assert result == {
        "message": "hi",
        "chatUuid": None,
        "tags": ["x"],
        "tenantId": "t1",
    }


def test_auth_headers() -> None:
    headers = _wire.auth_headers(TOKEN)
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert headers["Content-Type"] == "application/json"


# ------------------------------------------------------------- parse_reply


def test_parse_seed_reply() -> None:
    reply = parse(
        {
            "chatUuid": "e1f9",
            "message": "the reply",
            "tokens_used": 845,
            "timestamp": "2025-10-29T14:58:25Z",
        }
    )
    assert reply == DevicReply(
        text="the reply",
        chat_uuid="e1f9",
        tokens_used=845,
        timestamp="2025-10-29T14:58:25Z",
    )


def test_parse_keeps_unknown_fields_in_extra() -> None:
    reply = parse({"chatUuid": "c", "message": "m", "model": "gpt", "cost": 0.1})
    assert reply.extra == {"model": "gpt", "cost": 0.1}


def test_parse_empty_reply_text_is_valid() -> None:
    reply = parse({"chatUuid": "c", "message": ""})
    assert reply.text == ""
    assert reply.chat_uuid == "c"


def test_parse_envelope() -> None:
    seed = {"chatUuid": "c-env", "message": "wrapped", "tokens_used": 3}
    reply = parse({"success": True, "data": seed, "timestamp": "2025-11-01T00:00:00Z"})
    assert reply.text == "wrapped"
    assert reply.chat_uuid == "c-env"
    assert reply.tokens_used == 3
    assert reply.timestamp == "2025-11-01T00:00:00Z"


def test_parse_envelope_keeps_meta() -> None:
    seed = {"chatUuid": "c", "message": "m"}
    reply = parse({"success": True, "data": seed, "meta": {"page": 1}})
    assert reply.extra == {"meta": {"page": 1}}


def test_parse_message_list_uses_sent_id() -> None:
    payload = [
        {"role": "user", "content": "hi"},
        {
            "role": "assistant",
            "content": {"message": "hello", "data": None, "files": []},
        },
    ]
    reply = parse(payload, sent="chat-sent")
    assert reply.text == "hello"
    assert reply.chat_uuid == "chat-sent"


def test_parse_message_list_takes_last_assistant_message() -> None:
    payload = [
        {"role": "assistant", "content": "first"},
        {"role": "user", "content": "more"},
        {"role": "assistant", "content": "second"},
        {"role": "tool", "content": "tool output"},
    ]
    assert parse(payload, sent="c").text == "second"


def test_parse_message_list_in_envelope_without_id_for_new_chat() -> None:
    payload = {"success": True, "data": [{"role": "assistant", "content": "x"}]}
    reply = parse(payload)
    assert reply.text == "x"
    assert reply.chat_uuid is None


@pytest.mark.parametrize("key", ["chatUid", "chatUID", "chatUuid"])
def test_parse_chat_object(key: str) -> None:
    payload = {
        key: "chat-obj",
        "assistantIdentifier": "asst",
        "createdAt": "2025-10-29T14:58:25Z",
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": {"message": "obj reply"}},
        ],
        "metadata": {"k": "v"},
        "inputTokens": 10,
        "outputTokens": 5,
    }
    reply = parse(payload)
    assert reply.text == "obj reply"
    assert reply.chat_uuid == "chat-obj"
    assert reply.input_tokens == 10
    assert reply.output_tokens == 5
    assert reply.extra["assistantIdentifier"] == "asst"
    assert reply.extra["metadata"] == {"k": "v"}


@pytest.mark.parametrize("key", ["chatUid", "chatUID"])
def test_parse_platform_id_spellings(key: str) -> None:
    reply = parse({key: "c-spelled", "message": "ok"})
    assert reply.chat_uuid == "c-spelled"


def test_parse_no_token_figures_gives_none() -> None:
    reply = parse({"chatUuid": "c", "message": "m"})
    assert reply.tokens_used is None
    assert reply.input_tokens is None
    assert reply.output_tokens is None


def test_parse_ignores_non_integer_token_counts() -> None:
    reply = parse({"chatUuid": "c", "message": "m", "tokens_used": True})
    assert reply.tokens_used is None
    assert parse({"chatUuid": "c", "message": "m", "tokens_used": 7.0}).tokens_used == 7


@pytest.mark.parametrize(
    "payload",
    [
        {"ok": True},
        {},
        [],
        [{"role": "user", "content": "only me"}],
        {"success": True, "data": None},
        {"chatUuid": None, "message": None},
        "just a string",
        42,
        None,
    ],
)
def test_parse_refuses_answers_without_reply_or_id(payload: Any) -> None:
    with pytest.raises(DevicProtocolError) as info:
        parse(payload, sent="chat-1")
    exc = info.value
    assert exc.is_retryable is False
    assert "Devic answered 2xx" in exc.message


def test_parse_refuses_success_false_on_2xx() -> None:
    with pytest.raises(DevicProtocolError, match="reported an error"):
        parse({"success": False, "error": {"message": "nope"}})


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"<html>hello</html>",
        b"[" * 100000 + b"]" * 100000,
        b'{"chatUuid": "c", "message": "caf\xe9"}',
        b"\xff\xfe\x00garbage",
        b'{"message": "unterminated',
    ],
)
def test_parse_refuses_non_json(raw: bytes) -> None:
    with pytest.raises(DevicProtocolError) as info:
        parse_reply(raw, sent_chat_uuid=None, secret=TOKEN)
    assert len(info.value.message) < 1000
    assert len(info.value.body) <= 301


def test_protocol_error_message_has_body_excerpt() -> None:
    with pytest.raises(DevicProtocolError) as info:
        parse_reply(b"Service says hi", sent_chat_uuid=None, secret=TOKEN)
    assert "Service says hi" in info.value.message
    assert info.value.body == "Service says hi"


def test_protocol_error_redacts_the_token() -> None:
    raw = f"<pre>Authorization: Bearer {TOKEN}</pre>".encode()
    with pytest.raises(DevicProtocolError) as info:
        parse_reply(raw, sent_chat_uuid=None, secret=TOKEN)
    assert_no_token(info.value)
    with pytest.raises(DevicProtocolError) as info:
        parse_reply(body({"echo": TOKEN}), sent_chat_uuid=None, secret=TOKEN)
    assert_no_token(info.value)


# -------------------------------------------------------------- api_error


def test_api_error_success_false_shape() -> None:
    raw = body({"success": False, "error": {"message": "Bad input", "code": "E1"}})
    exc = api_error(400, {}, raw, secret=TOKEN)
    assert isinstance(exc, DevicBadRequestError)
    assert exc.status_code == 400
    assert exc.message == "Bad input"
    assert exc.code == "E1"
    assert exc.body == raw.decode()
    assert exc.retry_after is None


def test_api_error_status_code_shape() -> None:
    raw = body(
        {
            "statusCode": 429,
            "error": "TENANT_LIMIT_EXCEEDED",
            "message": "Limit reached",
            "retryAfter": 86400,
        }
    )
    exc = api_error(429, {}, raw, secret=TOKEN)
    assert isinstance(exc, DevicRateLimitError)
    assert exc.message == "Limit reached"
    assert exc.code == "TENANT_LIMIT_EXCEEDED"
    assert exc.retry_after == 86400


def test_api_error_header_retry_after() -> None:
    exc = api_error(429, {"Retry-After": "7"}, b"", secret=TOKEN)
    assert exc.retry_after == 7.0


def test_api_error_explicit_retry_after_wins() -> None:
    exc = api_error(429, {"Retry-After": "7"}, b"", secret=TOKEN, retry_after=1.5)
    assert exc.retry_after == 1.5


def test_api_error_empty_body_uses_reason_phrase() -> None:
    exc = api_error(404, {}, b"", secret=TOKEN)
    assert isinstance(exc, DevicNotFoundError)
    assert exc.message == "Not Found"
    assert exc.code is None
    assert exc.body == ""


def test_api_error_non_json_body_becomes_message() -> None:
    exc = api_error(502, {}, b"<html>Bad Gateway</html>", secret=TOKEN)
    assert isinstance(exc, DevicServerError)
    assert exc.message == "<html>Bad Gateway</html>"


def test_api_error_top_level_code() -> None:
    exc = api_error(400, {}, body({"message": "m", "code": 1234}), secret=TOKEN)
    assert exc.code == "1234"


@pytest.mark.parametrize(
    "payload",
    [
        {"error": {"message": f"bad key {TOKEN}"}},
        {"error": {"message": "no", "code": TOKEN}},
        {"statusCode": 401, "error": TOKEN, "message": f"Bearer {TOKEN}"},
        {"message": "m", "debug": {"authorization": f"Bearer {TOKEN}"}},
    ],
)
def test_api_error_redacts_echoed_token(payload: Any) -> None:
    exc = api_error(401, {}, body(payload), secret=TOKEN)
    assert isinstance(exc, DevicAuthenticationError)
    assert_no_token(exc)


def test_api_error_redacts_token_in_non_json_body() -> None:
    exc = api_error(500, {}, f"key {TOKEN} refused".encode(), secret=TOKEN)
    assert_no_token(exc)
    assert "[REDACTED]" in exc.message


def test_api_error_long_body_is_excerpted() -> None:
    exc = api_error(503, {}, b"y" * 10000, secret=TOKEN)
    assert len(exc.body) <= 301
    assert exc.body.endswith("…")


# ------------------------------------------------------ parse_retry_after


NOW = datetime(2025, 10, 29, 12, 0, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "1"}, 1.0),
        ({"Retry-After": "3600"}, 3600.0),
        ({"Retry-After": "0"}, 0.0),
        ({"Retry-After": " 2 "}, 2.0),
        ({"retry-after": "5"}, 5.0),
        ({"retry-after-ms": "250"}, 0.25),
        ({"Retry-After-Ms": "1500"}, 1.5),
        ({"retry-after-ms": "250", "Retry-After": "9"}, 0.25),
        ({"retry-after-ms": "bad", "Retry-After": "9"}, 9.0),
        ({"Retry-After": "-5"}, 0.0),
        ({}, None),
        ({"Retry-After": "soon"}, None),
    ],
)
def test_parse_retry_after_headers(
    headers: dict[str, str], expected: float | None
) -> None:
    assert parse_retry_after(headers, now=NOW) == expected


def test_parse_retry_after_http_date() -> None:
    header = format_datetime(NOW + timedelta(seconds=2), usegmt=True)
    assert parse_retry_after({"Retry-After": header}, now=NOW) == 2.0


def test_parse_retry_after_http_date_live_clock() -> None:
    when = datetime.now(timezone.utc) + timedelta(seconds=2)
    header = format_datetime(when, usegmt=True)
    wait = parse_retry_after({"Retry-After": header})
    assert wait is not None
    assert 0 <= wait <= 3


def test_parse_retry_after_http_date_in_the_past_is_zero() -> None:
    header = format_datetime(NOW - timedelta(hours=1), usegmt=True)
    assert parse_retry_after({"Retry-After": header}, now=NOW) == 0.0


def test_parse_retry_after_works_with_httpx_headers() -> None:
    headers = httpx.Headers({"Retry-After": "4"})
    assert parse_retry_after(headers) == 4.0


def test_parse_retry_after_body_value_when_header_absent() -> None:
    assert parse_retry_after({}, 86400) == 86400.0
    assert parse_retry_after({}, 2.5) == 2.5
    assert parse_retry_after({"Retry-After": "3"}, 86400) == 3.0
    assert parse_retry_after({}, "12") is None
    assert parse_retry_after({}, True) is None


@pytest.mark.parametrize(
    ("headers", "body_value"),
    [
        ({"Retry-After": "nan"}, None),
        ({"retry-after-ms": "NaN"}, None),
        ({}, float("nan")),
    ],
)
def test_parse_retry_after_never_returns_nan(
    headers: dict[str, str], body_value: Any
) -> None:
    # time.sleep(nan) raises ValueError and asyncio.sleep(nan) never returns, so
    # a malformed value must be ignored (None), not passed on.
    wait = parse_retry_after(headers, body_value)
    assert wait is None or not math.isnan(wait)


# -------------------------------------------------------- redact / excerpt


def test_redact_secret_and_bearer() -> None:
    text = f"key={TOKEN}; header Authorization: Bearer abc.def-123"
    out = redact(text, TOKEN)
    assert TOKEN not in out
    assert "abc.def-123" not in out
    assert out.count("[REDACTED]") == 2


def test_redact_bearer_is_case_insensitive() -> None:
    assert "sekrit" not in redact("BEARER sekrit", None)
    assert redact("bearer   sekrit", None) == "bearer   [REDACTED]"


def test_redact_without_secret_keeps_text() -> None:
    assert redact("nothing to hide", None) == "nothing to hide"
    assert redact("nothing to hide", "") == "nothing to hide"


def test_excerpt_short_body() -> None:
    assert excerpt(b'{"a": 1}', TOKEN) == '{"a": 1}'


def test_excerpt_truncates() -> None:
    out = excerpt(b"z" * 5000, TOKEN)
    assert out == "z" * _checks.BODY_EXCERPT_CHARS + "…"


def test_excerpt_decodes_leniently_and_redacts() -> None:
    out = excerpt(b"\xff\xfe bad " + TOKEN.encode(), TOKEN)
    assert TOKEN not in out
    assert "[REDACTED]" in out
    assert "\ufffd" in out


def test_excerpt_redacts_token_near_the_cut() -> None:
    raw = b"a" * (_checks.BODY_EXCERPT_CHARS - 5) + TOKEN.encode()
    out = excerpt(raw, TOKEN)
    assert TOKEN not in out
    assert TOKEN[:6] not in out


def test_excerpt_redacts_token_cut_by_the_byte_window() -> None:
    # 295 four-byte characters fill 1180 of the 1200 bytes decoded: a token
    # starting there is cut in half before redaction could see it whole.
    raw = ("😀" * 295).encode() + TOKEN.encode()
    out = excerpt(raw, TOKEN)
    assert TOKEN[:5] not in out
