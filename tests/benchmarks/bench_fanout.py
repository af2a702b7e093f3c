"""Benchmark 2: fan-out of concurrent calls against the loopback emulator server.

256 `ChatDevic.ainvoke` calls at once (and `abatch` with `max_concurrency`) to
`DevicEmulator.serve()` on 127.0.0.1 with 100 ms of latency per message. With a
pool of `P` connections the ideal wall time is `ceil(256 / P) * 0.1 s`;
efficiency = ideal / measured wall time (median of the timed rounds).

Beside each ChatDevic row, the same load sent with a bare `httpx.AsyncClient`
of the same pool limits shows how much of the gap is ours and how much is
httpx's; a thread-per-connection `http.client` row shows what the emulator's
`ThreadingHTTPServer` can serve, so the server is ruled out (or in) as the
bottleneck.

Run: `python -m tests.benchmarks.bench_fanout [--quick]`.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx

from langchain_devic import ChatDevic
from langchain_devic._client import DEFAULT_LIMITS
from langchain_devic.testing import DevicEmulator
from tests.benchmarks._common import (
    API_KEY,
    ASSISTANT,
    Table,
    bench_args,
    emit,
    median,
)

CALLS = 256
LATENCY = 0.1
BATCH_CONCURRENCY = 64
RAISED_LIMITS = httpx.Limits(max_connections=256, max_keepalive_connections=20)


@dataclass
class Scenario:
    """One row: how the 256 calls are made, and the concurrency that bounds them."""

    name: str
    client: str
    pool: str
    concurrency: int
    latency: float
    run: Callable[[], Awaitable[int]] | Callable[[], int]
    is_async: bool = True

    def ideal(self) -> float:
        return math.ceil(CALLS / self.concurrency) * self.latency


def _limits_text(limits: httpx.Limits) -> str:
    return f"{limits.max_connections} / keep-alive {limits.max_keepalive_connections}"


def build_scenarios(
    base: str, host: str, port: int
) -> list[tuple[Scenario, Callable[[], Any]]]:
    """The rows, each with a clean-up callable run when the row is done."""
    url = f"{base}/assistants/{ASSISTANT}/messages"
    headers = {"Authorization": f"Bearer {API_KEY}"}
    default_pool = DEFAULT_LIMITS.max_connections
    assert default_pool is not None

    def devic(limits: httpx.Limits | None = None) -> ChatDevic:
        return ChatDevic(
            model=ASSISTANT,
            api_key=API_KEY,
            base_url=base,
            http_async_client=httpx.AsyncClient(limits=limits) if limits else None,
        )

    def check(replies: list[Any]) -> int:
        ok = sum(1 for r in replies if r.text.startswith(f"Reply 1 from {ASSISTANT}"))
        assert ok == CALLS, f"{ok}/{CALLS} calls answered"
        return ok

    default_model = devic()
    raised_model = devic(RAISED_LIMITS)

    async def devic_gather(model: ChatDevic = default_model) -> int:
        calls = [model.ainvoke(f"fan-out {i}") for i in range(CALLS)]
        return check(list(await asyncio.gather(*calls)))

    async def devic_abatch() -> int:
        inputs = [f"batch {i}" for i in range(CALLS)]
        config = {"max_concurrency": BATCH_CONCURRENCY}
        return check(await default_model.abatch(inputs, config=config))

    async def devic_raised() -> int:
        return await devic_gather(raised_model)

    raw_clients: dict[str, httpx.AsyncClient] = {}

    def raw_runner(
        limits: httpx.Limits, concurrency: int
    ) -> Callable[[], Awaitable[int]]:
        async def run() -> int:
            loop_key = f"{id(asyncio.get_running_loop())}-{limits}"
            if loop_key not in raw_clients:
                raw_clients[loop_key] = httpx.AsyncClient(limits=limits)
            client = raw_clients[loop_key]
            gate = asyncio.Semaphore(concurrency)

            async def one(i: int) -> int:
                async with gate:
                    body = {"message": f"raw {i}", "chatUuid": None}
                    response = await client.post(url, json=body, headers=headers)
                    return response.status_code

            statuses = await asyncio.gather(*(one(i) for i in range(CALLS)))
            assert statuses == [200] * CALLS, sorted(set(statuses))
            return CALLS

        return run

    def threads_http_client() -> int:
        """One thread and one persistent connection per pool slot (no httpx)."""

        def one(i: int) -> int:
            conn = getattr(thread_state, "conn", None)
            if conn is None:
                conn = http.client.HTTPConnection(host, port, timeout=10)
                thread_state.conn = conn
                connections.append(conn)
            body = f'{{"message": "thread {i}", "chatUuid": null}}'
            conn.request(
                "POST",
                f"/v1/assistants/{ASSISTANT}/messages",
                body=body,
                headers={**headers, "Content-Type": "application/json"},
            )
            response = conn.getresponse()
            response.read()
            return response.status

        statuses = list(executor.map(one, range(CALLS)))
        assert statuses == [200] * CALLS, sorted(set(statuses))
        return CALLS

    thread_state = threading.local()
    connections: list[http.client.HTTPConnection] = []
    executor = ThreadPoolExecutor(max_workers=default_pool)

    def close_threads() -> None:
        executor.shutdown(wait=True)
        for conn in connections:
            conn.close()

    default_text = _limits_text(DEFAULT_LIMITS)
    raw_default = raw_runner(DEFAULT_LIMITS, CALLS)
    return [
        (
            Scenario(
                "256 x ainvoke (gather)",
                "ChatDevic",
                default_text + " (default)",
                default_pool,
                LATENCY,
                devic_gather,
            ),
            lambda: None,
        ),
        (
            Scenario(
                "256 x post (gather)",
                "raw httpx.AsyncClient",
                default_text,
                default_pool,
                LATENCY,
                raw_default,
            ),
            lambda: None,
        ),
        (
            Scenario(
                f"abatch(max_concurrency={BATCH_CONCURRENCY})",
                "ChatDevic",
                default_text + " (default)",
                BATCH_CONCURRENCY,
                LATENCY,
                devic_abatch,
            ),
            lambda: None,
        ),
        (
            Scenario(
                f"256 x post, {BATCH_CONCURRENCY} at a time",
                "raw httpx.AsyncClient",
                default_text,
                BATCH_CONCURRENCY,
                LATENCY,
                raw_runner(DEFAULT_LIMITS, BATCH_CONCURRENCY),
            ),
            lambda: None,
        ),
        (
            Scenario(
                "256 x ainvoke (gather), raised pool",
                "ChatDevic(http_async_client=...)",
                _limits_text(RAISED_LIMITS),
                CALLS,
                LATENCY,
                devic_raised,
            ),
            lambda: None,
        ),
        (
            Scenario(
                "256 x post (gather), raised pool",
                "raw httpx.AsyncClient",
                _limits_text(RAISED_LIMITS),
                CALLS,
                LATENCY,
                raw_runner(RAISED_LIMITS, CALLS),
            ),
            lambda: None,
        ),
        (
            Scenario(
                "256 x POST, server check",
                f"{default_pool} threads x http.client",
                f"{default_pool} persistent connections",
                default_pool,
                LATENCY,
                threads_http_client,
                is_async=False,
            ),
            close_threads,
        ),
        *curl_scenarios(url, headers, default_pool),
        (
            Scenario(
                "256 x ainvoke (gather), 1 s latency",
                "ChatDevic",
                default_text + " (default)",
                default_pool,
                1.0,
                devic_gather,
            ),
            lambda: None,
        ),
    ]


def curl_scenarios(
    url: str, headers: dict[str, str], parallel: int
) -> list[tuple[Scenario, Callable[[], Any]]]:
    """A non-Python client for the server check: `curl --parallel`, if installed."""
    curl = shutil.which("curl")
    if curl is None:
        return []
    entries = []
    for i in range(CALLS):
        body = json.dumps(json.dumps({"message": f"curl {i}", "chatUuid": None}))
        entries.append(
            f'url = "{url}"\n'
            f'header = "Authorization: {headers["Authorization"]}"\n'
            'header = "Content-Type: application/json"\n'
            f"data = {body}\n"
            'output = "/dev/null"\n'
            'write-out = "%{http_code}\\n"\n'
        )
    config = tempfile.NamedTemporaryFile(  # noqa: SIM115 - removed by cleanup
        "w", suffix=".curlrc", delete=False
    )
    with config:
        config.write("next\n".join(entries))

    def run() -> int:
        done = subprocess.run(
            [
                curl,
                "-s",
                "--parallel",
                "--parallel-max",
                str(parallel),
                "-K",
                config.name,
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        codes = done.stdout.split()
        assert codes == ["200"] * CALLS, sorted(set(codes))
        return CALLS

    scenario = Scenario(
        "256 x POST, server check",
        f"curl --parallel-max {parallel}",
        f"{parallel} connections (new each round)",
        parallel,
        LATENCY,
        run,
        is_async=False,
    )
    return [(scenario, lambda: os.unlink(config.name))]


@contextlib.contextmanager
def separate_process_server(latency: float) -> Iterator[tuple[str, int]]:
    """The emulator's CLI (`python -m langchain_devic.testing`) on a free port."""
    command = [
        sys.executable,
        "-m",
        "langchain_devic.testing",
        "--port",
        "0",
        "--latency",
        str(latency),
        "--api-key",
        API_KEY,
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        match = re.search(r"(http://127\.0\.0\.1:\d+/v1)", banner)
        assert match, f"unexpected emulator banner: {banner!r}"
        yield match.group(1), process.pid
    finally:
        process.terminate()
        process.wait(timeout=10)


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by process `pid`, from /proc."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Sample:
    """One timed round: wall time, this process's CPU, the server process's CPU."""

    wall: float
    cpu: float
    server_cpu: float | None


def _time_rounds(
    run: Callable[[], Any],
    rounds: int,
    before: Callable[[], None],
    server_pid: int | None,
) -> list[Sample]:
    """`rounds` timed runs, after one warm-up run."""
    samples = []
    for index in range(rounds + 1):
        before()
        server0 = process_cpu(server_pid) if server_pid else 0.0
        wall0, cpu0 = time.perf_counter(), time.process_time()
        run()
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        server = process_cpu(server_pid) - server0 if server_pid else None
        if index:
            samples.append(Sample(wall, cpu, server))
    return samples


def run_scenarios(
    scenarios: list[tuple[Scenario, Callable[[], Any]]],
    rounds: int,
    before: Callable[[Scenario], None],
    server_pid: int | None = None,
) -> list[list[Sample]]:
    """Time every scenario; async ones share one event loop (and its pools)."""
    loop = asyncio.new_event_loop()
    try:
        results = []
        for scenario, cleanup in scenarios:
            if scenario.is_async:

                def run(scenario: Scenario = scenario) -> Any:
                    return loop.run_until_complete(scenario.run())  # type: ignore[arg-type]

            else:
                run = scenario.run  # type: ignore[assignment]
            results.append(
                _time_rounds(
                    run, rounds, lambda scenario=scenario: before(scenario), server_pid
                )
            )
            cleanup()
        return results
    finally:
        loop.close()


def measure(quick: bool) -> Table:
    rounds = 2 if quick else 3
    emulator = DevicEmulator(api_key=API_KEY, random_seed=2)

    def before(scenario: Scenario) -> None:
        emulator.reset()
        emulator.latency = scenario.latency

    with emulator.serve() as server:
        inprocess = build_scenarios(server.base_url, server.host, server.port)
        if quick:
            inprocess = [s for s in inprocess if s[0].latency == LATENCY][:2]
        inprocess_samples = run_scenarios(inprocess, rounds, before)

    with separate_process_server(LATENCY) as (base, pid):
        port = int(base.rsplit(":", 1)[1].split("/", 1)[0])
        separate = [
            s
            for s in build_scenarios(base, "127.0.0.1", port)
            if s[0].latency == LATENCY and "raised" not in s[0].name
        ]
        if quick:
            separate = separate[:2]
        separate_samples = run_scenarios(separate, rounds, lambda _: None, pid)

    rows = []
    efficiencies: dict[str, float] = {}
    for where, scenarios, samples in (
        ("in-process thread", inprocess, inprocess_samples),
        ("separate process", separate, separate_samples),
    ):
        for (scenario, _), runs in zip(scenarios, samples, strict=True):
            wall = median([r.wall for r in runs])
            cpu = median([r.cpu for r in runs])
            server_cpus = [r.server_cpu for r in runs if r.server_cpu is not None]
            server_cpu = median(server_cpus) if server_cpus else "(in client)"
            ideal = scenario.ideal()
            efficiency = ideal / wall
            efficiencies[f"{where}|{scenario.client}|{scenario.name}"] = efficiency
            rows.append(
                [
                    scenario.name,
                    scenario.client,
                    scenario.pool,
                    where,
                    f"{scenario.latency * 1000:.0f} ms",
                    ideal,
                    wall,
                    min(r.wall for r in runs),
                    cpu,
                    server_cpu,
                    f"{efficiency:.0%}",
                ]
            )
    gather = "256 x ainvoke (gather)"
    post = "256 x post (gather)"
    devic_in = efficiencies[f"in-process thread|ChatDevic|{gather}"]
    raw_in = efficiencies[f"in-process thread|raw httpx.AsyncClient|{post}"]
    devic_out = efficiencies[f"separate process|ChatDevic|{gather}"]
    raw_out = efficiencies[f"separate process|raw httpx.AsyncClient|{post}"]
    verdict = (
        f"{'met' if min(devic_in, devic_out) >= 0.8 else 'NOT met'}: 256 x ainvoke "
        f"on the default pool reaches {devic_in:.0%} of ideal against the in-process "
        f"server and {devic_out:.0%} against a separate-process server; bare httpx "
        f"with the same pool reaches {raw_in:.0%} and {raw_out:.0%}."
    )
    return Table(
        title=(
            f"2. Fan-out: {CALLS} concurrent calls, loopback emulator server, "
            f"{LATENCY * 1000:.0f} ms latency"
        ),
        columns=[
            "workload",
            "client",
            "pool (max conns)",
            "server",
            "latency",
            "ideal s",
            "wall s (median)",
            "wall s (best)",
            "client CPU s",
            "server CPU s",
            "efficiency",
        ],
        rows=rows,
        target="efficiency = ideal / wall >= 80 % (ideal = ceil(256 / pool) x latency)",
        verdict=verdict,
        notes=[
            f"Default pool: `langchain_devic._client.DEFAULT_LIMITS` = "
            f"`httpx.Limits(max_connections={DEFAULT_LIMITS.max_connections}, "
            f"max_keepalive_connections={DEFAULT_LIMITS.max_keepalive_connections})`,"
            " one pool per ChatDevic instance and event loop. To raise it, pass "
            "your own client: `ChatDevic(..., http_async_client=httpx.AsyncClient("
            "limits=httpx.Limits(max_connections=256)))` (and `http_client=` for "
            "sync calls).",
            "Server: `emu.serve()` runs the emulator's `ThreadingHTTPServer` in a "
            "thread of the benchmark process (sharing its GIL; its CPU is in the "
            "client CPU column); `separate process` is the emulator's CLI, `python "
            "-m langchain_devic.testing --latency 0.1`, whose CPU is read from "
            "/proc. The server-check rows send the same 256 POSTs without httpx: "
            "100 threads with one persistent `http.client` connection each, and "
            "`curl --parallel` (new connections every round).",
            "Where the time goes: CPU. On 2 cores the client's CPU per round "
            "(0.4-0.8 s) already exceeds the 0.3 s ideal, and bare httpx with the "
            "same pool shows nearly the same gap, so it is httpx/httpcore's cost "
            "per request rather than ChatDevic's (ChatDevic's share is the "
            "ChatDevic-minus-raw difference, consistent with table 1). About a "
            "quarter of the client CPU (cProfile) is httpcore's pool bookkeeping, "
            "`AsyncConnectionPool._assign_requests_to_connections`, which rescans "
            "every connection per request (quadratic; encode/httpcore#1035), which "
            "is also why a larger pool is no faster. The server-check rows show "
            "the emulator's `ThreadingHTTPServer` alone caps a 2-core machine "
            "near 57-69 % at 100 ms; with 1 s latency the same fixed cost leaves "
            "ChatDevic near 80 %.",
            f"Each row: one warm-up round, then the median of {rounds} timed "
            "rounds; every call is checked to have been answered 200 with the "
            "expected reply.",
        ],
    )


def main() -> int:
    args = bench_args(__doc__.splitlines()[0])
    emit(measure(args.quick), args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
