"""Security checks: the API key never shows, and hostile input stays contained.

- The key is absent from `repr`/`str`, `dumpd`/`dumps`, every error the package
  raises (str, repr, args, attributes, tracebacks, pickles), callback payloads,
  DEBUG logs of every logger (httpx and httpcore included), the cassettes on
  disk, and the CLI's output, even when a server echoes the key back.
- `http://` to a non-loopback host is refused before any connection; a redirect
  never carries the Authorization header to another origin; answers over
  `max_response_bytes` are refused; hostile assistant ids stay in one path
  segment; malicious replies (huge, non-UTF-8, deeply nested) end in a typed
  error, quickly.

No sockets, except the tests marked `allow_hosts(["127.0.0.1"])`, which talk to
the emulator's loopback server (and a CLI subprocess that does the same).
"""

from __future__ import annotations

import logging
import os
import pickle
import re
import subprocess
import sys
import time
import traceback
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.load import dumpd, dumps
from langchain_core.messages import ToolMessage
from pydantic import ValidationError

from langchain_devic import ChatDevic, DevicAssistantTool, _clock, errors
from langchain_devic._client import MAX_RESPONSE_BYTES, AsyncDevicClient, DevicClient
from langchain_devic.errors import (
    DevicAPIError,
    DevicAuthenticationError,
    DevicBadRequestError,
    DevicConflictError,
    DevicConnectError,
    DevicConnectionError,
    DevicConnectTimeoutError,
    DevicError,
    DevicGatewayError,
    DevicNotFoundError,
    DevicPermissionDeniedError,
    DevicProtocolError,
    DevicRateLimitError,
    DevicRequestTimeoutError,
    DevicRunError,
    DevicServerError,
    DevicServiceUnavailableError,
    DevicTimeoutError,
)
from langchain_devic.testing import DevicEmulator, Fault

#: A distinctive key: any occurrence of it (or of its distinctive core) is a leak.
KEY = "dvc_live_SECRET-7f3a9c1e55b04d2e"
KEY_CORE = "7f3a9c1e55b04d2e"
ASSISTANT = "security-assistant"
BASE_URL = "http://127.0.0.1/v1"
ROOT = Path(__file__).resolve().parents[3]
LOOPBACK = pytest.mark.allow_hosts(["127.0.0.1"])
#: A malicious answer must be settled in well under this many seconds.
HANG_BUDGET = 5.0

#: Every HTTP status drives its error class (max_retries=0: nothing retried).
STATUS_CLASSES = {
    400: DevicBadRequestError,
    401: DevicAuthenticationError,
    403: DevicPermissionDeniedError,
    404: DevicNotFoundError,
    408: DevicRequestTimeoutError,
    409: DevicConflictError,
    422: DevicBadRequestError,
    429: DevicRateLimitError,
    500: DevicServerError,
    502: DevicGatewayError,
    503: DevicServiceUnavailableError,
    504: DevicGatewayError,
}


def assert_no_key(*texts: object) -> None:
    """None of `texts` (stringified) holds the key, or its distinctive core."""
    for text in texts:
        rendered = text if isinstance(text, str) else repr(text)
        assert KEY not in rendered, rendered
        assert KEY_CORE not in rendered, rendered


def echo_body(status: int) -> dict[str, Any]:
    """An error body that echoes the key back in every field a parser reads."""
    return {
        "statusCode": status,
        "message": f"Invalid token {KEY} (Authorization: Bearer {KEY})",
        "code": KEY,
        "retryAfter": 0,
        "error": {"message": f"key {KEY} rejected", "code": f"BAD_KEY_{KEY}"},
        "echo": {"headers": {"authorization": f"Bearer {KEY}"}, "token": KEY},
    }


def make_model(emulator: DevicEmulator, **overrides: Any) -> ChatDevic:
    transport = emulator.transport()
    params: dict[str, Any] = {
        "model": ASSISTANT,
        "api_key": KEY,
        "base_url": BASE_URL,
        "max_retries": 0,
        "http_client": httpx.Client(transport=transport),
        "http_async_client": httpx.AsyncClient(transport=transport),
        **overrides,
    }
    return ChatDevic(**params)


@pytest.fixture
def emulator() -> DevicEmulator:
    return DevicEmulator(api_key=KEY, random_seed=3)


async def call(model: ChatDevic, text: str, *, use_async: bool) -> Any:
    """`ainvoke` or `invoke`, so one test covers both paths."""
    return await model.ainvoke(text) if use_async else model.invoke(text)


