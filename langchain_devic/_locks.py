"""The process's lock table: one lock per conversation, for threads and tasks alike.

Devic answers 409 to a second message in a chat that is still busy, and two
parallel first calls of one agent thread would each open a chat. So every
`DevicAssistantTool` of a process, sync or async, in any thread or event loop,
takes the same lock for one (assistant, thread) before it reads the store, and
keeps it until the turn is stored.

A `HandoffLock` is taken by threads (which block) and by asyncio tasks (which
await, never blocking their event loop), first come, first served: releasing
hands the lock straight to the next waiter, whichever kind it is. Locks live
in `PROCESS_LOCKS` only while someone holds or waits for them, so many idle
threads cost nothing. A forked child starts with an empty table: the parent's
holders do not exist there.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections import deque
from collections.abc import AsyncIterator, Hashable, Iterator
from contextlib import asynccontextmanager, contextmanager

__all__ = ["PROCESS_LOCKS", "HandoffLock", "LockTable"]


class _ThreadWaiter:
    """A thread blocked in `acquire`, woken by an event."""

    __slots__ = ("event", "granted")

    def __init__(self) -> None:
        self.granted = False
        self.event = threading.Event()

    def wake(self) -> bool:
        self.event.set()
        return True


class _TaskWaiter:
    """A task awaiting `aacquire`, woken in its own event loop."""

    __slots__ = ("future", "granted", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.granted = False
        self.loop = loop
        self.future: asyncio.Future[None] = loop.create_future()

    def wake(self) -> bool:
        """Resolve the future in its loop; `False` if that loop is closed."""
        try:
            self.loop.call_soon_threadsafe(_resolve, self.future)
        except RuntimeError:  # the loop is closed: its task will never run again
            return False
        return True


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


_Waiter = _ThreadWaiter | _TaskWaiter


class HandoffLock:
    """A mutex both threads and asyncio tasks take, in arrival order.

    `release()` hands the lock to the oldest waiter (its `granted` flag is set
    under the guard), so a waiter that times out or is cancelled at the moment
    it is granted still knows it owns the lock, and passes it on.
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._held = False
        self._queue: deque[_Waiter] = deque()

    @property
    def locked(self) -> bool:
        """Whether someone holds the lock."""
        return self._held

    def _take(self) -> bool:
        """Take the free lock if nobody waits for it (guard held)."""
        if self._held or self._queue:
            return False
        self._held = True
        return True

    def _give_up(self, waiter: _Waiter) -> bool:
        """Leave the queue; `True` if the lock was granted meanwhile (now ours)."""
        with self._guard:
            if waiter.granted:
                return True
            self._queue.remove(waiter)
            return False

    def acquire(self, timeout: float | None = None) -> bool:
        """Block this thread until the lock is ours; `False` after `timeout` s."""
        with self._guard:
            if self._take():
                return True
            waiter = _ThreadWaiter()
            self._queue.append(waiter)
        try:
            if waiter.event.wait(timeout):
                return True
        except BaseException:  # e.g. KeyboardInterrupt while waiting
            if self._give_up(waiter):
                self.release()
            raise
        return self._give_up(waiter)

    async def aacquire(self, timeout: float | None = None) -> bool:
        """Await the lock without blocking the loop; `False` after `timeout` s."""
        loop = asyncio.get_running_loop()
        with self._guard:
            if self._take():
                return True
            waiter = _TaskWaiter(loop)
            self._queue.append(waiter)
        try:
            await asyncio.wait_for(waiter.future, timeout)
            return True
        except asyncio.TimeoutError:
            return self._give_up(waiter)
        except BaseException:  # cancelled while waiting
            if self._give_up(waiter):
                self.release()
            raise

    def release(self) -> None:
        """Hand the lock to the next live waiter, or free it."""
        with self._guard:
            while self._queue:
                waiter = self._queue.popleft()
                waiter.granted = True
                if waiter.wake():
                    return
            self._held = False


class LockTable:
    """`HandoffLock`s by key, each kept only while it is held or awaited."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._entries: dict[Hashable, tuple[HandoffLock, list[int]]] = {}

    def __len__(self) -> int:
        """How many keys are held or awaited now."""
        return len(self._entries)

    def _enter(self, key: Hashable) -> HandoffLock:
        with self._guard:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = (HandoffLock(), [0])
            entry[1][0] += 1
            return entry[0]

    def _leave(self, key: Hashable) -> None:
        with self._guard:
            users = self._entries[key][1]
            users[0] -= 1
            if users[0] == 0:
                del self._entries[key]

    def _forget_all(self) -> None:
        """Start empty (in a forked child, whose parent's holders are gone)."""
        self._guard = threading.Lock()
        self._entries = {}

    # unasync: twin
    @asynccontextmanager
    async def ahold(
        self, key: Hashable, timeout: float | None = None
    ) -> AsyncIterator[None]:
        """Hold the lock of `key` in this task; `TimeoutError` after `timeout`."""
        lock = self._enter(key)
        try:
            if not await lock.aacquire(timeout):
                raise TimeoutError(key)
            try:
                yield
            finally:
                lock.release()
        finally:
            self._leave(key)

    # unasync: twin-end
    # unasync: generated (the block above, made sync: do not edit)
    @contextmanager
    def hold(self, key: Hashable, timeout: float | None = None) -> Iterator[None]:
        """Hold the lock of `key` in this thread; `TimeoutError` after `timeout`."""
        lock = self._enter(key)
        try:
            if not lock.acquire(timeout):
                raise TimeoutError(key)
            try:
                yield
            finally:
                lock.release()
        finally:
            self._leave(key)

    # unasync: generated-end


#: The one table of the process: every tool instance, sync or async, uses it.
PROCESS_LOCKS = LockTable()

if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=PROCESS_LOCKS._forget_all)
