"""One run-status table: the emulator's statuses against the client's.

Devic's realtime view has a documented set of statuses (its clients' type
files: buffering, processing, completed, error, waiting_for_tool_response,
handed_off, limit_exceeded, and the newer paused_for_resume). The emulator can
produce each of them (`RUN_STATUSES`); the client (`_runs`) must handle each:
keep following, end the run, or fail it. And every status the client names
must be one Devic documents, so neither side drifts from the other.
"""

from __future__ import annotations

import ast
import inspect
from typing import Any, Literal

import pytest

from langchain_devic import _runs
from langchain_devic.errors import DevicError
from langchain_devic.testing._script import CLOSING_STATUSES, RUN_STATUSES

#: What a client does with each status Devic documents for the realtime view.
Handling = Literal["follow", "follow-slowly", "done", "fails", "done-or-fails"]
DOCUMENTED: dict[str, Handling] = {
    "buffering": "follow",
    "processing": "follow",
    "completed": "done",
    "error": "fails",
    # Ends the run for a caller with client tools; fails one without any.
    "waiting_for_tool_response": "done-or-fails",
    "handed_off": "follow-slowly",
    "limit_exceeded": "fails",
    "paused_for_resume": "follow-slowly",
}


def client_statuses() -> set[str]:
    """Every status the client names.

    `_runs.STATUSES` when the client keeps one table; until then, its status
    sets and every string it compares a `status` with.
    """
    table = getattr(_runs, "STATUSES", None)
    if table is not None:
        return {str(status) for status in table}
    named = set(_runs.FINISHED) | set(_runs.SETTLED) | set(_runs.SLOW)
    tree = ast.parse(inspect.getsource(_runs))
    for node in ast.walk(tree):
        if not isinstance(node, ast.Compare):
            continue
        operands = [node.left, *node.comparators]
        if not any(isinstance(o, ast.Name) and o.id == "status" for o in operands):
            continue
        named.update(
            o.value
            for o in operands
            if isinstance(o, ast.Constant) and isinstance(o.value, str)
        )
    return named


def handling(status: str, *, client_tools: bool) -> str:
    """What the client's tracker does with one view in `status`."""
    tracker = _runs.RunTracker("chat-1", "hello", client_tools=client_tools)
    view: dict[str, Any] = {
        "chatUID": "chat-1",
        "status": status,
        "chatHistory": [{"uid": "u1", "role": "user", "content": {"message": "hello"}}],
        "pendingToolCalls": [
            {
                "id": "call-1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": "{}"},
            }
        ],
    }
    seen = tracker.observe(view)
    if seen.error is not None:
        assert isinstance(seen.error, DevicError)
        return "fails"
    if seen.done:
        return "done"
    return "follow-slowly" if seen.slow else "follow"


def test_the_emulator_produces_exactly_the_documented_statuses() -> None:
    # RUN_STATUSES is read off the RunStatus type, so this holds the type.
    assert set(RUN_STATUSES) == set(DOCUMENTED)
    assert set(CLOSING_STATUSES) <= set(RUN_STATUSES)


@pytest.mark.parametrize("status", RUN_STATUSES)
def test_every_emulator_status_is_one_the_client_handles(status: str) -> None:
    expected = DOCUMENTED[status]
    with_tools = handling(status, client_tools=True)
    without_tools = handling(status, client_tools=False)
    if expected == "done-or-fails":
        assert (with_tools, without_tools) == ("done", "fails")
    else:
        assert with_tools == without_tools == expected


@pytest.mark.parametrize("status", sorted(CLOSING_STATUSES))
def test_a_status_that_closes_the_stream_is_one_the_client_stops_on(
    status: str,
) -> None:
    # The emulator's stream ends on these: a client still following would hang.
    assert handling(status, client_tools=True) in {"done", "fails"}


def test_every_status_the_client_names_is_documented() -> None:
    named = client_statuses()
    assert named, "the client names no status at all"
    assert named <= set(DOCUMENTED), sorted(named - set(DOCUMENTED))


def test_the_client_names_every_status_that_ends_or_slows_a_run() -> None:
    # A status the client only follows by default (buffering, processing) need
    # not be named; one that ends, fails or slows a run must be.
    named = client_statuses()
    needed = {s for s, how in DOCUMENTED.items() if how not in {"follow"}}
    assert needed <= named, sorted(needed - named)
