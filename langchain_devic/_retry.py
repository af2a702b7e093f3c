"""The retry policy's numbers and decisions, as pure functions.

A Devic message changes server state, so only answers that say the message was
*not* processed are retried (408, 409, 429, 502, 503, 504), plus failures to
connect, where no byte of the request left this machine. Everything else (a 500,
a read timeout, a connection dropped mid-answer) may have run the assistant and
is raised at once: retrying it could post the turn twice.
"""

from __future__ import annotations

import random

import httpx

from langchain_devic.errors import RETRYABLE_STATUSES

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
]


def backoff_delay(attempt: int, rng: random.Random | None = None) -> float:
    """Seconds to wait before retry number `attempt + 1` (0.5 s doubling to 8 s)."""
    base = min(INITIAL_BACKOFF * (2**attempt), MAX_BACKOFF)
    jitter: float = (rng or _JITTER_RNG).uniform(0.0, MAX_JITTER)
    return float(base * (1.0 + jitter))


def retry_wait(retry_after: float | None, attempt: int) -> float:
    """The wait before the next attempt: the server's word, else our backoff."""
    return retry_after if retry_after is not None else backoff_delay(attempt)
