"""The sync-twin generator (`scripts/unasync.py`) does what `.ci/run` trusts.

Every sync twin in the package is generated from its async code, and `.ci/run`
fails when one is stale (`python scripts/unasync.py --check`). These tests hold
the generator itself: names and markers are mapped, a generated block is made
anew from the block above it, and a block left without its generated twin is
refused instead of passing silently.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "unasync.py"


@pytest.fixture(scope="module")
def unasync() -> ModuleType:
    spec = importlib.util.spec_from_file_location("unasync_script", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


TWIN_MODULE = '''\
class Store:
    # unasync: twin
    async def aget(self, key: str) -> bytes | None:
        """Read `key` in this task."""
        async with self._alock():
            return await self.store.amget([key])
    # unasync: twin-end
    # unasync: generated (the block above, made sync: do not edit)
    def get(self, key: str) -> bytes | None:
        return None  # stale: edited by hand
    # unasync: generated-end
'''


def test_a_generated_block_is_made_anew_from_its_twin(unasync: ModuleType) -> None:
    text = unasync.twins_text(TWIN_MODULE, Path("store.py"))
    generated = text.split(unasync.GENERATED)[1].split("# unasync: generated-end")[0]
    assert generated == (
        "\n"
        "    def get(self, key: str) -> bytes | None:\n"
        '        """Read `key` in this thread."""\n'
        "        with self._lock():\n"
        "            return self.store.mget([key])\n"
        "    "
    )
    assert "stale" not in text
    assert text.split(unasync.GENERATED)[0] in TWIN_MODULE  # the source is kept
    assert unasync.twins_text(text, Path("store.py")) == text  # and it is stable


def test_a_twin_without_its_generated_block_is_refused(unasync: ModuleType) -> None:
    broken = TWIN_MODULE.replace(unasync.GENERATED, "# a hand-written twin")
    with pytest.raises(SystemExit, match="must follow"):
        unasync.twins_text(broken, Path("store.py"))
    unended = TWIN_MODULE.split("    # unasync: twin-end")[0]
    with pytest.raises(SystemExit, match="twin-end"):
        unasync.twins_text(unended, Path("store.py"))


def test_markers_leave_out_async_only_lines_and_add_sync_only_ones(
    unasync: ModuleType,
) -> None:
    source = [
        "async def astop_chat(self) -> None:\n",
        "    # unasync: async-only\n",
        "    await self.quiesce()\n",
        "    # unasync: end\n",
        "    # unasync: sync: self.flush()\n",
        "    await anext(self.chunks)\n",
    ]
    assert unasync._unasync_lines(source) == (
        "def stop_chat(self) -> None:\n    self.flush()\n    next(self.chunks)\n"
    )


def test_every_twin_module_has_a_generated_block(unasync: ModuleType) -> None:
    """No module listed as keeping twins holds a hand-written pair instead."""
    for path in unasync.TWIN_FILES:
        text = path.read_text()
        assert text.count("# unasync: twin\n") >= 1, path
        assert text.count("# unasync: twin\n") == text.count(unasync.GENERATED), path
