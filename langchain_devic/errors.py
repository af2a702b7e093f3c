"""Every error langchain-devic raises, in one tree.

Each HTTP failure is a `DevicAPIError` subclass that also inherits the matching
`langchain_core.exceptions.Model*Error`, so generic LangChain handlers (and
`is_retryable`) work without knowing about Devic::

    DevicError                                   (message)
    ├── DevicAPIError                            (status_code, code, body)
    │   ├── DevicBadRequestError          400/422  ModelInvalidRequestError
    │   ├── DevicAuthenticationError      401      ModelAuthenticationError
    │   ├── DevicPermissionDeniedError    403      ModelPermissionDeniedError
    │   ├── DevicNotFoundError            404      ModelNotFoundError
    │   ├── DevicRequestTimeoutError      408      ModelAPIError
    │   ├── DevicConflictError            409      ModelAPIError  (chat busy)
    │   ├── DevicRateLimitError           429      ModelRateLimitError (retry_after)
    │   └── DevicServerError              5xx      ModelAPIError
    │       ├── DevicServiceUnavailableError  503 (not processed)
    │       └── DevicGatewayError             502/504 (unknown outcome)
    ├── DevicConnectionError                       ModelConnectionError
    │   └── DevicConnectError         could not connect: nothing was sent
    ├── DevicTimeoutError                          ModelTimeoutError
    │   ├── DevicConnectTimeoutError  timed out connecting: nothing was sent
    │   └── DevicLockTimeoutError     a conversation's lock not had in time
    ├── DevicProtocolError                         ModelAPIError
    │                          a malformed 2xx answer (not retryable)
    ├── DevicRunError                              ModelAPIError
    │                          a platform run ended in `error` (chat_uuid, status)
    ├── DevicLockError         a conversation's lock was lost, or its database failed
    └── DevicStoreError        the tool's thread store could not be read

`is_retryable` is set per instance to what is *safe* to retry: a Devic message
changes server state, so an error raised after the request may have been
processed (a 500, a read timeout, a connection dropped mid-answer) says
`is_retryable = False` even where the LangChain family says otherwise.

`RETRYABLE_ERRORS` lists the classes that are only ever raised for a turn Devic
certainly did not process, for retry helpers that match on types::

    model.with_retry(retry_if_exception_type=RETRYABLE_ERRORS)

No error ever holds the API key: body excerpts are redacted before they are
stored (see `langchain_devic._wire.redact`).
"""

from __future__ import annotations

from typing import Any

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

from langchain_devic._retry import RETRYABLE_STATUSES

__all__ = [
    "FATAL_ERRORS",
    "RETRYABLE_ERRORS",
    "DevicAPIError",
    "DevicApprovalRequired",
    "DevicAuthenticationError",
    "DevicBadRequestError",
    "DevicConflictError",
    "DevicConnectError",
    "DevicConnectTimeoutError",
    "DevicConnectionError",
    "DevicError",
    "DevicGatewayError",
    "DevicLockError",
    "DevicLockTimeoutError",
    "DevicNotFoundError",
    "DevicPermissionDeniedError",
    "DevicProtocolError",
    "DevicRateLimitError",
    "DevicRequestTimeoutError",
    "DevicRunError",
    "DevicServerError",
    "DevicServiceUnavailableError",
    "DevicStoreError",
    "DevicTimeoutError",
]


