"""Every setting of a Devic client, its default and its bounds: the one list.

`ChatDevic` has a field of the same name for each `ClientSettings` field and
builds one with `ClientSettings.from_object(model)`; the tool's fields derive
from ChatDevic's. The defaults below are the only place their values are set.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal

import httpx
from pydantic import SecretStr

from langchain_devic import _retry, _wire

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
#: The least time a chat read that settles a write of unknown outcome gets,
#: whatever `timeout` is: settling decides whether a turn is lost or sent twice.
SETTLE_SECONDS = 10.0
DEFAULT_POLL_INTERVAL = 0.5
DEFAULT_MAX_POLL_INTERVAL = 5.0
#: Assistants whose messages URL a client keeps parsed.
MAX_CACHED_URLS = 256

TimeoutTypes = float | httpx.Timeout | None
#: What carries the async calls of the clients we build: httpx's own pool
#: (httpcore), or aiohttp's through the `httpx-aiohttp` transport.
AsyncTransport = Literal["httpcore", "aiohttp"]


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
