"""Benchmark 5: platform runs, followed by SSE and by polling; the one call's cost.

Three measurements, three tables:

- **First text vs whole run.** A scripted 20-step run (10 x a 0.35 s
  server-side tool, each followed by a 0.15 s write in 5 pieces: 5.0 s in all)
  on `DevicEmulator(dialect="platform").serve()` (real HTTP on 127.0.0.1,
  ChatDevic's own pools), through `model.stream(...)` with SSE and with polling
  (`sse=False`), beside `invoke` in `run_mode="sync"`: time to the first text
  and to the end, and the requests of each run by kind, from
  `emulator.requests`.
- **Requests per quiet run.** A run that shows nothing new for 10 s (one 10 s
  tool, then a short write), followed on the default poll schedule (0.5 s,
  x1.5 per unchanged view, up to 5 s) and by SSE: the reads it costs and how
  late its end is seen.
- **The one call is not slower.** `invoke` in `run_mode="sync"` over the
  in-process transport minus a raw `httpx` post of the identical request (the
  method of benchmark 1), beside `run_mode="auto"` and the platform dialect;
  and the same measurement on the code as it was before platform runs
  (extracted with `git archive` into a temporary folder), in fresh processes
  alternating with ones of this tree.

Each model is warmed by one short run first (connections open, and the polling
one has learnt that the server has no stream); what that first run cost is in
the notes. Every loop is bounded; nothing leaves the machine.

Run: `python -m tests.benchmarks.bench_runs [--quick]`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Module-level imports are only what the code before platform runs also has:
# the baseline subprocess imports this module against that older package (the
# script steps, `ServerTool` and `Write`, are imported where scripts are built).
from langchain_devic import ChatDevic
from langchain_devic.testing import DevicEmulator, RecordedRequest
from tests.benchmarks._common import (
    API_KEY,
    ASSISTANT,
    Table,
    bench_args,
    emit,
    median,
    percentile,
)
from tests.benchmarks.bench_overhead import (
    PROMPT,
    devic_setup,
    paired_calls,
    settle,
)

ROOT = Path(__file__).resolve().parents[2]

#: The scripted 20-step run: STEP_PAIRS x (a tool, then a write in pieces).
STEP_PAIRS = 10
TOOL_SECONDS = 0.35
WRITE_PIECES = 5
PIECE_INTERVAL = 0.03
STEPS_SECONDS = STEP_PAIRS * (TOOL_SECONDS + WRITE_PIECES * PIECE_INTERVAL)
#: When the first piece of text is written, after the run starts.
FIRST_TEXT_SECONDS = TOOL_SECONDS + PIECE_INTERVAL

#: The quiet run: one long tool, then a short write.
QUIET_TOOL_SECONDS = 10.0
QUIET_WRITE = "Done: the report is ready."
QUIET_PIECES = 2
QUIET_INTERVAL = 0.05
QUIET_SECONDS = QUIET_TOOL_SECONDS + QUIET_PIECES * QUIET_INTERVAL
#: The most realtime reads a quiet 10 s run may cost on the default schedule.
QUIET_READ_BUDGET = 15

#: The commit before platform runs (6e3e3f8 added them): the "before" code.
BASELINE_COMMIT = "d182f6e2bb03fe17395b9a7692ffaedfd6dcee56"
#: Benchmark 1's ChatDevic `invoke` row in RESULTS.md of 2026-11-26 (commit
#: 523ca16, before platform runs): raw p50, model p50, model p90, overhead (µs).
RECORDED_20261126 = (181.2, 359.9, 470.1, 178.6)
#: "Unchanged" means the sync overhead moved by at most this many µs, or by
#: at most UNCHANGED_SHARE of the baseline's, whichever is larger.
UNCHANGED_US = 25.0
UNCHANGED_SHARE = 0.15
#: Fresh processes per tree in the before/after comparison (alternating).
AB_ROUNDS = 3

#: Request kinds, in table order.
KINDS = ("send", "async send", "stream", "realtime", "history")


def part_text(index: int) -> str:
    return f"Part {index} of the answer, written in pieces."


#: What the 20-step run writes (its messages, joined as ChatDevic joins them).
STEPS_TEXT = "\n\n".join(part_text(i) for i in range(STEP_PAIRS))


def steps20(conversation: Any) -> list[Any]:
    """The scripted 20-step run: a server-side tool, then a write, ten times."""
    from langchain_devic.testing import ServerTool, Write

    steps: list[Any] = []
    for index in range(STEP_PAIRS):
        steps.append(
            ServerTool(
                "search", summary=f"Searching, step {index}", seconds=TOOL_SECONDS
            )
        )
        steps.append(
            Write(part_text(index), pieces=WRITE_PIECES, interval=PIECE_INTERVAL)
        )
    return steps


def quiet10(conversation: Any) -> list[Any]:
    """A run that shows nothing new for 10 s: one long tool, then a short write."""
    from langchain_devic.testing import ServerTool, Write

    return [
        ServerTool("report", summary="Building the report", seconds=QUIET_TOOL_SECONDS),
        Write(QUIET_WRITE, pieces=QUIET_PIECES, interval=QUIET_INTERVAL),
    ]


def ping(conversation: Any) -> str:
    """The warm-up run: one short reply."""
    return "Pong."


ASSISTANTS = {"steps20": steps20, "quiet10": quiet10, "ping": ping}


# -------------------------------------------------------------- one run


def kind(record: RecordedRequest) -> str:
    """What a request was, for the per-run counts."""
    if record.route == "messages":
        return "async send" if "async=true" in record.query else "send"
    if record.route == "chat":
        return "history"
    return record.route or f"other {record.method} {record.path}"


@dataclass
class RunSample:
    """One run as the client and the emulator saw it."""

    first_text: float  # s from the call to the first chunk with text
    total: float  # s from the call to the end of the stream (or invoke)
    text_chunks: int
    requests: list[RecordedRequest]

    @property
    def counts(self) -> Counter[str]:
        return Counter(kind(r) for r in self.requests)

    @property
    def refused(self) -> list[str]:
        """The requests answered with an error status (a refused stream)."""
        return [
            f"{kind(r)} {r.status}"
            for r in self.requests
            if r.status is None or r.status >= 400
        ]

    def offsets(self, route: str) -> list[float]:
        """When each request on `route` arrived, in s after the run's send."""
        sends = [r for r in self.requests if r.route == "messages"]
        start = sends[0].timestamp
        return [r.timestamp - start for r in self.requests if r.route == route]

    @property
    def end_seen(self) -> float:
        """When the client asked for the history (it saw the end): s after send."""
        return self.offsets("chat")[-1]