class DevicError(Exception):
    """Base class of every langchain-devic error; `message` says what went wrong."""

    is_retryable: bool = False
    #: Seconds the server asked us to wait before trying again, if it said so.
    retry_after: float | None = None

    def __init__(self, message: str, *, is_retryable: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        if is_retryable is not None:
            self.is_retryable = is_retryable

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.message,), {"is_retryable": self.is_retryable})

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class DevicAPIError(DevicError):
    """Devic answered with an HTTP error status.

    Attributes:
        status_code: The HTTP status Devic answered with.
        code: Devic's own error code (e.g. `"TENANT_LIMIT_EXCEEDED"`), or `None`.
        body: The first few hundred characters of the answer, token redacted.
        retry_after: Seconds Devic asked us to wait (`Retry-After`,
            `retry-after-ms` or the body's `retryAfter`), or `None`.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        code: str | None = None,
        body: str = "",
        retry_after: float | None = None,
        is_retryable: bool | None = None,
    ) -> None:
        if is_retryable is None:
            is_retryable = status_code in RETRYABLE_STATUSES
        super().__init__(message, is_retryable=is_retryable)
        self.status_code = status_code
        self.code = code
        self.body = body
        self.retry_after = retry_after

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle and copy with the keyword-only fields (multiprocessing, copy)."""
        return (
            _rebuild_api_error,
            (
                type(self),
                self.message,
                {
                    "status_code": self.status_code,
                    "code": self.code,
                    "body": self.body,
                    "retry_after": self.retry_after,
                    "is_retryable": self.is_retryable,
                },
            ),
        )

    def __str__(self) -> str:
        code = f" [{self.code}]" if self.code else ""
        wait = (
            f" (retry after {self.retry_after:g} s)"
            if self.retry_after is not None
            else ""
        )
        return f"Devic answered {self.status_code}{code}: {self.message}{wait}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status_code={self.status_code}, "
            f"code={self.code!r}, message={self.message!r})"
        )


def _rebuild_api_error(
    cls: type[DevicAPIError], message: str, fields: dict[str, Any]
) -> DevicAPIError:
    return cls(message, **fields)


class DevicBadRequestError(DevicAPIError, ModelInvalidRequestError):
    """400 or 422: Devic rejected the request; change the input, do not retry."""


class DevicAuthenticationError(DevicAPIError, ModelAuthenticationError):
    """401: the API key is missing, wrong or revoked; check `DEVIC_API_KEY`."""


class DevicPermissionDeniedError(DevicAPIError, ModelPermissionDeniedError):
    """403: the key is valid but may not run this assistant or use this option."""


class DevicNotFoundError(DevicAPIError, ModelNotFoundError):
    """404: the assistant id (or the chatUuid being continued) does not exist."""


class DevicRequestTimeoutError(DevicAPIError, ModelAPIError):
    """408: Devic timed out reading the request; it was not processed."""


class DevicConflictError(DevicAPIError, ModelAPIError):
    """409: the chat is still processing an earlier message; retry later."""


class DevicRateLimitError(DevicAPIError, ModelRateLimitError):
    """429: a rate or usage limit was hit; `retry_after` says how long to wait."""


class DevicServerError(DevicAPIError, ModelAPIError):
    """5xx: Devic failed; a 500 may have run the assistant, so it is not retried."""


class DevicServiceUnavailableError(DevicServerError):
    """503: Devic refused the request for now; it was not processed."""


class DevicGatewayError(DevicServerError):
    """502 or 504: a gateway answered for Devic; the turn may have run.

    A gateway that times out (504) or loses Devic's answer (502) may already
    have passed the turn on, so the outcome is unknown: the client settles it by
    reading the chat when it knows the chat's id, and never re-sends blindly.
    """


class DevicConnectionError(DevicError, ModelConnectionError):
    """The connection to Devic failed or was closed before an answer arrived."""


class DevicConnectError(DevicConnectionError):
    """Devic could not be reached at all: no byte of the request was sent."""

    is_retryable = True


class DevicTimeoutError(DevicError, ModelTimeoutError):
    """No answer in time; raise `timeout` for assistants that run long tools."""


class DevicConnectTimeoutError(DevicTimeoutError):
    """Connecting to Devic (or waiting for a free connection) timed out: unsent."""

    is_retryable = True


class DevicLockTimeoutError(DevicTimeoutError):
    """Another call of this conversation held its lock for longer than `timeout`.

    Nothing was sent to Devic, so the call may be made again
    (`is_retryable` is true).
    """

    is_retryable = True


class DevicLockError(DevicError):
    """A conversation's lock failed: its database, or a lost hold.

    Its database could not be used, or the lock was lost while held (its
    session ended). The message says whether anything was sent to Devic.
    Nothing sent: the call may be made again. Sent: the thread's record was
    not written by this call; the next call of the same message settles the
    turn by reading Devic instead of sending it twice.
    """

    is_retryable = False


