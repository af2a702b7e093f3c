"""A scripted Devic assistant that uses the caller's tools, and those tools.

Shared by the agent tests (in-process) and their HTTP twins (cassettes): the
assistant asks for one tool round at a time and reads the results, as a real
one would, so a test can check each round on the emulator's request log.
"""

from __future__ import annotations

from typing import Any

from langchain_core.tools import ToolException, tool

from langchain_devic.testing import CallTools, ClientCall, Conversation


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@tool
def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


@tool
def divide(a: float, b: float) -> float:
    """Divide a by b."""
    if b == 0:
        msg = "cannot divide by zero"
        raise ToolException(msg)
    return a / b


divide.handle_tool_error = True  # a failure becomes an error ToolMessage


def calculator(conversation: Conversation) -> Any:
    """The scripted Devic assistant: one tool round at a time, then the answer."""
    results = [r["content"] for r in conversation.tool_results]
    if conversation.turn == 1:  # (2 + 3) * 4, in two rounds
        if not results:
            return CallTools(ClientCall("add", {"a": 2, "b": 3}), text="Adding first.")
        if len(results) == 1:
            return CallTools(ClientCall("multiply", {"a": int(results[0]), "b": 4}))
        return f"(2 + 3) * 4 = {results[1]}"
    if conversation.turn == 2:  # a failing tool comes back as an error result
        if not results:
            return CallTools(ClientCall("divide", {"a": 20, "b": 0}))
        return f"That failed: {results[0]['error']}"
    if not results:  # two calls at once
        return CallTools(
            [ClientCall("add", {"a": 1, "b": 1}), ClientCall("add", {"a": 2, "b": 2})]
        )
    return f"Both sums: {', '.join(str(r) for r in results)}"