def stream_run(
    model: ChatDevic, emulator: DevicEmulator, assistant: str, expected: str
) -> RunSample:
    """One `model.stream(...)` of `assistant`'s run, timed and checked."""
    before = len(emulator.requests)
    start = time.perf_counter()
    first: float | None = None
    pieces: list[str] = []
    for chunk in model.stream("Write the report.", model=assistant):
        if chunk.text:
            if first is None:
                first = time.perf_counter() - start
            pieces.append(chunk.text)
    total = time.perf_counter() - start
    emulator.wait_idle(10.0)
    assert first is not None, "the stream carried no text"
    assert "".join(pieces) == expected, "".join(pieces)
    return RunSample(first, total, len(pieces), emulator.requests[before:])


def invoke_run(
    model: ChatDevic, emulator: DevicEmulator, assistant: str, expected: str
) -> RunSample:
    """One `model.invoke(...)`: the first text is the whole reply."""
    before = len(emulator.requests)
    start = time.perf_counter()
    reply = model.invoke("Write the report.", model=assistant)
    total = time.perf_counter() - start
    emulator.wait_idle(10.0)
    assert reply.text == expected, reply.text
    return RunSample(total, total, 1, emulator.requests[before:])


@contextmanager
def served(sse: bool) -> Iterator[tuple[DevicEmulator, ChatDevic, RunSample]]:
    """A platform emulator on 127.0.0.1, a model on it, and its warm-up run."""
    emulator = DevicEmulator(
        api_key=API_KEY,
        dialect="platform",
        assistants=ASSISTANTS,
        random_seed=0,
        sse=sse,
    )
    with emulator.serve() as server:
        model = ChatDevic(model=ASSISTANT, api_key=API_KEY, base_url=server.base_url)
        warm = stream_run(model, emulator, "ping", "Pong.")
        yield emulator, model, warm


# --------------------------------------------------------- the two run tables


