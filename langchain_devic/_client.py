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
import threading
import time
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine, Mapping
from typing import Any, cast

import httpx
from pydantic import SecretStr

from langchain_devic import _retry, _wire
from langchain_devic._version import __version__
from langchain_devic.errors import (
    DevicAPIError,
    DevicConnectError,
    DevicConnectionError,
    DevicConnectTimeoutError,
    DevicError,
    DevicProtocolError,
    DevicTimeoutError,
)

logger = logging.getLogger("langchain_devic")

DEFAULT_TIMEOUT = 120.0
DEFAULT_CONNECT_TIMEOUT = 5.0
#: Answers larger than this are refused (a Devic reply is a chat message).
MAX_RESPONSE_BYTES = 10 * 1024 * 1024
#: Pool limits of the clients we build; pass your own `http_client` to change them.
DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)

# Indirections so tests can skip real waiting.
_sleep = time.sleep
_asleep = asyncio.sleep

TimeoutTypes = float | httpx.Timeout | None


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

    def __post_init__(self) -> None:
        key = self.api_key
        secret = key.get_secret_value() if isinstance(key, SecretStr) else key
        _wire.validate_api_key(secret)
        object.__setattr__(self, "api_key", SecretStr(secret))
        object.__setattr__(self, "base_url", _wire.validate_base_url(self.base_url))
        if self.max_retries < 0:
            msg = f"max_retries must be >= 0, got {self.max_retries}."
            raise ValueError(msg)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The settings' names, in declaration order."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_object(cls, source: Any) -> ClientSettings:
        """The settings read off any object with attributes of the same names."""
        return cls(**{name: getattr(source, name) for name in cls.names()})


