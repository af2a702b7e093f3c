"""The httpx clients langchain-devic builds: one TLS context, pool limits, transports.

Sync calls go through httpx's own pool (httpcore); async calls through
httpcore or, with `async_transport="aiohttp"`, aiohttp's pool. Every client
refuses redirects, and none built for a plain-http loopback base (the emulator)
reads proxies from the environment.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import AsyncIterator
from typing import Any, cast

import httpx

from langchain_devic._settings import AsyncTransport

#: Pool limits of the clients we build; pass your own `http_client` to change them.
DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)
AIOHTTP_INSTALL_HINT = 'pip install "langchain-devic[aiohttp]"'

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
    kind = _aiohttp_client_class() if transport == "aiohttp" else httpx.AsyncClient
    return kind(**_client_options(trust_env))


def _client_options(trust_env: bool) -> dict[str, Any]:
    """What every client we build shares: limits, the TLS context, no redirects."""
    return {
        "limits": DEFAULT_LIMITS,
        "follow_redirects": False,
        "verify": shared_ssl_context(),
        "trust_env": trust_env,
    }


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

        # httpx names every transport option when it calls these two hooks.
        def _init_transport(
            self, *args: Any, **options: Any
        ) -> httpx.AsyncBaseTransport:
            given = options.get("transport")
            return given if given is not None else _Transport(**_named(args, options))

        def _init_proxy_transport(
            self, proxy: httpx.Proxy, *args: Any, **options: Any
        ) -> httpx.AsyncBaseTransport:
            return _Transport(**_named(args, options), proxy=proxy)

    _AIOHTTP_CLIENT = _Client
    return _Client


def _named(args: tuple[Any, ...], options: dict[str, Any]) -> dict[str, Any]:
    """Of the options httpx hands a transport, those aiohttp's takes."""
    if args:
        msg = "httpx passed transport options by position; expected names"
        raise TypeError(msg)
    return {
        "verify": options.get("verify", True),
        "trust_env": options.get("trust_env", True),
        "limits": options.get("limits", DEFAULT_LIMITS),
    }


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


def build_sync_http(
    transport: AsyncTransport = "httpcore", trust_env: bool = True
) -> httpx.Client:
    """The httpx client a `DevicClient` builds for itself (always httpcore).

    `transport` names the async clients' transport, which sync calls ignore.
    """
    del transport
    return httpx.Client(**_client_options(trust_env))