def per_run(samples: Sequence[RunSample], key: str) -> str:
    """How many requests of kind `key` each run made: `n`, or `min-max`."""
    values = [s.counts[key] for s in samples]
    low, high = min(values), max(values)
    return f"{low}" if low == high else f"{low}-{high}"


def requests_cell(samples: Sequence[RunSample]) -> str:
    """Requests per run by kind, as `kind n` pairs (kinds no run made are left out)."""
    kinds = [k for k in KINDS if any(s.counts[k] for s in samples)]
    kinds += sorted({k for s in samples for k in s.counts} - set(KINDS))
    return ", ".join(f"{k} {per_run(samples, k)}" for k in kinds)


def total_cell(samples: Sequence[RunSample]) -> str:
    values = [len(s.requests) for s in samples]
    low, high = min(values), max(values)
    return f"{low}" if low == high else f"{low}-{high}"


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def seconds_list(values: Sequence[float], digits: int = 2) -> str:
    return ", ".join(f"{v:,.{digits}f}" for v in values)


def warm_note(name: str, warm: RunSample) -> str:
    refused = f" ({', '.join(warm.refused)})" if warm.refused else ""
    return (
        f"{name}: the warm-up run (a one-word reply, on a new model) made "
        f"{plural(len(warm.requests), 'request')}: {requests_cell([warm])}"
        f"{refused}."
    )


