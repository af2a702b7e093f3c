"""The clients of one ChatDevic, each bound to the process and loop it may serve."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine
from typing import Any, cast

import httpx

from langchain_devic._async_client import AsyncDevicClient
from langchain_devic._settings import ClientSettings, RunCapabilities
from langchain_devic._sync_client import DevicClient

logger = logging.getLogger("langchain_devic")


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
