"""The docs notebooks: executed with nbclient, and their committed outputs checked.

Each notebook starts the bundled emulator itself when `DEVIC_API_KEY` is unset,
so the `DEVIC_*` variables are removed before it runs. The committed outputs
must match a fresh run (ids and timestamps aside) and hold no machine path and
no secret; a second "Run all" in the same kernel must work as well as the first.
The kernels talk only to the emulator on 127.0.0.1 (tracing is switched off).
To refresh the outputs after a change:

    DEVIC_UPDATE_NOTEBOOKS=1 python -m pytest tests/integration_tests/test_notebooks.py
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
NAMES = [
    "chat_devic.ipynb",
    "chat_devic_tools.ipynb",
    "devic_assistant_tool.ipynb",
    "devic_agents.ipynb",
]
CELL_TIMEOUT = 120
#: LangChain's integration-doc order; each notebook's level-2 headings follow it.
SECTION_ORDER = {
    "devic_agents.ipynb": [
        "Overview",
        "Setup",
        "Instantiation",
        "Invocation",
        "Use within an agent",
        "API reference",
    ],
    "chat_devic.ipynb": [
        "Overview",
        "Setup",
        "Instantiation",
        "Invocation",
        "Chaining",
        "Conversations",
        "API reference",
    ],
    "chat_devic_tools.ipynb": [
        "Overview",
        "Setup",
        "Instantiation",
        "Invocation",
        "Tool calling",
        "Structured output",
        "Use within an agent",
        "API reference",
    ],
    "devic_assistant_tool.ipynb": [
        "Overview",
        "Setup",
        "Instantiation",
        "Invocation",
        "Use within an agent",
        "API reference",
    ],
}

_VOLATILE = [
    (
        re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"),
        "<id>",
    ),
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z?"), "<time>"),
]
_MACHINE_PATH = re.compile(r"(/(home|root|tmp|Users|work|var|opt)/|site-packages|\\\\)")


def _kernel_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Run the notebooks on this interpreter, against the emulator."""
    for name in ("DEVIC_API_KEY", "DEVIC_BASE_URL", "DEVIC_ASSISTANT_ID"):
        monkeypatch.delenv(name, raising=False)
    # Offline: no trace leaves the machine, whatever the developer's shell sets.
    for name in ("LANGSMITH_TRACING", "LANGCHAIN_TRACING_V2", "LANGCHAIN_TRACING"):
        monkeypatch.delenv(name, raising=False)
    # A "python3" kernel of this interpreter, ahead of any user-level kernelspec
    # that may point at another Python (JUPYTER_PATH is searched first).
    spec = tmp_path / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [
                    sys.executable,
                    "-m",
                    "ipykernel_launcher",
                    "-f",
                    "{connection_file}",
                ],
                "display_name": "Python 3",
                "language": "python",
            }
        ),
        encoding="utf-8",
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))


def _coalesce_streams(notebook: Any) -> None:
    """Join consecutive stream outputs: how a kernel splits them is timing."""
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        merged: list[Any] = []
        for output in cell.outputs:
            previous = merged[-1] if merged else None
            if (
                output.output_type == "stream"
                and previous is not None
                and previous.output_type == "stream"
                and previous.name == output.name
            ):
                previous.text += output.text
            else:
                merged.append(output)
        cell.outputs = merged


def _outputs(notebook: Any) -> list[list[str]]:
    """The text of each code cell's outputs, with ids and timestamps blanked."""
    cells = []
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        texts = []
        for output in cell.get("outputs", []):
            if output.output_type == "stream":
                text = output.text
            elif output.output_type in {"execute_result", "display_data"}:
                text = output.data.get("text/plain", "")
            else:
                text = f"{output.output_type}: {output.get('ename')}"
            for pattern, placeholder in _VOLATILE:
                text = pattern.sub(placeholder, text)
            texts.append(text)
        cells.append(texts)
    return cells


@pytest.mark.parametrize("name", NAMES)
def test_notebook_executes_cleanly(
    name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = NOTEBOOKS / name
    committed = nbformat.read(path, as_version=4)
    fresh = nbformat.read(path, as_version=4)
    _kernel_env(monkeypatch, tmp_path)
    NotebookClient(
        fresh,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    ).execute()
    _coalesce_streams(fresh)
    _coalesce_streams(committed)

    errors = [
        output
        for cell in fresh.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "error"
    ]
    assert errors == []
    if os.environ.get("DEVIC_UPDATE_NOTEBOOKS"):
        nbformat.write(fresh, path)
        return
    assert _outputs(committed) == _outputs(fresh), (
        f"{name}: the committed outputs are stale; refresh them with "
        "DEVIC_UPDATE_NOTEBOOKS=1 python -m pytest tests/integration_tests/"
        "test_notebooks.py"
    )


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_twice_in_one_kernel(
    name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """ "Run all" again in the same kernel: the set-up cell starts afresh.

    The first run's last cell has closed its emulator, and its `DEVIC_*`
    variables are still in the kernel's environment; the second run must not
    talk to that closed port (it used to fail with "Connection refused").
    """
    path = NOTEBOOKS / name
    committed = nbformat.read(path, as_version=4)
    _kernel_env(monkeypatch, tmp_path)
    runs = []
    client = NotebookClient(
        nbformat.read(path, as_version=4),
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    with client.setup_kernel():
        for _ in range(2):
            run = nbformat.read(path, as_version=4)
            client.nb = run
            for index, cell in enumerate(run.cells):
                client.execute_cell(cell, index)  # raises on an error output
            _coalesce_streams(run)
            runs.append(run)
    _coalesce_streams(committed)
    assert _outputs(runs[1]) == _outputs(committed) == _outputs(runs[0])


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_is_executed_and_clean(name: str) -> None:
    path = NOTEBOOKS / name
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    assert notebook.nbformat == 4
    assert notebook.metadata["kernelspec"]["name"] == "python3"

    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code_cells
    assert [cell.execution_count for cell in code_cells] == list(
        range(1, len(code_cells) + 1)
    ), "commit the notebook as executed top to bottom, once"

    outputs = json.dumps([cell.get("outputs", []) for cell in code_cells])
    assert not _MACHINE_PATH.search(outputs), "an output shows a machine path"
    assert "Bearer " not in outputs
    assert "notebook-key" not in outputs  # not even the emulator's fake key
    assert "127.0.0.1:" not in outputs  # the emulator's random port stays out

    headings = [
        line[3:].strip()
        for cell in notebook.cells
        if cell.cell_type == "markdown"
        for line in cell.source.splitlines()
        if line.startswith("## ")
    ]
    expected = SECTION_ORDER[name]
    assert [h for h in headings if h in expected] == expected
    assert headings[0] == "Overview"
    assert headings[-1] == "API reference"
