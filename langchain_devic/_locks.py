"""One lock per conversation key, so one agent thread's turns never overlap.

Devic answers 409 to a second message in a chat that is still busy, and two
parallel first calls would each start a chat (one then abandoned). Serializing
calls that share a key, in this process, avoids both. Locks live only while in
use, so tracking many threads costs nothing once they are idle.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, Generic, TypeVar

_L = TypeVar("_L", threading.Lock, asyncio.Lock)


class _Table(Generic[_L]):
    """Reference-counted locks by key, guarded by a plain thread lock."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._entries: dict[Any, list[Any]] = {}

    def acquire_entry(self, key: Any, factory: type[_L]) -> _L:
        with self._guard:
            entry = self._entries.setdefault(key, [factory(), 0])
            entry[1] += 1
            lock: _L = entry[0]
            return lock

    def release_entry(self, key: Any) -> None:
        with self._guard:
            entry = self._entries[key]
            entry[1] -= 1
            if entry[1] == 0:
                del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)


class KeyedLocks:
    """`hold(key)` / `ahold(key)`: run one block at a time per key."""

    def __init__(self) -> None:
        self._threads: _Table[threading.Lock] = _Table()
        self._tasks: _Table[asyncio.Lock] = _Table()

    def __copy__(self) -> KeyedLocks:
        return KeyedLocks()

    def __deepcopy__(self, memo: dict[int, Any]) -> KeyedLocks:
        return KeyedLocks()

    def __reduce__(self) -> tuple[type[KeyedLocks], tuple[()]]:
        """Pickled as a fresh table: locks belong to one process."""
        return (KeyedLocks, ())

    def __len__(self) -> int:
        return len(self._threads) + len(self._tasks)

    @contextmanager
    def hold(self, key: str | None) -> Iterator[None]:
        """Hold the thread lock of `key` (no lock when `key` is None)."""
        if key is None:
            yield
            return
        lock = self._threads.acquire_entry(key, threading.Lock)
        try:
            with lock:
                yield
        finally:
            self._threads.release_entry(key)

    @asynccontextmanager
    async def ahold(self, key: str | None) -> AsyncIterator[None]:
        """Hold the asyncio lock of `key` in the running loop."""
        if key is None:
            yield
            return
        loop_key = (id(asyncio.get_running_loop()), key)
        lock = self._tasks.acquire_entry(loop_key, asyncio.Lock)
        try:
            async with lock:
                yield
        finally:
            self._tasks.release_entry(loop_key)
