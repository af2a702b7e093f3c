"""The only code in langchain-devic that speaks HTTP, by room.

- `_exchange`: the one door every request passes (deadline, size cap, errors);
- `_settings`: every client setting and its default;
- `_transports`: the httpx clients we build (TLS context, pool limits, aiohttp);
- `_base_client`: what the sync and async clients share (no I/O);
- `_async_client`: the async client, written once; `_sync_client` is generated
  from it by `scripts/unasync.py`;
- `_pools`: the clients of one `ChatDevic`, per process and event loop.

This module gathers their public names for the rest of the package.
"""

from __future__ import annotations

from langchain_devic._async_client import AsyncDevicClient
from langchain_devic._base_client import Parse
from langchain_devic._pools import ClientPools
from langchain_devic._settings import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_POLL_INTERVAL,
    DEFAULT_POLL_INTERVAL,
    DEFAULT_RUN_TIMEOUT,
    DEFAULT_TIMEOUT,
    MAX_RESPONSE_BYTES,
    SSE_SILENCE,
    STOP_SECONDS,
    TOTALS_BUDGET,
    AsyncTransport,
    ClientSettings,
    RunCapabilities,
    TimeoutTypes,
    make_timeout,
)
from langchain_devic._sync_client import DevicClient
from langchain_devic._transports import (
    AIOHTTP_INSTALL_HINT,
    DEFAULT_LIMITS,
    build_async_http,
    build_sync_http,
    shared_ssl_context,
)

__all__ = [
    "AIOHTTP_INSTALL_HINT",
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_LIMITS",
    "DEFAULT_MAX_POLL_INTERVAL",
    "DEFAULT_POLL_INTERVAL",
    "DEFAULT_RUN_TIMEOUT",
    "DEFAULT_TIMEOUT",
    "MAX_RESPONSE_BYTES",
    "SSE_SILENCE",
    "STOP_SECONDS",
    "TOTALS_BUDGET",
    "AsyncDevicClient",
    "AsyncTransport",
    "ClientPools",
    "ClientSettings",
    "DevicClient",
    "Parse",
    "RunCapabilities",
    "TimeoutTypes",
    "build_async_http",
    "build_sync_http",
    "make_timeout",
    "shared_ssl_context",
]