def every_view_of(exc: BaseException) -> list[str]:
    """Everything a person or a log could see of an exception, and its causes."""
    views = [
        str(exc),
        repr(exc),
        repr(exc.args),
        repr(vars(exc)),
        "".join(traceback.format_exception(exc)),
    ]
    if isinstance(exc, DevicError):  # they pickle (multiprocessing, copy)
        views.append(repr(vars(pickle.loads(pickle.dumps(exc)))))  # noqa: S301
    cause = exc.__cause__ or exc.__context__
    while cause is not None:
        views += [str(cause), repr(cause), repr(cause.args)]
        cause = cause.__cause__ or cause.__context__
    return views


# ---------------------------------------------------------------- the objects


def test_repr_str_and_dumps_of_the_model_and_the_tool_hide_the_key(
    emulator: DevicEmulator,
) -> None:
    model = make_model(emulator)
    tool = DevicAssistantTool(name="billing", description="Bills.", chat_model=model)
    built = DevicAssistantTool(
        name="billing",
        description="Bills.",
        assistant_id=ASSISTANT,
        api_key=KEY,
        base_url=BASE_URL,
    )
    for obj in (model, tool, built):
        assert_no_key(repr(obj), str(obj), dumps(obj), dumps(obj, pretty=True))
        assert_no_key(dumpd(obj), obj.model_dump())
    assert_no_key(model.model_dump_json())
    assert "SecretStr('**********')" in repr(model)
    serialized = dumpd(model)
    assert serialized["kwargs"]["api_key"] == {
        "lc": 1,
        "type": "secret",
        "id": ["DEVIC_API_KEY"],
    }
    assert model.model_dump()["api_key"].get_secret_value() == KEY  # still usable
    assert_no_key(model._identifying_params, model._get_ls_params())
    assert_no_key(repr(model.client), repr(model.client._api_key))
    # The tool is not serializable; its placeholder shows the masked repr only.
    assert dumpd(tool)["type"] == "not_implemented"


INVALID_BUILDS: list[Callable[[], Any]] = [
    lambda: ChatDevic(model=ASSISTANT, api_key=KEY, max_retries=-1),
    lambda: ChatDevic(model="..", api_key=KEY),
    lambda: ChatDevic(model=ASSISTANT, api_key=KEY, base_url="http://x.org"),
    lambda: ChatDevic(model=ASSISTANT, api_key=KEY, timeout="soon"),
    lambda: ChatDevic(model=ASSISTANT, api_key=KEY, max_response_bytes=0),
    lambda: DevicAssistantTool(
        name="t", description="d", assistant_id="..", api_key=KEY
    ),
    lambda: DevicAssistantTool(
        name="t", description="d", assistant_id=ASSISTANT, api_key=KEY, store=1
    ),
]
INVALID_IDS = [
    "negative-retries",
    "dot-dot-id",
    "plain-http",
    "bad-timeout",
    "zero-cap",
    "tool-bad-id",
    "tool-bad-store",
]


@pytest.mark.parametrize("build", INVALID_BUILDS, ids=INVALID_IDS)
def test_validation_error_messages_hide_the_key(build: Callable[[], Any]) -> None:
    with pytest.raises(ValidationError) as caught:
        build()
    assert caught.value.error_count() >= 1
    assert_no_key(*every_view_of(caught.value))


@pytest.mark.parametrize("build", INVALID_BUILDS, ids=INVALID_IDS)
def test_validation_error_details_hide_the_key(build: Callable[[], Any]) -> None:
    """`errors()` and `json()` are what frameworks log or send back (FastAPI)."""
    with pytest.raises(ValidationError) as caught:
        build()
    assert_no_key(repr(caught.value.errors()), caught.value.json())


def test_clients_keep_the_key_out_of_repr() -> None:
    sync = DevicClient(api_key=KEY, base_url=BASE_URL)
    asyn = AsyncDevicClient(api_key=KEY, base_url=BASE_URL)
    assert repr(sync) == "DevicClient(base_url='http://127.0.0.1/v1')"
    assert repr(asyn) == "AsyncDevicClient(base_url='http://127.0.0.1/v1')"
    assert_no_key(str(sync), str(asyn), repr(vars(sync)), repr(vars(asyn)))


# ---------------------------------------------------------------- every error


