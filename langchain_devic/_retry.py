"""The retry policy: its numbers and its one decision, free of I/O.

A Devic message changes server state, so only answers that say the message was
*not* processed are retried (408, 409, 429, 503), plus failures to connect,
where no byte of the request left this machine. A 502 or 504 comes from a
gateway that may already have passed the turn on, and a failure after the
request was written (a 500, a read timeout, a connection dropped mid-answer)
may have run the assistant: these are unknown outcomes, which the clients settle
by reading the chat, never by sending blindly. The clients keep only their I/O
(send, sleep); `next_wait` and `next_read_wait` decide.
"""

from __future__ import annotations

import math
import random
from typing import Protocol

import httpx

#: Statuses that say the message was not processed, so sending it again is safe.
RETRYABLE_STATUSES = frozenset({408, 409, 429, 503})

DEFAULT_MAX_RETRIES = 2
INITIAL_BACKOFF = 0.5
MAX_BACKOFF = 8.0
#: Backoff waits are stretched by a random 0-25 %, so clients do not retry in step.
MAX_JITTER = 0.25
#: A server-requested wait longer than this is not waited out: the error is raised.
MAX_RETRY_AFTER = 60.0

#: Transport failures raised before any byte of the request was sent.
PRE_SEND_ERRORS: tuple[type[httpx.TransportError], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
)

_JITTER_RNG = random.Random()  # noqa: S311 - jitter, not cryptography

__all__ = [
    "DEFAULT_MAX_RETRIES",
    "MAX_RETRY_AFTER",
    "PRE_SEND_ERRORS",
    "RETRYABLE_STATUSES",
    "backoff_delay",
    "next_read_wait",
    "next_wait",
    "sent_nothing",
]


class RetryableFailure(Protocol):
    """What the decision reads of an error (every `DevicError` has both)."""

    is_retryable: bool
    retry_after: float | None


def sent_nothing(exc: httpx.TransportError) -> bool:
    """Whether a transport failure happened before any byte of the request left."""
    return isinstance(exc, PRE_SEND_ERRORS)


def backoff_delay(attempt: int, rng: random.Random | None = None) -> float:
    """Seconds to wait before retry number `attempt + 1` (0.5 s doubling to 8 s)."""
    base = min(INITIAL_BACKOFF * (2**attempt), MAX_BACKOFF)
    jitter: float = (rng or _JITTER_RNG).uniform(0.0, MAX_JITTER)
    return float(base * (1.0 + jitter))


def retry_wait(retry_after: float | None, attempt: int) -> float:
    """The wait before the next attempt: the server's word, else our backoff."""
    return retry_after if retry_after is not None else backoff_delay(attempt)


def next_wait(error: RetryableFailure, attempt: int, max_retries: int) -> float | None:
    """Seconds to wait before attempt `attempt + 2`, or `None` to raise `error` now.

    `attempt` counts the retries already made (0 after the first try). An error
    that is not safe to repeat, a spent budget, or a server-requested wait above
    `MAX_RETRY_AFTER` all mean: raise.
    """
    if not error.is_retryable or attempt >= max_retries:
        return None
    retry_after = error.retry_after
    if retry_after is not None and (
        not math.isfinite(retry_after) or retry_after > MAX_RETRY_AFTER
    ):
        return None
    return retry_wait(retry_after, attempt)


#: Answers to a read that may change on the next try (plus any 5xx).
READ_RETRY_STATUSES = RETRYABLE_STATUSES | {425}


def next_read_wait(
    error: RetryableFailure,
    attempt: int,
    remaining: float,
    *,
    max_retries: int = DEFAULT_MAX_RETRIES,
    persistent: bool = False,
) -> float | None:
    """Seconds to wait before reading again, or `None` to raise `error` now.

    A read changes nothing on Devic, so a transport failure or a 5xx is retried
    whatever happened; an answer that will not change (400, 401, 403, 404) is
    not. A `persistent` read (one of a followed run) goes on for as long as
    `remaining` seconds allow; any other gives up after `max_retries` retries.
    Every wait is at least the backoff step, whatever the server asks (a
    `Retry-After: 0` is no hot loop), and never longer than what remains.
    """
    status = getattr(error, "status_code", None)
    if status is not None and status < 500 and status not in READ_RETRY_STATUSES:
        return None
    if remaining <= 0:
        return None
    if not persistent and attempt >= max_retries:
        return None
    wait = backoff_delay(min(attempt, 8))
    retry_after = error.retry_after
    if retry_after is not None and math.isfinite(retry_after):
        wait = max(wait, retry_after)
    return min(wait, remaining)
