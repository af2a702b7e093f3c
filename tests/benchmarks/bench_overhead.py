"""Benchmark 1: per-call overhead of ChatDevic (and ChatOpenAI) over raw httpx.

For each model the same request is sent two ways through the same in-process
transport: by the LangChain model (`invoke` / `ainvoke`) and by a bare
`httpx.Client.post` / `httpx.AsyncClient.post` of the identical request (same
URL, headers and JSON body, captured from the model's own first call). The
overhead is the difference of the median wall times. Calls alternate in blocks
(raw then model, model then raw, ...) so drift (CPU frequency, GC, the
emulator's growing log) hits both sides alike; the emulator's log is cleared
between blocks, outside the timed region.

Table 1b sets ChatDevic against langchain-core's own floor, on a fixed-reply
in-process transport: the floor (a trivial `_generate`), the raw post, the two
composed in one `_generate`, a lean reference model (`lean_model.py`: the least
a correct Devic model does) and ChatDevic, each on the same httpx client. The
figure of merit is (model - raw) / floor: how many langchain-core floors a
model costs on top of its HTTP call.

Run: `python -m tests.benchmarks.bench_overhead [--quick] [--profile]`.
"""

from __future__ import annotations

import asyncio
import cProfile
import gc
import io
import json
import pstats
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
from langchain_core.messages import AIMessage

from langchain_devic import ChatDevic
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
from tests.benchmarks.lean_model import ComposedModel, FloorModel, LeanDevicModel

PROMPT = "What is the refund window for order 1234?"
OPENAI_MODEL = "gpt-4o-mini"
OPENAI_KEY = "sk-test"
#: A minimal valid `chat.completions` answer, serialized once.
OPENAI_REPLY = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": OPENAI_MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Thirty days."},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12},
    }
).encode()
#: Headers httpx sets itself for every request; not copied from the capture.
_TRANSPORT_HEADERS = frozenset({"host", "content-length"})


@dataclass
class Timings:
    """Per-call wall times, in microseconds, of one pair of paths."""

    raw: list[float]
    model: list[float]

    @property
    def overhead(self) -> float:
        return median(self.model) - median(self.raw)


@dataclass
class CapturedRequest:
    """Everything needed to replay a model's request with bare httpx."""

    url: str
    headers: dict[str, str]
    body: Any


