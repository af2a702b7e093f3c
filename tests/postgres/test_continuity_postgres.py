"""Exactly once through crashes and lost locks: real workers, a real PostgreSQL.

Each worker (`tests/postgres/_worker.py`) is a real process; the Devic
emulator runs here, and every claim is counted on its request log: one send
per turn, one chat per thread, nothing lost, typed errors only. Timeouts only
guard against hangs.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from langchain_devic.testing import DevicEmulator
from tests.postgres.conftest import DSN_VARIABLE
from tests.postgres.test_workers_postgres import (
    API_KEY,
    ASSISTANT,
    CALL_GUARD,
    Worker,
    reply,
    sends,
    wait_for,
)

#: The item key of a top-level agent thread in the store.
NAMESPACE = ("langchain_devic", ASSISTANT)


class Commanded(Worker):
    """A worker that takes whole commands (with `die`) and raw answers."""

    def __init__(self, database: str, base_url: str) -> None:
        super().__init__(database, base_url)
        self.database = database

    def command(self, **command: Any) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()

    def answer(self) -> dict[str, Any]:
        answer: dict[str, Any] = json.loads(self._next_line(CALL_GUARD))
        return answer

    def died(self) -> bool:
        try:
            self.process.wait(timeout=CALL_GUARD)
        except Exception:
            return False
        return self.process.returncode == 9


@pytest.fixture(scope="module")
def emulator() -> DevicEmulator:
    return DevicEmulator(
        api_key=API_KEY,
        dialect="platform",
        random_seed=13,
        assistants={ASSISTANT: reply},
    )


@pytest.fixture(scope="module")
def spawn(database: str, base_url: str) -> Iterator[Callable[[], Commanded]]:
    started: list[Commanded] = []

    def start() -> Commanded:
        worker = Commanded(database, base_url)
        started.append(worker)
        worker.wait_ready()
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture(scope="module")
def pair(spawn: Callable[[], Commanded]) -> list[Commanded]:
    return [spawn(), spawn()]


def chats_with(emulator: DevicEmulator, message: str) -> list[str]:
    return [
        chat
        for chat, turns in emulator.conversations.items()
        if any(m["role"] == "user" and m["content"] == message for m in turns)
    ]


def item_of(database: str, thread: str) -> Any:
    from langgraph.store.postgres import PostgresStore

    with PostgresStore.from_conn_string(database) as store:
        found = store.get(NAMESPACE, f"{thread}|")
    return None if found is None else found.value


#: Which sessions of the test database to end (never this one).
_WHICH = {
    "all": (
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = %(db)s AND pid <> pg_backend_pid()"
    ),
    "advisory": (
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = %(db)s AND pid <> pg_backend_pid() AND pid IN "
        "(SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted)"
    ),
    "pid": (
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = %(db)s AND pid <> pg_backend_pid() AND pid = %(pid)s"
    ),
}


def terminate(database: str, which: str, pid: int | None = None) -> int:
    """`pg_terminate_backend` on the test database's sessions `which` names."""
    import psycopg

    name = urlsplit(database).path.lstrip("/")
    with psycopg.connect(database, autocommit=True) as admin:
        rows = admin.execute(_WHICH[which], {"db": name, "pid": pid}).fetchall()
    return len(rows)


def test_the_checkpoint_alone_keeps_the_chat_across_processes(
    pair: list[Commanded], emulator: DevicEmulator
) -> None:
    first, second = pair
    first.command(op="plain", thread="ckpt", message="checkpoint one")
    a = first.answer()
    second.command(op="plain", thread="ckpt", message="checkpoint two")
    b = second.answer()

    assert a["ok"], a.get("error")
    assert b["ok"], b.get("error")
    chat = a["artifact"]["chat_uuid"]
    assert b["artifact"]["chat_uuid"] == chat
    assert b["content"] == "Reply 2: checkpoint two"
    assert [
        r.chat_uuid for r in sends(emulator, "checkpoint one", "checkpoint two")
    ] == [
        None,
        chat,
    ]
    assert item_of(pair[0].database, "ckpt") is None  # no store was involved


def test_killed_between_the_tool_and_the_checkpoint_answers_once(
    pair: list[Commanded], spawn: Callable[[], Commanded], emulator: DevicEmulator
) -> None:
    victim, rescuer = pair
    message = "answered then killed"
    victim.command(op="agent", thread="rerun", message=message, die="after_tool")
    assert victim.died()

    rescuer.command(op="resume", thread="rerun")
    result = rescuer.answer()

    assert result["ok"], result.get("error")
    assert result["content"] == f"Reply 1: {message}"
    assert len(sends(emulator, message)) == 1  # answered from the record
    assert len(chats_with(emulator, message)) == 1
    pair[0] = spawn()


def test_killed_between_the_send_and_the_mark_sends_once(
    pair: list[Commanded], spawn: Callable[[], Commanded], emulator: DevicEmulator
) -> None:
    victim, rescuer = pair
    message = "sent then killed"
    victim.command(op="agent", thread="intent", message=message, die="at_mark")
    assert victim.died()
    item = item_of(pair[0].database, "intent")
    assert item["pending"]["confirmed"] is False  # only the intent was written
    assert item["chat_uuid"] is None  # the chat Devic opened is unknown here

    rescuer.command(op="resume", thread="intent")
    result = rescuer.answer()

    assert result["ok"], result.get("error")
    assert result["artifact"]["recovered"] is True
    assert result["content"] == f"Reply 1: {message}"
    assert len(sends(emulator, message)) == 1
    assert chats_with(emulator, message) == [result["artifact"]["chat_uuid"]]
    assert (
        item_of(pair[0].database, "intent")["chat_uuid"]
        == (result["artifact"]["chat_uuid"])
    )
    pair[0] = spawn()


