"""The only code in langchain-devic that speaks HTTP.

`DevicClient` and `AsyncDevicClient` send one turn to an assistant and return a
`DevicReply`. They share `_BaseDevicClient` for everything that is not I/O
(request building, answer handling, the retry decision), and their two
`send_message` loops mirror each other line for line. Each owns one `httpx`
connection pool, built lazily and reused, unless the user hands in a client.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

import httpx
from pydantic import SecretStr

from langchain_devic import _retry, _wire
from langchain_devic._version import __version__
from langchain_devic.errors import (
    DevicAPIError,
    DevicConnectionError,
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


class _BaseDevicClient:
    """Configuration and the I/O-free halves of a Devic call."""

    def __init__(
        self,
        *,
        api_key: SecretStr | str,
        base_url: str = _wire.DEFAULT_BASE_URL,
        timeout: TimeoutTypes = DEFAULT_TIMEOUT,
        max_retries: int = _retry.DEFAULT_MAX_RETRIES,
        default_headers: Mapping[str, str] | None = None,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
    ) -> None:
        self._api_key = (
            api_key if isinstance(api_key, SecretStr) else SecretStr(api_key)
        )
        self.base_url = _wire.validate_base_url(base_url)
        self.timeout = make_timeout(timeout)
        if max_retries < 0:
            msg = f"max_retries must be >= 0, got {max_retries}."
            raise ValueError(msg)
        self.max_retries = max_retries
        self.default_headers = dict(default_headers or {})
        self.max_response_bytes = max_response_bytes

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

    def _next_wait(self, error: DevicError, attempt: int) -> float | None:
        """Seconds to wait before retrying `error`, or `None` to raise it now."""
        if not error.is_retryable or attempt >= self.max_retries:
            return None
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None and retry_after > _retry.MAX_RETRY_AFTER:
            return None
        return _retry.retry_wait(retry_after, attempt)

    def _transport_error(self, exc: httpx.TransportError) -> DevicError:
        """Map an httpx failure; only pre-send failures are safe to retry."""
        before_send = isinstance(exc, _retry.PRE_SEND_ERRORS)
        detail = _wire.redact(str(exc) or type(exc).__name__, self._secret)
        if isinstance(exc, httpx.TimeoutException):
            phase = "connecting to" if before_send else "waiting for"
            return DevicTimeoutError(
                f"Timed out {phase} Devic at {self.base_url} ({detail}).",
                is_retryable=before_send,
            )
        if before_send:
            return DevicConnectionError(
                f"Could not connect to Devic at {self.base_url} ({detail}).",
                is_retryable=True,
            )
        return DevicConnectionError(
            f"The connection to Devic failed after the message was sent ({detail}); "
            "it was not retried because the assistant may have processed it.",
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
        self, *, http_client: httpx.Client | None = None, **settings: Any
    ) -> None:
        super().__init__(**settings)
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
            try:
                outcome = self._send_once(request, chat_uuid)
            except httpx.TransportError as exc:
                error: DevicError = self._transport_error(exc)
                wait = self._next_wait(error, attempt)
                if wait is None:
                    raise error from exc
            else:
                if isinstance(outcome, _wire.DevicReply):
                    return outcome
                error = outcome
                wait = self._next_wait(error, attempt)
                if wait is None:
                    raise error
            self._log_attempt(attempt, wait, error)
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
        self, *, http_client: httpx.AsyncClient | None = None, **settings: Any
    ) -> None:
        super().__init__(**settings)
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
            try:
                outcome = await self._send_once(request, chat_uuid)
            except httpx.TransportError as exc:
                error: DevicError = self._transport_error(exc)
                wait = self._next_wait(error, attempt)
                if wait is None:
                    raise error from exc
            else:
                if isinstance(outcome, _wire.DevicReply):
                    return outcome
                error = outcome
                wait = self._next_wait(error, attempt)
                if wait is None:
                    raise error
            self._log_attempt(attempt, wait, error)
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