class Recorder(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """Wraps a transport and keeps the last request (used for one capture call)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.last: httpx.Request | None = None

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.last = request
        return self.inner.handle_request(request)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.last = request
        return await self.inner.handle_async_request(request)


def capture(request: httpx.Request | None) -> CapturedRequest:
    """The URL, headers (credentials included) and JSON body of `request`."""
    assert request is not None, "the model sent no request"
    headers = {
        k: v for k, v in request.headers.items() if k.lower() not in _TRANSPORT_HEADERS
    }
    return CapturedRequest(str(request.url), headers, json.loads(request.content))


def openai_transport() -> httpx.MockTransport:
    """An OpenAI-shaped in-process endpoint answering every call the same way."""
    headers = {"content-type": "application/json"}

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=OPENAI_REPLY, headers=headers)

    return httpx.MockTransport(handler)


# ---------------------------------------------------------------- measurement


def time_sync(
    raw: Callable[[], Any],
    model: Callable[[], Any],
    *,
    blocks: int,
    block_size: int,
    warmup: int,
    between_blocks: Callable[[], None],
) -> Timings:
    """Alternate blocks of raw and model calls; per-call times in µs."""
    for _ in range(warmup):
        raw()
        model()
    between_blocks()
    timings = Timings([], [])
    for block in range(blocks):
        pairs = [(raw, timings.raw), (model, timings.model)]
        if block % 2:
            pairs.reverse()
        for call, sink in pairs:
            for _ in range(block_size):
                start = time.perf_counter_ns()
                call()
                sink.append((time.perf_counter_ns() - start) / 1000)
        between_blocks()
    return timings


async def time_async(
    raw: Callable[[], Awaitable[Any]],
    model: Callable[[], Awaitable[Any]],
    *,
    blocks: int,
    block_size: int,
    warmup: int,
    between_blocks: Callable[[], None],
) -> Timings:
    """The async twin of `time_sync`, inside one running event loop."""
    for _ in range(warmup):
        await raw()
        await model()
    between_blocks()
    timings = Timings([], [])
    for block in range(blocks):
        pairs = [(raw, timings.raw), (model, timings.model)]
        if block % 2:
            pairs.reverse()
        for call, sink in pairs:
            for _ in range(block_size):
                start = time.perf_counter_ns()
                await call()
                sink.append((time.perf_counter_ns() - start) / 1000)
        between_blocks()
    return timings


def settle(*emulators: DevicEmulator) -> Callable[[], None]:
    """Between timed blocks: empty the emulators' records and collect garbage."""

    def between_blocks() -> None:
        for emulator in emulators:
            emulator.reset()
        gc.collect()

    return between_blocks


def paired_calls(
    emulator: DevicEmulator,
    transport: Any,
    captured: CapturedRequest,
    call: Callable[[], Any],
) -> Callable[[], httpx.Response]:
    """The raw httpx post of `captured`, checked to reach the emulator
    byte-identical to what `call` (the model's invoke) sends."""
    client = httpx.Client(transport=transport)

    def raw() -> httpx.Response:
        response = client.post(
            captured.url, json=captured.body, headers=captured.headers
        )
        assert response.status_code == 200
        return response

    emulator.reset()
    raw()
    call()
    raw_rec, model_rec = emulator.requests
    assert raw_rec.body == model_rec.body, (raw_rec.body, model_rec.body)
    assert raw_rec.headers == model_rec.headers, (raw_rec.headers, model_rec.headers)
    assert (raw_rec.status, model_rec.status) == (200, 200)
    return raw


# ------------------------------------------------------------------- set-ups


def devic_setup(
    fields: dict[str, Any] | None = None, dialect: str | None = None
) -> tuple[DevicEmulator, ChatDevic, CapturedRequest, Any]:
    """An in-process emulator, a ChatDevic on it, and the request it sends.

    `fields` go to `ChatDevic`; `dialect=None` keeps the emulator's default
    (the code before platform runs, which bench_runs times too, has none).
    """
    options: dict[str, Any] = {"api_key": API_KEY, "random_seed": 0}
    if dialect is not None:
        options["dialect"] = dialect
    emulator = DevicEmulator(**options)
    transport = emulator.transport()
    recorder = Recorder(transport)
    settings: dict[str, Any] = {
        "model": ASSISTANT,
        "api_key": API_KEY,
        "base_url": INPROCESS_BASE_URL,
        **(fields or {}),
    }
    probe = ChatDevic(**settings, http_client=httpx.Client(transport=recorder))
    reply = probe.invoke(PROMPT)
    assert reply.text == f"Reply 1 from {ASSISTANT}: {PROMPT}", reply.text
    captured = capture(recorder.last)
    assert captured.body == {"message": PROMPT, "chatUuid": None}, captured.body
    model = ChatDevic(
        **settings,
        http_client=httpx.Client(transport=transport),
        http_async_client=httpx.AsyncClient(transport=transport),
    )
    return emulator, model, captured, transport


def openai_setup() -> tuple[Any, CapturedRequest, httpx.MockTransport]:
    from langchain_openai import ChatOpenAI

    transport = openai_transport()
    recorder = Recorder(transport)
    probe = ChatOpenAI(
        model=OPENAI_MODEL,
        api_key=OPENAI_KEY,
        base_url=INPROCESS_BASE_URL,
        max_retries=0,
        http_client=httpx.Client(transport=recorder),
    )
    reply = probe.invoke(PROMPT)
    assert reply.text == "Thirty days.", reply.text
    captured = capture(recorder.last)
    model = ChatOpenAI(
        model=OPENAI_MODEL,
        api_key=OPENAI_KEY,
        base_url=INPROCESS_BASE_URL,
        max_retries=0,
        http_client=httpx.Client(transport=transport),
        http_async_client=httpx.AsyncClient(transport=transport),
    )
    return model, captured, transport


# ----------------------------------------------------------------------- run


def measure(quick: bool) -> tuple[Table, dict[str, Timings]]:
    blocks, block_size, warmup = (4, 50, 50) if quick else (24, 100, 200)
    results: dict[str, Timings] = {}

    emulator, devic, dcap, dtransport = devic_setup()
    between_blocks = settle(emulator)

    def devic_model() -> AIMessage:
        return devic.invoke(PROMPT)

    devic_raw = paired_calls(emulator, dtransport, dcap, devic_model)

    results["devic_sync"] = time_sync(
        devic_raw,
        devic_model,
        blocks=blocks,
        block_size=block_size,
        warmup=warmup,
        between_blocks=between_blocks,
    )

    async def devic_async() -> Timings:
        araw = httpx.AsyncClient(transport=dtransport)

        async def raw() -> httpx.Response:
            return await araw.post(dcap.url, json=dcap.body, headers=dcap.headers)

        async def model() -> AIMessage:
            return await devic.ainvoke(PROMPT)

        return await time_async(
            raw,
            model,
            blocks=blocks,
            block_size=block_size,
            warmup=warmup,
            between_blocks=between_blocks,
        )

    results["devic_async"] = asyncio.run(devic_async())

    openai, ocap, otransport = openai_setup()
    oraw = httpx.Client(transport=otransport)
    osettle = settle()
    results["openai_sync"] = time_sync(
        lambda: oraw.post(ocap.url, json=ocap.body, headers=ocap.headers),
        lambda: openai.invoke(PROMPT),
        blocks=blocks,
        block_size=block_size,
        warmup=warmup,
        between_blocks=osettle,
    )

    async def openai_async() -> Timings:
        araw = httpx.AsyncClient(transport=otransport)

        async def raw() -> httpx.Response:
            return await araw.post(ocap.url, json=ocap.body, headers=ocap.headers)

        async def model() -> AIMessage:
            return await openai.ainvoke(PROMPT)

        return await time_async(
            raw,
            model,
            blocks=blocks,
            block_size=block_size,
            warmup=warmup,
            between_blocks=osettle,
        )

    results["openai_async"] = asyncio.run(openai_async())

    labels = {
        "devic_sync": ("ChatDevic", "invoke vs Client.post"),
        "devic_async": ("ChatDevic", "ainvoke vs AsyncClient.post"),
        "openai_sync": ("ChatOpenAI", "invoke vs Client.post"),
        "openai_async": ("ChatOpenAI", "ainvoke vs AsyncClient.post"),
    }
    rows = []
    for key, (name, mode) in labels.items():
        t = results[key]
        rows.append(
            [
                name,
                mode,
                len(t.model),
                median(t.raw),
                median(t.model),
                percentile(t.model, 90),
                t.overhead,
            ]
        )
    sync_ok = results["devic_sync"].overhead <= results["openai_sync"].overhead
    async_ok = results["devic_async"].overhead <= results["openai_async"].overhead
    verdict = (
        f"{'met' if sync_ok and async_ok else 'NOT met'}: ChatDevic adds "
        f"{results['devic_sync'].overhead:,.0f} µs (sync) / "
        f"{results['devic_async'].overhead:,.0f} µs (async) per call; ChatOpenAI adds "
        f"{results['openai_sync'].overhead:,.0f} µs / "
        f"{results['openai_async'].overhead:,.0f} µs in the same run."
    )
    table = Table(
        title="1. Per-call overhead over raw httpx (in-process transports)",
        columns=[
            "model",
            "call",
            "calls",
            "raw p50 µs",
            "model p50 µs",
            "model p90 µs",
            "overhead µs (p50 diff)",
        ],
        rows=rows,
        target="ChatDevic's overhead <= ChatOpenAI's, sync and async, same run.",
        verdict=verdict,
        notes=[
            "Raw = `httpx.Client.post` / `AsyncClient.post` of the identical request "
            "(URL, headers, JSON body captured from the model's own call) through "
            "the same transport; the Devic pair is checked to reach the emulator "
            "byte-identical.",
            "Devic: `DevicEmulator(...).transport()` (a new conversation per call, "
            "so the emulator's work is the same on both sides). OpenAI: an "
            "`httpx.MockTransport` answering a minimal `chat.completion`; "
            "`ChatOpenAI(max_retries=0, http_client=..., http_async_client=...)`.",
            f"{blocks} alternating blocks of {block_size} calls per side after "
            f"{warmup} warm-up calls; the emulator log is cleared and `gc.collect()` "
            "runs between blocks, outside the timed region.",
        ],
    )
    return table, results


def profile_devic(calls: int = 2000) -> str:
    """cProfile of `ChatDevic.invoke` on the in-process emulator: top functions."""
    emulator, model, _, _ = devic_setup()
    for _ in range(200):
        model.invoke(PROMPT)
    emulator.reset()
    profiler = cProfile.Profile()
    profiler.enable()
    for index in range(calls):
        model.invoke(PROMPT)
        if index % 500 == 499:
            emulator.reset()
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(20)
    stats.sort_stats("cumulative").print_stats(30)
    return out.getvalue()


#: Benchmark 1b's fixed Devic reply (the seed's flat shape), serialized once.
DEVIC_REPLY = json.dumps(
    {
        "chatUuid": "chat-bench-1",
        "message": "Thirty days.",
        "tokens_used": 12,
        "timestamp": "2026-01-01T00:00:00Z",
    }
).encode()
#: Target of table 1b: (ChatDevic - raw) / floor, sync and async.
FLOOR_RATIO_TARGET = 1.45


def devic_reply_transport() -> httpx.MockTransport:
    """A Devic-shaped in-process endpoint answering every send the same way."""
    headers = {"content-type": "application/json"}

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=DEVIC_REPLY, headers=headers)

    return httpx.MockTransport(handler)


