"""Integration tests: real HTTP to the emulator on 127.0.0.1, through cassettes.

Every test here may open sockets to loopback only. The emulator server runs for
the whole session; with `DEVIC_API_KEY` and `DEVIC_ASSISTANT_ID` set (and the
cassettes deleted) the same tests record against live Devic instead.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from langchain_devic.testing import CallTools, ClientCall, Conversation, DevicEmulator
from tests.conftest import REPLAY_ASSISTANT

LOOPBACK = ["127.0.0.1"]
EMULATOR_KEY = "integration-test-key"
LIVE = bool(os.environ.get("DEVIC_API_KEY") and os.environ.get("DEVIC_ASSISTANT_ID"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Allow loopback sockets (and nothing else) for every integration test."""
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.path).startswith(here):
            item.add_marker(pytest.mark.allow_hosts(LOOPBACK))


#: The assistants the standard suite talks to (its `model=` override included).
TOOL_USERS = (REPLAY_ASSISTANT, "integration-assistant-2")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_QUOTED = re.compile(r"['\"]([^'\"]+)['\"]")


def _argument(
    schema: Mapping[str, Any], name: str, text: str, quoted: list[str]
) -> Any:
    """A plausible value for one parameter, read from the user's message."""
    kinds = [schema.get("type")] + [
        option.get("type") for option in schema.get("anyOf", []) if option
    ]
    if schema.get("enum"):
        return schema["enum"][0]
    if "integer" in kinds:
        found = _NUMBER.search(text)
        return int(float(found.group())) if found else 0
    if "number" in kinds:
        found = _NUMBER.search(text)
        return float(found.group()) if found else 0.0
    if "boolean" in kinds:
        return True
    if "array" in kinds:
        return []
    if "object" in kinds:
        return {}
    if quoted:
        return quoted.pop(0)
    return f"{name.replace('_', ' ')} for: {text[:60]}"


def tool_user(conversation: Conversation) -> Any:
    """The session's assistant: it calls the caller's tools when it has some.

    With client tools and a plain request, it calls the tool the message names
    (else the first) with arguments read from the message (numbers, quoted
    names); once the results are back it writes them out. Without tools it is
    the emulator's default assistant, so the text-only cassettes stay valid.
    """
    if conversation.tool_results:
        results = "; ".join(str(r["content"]) for r in conversation.tool_results)
        return f"The tools returned: {results}"
    text = conversation.message
    if not conversation.tools or text.rstrip().endswith("</conversation_history>"):
        return DevicEmulator.default_reply(conversation)
    functions = [t.get("function", {}) for t in conversation.tools]
    chosen = next((f for f in functions if f.get("name") in text), functions[0])
    quoted = _QUOTED.findall(text)
    properties = (chosen.get("parameters") or {}).get("properties") or {}
    arguments = {
        name: _argument(schema, name, text, quoted)
        for name, schema in properties.items()
    }
    return CallTools(ClientCall(chosen["name"], arguments))


@pytest.fixture(scope="session")
def emulator() -> DevicEmulator:
    """The session's emulator (any assistant id exists), as Devic's platform.

    Streams are platform runs followed over HTTP, so the cassettes hold real
    runs: the async send, the event stream or the realtime reads, the history.
    The standard suite's assistants call the caller's tools (`tool_user`).
    """
    emulator = DevicEmulator(api_key=EMULATOR_KEY, random_seed=7, dialect="platform")
    for assistant in TOOL_USERS:
        emulator.add_assistant(assistant, tool_user)
    return emulator


#: Filled by `devic_endpoint` for the standard suites, whose `chat_model_params`
#: and `tool_constructor_params` are properties and cannot take fixtures.
ENDPOINT: dict[str, str] = {}


@pytest.fixture(scope="session", autouse=True)
def devic_endpoint(emulator: DevicEmulator) -> Iterator[dict[str, str]]:
    """`api_key`, `base_url` and `assistant_id` of the peer under test."""
    if LIVE:
        ENDPOINT.update(
            api_key=os.environ["DEVIC_API_KEY"],
            base_url=os.environ.get("DEVIC_BASE_URL", "https://api.devic.ai/v1"),
            assistant_id=os.environ["DEVIC_ASSISTANT_ID"],
        )
        yield ENDPOINT
        return
    with emulator.serve() as server:
        ENDPOINT.update(
            api_key=EMULATOR_KEY,
            base_url=server.base_url,
            assistant_id=REPLAY_ASSISTANT,
        )
        yield ENDPOINT
