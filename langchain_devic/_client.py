"""The only code in langchain-devic that speaks HTTP.

`DevicClient` and `AsyncDevicClient` send one turn to an assistant and return a
`DevicReply`. They share `_BaseDevicClient` for everything that is not I/O
(request building, answer handling, error mapping); the retry decision is
`_retry.next_wait`, and the two `send_message` loops mirror each other line for
line (a test compares them). `ClientPools` owns the clients a `ChatDevic` uses:
one per process, and one per process and event loop for async calls, so a
forked child, a copy, an unpickled model or a new `asyncio.run` never shares a
connection with another.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import ssl
import threading
import time
import weakref
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterator,
    Mapping,
    Sequence,
)
from typing import Any, Literal, cast

import httpx
from pydantic import SecretStr

from langchain_devic import _exchange, _retry, _runs, _wire
from langchain_devic._version import __version__
from langchain_devic.errors import (
    DevicAPIError,
    DevicConflictError,
    DevicConnectError,
    DevicConnectionError,
    DevicConnectTimeoutError,
    DevicError,
    DevicNotFoundError,
    DevicProtocolError,
    DevicServerError,
    DevicTimeoutError,
)

logger = logging.getLogger("langchain_devic")

DEFAULT_TIMEOUT = 120.0
DEFAULT_CONNECT_TIMEOUT = 5.0
#: Answers larger than this are refused (a Devic reply is a chat message).
MAX_RESPONSE_BYTES = 10 * 1024 * 1024
#: A run stream silent this long (or the read timeout, if shorter) is given up
#: for polling.
SSE_SILENCE = 60.0
#: A stop request is best effort: it gets this long, once.
STOP_SECONDS = 5.0
STOP_TIMEOUT = httpx.Timeout(STOP_SECONDS)
DEFAULT_RUN_TIMEOUT = 600.0
#: How long reading a chat's totals (for usage only) may keep retrying.
TOTALS_BUDGET = 30.0
DEFAULT_POLL_INTERVAL = 0.5
DEFAULT_MAX_POLL_INTERVAL = 5.0
#: Pool limits of the clients we build; pass your own `http_client` to change them.
DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)

# Indirections so tests can skip real waiting.
_sleep = time.sleep
_asleep = asyncio.sleep

TimeoutTypes = float | httpx.Timeout | None
#: What carries the async calls of the clients we build: httpx's own pool
#: (httpcore), or aiohttp's through the `httpx-aiohttp` transport.
AsyncTransport = Literal["httpcore", "aiohttp"]
AIOHTTP_INSTALL_HINT = 'pip install "langchain-devic[aiohttp]"'
#: Assistants whose messages URL a client keeps parsed.
MAX_CACHED_URLS = 256

_SSL_LOCK = threading.Lock()
_SSL_CONTEXT: ssl.SSLContext | None = None


def shared_ssl_context() -> ssl.SSLContext:
    """The one verifying TLS context of every httpx client langchain-devic builds.

    Creating a context loads the CA bundle: about 30 ms and 0.8 MiB each, which
    a client per event loop (`asyncio.run` per call) would pay every time. A
    context holds no connection, so processes, threads and loops may share it.
    Pass your own `http_client` for other TLS settings.
    """
    global _SSL_CONTEXT
    context = _SSL_CONTEXT
    if context is None:
        with _SSL_LOCK:
            context = _SSL_CONTEXT
            if context is None:
                context = httpx.create_ssl_context()
                _SSL_CONTEXT = context
    return context


def build_async_http(
    transport: AsyncTransport = "httpcore", trust_env: bool = True
) -> httpx.AsyncClient:
    """The httpx client an `AsyncDevicClient` builds for itself.

    Both kinds get the same pool limits, the shared TLS context and no
    redirects; requests carry their own timeouts. `"aiohttp"` sends through
    aiohttp's connection pool (the `aiohttp` extra), which keeps every idle
    connection open where httpcore's closes all but 20: at hundreds of
    concurrent calls that is the difference between reusing connections and
    opening (and TLS-handshaking) a new one for most calls.
    """
    if transport == "aiohttp":
        return _aiohttp_client_class()(
            limits=DEFAULT_LIMITS,
            follow_redirects=False,
            verify=shared_ssl_context(),
            trust_env=trust_env,
        )
    return httpx.AsyncClient(
        limits=DEFAULT_LIMITS,
        follow_redirects=False,
        verify=shared_ssl_context(),
        trust_env=trust_env,
    )


_AIOHTTP_CLIENT: type[httpx.AsyncClient] | None = None


def _aiohttp_client_class() -> type[httpx.AsyncClient]:
    """`httpx.AsyncClient` over aiohttp, whose failures read as httpcore's do.

    Defined on first use: `httpx-aiohttp` (and aiohttp) are optional. Its own
    transport maps aiohttp's errors coarsely: a connection the server closed
    after reading the message (`ServerDisconnectedError`) becomes
    `httpx.ConnectTimeout`, which says "nothing was sent" and would have the
    turn retried, so posted twice. `_remap_aiohttp_error` restores what
    httpcore raises for each case, which the retry policy reads.
    """
    global _AIOHTTP_CLIENT
    if _AIOHTTP_CLIENT is not None:
        return _AIOHTTP_CLIENT
    try:
        import httpx_aiohttp
    except ImportError as exc:
        msg = (
            "async_transport='aiohttp' needs the httpx-aiohttp package: "
            f"{AIOHTTP_INSTALL_HINT}"
        )
        raise ImportError(msg) from exc

    class _RemappedStream(httpx.AsyncByteStream):
        """A response body whose read failures are remapped like the send's."""

        def __init__(self, inner: httpx.AsyncByteStream) -> None:
            self._inner = inner

        async def __aiter__(self) -> AsyncIterator[bytes]:
            try:
                async for chunk in self._inner:
                    yield chunk
            except (httpx.TransportError, asyncio.TimeoutError) as exc:
                raise _remap_aiohttp_error(exc) from None

        async def aclose(self) -> None:
            try:
                await self._inner.aclose()
            except (httpx.TransportError, asyncio.TimeoutError) as exc:
                raise _remap_aiohttp_error(exc) from None

    class _Transport(httpx_aiohttp.AiohttpTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            try:
                response = await super().handle_async_request(request)
            except (httpx.TransportError, asyncio.TimeoutError) as exc:
                raise _remap_aiohttp_error(exc) from None
            response.stream = _RemappedStream(
                cast(httpx.AsyncByteStream, response.stream)
            )
            return response

    class _Client(httpx.AsyncClient):
        """Every transport over aiohttp, proxies from the environment too."""

        def _init_transport(
            self,
            verify: ssl.SSLContext | str | bool = True,
            cert: Any = None,
            trust_env: bool = True,
            http1: bool = True,
            http2: bool = False,
            limits: httpx.Limits = DEFAULT_LIMITS,
            transport: httpx.AsyncBaseTransport | None = None,
            **kwargs: Any,
        ) -> httpx.AsyncBaseTransport:
            if transport is not None:
                return transport
            return _Transport(verify=verify, trust_env=trust_env, limits=limits)

        def _init_proxy_transport(
            self,
            proxy: httpx.Proxy,
            verify: ssl.SSLContext | str | bool = True,
            cert: Any = None,
            trust_env: bool = True,
            http1: bool = True,
            http2: bool = False,
            limits: httpx.Limits = DEFAULT_LIMITS,
            **kwargs: Any,
        ) -> httpx.AsyncBaseTransport:
            return _Transport(
                verify=verify, trust_env=trust_env, limits=limits, proxy=proxy
            )

    _AIOHTTP_CLIENT = _Client
    return _Client


def _remap_aiohttp_error(exc: BaseException) -> httpx.TransportError:
    """The httpx error httpcore raises where aiohttp raised `exc.__cause__`.

    Only a failure to connect says that nothing was sent (and may be retried);
    a disconnect, a reset or a stall once connected may follow a message
    Devic read, exactly as with httpcore.
    """
    import aiohttp

    cause = exc.__cause__ or exc
    kind: type[httpx.TransportError]
    if isinstance(cause, aiohttp.ConnectionTimeoutError):
        kind = httpx.ConnectTimeout
    elif isinstance(cause, aiohttp.ClientConnectorError):
        kind = httpx.ConnectError
    elif isinstance(cause, aiohttp.ServerTimeoutError | asyncio.TimeoutError):
        kind = httpx.ReadTimeout
    elif isinstance(cause, aiohttp.ServerDisconnectedError):
        kind = httpx.RemoteProtocolError
    elif isinstance(cause, aiohttp.ClientConnectionError | aiohttp.ClientPayloadError):
        kind = httpx.ReadError
    elif isinstance(exc, httpx.TransportError):
        return exc  # proxy and URL errors: httpx-aiohttp's own mapping
    else:
        kind = httpx.ReadError
    return kind(str(exc) or type(cause).__name__)


def make_timeout(timeout: TimeoutTypes) -> httpx.Timeout:
    """A float is the read timeout; connecting keeps its own 5 s budget."""
    if isinstance(timeout, httpx.Timeout):
        return timeout
    return httpx.Timeout(timeout, connect=DEFAULT_CONNECT_TIMEOUT)


@dataclasses.dataclass(frozen=True, repr=False)
class ClientSettings:
    """Everything a client needs besides its pool; the one list of settings.

    `ChatDevic` has a field of the same name for each, and builds these with
    `ClientSettings.from_object(model)`.
    """

    api_key: SecretStr
    base_url: str = _wire.DEFAULT_BASE_URL
    timeout: TimeoutTypes = DEFAULT_TIMEOUT
    max_retries: int = _retry.DEFAULT_MAX_RETRIES
    default_headers: Mapping[str, str] | None = None
    max_response_bytes: int = MAX_RESPONSE_BYTES
    run_timeout: float = DEFAULT_RUN_TIMEOUT
    poll_interval: float = DEFAULT_POLL_INTERVAL
    max_poll_interval: float = DEFAULT_MAX_POLL_INTERVAL
    async_transport: AsyncTransport = "httpcore"

    def __post_init__(self) -> None:
        key = self.api_key
        secret = key.get_secret_value() if isinstance(key, SecretStr) else key
        _wire.validate_api_key(secret)
        object.__setattr__(self, "api_key", SecretStr(secret))
        object.__setattr__(self, "base_url", _wire.validate_base_url(self.base_url))
        if self.max_retries < 0:
            msg = f"max_retries must be >= 0, got {self.max_retries}."
            raise ValueError(msg)
        if self.async_transport not in ("httpcore", "aiohttp"):
            msg = (
                "async_transport must be 'httpcore' or 'aiohttp', got "
                f"{self.async_transport!r}."
            )
            raise ValueError(msg)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The settings' names, in declaration order."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_object(cls, source: Any) -> ClientSettings:
        """The settings read off any object with attributes of the same names."""
        return cls(**{name: getattr(source, name) for name in cls.names()})


class RunCapabilities:
    """What a server showed it can do, remembered by every client of one model.

    `sse` turns false when the stream route is missing or does not stream; later
    runs then poll straight away.
    """

    def __init__(self) -> None:
        self.sse = True


#: The shape of a 2xx parser: `_wire.parse_reply` or `_wire.parse_run_start`.
Parse = Callable[..., "_wire.DevicReply | _wire.RunStarted"]


class _BaseDevicClient:
    """Configuration and the I/O-free halves of a Devic call."""

    def __init__(
        self,
        settings: ClientSettings | None = None,
        /,
        *,
        capabilities: RunCapabilities | None = None,
        **fields: Any,
    ) -> None:
        settings = settings or ClientSettings(**fields)
        self._api_key = settings.api_key
        self.base_url = settings.base_url
        self.timeout = make_timeout(settings.timeout)
        self.max_retries = settings.max_retries
        self.default_headers = dict(settings.default_headers or {})
        self.max_response_bytes = settings.max_response_bytes
        self.run_timeout = settings.run_timeout
        self.poll_interval = settings.poll_interval
        self.max_poll_interval = settings.max_poll_interval
        self.async_transport = settings.async_transport
        self.capabilities = capabilities or RunCapabilities()
        #: Environment proxies are never used for a plain-http loopback base.
        self.trust_env = not _wire.is_plain_loopback(self.base_url)
        #: Stop requests in flight (a closing client waits for them).
        self._stopping = 0
        self._message_urls: dict[str, httpx.URL] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r})"

    @property
    def _secret(self) -> str:
        return self._api_key.get_secret_value()

    def _headers(self) -> dict[str, str]:
        return {
            "User-Agent": f"langchain-devic/{__version__}",
            "Accept-Encoding": _exchange.ACCEPT_ENCODING,
            **self.default_headers,
            **_wire.auth_headers(self._secret),
        }

    @property
    def _exchange_seconds(self) -> float:
        """How long one exchange outside a run may take in all: `timeout`."""
        read = self.timeout.read
        return read if read is not None else self.run_timeout

    def _exchange_deadline(self, deadline: float | None = None) -> float:
        """The deadline of one exchange: `timeout` from now, within `deadline`."""
        own = time.monotonic() + self._exchange_seconds
        return own if deadline is None else min(own, deadline)

    def _request_args(
        self,
        assistant_id: str,
        message: str,
        chat_uuid: str | None,
        context: Mapping[str, Any] | None,
        metadata: Mapping[str, Any] | None,
        extra: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        body = _wire.build_request_body(
            message, chat_uuid, context=context, metadata=metadata, extra=extra
        )
        return {
            "method": "POST",
            "url": self._messages_url(assistant_id),
            "json": body,
            "headers": self._headers(),
            "timeout": self.timeout,
        }

    def _messages_url(self, assistant_id: str) -> httpx.URL:
        """The assistant's messages URL, parsed once per client.

        Parsing a URL string is the costliest step of building a request.
        """
        url = self._message_urls.get(assistant_id)
        if url is None:
            _wire.validate_assistant_id(assistant_id)
            url = httpx.URL(_wire.messages_url(self.base_url, assistant_id))
            if len(self._message_urls) < MAX_CACHED_URLS:
                self._message_urls[assistant_id] = url
        return url

    def _read_args(
        self, url: str, params: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        return {
            "method": "GET",
            "url": url,
            "params": params,
            "headers": self._headers(),
            "timeout": self.timeout,
        }

    def _stream_args(self, url: str) -> dict[str, Any]:
        """A stream request: silent for `SSE_SILENCE` s (or less) means give up."""
        silence = min(SSE_SILENCE, self.timeout.read or SSE_SILENCE)
        return {
            "method": "GET",
            "url": url,
            "params": {"partial": "1"},
            "headers": {**self._headers(), "Accept": "text/event-stream"},
            "timeout": httpx.Timeout(silence, connect=self.timeout.connect),
        }

    def _stop_args(self, assistant_id: str, chat_uuid: str) -> dict[str, Any]:
        return {
            "method": "POST",
            "url": _wire.run_url(self.base_url, assistant_id, chat_uuid, "stop"),
            "headers": self._headers(),
            "timeout": STOP_TIMEOUT,
        }

    def _tool_response_args(
        self, assistant_id: str, chat_uuid: str, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        return {
            "method": "POST",
            "url": _wire.run_url(
                self.base_url, assistant_id, chat_uuid, "tool-response"
            ),
            "json": body,
            "headers": self._headers(),
            "timeout": self.timeout,
        }

    # ----------------------------------------------------------------- answers

    def _api_error(self, answer: _exchange.Answer) -> DevicAPIError:
        return _wire.api_error(
            answer.status_code, answer.headers, answer.body, secret=self._secret
        )

    def _reply_or_error(
        self, answer: _exchange.Answer, sent_chat_uuid: str | None, parse: Parse
    ) -> _wire.DevicReply | _wire.RunStarted | DevicError:
        """Turn an answer into a reply (2xx) or the typed error to raise or retry."""
        if not answer.is_success:
            return self._api_error(answer)
        try:
            reply = parse(
                answer.body, sent_chat_uuid=sent_chat_uuid, secret=self._secret
            )
        except DevicProtocolError as error:
            return error  # a 2xx: the turn ran, but its answer cannot be read
        if sent_chat_uuid is not None and reply.chat_uuid != sent_chat_uuid:
            logger.warning(
                "Devic forked conversation %s into %s; continuing with the new id.",
                sent_chat_uuid,
                reply.chat_uuid,
            )
        if sent_chat_uuid is None and reply.chat_uuid is None:
            logger.warning(
                "Devic's reply carries no conversation id; it cannot be continued."
            )
        return reply

    @staticmethod
    def _outcome_unknown(error: DevicError) -> bool:
        """Whether a failed write may still have landed (no clear refusal came)."""
        if getattr(error, "_sent_nothing", False):
            return False
        if isinstance(error, DevicAPIError):
            return isinstance(error, DevicServerError) and not error.is_retryable
        return not error.is_retryable

    @staticmethod
    def _with_note(error: DevicError, note: str) -> DevicError:
        """`error`, its message extended with `note` (what it means for the caller)."""
        error.message = f"{error.message} {note}"
        error.args = (error.message,)
        return error

    def _explained(self, error: DevicError, chat_uuid: str | None) -> DevicError:
        """A write's final error; a busy chat's says what may hold it and what to do."""
        if isinstance(error, DevicConflictError) and chat_uuid is not None:
            return self._with_note(
                error,
                f"(chat {chat_uuid} is busy: a turn is still running there, or it "
                "waits for the results of client tool calls. Wait and send again, "
                "answer the calls with ToolMessages, or stop the run with "
                "ChatDevic.stop_chat.)",
            )
        return error

    def _unsettled(self, error: DevicError, chat_uuid: str | None) -> DevicError:
        """A write of unknown outcome that cannot be settled: say so, never resend."""
        error.is_retryable = False
        if chat_uuid is None:
            note = (
                "The turn may still have run on Devic, in a new chat whose id is "
                "unknown: check the assistant's chats before sending it again (it "
                "was not retried, so it cannot have been posted twice)."
            )
        else:
            note = (
                f"The turn may still have run on Devic: check conversation "
                f"{chat_uuid} (load_chat) before sending it again (it was not "
                "retried, so it cannot have been posted twice)."
            )
        return self._with_note(error, note)

    def _settle_failed(
        self, error: DevicError, chat_uuid: str, failure: DevicError
    ) -> DevicError:
        error.is_retryable = False
        return self._with_note(
            error,
            f"The turn may still have run on Devic: whether it reached "
            f"conversation {chat_uuid} is unknown (the chat could not be read: "
            f"{failure.message}). Check it (load_chat) before sending it again (it "
            "was not retried, so it cannot have been posted twice).",
        )

    def _settle_answers(
        self,
        error: DevicError,
        chat_uuid: str,
        view: dict[str, Any] | DevicError,
        answered: set[str],
    ) -> None:
        """After a write of unknown outcome: return if the results landed, or raise."""
        if isinstance(view, DevicError):
            raise self._with_note(
                error,
                f"Whether the tool results reached chat {chat_uuid} is unknown (its "
                f"view could not be read: {view.message}). Read the chat before "
                "invoking again: if it still waits, the same messages resend them.",
            ) from None
        if answered & _wire.pending_call_ids(view):
            raise self._with_note(
                error,
                f"The tool results were not delivered to chat {chat_uuid} (it "
                "still waits for them). Invoking again with the same messages "
                "resends them.",
            ) from None
        logger.info("Tool results for chat %s landed after all.", chat_uuid)

    @staticmethod
    def _settled_send(
        chat: Mapping[str, Any], chat_uuid: str, message: str, parse: Parse
    ) -> _wire.DevicReply | _wire.RunStarted | None:
        """What a chat says of a send of unknown outcome, as far as it can say.

        `None`: the message is not the chat's last user message, so it was not
        processed. A started run for an async send; for the one call, the
        reply when the chat already holds it (else the caller follows the run).
        """
        turn = _wire.turn_after(chat, message)
        if turn is None:
            return None
        if parse is not _wire.parse_reply:
            return _wire.RunStarted(chat_uuid)
        text = _wire.turn_text(turn)
        if text is None:
            return _wire.RunStarted(chat_uuid)  # still running: follow it
        timestamp = _wire.iso_timestamp(turn[-1].get("timestamp"))
        return _wire.DevicReply(
            text=text,
            chat_uuid=chat_uuid,
            timestamp=timestamp,
            extra={"recovered": True},
        )

    # ----------------------------------------------------------------- failures

    def _write_error(
        self, failure: _exchange.Failure, chat_uuid: str | None
    ) -> DevicError:
        """The typed error of a write that failed in the door (cause: text only)."""
        error = self._describe_write_failure(failure)
        error.__cause__ = failure.cause
        return error

    def _describe_write_failure(self, failure: _exchange.Failure) -> DevicError:
        where = f"Devic at {self.base_url}"
        detail = failure.detail
        if failure.kind == "connect":
            if detail.startswith(("ConnectTimeout", "PoolTimeout")):
                return DevicConnectTimeoutError(
                    f"Timed out connecting to {where} ({detail}); nothing was sent."
                )
            return DevicConnectError(
                f"Could not connect to {where} ({detail}); nothing was sent."
            )
        if failure.kind == "unsendable":
            error: DevicError = DevicConnectionError(
                f"The request could not be sent to {where} ({detail}); nothing was "
                "sent. Check default_headers and the message for characters HTTP "
                "cannot carry.",
                is_retryable=False,
            )
            error._sent_nothing = True  # type: ignore[attr-defined]
            return error
        status = failure.status_code
        if status is not None and not 200 <= status < 300:
            return _wire.api_error(
                status, {}, detail.encode(), secret=self._secret, retry_after=None
            )
        if failure.kind == "too_large":
            return DevicProtocolError(detail)
        if failure.kind == "undecodable":
            return DevicProtocolError(f"Devic sent {detail}.")
        if failure.kind in ("timeout", "deadline"):
            read = self.timeout.read
            budget = f"within {read:g} s" if read is not None else "in time"
            return DevicTimeoutError(
                f"No answer from {where} {budget} ({detail}). Raise `timeout` for "
                "assistants that run long tools.",
                is_retryable=False,
            )
        return DevicConnectionError(
            f"The connection to {where} failed after the message was sent ({detail}).",
            is_retryable=False,
        )

    def _read_error(self, failure: _exchange.Failure) -> DevicError:
        """The typed error of a read that failed in the door (cause: text only)."""
        error = self._describe_read_failure(failure)
        error.__cause__ = failure.cause
        return error

    def _describe_read_failure(self, failure: _exchange.Failure) -> DevicError:
        where = f"Devic at {self.base_url}"
        if failure.kind == "connect":
            return DevicConnectError(f"Could not read from {where} ({failure.detail}).")
        if failure.kind == "too_large":
            return DevicProtocolError(failure.detail)
        if failure.kind == "undecodable":
            return DevicProtocolError(f"Devic sent {failure.detail}.")
        if failure.kind == "deadline":
            return DevicTimeoutError(
                f"Reading from {where} did not end in time ({failure.detail}).",
                is_retryable=False,
            )
        return DevicConnectionError(
            f"Reading from {where} failed ({failure.detail}).", is_retryable=True
        )

    def _deadline_passed(self, tracker: _runs.RunTracker) -> DevicTimeoutError:
        return DevicTimeoutError(
            f"Followed the run in chat {tracker.chat_uuid} for run_timeout="
            f"{self.run_timeout:g} s without its end (last status: "
            f"{tracker.status}). It may still finish on Devic: read the chat "
            "(load_chat) before sending the message again, or raise run_timeout.",
            is_retryable=False,
        )

    def _follow_error(
        self, error: DevicError, tracker: _runs.RunTracker, deadline: float
    ) -> DevicError:
        """A read of a followed run failed for good: say what it means."""
        if time.monotonic() >= deadline:
            return self._deadline_passed(tracker)
        if isinstance(error, DevicNotFoundError) and not tracker.view:
            return DevicNotFoundError(
                f"{self.base_url} does not serve platform runs (its run routes "
                "answer 404 for a chat it just created). Use the platform base URL "
                "(ending in /api/v1), or run_mode='sync' for the one-call API.",
                status_code=404,
                code=error.code,
                body=error.body,
            )
        return error

    def _is_event_stream(self, status_code: int, headers: httpx.Headers) -> bool:
        """Whether a stream answer streams; if the route is missing, remember it."""
        kind = headers.get("content-type", "")
        success = 200 <= status_code < 300
        if success and kind.startswith("text/event-stream"):
            return True
        if status_code in {404, 405, 406} or success:
            logger.info("Devic's run stream is not available here; polling instead.")
            self.capabilities.sse = False
        return False

    def _stream_gave_out(
        self, failure: _exchange.Failure, tracker: _runs.RunTracker
    ) -> DevicError | None:
        """A stream's failure: an error to raise, or `None` to poll instead."""
        if failure.kind == "deadline":
            return self._deadline_passed(tracker)
        if failure.kind == "too_large":
            return DevicProtocolError(f"{failure.detail} (chat {tracker.chat_uuid})")
        if failure.kind == "undecodable":
            return DevicProtocolError(
                f"Devic's run stream for chat {tracker.chat_uuid} sent "
                f"{failure.detail}."
            )
        logger.info("Devic's run stream went silent or broke; polling instead.")
        return None

    def _read_wait(
        self, error: DevicError, attempt: int, deadline: float, in_run: bool
    ) -> float | None:
        return _retry.next_read_wait(
            error,
            attempt,
            deadline - time.monotonic(),
            max_retries=self.max_retries,
            persistent=in_run and not isinstance(error, _NOTHING_SENT),
        )

    @staticmethod
    def _log_attempt(attempt: int, wait: float, error: DevicError) -> None:
        logger.info(
            "Retrying Devic call (attempt %d) in %.2f s after %s.",
            attempt + 2,
            wait,
            type(error).__name__,
        )


_NOTHING_SENT = (DevicConnectError, DevicConnectTimeoutError)
#: Settles a write of unknown outcome: the reply or started run if it landed,
#: `None` if it certainly did not; raises `DevicError` when it cannot tell.
Settle = Callable[[], "_wire.DevicReply | _wire.RunStarted | None"]
ASettle = Callable[[], Awaitable["_wire.DevicReply | _wire.RunStarted | None"]]


class DevicClient(_BaseDevicClient):
    """Synchronous Devic client with one reusable connection pool."""

    def __init__(
        self,
        settings: ClientSettings | None = None,
        /,
        *,
        http_client: httpx.Client | None = None,
        **fields: Any,
    ) -> None:
        super().__init__(settings, **fields)
        self._http = http_client
        self._owns_http = http_client is None

    @property
    def http(self) -> httpx.Client:
        """The httpx client, built on first use and reused afterwards."""
        if self._http is None:
            self._http = httpx.Client(
                limits=DEFAULT_LIMITS,
                follow_redirects=False,
                verify=shared_ssl_context(),
                trust_env=self.trust_env,
            )
        return self._http

    def close(self) -> None:
        """Close the connection pool if this client built it."""
        if self._owns_http and self._http is not None:
            self._http.close()
            self._http = None

    def _exchange(
        self, request: httpx.Request, deadline: float, *, read_body: bool = True
    ) -> _exchange.Answer:
        return _exchange.send(
            self.http,
            request,
            deadline=deadline,
            cap=self.max_response_bytes,
            secret=self._secret,
            read_body=read_body,
        )

    # ------------------------------------------------------------------ writes

    def send_message(
        self,
        assistant_id: str,
        message: str,
        *,
        chat_uuid: str | None = None,
        context: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> _wire.DevicReply:
        """Send one turn and wait for the reply (the seed's one call)."""
        args = self._request_args(
            assistant_id, message, chat_uuid, context, metadata, extra
        )
        request = self.http.build_request(**args)
        parse = _wire.parse_reply
        settle = self._settler(assistant_id, chat_uuid, message, parse)
        reply = self._deliver(request, chat_uuid, parse, None, settle)
        if isinstance(reply, _wire.RunStarted):  # it ran, and is still running
            return self._finish_turn(assistant_id, reply.chat_uuid, message)
        return reply

    def start_run(
        self,
        assistant_id: str,
        message: str,
        *,
        chat_uuid: str | None = None,
        context: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        extra: Mapping[str, Any] | None = None,
        deadline: float | None = None,
    ) -> _wire.RunStarted | _wire.DevicReply:
        """Start a platform run (`?async=true`); a server may answer it at once."""
        args = self._request_args(
            assistant_id, message, chat_uuid, context, metadata, extra
        )
        args["params"] = {"async": "true"}
        request = self.http.build_request(**args)
        parse = _wire.parse_run_start
        settle = self._settler(assistant_id, chat_uuid, message, parse)
        return self._deliver(request, chat_uuid, parse, deadline, settle)

    def _settler(
        self, assistant_id: str, chat_uuid: str | None, message: str, parse: Parse
    ) -> Settle | None:
        if chat_uuid is None:
            return None

        def settle() -> _wire.DevicReply | _wire.RunStarted | None:
            chat = self.read_chat(assistant_id, chat_uuid)
            return self._settled_send(chat, chat_uuid, message, parse)

        return settle

    def _finish_turn(
        self, assistant_id: str, chat_uuid: str, message: str
    ) -> _wire.DevicReply:
        """The reply of a turn found running after a send of unknown outcome."""
        tracker = _runs.RunTracker(chat_uuid, message)
        deadline = time.monotonic() + self.run_timeout
        for _ in self._follow(assistant_id, tracker, deadline, sse=False):
            pass
        return _wire.DevicReply(
            text=tracker.text,
            chat_uuid=chat_uuid,
            timestamp=tracker.timestamp,
            extra={"recovered": True},
        )

    def _deliver(
        self,
        request: httpx.Request,
        chat_uuid: str | None,
        parse: Parse,
        deadline: float | None,
        settle: Settle | None,
    ) -> _wire.DevicReply | _wire.RunStarted:
        """Send a write; retry only what Devic certainly did not process.

        An unknown outcome (a 502 or 504, or a failure after the request was
        written) is settled by reading the chat where its id is known: the
        message there means it landed; not there means it may be sent again.
        """
        attempt = 0
        while True:
            outcome: _wire.DevicReply | _wire.RunStarted | DevicError
            try:
                answer = self._exchange(request, self._exchange_deadline(deadline))
                outcome = self._reply_or_error(answer, chat_uuid, parse)
            except _exchange.Failure as failure:
                outcome = self._write_error(failure, chat_uuid)
            if not isinstance(outcome, DevicError):
                return outcome
            if self._outcome_unknown(outcome):
                if settle is None or chat_uuid is None:
                    raise self._unsettled(outcome, chat_uuid)
                settled: _wire.DevicReply | _wire.RunStarted | DevicError | None
                try:
                    settled = settle()
                except DevicError as failure:
                    settled = failure
                if isinstance(settled, DevicError):
                    raise self._settle_failed(outcome, chat_uuid, settled)
                if settled is not None:
                    logger.info("The turn in chat %s landed after all.", chat_uuid)
                    return settled
                outcome.is_retryable = True  # certainly not processed
            wait = _retry.next_wait(outcome, attempt, self.max_retries)
            if wait is None:
                raise self._explained(outcome, chat_uuid)
            self._log_attempt(attempt, wait, outcome)
            _sleep(wait)
            attempt += 1

    def answer_tools(
        self,
        assistant_id: str,
        chat_uuid: str,
        responses: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        """Post the results of the client tool calls a run waits for.

        Retried like any write (only what Devic certainly did not process). A
        failure whose outcome is unknown is settled by reading the realtime
        view: the calls no longer pending means the results landed.
        """
        body = _wire.tool_response_body(responses, tools)
        request = self.http.build_request(
            **self._tool_response_args(assistant_id, chat_uuid, body)
        )
        try:
            self._deliver(request, chat_uuid, _wire.parse_tool_ack, None, None)
        except DevicError as error:
            if not self._outcome_unknown(error):
                raise
            url = _wire.run_url(self.base_url, assistant_id, chat_uuid, "realtime")
            view: dict[str, Any] | DevicError
            try:
                raw = self.read(url, deadline=time.monotonic() + TOTALS_BUDGET)
                view = _wire.parse_view(raw, secret=self._secret)
            except DevicError as failure:
                view = failure
            answered = {str(r["tool_call_id"]) for r in responses}
            self._settle_answers(error, chat_uuid, view, answered)

    def stop_run(
        self, assistant_id: str, chat_uuid: str, *, strict: bool = False
    ) -> bool:
        """Ask Devic to stop a run: once, within `STOP_SECONDS`, never retried.

        Returns whether Devic accepted the stop; its answer's body is not read.
        The best-effort stop (`strict=False`) never raises; a stop the caller
        asked for (`strict=True`) raises a typed error when Devic is not there.
        """
        self._stopping += 1
        try:
            request = self.http.build_request(
                **self._stop_args(assistant_id, chat_uuid)
            )
            answer = self._exchange(
                request, time.monotonic() + STOP_SECONDS, read_body=False
            )
            logger.info(
                "Asked Devic to stop chat %s (%s).", chat_uuid, answer.status_code
            )
        except _exchange.Failure as failure:
            if strict:
                raise self._read_error(failure) from None
            logger.warning(
                "Could not ask Devic to stop chat %s: %s", chat_uuid, failure
            )
            return False
        except Exception as exc:  # best effort: never raise from a stop
            logger.warning("Could not ask Devic to stop chat %s: %s", chat_uuid, exc)
            return False
        finally:
            self._stopping -= 1
        return answer.is_success

    # ------------------------------------------------------------------- reads

    def read(
        self,
        url: str,
        *,
        deadline: float | None = None,
        params: Mapping[str, str] | None = None,
        in_run: bool = False,
    ) -> bytes:
        """GET a body; failures that may pass are retried.

        Reads change nothing on Devic, so a dropped connection or a 5xx is
        retried too; an answer that will not change (401, 403, 404) is raised.
        Outside a run a read gets `max_retries` retries within `timeout`; in a
        followed run it goes on until `deadline` (a refused connection still
        counts against `max_retries`).
        """
        deadline = deadline if deadline is not None else self._exchange_deadline()
        attempt = 0
        while True:
            outcome: bytes | DevicError
            request = self.http.build_request(**self._read_args(url, params))
            try:
                answer = self._exchange(request, deadline)
                outcome = answer.body if answer.is_success else self._api_error(answer)
            except _exchange.Failure as failure:
                outcome = self._read_error(failure)
            if isinstance(outcome, bytes):
                return outcome
            wait = self._read_wait(outcome, attempt, deadline, in_run)
            if wait is None:
                raise outcome
            self._log_attempt(attempt, wait, outcome)
            _sleep(wait)
            attempt += 1

    def read_chat(
        self, assistant_id: str, chat_uuid: str, *, deadline: float | None = None
    ) -> dict[str, Any]:
        """A chat's history, as Devic stores it."""
        url = _wire.run_url(self.base_url, assistant_id, chat_uuid)
        return _wire.parse_chat(self.read(url, deadline=deadline), secret=self._secret)

    def list_chats(
        self, assistant_id: str, params: Mapping[str, str] | None = None
    ) -> list[dict[str, Any]]:
        """The assistant's chats, newest first."""
        url = _wire.chats_url(self.base_url, assistant_id)
        return _wire.parse_chat_list(self.read(url, params=params), secret=self._secret)

    # ---------------------------------------------------------------- following

    def follow_run(
        self,
        assistant_id: str,
        tracker: _runs.RunTracker,
        deadline: float | None = None,
    ) -> Iterator[_runs.Observation]:
        """Each observation of the run until it ends, by `deadline` at the latest.

        If the caller stops following (an interrupt, a cancellation, a stream
        closed early) Devic is asked once to stop the run.
        """
        if deadline is None:
            deadline = time.monotonic() + self.run_timeout
        try:
            yield from self._follow(assistant_id, tracker, deadline)
        except (KeyboardInterrupt, GeneratorExit, asyncio.CancelledError):
            self.stop_run(assistant_id, tracker.chat_uuid)
            raise

    def _follow(
        self,
        assistant_id: str,
        tracker: _runs.RunTracker,
        deadline: float,
        *,
        sse: bool = True,
    ) -> Iterator[_runs.Observation]:
        """The one follow loop: views by stream or by polling, judged alike."""
        schedule = _runs.PollSchedule(self.poll_interval, self.max_poll_interval)
        for view, polled in self._views(assistant_id, tracker, deadline, sse=sse):
            observation = tracker.observe(view)
            if observation.error is not None:
                raise observation.error
            yield observation
            if observation.done:
                return
            if polled:
                wait = schedule.next_wait(observation)
                _sleep(min(wait, max(deadline - time.monotonic(), 0.0)))

    def _views(
        self,
        assistant_id: str,
        tracker: _runs.RunTracker,
        deadline: float,
        *,
        sse: bool,
    ) -> Iterator[tuple[dict[str, Any], bool]]:
        """Realtime views with a status: from the stream, then from polling."""
        if sse and self.capabilities.sse:
            for view in self._streamed_views(assistant_id, tracker, deadline):
                yield view, False
        url = _wire.run_url(self.base_url, assistant_id, tracker.chat_uuid, "realtime")
        while True:
            if time.monotonic() >= deadline:
                raise self._deadline_passed(tracker)
            try:
                body = self.read(url, deadline=deadline, in_run=True)
            except DevicError as error:
                raise self._follow_error(error, tracker, deadline) from None
            yield _wire.parse_view(body, secret=self._secret), True

    def _streamed_views(
        self, assistant_id: str, tracker: _runs.RunTracker, deadline: float
    ) -> Iterator[dict[str, Any]]:
        url = _wire.run_url(self.base_url, assistant_id, tracker.chat_uuid, "stream")
        request = self.http.build_request(**self._stream_args(url))
        error: DevicError | None = None
        try:
            with _exchange.open_stream(
                self.http,
                request,
                deadline=deadline,
                cap=self.max_response_bytes,
                secret=self._secret,
            ) as stream:
                if not self._is_event_stream(stream.status_code, stream.headers):
                    return
                decoder = _wire.SSEDecoder()
                view: dict[str, Any] = {}
                for line in stream.lines:
                    event = decoder.feed(line)
                    if event is not None:
                        view = _wire.apply_event(view, event)
                        if "status" in view:
                            yield view
        except _exchange.Failure as failure:
            error = self._stream_gave_out(failure, tracker)
        if error is not None:
            raise error

    def wait_idle(self, assistant_id: str, chat_uuid: str, deadline: float) -> None:
        """Read the chat until its current run ends (or waits for a client).

        Only reads, so it never disturbs the run. It gives up quietly at
        `deadline`, when the run fails or the chat cannot be read: the caller's
        next write finds out how the chat stands.
        """
        tracker = _runs.RunTracker(chat_uuid)
        with contextlib.suppress(DevicError):
            for _ in self._follow(assistant_id, tracker, deadline, sse=False):
                pass

    def chat_totals(self, assistant_id: str, chat_uuid: str) -> tuple[int, int] | None:
        """The chat's token totals so far, or `None` if the history cannot say.

        One history read, for usage only: a server without the history route, or
        one that keeps failing for `TOTALS_BUDGET` s, costs the usage, never the
        turn.
        """
        deadline = self._exchange_deadline(time.monotonic() + TOTALS_BUDGET)
        try:
            chat = self.read_chat(assistant_id, chat_uuid, deadline=deadline)
        except DevicError as error:
            logger.warning("No token totals for chat %s: %s", chat_uuid, error)
            return None
        return _wire.chat_totals(chat)


class AsyncDevicClient(_BaseDevicClient):
    """Asynchronous Devic client; mirrors `DevicClient` line for line."""

    def __init__(
        self,
        settings: ClientSettings | None = None,
        /,
        *,
        http_client: httpx.AsyncClient | None = None,
        **fields: Any,
    ) -> None:
        super().__init__(settings, **fields)
        self._http = http_client
        self._owns_http = http_client is None

    @property
    def http(self) -> httpx.AsyncClient:
        """The httpx client, built on first use and reused afterwards."""
        if self._http is None:
            self._http = build_async_http(self.async_transport, self.trust_env)
        return self._http

    async def quiesce(self) -> None:
        """Let stop requests started by other finalizers finish (5 s at most).

        When a loop shuts down it finalizes every async generator at once: a
        stream closed early (which sends a stop) and this client's own closer.
        Yield first so the others start, then wait for their stops.
        """
        for _ in range(3):
            await _asleep(0)
        deadline = time.monotonic() + STOP_SECONDS
        while self._stopping and time.monotonic() < deadline:
            await _asleep(0.01)

    async def aclose(self) -> None:
        """Close the connection pool if this client built it."""
        if self._owns_http and self._http is not None:
            await self._http.aclose()
            self._http = None

    async def _exchange(
        self, request: httpx.Request, deadline: float, *, read_body: bool = True
    ) -> _exchange.Answer:
        return await _exchange.asend(
            self.http,
            request,
            deadline=deadline,
            cap=self.max_response_bytes,
            secret=self._secret,
            read_body=read_body,
        )

    # ------------------------------------------------------------------ writes

    async def send_message(
        self,
        assistant_id: str,
        message: str,
        *,
        chat_uuid: str | None = None,
        context: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> _wire.DevicReply:
        """Send one turn and wait for the reply (the seed's one call)."""
        args = self._request_args(
            assistant_id, message, chat_uuid, context, metadata, extra
        )
        request = self.http.build_request(**args)
        parse = _wire.parse_reply
        settle = self._settler(assistant_id, chat_uuid, message, parse)
        reply = await self._deliver(request, chat_uuid, parse, None, settle)
        if isinstance(reply, _wire.RunStarted):  # it ran, and is still running
            return await self._finish_turn(assistant_id, reply.chat_uuid, message)
        return reply

    async def start_run(
        self,
        assistant_id: str,
        message: str,
        *,
        chat_uuid: str | None = None,
        context: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        extra: Mapping[str, Any] | None = None,
        deadline: float | None = None,
    ) -> _wire.RunStarted | _wire.DevicReply:
        """Start a platform run (`?async=true`); a server may answer it at once."""
        args = self._request_args(
            assistant_id, message, chat_uuid, context, metadata, extra
        )
        args["params"] = {"async": "true"}
        request = self.http.build_request(**args)
        parse = _wire.parse_run_start
        settle = self._settler(assistant_id, chat_uuid, message, parse)
        return await self._deliver(request, chat_uuid, parse, deadline, settle)

    def _settler(
        self, assistant_id: str, chat_uuid: str | None, message: str, parse: Parse
    ) -> ASettle | None:
        if chat_uuid is None:
            return None

        async def settle() -> _wire.DevicReply | _wire.RunStarted | None:
            chat = await self.read_chat(assistant_id, chat_uuid)
            return self._settled_send(chat, chat_uuid, message, parse)

        return settle

    async def _finish_turn(
        self, assistant_id: str, chat_uuid: str, message: str
    ) -> _wire.DevicReply:
        """The reply of a turn found running after a send of unknown outcome."""
        tracker = _runs.RunTracker(chat_uuid, message)
        deadline = time.monotonic() + self.run_timeout
        async for _ in self._follow(assistant_id, tracker, deadline, sse=False):
            pass
        return _wire.DevicReply(
            text=tracker.text,
            chat_uuid=chat_uuid,
            timestamp=tracker.timestamp,
            extra={"recovered": True},
        )

    async def _deliver(
        self,
        request: httpx.Request,
        chat_uuid: str | None,
        parse: Parse,
        deadline: float | None,
        settle: ASettle | None,
    ) -> _wire.DevicReply | _wire.RunStarted:
        """Send a write; retry only what Devic certainly did not process.

        An unknown outcome (a 502 or 504, or a failure after the request was
        written) is settled by reading the chat where its id is known: the
        message there means it landed; not there means it may be sent again.
        """
        attempt = 0
        while True:
            outcome: _wire.DevicReply | _wire.RunStarted | DevicError
            try:
                answer = await self._exchange(
                    request, self._exchange_deadline(deadline)
                )
                outcome = self._reply_or_error(answer, chat_uuid, parse)
            except _exchange.Failure as failure:
                outcome = self._write_error(failure, chat_uuid)
            if not isinstance(outcome, DevicError):
                return outcome
            if self._outcome_unknown(outcome):
                if settle is None or chat_uuid is None:
                    raise self._unsettled(outcome, chat_uuid)
                settled: _wire.DevicReply | _wire.RunStarted | DevicError | None
                try:
                    settled = await settle()
                except DevicError as failure:
                    settled = failure
                if isinstance(settled, DevicError):
                    raise self._settle_failed(outcome, chat_uuid, settled)
                if settled is not None:
                    logger.info("The turn in chat %s landed after all.", chat_uuid)
                    return settled
                outcome.is_retryable = True  # certainly not processed
            wait = _retry.next_wait(outcome, attempt, self.max_retries)
            if wait is None:
                raise self._explained(outcome, chat_uuid)
            self._log_attempt(attempt, wait, outcome)
            await _asleep(wait)
            attempt += 1

    async def answer_tools(
        self,
        assistant_id: str,
        chat_uuid: str,
        responses: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        """Post the results of the client tool calls a run waits for.

        Retried like any write (only what Devic certainly did not process). A
        failure whose outcome is unknown is settled by reading the realtime
        view: the calls no longer pending means the results landed.
        """
        body = _wire.tool_response_body(responses, tools)
        request = self.http.build_request(
            **self._tool_response_args(assistant_id, chat_uuid, body)
        )
        try:
            await self._deliver(request, chat_uuid, _wire.parse_tool_ack, None, None)
        except DevicError as error:
            if not self._outcome_unknown(error):
                raise
            url = _wire.run_url(self.base_url, assistant_id, chat_uuid, "realtime")
            view: dict[str, Any] | DevicError
            try:
                raw = await self.read(url, deadline=time.monotonic() + TOTALS_BUDGET)
                view = _wire.parse_view(raw, secret=self._secret)
            except DevicError as failure:
                view = failure
            answered = {str(r["tool_call_id"]) for r in responses}
            self._settle_answers(error, chat_uuid, view, answered)

    async def stop_run(
        self, assistant_id: str, chat_uuid: str, *, strict: bool = False
    ) -> bool:
        """Ask Devic to stop a run: once, within `STOP_SECONDS`, never retried.

        Returns whether Devic accepted the stop; its answer's body is not read.
        The best-effort stop (`strict=False`) never raises; a stop the caller
        asked for (`strict=True`) raises a typed error when Devic is not there.
        """
        self._stopping += 1
        try:
            request = self.http.build_request(
                **self._stop_args(assistant_id, chat_uuid)
            )
            answer = await self._exchange(
                request, time.monotonic() + STOP_SECONDS, read_body=False
            )
            logger.info(
                "Asked Devic to stop chat %s (%s).", chat_uuid, answer.status_code
            )
        except _exchange.Failure as failure:
            if strict:
                raise self._read_error(failure) from None
            logger.warning(
                "Could not ask Devic to stop chat %s: %s", chat_uuid, failure
            )
            return False
        except Exception as exc:  # best effort: never raise from a stop
            logger.warning("Could not ask Devic to stop chat %s: %s", chat_uuid, exc)
            return False
        finally:
            self._stopping -= 1
        return answer.is_success

    # ------------------------------------------------------------------- reads

    async def read(
        self,
        url: str,
        *,
        deadline: float | None = None,
        params: Mapping[str, str] | None = None,
        in_run: bool = False,
    ) -> bytes:
        """GET a body; failures that may pass are retried.

        Reads change nothing on Devic, so a dropped connection or a 5xx is
        retried too; an answer that will not change (401, 403, 404) is raised.
        Outside a run a read gets `max_retries` retries within `timeout`; in a
        followed run it goes on until `deadline` (a refused connection still
        counts against `max_retries`).
        """
        deadline = deadline if deadline is not None else self._exchange_deadline()
        attempt = 0
        while True:
            outcome: bytes | DevicError
            request = self.http.build_request(**self._read_args(url, params))
            try:
                answer = await self._exchange(request, deadline)
                outcome = answer.body if answer.is_success else self._api_error(answer)
            except _exchange.Failure as failure:
                outcome = self._read_error(failure)
            if isinstance(outcome, bytes):
                return outcome
            wait = self._read_wait(outcome, attempt, deadline, in_run)
            if wait is None:
                raise outcome
            self._log_attempt(attempt, wait, outcome)
            await _asleep(wait)
            attempt += 1

    async def read_chat(
        self, assistant_id: str, chat_uuid: str, *, deadline: float | None = None
    ) -> dict[str, Any]:
        """A chat's history, as Devic stores it."""
        url = _wire.run_url(self.base_url, assistant_id, chat_uuid)
        return _wire.parse_chat(
            await self.read(url, deadline=deadline), secret=self._secret
        )

    async def list_chats(
        self, assistant_id: str, params: Mapping[str, str] | None = None
    ) -> list[dict[str, Any]]:
        """The assistant's chats, newest first."""
        url = _wire.chats_url(self.base_url, assistant_id)
        return _wire.parse_chat_list(
            await self.read(url, params=params), secret=self._secret
        )

    # ---------------------------------------------------------------- following

    async def follow_run(
        self,
        assistant_id: str,
        tracker: _runs.RunTracker,
        deadline: float | None = None,
    ) -> AsyncIterator[_runs.Observation]:
        """Each observation of the run until it ends, by `deadline` at the latest.

        If the caller stops following (an interrupt, a cancellation, a stream
        closed early) Devic is asked once to stop the run.
        """
        if deadline is None:
            deadline = time.monotonic() + self.run_timeout
        try:
            async for observation in self._follow(assistant_id, tracker, deadline):
                yield observation
        except (KeyboardInterrupt, GeneratorExit, asyncio.CancelledError):
            await self.stop_run(assistant_id, tracker.chat_uuid)
            raise

    async def _follow(
        self,
        assistant_id: str,
        tracker: _runs.RunTracker,
        deadline: float,
        *,
        sse: bool = True,
    ) -> AsyncIterator[_runs.Observation]:
        """The one follow loop: views by stream or by polling, judged alike."""
        schedule = _runs.PollSchedule(self.poll_interval, self.max_poll_interval)
        views = self._views(assistant_id, tracker, deadline, sse=sse)
        try:
            async for view, polled in views:
                observation = tracker.observe(view)
                if observation.error is not None:
                    raise observation.error
                yield observation
                if observation.done:
                    return
                if polled:
                    wait = schedule.next_wait(observation)
                    await _asleep(min(wait, max(deadline - time.monotonic(), 0.0)))
        finally:
            await views.aclose()

    async def _views(
        self,
        assistant_id: str,
        tracker: _runs.RunTracker,
        deadline: float,
        *,
        sse: bool,
    ) -> AsyncGenerator[tuple[dict[str, Any], bool], None]:
        """Realtime views with a status: from the stream, then from polling."""
        if sse and self.capabilities.sse:
            streamed = self._streamed_views(assistant_id, tracker, deadline)
            try:
                async for view in streamed:
                    yield view, False
            finally:
                await cast(AsyncGenerator[Any, None], streamed).aclose()
        url = _wire.run_url(self.base_url, assistant_id, tracker.chat_uuid, "realtime")
        while True:
            if time.monotonic() >= deadline:
                raise self._deadline_passed(tracker)
            try:
                body = await self.read(url, deadline=deadline, in_run=True)
            except DevicError as error:
                raise self._follow_error(error, tracker, deadline) from None
            yield _wire.parse_view(body, secret=self._secret), True

    async def _streamed_views(
        self, assistant_id: str, tracker: _runs.RunTracker, deadline: float
    ) -> AsyncIterator[dict[str, Any]]:
        url = _wire.run_url(self.base_url, assistant_id, tracker.chat_uuid, "stream")
        request = self.http.build_request(**self._stream_args(url))
        error: DevicError | None = None
        try:
            async with _exchange.aopen_stream(
                self.http,
                request,
                deadline=deadline,
                cap=self.max_response_bytes,
                secret=self._secret,
            ) as stream:
                if not self._is_event_stream(stream.status_code, stream.headers):
                    return
                decoder = _wire.SSEDecoder()
                view: dict[str, Any] = {}
                async for line in stream.lines:
                    event = decoder.feed(line)
                    if event is not None:
                        view = _wire.apply_event(view, event)
                        if "status" in view:
                            yield view
        except _exchange.Failure as failure:
            error = self._stream_gave_out(failure, tracker)
        if error is not None:
            raise error

    async def wait_idle(
        self, assistant_id: str, chat_uuid: str, deadline: float
    ) -> None:
        """Read the chat until its current run ends (or waits for a client).

        Only reads, so it never disturbs the run. It gives up quietly at
        `deadline`, when the run fails or the chat cannot be read: the caller's
        next write finds out how the chat stands.
        """
        tracker = _runs.RunTracker(chat_uuid)
        with contextlib.suppress(DevicError):
            async for _ in self._follow(assistant_id, tracker, deadline, sse=False):
                pass

    async def chat_totals(
        self, assistant_id: str, chat_uuid: str
    ) -> tuple[int, int] | None:
        """The chat's token totals so far, or `None` if the history cannot say.

        One history read, for usage only: a server without the history route, or
        one that keeps failing for `TOTALS_BUDGET` s, costs the usage, never the
        turn.
        """
        deadline = self._exchange_deadline(time.monotonic() + TOTALS_BUDGET)
        try:
            chat = await self.read_chat(assistant_id, chat_uuid, deadline=deadline)
        except DevicError as error:
            logger.warning("No token totals for chat %s: %s", chat_uuid, error)
            return None
        return _wire.chat_totals(chat)


# ------------------------------------------------------------------------ pools


class _LoopClient:
    """The async client of one event loop, closed when that loop shuts down.

    `asyncio.run` (and `loop.shutdown_asyncgens()`) finalize every async
    generator started in the loop, inside the still-running loop: the one hook a
    loop offers before it closes. `closer` is such a generator, advanced to its
    first `yield` at once (it awaits nothing before it); its end closes the
    client. `discard()` ends it without I/O, for a client that must be dropped
    from outside its loop.
    """

    def __init__(
        self, client: AsyncDevicClient, on_close: Callable[[_LoopClient], None]
    ) -> None:
        self.client = client
        self._discarded = False
        self._on_close = on_close
        self._closer = self._close_when_finalized()
        self._drive(self._closer.__anext__())

    async def _close_when_finalized(self) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            if not self._discarded:
                self._on_close(self)
                await self.client.quiesce()
                await self.client.aclose()

    def discard(self) -> None:
        """End the closer without touching the client (its loop is gone)."""
        self._discarded = True
        self._drive(self._closer.aclose())

    @staticmethod
    def _drive(step: Awaitable[Any]) -> None:
        """Run an awaitable that never suspends to its end, synchronously."""
        with contextlib.suppress(StopIteration, StopAsyncIteration):
            cast(Coroutine[Any, Any, Any], step).send(None)


class ClientPools:
    """The clients of one `ChatDevic`, each bound to where its sockets may be used.

    - One sync client per process: after `fork` the child abandons the parent's
      clients without closing them (closing could send a TLS close on a socket
      the parent still uses) and builds its own on first use.
    - One async client per process and event loop. Under `asyncio.run` it is
      closed while the loop shuts down; a loop closed some other way has its
      client dropped at the next async call from any loop (Python then closes
      the sockets), so at most one stale client exists at a time.
    - Never pickled or copied: copies and unpickled models build new ones.

    User-supplied httpx clients are used as given and never closed here.
    """

    def __init__(
        self,
        settings: ClientSettings,
        http_client: httpx.Client | None = None,
        http_async_client: httpx.AsyncClient | None = None,
    ) -> None:
        self.settings = settings
        self._user_sync = http_client
        self._user_async = http_async_client
        self._forked = False
        self.capabilities = RunCapabilities()
        self._forget()
        _LIVE_POOLS.add(self)

    def _forget(self) -> None:
        """Start with no client and a fresh lock."""
        self._lock = threading.Lock()
        self._sync: DevicClient | None = None
        self._async: dict[asyncio.AbstractEventLoop, _LoopClient] = {}

    def __reduce__(self) -> Any:
        msg = "ClientPools hold sockets and locks; pickle the ChatDevic settings."
        raise TypeError(msg)

    def __len__(self) -> int:
        """How many clients are alive (for tests and diagnostics)."""
        return (self._sync is not None) + len(self._async)

    def async_clients(self) -> int:
        """How many event loops have a live async client here."""
        return len(self._async)

    def sync_client(self) -> DevicClient:
        """The sync client of this process, built on first use."""
        client = self._sync
        if client is None:
            with self._lock:
                client = self._sync
                if client is None:
                    self._warn_if_inherited(self._user_sync)
                    client = DevicClient(
                        self.settings,
                        http_client=self._user_sync,
                        capabilities=self.capabilities,
                    )
                    self._sync = client
        return client

    def async_client(self) -> AsyncDevicClient:
        """The async client of the running event loop, built on first use."""
        loop = asyncio.get_running_loop()
        with self._lock:
            entry = self._async.get(loop)
            if entry is None:
                self._drop_closed_loops()
                self._warn_if_inherited(self._user_async)
                client = AsyncDevicClient(
                    self.settings,
                    http_client=self._user_async,
                    capabilities=self.capabilities,
                )
                entry = _LoopClient(client, on_close=self._closing)
                self._async[loop] = entry
        return entry.client

    def _closing(self, entry: _LoopClient) -> None:
        with self._lock:
            for loop in [loop for loop, e in self._async.items() if e is entry]:
                del self._async[loop]

    def _drop_closed_loops(self) -> None:
        """Forget clients of loops closed without finalizing their generators.

        Their sockets belong to a dead loop and cannot be closed from another;
        dropping the last reference lets Python close them.
        """
        for loop in [loop for loop in self._async if loop.is_closed()]:
            logger.debug("Dropping the Devic client of a closed event loop.")
            self._async.pop(loop).discard()

    def _warn_if_inherited(self, user_client: object) -> None:
        if user_client is not None and self._forked:
            logger.warning(
                "ChatDevic uses an httpx client built before this process was "
                "forked; its pooled connections are shared with the parent. Build "
                "the client (and the ChatDevic) in each process instead."
            )

    def after_fork_in_child(self) -> None:
        """Abandon the parent's clients, unclosed: their sockets are the parent's."""
        _ABANDONED.append((self._sync, list(self._async.values())))
        self._forget()
        self._forked = True


#: Every pool alive in this process, so a forked child can reset them all.
_LIVE_POOLS: weakref.WeakSet[ClientPools] = weakref.WeakSet()
#: What a forked child inherited and must neither use nor close nor let the
#: garbage collector finalize (that would touch the parent's loop and sockets).
_ABANDONED: list[Any] = []


def _reset_pools_in_child() -> None:
    for pools in list(_LIVE_POOLS):
        pools.after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_pools_in_child)
