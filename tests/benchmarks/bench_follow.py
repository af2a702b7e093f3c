"""Benchmark 8: one process following 1,000 concurrent platform runs (SSE, polled).

One client process starts `--runs` runs at once (default 1,000) with
`ChatDevic(run_mode="async", async_transport=...)`, one task each in one event
loop, and follows them all to their end: with `astream` over the run stream
(SSE), and, separately, with `ainvoke` against a server whose stream route
answers 404, so every run is polled through its realtime view. The server is
`tests/benchmarks/follow_server.py` in its own process on 127.0.0.1 (one
asyncio loop): each run writes 20 pieces of text over 4 s, then completes.

Every tenth run never finishes on the server (its stream sends a keep-alive
comment every second; its realtime view stays `processing`): those are
followed by a model with `run_timeout=3` and must raise `DevicTimeoutError`
by then; the others by a model with `run_timeout=60`. Each follow is also
bounded by this benchmark: one still going 10 s past its `run_timeout` is
cancelled and counted as not ended.

Per follow mode and async transport, each measured in fresh client processes
(a fresh server each time): memory per run in flight (RSS growth, and in a
second process the tracemalloc peak, as tracing slows the client down), the
client's CPU seconds per second of run followed, peak open file descriptors
and threads, and when the stuck runs ended. Before the measured runs each
model follows one short run, so pools, imports and the polling model's "no
stream here" are in place.

Run: `python -m tests.benchmarks.bench_follow [--quick] [--runs N]`.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.util
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

from langchain_devic import ChatDevic
from tests.benchmarks._common import (
    API_KEY,
    ASSISTANT,
    Table,
    emit,
    median,
)
from tests.benchmarks.follow_server import follow_server, reply_text

ROOT = Path(__file__).resolve().parents[2]

RUNS = 1000
QUICK_RUNS = 50
#: Every STUCK_EVERY-th run never finishes on the server.
STUCK_EVERY = 10
RUN_SECONDS = 4.0
PIECES = 20
#: A stuck run's stream sends a comment this often (a server's keep-alive).
KEEPALIVE_SECONDS = 1.0
STUCK_RUN_TIMEOUT = 3.0
NORMAL_RUN_TIMEOUT = 60.0
#: A follow still going this long past its run_timeout is cancelled here.
GUARD_SECONDS = 10.0
SAMPLE_SECONDS = 0.05
#: The traced process records this long (every run is in flight), then exits.
TRACE_WINDOW_SECONDS = 10.0
MODES = ("sse", "polled")
TRANSPORTS = ("httpcore", "aiohttp")
#: Targets.
MEMORY_TARGET_KIB = 64.0
OVERSHOOT_TARGET_S = 1.5
#: "No thread per run": the threads a whole measurement may add.
THREADS_ALLOWED = 4


# --------------------------------------------------------------- the client


def proc_status() -> dict[str, int]:
    """VmRSS and VmHWM (KiB) and Threads of this process, from /proc/self/status."""
    wanted = {"VmRSS", "VmHWM", "Threads"}
    found: dict[str, int] = {}
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in wanted:
                found[name] = int(value.split()[0])
    return found


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def reset_peak_rss() -> bool:
    """Restart VmHWM from the current RSS (Linux clear_refs 5); whether it worked."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
            refs.write("5")
    except OSError:
        return False
    return True


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def raise_fd_limit(runs: int) -> tuple[int, int]:
    """Room for a socket per run and then some; returns the soft limit before."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 2 * runs + 512
    if soft < want:
        wanted = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return soft, hard


@dataclass
class Config:
    """What one client process measures."""

    base_url: str
    mode: str  # "sse" | "polled"
    transport: str  # "httpcore" | "aiohttp"
    runs: int
    trace: bool


class CountingHandler(logging.Handler):
    """Counts the warnings langchain-devic logs (instead of printing them)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0
        self.first: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        if self.first is None:
            self.first = record.getMessage()


@dataclass
class Measured:
    """What one client process saw (saved as JSON for the parent)."""

    runs: int
    stuck: int
    wall: float
    cpu: float
    run_seconds: float
    in_flight_peak: int
    rss_before_kib: int
    rss_peak_kib: int
    traced_peak_kib: float | None
    fds_before: int
    fds_peak: int
    threads_before: int
    threads_peak: int
    warnings: int = 0
    first_warning: str | None = None
    outcomes: dict[str, dict[str, int]] = field(default_factory=dict)
    normal_seconds: list[float] = field(default_factory=list)
    stuck_seconds: list[float] = field(default_factory=list)
    #: Seconds from the call to the first text, per kind of run.
    first_text_seconds: dict[str, list[float]] = field(default_factory=dict)


