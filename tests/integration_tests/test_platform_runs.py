"""Platform runs over real HTTP: the emulator on 127.0.0.1, replayed from cassettes.

A scripted assistant runs a server-side tool and writes two messages in pieces;
ChatDevic follows the run by its event stream (and, for the polling test, by
reading the realtime view), then reads the chat's totals for usage. Recorded
once against the loopback emulator; CI replays the cassettes.
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import HumanMessage

from langchain_devic import ChatDevic
from langchain_devic.testing import DevicEmulator, ServerTool, Write
from tests.integration_tests.conftest import ENDPOINT, LIVE

pytestmark = [
    pytest.mark.vcr,
    pytest.mark.skipif(LIVE, reason="scripted emulator assistants exist only offline"),
]

SCRIPTED = "scripted-runner"
REPLY = "Found 3 open invoices.\n\nThe oldest is from March."


def script(conversation: Any) -> list[Any]:
    return [
        ServerTool("billing_search", summary="Searching invoices", seconds=0.05),
        Write("Found 3 open invoices.", pieces=3, interval=0.02),
        Write("The oldest is from March.", pieces=3, interval=0.02),
    ]


@pytest.fixture(autouse=True)
def scripted(emulator: DevicEmulator) -> None:
    emulator.add_assistant(SCRIPTED, script)


class Progress(BaseCallbackHandler):
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def on_custom_event(self, name: str, data: Any, **kwargs: Any) -> None:
        self.events.append(data)


def model(**fields: Any) -> ChatDevic:
    return ChatDevic(
        assistant_id=SCRIPTED,
        api_key=ENDPOINT["api_key"],
        base_url=ENDPOINT["base_url"],
        **fields,
    )


def test_a_streamed_run_over_http() -> None:
    progress = Progress()
    chunks = list(model().stream("open invoices?", config={"callbacks": [progress]}))
    assert "".join(c.text for c in chunks) == REPLY
    assert len([c for c in chunks if c.text]) > 2
    last = chunks[-1]
    assert last.chunk_position == "last"
    assert last.usage_metadata is not None
    assert last.usage_metadata["total_tokens"] > 0
    assert any(e.get("summary") == "Searching invoices" for e in progress.events)
    assert progress.events[-1]["status"] == "completed"


@pytest.fixture
def no_sse(emulator: DevicEmulator) -> Any:
    emulator.sse = False  # the stream route answers 404: the client polls
    yield
    emulator.sse = True


@pytest.mark.usefixtures("no_sse")
def test_a_polled_run_and_its_continuation_over_http() -> None:
    first = model(run_mode="async", poll_interval=0.02).invoke("open invoices?")
    assert first.text == REPLY
    second = model(run_mode="async", poll_interval=0.02).invoke(
        [HumanMessage("open invoices?"), first, HumanMessage("and the total?")]
    )
    assert second.text == REPLY
    assert second.response_metadata["chat_uuid"] == first.response_metadata["chat_uuid"]
    before = first.response_metadata["devic_chat_totals"]
    after = second.response_metadata["devic_chat_totals"]
    assert second.usage_metadata is not None
    assert second.usage_metadata["input_tokens"] == (
        after["input_tokens"] - before["input_tokens"]
    )


def test_history_over_http() -> None:
    reply = model(run_mode="async").invoke("open invoices?")
    chat = reply.response_metadata["chat_uuid"]
    history = model().load_chat(chat)
    assert history[-1].text == "The oldest is from March."
    assert history[-1].response_metadata["chat_uuid"] == chat
    assert any(c["chat_uuid"] == chat for c in model().list_chats(limit=50))