class DevicStoreError(DevicError):
    """The tool's store could not be read or written.

    Raised before anything is sent (a failed read); a write that fails after
    Devic answered is logged instead, and the reply is still returned.
    """

    is_retryable = True


class DevicProtocolError(DevicError, ModelAPIError):
    """A 2xx answer that is not a Devic reply (not JSON, or no reply and no id).

    Attributes:
        body: The first few hundred characters of the answer, token redacted.
    """

    def __init__(self, message: str, *, body: str = "") -> None:
        super().__init__(message, is_retryable=False)
        self.body = body

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.message,), {"body": self.body})


class DevicRunError(DevicError, ModelAPIError):
    """A platform run failed on Devic's side (status `error`), or cannot go on.

    The turn was taken up by Devic, so it is not retryable as such: check the
    chat (`chat_uuid`) before sending the message again.

    Attributes:
        chat_uuid: The chat whose run failed.
        status: The run's last status (`"error"`, `"waiting_for_tool_response"`).
    """

    def __init__(self, message: str, *, chat_uuid: str, status: str) -> None:
        super().__init__(message, is_retryable=False)
        self.chat_uuid = chat_uuid
        self.status = status

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild_run_error,
            (type(self), self.message, self.chat_uuid, self.status),
        )


class DevicApprovalRequired(DevicError):
    """A Devic agent thread waits for a person's approval, outside any LangGraph run.

    Inside a graph the agent tool interrupts instead; here nobody can be asked.
    Decide, then call `ChatDevic.approve_thread(thread_id)` or
    `reject_thread(thread_id)` and call the tool again: it goes on following the
    same thread (never a second one).

    Attributes:
        thread_id: The agent thread that waits.
        reason: Devic's `pausedReason` (what it asks), or `None`.
    """

    def __init__(self, thread_id: str, reason: str | None = None) -> None:
        asks = f": {reason}" if reason else ""
        super().__init__(
            f"Devic agent thread {thread_id} waits for approval{asks}",
            is_retryable=False,
        )
        self.thread_id = thread_id
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.thread_id, self.reason))


def _rebuild_run_error(
    cls: type[DevicRunError], message: str, chat_uuid: str, status: str
) -> DevicRunError:
    return cls(message, chat_uuid=chat_uuid, status=status)


_STATUS_CLASSES: dict[int, type[DevicAPIError]] = {
    400: DevicBadRequestError,
    401: DevicAuthenticationError,
    403: DevicPermissionDeniedError,
    404: DevicNotFoundError,
    408: DevicRequestTimeoutError,
    409: DevicConflictError,
    422: DevicBadRequestError,
    429: DevicRateLimitError,
    502: DevicGatewayError,
    503: DevicServiceUnavailableError,
    504: DevicGatewayError,
}


def error_class_for_status(status_code: int) -> type[DevicAPIError]:
    """Return the exception class for an HTTP error status."""
    if status_code in _STATUS_CLASSES:
        return _STATUS_CLASSES[status_code]
    if status_code >= 500:
        return DevicServerError
    if 400 <= status_code < 500:
        return DevicBadRequestError
    return DevicAPIError


#: Errors a person must fix (a wrong key, a forbidden assistant, an unknown
#: assistant): the tool raises them instead of telling the agent, and the
#: interactive chat stops on them.
FATAL_ERRORS: tuple[type[DevicAPIError], ...] = (
    DevicAuthenticationError,
    DevicPermissionDeniedError,
    DevicNotFoundError,
)

#: Errors raised only for a turn Devic certainly did not process, so sending it
#: again cannot post it twice: for retry helpers that match on types, such as
#: `Runnable.with_retry(retry_if_exception_type=RETRYABLE_ERRORS)`.
RETRYABLE_ERRORS: tuple[type[DevicError], ...] = (
    DevicRequestTimeoutError,
    DevicConflictError,
    DevicRateLimitError,
    DevicServiceUnavailableError,
    DevicConnectError,
    DevicConnectTimeoutError,
)
