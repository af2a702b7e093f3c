"""Benchmark: DevicAssistantTool on several workers (locks, then throughput).

1. Lock overhead per delegated call: `DevicAssistantTool.invoke` / `ainvoke`
   against the in-process emulator (the one-call path, the tool's own store),
   with the default in-process lock and with `PostgresAdvisoryLock` (from a
   psycopg pool, and from a connection string: a connection per call); the
   overhead is the p50 difference to the in-process lock. Plus one bare
   hold/release of each lock.
2. Throughput: 4 worker processes (`tests/postgres/_worker.py`: PostgresStore,
   PostgresAdvisoryLock, crash-safe platform runs) serve 100 agent threads x 3
   turns against the emulator served on 127.0.0.1, each round's turn of a
   thread on another worker than the last. Every turn is checked on the
   emulator's log afterwards (one chat per thread, 3 turns each, no 409).

On demand only (not in `python -m tests.benchmarks`): it needs a PostgreSQL
server, `DEVIC_TEST_POSTGRES_DSN` (a libpq URL on 127.0.0.1 whose user may
create databases; `.ci/run` shows how to start a throwaway one).

Run: `python -m tests.benchmarks.bench_workers [--quick]`.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from langchain_core.tools import BaseTool

from langchain_devic import ChatDevic, DevicAssistantTool
from langchain_devic.locks import InProcessLock, PostgresAdvisoryLock
from langchain_devic.testing import DevicEmulator
from tests.benchmarks._common import (
    API_KEY,
    ASSISTANT,
    INPROCESS_BASE_URL,
    Table,
    bench_args,
    emit,
    median,
    percentile,
)

DSN_VARIABLE = "DEVIC_TEST_POSTGRES_DSN"


@contextmanager
def scratch_database() -> Iterator[str]:
    """A database of its own on the server of DEVIC_TEST_POSTGRES_DSN."""
    import psycopg

    server = os.environ.get(DSN_VARIABLE)
    if not server:
        sys.exit(f"set {DSN_VARIABLE} to a PostgreSQL URL on 127.0.0.1")
    name = f"devic_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(server)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ------------------------------------------------------------ lock overhead


def tool_with(lock: Any, emulator: DevicEmulator) -> DevicAssistantTool:
    model = ChatDevic(
        assistant_id=ASSISTANT,
        api_key=API_KEY,
        base_url=INPROCESS_BASE_URL,
        http_client=httpx.Client(transport=emulator.transport()),
        http_async_client=httpx.AsyncClient(transport=emulator.transport()),
    )
    return DevicAssistantTool(
        name="bench", description="Benchmarks.", chat_model=model, lock=lock
    )


def timed(step: Callable[[int], Any], calls: int) -> list[float]:
    """Microseconds per call of `step(i)`, after a short warm-up."""
    for i in range(20):
        step(-i - 1)
    times = []
    for i in range(calls):
        start = time.perf_counter()
        step(i)
        times.append((time.perf_counter() - start) * 1e6)
    return times


def atimed(step: Callable[[int], Any], calls: int) -> list[float]:
    async def run() -> list[float]:
        for i in range(20):
            await step(-i - 1)
        times = []
        for i in range(calls):
            start = time.perf_counter()
            await step(i)
            times.append((time.perf_counter() - start) * 1e6)
        return times

    return asyncio.run(run())


def lock_overhead(dsn: str, calls: int) -> Table:
    from psycopg_pool import AsyncConnectionPool, ConnectionPool

    emulator = DevicEmulator(api_key=API_KEY)
    pool = ConnectionPool(dsn, min_size=2, max_size=4, open=True)
    locks: dict[str, Callable[[], Any]] = {
        "InProcessLock (default)": InProcessLock,
        "PostgresAdvisoryLock(pool)": lambda: PostgresAdvisoryLock(pool),
        "PostgresAdvisoryLock(conninfo)": lambda: PostgresAdvisoryLock(dsn),
    }
    rows: list[list[Any]] = []
    baseline: dict[str, float] = {}
    for name, make in locks.items():
        lock = make()
        tool: BaseTool = tool_with(lock, emulator)

        def call(i: int, tool: BaseTool = tool) -> Any:
            args = {"message": f"m{i}"}
            return tool.invoke(args, {"configurable": {"thread_id": f"t{i % 50}"}})

        def hold(i: int, lock: Any = lock) -> None:
            with lock.hold(ASSISTANT, f"t{i % 50}"):
                pass

        for kind, times in (
            ("invoke", timed(call, calls)),
            ("hold only", timed(hold, calls)),
        ):
            p50 = median(times)
            baseline.setdefault(kind, p50)
            rows.append(
                [name, kind, calls, p50, percentile(times, 90), p50 - baseline[kind]]
            )
        emulator.reset()

    async def async_rows() -> None:
        apool = AsyncConnectionPool(dsn, min_size=2, max_size=4, open=False)
        await apool.open()
        try:
            for name, lock in (
                ("InProcessLock (default)", InProcessLock()),
                ("PostgresAdvisoryLock(async pool)", PostgresAdvisoryLock(apool)),
            ):
                tool = tool_with(lock, emulator)

                async def acall(i: int, tool: BaseTool = tool) -> Any:
                    config = {"configurable": {"thread_id": f"t{i % 50}"}}
                    return await tool.ainvoke({"message": f"m{i}"}, config)

                for i in range(20):
                    await acall(-i - 1)
                times = []
                for i in range(calls):
                    start = time.perf_counter()
                    await acall(i)
                    times.append((time.perf_counter() - start) * 1e6)
                p50 = median(times)
                baseline.setdefault("ainvoke", p50)
                rows.append(
                    [
                        name,
                        "ainvoke",
                        calls,
                        p50,
                        percentile(times, 90),
                        p50 - baseline["ainvoke"],
                    ]
                )
        finally:
            await apool.close()

    asyncio.run(async_rows())
    pool.close()
    return Table(
        title="Lock overhead per delegated call (in-process emulator)",
        columns=["lock", "call", "calls", "p50 µs", "p90 µs", "overhead µs (p50)"],
        rows=rows,
        notes=[
            "PostgreSQL on 127.0.0.1 (same machine): set lock_timeout, "
            "pg_advisory_lock, pg_advisory_unlock in two transactions.",
            "`conninfo` opens a connection per call: pass a pool in production.",
        ],
    )


# --------------------------------------------------------------- throughput


def throughput(dsn: str, threads: int, turns: int, workers: int) -> Table:
    from langgraph.store.postgres import PostgresStore

    from tests.postgres import test_workers_postgres as harness

    emulator = DevicEmulator(
        api_key=harness.API_KEY,
        dialect="platform",
        random_seed=5,
        assistants={harness.ASSISTANT: harness.reply},
    )
    with PostgresStore.from_conn_string(dsn) as store:
        store.setup()
    with emulator.serve() as server:
        pool = [harness.Worker(dsn, server.base_url) for _ in range(workers)]
        try:
            for worker in pool:
                worker.wait_ready()
            latencies: list[float] = []
            start = time.perf_counter()
            for turn in range(turns):  # a round: every thread's next turn
                batches: list[list[int]] = [[] for _ in pool]
                for t in range(threads):
                    batches[(t + turn) % workers].append(t)
                sent_at = time.perf_counter()
                for worker, batch in zip(pool, batches, strict=True):
                    for t in batch:
                        worker.send("tool", f"bench-{t}", f"thread {t} turn {turn}")
                for worker, batch in zip(pool, batches, strict=True):
                    for _ in batch:
                        assert worker.result()["status"] == "success"
                latencies.append(time.perf_counter() - sent_at)
            wall = time.perf_counter() - start
        finally:
            for worker in pool:
                worker.stop()
        sends = [r for r in emulator.requests if r.route == "messages"]
    assert len(sends) == threads * turns
    assert {r.status for r in sends} == {201}
    assert [r.chat_uuid for r in sends].count(None) == threads
    for chat, history in emulator.conversations.items():
        users = [m["content"] for m in history if m["role"] == "user"]
        assert len(users) == turns, (chat, users)
        assert len({u.rsplit(" turn ", 1)[0] for u in users}) == 1
    total = threads * turns
    return Table(
        title=f"{workers} workers, {threads} threads x {turns} turns (platform runs)",
        columns=["workers", "turns", "wall s", "turns/s", "round p50 s"],
        rows=[[workers, total, wall, total / wall, median(latencies)]],
        notes=[
            "Each turn: lock, store read, async send, in-flight mark, run followed "
            "(SSE), totals read twice, store write; the emulator writes each reply "
            "in 4 pieces 20 ms apart (80 ms per run).",
            "Checked afterwards on the emulator's log: one chat per thread, "
            f"{turns} user turns in each, every send 201 (no 409).",
        ],
    )


def main() -> int:
    args = bench_args(__doc__.splitlines()[0])
    calls = 60 if args.quick else 400
    threads = 20 if args.quick else 100
    with scratch_database() as dsn:
        tables = [lock_overhead(dsn, calls), throughput(dsn, threads, 3, 4)]
    emit(tables, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