#: Seconds from a call to its first text, appended by `streamed`/`invoked`.
FirstText = list[float]


async def streamed(model: ChatDevic, message: str, first: FirstText) -> str:
    """Follow by `astream`; note when the first text came."""
    start, text = time.monotonic(), ""
    async for chunk in model.astream(message):
        if chunk.text and not text:
            first.append(time.monotonic() - start)
        text += chunk.text
    return text


async def invoked(model: ChatDevic, message: str, first: FirstText) -> str:
    """Follow by `ainvoke` (the text comes at the end)."""
    start = time.monotonic()
    text = (await model.ainvoke(message)).text
    first.append(time.monotonic() - start)
    return text


async def follow_all(config: Config) -> Measured:
    """Start every run at once and follow each to its end; what it cost."""

    def model(run_timeout: float) -> ChatDevic:
        return ChatDevic(
            model=ASSISTANT,
            api_key=API_KEY,
            base_url=config.base_url,
            run_mode="async",
            async_transport=config.transport,  # type: ignore[arg-type]
            run_timeout=run_timeout,
        )

    normal, stuck = model(NORMAL_RUN_TIMEOUT), model(STUCK_RUN_TIMEOUT)
    follow: Callable[[ChatDevic, str, FirstText], Awaitable[str]] = (
        streamed if config.mode == "sse" else invoked
    )
    expected = reply_text(PIECES)
    warm = await asyncio.gather(
        follow(normal, "warm 1", []), follow(stuck, "warm 2", [])
    )
    assert list(warm) == [expected, expected], warm
    warnings = CountingHandler()
    logging.getLogger("langchain_devic").addHandler(warnings)

    in_flight = 0
    peak = {"in_flight": 0, "fds": 0, "threads": 0, "rss": 0}
    outcomes: dict[str, Counter[str]] = {"normal": Counter(), "stuck": Counter()}
    seconds: dict[str, list[float]] = {"normal": [], "stuck": []}
    first_text: dict[str, FirstText] = {"normal": [], "stuck": []}

    async def one(index: int) -> None:
        nonlocal in_flight
        kind = "stuck" if index % STUCK_EVERY == 0 else "normal"
        chosen = stuck if kind == "stuck" else normal
        bound = chosen.run_timeout + GUARD_SECONDS
        in_flight += 1
        peak["in_flight"] = max(peak["in_flight"], in_flight)
        start = time.monotonic()
        try:
            following = follow(chosen, f"{kind} {index}", first_text[kind])
            text = await asyncio.wait_for(following, bound)
            outcome = "finished" if text == expected else "wrong text"
        except asyncio.TimeoutError:
            outcome = f"not ended {GUARD_SECONDS:g} s after run_timeout"
        except Exception as exc:  # counted and shown: any failure is a finding
            outcome = type(exc).__name__
        seconds[kind].append(time.monotonic() - start)
        outcomes[kind][outcome] += 1
        in_flight -= 1

    def sample() -> None:
        status = proc_status()
        peak["rss"] = max(peak["rss"], status["VmRSS"])
        peak["threads"] = max(peak["threads"], status["Threads"])
        peak["fds"] = max(peak["fds"], open_fds())

    async def sampler() -> None:
        while True:
            sample()
            await asyncio.sleep(SAMPLE_SECONDS)

    gc.collect()
    before = proc_status()
    fds_before = open_fds()
    hwm_reset = reset_peak_rss()
    if config.trace:
        tracemalloc.start()
    cpu_start, started = cpu_seconds(), time.monotonic()
    watcher = asyncio.create_task(sampler())
    tasks = [asyncio.create_task(one(index)) for index in range(config.runs)]
    # Traced, only a window (the caller exits without waiting for the rest).
    await asyncio.wait(tasks, timeout=TRACE_WINDOW_SECONDS if config.trace else None)
    wall, cpu = time.monotonic() - started, cpu_seconds() - cpu_start
    traced = tracemalloc.get_traced_memory()[1] / 1024 if config.trace else None
    tracemalloc.stop()
    watcher.cancel()
    sample()
    if hwm_reset:
        peak["rss"] = max(peak["rss"], proc_status()["VmHWM"])
    return Measured(
        runs=config.runs,
        stuck=len(seconds["stuck"]),
        wall=wall,
        cpu=cpu,
        run_seconds=sum(seconds["normal"]) + sum(seconds["stuck"]),
        in_flight_peak=peak["in_flight"],
        rss_before_kib=before["VmRSS"],
        rss_peak_kib=peak["rss"],
        traced_peak_kib=traced,
        fds_before=fds_before,
        fds_peak=peak["fds"],
        threads_before=before["Threads"],
        threads_peak=peak["threads"],
        warnings=warnings.count,
        first_warning=warnings.first,
        outcomes={kind: dict(counts) for kind, counts in outcomes.items()},
        normal_seconds=seconds["normal"],
        stuck_seconds=seconds["stuck"],
        first_text_seconds=first_text,
    )


