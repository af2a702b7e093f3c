"""Benchmark 4: memory — the tool's conversation store, and leaks per call.

1. RSS growth for 10,000 conversations tracked by `DevicAssistantTool`'s
   default store: 10,000 tool calls on distinct `thread_id`s through the
   in-process emulator transport.
2. RSS and `tracemalloc` after each round of 1,000 sequential `ChatDevic.invoke`
   (and `ainvoke`) calls: flat after the warm-up round means no leak.

The emulator keeps every request and conversation it sees; it is reset between
rounds (its ids re-seeded so they stay unique), outside the measurement, so the
numbers are the client's. RSS and tracemalloc phases run separately, because
tracemalloc's own bookkeeping would inflate RSS.

Run: `python -m tests.benchmarks.bench_memory [--quick]`.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import tracemalloc
from collections.abc import Callable
from typing import Any

import httpx

from langchain_devic import ChatDevic, DevicAssistantTool
from langchain_devic.testing import DevicEmulator
from tests.benchmarks._common import (
    API_KEY,
    ASSISTANT,
    INPROCESS_BASE_URL,
    Table,
    bench_args,
    emit,
    rss_kib,
)

CONVERSATIONS = 10_000
CALLS_PER_ROUND = 1_000
EMULATOR_RESET_EVERY = 1_000


class Rig:
    """An emulator and a ChatDevic wired to it in-process, reset between rounds."""

    def __init__(self) -> None:
        self.emulator = DevicEmulator(api_key=API_KEY, random_seed=0)
        transport = self.emulator.transport()
        self.model = ChatDevic(
            model=ASSISTANT,
            api_key=API_KEY,
            base_url=INPROCESS_BASE_URL,
            http_client=httpx.Client(transport=transport),
            http_async_client=httpx.AsyncClient(transport=transport),
        )
        self._epoch = 0

    def reset(self) -> None:
        """Forget the emulator's log and chats; new ids never repeat old ones."""
        self._epoch += 1
        self.emulator.reset()
        self.emulator.random_seed = self._epoch
        gc.collect()


def settled_rss() -> int:
    gc.collect()
    return rss_kib()


def traced_bytes() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


# ----------------------------------------------------------------- the store


def store_growth(count: int, measure: Callable[[], int]) -> tuple[int, int]:
    """(growth, store size): `measure()` before and after `count` tool calls."""
    rig = Rig()
    tool = DevicAssistantTool(
        name="billing", description="Answers billing questions.", chat_model=rig.model
    )
    for i in range(200):  # warm-up: no thread id, so nothing is stored
        tool.invoke({"message": f"warm-up {i}"})
    rig.reset()
    before = measure()
    for i in range(count):
        config: Any = {"configurable": {"thread_id": f"thread-{i:05d}"}}
        reply = tool.invoke({"message": f"task {i}"}, config=config)
        if i == 0:
            assert reply == f"Reply 1 from {ASSISTANT}: task 0", reply
        if i % EMULATOR_RESET_EVERY == EMULATOR_RESET_EVERY - 1:
            rig.reset()
    rig.reset()
    after = measure()
    keys = list(tool.store.yield_keys())
    assert len(keys) == count, len(keys)
    chats = {v for v in tool.store.mget(keys) if v}
    assert len(chats) == count, f"{len(chats)} distinct chats for {count} threads"
    return after - before, len(keys)


# ------------------------------------------------------------------ per call


def call_rounds(
    rounds: int, calls: int, measure: Callable[[], int], use_async: bool
) -> list[int]:
    """`measure()` after a warm-up round and after each of `rounds` rounds."""
    rig = Rig()

    async def async_round() -> None:
        for i in range(calls):
            await rig.model.ainvoke(f"message {i}")

    def one_round(loop: asyncio.AbstractEventLoop | None) -> None:
        if loop is not None:
            loop.run_until_complete(async_round())
        else:
            for i in range(calls):
                rig.model.invoke(f"message {i}")
        rig.reset()

    loop = asyncio.new_event_loop() if use_async else None
    try:
        one_round(loop)  # warm-up
        samples = [measure()]
        for _ in range(rounds):
            one_round(loop)
            samples.append(measure())
        return samples
    finally:
        if loop is not None:
            loop.close()


def _kib(value: float) -> str:
    return f"{value:+,.0f} KiB"


def _bytes(value: float) -> str:
    return f"{value:+,.0f} B"


