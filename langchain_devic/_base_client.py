"""What the sync and async Devic clients share: everything that is not I/O.

Request building, answer handling, error mapping and the decisions of the
retry and settle rules live here; `_async_client.AsyncDevicClient` does the
I/O (and `_sync_client.DevicClient` is generated from it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypedDict

import httpx

from langchain_devic import _exchange, _outcomes, _retry, _runs, _wire
from langchain_devic._checks import platform_base_url
from langchain_devic._settings import (
    MAX_CACHED_URLS,
    SSE_SILENCE,
    STOP_TIMEOUT,
    ClientSettings,
    RunCapabilities,
    make_timeout,
)
from langchain_devic._version import __version__
from langchain_devic.errors import (
    DevicAPIError,
    DevicConnectError,
    DevicConnectionError,
    DevicConnectTimeoutError,
    DevicError,
    DevicNotFoundError,
    DevicProtocolError,
    DevicTimeoutError,
)

logger = logging.getLogger("langchain_devic")

Parse = _outcomes.Parse


class Bounds(TypedDict):
    """An exchange's answer-size cap, and the key no error of it may carry."""

    cap: int
    secret: str


class TurnFields(TypedDict, total=False):
    """A turn's send fields besides its message (`send_message`, `start_run`)."""

    chat_uuid: str | None
    """The conversation to continue; `None`: a new one."""
    context: Mapping[str, Any] | None
    metadata: Mapping[str, Any] | None
    extra: Mapping[str, Any] | None
    """Further body fields (Devic's message options), sent as given."""


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
        #: The root of every route but the one call's (runs, chats, assistants,
        #: search, feedback): Devic's platform prefix for the default base.
        self.platform_url = platform_base_url(self.base_url)
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
        self._message_urls: dict[tuple[str, bool], httpx.URL] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r})"

    @property
    def _secret(self) -> str:
        return self._api_key.get_secret_value()

    @property
    def _bounds(self) -> Bounds:
        """What every exchange of this client is held to (`_exchange`)."""
        return {"cap": self.max_response_bytes, "secret": self._secret}

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
        """The deadline of one read: `timeout` from now, within `deadline`."""
        own = time.monotonic() + self._exchange_seconds
        return own if deadline is None else min(own, deadline)

    def _write_deadline(self, deadline: float | None = None) -> float:
        """The deadline of one write: its connect budget plus `timeout`.

        Each socket read of the answer still waits `timeout` at most; the
        whole exchange (a trickled answer included) ends by this deadline.
        """
        connect = self.timeout.connect or 0.0
        own = time.monotonic() + self._exchange_seconds + connect
        return own if deadline is None else min(own, deadline)

    def _request_args(
        self,
        assistant_id: str,
        message: str,
        fields: TurnFields,
        *,
        platform: bool = False,
    ) -> dict[str, Any]:
        """A send: the one call (`platform=False`) or a platform run's send."""
        body = _wire.build_request_body(
            message,
            fields.get("chat_uuid"),
            context=fields.get("context"),
            metadata=fields.get("metadata"),
            extra=fields.get("extra"),
        )
        return {
            "method": "POST",
            "url": self._messages_url(assistant_id, platform=platform),
            "json": body,
            "headers": self._headers(),
            "timeout": self.timeout,
        }

    def _messages_url(self, assistant_id: str, *, platform: bool = False) -> httpx.URL:
        """The assistant's messages URL, parsed once per client.

        Parsing a URL string is the costliest step of building a request.
        """
        key = (assistant_id, platform)
        url = self._message_urls.get(key)
        if url is None:
            _wire.validate_assistant_id(assistant_id)
            base = self.platform_url if platform else self.base_url
            url = httpx.URL(_wire.messages_url(base, assistant_id))
            if len(self._message_urls) < MAX_CACHED_URLS:
                self._message_urls[key] = url
        return url

    def _read_args(
        self,
        url: str,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A read: a GET, or a POST whose body only asks (Devic's chat search)."""
        args: dict[str, Any] = {
            "method": "GET" if body is None else "POST",
            "url": url,
            "params": params,
            "headers": self._headers(),
            "timeout": self.timeout,
        }
        if body is not None:
            args["json"] = body
        return args

    def _post_args(self, url: str, body: Mapping[str, Any] | None) -> dict[str, Any]:
        return {
            "method": "POST",
            "url": url,
            "json": body,
            "headers": self._headers(),
            "timeout": self.timeout,
        }

    # What a failed write means, and the notes that say so (`_outcomes`).
    _outcome_unknown = staticmethod(_outcomes.outcome_unknown)
    _with_note = staticmethod(_outcomes.with_note)
    _explained = staticmethod(_outcomes.explained)
    _unsettled = staticmethod(_outcomes.unsettled)
    _settle_failed = staticmethod(_outcomes.settle_failed)
    _settle_answers = staticmethod(_outcomes.settle_answers)
    _settled_send = staticmethod(_outcomes.settled_send)
    _unsent_write = staticmethod(_outcomes.unsent_write)

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
            "url": _wire.run_url(self.platform_url, assistant_id, chat_uuid, "stop"),
            "headers": self._headers(),
            "timeout": STOP_TIMEOUT,
        }

    def _tool_response_args(
        self, assistant_id: str, chat_uuid: str, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        return {
            "method": "POST",
            "url": _wire.run_url(
                self.platform_url, assistant_id, chat_uuid, "tool-response"
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
                f"{self.platform_url} does not serve platform runs (its run routes "
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