def measure_main(argv: list[str]) -> int:
    """Subprocess entry: `OUT CONFIG_JSON`; writes a `Measured` as JSON to OUT.

    A traced process exits at once after writing, its runs still going (the
    server is stopped next): waiting for them under tracemalloc would take
    minutes and measure nothing more.
    """
    out, config = argv[0], Config(**json.loads(argv[1]))
    raise_fd_limit(config.runs)
    loop = asyncio.new_event_loop()
    measured = loop.run_until_complete(follow_all(config))
    Path(out).write_text(json.dumps(asdict(measured)), encoding="utf-8")
    if config.trace:
        sys.stdout.flush()
        os._exit(0)
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()
    return 0


# --------------------------------------------------------------- the parent


def server_args(mode: str) -> list[str]:
    args = [
        "--seconds",
        str(RUN_SECONDS),
        "--pieces",
        str(PIECES),
        "--keepalive",
        str(KEEPALIVE_SECONDS),
    ]
    return [*args, "--no-stream"] if mode == "polled" else args


def server_stats(base_url: str) -> dict[str, float]:
    root = base_url.removesuffix("/v1")
    headers = {"Authorization": f"Bearer {API_KEY}"}
    answer = httpx.get(f"{root}/stats", headers=headers, timeout=10)
    answer.raise_for_status()
    stats: dict[str, float] = answer.json()
    return stats


def measure(
    mode: str, transport: str, runs: int, trace: bool
) -> tuple[Measured, dict[str, float]]:
    """One client process against a fresh server: its figures, the server's counts."""
    with (
        follow_server(*server_args(mode)) as base_url,
        tempfile.TemporaryDirectory(prefix="devic-follow-") as folder,
    ):
        out = Path(folder) / "measured.json"
        config = Config(base_url, mode, transport, runs, trace)
        code = (
            "import sys; from tests.benchmarks.bench_follow import measure_main; "
            "sys.exit(measure_main(sys.argv[1:]))"
        )
        command = [sys.executable, "-c", code, str(out), json.dumps(asdict(config))]
        subprocess.run(command, cwd=ROOT, check=True, timeout=600)
        measured = Measured(**json.loads(out.read_text(encoding="utf-8")))
        return measured, server_stats(base_url)


@dataclass
class Scenario:
    """One follow mode on one transport: the plain and the traced process."""

    mode: str
    transport: str
    plain: Measured
    traced: Measured
    server: dict[str, float]

    @property
    def label(self) -> str:
        return "SSE (`astream`)" if self.mode == "sse" else "polled (`ainvoke`)"

    @property
    def rss_per_run(self) -> float:
        grown = self.plain.rss_peak_kib - self.plain.rss_before_kib
        return grown / self.plain.in_flight_peak

    @property
    def traced_per_run(self) -> float:
        assert self.traced.traced_peak_kib is not None
        return self.traced.traced_peak_kib / self.traced.in_flight_peak

    @property
    def cpu_per_run_second(self) -> float:
        return self.plain.cpu / self.plain.run_seconds

    @property
    def threads_added(self) -> int:
        return self.plain.threads_peak - self.plain.threads_before

    @property
    def overshoot(self) -> float:
        return max(self.plain.stuck_seconds) - STUCK_RUN_TIMEOUT

    @property
    def stuck_timed_out(self) -> int:
        return self.plain.outcomes["stuck"].get("DevicTimeoutError", 0)

    @property
    def normal_finished(self) -> int:
        return self.plain.outcomes["normal"].get("finished", 0)

    def server_saw(self) -> str:
        count = self.server.get
        parts = [f"{count('sends', 0):,.0f} sends"]
        if self.mode == "sse":
            parts.append(
                f"{count('stream', 0):,.0f} streams ({count('streams_peak', 0):,.0f} "
                "open at peak)"
            )
        else:
            parts.append(f"{count('realtime', 0):,.0f} realtime reads")
        parts.append(f"{count('history', 0):,.0f} history reads")
        parts.append(f"{count('cpu_seconds', 0):.1f} CPU s")
        return ", ".join(parts)

    def others(self) -> str:
        expected = {("normal", "finished"), ("stuck", "DevicTimeoutError")}
        odd = [
            f"{kind}: {count} {outcome}"
            for kind, counts in self.plain.outcomes.items()
            for outcome, count in sorted(counts.items())
            if (kind, outcome) not in expected
        ]
        if self.plain.warnings:
            odd.append(
                f"{self.plain.warnings} warnings logged, the first: "
                f"{self.plain.first_warning!r}"
            )
        return "; ".join(odd) or "none"