def _rotations(names: list[str], blocks: int) -> list[list[str]]:
    """Each block's order: the names rotated by one per block."""
    return [names[b % len(names) :] + names[: b % len(names)] for b in range(blocks)]


def time_paths_sync(
    paths: dict[str, Callable[[], Any]], *, blocks: int, block_size: int, warmup: int
) -> dict[str, list[float]]:
    """Per-call µs of each path, in blocks whose order rotates."""
    for _ in range(warmup):
        for call in paths.values():
            call()
    samples: dict[str, list[float]] = {name: [] for name in paths}
    for order in _rotations(list(paths), blocks):
        for name in order:
            call, sink = paths[name], samples[name]
            for _ in range(block_size):
                start = time.perf_counter_ns()
                call()
                sink.append((time.perf_counter_ns() - start) / 1000)
        gc.collect()
    return samples


async def time_paths_async(
    paths: dict[str, Callable[[], Awaitable[Any]]],
    *,
    blocks: int,
    block_size: int,
    warmup: int,
) -> dict[str, list[float]]:
    """The async twin of `time_paths_sync`, in one running event loop."""
    for _ in range(warmup):
        for call in paths.values():
            await call()
    samples: dict[str, list[float]] = {name: [] for name in paths}
    for order in _rotations(list(paths), blocks):
        for name in order:
            call, sink = paths[name], samples[name]
            for _ in range(block_size):
                start = time.perf_counter_ns()
                await call()
                sink.append((time.perf_counter_ns() - start) / 1000)
        gc.collect()
    return samples