def drive_every_error(model: ChatDevic, emulator: DevicEmulator) -> list[DevicError]:
    """Raise one of every error class through the emulator transport."""
    raised: list[DevicError] = []

    def attempt(fault: Fault) -> None:
        emulator.inject(fault)
        with pytest.raises(DevicError) as caught:
            model.invoke("hello")
        raised.append(caught.value)

    for status in STATUS_CLASSES:
        attempt(Fault.status(status, body=echo_body(status)))
        attempt(Fault.status(status, body=f"<h1>{status}</h1> Bearer {KEY}".encode()))
    attempt(Fault.raw(307, b"", {"Location": f"https://evil.example/?t={KEY}"}))
    attempt(Fault.connect_error())
    attempt(Fault.drop())
    attempt(Fault.read_timeout(0))
    attempt(Fault.malformed(f"<html>{KEY}</html>".encode()))
    attempt(Fault.raw(200, {"success": False, "error": {"message": KEY}}))
    attempt(Fault.raw(200, {"chatUuid": "c-1", "note": f"Bearer {KEY}"}))
    return raised


def test_every_error_type_hides_the_key_even_when_the_server_echoes_it(
    emulator: DevicEmulator,
) -> None:
    model = make_model(emulator)
    raised = drive_every_error(model, emulator)

    for exc in raised:
        assert_no_key(*every_view_of(exc))
        for attribute in ("message", "body", "code"):
            assert_no_key(str(getattr(exc, attribute, "")))
    # Each status mapped to its class, the echo redacted but the rest kept.
    by_status = {
        e.status_code: e for e in raised if isinstance(e, DevicAPIError)
    }  # the last of each status: the non-JSON echo
    for status, cls in STATUS_CLASSES.items():
        assert type(by_status[status]) is cls
        assert by_status[status].body == f"<h1>{status}</h1> Bearer [REDACTED]"
    first_400 = next(e for e in raised if getattr(e, "status_code", 0) == 400)
    assert first_400.message == "key [REDACTED] rejected"
    assert first_400.code == "BAD_KEY_[REDACTED]"
    assert str(first_400) == (
        "Devic answered 400 [BAD_KEY_[REDACTED]]: key [REDACTED] rejected "
        "(retry after 0 s)"
    )
    # Every class of the error tree was raised (DevicError only as their base;
    # a connect timeout has no emulator fault, test_client covers it; a run
    # error comes from a platform run, test_platform_model covers it; the
    # tool's store and lock errors come from the tool, test_workers and
    # test_continuity cover them; an agent's approval comes from DevicAgentTool,
    # test_agents covers it).
    raised_types = {type(e) for e in raised}
    tree = {
        cls for name in errors.__all__ if isinstance(cls := getattr(errors, name), type)
    } - {
        DevicError,
        DevicConnectTimeoutError,
        DevicRunError,
        errors.DevicStoreError,
        errors.DevicLockTimeoutError,
        errors.DevicLockError,
        errors.DevicApprovalRequired,
    }
    assert raised_types == tree
    redirect = next(e for e in raised if getattr(e, "status_code", 0) == 307)
    assert type(redirect) is DevicAPIError


async def test_every_error_type_hides_the_key_async(emulator: DevicEmulator) -> None:
    model = make_model(emulator)
    faults = [Fault.status(s, body=echo_body(s)) for s in STATUS_CLASSES] + [
        Fault.connect_error(),
        Fault.drop(),
        Fault.read_timeout(0),
        Fault.malformed(f"{KEY}".encode()),
    ]
    seen: set[type[BaseException]] = set()
    for fault in faults:
        emulator.inject(fault)
        with pytest.raises(DevicError) as caught:
            await model.ainvoke("hello")
        seen.add(type(caught.value))
        assert_no_key(*every_view_of(caught.value))
    assert seen == {*STATUS_CLASSES.values()} | {
        DevicConnectError,
        DevicConnectionError,
        DevicTimeoutError,
        DevicProtocolError,
    }


