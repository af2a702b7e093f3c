"""Fault soak: 300 conversations x 4 turns over loopback HTTP, with injected faults.

One `ChatDevic` (`max_retries=3`, 1 s read timeout) drives 300 conversations,
32 at a time, against `DevicEmulator.serve()` on 127.0.0.1. A seeded fault
policy answers ~15 % of requests with a fault the client should retry (429 with
`Retry-After: 0`, 503) or cannot (a connection dropped before any answer), and
~3 % with one that ran the turn (500, or a stall past the read timeout).

The policy decides from the message text and its attempt number only, so the
run is deterministic whatever the scheduling, and the expected outcome of every
turn follows from the retry policy (docs/errors.md; `expected_outcome`). The test
then checks the client's view against that oracle and against the emulator's
request log and conversations: nothing lost, nothing posted twice, nothing
processed by a retried attempt, every failure a typed `DevicError`.

Run with `-s` to see the counts.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass

import pytest
from langchain_core.messages import AIMessage

from langchain_devic import ChatDevic, _clock
from langchain_devic.errors import (
    DevicConnectionError,
    DevicError,
    DevicRateLimitError,
    DevicServerError,
    DevicTimeoutError,
)
from langchain_devic.testing import DevicEmulator, Fault, RecordedRequest

pytestmark = pytest.mark.allow_hosts(["127.0.0.1"])

API_KEY = "soak-test-key"
ASSISTANT = "soak-assistant"
CONVERSATIONS = 300
TURNS = 4
CONCURRENCY = 32
MAX_RETRIES = 3
SEED = 20_251_126
CLIENT_TIMEOUT = 1.0
STALL = 1.5
#: A hang guard (asyncio.wait_for), not a timing assertion.
WALL_BUDGET = 60.0

#: Cumulative thresholds of one roll in [0, 1): which fault, if any.
#: Retryable (15 %): 429, 503, drop. Non-retryable, turn processed (3 %): 500,
#: read timeout (kept rare: each one holds a conversation for the 1 s timeout).
FAULT_TABLE: tuple[tuple[float, str], ...] = (
    (0.06, "429"),
    (0.11, "503"),
    (0.15, "drop"),
    (0.175, "500"),
    (0.18, "read_timeout"),
)
#: Fault kinds that still run the turn on the server.
PROCESSING_FAULTS = frozenset({"500", "read_timeout"})
RETRIED_FAULTS = frozenset({"429", "503"})


def message_for(conversation: int, turn: int) -> str:
    return f"conv{conversation}-turn{turn}"


def planned_fault(message: str, attempt: int) -> str | None:
    """The fault for this message's `attempt`-th request (0-based), or None."""
    roll = random.Random(f"{SEED}:{message}:{attempt}").random()
    for threshold, kind in FAULT_TABLE:
        if roll < threshold:
            return kind
    return None


def make_fault(kind: str) -> Fault:
    return {
        "429": lambda: Fault.status(429, retry_after=0),
        "503": lambda: Fault.status(503),
        "drop": Fault.drop,
        "500": lambda: Fault.status(500),
        "read_timeout": lambda: Fault.read_timeout(STALL),
    }[kind]()


@dataclass(frozen=True)
class Expected:
    """What the retry policy says must happen to one turn."""

    attempts: int
    faults: tuple[str | None, ...]
    error: type[DevicError] | None
    status_code: int | None
    processed: bool
    retryable: bool = False
    #: Chat reads that settled an unknown outcome.
    settles: int = 0
    #: The reply was read back from the chat (the send's answer was lost).
    recovered: bool = False


def expected_outcome(message: str, continued: bool) -> Expected:
    """The retry policy applied to the planned faults of one turn.

    On a continued chat an unknown outcome (a drop, a 500, a read timeout) is
    settled by reading the chat: a turn that ran is returned from it, one that
    did not is sent again within the retries. A new chat cannot be read.
    """
    faults: list[str | None] = []
    settles = 0
    for attempt in range(MAX_RETRIES + 1):
        kind = planned_fault(message, attempt)
        faults.append(kind)
        if kind is None:
            return Expected(
                attempt + 1, tuple(faults), None, None, True, settles=settles
            )
        if kind in RETRIED_FAULTS and attempt < MAX_RETRIES:
            continue
        if continued and kind in PROCESSING_FAULTS:
            return Expected(
                attempt + 1,
                tuple(faults),
                None,
                None,
                True,
                settles=settles + 1,
                recovered=True,
            )
        if continued and kind == "drop":
            settles += 1  # the chat shows no such turn: safe to send again
            if attempt < MAX_RETRIES:
                continue
            return Expected(
                attempt + 1,
                tuple(faults),
                DevicConnectionError,
                None,
                False,
                retryable=True,
                settles=settles,
            )
        # (error, status, processed, is_retryable): a 429/503 that outlived the
        # retries is still safe to retry later; the others may have run.
        error, status, processed, retryable = {
            "429": (DevicRateLimitError, 429, False, True),
            "503": (DevicServerError, 503, False, True),
            "drop": (DevicConnectionError, None, False, False),
            "500": (DevicServerError, 500, True, False),
            "read_timeout": (DevicTimeoutError, None, True, False),
        }[kind]
        return Expected(
            attempt + 1, tuple(faults), error, status, processed, retryable, settles
        )
    raise AssertionError("unreachable: the last attempt always returns")


