"""Benchmark 3: import time of the package, and construction time of its objects.

Import: `python -X importtime -c "import langchain_devic"` against `python -X
importtime -c "import langchain_core.language_models"`, each in fresh
subprocesses, repeated; the figure per run is the cumulative time of the
top-level imports (the sum of the cumulative column over unindented lines),
and the table shows the medians. A second pair measures the same imports with
`time.perf_counter()` in a fresh interpreter, without importtime's own cost.

The imports run in a fresh virtualenv holding only the package's wheel and its
dependencies (built with `python -m build --wheel` into a temporary folder,
installed with pip): no editable install, no dev extras. httpx imports its
command-line stack (rich, click) when they are installed, which a dev
environment has and a user's may not.

Construction: median of 1,000 constructions each of `ChatDevic`,
`DevicAssistantTool` (around a model, and from ChatDevic's fields), and, for
scale, `ChatOpenAI`.

Run: `python -m tests.benchmarks.bench_import [--quick]`.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.benchmarks._common import (
    API_KEY,
    ASSISTANT,
    Table,
    bench_args,
    emit,
    median,
)

OURS = "import langchain_devic"
#: The import the issue names. `langchain_core.language_models` loads its
#: classes lazily, so this does not load `BaseChatModel` itself.
BASELINE = "import langchain_core.language_models"
#: What any LangChain chat-model-plus-tool integration has to load.
EFFECTIVE_BASELINE = (
    "from langchain_core.language_models import BaseChatModel; "
    "from langchain_core.tools import BaseTool"
)
TARGET_MS = 15.0
ROOT = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def wheel_python(folder: str) -> Iterator[tuple[str, str]]:
    """A fresh venv with the package's wheel installed: its python and packages."""
    dist = Path(folder) / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (wheel,) = dist.glob("*.whl")
    venv = Path(folder) / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = str(venv / "bin" / "python")
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", str(wheel)],
        check=True,
        capture_output=True,
        timeout=900,
    )
    listed = subprocess.run(
        [python, "-m", "pip", "list", "--format=freeze"],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout.split()
    yield python, ", ".join(sorted(listed))


@dataclass
class ImportLine:
    """One line of `-X importtime` output."""

    self_us: int
    cumulative_us: int
    depth: int
    module: str


def parse_importtime(stderr: str) -> list[ImportLine]:
    """The `import time:` lines of a `-X importtime` run."""
    lines = []
    for raw in stderr.splitlines():
        if not raw.startswith("import time:") or "self [us]" in raw:
            continue
        self_us, cumulative, name = raw[len("import time:") :].split("|", 2)
        stripped = name.lstrip(" ")
        depth = (len(name) - len(stripped) - 1) // 2
        lines.append(ImportLine(int(self_us), int(cumulative), depth, stripped))
    return lines


def subprocess_env(pycache: str) -> dict[str, str]:
    """Bytecode caching on, into a scratch folder (as for an installed wheel).

    With `PYTHONDONTWRITEBYTECODE` set (common in containers) an editable
    checkout is recompiled on every import, which would be measured as import
    time; a private `PYTHONPYCACHEPREFIX` caches every module alike without
    writing into the repository.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = pycache
    return env


def importtime_run(
    statement: str, env: dict[str, str], python: str = sys.executable
) -> list[ImportLine]:
    done = subprocess.run(
        [python, "-X", "importtime", "-c", statement],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    lines = parse_importtime(done.stderr)
    assert len(lines) > 10, f"{statement!r} imported nothing?"
    return lines


def top_level_us(lines: list[ImportLine]) -> int:
    """The import statement's cost: the cumulative time of unindented imports."""
    return sum(line.cumulative_us for line in lines if line.depth == 0)


def perf_counter_run(
    statement: str, env: dict[str, str], python: str = sys.executable
) -> float:
    """Milliseconds to run `statement` in a fresh interpreter, by perf_counter."""
    code = (
        "import time; t = time.perf_counter(); "
        f"{statement}; print((time.perf_counter() - t) * 1000)"
    )
    done = subprocess.run(
        [python, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return float(done.stdout.strip())


def incremental_run(env: dict[str, str], python: str) -> float:
    """Milliseconds `import langchain_devic` takes after BaseChatModel + BaseTool."""
    code = (
        f"{EFFECTIVE_BASELINE}; import time; t = time.perf_counter(); "
        f"{OURS}; print((time.perf_counter() - t) * 1000)"
    )
    done = subprocess.run(
        [python, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return float(done.stdout.strip())


def construction_us(build: Callable[[], Any], repeats: int) -> float:
    """Median microseconds of `build()`, after a short warm-up."""
    for _ in range(min(50, repeats)):
        build()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        build()
        samples.append((time.perf_counter_ns() - start) / 1000)
    return median(samples)


def measure(quick: bool) -> Table:
    repeats = 3 if quick else 7
    statements = [OURS, BASELINE, EFFECTIVE_BASELINE]
    importtime_ms: dict[str, list[float]] = {s: [] for s in statements}
    wall_ms: dict[str, list[float]] = {s: [] for s in statements}
    last: dict[str, list[ImportLine]] = {}
    incremental_ms: list[float] = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-wheel-") as folder,
        wheel_python(folder) as (python, installed),
    ):
        env = subprocess_env(str(Path(folder) / "pycache"))
        env.pop("PYTHONPATH", None)
        for statement in statements:  # fills the bytecode cache
            importtime_run(statement, env, python)
        for _ in range(repeats):  # interleaved, so drift hits all alike
            for statement in statements:
                last[statement] = importtime_run(statement, env, python)
                importtime_ms[statement].append(top_level_us(last[statement]) / 1000)
                wall_ms[statement].append(perf_counter_run(statement, env, python))
            incremental_ms.append(incremental_run(env, python))

    def added(baseline: str) -> tuple[float, float]:
        return (
            median(importtime_ms[OURS]) - median(importtime_ms[baseline]),
            median(wall_ms[OURS]) - median(wall_ms[baseline]),
        )

    added_literal = added(BASELINE)
    added_effective = added(EFFECTIVE_BASELINE)

    # What the added time is made of: modules only our import loads.
    base_modules = {line.module for line in last[EFFECTIVE_BASELINE]}
    extra = [line for line in last[OURS] if line.module not in base_modules]
    ours_self = {
        line.module: line.self_us
        for line in extra
        if line.module.split(".")[0] == "langchain_devic"
    }
    deps_self: dict[str, int] = {}
    for line in extra:
        top = line.module.split(".")[0]
        if top != "langchain_devic":
            deps_self[top] = deps_self.get(top, 0) + line.self_us

    from langchain_openai import ChatOpenAI
    from pydantic import SecretStr

    from langchain_devic import ChatDevic, DevicAssistantTool

    n = 200 if quick else 1000
    model = ChatDevic(model=ASSISTANT, api_key=API_KEY)
    key = SecretStr(API_KEY)
    chat_us = construction_us(lambda: ChatDevic(model=ASSISTANT, api_key=key), n)
    tool_us = construction_us(
        lambda: DevicAssistantTool(name="billing", description="d", chat_model=model),
        n,
    )
    tool_fields_us = construction_us(
        lambda: DevicAssistantTool(
            name="billing", description="d", assistant_id=ASSISTANT, api_key=key
        ),
        n,
    )
    openai_us = construction_us(
        lambda: ChatOpenAI(model="gpt-4o-mini", api_key="sk-test"), n
    )

    def label(statement: str) -> str:
        return f"`{statement}`"

    rows: list[list[Any]] = []
    for statement in statements:
        rows.append(
            [
                label(statement),
                median(importtime_ms[statement]),
                median(wall_ms[statement]),
            ]
        )
    rows.append(
        ["**added over `import langchain_core.language_models`**", *added_literal]
    )
    rows.append(["**added over BaseChatModel + BaseTool**", *added_effective])
    incremental = median(incremental_ms)
    rows.append(
        [
            "**`import langchain_devic` after BaseChatModel + BaseTool, same process**",
            "",
            incremental,
        ]
    )
    construction = [
        ("`ChatDevic(model=..., api_key=...)`", chat_us),
        ("`DevicAssistantTool(chat_model=model, ...)`", tool_us),
        ("`DevicAssistantTool(assistant_id=..., api_key=..., ...)`", tool_fields_us),
        ("`ChatOpenAI(model=..., api_key=...)` (for scale)", openai_us),
    ]
    for what, us in construction:
        rows.append([f"construct {what}, median of {n}", us / 1000, ""])

    met = max(added_effective) <= TARGET_MS
    verdict = (
        f"{'met' if met else 'NOT met'}: from the wheel, a fresh "
        f"`import langchain_devic` costs {added_effective[0]:.1f} ms (-X "
        f"importtime) / {added_effective[1]:.1f} ms (perf_counter) more than a "
        "fresh import of `BaseChatModel` and `BaseTool`, the least any chat-model "
        "integration loads; imported after them in the same process it takes "
        f"{incremental:.1f} ms ({added_literal[0]:.0f} ms more than the lazy "
        "`import langchain_core.language_models`, which loads no model class). "
        f"ChatDevic builds in {chat_us:.0f} µs."
    )

    def listing(items: dict[str, int]) -> str:
        ranked = sorted(items.items(), key=lambda kv: -kv[1])
        return ", ".join(f"`{name}` {us / 1000:.1f}" for name, us in ranked[:6])

    return Table(
        title="3. Import and construction time",
        columns=["what", "ms (-X importtime)", "ms (perf_counter)"],
        rows=rows,
        target=f"the package adds <= {TARGET_MS:.0f} ms of import time over "
        "`BaseChatModel` + `BaseTool`, installed from its wheel.",
        verdict=verdict,
        notes=[
            "Imports: a fresh venv holding the wheel built from this tree and "
            f"its dependencies only: {installed}.",
            f"Import medians of {repeats} fresh subprocesses per statement, "
            "interleaved. The -X importtime figure is the sum of the cumulative "
            "column over top-level (unindented) imports, i.e. the whole statement; "
            "the perf_counter figure times the statement inside a fresh "
            "interpreter, without importtime's own cost.",
            "`import langchain_core.language_models` is lazy (PEP 562 "
            "`__getattr__`): it does not import `BaseChatModel`, whose module "
            "pulls in tracing (langsmith) and the message/output machinery. Hence "
            "the second baseline.",
            "Beyond the second baseline (one run, self time): our own modules "
            f"{sum(ours_self.values()) / 1000:.1f} ms ({listing(ours_self)}); "
            f"third-party modules {sum(deps_self.values()) / 1000:.1f} ms "
            f"({listing(deps_self)}).",
            "Same process: the baseline imported first, then `import "
            "langchain_devic` timed alone (median of the same runs): the cost of the "
            "modules only it loads. The fresh-process difference is larger although "
            "the same modules load: with `import langchain_devic` first, the self "
            "times of langsmith's and langchain-core's modules grow (spread over "
            "langsmith.types' pydantic models), which the same-process row leaves "
            "out.",
            "Constructing a model builds no HTTP client: pools are created on the "
            "first call and reused.",
        ],
    )


def main() -> int:
    args = bench_args(__doc__.splitlines()[0])
    emit(measure(args.quick), args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