def measure_runs(quick: bool) -> tuple[Table, Table]:
    repeats = 1 if quick else 5
    quiet_repeats = 1 if quick else 2
    samples: dict[str, list[RunSample]] = {"sse": [], "poll": [], "sync": []}
    quiet: dict[str, list[RunSample]] = {"sse": [], "poll": []}
    with ExitStack() as stack:
        sse_emu, sse_model, sse_warm = stack.enter_context(served(sse=True))
        poll_emu, poll_model, poll_warm = stack.enter_context(served(sse=False))
        sync_model = sse_model.model_copy(update={"run_mode": "sync"})
        sync_warm = invoke_run(sync_model, sse_emu, "ping", "Pong.")
        # Interleaved, so drift hits every way of following alike.
        for _ in range(repeats):
            samples["sse"].append(stream_run(sse_model, sse_emu, "steps20", STEPS_TEXT))
            samples["poll"].append(
                stream_run(poll_model, poll_emu, "steps20", STEPS_TEXT)
            )
        for _ in range(max(1, repeats // 2)):
            samples["sync"].append(
                invoke_run(sync_model, sse_emu, "steps20", STEPS_TEXT)
            )
        for _ in range(quiet_repeats):
            quiet["poll"].append(
                stream_run(poll_model, poll_emu, "quiet10", QUIET_WRITE)
            )
            quiet["sse"].append(stream_run(sse_model, sse_emu, "quiet10", QUIET_WRITE))
    return (
        first_text_table(samples, repeats, (sse_warm, poll_warm, sync_warm)),
        quiet_table(quiet),
    )


def first_text_table(
    samples: dict[str, list[RunSample]],
    repeats: int,
    warm: tuple[RunSample, RunSample, RunSample],
) -> Table:
    labels = {
        "sse": ("`stream`, SSE", "auto"),
        "poll": ("`stream`, polling (`sse=False`)", "auto"),
        "sync": ("`invoke`", "sync"),
    }
    rows = []
    for key, (call, mode) in labels.items():
        runs = samples[key]
        firsts = [s.first_text for s in runs]
        rows.append(
            [
                call,
                mode,
                len(runs),
                median(firsts),
                f"{min(firsts):.3f}-{max(firsts):.3f}",
                median([s.total for s in runs]),
                round(median([s.text_chunks for s in runs])),
                requests_cell(runs),
                total_cell(runs),
            ]
        )
    sse_first = median([s.first_text for s in samples["sse"]])
    poll_first = median([s.first_text for s in samples["poll"]])
    sync_total = median([s.total for s in samples["sync"]])
    verdict = (
        f"streamed text starts {sse_first:.2f} s (SSE) / {poll_first:.2f} s "
        f"(polling) after the call, against {FIRST_TEXT_SECONDS:.2f} s at the "
        f"earliest; `invoke` in run_mode='sync' shows nothing for "
        f"{sync_total:.2f} s. The whole run takes "
        f"{median([s.total for s in samples['sse']]):.2f} s / "
        f"{median([s.total for s in samples['poll']]):.2f} s against "
        f"{STEPS_SECONDS:.2f} s of script."
    )
    poll_reads = [s.offsets("realtime") for s in samples["poll"]]
    return Table(
        title=(
            "5. Platform runs: first text vs whole run (20-step scripted run, "
            "loopback emulator)"
        ),
        columns=[
            "call",
            "run_mode",
            "runs",
            "first text p50 s",
            "first text min-max s",
            "whole run p50 s",
            "text chunks p50",
            "requests per run, by kind",
            "requests per run",
        ],
        rows=rows,
        target=(
            f"the first text shortly after the script writes it "
            f"({FIRST_TEXT_SECONDS:.2f} s after the send), the end shortly after "
            f"the script's {STEPS_SECONDS:.2f} s."
        ),
        verdict=verdict,
        notes=[
            f"Script: {STEP_PAIRS} x [`ServerTool(seconds={TOOL_SECONDS})`, "
            f"`Write(..., pieces={WRITE_PIECES}, interval={PIECE_INTERVAL})`]: "
            f"20 steps, {STEPS_SECONDS:.2f} s; its first text is written "
            f"{FIRST_TEXT_SECONDS:.2f} s after the run starts. Every streamed and "
            "invoked text is checked against the script's.",
            "Server: `DevicEmulator(dialect='platform', sse=...).serve()` on "
            "127.0.0.1 in a thread of the benchmark process; one "
            "`ChatDevic(model=..., api_key=..., base_url=server.base_url)` per "
            "server (default pools, `poll_interval=0.5`, `max_poll_interval=5`); "
            "`invoke` is a copy with `run_mode='sync'` (the one synchronous call, "
            "which answers when the run has ended).",
            "Kinds (from `emulator.requests`): send = `POST messages` (the one "
            "call), async send = `POST messages?async=true`, stream = "
            "`GET chats/{chat}/stream`, realtime = `GET chats/{chat}/realtime`, "
            "history = `GET chats/{chat}` (the token totals after the run).",
            f"{plural(repeats, 'run')} per way, SSE and polling interleaved, "
            "after the "
            "warm-up; times are the client's wall clock from the call.",
            "Polling reads, s after the send (first timed run): "
            f"{seconds_list(poll_reads[0])}.",
            warm_note("SSE", warm[0]),
            warm_note("Polling", warm[1])
            + " A model remembers a refused stream: its later runs only poll.",
            warm_note("run_mode='sync'", warm[2]),
        ],
    )


def quiet_table(quiet: dict[str, list[RunSample]]) -> Table:
    labels = {"poll": "polling (`sse=False`)", "sse": "SSE"}
    rows = []
    for key, label in labels.items():
        runs = quiet[key]
        rows.append(
            [
                label,
                len(runs),
                requests_cell(runs),
                total_cell(runs),
                median([s.total for s in runs]),
                median([s.end_seen - QUIET_SECONDS for s in runs]),
                seconds_list(runs[0].offsets("realtime")) or "none",
            ]
        )
    reads = [s.counts["realtime"] for s in quiet["poll"]]
    sse_ok = all(
        s.counts == Counter({"async send": 1, "stream": 1, "history": 1})
        for s in quiet["sse"]
    )
    polling_ok = max(reads) <= QUIET_READ_BUDGET
    verdict = (
        f"{'met' if polling_ok and sse_ok else 'NOT met'}: polling read the "
        f"realtime view {per_run(quiet['poll'], 'realtime')} times per run "
        f"(budget {QUIET_READ_BUDGET}); "
        + (
            "SSE: 1 async send, 1 stream, 1 history read."
            if sse_ok
            else f"SSE: {requests_cell(quiet['sse'])}."
        )
    )
    return Table(
        title="6. Requests per quiet 10 s run (loopback emulator)",
        columns=[
            "follow",
            "runs",
            "requests per run, by kind",
            "requests per run",
            "whole run p50 s",
            "end seen after p50 s",
            "realtime reads, s after the send (first run)",
        ],
        rows=rows,
        target=(
            f"polling on the default schedule <= {QUIET_READ_BUDGET} reads of the "
            "realtime view; SSE: 1 stream + 1 history read (+ the send)."
        ),
        verdict=verdict,
        notes=[
            f"Script: [`ServerTool(seconds={QUIET_TOOL_SECONDS:g})`, "
            f"`Write(..., pieces={QUIET_PIECES}, interval={QUIET_INTERVAL})`]: "
            f"nothing new for {QUIET_TOOL_SECONDS:g} s, the run ends after "
            f"{QUIET_SECONDS:.2f} s.",
            "Default schedule: a read at once, then waits of 0.5 s growing x1.5 "
            "per unchanged view up to 5 s, back to 0.5 s when the view changed.",
            "End seen after = when the history read (which follows the end) "
            f"arrived, minus the script's {QUIET_SECONDS:.2f} s; for polling it "
            "is the price of the longer waits.",
            "Same servers and models as table 5 (warmed: the polling model no "
            "longer asks for a stream).",
        ],
    )


# ------------------------------------------------- the one call's overhead


def time_rotation(
    calls: dict[str, Callable[[], Any]],
    *,
    blocks: int,
    block_size: int,
    warmup: int,
    between_blocks: Callable[[], None],
) -> dict[str, list[float]]:
    """Blocks of each call in turn, the order rotating; per-call times in µs."""
    names = list(calls)
    for _ in range(warmup):
        for name in names:
            calls[name]()
    between_blocks()
    timings: dict[str, list[float]] = {name: [] for name in names}
    for block in range(blocks):
        shift = block % len(names)
        for name in names[shift:] + names[:shift]:
            call, sink = calls[name], timings[name]
            for _ in range(block_size):
                start = time.perf_counter_ns()
                call()
                sink.append((time.perf_counter_ns() - start) / 1000)
        between_blocks()
    return timings


def one_call_pair(
    fields: dict[str, Any], dialect: str | None = None
) -> tuple[DevicEmulator, Callable[[], Any], Callable[[], Any]]:
    """An in-process emulator, a raw post and a model `invoke` of the same request.

    `dialect=None` leaves the emulator's default (the code before platform
    runs has no `dialect`); `fields` go to `ChatDevic`.
    """
    emulator, model, captured, transport = devic_setup(fields, dialect)

    def call() -> Any:
        return model.invoke(PROMPT)

    return emulator, paired_calls(emulator, transport, captured, call), call


def blocks_for(quick: bool) -> tuple[int, int, int]:
    """Blocks, calls per block, warm-up calls: benchmark 1's numbers."""
    return (4, 50, 50) if quick else (24, 100, 200)


def measure_one_call_now(quick: bool) -> dict[str, list[float]]:
    """This tree: run_mode sync and auto (flat dialect), sync (platform)."""
    blocks, block_size, warmup = blocks_for(quick)
    flat, flat_raw, flat_sync = one_call_pair({"run_mode": "sync"}, "flat")
    auto, _, flat_auto = one_call_pair({"run_mode": "auto"}, "flat")
    platform, platform_raw, platform_sync = one_call_pair(
        {"run_mode": "sync"}, "platform"
    )
    return time_rotation(
        {
            "flat raw": flat_raw,
            "flat sync": flat_sync,
            "flat auto": flat_auto,
            "platform raw": platform_raw,
            "platform sync": platform_sync,
        },
        blocks=blocks,
        block_size=block_size,
        warmup=warmup,
        between_blocks=settle(flat, auto, platform),
    )


def measure_one_call_pair(
    quick: bool, fields: dict[str, Any]
) -> dict[str, list[float]]:
    """Raw post and model `invoke`, on whichever tree this process imports.

    Only the flat (default) emulator: the code before platform runs has no
    `dialect`.
    """
    blocks, block_size, warmup = blocks_for(quick)
    emulator, raw, call = one_call_pair(fields)
    return time_rotation(
        {"raw": raw, "model": call},
        blocks=blocks,
        block_size=block_size,
        warmup=warmup,
        between_blocks=settle(emulator),
    )


def pair_main(argv: Sequence[str]) -> int:
    """Subprocess entry: `OUT quick|full FIELDS_JSON`; writes timings as JSON."""
    out, quick, fields = argv[0], argv[1] == "quick", json.loads(argv[2])
    import langchain_devic

    package = Path(langchain_devic.__file__).resolve().parent
    timings = measure_one_call_pair(quick, fields)
    Path(out).write_text(
        json.dumps({"package": str(package), "timings": timings}), encoding="utf-8"
    )
    return 0


def extract_baseline(folder: Path) -> str | None:
    """`langchain_devic` as of BASELINE_COMMIT, into `folder`; why not, if not."""
    git = shutil.which("git")
    if git is None:
        return "git not found"
    try:
        archive = subprocess.run(
            [git, "archive", "--format=tar", BASELINE_COMMIT, "langchain_devic"],
            cwd=ROOT,
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return f"git archive {BASELINE_COMMIT[:7]} failed: {exc}"
    tar_path = folder / "baseline.tar"
    tar_path.write_bytes(archive)
    with tarfile.open(tar_path) as tar:
        if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4
            tar.extractall(folder, filter="data")
        else:  # our own repository's files
            tar.extractall(folder)  # noqa: S202
    return None


def pair_in_subprocess(
    tree: Path, quick: bool, fields: dict[str, Any], out: Path
) -> dict[str, list[float]]:
    """`measure_one_call_pair` in a fresh interpreter importing `tree`'s package."""
    code = (
        "import sys; from tests.benchmarks.bench_runs import pair_main; "
        "sys.exit(pair_main(sys.argv[1:]))"
    )
    env = dict(os.environ)
    # `tree` is the working directory of `-c`, so first on sys.path: its
    # `langchain_devic` wins; this tree's `tests` come from PYTHONPATH.
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), *filter(None, [env.get("PYTHONPATH")])]
    )
    mode = "quick" if quick else "full"
    command = [sys.executable, "-c", code, str(out), mode, json.dumps(fields)]
    subprocess.run(command, cwd=tree, env=env, check=True, timeout=600)
    saved = json.loads(out.read_text(encoding="utf-8"))
    package = Path(saved["package"])
    assert package == (tree / "langchain_devic").resolve(), package
    timings: dict[str, list[float]] = saved["timings"]
    return timings