class SeededFaults:
    """The emulator's `fault_policy`: deterministic per (message, attempt)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.attempts: Counter[str] = Counter()
        self.injected: Counter[str] = Counter()

    def __call__(self, record: RecordedRequest) -> Fault | None:
        if record.method != "POST":
            return None  # a chat read that settles an unknown outcome
        assert record.message is not None, record
        with self._lock:
            attempt = self.attempts[record.message]
            self.attempts[record.message] += 1
            kind = planned_fault(record.message, attempt)
            if kind is not None:
                self.injected[kind] += 1
        return make_fault(kind) if kind is not None else None


@dataclass
class TurnResult:
    """What the client saw for one turn."""

    conversation: int
    turn: int
    sent_chat: str | None
    reply: AIMessage | None = None
    error: BaseException | None = None


def record_kind(record: RecordedRequest) -> str | None:
    """The planned-fault name a recorded request shows (None: a normal answer)."""
    if record.fault is None:
        return None
    if record.fault == "status":
        return str(record.status)
    return record.fault


async def test_fault_soak(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []

    async def no_wait(seconds: float) -> None:
        waits.append(seconds)
        await asyncio.sleep(0)

    monkeypatch.setattr(_clock, "asleep", no_wait)
    monkeypatch.setattr(_clock, "sleep", waits.append)

    emulator = DevicEmulator(api_key=API_KEY, assistants=[ASSISTANT], random_seed=SEED)
    policy = SeededFaults()
    emulator.fault_policy = policy
    results: dict[str, TurnResult] = {}
    started = time.perf_counter()

    with emulator.serve() as server:
        model = ChatDevic(
            model=ASSISTANT,
            api_key=API_KEY,
            base_url=server.base_url,
            timeout=CLIENT_TIMEOUT,
            max_retries=MAX_RETRIES,
        )
        gate = asyncio.Semaphore(CONCURRENCY)

        def chat_that_processed(message: str) -> str | None:
            """The chat the server opened for `message`, from its own record."""
            for chat_id, history in emulator.conversations.items():
                if {"role": "user", "content": message} in history:
                    return chat_id
            return None

        async def converse(conversation: int) -> None:
            chat: str | None = None
            async with gate:
                for turn in range(TURNS):
                    message = message_for(conversation, turn)
                    result = TurnResult(conversation, turn, chat)
                    results[message] = result
                    try:
                        result.reply = await model.ainvoke(message, chat_uuid=chat)
                    except Exception as exc:  # checked below: must be a DevicError
                        result.error = exc
                        if chat is None:
                            # The first answer was lost; the emulator's record
                            # says whether the turn opened a chat to continue.
                            chat = chat_that_processed(message)
                        continue
                    chat = result.reply.response_metadata["chat_uuid"]

        await asyncio.wait_for(
            asyncio.gather(*(converse(i) for i in range(CONVERSATIONS))),
            timeout=WALL_BUDGET,
        )
        await model.async_client.aclose()
        requests = emulator.requests
        conversations = emulator.conversations
    elapsed = time.perf_counter() - started

    # ------------------------------------------------------------ the counts
    attempted = len(results)
    succeeded = sum(1 for r in results.values() if r.reply is not None)
    failed_by_type = Counter(
        type(r.error).__name__ for r in results.values() if r.error is not None
    )
    retried = len(waits)
    print(
        f"\nfault soak: {CONVERSATIONS} conversations x {TURNS} turns, "
        f"{CONCURRENCY} at a time, in {elapsed:.1f} s\n"
        f"  attempted {attempted}, succeeded {succeeded}, retried {retried}, "
        f"failed {sum(failed_by_type.values())} {dict(sorted(failed_by_type.items()))}"
        f"\n  requests {len(requests)}, faults injected "
        f"{dict(sorted(policy.injected.items()))}"
    )
    expected = {
        m: expected_outcome(m, continued=r.sent_chat is not None)
        for m, r in results.items()
    }
    posts = [r for r in requests if r.method == "POST"]
    reads = [r for r in requests if r.method == "GET"]
    assert attempted == CONVERSATIONS * TURNS == 1200
    assert succeeded + sum(failed_by_type.values()) == attempted
    # Every wait is a write's retry, or (rarely) a settling read's: a read
    # whose pooled connection the server had just dropped is read again.
    write_retries = sum(e.attempts - 1 for e in expected.values())
    assert len(posts) == attempted + write_retries
    assert write_retries <= retried <= write_retries + len(reads)
    assert len(reads) == sum(e.settles for e in expected.values())
    assert len(requests) == len(posts) + len(reads)
    assert sum(policy.attempts.values()) == len(posts)
    assert sum(policy.injected.values()) == sum(
        1 for r in requests if r.fault is not None
    )
    # The mix the soak is meant to exercise actually happened.
    assert set(policy.injected) == {"429", "503", "drop", "500", "read_timeout"}
    fault_share = sum(policy.injected.values()) / len(posts)
    assert 0.12 <= fault_share <= 0.24, fault_share
    assert retried >= 100, retried

    # ------------------------------------------- the oracle: the retry policy
    assert any(e.recovered for e in expected.values())
    assert succeeded == sum(1 for e in expected.values() if e.error is None)
    assert failed_by_type == Counter(
        e.error.__name__ for e in expected.values() if e.error is not None
    )

    by_message: dict[str, list[RecordedRequest]] = defaultdict(list)
    for record in posts:
        assert record.assistant_id == ASSISTANT, record
        assert record.method == "POST", record
        assert record.message is not None, record
        by_message[record.message].append(record)
    assert set(by_message) == set(results)

    user_turns: dict[str, str] = {}  # message -> the chat holding it
    for chat_id, history in conversations.items():
        for item in history:
            if item["role"] == "user":
                assert item["content"] not in user_turns, (
                    f"{item['content']} processed twice"
                )
                user_turns[item["content"]] = chat_id

    for message, result in results.items():
        exp = expected[message]
        records = by_message[message]
        # The wire saw exactly the attempts the policy allows, with its faults.
        assert len(records) == exp.attempts, (message, records)
        assert [record_kind(r) for r in records] == list(exp.faults), message
        assert all(r.chat_uuid == result.sent_chat for r in records), message
        # Retried or dropped attempts never processed the turn; at most the
        # last attempt did, and then exactly when the policy says so.
        processing = [
            r for r in records if r.status == 200 or record_kind(r) in PROCESSING_FAULTS
        ]
        assert len(processing) == (1 if exp.processed else 0), (message, records)
        if processing:
            assert processing[0] is records[-1], (message, records)
        assert (message in user_turns) is exp.processed, message

        if exp.error is None:
            assert result.error is None, (message, result.error)
            assert result.reply is not None
            answered = [r.status for r in records].count(200)
            assert answered == (0 if exp.recovered else 1), records
            chat = result.reply.response_metadata["chat_uuid"]
            assert user_turns[message] == chat, message
            if result.sent_chat is not None:
                assert chat == result.sent_chat, message
            position = [
                m["content"] for m in conversations[chat] if m["role"] == "user"
            ].index(message)
            assert result.reply.text == (
                f"Reply {position + 1} from {ASSISTANT}: {message}"
            )
            assert result.reply.response_metadata["assistant_id"] == ASSISTANT
        else:
            assert result.reply is None, message
            assert type(result.error) is exp.error, (message, result.error)
            assert isinstance(result.error, DevicError)
            assert result.error.is_retryable is exp.retryable, message
            if exp.status_code is not None:
                assert getattr(result.error, "status_code", None) == exp.status_code
            if message in user_turns and result.sent_chat is not None:
                assert user_turns[message] == result.sent_chat, message

    # ---------------- every conversation lives in one chat, turns in order
    chats_of: dict[int, set[str]] = defaultdict(set)
    for message, chat_id in user_turns.items():
        chats_of[results[message].conversation].add(chat_id)
    for conversation in range(CONVERSATIONS):
        processed = [
            message_for(conversation, t)
            for t in range(TURNS)
            if expected[message_for(conversation, t)].processed
        ]
        if not processed:
            assert conversation not in chats_of
            continue
        assert len(chats_of[conversation]) == 1, (conversation, chats_of[conversation])
        (chat_id,) = chats_of[conversation]
        history = conversations[chat_id]
        assert [m["content"] for m in history if m["role"] == "user"] == processed
        assert [m["role"] for m in history] == ["user", "assistant"] * len(processed)
        for index, message in enumerate(processed):
            assert history[2 * index + 1]["content"] == (
                f"Reply {index + 1} from {ASSISTANT}: {message}"
            )