def test_a_lock_lost_mid_call_is_typed_and_the_turn_lands_once(
    pair: list[Commanded], emulator: DevicEmulator
) -> None:
    holder, other = pair
    message = "slow lost lock"
    holder.command(op="tool", thread="lost", message=message)
    wait_for(
        lambda: (
            (item_of(holder.database, "lost") or {}).get("pending", {}).get("confirmed")
            is True
        ),
        "the confirmed mark",
    )
    assert terminate(holder.database, "advisory") == 1

    lost = holder.answer()
    assert not lost["ok"]
    assert lost["type"] == "DevicLockError", lost["error"]
    assert "The turn was sent" in lost["error"]
    assert "psycopg" not in lost["error"].splitlines()[-1]

    other.command(op="tool", thread="lost", message=message)
    result = other.answer()
    assert result["ok"], result.get("error")
    assert result["artifact"]["recovered"] is True
    assert result["content"] == f"Reply 1: {message}"
    assert len(sends(emulator, message)) == 1
    assert len(chats_with(emulator, message)) == 1


def test_every_session_terminated_then_the_next_turn_goes_through(
    pair: list[Commanded], emulator: DevicEmulator
) -> None:
    """A database restart, as CI can do it: every session of the test
    database ends; pooled connections are checked, a broken lock connection
    is replaced: the next agent turn goes through, sent once."""
    worker = pair[1]
    worker.command(op="agent", thread="restart", message="before restart")
    assert worker.answer()["ok"]
    assert terminate(worker.database, "all") >= 3  # store, saver and lock pools

    worker.command(op="agent", thread="restart", message="after restart")
    result = worker.answer()

    assert result["ok"], result.get("error")
    assert result["content"] == "Reply 2: after restart"
    assert len(sends(emulator, "after restart")) == 1


def test_a_lock_on_a_broken_connection_retries_once_then_is_typed(
    database: str, caplog: pytest.LogCaptureFixture
) -> None:
    from psycopg_pool import ConnectionPool

    from langchain_devic import DevicLockError
    from langchain_devic.locks import PostgresAdvisoryLock

    with ConnectionPool(database, min_size=1, max_size=1, open=True) as pool:
        with pool.connection() as conn:  # the one pooled connection
            pid = conn.info.backend_pid
        assert terminate(database, "pid", pid) == 1
        lock = PostgresAdvisoryLock(pool, timeout=10)
        with lock.hold("scope", "broken") as held:
            held.check()  # a fresh connection holds it
        assert "retrying once on a fresh connection" in caplog.text

    parts = urlsplit(database)
    nowhere = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:1"))
    started = time.monotonic()
    down = PostgresAdvisoryLock(nowhere, timeout=5)
    with (
        pytest.raises(DevicLockError, match="Nothing was sent"),
        down.hold("scope", "down"),
    ):
        pass
    assert time.monotonic() - started < 10  # bounded: two quick refusals


def test_a_sql_ascii_database_is_refused_with_the_fix(postgres_dsn: str) -> None:
    import psycopg
    from langgraph.store.postgres import PostgresStore

    from langchain_devic import ChatDevic, DevicAssistantTool, DevicStoreError

    name = urlsplit(postgres_dsn).path.lstrip("/") + "_ascii"
    server = os.environ[DSN_VARIABLE]  # the cluster's own database
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(
            f"CREATE DATABASE \"{name}\" ENCODING 'SQL_ASCII' TEMPLATE template0 "
            "LC_COLLATE 'C' LC_CTYPE 'C'"
        )
    try:
        dsn = urlunsplit(urlsplit(postgres_dsn)._replace(path=f"/{name}"))
        with PostgresStore.from_conn_string(dsn) as store:
            store.setup()
            model = ChatDevic(
                assistant_id=ASSISTANT, api_key=API_KEY, base_url="http://127.0.0.1:9"
            )
            tool = DevicAssistantTool(
                name="devic", description="d", chat_model=model, store=store
            )
            call = {
                "name": "devic",
                "args": {"message": "hi"},
                "id": "c1",
                "type": "tool_call",
            }
            with pytest.raises(DevicStoreError, match="UTF-8") as caught:
                tool.invoke(call, {"configurable": {"thread_id": "ascii"}})
        assert "SQL_ASCII" in caught.value.message
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def test_an_async_hold_notices_its_session_ended(database: str) -> None:
    from psycopg_pool import AsyncConnectionPool

    from langchain_devic import DevicLockError
    from langchain_devic.locks import PostgresAdvisoryLock

    pool = AsyncConnectionPool(database, min_size=1, max_size=1, open=False)
    await pool.open()
    try:
        lock = PostgresAdvisoryLock(pool, timeout=10)
        async with lock.ahold("scope", "async-lost") as held:
            await held.acheck()  # still held
            assert terminate(database, "advisory") == 1
            with pytest.raises(DevicLockError, match="was lost"):
                await held.acheck()
        async with lock.ahold("scope", "async-lost") as again:  # a fresh session
            await again.acheck()
    finally:
        await pool.close()