@dataclass
class Rounds:
    """One tree's A/B rounds: per-call times pooled, and each round's overhead."""

    raw: list[float]
    model: list[float]
    overheads: list[float]

    @property
    def overhead(self) -> float:
        return median(self.model) - median(self.raw)


def measure_before_after(quick: bool) -> tuple[dict[str, Rounds], str]:
    """Alternating fresh processes: the baseline tree's and this tree's one call.

    Returns the rounds of `"before"` and `"now"` (empty if the baseline could not
    be extracted) and where the baseline came from (or why there is none).
    """
    rounds = {"before": Rounds([], [], []), "now": Rounds([], [], [])}
    with tempfile.TemporaryDirectory(prefix="devic-baseline-") as name:
        folder = Path(name)
        failure = extract_baseline(folder)
        if failure:
            return {}, failure
        trees = {
            "before": (folder, {}),
            "now": (ROOT, {"run_mode": "sync"}),
        }
        for index in range(1 if quick else AB_ROUNDS):
            order = ["before", "now"] if index % 2 == 0 else ["now", "before"]
            for key in order:
                tree, fields = trees[key]
                out = folder / f"{key}-{index}.json"
                timings = pair_in_subprocess(tree, quick, fields, out)
                sink = rounds[key]
                sink.raw += timings["raw"]
                sink.model += timings["model"]
                sink.overheads.append(median(timings["model"]) - median(timings["raw"]))
    return rounds, f"commit {BASELINE_COMMIT[:7]}"


