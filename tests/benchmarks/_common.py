"""What the benchmarks share: the machine description, timing and tables."""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

#: The key every benchmark's emulator accepts (a fake, local key).
API_KEY = "bench-key-not-a-secret"
ASSISTANT = "bench-assistant"
#: Base URL paired with in-process transports (never dialled: no sockets).
INPROCESS_BASE_URL = "http://127.0.0.1/v1"
RESULTS_PATH = Path(__file__).with_name("RESULTS.md")


@dataclass
class Table:
    """One benchmark's result: a Markdown table plus notes and a verdict."""

    title: str
    columns: list[str]
    rows: list[list[Any]]
    target: str = ""
    verdict: str = ""
    notes: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        """The table as GitHub Markdown, with its target, verdict and notes."""
        lines = [f"### {self.title}", ""]
        lines.append("| " + " | ".join(self.columns) + " |")
        lines.append("|" + "|".join("---" for _ in self.columns) + "|")
        for row in self.rows:
            lines.append("| " + " | ".join(_cell(value) for value in row) + " |")
        lines.append("")
        if self.target:
            lines.append(f"**Target:** {self.target}  ")
        if self.verdict:
            lines.append(f"**Result:** {self.verdict}")
        if self.notes:
            lines.append("")
            lines.extend(f"- {note}" for note in self.notes)
        return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 10 else f"{value:,.3f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def median(values: Sequence[float]) -> float:
    """The median (raises on an empty sequence, so a bench cannot pass vacuously)."""
    return float(statistics.median(values))


def percentile(values: Sequence[float], q: float) -> float:
    """The `q`-th percentile (0-100) by nearest rank."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return float(ordered[index])


def rss_kib() -> int:
    """This process's resident set size in KiB, from /proc/self/status."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    msg = "VmRSS not found in /proc/self/status"
    raise RuntimeError(msg)


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (or the platform's guess)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine() -> dict[str, str]:
    """What the numbers were measured on."""
    packages = [
        "langchain-devic",
        "langchain-core",
        "httpx",
        "httpcore",
        "langchain-openai",
        "openai",
        "pydantic",
    ]
    info = {
        "CPU": cpu_model(),
        "Cores": str(os.cpu_count()),
        "OS": f"{platform.system()} {platform.release()}",
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
    }
    info.update({name: _version(name) for name in packages})
    return info


def bench_args(description: str) -> argparse.Namespace:
    """Command-line arguments every benchmark script takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--quick", action="store_true", help="fewer iterations (a smoke run)"
    )
    parser.add_argument(
        "--json", metavar="PATH", help="also write the table as JSON to PATH"
    )
    parser.add_argument(
        "--profile", action="store_true", help="print a cProfile of the hot path"
    )
    return parser.parse_args()


def emit(tables: Table | Sequence[Table], json_path: str | None) -> None:
    """Print the table (or tables) and, if asked, save them for the runner."""
    if isinstance(tables, Table):
        tables = [tables]
    for table in tables:
        print(table.markdown(), flush=True)
    if json_path:
        saved = [asdict(table) for table in tables]
        Path(json_path).write_text(json.dumps(saved), encoding="utf-8")


def load_tables(path: Path) -> list[Table]:
    """The tables saved by `emit` (a benchmark may produce several)."""
    saved = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(saved, dict):
        saved = [saved]
    return [Table(**table) for table in saved]


def python_exe() -> str:
    """The interpreter running the benchmarks (subprocesses use the same one)."""
    return sys.executable