def seconds_cell(values: Sequence[float]) -> str:
    """`p50 / max` of some seconds, or a dash when there are none."""
    if not values:
        return "-"
    return f"{median(values):.2f} / {max(values):.2f}"


def transports_available(asked: list[str]) -> tuple[list[str], list[str]]:
    """The transports to measure, and notes on those left out."""
    chosen, notes = [], []
    for transport in asked:
        if transport == "aiohttp" and importlib.util.find_spec("httpx_aiohttp") is None:
            notes.append("aiohttp not measured: httpx-aiohttp is not installed.")
            continue
        chosen.append(transport)
    return chosen, notes


def resource_table(scenarios: list[Scenario], runs: int, notes: list[str]) -> Table:
    rows = []
    for s in scenarios:
        p = s.plain
        rows.append(
            [
                s.label,
                s.transport,
                p.in_flight_peak,
                p.wall,
                f"**{s.rss_per_run:.1f}**",
                f"**{s.traced_per_run:.1f}**",
                p.cpu,
                f"{s.cpu_per_run_second:.4f}",
                f"{1000 * p.cpu / p.runs:.1f}",
                f"{p.fds_peak:,} ({p.fds_before})",
                f"{p.threads_peak} ({p.threads_before})",
                s.server_saw(),
            ]
        )
    memory_ok = all(
        max(s.rss_per_run, s.traced_per_run) <= MEMORY_TARGET_KIB for s in scenarios
    )
    threads_ok = all(s.threads_added <= THREADS_ALLOWED for s in scenarios)
    parts = [
        f"{s.mode}/{s.transport}: {s.rss_per_run:.1f} KiB RSS, "
        f"{s.traced_per_run:.1f} KiB traced, {s.threads_added:+d} threads"
        for s in scenarios
    ]
    verdict = (
        f"{'met' if memory_ok and threads_ok else 'NOT met'} "
        f"(memory {'met' if memory_ok else 'NOT met'}, threads "
        f"{'met' if threads_ok else 'NOT met'}): " + "; ".join(parts) + "."
    )
    return Table(
        title=f"8. Following {runs:,} concurrent runs in one process: memory, CPU, "
        "descriptors, threads",
        columns=[
            "follow",
            "transport",
            "runs in flight (peak)",
            "wall s",
            "RSS growth KiB per run",
            "tracemalloc peak KiB per run",
            "client CPU s",
            "client CPU s per run-second",
            "client CPU ms per run",
            "fds peak (before)",
            "threads peak (before)",
            "server saw",
        ],
        rows=rows,
        target=f"<= {MEMORY_TARGET_KIB:.0f} KiB per followed run (RSS growth and "
        f"tracemalloc peak); no thread per run (at most {THREADS_ALLOWED} added "
        "in all).",
        verdict=verdict,
        notes=[
            "Server: `python -m tests.benchmarks.follow_server` (one asyncio loop, "
            "127.0.0.1, its own process; a fresh one per client process). Each run "
            f"writes {PIECES} pieces over {RUN_SECONDS:g} s from its async send on. "
            "SSE: a snapshot of the run as it stands, a delta per piece, a "
            "completed snapshot. Polled: the stream route answers 404; the "
            "realtime view shows the run as it stands. One history read per run "
            "follows its end (usage).",
            f"Client: {runs:,} tasks started at once in one event loop; every "
            f"{STUCK_EVERY}th run never finishes (run_timeout="
            f"{STUCK_RUN_TIMEOUT:g} s, its own ChatDevic), the others use "
            f"run_timeout={NORMAL_RUN_TIMEOUT:g} s. Two ChatDevic instances, so two "
            "pools of at most 100 connections each (the default limits). A "
            "stream holds its connection for the whole run, so the sends, "
            "streams and history reads of the other runs wait for one: at most "
            "100 normal runs are under way on the server at a time.",
            "Memory: RSS growth = peak RSS (VmHWM, restarted with clear_refs, and "
            f"/proc/self/status sampled every {SAMPLE_SECONDS * 1000:.0f} ms) "
            "during the runs minus RSS just before them, divided by the runs in "
            "flight at the peak. tracemalloc peak = Python allocations traced "
            "from just before the runs, in a second client process that records "
            f"for {TRACE_WINDOW_SECONDS:g} s (every run in flight) and exits: "
            "tracing slows the client several times over.",
            "Client CPU s per run-second = user + system CPU of the client during "
            "the runs divided by the sum, over runs, of the seconds from the call "
            "to its end (waits for a connection included). A busy client shows "
            "as long runs (table 8b), not as a higher ratio.",
            "fds: entries of /proc/self/fd; threads: `Threads` of "
            "/proc/self/status (OS threads), sampled like RSS; before = just "
            "before the runs, after one warm-up run per model.",
            *notes,
        ],
    )


