"""The README's set-up commands and every Python block in it, executed.

Each ```python block runs on its own, in a fresh namespace and in README order,
as a reader pasting it would run it: blocks are written to be self-contained.
`DEVIC_API_KEY`, `DEVIC_BASE_URL` and `DEVIC_ASSISTANT_ID` point at an emulator
served on 127.0.0.1 for that block. A block preceded by
`<!-- requires-live-devic -->` needs live services: it is compiled (so it stays
valid Python) and skipped with that reason.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from langchain_core.language_models import BaseChatModel

import langchain_devic
from langchain_devic import ChatDevic
from langchain_devic.testing import DevicEmulator

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
LIVE_MARKER = "<!-- requires-live-devic -->"
KEY = "readme-test-key"
#: Fewer runnable blocks than this means the extraction (or the README) broke.
MIN_RUNNABLE_BLOCKS = 12

_FENCE = re.compile(
    r"^```(?P<lang>[\w-]*)[ \t]*\n(?P<code>.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL
)


@dataclass(frozen=True)
class Block:
    """One fenced block of the README."""

    lang: str
    code: str
    line: int
    live: bool

    @property
    def name(self) -> str:
        return f"README.md:{self.line}"


def readme_blocks() -> list[Block]:
    text = README.read_text(encoding="utf-8")
    blocks = []
    for match in _FENCE.finditer(text):
        before = text[: match.start()].rstrip()
        blocks.append(
            Block(
                lang=match["lang"],
                code=match["code"],
                line=text.count("\n", 0, match.start()) + 1,
                live=before.endswith(LIVE_MARKER),
            )
        )
    return blocks


PYTHON_BLOCKS = [block for block in readme_blocks() if block.lang == "python"]


@pytest.fixture
def devic_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[DevicEmulator]:
    """An emulator on loopback, and the environment ChatDevic reads pointing at it."""
    emulator = DevicEmulator(api_key=KEY)
    with emulator.serve() as server:
        monkeypatch.setenv("DEVIC_API_KEY", KEY)
        monkeypatch.setenv("DEVIC_BASE_URL", server.base_url)
        monkeypatch.setenv("DEVIC_ASSISTANT_ID", "support")
        yield emulator


@pytest.mark.parametrize(
    "block", PYTHON_BLOCKS, ids=[block.name for block in PYTHON_BLOCKS]
)
def test_readme_python_block(block: Block, devic_env: DevicEmulator) -> None:
    compiled = compile(block.code, block.name, "exec")
    if block.live:
        pytest.skip(f"{block.name} requires live Devic (marked {LIVE_MARKER})")
    exec(compiled, {"__name__": f"readme_{block.line}"})  # noqa: S102 - our README
    assert devic_env.requests or "DevicEmulator(" in block.code, (
        f"{block.name} ran without talking to Devic"
    )


def test_readme_runs_enough_blocks() -> None:
    runnable = [block for block in PYTHON_BLOCKS if not block.live]
    assert len(runnable) >= MIN_RUNNABLE_BLOCKS
    # The live marker is only used where it is needed.
    assert len(PYTHON_BLOCKS) - len(runnable) <= 2


def test_readme_starts_with_the_two_setup_commands() -> None:
    text = README.read_text(encoding="utf-8")
    first = readme_blocks()[0]
    assert first.lang == "bash"
    # Only the title and one sentence come before the commands.
    preamble = [line for line in text[: text.index("```")].splitlines() if line]
    assert len(preamble) == 2
    assert preamble[0].startswith("# ")
    commands = first.code.strip().splitlines()
    assert commands == [
        "python3 -m venv .venv && .venv/bin/pip install -e . "
        "&& .venv/bin/python -m langchain_devic demo",
        'python3 -m venv .venv && .venv/bin/pip install -e ".[test]" '
        "&& .venv/bin/python -m pytest",
    ]
    # The test command is the one CI runs.
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert re.search(r"^python -m pytest$", ci, re.MULTILINE)


def test_readme_documents_every_error_and_field() -> None:
    text = README.read_text(encoding="utf-8")
    errors = [name for name in langchain_devic.__all__ if name.startswith("Devic")]
    errors.remove("DevicAssistantTool")
    for name in errors:
        assert f"| `{name}`" in text, f"{name} is missing from the error table"
    # ChatDevic's own fields (and `cache`, whose default it changes).
    own = set(ChatDevic.model_fields) - set(BaseChatModel.model_fields) | {"cache"}
    for field in sorted(own - {"assistant_id"}):
        assert f"| `{field}` |" in text, f"{field} is missing from the config table"
    assert "| `assistant_id` (alias `model`) |" in text