def one_call_table(quick: bool) -> Table:
    now = measure_one_call_now(quick)
    ab, origin = measure_before_after(quick)

    def row(code: str, dialect: str, call: str, raw: str, model: str) -> list[Any]:
        r, m = now[raw], now[model]
        return [
            code,
            dialect,
            call,
            len(m),
            median(r),
            median(m),
            percentile(m, 90),
            median(m) - median(r),
        ]

    rows = [
        row("this tree", "flat", "`invoke`, run_mode='sync'", "flat raw", "flat sync"),
        row(
            "this tree",
            "flat",
            "`invoke`, run_mode='auto' (default)",
            "flat raw",
            "flat auto",
        ),
        row(
            "this tree",
            "platform",
            "`invoke`, run_mode='sync'",
            "platform raw",
            "platform sync",
        ),
    ]
    labels = {
        "now": ("this tree, fresh processes", "`invoke`, run_mode='sync'"),
        "before": (
            f"before platform runs ({origin}), fresh processes",
            "`invoke` (the one call)",
        ),
    }
    for key, (code, call) in labels.items():
        if key in ab:
            r = ab[key]
            rows.append(
                [
                    code,
                    "flat",
                    call,
                    len(r.model),
                    median(r.raw),
                    median(r.model),
                    percentile(r.model, 90),
                    r.overhead,
                ]
            )
    raw, model, p90, overhead = RECORDED_20261126
    rows.append(
        [
            "RESULTS.md of 2026-11-26 (523ca16), recorded",
            "flat",
            "`invoke`",
            2400,
            raw,
            model,
            p90,
            overhead,
        ]
    )
    if ab:
        after, before = ab["now"].overhead, ab["before"].overhead
        compared = (
            f"the code before platform runs ({origin}), alternating fresh "
            "processes in this run"
        )
    else:
        after, before = rows[0][-1], RECORDED_20261126[3]
        compared = f"RESULTS.md of 2026-11-26 (no same-run baseline: {origin})"
    change = after - before
    margin = max(UNCHANGED_US, UNCHANGED_SHARE * before)
    if change > margin:
        status = f"NOT met: slower by {change:,.0f} µs"
    elif change < -margin:
        status = f"met, faster by {-change:,.0f} µs"
    else:
        status = f"met, unchanged ({change:+,.0f} µs)"
    verdict = (
        f"{status}: `invoke` in run_mode='sync' adds {after:,.0f} µs over "
        f"the raw post, against {before:,.0f} µs for {compared}; benchmark 1's "
        f"figure of 2026-11-26 was {RECORDED_20261126[3]:,.0f} µs."
    )
    blocks, block_size, warmup = blocks_for(quick)
    notes = [
        "Method of benchmark 1: raw = `httpx.Client.post` of the identical "
        "request (URL, headers, JSON body captured from the model's own call) "
        "through the same `DevicEmulator(...).transport()`, checked to reach "
        "the emulator byte-identical; overhead = model p50 - raw p50.",
        f"{blocks} blocks of {block_size} calls per row and process after "
        f"{warmup} warm-up calls, the rows' order rotating block by block; "
        "emulator logs cleared and `gc.collect()` between blocks, outside the "
        "timed region.",
        "Flat dialect: the seed's flat reply (benchmark 1's emulator). Platform "
        "dialect: the send answers the chat as a list of `ChatMessage`s, which "
        "the model reads for the turn's reply.",
        f"Before platform runs: `git archive {BASELINE_COMMIT[:7]} "
        "langchain_devic` (the commit before platform runs were added) extracted "
        "to a temporary folder. The fresh-process rows alternate a process "
        "importing it (its default model and emulator: it has no `run_mode` or "
        "`dialect`) with one importing this tree, the same code timing both; "
        "each tree times its own emulator, so their raw columns differ and the "
        "overhead subtracts that out.",
        "The 2026-11-26 figure was recorded on another machine (RESULTS.md of "
        "that day: a 2-core Intel Xeon); only the same-run rows compare.",
    ]
    if ab:
        notes.append(
            "Overhead per fresh process (µs): this tree "
            f"{seconds_list(ab['now'].overheads, 0)}; before platform runs "
            f"{seconds_list(ab['before'].overheads, 0)}."
        )
    else:
        notes.append(f"No same-run baseline: {origin}.")
    return Table(
        title=(
            "7. The one call in run_mode='sync': overhead over raw httpx "
            "(in-process transport)"
        ),
        columns=[
            "code",
            "emulator dialect",
            "call",
            "calls",
            "raw p50 µs",
            "model p50 µs",
            "model p90 µs",
            "overhead µs (p50 diff)",
        ],
        rows=rows,
        target=(
            "`invoke` in run_mode='sync' costs no more than the one call cost "
            f"before platform runs (within {UNCHANGED_US:g} µs or "
            f"{UNCHANGED_SHARE:.0%}, whichever is larger)."
        ),
        verdict=verdict,
        notes=notes,
    )


# ----------------------------------------------------------------------- run


def main() -> int:
    args = bench_args(__doc__.splitlines()[0])
    tables = [*measure_runs(args.quick), one_call_table(args.quick)]
    emit(tables, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
