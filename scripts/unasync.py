"""Generate the sync twins of langchain-devic's async modules, as httpcore does.

The async code is written once; its sync twin is this script's output, line for
line, with `async`/`await` removed and each async name replaced by its sync
one. Lines between `# unasync: async-only` and `# unasync: end` are left out;
a comment `# unasync: sync: CODE` becomes the line `CODE` in the sync twin.
The result is formatted with ruff, so it is what ruff would keep.

A module that keeps both colours side by side (a public class with `hold` and
`ahold`) marks its async code `# unasync: twin` ... `# unasync: twin-end`; the
block right after it, `# unasync: generated` ... `# unasync: generated-end`,
is that code's sync twin, generated in place.

    python scripts/unasync.py          # write the generated files
    python scripts/unasync.py --check  # fail when one is stale (.ci/run does)
"""

from __future__ import annotations

import argparse
import difflib
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "langchain_devic"

#: Async source -> generated sync file.
FILES = {
    PACKAGE / "_async_core.py": PACKAGE / "_sync_core.py",
    PACKAGE / "_async_client.py": PACKAGE / "_sync_client.py",
    PACKAGE / "_async_tool.py": PACKAGE / "_sync_tool.py",
    PACKAGE / "_async_chat.py": PACKAGE / "_sync_chat.py",
    PACKAGE / "_async_follow.py": PACKAGE / "_sync_follow.py",
    PACKAGE / "_async_agents.py": PACKAGE / "_sync_agents.py",
    PACKAGE / "_async_agent_calls.py": PACKAGE / "_sync_agent_calls.py",
}

#: Modules whose `# unasync: twin` blocks have a generated sync block in place.
TWIN_FILES = [
    PACKAGE / "locks.py",
    PACKAGE / "_locks.py",
    PACKAGE / "_progress.py",
    PACKAGE / "_stores.py",
    PACKAGE / "_exchange.py",
]

#: (pattern, replacement), applied in order to each line.
SUBSTITUTIONS: list[tuple[str, str]] = [
    (r"\basync def\b", "def"),
    (r"\basync for\b", "for"),
    (r"\basync with\b", "with"),
    (r"\bawait ", ""),
    (r"\bAsyncGenerator\[(.+), None\]", r"Generator[\1, None, None]"),
    (r"\bAsyncGenerator\b", "Generator"),
    (r"\bAsyncIterator\b", "Iterator"),
    (r"\bAsyncDevicClient\b", "DevicClient"),
    (r"\bhttpx\.AsyncClient\b", "httpx.Client"),
    (r"\bbuild_async_http\b", "build_sync_http"),
    (r"\b_exchange\.asend\b", "_exchange.send"),
    (r"\b_exchange\.aopen_stream\b", "_exchange.open_stream"),
    (r"\b_clock\.asleep\b", "_clock.sleep"),
    (r"\bASettle\b", "Settle"),
    (r"\b_AsyncToolCalls\b", "_SyncToolCalls"),
    (r"\b_AsyncRunFollowing\b", "_SyncRunFollowing"),
    (r"\blangchain_devic\._async_(core|follow)\b", r"langchain_devic._sync_\1"),
    (r"\b_AsyncClientCore\b", "_SyncClientCore"),
    (r"\bAsyncStream\b", "Stream"),
    (r"\basynccontextmanager\b", "contextmanager"),
    (r"\bAbstractAsyncContextManager\b", "AbstractContextManager"),
    (r"\bAsyncExitStack\b", "ExitStack"),
    (r"\benter_async_context\b", "enter_context"),
    (r"\bAsyncHeldLock\b", "HeldLock"),
    (r"\bpsycopg\.AsyncConnection\b", "psycopg.Connection"),
    (r"\bAsyncCallbackManager\b", "CallbackManager"),
    (r"\b_a(pool|connection|lock|unlock|verify|read|write)\b", r"_\1"),
    (r"\ba(hold|acquire|report|get|put|check)\b", r"\1"),
    (r"\banext\b", "next"),
    (r"\ba(send|open_stream)\b", r"\1"),
    (r"\b_a(read_all|next_chunk|time_limit|watched)\b", r"_\1"),
    (r"\baiter_raw\b", "iter_raw"),
    (r"\bam(get|set)\b", r"m\1"),
    (r"\bStopAsyncIteration\b", "StopIteration"),
    (r"\bin this task\b", "in this thread"),
    (r"\bAsyncCallbackManagerForToolRun\b", "CallbackManagerForToolRun"),
    (r"\b_AsyncChatCalls\b", "_SyncChatCalls"),
    (r"\bAsyncCallbackManagerForLLMRun\b", "CallbackManagerForLLMRun"),
    (
        r"\b_a(run|converse|platform_turn|ask|await_idle|save|send|generate|stream"
        r"|started|check|settle)\b",
        r"_\1",
    ),
    (r"\ba(load_chat|stop_chat|list_chats)\b", r"\1"),
    (
        r"\ba(list_assistants|get_assistant|search_chats|submit_feedback"
        r"|list_feedback)\b",
        r"\1",
    ),
    (r"\blangchain_devic\._async_agents\b", "langchain_devic._sync_agents"),
    (
        r"\blangchain_devic\._async_client import DevicClient\b",
        "langchain_devic._sync_client import DevicClient",
    ),
    (r"\b_AsyncAgentToolCalls\b", "_SyncAgentToolCalls"),
    (r"\b_AsyncAgentCalls\b", "_SyncAgentCalls"),
    (
        r"\b_a(write|list_agents|get_agent|list_threads|get_thread|find_thread"
        r"|create_thread|thread_action|approve|follow_thread|started|dispatch"
        r"|reporter)\b",
        r"_\1",
    ),
    (
        r"\ba(list_agents|get_agent|list_agent_threads|get_agent_thread"
        r"|approve_thread|reject_thread|send_thread_feedback)\b",
        r"\1",
    ),
    (r"\badispatch_custom_event\b", "dispatch_custom_event"),
    (r"\ba(stream|stream_events|reporting)\b", r"\1"),
    (r"\.areport\(", ".report("),
    (r"\baget_chat_uuid\b", "get_chat_uuid"),
    (r'"acheck"', '"check"'),
    (r"\.acheck\(", ".check("),
    (r"\bainvoke\b", "invoke"),
    (r"\.a(get|put|hold)\(", r".\1("),
    (r"\.async_client\b", ".client"),
    (r"\bThe async calls\b", "The sync calls"),
    (r"\.aclose\(\)", ".close()"),
    (r"\baclose\b", "close"),
    (r"\basynchronous\b", "synchronous"),
    (r"\bAsynchronous\b", "Synchronous"),
]
_COMPILED = [(re.compile(pattern), repl) for pattern, repl in SUBSTITUTIONS]

