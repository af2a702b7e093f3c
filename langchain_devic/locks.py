"""Per-conversation locks for `DevicAssistantTool`: in-process, PostgreSQL advisory.

A Devic chat takes one message at a time, and the first call of an agent
thread opens its chat: two calls of one thread must never overlap between
reading the thread's chat id and storing the turn. A lock here is held around
exactly that, per (assistant, thread):

- `InProcessLock` (the default): one table for the whole process, shared by
  every tool instance, sync and async calls, threads and event loops. Enough
  for one worker process.
- `PostgresAdvisoryLock`: a PostgreSQL advisory lock per (assistant, thread),
  so workers on several machines that share one database never overlap either
  (install the `postgres` extra: `pip install "langchain-devic[postgres]"`).

Both wait at most `timeout` seconds (default `DEFAULT_LOCK_TIMEOUT`, longer than
a platform run may take) and then raise `DevicLockTimeoutError`: nothing was
sent, so the call may simply be made again. A tool turns it into an error
`ToolMessage` the agent can read. Any object with the same `hold` / `ahold`
methods (`ConversationLock`) plugs in too.

The same locks serve other code: hold one around `graph.invoke` to run one
LangGraph thread at a time across workers::

    lock = PostgresAdvisoryLock(pool)
    with lock.hold("my-graph", thread_id):
        graph.invoke(inputs, {"configurable": {"thread_id": thread_id}})
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import (
    AbstractAsyncContextManager,
    AbstractContextManager,
    AsyncExitStack,
    ExitStack,
    asynccontextmanager,
    contextmanager,
)
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from langchain_devic._locks import PROCESS_LOCKS
from langchain_devic.errors import DevicLockError, DevicLockTimeoutError

if TYPE_CHECKING:
    import psycopg
    import psycopg_pool

__all__ = [
    "DEFAULT_LOCK_TIMEOUT",
    "AsyncHeldLock",
    "ConversationLock",
    "DevicLockError",
    "DevicLockTimeoutError",
    "HeldLock",
    "InProcessLock",
    "PostgresAdvisoryLock",
    "advisory_key",
]

logger = logging.getLogger("langchain_devic")

#: Seconds a call waits for its conversation's lock: longer than the default
#: `run_timeout` (600 s) that bounds the turn of the call holding it.
DEFAULT_LOCK_TIMEOUT = 900.0


@runtime_checkable
class ConversationLock(Protocol):
    """Mutual exclusion per (scope, key), sync and async.

    `DevicAssistantTool` passes (assistant id, thread key). `hold` blocks the
    calling thread; `ahold` awaits without blocking the event loop. Both raise
    `DevicLockTimeoutError` when the lock cannot be had in time. A lock that
    can be lost while held (its database session ends) yields an object with
    `check()` (from `hold`) or `acheck()` (from `ahold`) raising
    `DevicLockError` once it is lost; the tool calls it before it sends and
    before each write of the thread's record. Others yield `None`.
    """

    def hold(self, scope: str, key: str) -> AbstractContextManager[Any]:
        """Hold the lock of (scope, key) in this thread."""
        ...

    def ahold(self, scope: str, key: str) -> AbstractAsyncContextManager[Any]:
        """Hold the lock of (scope, key) in this task."""
        ...


def advisory_key(scope: str, key: str) -> int:
    """The stable signed 64-bit advisory lock number of (scope, key).

    The first 8 bytes of a SHA-256, so every process, machine and Python
    version computes the same number (Python's `hash` is salted per process).
    """
    digest = hashlib.sha256(f"langchain_devic\0{scope}\0{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _check_timeout(timeout: float | None) -> float | None:
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout < 0
    ):
        msg = f"timeout must be a number of seconds >= 0 or None, got {timeout!r}."
        raise ValueError(msg)
    return None if timeout is None else float(timeout)


def _timed_out(scope: str, key: str, timeout: float | None) -> DevicLockTimeoutError:
    waited = "in time" if timeout is None else f"within {timeout:g} s"
    return DevicLockTimeoutError(
        f"The lock of conversation {key!r} (scope {scope!r}) could not be taken "
        f"{waited}: another call of it is still running. Nothing was sent. Try "
        "again later, or raise the lock's timeout if turns take that long."
    )


def _left(deadline: float | None) -> float | None:
    """Seconds until `deadline` (never negative), or `None` for no deadline."""
    return None if deadline is None else max(deadline - time.monotonic(), 0.0)


class InProcessLock:
    """One lock per (scope, key) for the whole process (the tools' default).

    Every instance uses the same process-wide table, so two tool objects, a
    sync and an async call, or two event loops never overlap on one thread.
    Threads block; tasks await.

    Args:
        timeout: Seconds to wait before `DevicLockTimeoutError` (`None`:
            forever).
    """

    def __init__(self, *, timeout: float | None = DEFAULT_LOCK_TIMEOUT) -> None:
        self.timeout = _check_timeout(timeout)

    def __repr__(self) -> str:
        return f"InProcessLock(timeout={self.timeout!r})"

    # unasync: twin
    @asynccontextmanager
    async def ahold(self, scope: str, key: str) -> AsyncIterator[None]:
        """Hold the lock of (scope, key) in this task."""
        try:
            async with PROCESS_LOCKS.ahold((scope, key), self.timeout):
                yield
        except TimeoutError as exc:
            if exc.args != ((scope, key),):
                raise
            raise _timed_out(scope, key, self.timeout) from None

    # unasync: twin-end
    # unasync: generated (the block above, made sync: do not edit)
    @contextmanager
    def hold(self, scope: str, key: str) -> Iterator[None]:
        """Hold the lock of (scope, key) in this thread."""
        try:
            with PROCESS_LOCKS.hold((scope, key), self.timeout):
                yield
        except TimeoutError as exc:
            if exc.args != ((scope, key),):
                raise
            raise _timed_out(scope, key, self.timeout) from None

    # unasync: generated-end


class PostgresAdvisoryLock:
    """A PostgreSQL advisory lock per (scope, key): one holder across machines.

    Holding takes this process's own lock for (scope, key) first (so one
    process waits on one connection per key), then a session-level
    `pg_advisory_lock(advisory_key(scope, key))` on a connection kept for the
    whole hold, and `pg_advisory_unlock` at the end. If the process dies, its
    connection closes and PostgreSQL frees the lock: a crashed worker never
    blocks a thread for longer than it takes the server to see the socket close.

    Args:
        conninfo_or_pool: A libpq connection string (`"postgresql://…"`; each
            hold opens, then closes, its own connection), or a psycopg 3
            `ConnectionPool` / `AsyncConnectionPool` (a hold borrows one
            connection; a sync pool used by an async call, or the other way
            round, opens one-off connections with the pool's settings).
        timeout: Seconds a hold may wait, in this process and in PostgreSQL
            (`lock_timeout`) together, before `DevicLockTimeoutError` (`None`:
            forever).

    Raises:
        ImportError: If psycopg is not installed (the `postgres` extra).
        TypeError: If `conninfo_or_pool` is neither a string nor a psycopg pool.
    """

    def __init__(
        self,
        conninfo_or_pool: str
        | psycopg_pool.ConnectionPool[Any]
        | psycopg_pool.AsyncConnectionPool[Any],
        *,
        timeout: float | None = DEFAULT_LOCK_TIMEOUT,
    ) -> None:
        _psycopg()
        self.timeout = _check_timeout(timeout)
        self._pool: Any = None
        self._apool: Any = None
        if isinstance(conninfo_or_pool, str):
            self._conninfo: str = conninfo_or_pool
            self._connect_kwargs: dict[str, Any] = {}
            return
        pools = _pool_classes()
        if pools is not None and isinstance(conninfo_or_pool, pools[0]):
            self._pool = conninfo_or_pool
        elif pools is not None and isinstance(conninfo_or_pool, pools[1]):
            self._apool = conninfo_or_pool
        else:
            msg = (
                "PostgresAdvisoryLock takes a libpq connection string or a psycopg "
                "ConnectionPool / AsyncConnectionPool, got "
                f"{type(conninfo_or_pool).__name__}."
            )
            raise TypeError(msg)
        self._conninfo = conninfo_or_pool.conninfo
        self._connect_kwargs = dict(conninfo_or_pool.kwargs or {})

    def __repr__(self) -> str:
        # The connection string may hold a password: never shown.
        source = "pool" if self._pool or self._apool else "conninfo"
        return f"PostgresAdvisoryLock(<{source}>, timeout={self.timeout!r})"

    def __copy__(self) -> PostgresAdvisoryLock:
        return self  # a pool is shared, never copied

    def __deepcopy__(self, memo: dict[int, Any]) -> PostgresAdvisoryLock:
        return self

    # Each hold is written once, async; its sync twin below is generated.
    # unasync: twin
    @asynccontextmanager
    async def ahold(self, scope: str, key: str) -> AsyncIterator[AsyncHeldLock]:
        """Hold the advisory lock of (scope, key) in this task.

        Yields a held lock whose `.acheck()` says whether it is still held. A
        connection that breaks while the lock is being taken is replaced once
        by a fresh one; a second failure is `DevicLockError`.
        """
        psycopg = _psycopg()
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        async with InProcessLock(timeout=self.timeout).ahold(scope, key):
            number = advisory_key(scope, key)
            for attempt in (1, 2):
                async with AsyncExitStack() as stack:
                    try:
                        conn = await stack.enter_async_context(
                            self._aconnection(scope, key, deadline)
                        )
                        await self._alock(conn, number, _left(deadline), scope, key)
                    except psycopg.Error as exc:
                        if attempt == 1:
                            _log_retry(scope, key, exc)
                            continue
                        raise _broken(scope, key, exc) from exc
                    try:
                        yield AsyncHeldLock(conn, scope, key)
                    finally:
                        await self._aunlock(conn, number)
                    return

    @asynccontextmanager
    async def _aconnection(
        self, scope: str, key: str, deadline: float | None
    ) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A connection for one hold: borrowed from the pool, or opened for it."""
        psycopg, pool_errors = _psycopg(), _pool_errors()
        if self._apool is None:
            async with await psycopg.AsyncConnection.connect(
                self._conninfo, autocommit=True, **self._connect_kwargs
            ) as conn:
                yield conn
            return
        try:
            async with self._apool.connection(timeout=_left(deadline)) as conn:
                yield conn
        except pool_errors as exc:
            raise _timed_out(scope, key, self.timeout) from exc

    async def _alock(
        self,
        conn: psycopg.AsyncConnection[Any],
        number: int,
        left: float | None,
        scope: str,
        key: str,
    ) -> None:
        """Take the session lock, waiting at most `left` seconds in PostgreSQL."""
        psycopg = _psycopg()
        try:
            async with conn.transaction():
                await conn.execute(_LOCAL_TIMEOUT, (_milliseconds(left),))
                await conn.execute(_LOCK, (number,))
        except psycopg.errors.LockNotAvailable:
            raise _timed_out(scope, key, self.timeout) from None
        except BaseException:  # state unknown: a closed session holds no lock
            await conn.close()
            raise

    @staticmethod
    async def _aunlock(conn: psycopg.AsyncConnection[Any], number: int) -> None:
        """Release the session lock; if that fails, close the session (frees it)."""
        try:
            async with conn.transaction():
                await conn.execute(_UNLOCK, (number,))
        except Exception as exc:  # the hold's own outcome must not be masked
            logger.warning(
                "Could not release advisory lock %d (%s); closing its "
                "session, which releases it.",
                number,
                exc,
            )
            await conn.close()
        except BaseException:
            await conn.close()
            raise

    # unasync: twin-end
    # unasync: generated (the block above, made sync: do not edit)
    @contextmanager
    def hold(self, scope: str, key: str) -> Iterator[HeldLock]:
        """Hold the advisory lock of (scope, key) in this thread.

        Yields a held lock whose `.check()` says whether it is still held. A
        connection that breaks while the lock is being taken is replaced once
        by a fresh one; a second failure is `DevicLockError`.
        """
        psycopg = _psycopg()
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        with InProcessLock(timeout=self.timeout).hold(scope, key):
            number = advisory_key(scope, key)
            for attempt in (1, 2):
                with ExitStack() as stack:
                    try:
                        conn = stack.enter_context(
                            self._connection(scope, key, deadline)
                        )
                        self._lock(conn, number, _left(deadline), scope, key)
                    except psycopg.Error as exc:
                        if attempt == 1:
                            _log_retry(scope, key, exc)
                            continue
                        raise _broken(scope, key, exc) from exc
                    try:
                        yield HeldLock(conn, scope, key)
                    finally:
                        self._unlock(conn, number)
                    return

    @contextmanager
    def _connection(
        self, scope: str, key: str, deadline: float | None
    ) -> Iterator[psycopg.Connection[Any]]:
        """A connection for one hold: borrowed from the pool, or opened for it."""
        psycopg, pool_errors = _psycopg(), _pool_errors()
        if self._pool is None:
            with psycopg.Connection.connect(
                self._conninfo, autocommit=True, **self._connect_kwargs
            ) as conn:
                yield conn
            return
        try:
            with self._pool.connection(timeout=_left(deadline)) as conn:
                yield conn
        except pool_errors as exc:
            raise _timed_out(scope, key, self.timeout) from exc

    def _lock(
        self,
        conn: psycopg.Connection[Any],
        number: int,
        left: float | None,
        scope: str,
        key: str,
    ) -> None:
        """Take the session lock, waiting at most `left` seconds in PostgreSQL."""
        psycopg = _psycopg()
        try:
            with conn.transaction():
                conn.execute(_LOCAL_TIMEOUT, (_milliseconds(left),))
                conn.execute(_LOCK, (number,))
        except psycopg.errors.LockNotAvailable:
            raise _timed_out(scope, key, self.timeout) from None
        except BaseException:  # state unknown: a closed session holds no lock
            conn.close()
            raise

    @staticmethod
    def _unlock(conn: psycopg.Connection[Any], number: int) -> None:
        """Release the session lock; if that fails, close the session (frees it)."""
        try:
            with conn.transaction():
                conn.execute(_UNLOCK, (number,))
        except Exception as exc:  # the hold's own outcome must not be masked
            logger.warning(
                "Could not release advisory lock %d (%s); closing its "
                "session, which releases it.",
                number,
                exc,
            )
            conn.close()
        except BaseException:
            conn.close()
            raise

    # unasync: generated-end


# unasync: twin
class AsyncHeldLock:
    """A held PostgreSQL advisory lock: `.acheck()` raises if it was lost.

    A session-level advisory lock lasts as long as its session: if the
    session still answers, the lock is still held. `DevicAssistantTool`
    checks before it sends and before each write of the thread's record.
    """

    def __init__(
        self, conn: psycopg.AsyncConnection[Any], scope: str, key: str
    ) -> None:
        self._conn, self.scope, self.key = conn, scope, key

    async def acheck(self) -> None:
        """Raise `DevicLockError` if the lock's session has ended."""
        try:
            await self._conn.execute(_ALIVE)
        except Exception as exc:
            raise _lost(self.scope, self.key, exc) from exc


# unasync: twin-end
# unasync: generated (the block above, made sync: do not edit)
class HeldLock:
    """A held PostgreSQL advisory lock: `.check()` raises if it was lost.

    A session-level advisory lock lasts as long as its session: if the
    session still answers, the lock is still held. `DevicAssistantTool`
    checks before it sends and before each write of the thread's record.
    """

    def __init__(self, conn: psycopg.Connection[Any], scope: str, key: str) -> None:
        self._conn, self.scope, self.key = conn, scope, key

    def check(self) -> None:
        """Raise `DevicLockError` if the lock's session has ended."""
        try:
            self._conn.execute(_ALIVE)
        except Exception as exc:
            raise _lost(self.scope, self.key, exc) from exc


# unasync: generated-end


def _lost(scope: str, key: str, exc: BaseException) -> DevicLockError:
    return DevicLockError(
        f"The advisory lock of conversation {key!r} (scope {scope!r}) was lost: "
        f"its PostgreSQL session ended ({type(exc).__name__}: {exc})."
    )


def _broken(scope: str, key: str, exc: BaseException) -> DevicLockError:
    return DevicLockError(
        f"The advisory lock of conversation {key!r} (scope {scope!r}) could not be "
        f"taken: the database failed twice ({type(exc).__name__}: {exc}). Nothing "
        "was sent; check the database, then call again."
    )


def _log_retry(scope: str, key: str, exc: BaseException) -> None:
    logger.warning(
        "The lock connection for conversation %r (scope %r) failed (%s: %s); "
        "retrying once on a fresh connection.",
        key,
        scope,
        type(exc).__name__,
        exc,
    )


_ALIVE = "SELECT 1"
#: `lock_timeout` for this transaction only ('0' is PostgreSQL's "no limit").
_LOCAL_TIMEOUT = "SELECT set_config('lock_timeout', %s, true)"
_LOCK = "SELECT pg_advisory_lock(%s)"
_UNLOCK = "SELECT pg_advisory_unlock(%s)"


def _milliseconds(left: float | None) -> str:
    """A `lock_timeout` value: at least 1 ms once a deadline is set."""
    return "0" if left is None else f"{max(int(left * 1000), 1)}ms"


def _psycopg() -> Any:
    """The psycopg 3 module, imported on first use (the `postgres` extra)."""
    try:
        import psycopg
    except ImportError as exc:
        msg = (
            "PostgresAdvisoryLock needs psycopg 3: pip install "
            '"langchain-devic[postgres]" (psycopg[binary] and psycopg-pool).'
        )
        raise ImportError(msg) from exc
    return psycopg


def _pool_classes() -> tuple[type[Any], type[Any]] | None:
    try:
        import psycopg_pool
    except ImportError:
        return None
    return psycopg_pool.ConnectionPool, psycopg_pool.AsyncConnectionPool


def _pool_errors() -> tuple[type[BaseException], ...]:
    """A pool's "no connection in time" error (none without psycopg-pool)."""
    try:
        import psycopg_pool
    except ImportError:
        return ()
    return (psycopg_pool.PoolTimeout,)
