"""Several worker processes, one PostgreSQL, one Devic: no lost or doubled turn.

Each worker (`tests/postgres/_worker.py`) is a real process with its own
PostgresSaver, PostgresStore and PostgresAdvisoryLock, running an agent (or a
direct tool call) with a DevicAssistantTool. The Devic emulator runs in this
process, on 127.0.0.1, and every claim is checked on its request log and its
chats. Timeouts only guard against hangs; nothing asserts on timing.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from langchain_devic.testing import DevicEmulator, Write

ROOT = Path(__file__).resolve().parents[2]
API_KEY = "postgres-workers-key"
ASSISTANT = "workers-assistant"
#: Hang guards (seconds): never reached when things work.
START_GUARD = 90.0
CALL_GUARD = 60.0


def reply(conversation: Any) -> Any:
    """`Reply <turn>: <message>`; a message with "slow" is written over ~1.5 s."""
    text = f"Reply {conversation.turn}: {conversation.message}"
    if "slow" in conversation.message:
        return [Write(text, pieces=15, interval=0.1)]
    return text


class Worker:
    """A worker process, spoken to in JSON lines."""

    def __init__(self, dsn: str, base_url: str) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        command = [sys.executable, "-m", "tests.postgres._worker"]
        command.extend([dsn, base_url, API_KEY, ASSISTANT])
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _next_line(self, guard: float) -> str:
        try:
            line = self._lines.get(timeout=guard)
        except queue.Empty:
            pytest.fail(f"worker {self.process.pid}: no answer within {guard} s")
        if line is None:
            pytest.fail(f"worker {self.process.pid} exited ({self.process.poll()})")
        return line

    def wait_ready(self) -> None:
        assert self._next_line(START_GUARD).strip() == "ready"

    def send(self, op: str, thread: str, message: str = "") -> None:
        assert self.process.stdin is not None
        command = {"op": op, "thread": thread, "message": message}
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()

    def result(self) -> dict[str, Any]:
        answer: dict[str, Any] = json.loads(self._next_line(CALL_GUARD))
        assert answer["ok"], answer.get("error")
        return answer

    def call(self, op: str, thread: str, message: str = "") -> dict[str, Any]:
        self.send(op, thread, message)
        return self.result()

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=CALL_GUARD)

    def stop(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="module")
def emulator() -> DevicEmulator:
    return DevicEmulator(
        api_key=API_KEY,
        dialect="platform",
        random_seed=11,
        assistants={ASSISTANT: reply},
    )


@pytest.fixture(scope="module")
def spawn(database: str, base_url: str) -> Iterator[Callable[[int], list[Worker]]]:
    """Start workers (in parallel); all are stopped at the end of the module."""
    started: list[Worker] = []

    def start(count: int) -> list[Worker]:
        workers = [Worker(database, base_url) for _ in range(count)]
        started.extend(workers)
        for worker in workers:
            worker.wait_ready()
        return workers

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture(scope="module")
def workers(spawn: Callable[[int], list[Worker]]) -> list[Worker]:
    return spawn(4)


def sends(emulator: DevicEmulator, *messages: str) -> list[Any]:
    """The sends (message route) of these messages, in arrival order."""
    return [
        r for r in emulator.requests if r.route == "messages" and r.message in messages
    ]


def user_turns(emulator: DevicEmulator, chat: str) -> list[str]:
    return [m["content"] for m in emulator.conversations[chat] if m["role"] == "user"]


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + CALL_GUARD
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"hang guard: {what}")
        time.sleep(0.02)


def test_a_thread_moves_between_workers(
    workers: list[Worker], emulator: DevicEmulator
) -> None:
    messages = ["move one", "move two", "move three"]
    results = [
        worker.call("agent", "move", message)
        for worker, message in zip(workers, messages, strict=False)
    ]

    chat = results[0]["artifact"]["chat_uuid"]
    assert [r["artifact"]["chat_uuid"] for r in results] == [chat] * 3
    assert [r["content"] for r in results] == [
        f"Reply {n}: {m}" for n, m in enumerate(messages, start=1)
    ]
    assert [(r.chat_uuid, r.status) for r in sends(emulator, *messages)] == [
        (None, 201),
        (chat, 201),
        (chat, 201),
    ]
    assert user_turns(emulator, chat) == messages


def test_different_threads_at_once_never_share_a_chat(
    workers: list[Worker], emulator: DevicEmulator
) -> None:
    rounds = 2
    for n in range(rounds):
        for i, worker in enumerate(workers):
            worker.send("agent", f"own-{i}", f"own-{i} round {n}")
        for worker in workers:
            assert worker.result()["status"] == "success"

    chats: dict[str, str] = {}
    for i in range(len(workers)):
        messages = [f"own-{i} round {n}" for n in range(rounds)]
        sent = sends(emulator, *messages)
        assert [r.status for r in sent] == [201] * rounds
        assert sent[0].chat_uuid is None
        chats[f"own-{i}"] = chat = sent[1].chat_uuid
        assert user_turns(emulator, chat) == messages  # nobody else's turn in it
    assert len(set(chats.values())) == len(workers)


def test_first_calls_of_one_thread_on_four_workers_open_one_chat(
    workers: list[Worker], emulator: DevicEmulator
) -> None:
    messages = [f"race from worker {i}" for i in range(len(workers))]
    for worker, message in zip(workers, messages, strict=True):
        worker.send("tool", "race", message)
    results = [worker.result() for worker in workers]

    assert {r["status"] for r in results} == {"success"}
    chats = {r["artifact"]["chat_uuid"] for r in results}
    assert len(chats) == 1
    (chat,) = chats
    sent = sends(emulator, *messages)
    assert [r.chat_uuid for r in sent].count(None) == 1  # one chat was opened
    assert [r.status for r in sent] == [201] * len(messages)  # no 409, no retry
    assert sorted(user_turns(emulator, chat)) == sorted(messages)


def test_a_later_call_while_the_chat_is_busy_waits_and_lands(
    workers: list[Worker], emulator: DevicEmulator
) -> None:
    first, later = workers[0], workers[1]
    first.send("tool", "busy", "slow first turn")
    wait_for(
        lambda: [r.status for r in sends(emulator, "slow first turn")] == [201],
        "the first turn's run to start",
    )
    later.send("tool", "busy", "later turn")
    a, b = first.result(), later.result()

    chat = a["artifact"]["chat_uuid"]
    assert b["artifact"]["chat_uuid"] == chat
    assert (a["content"], b["content"]) == (
        "Reply 1: slow first turn",
        "Reply 2: later turn",
    )
    assert [
        (r.message, r.status) for r in sends(emulator, "slow first turn", "later turn")
    ] == [
        ("slow first turn", 201),
        ("later turn", 201),
    ]
    assert user_turns(emulator, chat) == ["slow first turn", "later turn"]


def test_sigkill_mid_call_then_resume_on_another_worker_sends_once(
    workers: list[Worker],
    spawn: Callable[[int], list[Worker]],
    emulator: DevicEmulator,
    database: str,
) -> None:
    from langgraph.store.postgres import PostgresStore

    victim, rescuer = workers[2], workers[3]
    message = "slow crash question"
    victim.send("agent", "crash", message)

    def marked() -> bool:
        with PostgresStore.from_conn_string(database) as store:
            item = store.get(("langchain_devic", ASSISTANT), "crash|")
        return item is not None and "pending" in item.value

    wait_for(marked, "the in-flight mark")  # Devic accepted the message ...
    victim.kill()  # ... and the worker dies while following the run

    result = rescuer.call("resume", "crash")

    assert result["status"] == "success"
    assert result["artifact"]["recovered"] is True
    assert result["content"] == f"Reply 1: {message}"
    assert len(sends(emulator, message)) == 1  # never sent a second time
    chat = result["artifact"]["chat_uuid"]
    assert user_turns(emulator, chat) == [message]
    workers[2] = spawn(1)[0]  # a fresh worker for any later test
