"""The example deployment under `langgraph dev`, driven with `langgraph_sdk`.

One server and one emulator for the module (see `conftest.py`): two LangGraph
threads at once keep one Devic chat each over several turns; a stream carries
the reply as it is written and the run's `devic_progress` events; cancelling
a server run stops the Devic run behind it.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import pytest

from langchain_devic.testing import DevicEmulator, RecordedRequest
from tests.langgraph_server.conftest import (
    LOOKUP_SUMMARY,
    PLANNER,
    ROOT,
    SLOW_END,
    SLOWLY,
    WHAT_TIME,
    WRITER,
    Server,
)

T = TypeVar("T")

#: Turns each thread takes in the concurrency test.
TURNS = 3
#: The longest one server run (or stream) may take here, in seconds.
RUN_SECONDS = 30.0
#: The longest the stop of a cancelled run may take to reach Devic, in seconds.
STOP_SECONDS = 10.0
#: The run statuses of a Devic run still going.
GOING = ("processing", "paused_for_resume", "buffering")
#: Each graph, and the emulator assistants one of its threads talks to.
GRAPHS = {
    "assistant_agent": (WRITER,),
    "delegating_agent": (PLANNER, WRITER),
}


@pytest.fixture
async def client(langgraph_server: Server) -> AsyncIterator[Any]:
    from langgraph_sdk import get_client

    sdk = get_client(url=langgraph_server.url, api_key=None)
    yield sdk
    await sdk.http.client.aclose()


def new_label(name: str) -> str:
    """A marker unique to one LangGraph thread, carried by each of its messages."""
    return f"{name}-{uuid.uuid4().hex[:8]}"


def user(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


def sends(emu: DevicEmulator, assistant: str, label: str) -> list[RecordedRequest]:
    """The messages sent to `assistant` for the thread marked `label`, in order."""
    return [
        r
        for r in emu.requests
        if r.method == "POST"
        and r.route == "messages"
        and r.assistant_id == assistant
        and label in (r.message or "")
    ]


def chats(emu: DevicEmulator, assistant: str, label: str) -> list[str]:
    """The Devic chats of `assistant` that the thread marked `label` opened."""
    return [
        chat
        for chat, messages in emu.conversations.items()
        if emu.chat_owner(chat) == assistant
        and messages
        and label in messages[0]["content"]
    ]


async def eventually(
    probe: Callable[[], T | None], seconds: float, what: str, interval: float = 0.05
) -> T:
    """`probe()`'s first truthy answer within `seconds`, else a failure."""
    deadline = time.monotonic() + seconds
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not seen within {seconds:g} s")
        await asyncio.sleep(interval)


async def final_reply(client: Any, thread_id: str, graph: str, text: str) -> str:
    state = await asyncio.wait_for(
        client.runs.wait(thread_id, graph, input=user(text)), RUN_SECONDS
    )
    assert isinstance(state, dict), state
    assert "messages" in state, f"the run failed: {state}"
    return str(state["messages"][-1]["content"])


async def stream_parts(
    client: Any, graph: str, text: str, modes: list[str]
) -> list[Any]:
    thread = await client.threads.create()

    async def collect() -> list[Any]:
        stream = client.runs.stream(
            thread["thread_id"], graph, input=user(text), stream_mode=modes
        )
        return [part async for part in stream]

    return await asyncio.wait_for(collect(), RUN_SECONDS)


def ai_texts(parts: list[Any], node: str = "model") -> dict[str, list[str]]:
    """The text chunks of each AI message a `node` streamed, by message id."""
    texts: dict[str, list[str]] = {}
    for part in parts:
        if part.event != "messages":
            continue
        message, metadata = part.data
        if (
            message.get("type") == "AIMessageChunk"
            and metadata.get("langgraph_node") == node
            and isinstance(message.get("content"), str)
            and message["content"]
        ):
            texts.setdefault(message["id"], []).append(message["content"])
    return texts


def progress(parts: list[Any]) -> list[dict[str, Any]]:
    return [
        part.data["devic_progress"]
        for part in parts
        if part.event == "custom"
        and isinstance(part.data, dict)
        and "devic_progress" in part.data
    ]


# ------------------------------------------------------------------- threads


