"""Ready assistants for the command-line emulator, one per kind of run.

`python -m langchain_devic.testing` serves these (and, unless
`--accept-any-assistant`, only these: another id is 404, as on Devic). Each is
a reply function with a one-line description the banner prints.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from langchain_devic.testing._records import Conversation, ReplyFn
from langchain_devic.testing._script import (
    CallTools,
    ClientCall,
    Fail,
    HandOff,
    LimitExceeded,
    ServerTool,
    Step,
    Write,
)

__all__ = ["READY_ASSISTANTS", "ReadyAssistant"]


@dataclass(frozen=True)
class ReadyAssistant:
    """A ready assistant: what it does, and its reply function (`None`: echo)."""

    description: str
    reply: ReplyFn | None = None


def _weather(conversation: Conversation) -> str | Step:
    """Calls the client's `get_weather` for Paris, then answers with its result."""
    if not conversation.tool_results:
        return CallTools(ClientCall("get_weather", {"city": "Paris"}))
    return f"The weather in Paris: {conversation.tool_results[-1]['content']}."


def _slow(conversation: Conversation) -> Step:
    return Write(f"Slowly: {conversation.message}", pieces=10, interval=0.5)


def _server_tool(conversation: Conversation) -> list[Step | str]:
    return [
        ServerTool("search_docs", summary="Searching the docs", seconds=0.3),
        f"Found an answer to: {conversation.message}",
    ]


def _failing(conversation: Conversation) -> Step:
    return Fail("The assistant failed on purpose")


def _limited(conversation: Conversation) -> Step:
    return LimitExceeded()


def _hand_off(conversation: Conversation) -> list[Step | str]:
    return [HandOff(seconds=2.0), f"The sub-agent handled: {conversation.message}"]


#: The command line's assistants, by id.
READY_ASSISTANTS: Mapping[str, ReadyAssistant] = {
    "demo-assistant": ReadyAssistant("echoes each message (the chat command's id)"),
    "helper": ReadyAssistant("echoes each message"),
    "weather": ReadyAssistant(
        "calls the client tool get_weather {city}, then answers", _weather
    ),
    "slow": ReadyAssistant("writes its reply over about 5 s", _slow),
    "server-tool": ReadyAssistant(
        "runs a server-side tool step, then answers", _server_tool
    ),
    "failing": ReadyAssistant("every run ends in status error", _failing),
    "limited": ReadyAssistant("every run ends in limit_exceeded", _limited),
    "hand-off": ReadyAssistant(
        "hands off to a sub-agent for 2 s, then answers", _hand_off
    ),
}