GENERATED = "# unasync: generated (the block above, made sync: do not edit)"

HEADER = (
    "# Generated from {source} by scripts/unasync.py: do not edit by hand.\n"
    "# Change the async module, then run `python scripts/unasync.py`.\n"
)


def _unasync_lines(lines: list[str]) -> str:
    """The sync twin of async lines (markers applied, names replaced)."""
    out: list[str] = []
    skipping = False
    for line in lines:
        marker = line.strip()
        if marker == "# unasync: async-only":
            skipping = True
            continue
        if marker == "# unasync: end":
            skipping = False
            continue
        if skipping:
            continue
        if marker.startswith("# unasync: sync: "):  # a line for the sync twin only
            indent = line[: len(line) - len(line.lstrip())]
            line = indent + marker.removeprefix("# unasync: sync: ") + "\n"
        for pattern, repl in _COMPILED:
            line = pattern.sub(repl, line)
        out.append(line)
    return "".join(out)


def unasync_text(text: str, source_name: str) -> str:
    """The sync twin of an async module's text (before formatting)."""
    return HEADER.format(source=source_name) + _unasync_lines(
        text.splitlines(keepends=True)
    )


def _end_of(lines: list[str], start: int, marker: str, path: Path) -> int:
    for index in range(start, len(lines)):
        if lines[index].strip() == marker:
            return index
    raise SystemExit(f"{path}: line {start}: no {marker!r} after it")


def twins_text(text: str, path: Path) -> str:
    """`text` with each twin block's generated sync block made anew."""
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    index = 0
    while index < len(lines):
        out.append(lines[index])
        if lines[index].strip() != "# unasync: twin":
            index += 1
            continue
        end = _end_of(lines, index + 1, "# unasync: twin-end", path)
        source = lines[index + 1 : end]
        start = end + 1
        if start >= len(lines) or lines[start].strip() != GENERATED:
            raise SystemExit(f"{path}: line {end + 1}: {GENERATED!r} must follow")
        stop = _end_of(lines, start + 1, "# unasync: generated-end", path)
        out += [*source, lines[end], lines[start], _unasync_lines(source)]
        out.append(lines[stop])
        index = stop + 1
    return "".join(out)


def _ruff(args: list[str], text: str, path: Path) -> str:
    result = subprocess.run(  # noqa: S603 - this interpreter's ruff, fixed args
        [sys.executable, "-m", "ruff", *args, "--stdin-filename", str(path), "-"],
        input=text,
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    if result.returncode not in (0, 1):
        raise SystemExit(result.stderr)
    return result.stdout


def formatted(text: str, path: Path) -> str:
    """`text` with imports sorted and formatted, as ruff keeps the package."""
    text = _ruff(["check", "--select", "I,F401", "--fix", "--quiet"], text, path)
    return _ruff(["format", "--quiet"], text, path)


def generate(source: Path, target: Path) -> str:
    """The generated text of `target`."""
    text = unasync_text(source.read_text(), source.name)
    return formatted(text, target)


def main(argv: list[str] | None = None) -> int:
    """Write (or, with --check, verify) every generated file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if stale")
    args = parser.parse_args(argv)
    stale = 0
    made = [(target, generate(source, target)) for source, target in FILES.items()]
    made += [
        (path, formatted(twins_text(path.read_text(), path), path))
        for path in TWIN_FILES
    ]
    for target, fresh in made:
        current = target.read_text() if target.exists() else ""
        if fresh == current:
            continue
        if args.check:
            stale += 1
            diff = difflib.unified_diff(
                current.splitlines(keepends=True),
                fresh.splitlines(keepends=True),
                str(target.relative_to(ROOT)),
                "generated",
            )
            sys.stdout.writelines(list(diff)[:80])
        else:
            target.write_text(fresh)
            sys.stdout.write(f"wrote {target.relative_to(ROOT)}\n")
    if stale:
        sys.stdout.write(
            f"{stale} generated file(s) stale: run python scripts/unasync.py\n"
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