def outcome_table(scenarios: list[Scenario]) -> Table:
    rows = []
    for s in scenarios:
        p = s.plain
        rows.append(
            [
                s.label,
                s.transport,
                f"{s.normal_finished:,} / {p.runs - p.stuck:,}",
                seconds_cell(p.first_text_seconds.get("normal", [])),
                seconds_cell(p.normal_seconds),
                f"{s.stuck_timed_out} / {p.stuck}",
                seconds_cell(p.first_text_seconds.get("stuck", [])),
                seconds_cell(p.stuck_seconds),
                f"**{s.overshoot:+.2f}**",
                s.others(),
            ]
        )
    ok = all(
        s.normal_finished == s.plain.runs - s.plain.stuck
        and s.stuck_timed_out == s.plain.stuck
        and s.overshoot <= OVERSHOOT_TARGET_S
        for s in scenarios
    )
    parts = [
        f"{s.mode}/{s.transport}: {s.normal_finished}/{s.plain.runs - s.plain.stuck} "
        f"finished, {s.stuck_timed_out}/{s.plain.stuck} stuck runs raised "
        f"DevicTimeoutError, the last {s.overshoot:+.2f} s past run_timeout"
        for s in scenarios
    ]
    return Table(
        title="8b. Outcomes: every run ends by its run_timeout (table 8's processes)",
        columns=[
            "follow",
            "transport",
            "runs finished with the whole reply",
            "first text p50 / max s",
            "ended p50 / max s",
            "stuck runs raising DevicTimeoutError",
            "stuck: first text p50 / max s",
            "stuck: ended p50 / max s",
            f"max overshoot past run_timeout={STUCK_RUN_TIMEOUT:g} s",
            "other outcomes",
        ],
        rows=rows,
        target="every finishing run returns its whole reply; every stuck run "
        f"raises DevicTimeoutError within run_timeout + {OVERSHOOT_TARGET_S:g} s.",
        verdict=f"{'met' if ok else 'NOT met'}: " + "; ".join(parts) + ".",
        notes=[
            "Seconds from the call (`astream` / `ainvoke`) to its first text and "
            "to its end, so the async send and any wait for a connection count. "
            "`ainvoke` has its text only at the end.",
            f"A stuck run writes 2 pieces, then nothing: its stream sends "
            f"`: keep-alive` every {KEEPALIVE_SECONDS:g} s; polled, its view stays "
            "`processing` with the same text.",
            f"A follow still going {GUARD_SECONDS:g} s past its run_timeout is "
            "cancelled by the benchmark (ChatDevic then sends its stop) and shows "
            "as not ended.",
            "Warnings: records at WARNING or above of the `langchain_devic` logger "
            "during the runs, counted instead of printed.",
        ],
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help=f"{QUICK_RUNS} runs (a smoke run)"
    )
    parser.add_argument("--runs", type=int, help=f"concurrent runs (default {RUNS})")
    parser.add_argument(
        "--transports", nargs="+", choices=TRANSPORTS, default=list(TRANSPORTS)
    )
    parser.add_argument(
        "--json", metavar="PATH", help="also write the tables as JSON to PATH"
    )
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    runs = args.runs or (QUICK_RUNS if args.quick else RUNS)
    assert runs >= STUCK_EVERY, f"--runs must be at least {STUCK_EVERY}"
    transports, notes = transports_available(args.transports)
    scenarios = []
    for mode in MODES:
        for transport in transports:
            print(f"following {runs} runs: {mode}, {transport}", file=sys.stderr)
            plain, stats = measure(mode, transport, runs, trace=False)
            traced, _ = measure(mode, transport, runs, trace=True)
            scenarios.append(Scenario(mode, transport, plain, traced, stats))
    emit([resource_table(scenarios, runs, notes), outcome_table(scenarios)], args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