def measure_floor(quick: bool) -> Table:
    """Table 1b: ChatDevic, the lean model and the composed floor, per floor."""
    blocks, block_size, warmup = (5, 40, 50) if quick else (25, 100, 200)
    transport = devic_reply_transport()
    sync_http = httpx.Client(transport=transport)
    async_http = httpx.AsyncClient(transport=transport)
    recorder = Recorder(transport)
    settings: dict[str, Any] = {
        "model": ASSISTANT,
        "api_key": API_KEY,
        "base_url": INPROCESS_BASE_URL,
    }
    probe = ChatDevic(**settings, http_client=httpx.Client(transport=recorder))
    assert probe.invoke(PROMPT).text == "Thirty days."
    cap = capture(recorder.last)
    devic = ChatDevic(**settings, http_client=sync_http, http_async_client=async_http)
    lean = LeanDevicModel(
        assistant_id=ASSISTANT,
        api_key=API_KEY,
        base_url=INPROCESS_BASE_URL,
        http_client=sync_http,
        http_async_client=async_http,
    )
    composed = ComposedModel(
        url=cap.url,
        headers=cap.headers,
        body=cap.body,
        http_client=sync_http,
        http_async_client=async_http,
    )
    floor = FloorModel()
    for model in (devic, lean):
        reply = model.invoke(PROMPT)
        assert reply.text == "Thirty days.", reply.text
        assert reply.response_metadata["chat_uuid"] == "chat-bench-1"
    names = ["floor", "raw", "composed", "lean", "ChatDevic"]
    sync = time_paths_sync(
        {
            "floor": lambda: floor.invoke(PROMPT),
            "raw": lambda: sync_http.post(cap.url, json=cap.body, headers=cap.headers),
            "composed": lambda: composed.invoke(PROMPT),
            "lean": lambda: lean.invoke(PROMPT),
            "ChatDevic": lambda: devic.invoke(PROMPT),
        },
        blocks=blocks,
        block_size=block_size,
        warmup=warmup,
    )

    async def raw_async() -> Any:
        return await async_http.post(cap.url, json=cap.body, headers=cap.headers)

    async def run_async() -> dict[str, list[float]]:
        return await time_paths_async(
            {
                "floor": lambda: floor.ainvoke(PROMPT),
                "raw": raw_async,
                "composed": lambda: composed.ainvoke(PROMPT),
                "lean": lambda: lean.ainvoke(PROMPT),
                "ChatDevic": lambda: devic.ainvoke(PROMPT),
            },
            blocks=blocks,
            block_size=block_size,
            warmup=warmup,
        )

    results = {"sync (`invoke`)": sync, "async (`ainvoke`)": asyncio.run(run_async())}
    rows: list[list[Any]] = []
    ratios: dict[str, dict[str, float]] = {}
    for mode, samples in results.items():
        p50 = {name: median(samples[name]) for name in names}
        ratio = {
            name: (p50[name] - p50["raw"]) / p50["floor"]
            for name in ("composed", "lean", "ChatDevic")
        }
        ratios[mode] = ratio
        rows.append(
            [
                mode,
                *(p50[name] for name in names),
                f"{ratio['composed']:.2f}",
                f"{ratio['lean']:.2f}",
                f"**{ratio['ChatDevic']:.2f}**",
            ]
        )
    worst = max(r["ChatDevic"] for r in ratios.values())
    sync_r, async_r = (r["ChatDevic"] for r in ratios.values())
    lean_s, lean_a = (r["lean"] for r in ratios.values())
    verdict = (
        f"{'met' if worst <= FLOOR_RATIO_TARGET else 'NOT met'}: ChatDevic costs "
        f"{sync_r:.2f} (sync) / {async_r:.2f} (async) floors over the raw post; the "
        f"lean model {lean_s:.2f} / {lean_a:.2f} in the same run."
    )
    return Table(
        title="1b. Overhead per langchain-core floor: composed floor, lean bound, "
        "ChatDevic (fixed-reply in-process transport)",
        columns=[
            "call",
            "floor p50 µs",
            "raw p50 µs",
            "composed p50 µs",
            "lean p50 µs",
            "ChatDevic p50 µs",
            "composed (c-raw)/floor",
            "lean (l-raw)/floor",
            "ChatDevic (m-raw)/floor",
        ],
        rows=rows,
        target=f"(ChatDevic - raw) / floor <= {FLOOR_RATIO_TARGET} sync and async.",
        verdict=verdict,
        notes=[
            "floor = `FloorModel.invoke`: langchain-core's path around a trivial "
            "`_generate` (no I/O). raw = `httpx.Client.post` / `AsyncClient.post` "
            "of the request ChatDevic sends (captured). composed = the floor and "
            "that post in one `_generate`. lean = `LeanDevicModel` "
            "(tests/benchmarks/lean_model.py), the least a correct Devic model "
            "does. All on the same httpx clients over one `httpx.MockTransport` "
            "answering a fixed flat Devic reply.",
            f"{blocks} blocks of {block_size} calls per path after {warmup} warm-up "
            "calls each; the paths' order rotates block by block; `gc.collect()` "
            "between blocks.",
        ],
    )


def main() -> int:
    args = bench_args(__doc__.splitlines()[0])
    table, _ = measure(args.quick)
    emit([table, measure_floor(args.quick)], args.json)
    if args.profile:
        print(profile_devic())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