class _BaseDevicClient:
    """Configuration and the I/O-free halves of a Devic call."""

    def __init__(
        self, settings: ClientSettings | None = None, /, **fields: Any
    ) -> None:
        settings = settings or ClientSettings(**fields)
        self._api_key = settings.api_key
        self.base_url = settings.base_url
        self.timeout = make_timeout(settings.timeout)
        self.max_retries = settings.max_retries
        self.default_headers = dict(settings.default_headers or {})
        self.max_response_bytes = settings.max_response_bytes

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r})"

    @property
    def _secret(self) -> str:
        return self._api_key.get_secret_value()

    def _headers(self) -> dict[str, str]:
        return {
            "User-Agent": f"langchain-devic/{__version__}",
            **self.default_headers,
            **_wire.auth_headers(self._secret),
        }

    def _request_args(
        self,
        assistant_id: str,
        message: str,
        chat_uuid: str | None,
        context: Mapping[str, Any] | None,
        metadata: Mapping[str, Any] | None,
        extra: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        _wire.validate_assistant_id(assistant_id)
        body = _wire.build_request_body(
            message, chat_uuid, context=context, metadata=metadata, extra=extra
        )
        return {
            "method": "POST",
            "url": _wire.messages_url(self.base_url, assistant_id),
            "json": body,
            "headers": self._headers(),
            "timeout": self.timeout,
        }

    def _check_size(self, size: int) -> None:
        if size > self.max_response_bytes:
            msg = (
                f"Devic's answer is larger than {self.max_response_bytes} bytes; "
                "refused (a reply is a chat message). Raise max_response_bytes if "
                "your assistant really returns this much."
            )
            raise DevicProtocolError(msg)

    def _reply_or_error(
        self, response: httpx.Response, body: bytes, sent_chat_uuid: str | None
    ) -> _wire.DevicReply | DevicAPIError:
        """Turn an answer into a reply (2xx) or the typed error to raise or retry."""
        if response.is_success:
            reply = _wire.parse_reply(
                body, sent_chat_uuid=sent_chat_uuid, secret=self._secret
            )
            if sent_chat_uuid is not None and reply.chat_uuid != sent_chat_uuid:
                logger.warning(
                    "Devic forked conversation %s into %s; continuing with the new id.",
                    sent_chat_uuid,
                    _wire.redact(str(reply.chat_uuid), self._secret),
                )
            if sent_chat_uuid is None and reply.chat_uuid is None:
                logger.warning(
                    "Devic's reply carries no conversation id; it cannot be continued."
                )
            return reply
        return _wire.api_error(
            response.status_code, response.headers, body, secret=self._secret
        )

    def _transport_error(
        self, exc: httpx.TransportError, chat_uuid: str | None
    ) -> DevicError:
        """The typed error for an httpx failure, safe to keep and to show.

        Only failures before any byte was sent are retryable. The httpx error is
        not chained as it is: its request holds the `Authorization` header. The
        cause kept is a copy of the same type with the redacted text alone.
        """
        detail = _wire.redact(str(exc) or type(exc).__name__, self._secret)
        error = self._describe_transport_error(exc, detail, chat_uuid)
        error.__cause__ = type(exc)(detail)
        return error

    def _describe_transport_error(
        self, exc: httpx.TransportError, detail: str, chat_uuid: str | None
    ) -> DevicError:
        where = f"Devic at {self.base_url}"
        if _retry.sent_nothing(exc):
            if isinstance(exc, httpx.TimeoutException):
                return DevicConnectTimeoutError(
                    f"Timed out connecting to {where} ({detail}); nothing was sent."
                )
            return DevicConnectError(
                f"Could not connect to {where} ({detail}); nothing was sent."
            )
        if isinstance(exc, httpx.LocalProtocolError):
            return DevicConnectionError(
                f"The request could not be sent to {where} ({detail}); nothing was "
                "sent. Check default_headers and the message for characters HTTP "
                "cannot carry.",
                is_retryable=False,
            )
        turn = (
            f"conversation {chat_uuid}"
            if chat_uuid
            else "the new conversation it may have opened"
        )
        settle = (
            f"The turn may still have run on Devic: check {turn} before sending it "
            "again (it was not retried, so it cannot have been posted twice)."
        )
        if isinstance(exc, httpx.TimeoutException):
            read = self.timeout.read
            budget = f"within {read:g} s" if read is not None else "in time"
            return DevicTimeoutError(
                f"No answer from {where} {budget} ({detail}). {settle} Raise "
                "`timeout` for assistants that run long tools.",
                is_retryable=False,
            )
        return DevicConnectionError(
            f"The connection to {where} failed after the message was sent "
            f"({detail}). {settle}",
            is_retryable=False,
        )

    @staticmethod
    def _log_attempt(attempt: int, wait: float, error: DevicError) -> None:
        logger.info(
            "Retrying Devic call (attempt %d) in %.2f s after %s.",
            attempt + 2,
            wait,
            type(error).__name__,
        )


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
            self._http = httpx.Client(limits=DEFAULT_LIMITS, follow_redirects=False)
        return self._http

    def close(self) -> None:
        """Close the connection pool if this client built it."""
        if self._owns_http and self._http is not None:
            self._http.close()
            self._http = None

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
        """Send one turn; retry only what Devic certainly did not process."""
        request = self.http.build_request(
            **self._request_args(
                assistant_id, message, chat_uuid, context, metadata, extra
            )
        )
        attempt = 0
        while True:
            outcome: _wire.DevicReply | DevicError
            try:
                outcome = self._send_once(request, chat_uuid)
            except httpx.TransportError as exc:
                outcome = self._transport_error(exc, chat_uuid)
            if isinstance(outcome, _wire.DevicReply):
                return outcome
            wait = _retry.next_wait(outcome, attempt, self.max_retries)
            if wait is None:
                raise outcome
            self._log_attempt(attempt, wait, outcome)
            _sleep(wait)
            attempt += 1

    def _send_once(
        self, request: httpx.Request, chat_uuid: str | None
    ) -> _wire.DevicReply | DevicAPIError:
        response = self.http.send(request, stream=True)
        try:
            self._check_size(int(response.headers.get("content-length") or 0))
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                self._check_size(len(body))
        finally:
            response.close()
        logger.debug("Devic answered %s", response.status_code)
        return self._reply_or_error(response, bytes(body), chat_uuid)


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
            self._http = httpx.AsyncClient(
                limits=DEFAULT_LIMITS, follow_redirects=False
            )
        return self._http

    async def aclose(self) -> None:
        """Close the connection pool if this client built it."""
        if self._owns_http and self._http is not None:
            await self._http.aclose()
            self._http = None

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
        """Send one turn; retry only what Devic certainly did not process."""
        request = self.http.build_request(
            **self._request_args(
                assistant_id, message, chat_uuid, context, metadata, extra
            )
        )
        attempt = 0
        while True:
            outcome: _wire.DevicReply | DevicError
            try:
                outcome = await self._send_once(request, chat_uuid)
            except httpx.TransportError as exc:
                outcome = self._transport_error(exc, chat_uuid)
            if isinstance(outcome, _wire.DevicReply):
                return outcome
            wait = _retry.next_wait(outcome, attempt, self.max_retries)
            if wait is None:
                raise outcome
            self._log_attempt(attempt, wait, outcome)
            await _asleep(wait)
            attempt += 1

    async def _send_once(
        self, request: httpx.Request, chat_uuid: str | None
    ) -> _wire.DevicReply | DevicAPIError:
        response = await self.http.send(request, stream=True)
        try:
            self._check_size(int(response.headers.get("content-length") or 0))
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                self._check_size(len(body))
        finally:
            await response.aclose()
        logger.debug("Devic answered %s", response.status_code)
        return self._reply_or_error(response, bytes(body), chat_uuid)


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
                    client = DevicClient(self.settings, http_client=self._user_sync)
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
                client = AsyncDevicClient(self.settings, http_client=self._user_async)
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