def test_a_reply_echoing_the_key_as_its_chat_id_does_not_show_it(
    emulator: DevicEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    """The chat id is server-controlled text too: errors and logs redact it."""
    caplog.set_level(logging.DEBUG)
    model = make_model(emulator)
    emulator.inject(Fault.raw(200, {"chatUuid": KEY}))  # an id but no reply
    with pytest.raises(DevicProtocolError) as caught:
        model.invoke("hello")
    assert_no_key(*every_view_of(caught.value))
    # Continuing chat "c-1", the server answers under another id: the fork
    # warning names both ids, and must not print the key either.
    # Continuing chat "c-1", the server answers under an id equal to the key:
    # refused (the key never goes into a URL), and shown nowhere.
    emulator.inject(Fault.raw(200, {"chatUuid": KEY, "message": "forked"}))
    with pytest.raises(DevicProtocolError) as refused:
        model.invoke("again", chat_uuid="c-1")
    assert_no_key(*every_view_of(refused.value))
    assert_no_key(*(r.getMessage() for r in caplog.records))


def test_tool_error_messages_for_the_agent_hide_the_key(
    emulator: DevicEmulator,
) -> None:
    tool = DevicAssistantTool(
        name="billing", description="Bills.", chat_model=make_model(emulator)
    )
    call = {
        "name": "billing",
        "args": {"message": "hi"},
        "id": "call-1",
        "type": "tool_call",
    }
    for status in (400, 409, 429, 500, 503):
        emulator.inject(Fault.status(status, body=echo_body(status)))
        message = tool.invoke(call)
        assert isinstance(message, ToolMessage)
        assert message.status == "error"
        assert message.content.startswith("The Devic assistant could not answer:")
        assert_no_key(message.content, repr(message), message.model_dump_json())
    for status in (401, 403, 404):  # a person must fix these: they raise
        emulator.inject(Fault.status(status, body=echo_body(status)))
        with pytest.raises(DevicAPIError) as caught:
            tool.invoke(call)
        assert caught.value.status_code == status
        assert_no_key(*every_view_of(caught.value))


class Everything(BaseCallbackHandler):
    """Keeps the repr of every model and chain callback it receives."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def _keep(self, event: str, /, *args: Any, **kwargs: Any) -> None:
        self.seen.append(f"{event} {args!r} {kwargs!r}")

    def on_chat_model_start(self, *args: Any, **kwargs: Any) -> None:
        self._keep("on_chat_model_start", *args, **kwargs)

    def on_llm_new_token(self, *args: Any, **kwargs: Any) -> None:
        self._keep("on_llm_new_token", *args, **kwargs)

    def on_llm_end(self, *args: Any, **kwargs: Any) -> None:
        self._keep("on_llm_end", *args, **kwargs)

    def on_llm_error(self, *args: Any, **kwargs: Any) -> None:
        self._keep("on_llm_error", *args, **kwargs)


def test_callback_and_tracing_payloads_hide_the_key(emulator: DevicEmulator) -> None:
    handler = Everything()
    model = make_model(emulator)
    config: Any = {"callbacks": [handler]}
    model.invoke("hello", config=config)
    list(model.stream("hello again", config=config))
    emulator.inject(Fault.status(400, body=echo_body(400)))
    with pytest.raises(DevicBadRequestError):
        model.invoke("bad", config=config)
    names = {entry.split(" ", 1)[0] for entry in handler.seen}
    assert {"on_chat_model_start", "on_llm_end", "on_llm_error"} <= names
    assert_no_key(*handler.seen)


# ------------------------------------------------------------------------ logs


def run_with_failures(model: ChatDevic, emulator: DevicEmulator) -> int:
    """Successes, retries and failures of every kind; returns the errors seen."""
    failures = 0
    model.invoke("first")
    emulator.inject(Fault.status(429, retry_after=0, body=echo_body(429)))
    emulator.inject(Fault.status(503, body=echo_body(503)))
    model.invoke("retried twice, then answered")
    for fault in (
        Fault.status(500, body=echo_body(500)),
        Fault.status(401, body=echo_body(401)),
        Fault.drop(),
        Fault.malformed(f"oops {KEY}".encode()),
        Fault.raw(200, {"chatUuid": "c-1", "echo": KEY}),
        Fault.raw(200, b"[" * 50_000),
    ):
        emulator.inject(fault)
        with pytest.raises(DevicError) as caught:
            model.invoke("fails")
        logging.getLogger("test.security").exception("call failed: %s", caught.value)
        failures += 1
    return failures


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "langchain_devic", "langchain_core", "asyncio"):
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


def assert_logs_clean(caplog: pytest.LogCaptureFixture) -> None:
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    for record in caplog.records:
        assert_no_key(
            record.getMessage(),
            repr(record.args),
            repr(record.msg),
            formatter.format(record),
        )
    assert_no_key(caplog.text)


def test_debug_logs_hide_the_key_in_process(
    emulator: DevicEmulator,
    debug_logs: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_clock, "sleep", lambda seconds: None)
    model = make_model(emulator, max_retries=2)
    assert run_with_failures(model, emulator) == 6
    names = {r.name for r in debug_logs.records}
    assert {"httpx", "langchain_devic", "test.security"} <= names
    retries = [r for r in debug_logs.records if "Retrying Devic call" in r.message]
    assert len(retries) == 2
    assert_logs_clean(debug_logs)


@LOOPBACK
def test_debug_logs_hide_the_key_over_loopback_http(
    emulator: DevicEmulator,
    debug_logs: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_clock, "sleep", lambda seconds: None)
    with emulator.serve() as server:
        model = ChatDevic(
            model=ASSISTANT, api_key=KEY, base_url=server.base_url, max_retries=2
        )
        assert run_with_failures(model, emulator) == 6
        model.client.close()
    names = {r.name for r in debug_logs.records}
    assert {"httpx", "langchain_devic"} <= names
    assert any(name.startswith("httpcore") for name in names), names
    assert_logs_clean(debug_logs)
    # The emulator's own record of the traffic never keeps the header either.
    assert len(emulator.requests) == 10
    for record in emulator.requests:
        assert "authorization" not in record.headers
        assert record.authorized is True
        assert_no_key(repr(record.headers), repr(record.json))


# ------------------------------------------------------------------ cassettes


def cassette_files() -> list[Path]:
    return sorted(p for p in (ROOT / "cassettes").rglob("*") if p.is_file())


def known_keys() -> list[str]:
    from tests.integration_tests.conftest import EMULATOR_KEY

    keys = [KEY, EMULATOR_KEY]
    if os.environ.get("DEVIC_API_KEY"):
        keys.append(os.environ["DEVIC_API_KEY"])
    return keys


def test_cassettes_on_disk_hold_no_key() -> None:
    files = cassette_files()
    assert len(files) >= 20, files  # the committed standard-suite cassettes
    keys = known_keys()
    bearer = re.compile(r"(?i)bearer\s+(?!\[?REDACTED\]?)\S+")
    interactions = 0
    for path in files:
        text = path.read_text(encoding="utf-8")
        for key in keys:
            assert key not in text, f"{path} holds a key"
        assert not bearer.search(text), f"{path}: {bearer.search(text)}"
        if path.suffix in {".yaml", ".yml"}:
            cassette = yaml.safe_load(text)
            for interaction in cassette["interactions"]:
                interactions += 1
                headers = {
                    k.lower(): v for k, v in interaction["request"]["headers"].items()
                }
                assert headers.get("authorization") == ["REDACTED"], path
                for name in ("x-api-key", "api-key", "cookie", "proxy-authorization"):
                    assert headers.get(name) in (None, ["REDACTED"]), (path, name)
    assert interactions >= len(files)


# ------------------------------------------------------------------------- CLI


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEVIC_")}
    env.update(NO_COLOR="1", **extra)
    return env


@LOOPBACK
def test_cli_output_never_shows_the_key(emulator: DevicEmulator) -> None:
    if not (ROOT / "langchain_devic" / "__main__.py").exists():
        pytest.skip("langchain_devic/__main__.py (the CLI) does not exist yet")
    outputs: list[str] = []
    with emulator.serve() as server:
        env = cli_env(DEVIC_API_KEY=KEY, DEVIC_ASSISTANT_ID=ASSISTANT)
        base = ["--base-url", server.base_url]

        def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
            done = subprocess.run(
                [sys.executable, "-m", "langchain_devic", *args],
                input=stdin,
                capture_output=True,
                text=True,
                env=env,
                timeout=60,
                check=False,
            )
            outputs.append(done.stdout + done.stderr)
            return done

        ok = run("chat", *base, "hello")
        assert ok.returncode == 0, ok.stderr
        assert ok.stdout == f"Reply 1 from {ASSISTANT}: hello\n"
        emulator.inject(Fault.status(401, body=echo_body(401)))
        denied = run("chat", *base, "hello")
        assert denied.returncode == 1
        assert denied.stderr.startswith(
            "error: Devic answered 401 [BAD_KEY_[REDACTED]]"
        )
        emulator.inject(
            Fault.status(400, body=echo_body(400)), Fault.malformed(KEY.encode())
        )
        chat = run("chat", *base, stdin="one\ntwo\nthree\n")
        assert chat.returncode == 0, chat.stderr
        assert chat.stderr.count("error: ") == 2
        assert "devic> Reply 1" in chat.stdout
        demo = run("demo", *base)
        assert demo.returncode == 0, demo.stderr
        usage = run("chat", "--base-url", "http://devic.example.com/v1", "hi")
        assert usage.returncode == 2
        assert "plain http://" in usage.stderr
        version = run("--version")
        assert version.returncode == 0
    assert len(outputs) == 6
    assert_no_key(*outputs)


# -------------------------------------------------- plain http, before connecting


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/v1",
        "HTTP://EXAMPLE.COM/v1",
        "http://api.devic.ai/v1",
        "http://127.0.0.1.example.com/v1",
        "http://localhost.evil.com/v1",
        "http://10.0.0.1/v1",
        "http://[2001:db8::1]/v1",
        "ftp://127.0.0.1/v1",
    ],
)
def test_plain_http_to_a_remote_host_is_refused_before_any_connection(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={"chatUuid": "c", "message": "m"})

    client = httpx.Client(transport=httpx.MockTransport(handler))
    with pytest.raises(ValidationError) as caught:
        ChatDevic(model=ASSISTANT, api_key=KEY, base_url=url, http_client=client)
    assert "base_url" in str(caught.value)
    with pytest.raises(ValueError, match="base_url"):
        DevicClient(api_key=KEY, base_url=url, http_client=client)
    with pytest.raises(ValueError, match="base_url"):
        AsyncDevicClient(api_key=KEY, base_url=url)
    with pytest.raises(ValidationError):
        DevicAssistantTool(
            name="t", description="d", assistant_id=ASSISTANT, api_key=KEY, base_url=url
        )
    monkeypatch.setenv("DEVIC_BASE_URL", url)
    with pytest.raises(ValidationError):
        ChatDevic(model=ASSISTANT, api_key=KEY, http_client=client)
    assert sent == []


@pytest.mark.parametrize(
    ("url", "kept"),
    [
        ("http://127.0.0.1/v1/", "http://127.0.0.1/v1"),
        ("http://127.8.9.10:8080/v1", "http://127.8.9.10:8080/v1"),
        ("http://localhost:8765/v1", "http://localhost:8765/v1"),
        ("HTTP://LOCALHOST/v1", "http://localhost/v1"),
        ("http://[::1]:9000/v1", "http://[::1]:9000/v1"),
        ("https://api.devic.ai/v1", "https://api.devic.ai/v1"),
    ],
)
def test_https_and_plain_http_to_loopback_are_accepted(url: str, kept: str) -> None:
    assert ChatDevic(model=ASSISTANT, api_key=KEY, base_url=url).base_url == kept
    assert DevicClient(api_key=KEY, base_url=url).base_url == kept


# -------------------------------------------------------------------- redirects


def redirecting_handler(
    location: str, seen: list[httpx.Request]
) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        origin = (request.url.scheme, request.url.host, request.url.port)
        if origin == ("https", "api.devic.ai", None):
            return httpx.Response(307, headers={"Location": location})
        return httpx.Response(200, json={"chatUuid": "chat-x", "message": "stolen"})

    return handler


@pytest.mark.parametrize(
    "location",
    [
        "https://evil.example/v1/assistants/x/messages",
        "http://api.devic.ai/v1/assistants/x/messages",
        "https://api.devic.ai:8443/v1/assistants/x/messages",
        "//evil.example/steal",
    ],
    ids=["other-host", "downgrade-to-http", "other-port", "scheme-relative"],
)
def test_a_followed_redirect_never_carries_the_key_to_another_origin(
    location: str,
) -> None:
    seen: list[httpx.Request] = []
    transport = httpx.MockTransport(redirecting_handler(location, seen))
    model = ChatDevic(
        model=ASSISTANT,
        api_key=KEY,
        base_url="https://api.devic.ai/v1",
        max_retries=0,
        http_client=httpx.Client(transport=transport, follow_redirects=True),
    )
    model.invoke("hello")
    assert len(seen) == 2
    first, second = seen
    assert first.headers["authorization"] == f"Bearer {KEY}"
    assert (second.url.scheme, second.url.host, second.url.port) != (
        "https",
        "api.devic.ai",
        None,
    )
    assert "authorization" not in second.headers
    assert_no_key(
        str(second.url), repr(second.headers.multi_items()), second.content.decode()
    )


async def test_a_followed_redirect_never_carries_the_key_async() -> None:
    seen: list[httpx.Request] = []
    transport = httpx.MockTransport(redirecting_handler("https://evil.example/x", seen))
    model = ChatDevic(
        model=ASSISTANT,
        api_key=KEY,
        base_url="https://api.devic.ai/v1",
        max_retries=0,
        http_async_client=httpx.AsyncClient(transport=transport, follow_redirects=True),
    )
    await model.ainvoke("hello")
    assert [r.url.host for r in seen] == ["api.devic.ai", "evil.example"]
    assert "authorization" not in seen[1].headers


@LOOPBACK
def test_the_built_in_client_does_not_follow_redirects(
    emulator: DevicEmulator,
) -> None:
    with emulator.serve() as server:
        target = f"http://127.0.0.2:{server.port}/v1/assistants/x/messages"
        emulator.inject(Fault.raw(307, b"", {"Location": target}))
        model = ChatDevic(
            model=ASSISTANT, api_key=KEY, base_url=server.base_url, max_retries=0
        )
        with pytest.raises(DevicAPIError) as caught:
            model.invoke("hello")
        model.client.close()
    assert type(caught.value) is DevicAPIError
    assert caught.value.status_code == 307
    assert len(emulator.requests) == 1


# ------------------------------------------------------------- response size


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
async def test_an_answer_over_max_response_bytes_is_refused_by_its_length(
    emulator: DevicEmulator, use_async: bool
) -> None:
    model = make_model(emulator, max_response_bytes=1024)
    emulator.inject(Fault.raw(200, b'{"message": "' + b"x" * 2000 + b'"}'))
    with pytest.raises(DevicProtocolError) as caught:
        await call(model, "hello", use_async=use_async)
    assert "larger than 1024 bytes" in str(caught.value)
    assert "max_response_bytes" in str(caught.value)
    # An answer of exactly the cap is fine.
    emulator.inject(Fault.raw(200, {"chatUuid": "c1", "message": "y" * (1024 - 33)}))
    reply = await model.ainvoke("ok") if use_async else model.invoke("ok")
    assert reply.text == "y" * (1024 - 33)


def test_the_default_cap_is_ten_mebibytes(emulator: DevicEmulator) -> None:
    assert MAX_RESPONSE_BYTES == 10 * 1024 * 1024
    assert ChatDevic(model=ASSISTANT, api_key=KEY).max_response_bytes == 10485760
    model = make_model(emulator)
    emulator.inject(Fault.raw(200, b"x" * (MAX_RESPONSE_BYTES + 1)))
    with pytest.raises(DevicProtocolError, match="larger than 10485760 bytes"):
        model.invoke("hello")


CHUNK = b"z" * 65536
#: 8,192 chunks of 64 KiB: a 512 MiB answer with no Content-Length.
ENDLESS = 8192


class EndlessBody:
    """Streams 512 MiB without a Content-Length; counts the chunks read."""

    def __init__(self) -> None:
        self.chunks_read = 0

    def __iter__(self) -> Iterator[bytes]:
        for _ in range(ENDLESS):
            self.chunks_read += 1
            yield CHUNK


class AsyncEndlessBody:
    """The async twin of `EndlessBody`."""

    def __init__(self) -> None:
        self.chunks_read = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for _ in range(ENDLESS):
            self.chunks_read += 1
            yield CHUNK


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
async def test_a_streamed_answer_is_cut_off_at_the_cap(use_async: bool) -> None:
    body = AsyncEndlessBody() if use_async else EndlessBody()

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body)

    transport = httpx.MockTransport(handler)
    model = ChatDevic(
        model=ASSISTANT,
        api_key=KEY,
        base_url=BASE_URL,
        max_response_bytes=200_000,
        http_client=httpx.Client(transport=transport),
        http_async_client=httpx.AsyncClient(transport=transport),
    )
    started = time.perf_counter()
    with pytest.raises(DevicProtocolError, match="larger than 200000 bytes"):
        await call(model, "hello", use_async=use_async)
    assert time.perf_counter() - started < HANG_BUDGET
    assert body.chunks_read == 4  # 4 x 64 KiB is the first read over 200,000 bytes


# ------------------------------------------------------------ hostile ids


HOSTILE_IDS = {
    "ü": b"%C3%BC",
    "a b": b"a%20b",
    "a;b": b"a%3Bb",
    "...": b"...",
}
#: Ids that cannot be one safe path segment: refused before any request.
UNSAFE_IDS = ["../admin", "a/b", "x?y#z", "%2e%2e", "..%2f..%2fetc", "a\\b;c"]


@pytest.mark.parametrize("assistant_id", list(HOSTILE_IDS))
@pytest.mark.parametrize("how", ["field", "call-override", "tool-fields"])
def test_hostile_assistant_ids_stay_in_one_path_segment(
    emulator: DevicEmulator, assistant_id: str, how: str
) -> None:
    seen: list[httpx.Request] = []
    inner = emulator.transport()

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return inner.handle_request(request)

    client = httpx.Client(transport=httpx.MockTransport(handler))
    if how == "field":
        make_model(emulator, model=assistant_id, http_client=client).invoke("hi")
    elif how == "call-override":
        make_model(emulator, http_client=client).invoke("hi", model=assistant_id)
    else:
        tool = DevicAssistantTool(
            name="t",
            description="d",
            assistant_id=assistant_id,
            api_key=KEY,
            base_url=BASE_URL,
            http_client=client,
        )
        tool.invoke({"message": "hi"})
    (request,) = seen
    expected = b"/v1/assistants/" + HOSTILE_IDS[assistant_id] + b"/messages"
    assert request.url.raw_path == expected
    assert request.url.query == b""
    assert request.url.fragment == ""
    assert request.url.host == "127.0.0.1"
    assert request.url.raw_path.count(b"/") == 4
    # The server reads back exactly the id that was meant, in the right route.
    (record,) = emulator.requests
    assert record.assistant_id == assistant_id
    assert record.status == 200


@pytest.mark.parametrize("assistant_id", ["", ".", "..", " .. ", *UNSAFE_IDS])
def test_ids_that_cannot_be_one_segment_are_refused(assistant_id: str) -> None:
    with pytest.raises(ValidationError, match="not a valid Devic assistant id"):
        ChatDevic(model=assistant_id, api_key=KEY, base_url=BASE_URL)


# --------------------------------------------------------- malicious replies


MALICIOUS_2XX = {
    "non-utf8-body": b"\xff\xfe\xfa\xfb not json at all \x80\x81",
    "non-utf8-inside-json": b'{"chatUuid": "c", "message": "caf\xe9 \xff"}',
    "utf16-bom-garbage": b"\xff\xfe{\x00}\x00\x00\xd8",
    "open-brackets": b"[" * 200_000,
    "closed-brackets": b"[" * 100_000 + b"]" * 100_000,
    "nested-objects": b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
    "deep-message": b'{"chatUuid": "c", "message": ' + b"[" * 100_000,
    "huge-integer": b'{"chatUuid": "c", "message": "m", "tokens_used": '
    + b"9" * 50_000
    + b"}",
    "wrong-types": b'{"chatUuid": 5, "message": 7}',
    "nul-bytes": b"\x00" * 100_000,
}


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("name", list(MALICIOUS_2XX))
async def test_malicious_2xx_replies_give_a_typed_error_quickly(
    emulator: DevicEmulator, name: str, use_async: bool
) -> None:
    model = make_model(emulator)
    emulator.inject(Fault.raw(200, MALICIOUS_2XX[name]))
    started = time.perf_counter()
    with pytest.raises(DevicProtocolError) as caught:
        await call(model, "hello", use_async=use_async)
    assert time.perf_counter() - started < HANG_BUDGET
    assert str(caught.value).startswith("Devic answered 2xx")
    assert len(caught.value.body) <= 301  # an excerpt, never the whole body
    assert caught.value.is_retryable is False
    # The model still works afterwards: nothing was left in a bad state.
    reply = await model.ainvoke("next") if use_async else model.invoke("next")
    assert reply.text == f"Reply 1 from {ASSISTANT}: next"


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (500, b"[" * 200_000),
        (400, b'{"message": ' + b"[" * 100_000),
        (503, b"\xff\xfe\x80 bad bytes"),
        (429, b'{"retryAfter": ' + b"9" * 50_000 + b"}"),
    ],
    ids=["nested-500", "nested-400", "non-utf8-503", "huge-retry-after-429"],
)
def test_malicious_error_bodies_still_give_the_status_error(
    emulator: DevicEmulator, status: int, body: bytes
) -> None:
    model = make_model(emulator)
    emulator.inject(Fault.raw(status, body))
    started = time.perf_counter()
    with pytest.raises(DevicAPIError) as caught:
        model.invoke("hello")
    assert time.perf_counter() - started < HANG_BUDGET
    assert type(caught.value) is STATUS_CLASSES[status]
    assert caught.value.status_code == status
    assert len(caught.value.body) <= 301
    assert len(str(caught.value)) < 1000