@pytest.mark.parametrize("graph", sorted(GRAPHS))
async def test_two_threads_at_once_keep_one_devic_chat_each(
    client: Any, emulator: DevicEmulator, graph: str
) -> None:
    labels = [new_label(f"{graph}-a"), new_label(f"{graph}-b")]

    async def converse(label: str) -> list[str]:
        thread = await client.threads.create()
        replies = []
        for turn in range(1, TURNS + 1):
            text = f"{label} turn {turn}"
            if graph == "assistant_agent" and turn == 2:
                text += f": {WHAT_TIME} is it in Lisbon?"  # the local tool's turn
            replies.append(await final_reply(client, thread["thread_id"], graph, text))
        return replies

    results = await asyncio.gather(*(converse(label) for label in labels))

    for label, replies in zip(labels, results, strict=True):
        if graph == "delegating_agent":
            # Reply N: the specialist's chat has N user turns, all of this thread.
            assert replies == [
                f"The specialist says: Reply {n} from writer: {label} turn {n}"
                for n in range(1, TURNS + 1)
            ]
        else:
            assert replies[0] == f"Reply 1 from writer: {label} turn 1"
            local_time = r"It is \d\d:\d\d UTC \(asked for Lisbon\)\."
            assert re.fullmatch(local_time, replies[1])
            assert replies[2] == f"Reply 3 from writer: {label} turn 3"
        for assistant in GRAPHS[graph]:
            (chat,) = chats(emulator, assistant, label)  # one Devic chat per thread
            sent = sends(emulator, assistant, label)
            assert len(sent) == TURNS  # one send per turn, none repeated
            assert sent[0].chat_uuid is None  # the first turn opened the chat
            assert [r.chat_uuid for r in sent[1:]] == [chat] * (TURNS - 1)
            assert all(r.status == 201 for r in sent)
            turns = [m for m in emulator.conversations[chat] if m["role"] == "user"]
            assert len(turns) == TURNS

    # The two threads ran at the same time: their Devic traffic interleaves.
    spans = []
    for label in labels:
        times = [r.timestamp for a in GRAPHS[graph] for r in sends(emulator, a, label)]
        spans.append((min(times), max(times)))
    assert max(start for start, _ in spans) < min(end for _, end in spans)


# ----------------------------------------------------------------- streaming


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ("assistant_agent", "Reply 1 from writer: {label}"),
        ("delegating_agent", "The specialist says: Reply 1 from writer: {label}"),
    ],
)
async def test_messages_stream_carries_the_reply_as_written(
    client: Any, graph: str, expected: str
) -> None:
    label = new_label(f"stream-{graph}")
    parts = await stream_parts(client, graph, label, ["messages-tuple", "custom"])

    texts = list(ai_texts(parts).values())  # the agent's own AI messages
    assert ["".join(pieces) for pieces in texts][-1] == expected.format(label=label)
    assert len(texts[-1]) > 1  # written in several pieces, streamed as written


@pytest.mark.parametrize("graph", sorted(GRAPHS))
async def test_custom_stream_carries_devic_progress(client: Any, graph: str) -> None:
    label = new_label(f"custom-{graph}")
    parts = await stream_parts(client, graph, label, ["custom"])

    events = progress(parts)
    # The writer's run (the agent's model, or the specialist the tool asked):
    # its server-side step, and its end.
    assert any(e.get("summary") == LOOKUP_SUMMARY for e in events), events
    assert any(e.get("status") == "completed" for e in events), events


@pytest.mark.parametrize("graph", sorted(GRAPHS))
async def test_progress_beside_messages(client: Any, graph: str) -> None:
    """Invoked under LangGraph's streaming handler, the model still reports."""
    label = new_label(f"both-{graph}")
    parts = await stream_parts(client, graph, label, ["messages-tuple", "custom"])

    assert ai_texts(parts)  # the reply streamed...
    events = progress(parts)  # ... and its progress beside it
    assert any(e.get("summary") == LOOKUP_SUMMARY for e in events), events


# -------------------------------------------------------------- cancellation


async def test_cancelling_a_server_run_stops_the_devic_run(
    client: Any, emulator: DevicEmulator
) -> None:
    label = new_label("cancel")
    thread = await client.threads.create()
    thread_id = thread["thread_id"]
    run = await client.runs.create(
        thread_id, "assistant_agent", input=user(f"{label}: answer {SLOWLY}")
    )

    def going() -> str | None:
        for chat in chats(emulator, WRITER, label):
            if emulator.realtime(chat)["status"] in GOING:
                return chat
        return None

    chat = await eventually(going, RUN_SECONDS, "the slow Devic run going")
    cancelled_at = time.monotonic()
    await asyncio.wait_for(
        client.runs.cancel(thread_id, run["run_id"], wait=True), RUN_SECONDS
    )

    def stops() -> list[RecordedRequest]:
        return [
            r
            for r in emulator.requests
            if r.method == "POST" and r.route == "stop" and r.chat_uuid == chat
        ]

    (stop,) = await eventually(stops, STOP_SECONDS, f"POST .../chats/{chat}/stop")
    assert stop.status == 201  # Devic took the stop while the run was going
    assert stop.timestamp - cancelled_at < STOP_SECONDS

    def ended() -> bool:
        return emulator.realtime(chat)["status"] not in GOING

    await eventually(ended, STOP_SECONDS, "the Devic run ended")
    written = " ".join(m["content"] for m in emulator.conversations[chat])
    assert "Starting slowly." in written
    assert SLOW_END not in written  # stopped long before its end (30 s away)
    assert (await client.runs.get(thread_id, run["run_id"]))["status"] == (
        "interrupted"
    )


# ------------------------------------------------------------------------ CI


def test_the_dev_job_installs_the_server_extra() -> None:
    """`.ci/run` runs these tests in its dev venv; elsewhere they may skip."""
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    extras = re.search(
        r'^pipq python install --quiet -e "\.\[([\w,]+)\]"$', ci, re.MULTILINE
    )
    assert extras, "the dev venv's install line is not where it was"
    assert "server" in extras.group(1).split(",")