def per_instance(count: int) -> list[tuple[str, float, float]]:
    """Traced and RSS bytes per ChatDevic: built, then with its clients built.

    Clients are built without a request (`model.client.http`, and the async
    client of a running loop): what a model holds once it has been used.
    """

    def build() -> list[ChatDevic]:
        return [ChatDevic(model=f"a{i}", api_key=API_KEY) for i in range(count)]

    def with_clients(models: list[ChatDevic]) -> None:
        async def build_async() -> None:
            for model in models:
                _ = model.async_client.http

        for model in models:
            _ = model.client.http
        loop = asyncio.new_event_loop()
        loop.run_until_complete(build_async())
        keep.append(loop)  # not closed: the async clients stay alive

    keep: list[Any] = []
    results = []
    build()  # warm-up: validators, the shared TLS context
    with_clients(build()[:2])
    rss0 = settled_rss()
    models = build()
    rss1 = settled_rss()
    with_clients(models)
    rss2 = settled_rss()
    tracemalloc.start()
    t0 = traced_bytes()
    traced_models = build()
    t1 = traced_bytes()
    with_clients(traced_models)
    t2 = traced_bytes()
    tracemalloc.stop()
    results.append(("ChatDevic built", (t1 - t0) / count, (rss1 - rss0) * 1024 / count))
    results.append(
        (
            "ChatDevic + its sync and async clients built",
            (t2 - t0) / count,
            (rss2 - rss0) * 1024 / count,
        )
    )
    return results


def measure(quick: bool) -> Table:
    conversations = 2_000 if quick else CONVERSATIONS
    rounds = 3 if quick else 6
    calls = 300 if quick else CALLS_PER_ROUND

    rss_growth, stored = store_growth(conversations, settled_rss)
    tracemalloc.start()
    traced_growth, _ = store_growth(conversations, traced_bytes)
    tracemalloc.stop()

    rows: list[list[Any]] = [
        [
            f"DevicAssistantTool store: {stored:,} conversations (1 call per thread)",
            "RSS",
            _kib(rss_growth),
            f"{rss_growth * 1024 / stored:,.0f} B per conversation",
        ],
        [
            f"DevicAssistantTool store: {stored:,} conversations",
            "tracemalloc",
            _kib(traced_growth / 1024),
            f"{traced_growth / stored:,.0f} B per conversation",
        ],
    ]
    instances = 100 if quick else 500
    # RSS is not shown per instance: the warm-up's freed arenas absorb it.
    for what, traced_each, _rss_each in per_instance(instances):
        rows.append(
            [
                f"{what}: {instances} instances",
                "tracemalloc",
                "",
                f"{traced_each / 1024:,.1f} KiB per instance",
            ]
        )
    leak_rows: dict[str, float] = {}
    for use_async in (False, True):
        name = "ainvoke" if use_async else "invoke"
        rss = call_rounds(rounds, calls, settled_rss, use_async)
        tracemalloc.start()
        traced = call_rounds(rounds, calls, traced_bytes, use_async)
        tracemalloc.stop()
        rss_steps = [b - a for a, b in itertools.pairwise(rss)]
        traced_steps = [b - a for a, b in itertools.pairwise(traced)]
        per_round_traced = (traced[-1] - traced[0]) / rounds
        leak_rows[name] = per_round_traced
        rows.append(
            [
                f"ChatDevic.{name}: {rounds} rounds x {calls:,} calls, after warm-up",
                "RSS per round",
                ", ".join(_kib(step) for step in rss_steps),
                f"total {_kib(rss[-1] - rss[0])}",
            ]
        )
        rows.append(
            [
                f"ChatDevic.{name}: {rounds} rounds x {calls:,} calls, after warm-up",
                "tracemalloc per round",
                ", ".join(_bytes(step) for step in traced_steps),
                f"mean {_bytes(per_round_traced)} per {calls:,} calls",
            ]
        )
    flat = all(abs(v) < 64 * 1024 for v in leak_rows.values())
    verdict = (
        f"{'no leak' if flat else 'POSSIBLE LEAK'}: after warm-up, traced memory "
        "moves by "
        + " and ".join(f"{_bytes(v)} ({k})" for k, v in leak_rows.items())
        + f" per {calls:,} calls; the store costs "
        f"{traced_growth / stored:,.0f} B (traced) per tracked conversation."
    )
    return Table(
        title="4. Memory: the tool's conversation store, and growth per call",
        columns=["workload", "measure", "growth", "derived"],
        rows=rows,
        target="per-call memory flat after warm-up (no leak); store growth "
        "proportional to the conversations it tracks.",
        verdict=verdict,
        notes=[
            "RSS from /proc/self/status (VmRSS) after `gc.collect()`; tracemalloc "
            "counts live Python allocations only, so it is the precise figure. "
            "RSS moves in allocator-arena steps and rarely shrinks, so small "
            "positive RSS steps after warm-up are arena noise when tracemalloc "
            "stays flat.",
            "The store is the default `InMemoryStore` (key `assistant|thread|ns` "
            f"-> chatUuid); afterwards it held {stored:,} keys mapping to {stored:,} "
            "distinct chatUuids (checked).",
            "Per instance: models with distinct assistant ids; their clients "
            "built without a request (the sync `httpx.Client`, and the async "
            "client of one event loop), sharing the one TLS context.",
            "The emulator's own log and chats are cleared every "
            f"{EMULATOR_RESET_EVERY:,} calls and before each measurement.",
        ],
    )


def main() -> int:
    args = bench_args(__doc__.splitlines()[0])
    emit(measure(args.quick), args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
