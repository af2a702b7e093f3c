"""The README and the docs pages: set-up commands, links, and every Python block.

Each ```python block of `README.md` and of every page under `docs/` runs on
its own, in a fresh namespace and in page order, as a reader pasting it would
run it: blocks are written to be self-contained. `DEVIC_API_KEY`,
`DEVIC_BASE_URL` and `DEVIC_ASSISTANT_ID` point at an emulator served on
127.0.0.1 for that block. A block preceded by `<!-- requires-live-devic -->`
needs live services: it is compiled (so it stays valid Python) and skipped
with that reason.

The docs site itself (`mkdocs build --strict`, which also checks every link
between pages) is built by `.ci/run`; the checks here need no MkDocs.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from langchain_core.language_models import BaseChatModel

import langchain_devic
from langchain_devic import ChatDevic
from langchain_devic.testing import AgentStep, DevicEmulator

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
DOC_PAGES = sorted(DOCS.rglob("*.md"))
MKDOCS = ROOT / "mkdocs.yml"
LIVE_MARKER = "<!-- requires-live-devic -->"
KEY = "readme-test-key"
#: The README's longest allowed length: the guides live in docs/.
README_MAX_LINES = 250
#: Fewer runnable blocks than these means the extraction (or a page) broke.
MIN_RUNNABLE_README_BLOCKS = 2
MIN_RUNNABLE_DOCS_BLOCKS = 22
#: The live marker is only used where it is needed.
MAX_LIVE_README_BLOCKS = 0
MAX_LIVE_DOCS_BLOCKS = 2

_FENCE = re.compile(
    r"^```(?P<lang>[\w-]*)[ \t]*\n(?P<code>.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL
)
_HEADING = re.compile(r"^#{1,6} (?P<title>.+?)[ \t]*$", re.MULTILINE)
_LINK = re.compile(r"\]\((?P<target>[^)\s]+)\)")


@dataclass(frozen=True)
class Block:
    """One fenced block of a Markdown page."""

    page: str
    lang: str
    code: str
    line: int
    live: bool

    @property
    def name(self) -> str:
        return f"{self.page}:{self.line}"


def page_name(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def markdown_blocks(path: Path) -> list[Block]:
    text = path.read_text(encoding="utf-8")
    blocks = []
    for match in _FENCE.finditer(text):
        before = text[: match.start()].rstrip()
        blocks.append(
            Block(
                page=page_name(path),
                lang=match["lang"],
                code=match["code"],
                line=text.count("\n", 0, match.start()) + 1,
                live=before.endswith(LIVE_MARKER),
            )
        )
    return blocks


def readme_blocks() -> list[Block]:
    return markdown_blocks(README)


def python_blocks(paths: list[Path]) -> list[Block]:
    return [b for path in paths for b in markdown_blocks(path) if b.lang == "python"]


README_PYTHON_BLOCKS = python_blocks([README])
DOCS_PYTHON_BLOCKS = python_blocks(DOC_PAGES)
PYTHON_BLOCKS = README_PYTHON_BLOCKS + DOCS_PYTHON_BLOCKS


def without_code(text: str) -> str:
    """The page with its fenced blocks blanked (headings and links in code aside)."""
    return _FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)


def slug(title: str) -> str:
    """A heading's anchor, as Python-Markdown's `toc` (MkDocs) and GitHub make it."""
    text = unicodedata.normalize("NFKD", title)
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def anchors(path: Path) -> set[str]:
    text = without_code(path.read_text(encoding="utf-8"))
    return {slug(m["title"]) for m in _HEADING.finditer(text)}


@pytest.fixture
def devic_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[DevicEmulator]:
    """An emulator on loopback, and the environment ChatDevic reads pointing at it."""
    emulator = DevicEmulator(api_key=KEY)
    # The Devic agent of docs/devic-agents.md: a plan, an approval, the send.
    emulator.agent_step_seconds = 0.01
    emulator.add_agent(
        "launch-planner",
        [
            AgentStep.task("Draft the plan"),
            AgentStep.approval("Send the plan?", "The plan is drafted."),
            AgentStep.task("Send the plan"),
            AgentStep.say("The plan was sent."),
        ],
        {"name": "Launch planner", "description": "Plans product launches."},
    )
    with emulator.serve() as server:
        monkeypatch.setenv("DEVIC_API_KEY", KEY)
        monkeypatch.setenv("DEVIC_BASE_URL", server.base_url)
        monkeypatch.setenv("DEVIC_ASSISTANT_ID", "support")
        yield emulator


@pytest.mark.parametrize(
    "block", PYTHON_BLOCKS, ids=[block.name for block in PYTHON_BLOCKS]
)
def test_python_block(block: Block, devic_env: DevicEmulator) -> None:
    compiled = compile(block.code, block.name, "exec")
    if block.live:
        pytest.skip(f"{block.name} requires live Devic (marked {LIVE_MARKER})")
    namespace = re.sub(r"\W", "_", block.name)
    exec(compiled, {"__name__": namespace})  # noqa: S102 - our own docs
    assert devic_env.requests or "DevicEmulator(" in block.code, (
        f"{block.name} ran without talking to Devic"
    )


@pytest.mark.parametrize(
    ("blocks", "minimum", "max_live"),
    [
        (README_PYTHON_BLOCKS, MIN_RUNNABLE_README_BLOCKS, MAX_LIVE_README_BLOCKS),
        (DOCS_PYTHON_BLOCKS, MIN_RUNNABLE_DOCS_BLOCKS, MAX_LIVE_DOCS_BLOCKS),
    ],
    ids=["README", "docs"],
)
def test_enough_blocks_run(blocks: list[Block], minimum: int, max_live: int) -> None:
    runnable = [block for block in blocks if not block.live]
    assert len(runnable) >= minimum
    assert len(blocks) - len(runnable) <= max_live


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


def test_readme_is_short_and_offline_first() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= README_MAX_LINES
    # The first Python block runs on the emulator, needing no account.
    first = README_PYTHON_BLOCKS[0]
    assert "DevicEmulator(" in first.code
    assert not first.live


def test_docs_document_every_error_and_field() -> None:
    errors_page = (DOCS / "errors.md").read_text(encoding="utf-8")
    errors = [
        name
        for name in langchain_devic.__all__
        if isinstance(value := getattr(langchain_devic, name), type)
        and issubclass(value, Exception)
    ]
    assert "DevicError" in errors
    for name in errors:
        assert f"| `{name}`" in errors_page, f"{name} is missing from the error table"
    # ChatDevic's own fields (and `cache`, whose default it changes).
    config_page = (DOCS / "configuration.md").read_text(encoding="utf-8")
    own = set(ChatDevic.model_fields) - set(BaseChatModel.model_fields) | {"cache"}
    for field in sorted(own - {"assistant_id"}):
        assert f"| `{field}` |" in config_page, f"{field} is missing from the table"
    assert "| `assistant_id` (alias `model`) |" in config_page


def test_every_docs_page_is_in_the_nav() -> None:
    nav = set(re.findall(r":\s*(\S+\.md)\s*$", MKDOCS.read_text("utf-8"), re.M))
    pages = {path.relative_to(DOCS).as_posix() for path in DOC_PAGES}
    assert pages == nav


@pytest.mark.parametrize(
    "path", [README, *DOC_PAGES], ids=[page_name(p) for p in [README, *DOC_PAGES]]
)
def test_relative_links_resolve(path: Path) -> None:
    """Links to files and headings exist (MkDocs checks docs/ too, not the README)."""
    text = without_code(path.read_text(encoding="utf-8"))
    for match in _LINK.finditer(text):
        target = match["target"]
        if re.match(r"[a-z]+:", target):
            continue  # an absolute URL
        file, _, anchor = target.partition("#")
        linked = (path.parent / file).resolve() if file else path
        assert linked.is_file(), f"{page_name(path)}: {target} does not exist"
        if anchor:
            assert anchor in anchors(linked), f"{page_name(path)}: no #{anchor}"
