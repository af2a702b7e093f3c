"""Run the six benchmarks, print their tables and write them to RESULTS.md.

Usage, from the repository root (with the `bench` extra installed)::

    python -m tests.benchmarks            # full run, about 12 minutes on 2 cores
    python -m tests.benchmarks --quick    # smoke run; RESULTS.md is not written
    python -m tests.benchmarks --only overhead runs

Each benchmark runs in a fresh interpreter, so one cannot warm (or bloat) the
next: memory and import figures start from a clean process.
"""

from __future__ import annotations

import argparse
import datetime
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.benchmarks._common import RESULTS_PATH, Table, load_tables, machine

BENCHMARKS = {
    "overhead": "tests.benchmarks.bench_overhead",
    "fanout": "tests.benchmarks.bench_fanout",
    "import": "tests.benchmarks.bench_import",
    "memory": "tests.benchmarks.bench_memory",
    "runs": "tests.benchmarks.bench_runs",
    "follow": "tests.benchmarks.bench_follow",
}
ROOT = Path(__file__).resolve().parents[2]


def run_one(module: str, quick: bool, folder: Path) -> tuple[list[Table], float]:
    """Run one benchmark module in a subprocess; return its tables and wall time."""
    out = folder / f"{module.rsplit('.', 1)[1]}.json"
    command = [sys.executable, "-m", module, "--json", str(out)]
    if quick:
        command.append("--quick")
    start = time.perf_counter()
    subprocess.run(
        command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, timeout=1800
    )
    return load_tables(out), time.perf_counter() - start


def results_markdown(tables: list[Table], elapsed: dict[str, float]) -> str:
    info = machine()
    lines = [
        "# Benchmark results",
        "",
        "Produced by `python -m tests.benchmarks` (see `tests/benchmarks/` for what "
        "each benchmark does); rerun it to refresh this file. Every request stays "
        "on this machine: in-process transports, the emulator on 127.0.0.1, or "
        "`tests/benchmarks/fast_server.py` in its own process on 127.0.0.1 (the "
        "import benchmark installs the built wheel's dependencies into a fresh "
        "venv first).",
        "",
        f"Run on {datetime.date.today().isoformat()}:",
        "",
        "| | |",
        "|---|---|",
    ]
    lines.extend(f"| {key} | {value} |" for key, value in info.items())
    took = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in elapsed.items())
    lines.extend(["", f"Wall time per benchmark: {took}.", ""])
    for table in tables:
        lines.append(table.markdown())
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="fewer iterations; RESULTS.md untouched"
    )
    parser.add_argument(
        "--only", nargs="+", choices=sorted(BENCHMARKS), help="run only these"
    )
    args = parser.parse_args(argv)
    names = args.only or list(BENCHMARKS)
    tables: list[Table] = []
    elapsed: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="devic-bench-") as folder:
        for name in names:
            print(f"running {name} ...", file=sys.stderr, flush=True)
            produced, seconds = run_one(BENCHMARKS[name], args.quick, Path(folder))
            tables.extend(produced)
            elapsed[name] = seconds
            for table in produced:
                print(table.markdown(), flush=True)
    for key, value in machine().items():
        print(f"{key}: {value}")
    if args.quick or args.only:
        print("(quick or partial run: RESULTS.md not written)", file=sys.stderr)
        return 0
    RESULTS_PATH.write_text(results_markdown(tables, elapsed), encoding="utf-8")
    print(f"wrote {RESULTS_PATH.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
