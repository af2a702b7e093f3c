"""The emulator's platform dialect: what Devic's own clients would accept as Devic.

Routes, runs scripted step by step in real time, the realtime view, the SSE
stream, stop, history and chat list, NestJS error bodies, and the flat dialect
left exactly as the seed contract says. Tests that use the loopback server are
marked `allow_hosts(["127.0.0.1"])`; the others use the in-process transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import httpx
import pytest

from langchain_devic.testing import (
    Buffer,
    Conversation,
    DevicEmulator,
    Fail,
    Fault,
    HandOff,
    LimitExceeded,
    Pause,
    ReplyFn,
    ServerTool,
    Write,
)
from langchain_devic.testing._script import split_text
from tests.unit_tests.emulator._views import merge, nest
from tests.unit_tests.emulator.test_emulator import served_cli

API_KEY = "sk-platform-SECRET-42"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
#: The first two conversation ids of an emulator built with random_seed=7.
CHAT_0 = "e8fa2556-08c3-4ba7-b8ca-1a52b38f0e68"
CHAT_1 = "0e55f757-b845-4dd9-936f-df80fd422fb5"
PREFIXES = ["/v1", "/api/v1"]
SERVER = pytest.param("server", marks=pytest.mark.allow_hosts(["127.0.0.1"]))
FACES = ["transport", SERVER]
CLOSING = {"completed", "error", "limit_exceeded", "waiting_for_tool_response"}


def platform(**kwargs: Any) -> DevicEmulator:
    options: dict[str, Any] = {
        "api_key": API_KEY,
        "dialect": "platform",
        "random_seed": 7,
        "write_interval": 0.005,
        **kwargs,
    }
    return DevicEmulator(**options)


@pytest.fixture
def emu() -> DevicEmulator:
    return platform()


@contextlib.contextmanager
def connect(emu: DevicEmulator, where: str) -> Iterator[httpx.Client]:
    """A client on the platform prefix of the transport or of a served emulator."""
    if where == "transport":
        with httpx.Client(
            transport=emu.transport(),
            base_url="http://127.0.0.1/api/v1",
            headers=AUTH,
            timeout=5,
        ) as c:
            yield c
        return
    with emu.serve() as server:
        base = f"http://127.0.0.1:{server.port}/api/v1"
        with httpx.Client(base_url=base, headers=AUTH, timeout=5) as c:
            yield c


@pytest.fixture(params=FACES)
def face(request: pytest.FixtureRequest, emu: DevicEmulator) -> Iterator[httpx.Client]:
    """A client on either face of the emulator, on the platform prefix."""
    with connect(emu, request.param) as c:
        yield c


@pytest.fixture
def client(emu: DevicEmulator) -> Iterator[httpx.Client]:
    with connect(emu, "transport") as c:
        yield c


def send(
    client: httpx.Client,
    message: str,
    chat: str | None = None,
    *,
    assistant: str = "helper",
    run: bool = False,
    **extra: Any,
) -> httpx.Response:
    payload: dict[str, Any] = {"message": message, **extra}
    if chat is not None:
        payload["chatUid"] = chat
    query = "?async=true" if run else ""
    return client.post(f"/assistants/{assistant}/messages{query}", json=payload)


def start(client: httpx.Client, message: str = "hi", **kwargs: Any) -> str:
    response = send(client, message, run=True, **kwargs)
    assert response.status_code == 201, response.text
    return str(response.json()["chatUid"])


def events_of(lines: Iterable[str]) -> Iterator[tuple[str, Any]]:
    """SSE frames as (event, parsed data); comments come as (":", text)."""
    event, data = "", []
    for line in lines:
        if line.startswith(":"):
            yield ":", line[1:].strip()
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
        elif not line and event:
            yield event, json.loads("\n".join(data))
            event, data = "", []


def statuses(events: Iterable[tuple[str, Any]]) -> list[str]:
    """The statuses a stream went through, in order, each change once."""
    seen: list[str] = []
    for event, data in events:
        status = data.get("status") if event in {"snapshot", "partial"} else None
        if status is not None and (not seen or seen[-1] != status):
            seen.append(status)
    return seen


def poll_statuses(
    client: httpx.Client, chat: str, *, assistant: str = "helper"
) -> list[dict[str, Any]]:
    """Every distinct realtime view (by status) until a closing status."""
    views: list[dict[str, Any]] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        view = client.get(f"/assistants/{assistant}/chats/{chat}/realtime").json()
        if not views or view["status"] != views[-1]["status"]:
            views.append(view)
        if view["status"] in CLOSING:
            return views
        time.sleep(0.002)
    raise AssertionError(f"the run never ended: {views[-1:]}")


# ------------------------------------------------------------- the send


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize("face", FACES, indirect=True)
def test_sync_send_answers_the_chat_as_a_chat_message_list(
    emu: DevicEmulator, face: httpx.Client, prefix: str
) -> None:
    base = f"{face.base_url.scheme}://{face.base_url.netloc.decode()}{prefix}"
    first = face.post(
        f"{base}/assistants/helper/messages", json={"message": "hello there"}
    )
    assert first.status_code == 200
    assert first.headers["content-type"] == "application/json; charset=utf-8"
    body = first.json()
    assert [(m["role"], m["content"], m["chatUid"]) for m in body] == [
        ("user", {"message": "hello there"}, CHAT_0),
        ("assistant", {"message": "Reply 1 from helper: hello there"}, CHAT_0),
    ]
    now = time.time() * 1000
    for message in body:
        assert {"uid", "role", "content", "timestamp", "chatUid"} <= set(message)
        assert isinstance(message["timestamp"], int)
        assert now - 5000 < message["timestamp"] <= now + 1
    assert len({m["uid"] for m in body}) == 2
    # The turn's reply carries the turn's counts (words: 2 in, 6 out).
    assert "messageTokenUsage" not in body[0]
    assert body[1]["messageTokenUsage"] == {"inputTokens": 2, "outputTokens": 6}

    second = face.post(
        f"{base}/assistants/helper/messages",
        json={"message": "how are you", "chatUid": CHAT_0},
    ).json()
    assert [m["content"]["message"] for m in second] == [
        "hello there",
        "Reply 1 from helper: hello there",
        "how are you",
        "Reply 2 from helper: how are you",
    ]
    assert [m["uid"] for m in second[:2]] == [m["uid"] for m in body]
    usage = [m.get("messageTokenUsage") for m in second]
    assert usage == [None, None, None, {"inputTokens": 11, "outputTokens": 7}]
    # Only the answer carries them: the stored chat has none.
    assert "messageTokenUsage" not in str(emu.realtime(CHAT_0))
    assert [r.route for r in emu.requests] == ["messages", "messages"]
    assert [r.chat_uuid for r in emu.requests] == [None, CHAT_0]


def test_the_chat_id_is_chat_uuid_or_chat_uid_and_both_must_agree(
    emu: DevicEmulator, client: httpx.Client
) -> None:
    path = "/assistants/helper/messages"
    assert client.post(path, json={"message": "one"}).status_code == 200
    for ids in (
        {"chatUuid": CHAT_0},
        {"chatUid": CHAT_0},
        {"chatUuid": CHAT_0, "chatUid": CHAT_0},
        {"chatUuid": None, "chatUid": CHAT_0},
    ):
        response = client.post(path, json={"message": "more", **ids})
        assert response.status_code == 200, ids
        assert {m["chatUid"] for m in response.json()} == {CHAT_0}
    clash = client.post(
        path, json={"message": "x", "chatUuid": CHAT_0, "chatUid": "other"}
    )
    assert clash.status_code == 400
    assert clash.json() == nest(
        400, "BAD_REQUEST", "'chatUuid' and 'chatUid' name different chats"
    )
    bad = client.post(path, json={"message": "x", "chatUid": 5})
    assert bad.json()["message"] == "'chatUid' must be a string or null"
    assert list(emu.conversations) == [CHAT_0]
    assert len(emu.conversations[CHAT_0]) == 10
    assert [r.chat_uuid for r in emu.requests] == [None, *[CHAT_0] * 5, None]


def test_tools_are_kept_on_the_turn_for_the_reply_function(
    emu: DevicEmulator, client: httpx.Client
) -> None:
    seen: list[Conversation] = []

    def reply(conversation: Conversation) -> str:
        seen.append(conversation)
        return "ok"

    emu.add_assistant("helper", reply)
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather of a city",
                "parameters": {"type": "object", "properties": {}},
            },
        }
    ]
    start(client, "weather?", tools=tools)
    emu.wait_idle()
    assert seen[0].tools == tuple(tools)
    assert emu.requests[0].json["tools"] == tools
    refused = send(client, "x", tools={"name": "nope"})
    assert refused.status_code == 400
    assert refused.json()["message"] == "'tools' must be a list of objects"


# ------------------------------------------------------------------ runs


@pytest.mark.parametrize("envelope", [False, True])
def test_async_send_answers_201_at_once_and_the_run_goes_on(
    envelope: bool,
) -> None:
    emu = platform(envelope=envelope, write_interval=0.15)
    with httpx.Client(
        transport=emu.transport(), base_url=emu.base_url, headers=AUTH
    ) as c:
        started = time.monotonic()
        response = send(c, "hello", run=True)
        # Answered well before the run (4 pieces, 0.15 s apart) could end.
        assert time.monotonic() - started < 0.3
        assert response.status_code == 201
        body = response.json()
        if envelope:
            assert body == {"success": True, "data": {"chatUid": CHAT_0}}
        else:
            assert body == {"chatUid": CHAT_0}
        view = emu.realtime(CHAT_0)
        assert view["status"] == "processing"
        assert view["streamingMessage"]["role"] == "assistant"
        emu.wait_idle()
        final = c.get(f"/assistants/helper/chats/{CHAT_0}/realtime").json()
    if envelope:
        final = final["data"]
    assert final["status"] == "completed"
    assert "streamingMessage" not in final
    assert [m["content"]["message"] for m in final["chatHistory"]] == [
        "hello",
        "Reply 1 from helper: hello",
    ]
    assert time.monotonic() - started >= 4 * 0.15  # written in 4 pieces


def everything(conversation: Conversation) -> list[Any]:
    """A script that passes through every status that lasts."""
    return [
        Buffer(0.08),
        Write("Let me look that up.", pieces=2, interval=0.04),
        ServerTool(
            "search_docs",
            summary="Searching the docs",
            seconds=0.08,
            arguments={"q": conversation.message},
            result="3 documents",
        ),
        HandOff(0.08, summary="Asked the billing agent", result="Refund approved"),
        Write("The billing agent approved it.", pieces=2, interval=0.04),
        Pause(0.08),
        "Done: your refund is on its way.",
    ]


#: The statuses `everything` goes through, in order.
EVERYTHING_STATUSES = [
    "buffering",
    "processing",
    "handed_off",
    "processing",
    "paused_for_resume",
    "processing",
    "completed",
]


def test_realtime_polling_follows_every_status_of_a_scripted_run(
    emu: DevicEmulator, client: httpx.Client
) -> None:
    emu.add_assistant("helper", everything)
    started = time.time() * 1000
    chat = start(client, "refund please")
    views = poll_statuses(client, chat)
    assert [v["status"] for v in views] == EVERYTHING_STATUSES
    by_status = {v["status"]: v for v in views}
    assert by_status["handed_off"]["handedOffSubThreadId"].startswith("thread_")
    paused = by_status["paused_for_resume"]
    assert paused["pausedUntil"] > started
    for view in views:
        assert view["chatUID"] == chat
        assert view["clientUID"]
        assert view["pendingToolCalls"] == []
        assert isinstance(view["lastUpdatedAt"], int)
        assert not {"inputTokens", "outputTokens", "tokenUsage"} & set(view)
        if view["status"] != "handed_off":
            assert "handedOffSubThreadId" not in view
    assert [v["lastUpdatedAt"] for v in views] == sorted(
        v["lastUpdatedAt"] for v in views
    )

    history = views[-1]["chatHistory"]
    assert [(m["role"], m["content"].get("message")) for m in history] == [
        ("user", "refund please"),
        ("assistant", "Let me look that up."),
        ("assistant", None),
        ("tool", "3 documents"),
        ("assistant", None),
        ("tool", "Refund approved"),
        ("assistant", "The billing agent approved it."),
        ("assistant", "Done: your refund is on its way."),
    ]
    call = history[2]
    assert call["content"] == {}
    assert call["summary"] == "Searching the docs"
    (tool_call,) = call["tool_calls"]
    assert tool_call["type"] == "function"
    assert tool_call["function"] == {
        "name": "search_docs",
        "arguments": '{"q": "refund please"}',
    }
    assert history[3]["tool_call_id"] == tool_call["id"]
    assert history[3]["summary"] == "Searching the docs"
    assert history[4]["tool_calls"][0]["function"]["name"] == "hand_off_subagent"
    assert history[4]["summary"] == "Asked the billing agent"
    assert history[5]["tool_call_id"] == history[4]["tool_calls"][0]["id"]


def test_a_run_can_end_in_error_or_over_the_limit(
    emu: DevicEmulator, client: httpx.Client
) -> None:
    emu.add_assistant("failing", lambda c: ["Working on it.", Fail("Model crashed")])
    emu.add_assistant(
        "limited", lambda c: LimitExceeded("Monthly token limit reached", resets_in=90)
    )
    chat = start(client, "go", assistant="failing")
    failed = poll_statuses(client, chat, assistant="failing")[-1]
    assert failed["status"] == "error"
    assert failed["errorMessage"] == failed["error"] == "Model crashed"
    assert [m["content"].get("message") for m in failed["chatHistory"]] == [
        "go",
        "Working on it.",
    ]

    before = time.time_ns() // 1_000_000
    chat = start(client, "go", assistant="limited")
    limited = poll_statuses(client, chat, assistant="limited")[-1]
    assert limited["status"] == "limit_exceeded"
    details = limited["limitExceeded"]
    assert details["message"] == "Monthly token limit reached"
    assert before + 90_000 <= details["resetsAt"] <= time.time_ns() // 10**6 + 90_000
    assert {"current", "limit", "blockingRule"} <= set(details)
    history = client.get(f"/assistants/limited/chats/{chat}").json()
    assert (history["inputTokens"], history["outputTokens"]) == (0, 0)
    emu.wait_idle()
    # Neither run holds its chat any longer.
    assert send(client, "again", chat, assistant="limited", run=True).status_code == 201


@pytest.mark.parametrize("dialect", ["flat", "platform"])
def test_a_sync_send_whose_run_fails_is_a_500_or_a_429(dialect: str) -> None:
    emu = platform(dialect=dialect)
    emu.add_assistant("failing", lambda c: [Write("partial"), Fail("Model crashed")])
    emu.add_assistant("limited", lambda c: [LimitExceeded("Too much", resets_in=30)])
    with httpx.Client(
        transport=emu.transport(), base_url=emu.base_url, headers=AUTH
    ) as c:
        failed = c.post("/assistants/failing/messages", json={"message": "a"})
        limited = c.post("/assistants/limited/messages", json={"message": "b"})
    assert failed.status_code == 500
    if dialect == "flat":
        assert failed.json() == {
            "success": False,
            "error": {"message": "Model crashed", "code": "INTERNAL_ERROR"},
        }
    else:
        assert failed.json() == nest(500, "INTERNAL_ERROR", "Model crashed")
    assert limited.status_code == 429
    assert limited.headers["retry-after"] in {"29", "30"}
    body = limited.json()
    assert body["statusCode"] == 429
    assert body["error"] == "TENANT_LIMIT_EXCEEDED"
    assert body["message"] == "Too much"
    assert body["retryAfter"] in {29, 30}
    assert body["details"]["message"] == "Too much"
    # The user's message stays: the run took it, then failed.
    assert [m["content"] for m in emu.conversations[CHAT_0]] == ["a", "partial"]


def test_several_writes_make_several_messages_in_both_dialects() -> None:
    def two(conversation: Conversation) -> list[Any]:
        return ["First part.", Write("Second part.", pieces=3, interval=0.001)]

    for dialect in ("flat", "platform"):
        emu = platform(dialect=dialect, assistants={"helper": two})
        with httpx.Client(
            transport=emu.transport(), base_url=emu.base_url, headers=AUTH
        ) as c:
            body = send(c, "go").json()
        assert emu.conversations[CHAT_0] == [
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": "First part."},
            {"role": "assistant", "content": "Second part."},
        ]
        if dialect == "flat":
            assert body["message"] == "First part.\n\nSecond part."
            assert body["tokens_used"] == 1 + 4
        else:
            assert [m["content"]["message"] for m in body][1:] == [
                "First part.",
                "Second part.",
            ]


def test_a_script_that_is_no_script_is_a_500(
    emu: DevicEmulator, client: httpx.Client
) -> None:
    emu.add_assistant("helper", lambda c: ["fine", 42])  # type: ignore[arg-type, return-value]
    response = send(client, "hi")
    assert response.status_code == 500
    assert "a script holds steps" in response.json()["message"]
    assert emu.conversations == {}
    with pytest.raises(ValueError, match="pieces"):
        Write("x", pieces=0)
    with pytest.raises(ValueError, match="seconds"):
        ServerTool("t", seconds=-1)
    with pytest.raises(ValueError, match="interval"):
        platform(write_interval=-0.1)


@pytest.mark.parametrize(
    ("text", "pieces"), [("hello world", 4), ("ab", 5), ("", 3), ("x" * 10, 1)]
)
def test_split_text_keeps_every_character(text: str, pieces: int) -> None:
    parts = split_text(text, pieces)
    assert "".join(parts) == text
    assert len(parts) == min(pieces, len(text))
    assert all(parts)


def test_run_threads_are_daemons_and_end(
    emu: DevicEmulator, client: httpx.Client
) -> None:
    emu.add_assistant("helper", lambda c: [HandOff(0.05), "done"])
    start(client)
    runs = [t for t in threading.enumerate() if t.name.startswith("devic-run-")]
    assert runs
    assert all(t.daemon for t in runs)
    emu.wait_idle()
    for thread in runs:
        thread.join(1)
    assert not [t for t in threading.enumerate() if t.name.startswith("devic-run-")]


def test_wait_idle_names_the_busy_chats(
    emu: DevicEmulator, client: httpx.Client
) -> None:
    emu.add_assistant("helper", lambda c: [HandOff(0.3), "done"])
    chat = start(client)
    with pytest.raises(TimeoutError, match=chat):
        emu.wait_idle(0.01)
    emu.wait_idle()


def test_reset_cancels_runs_and_ends_their_streams(
    emu: DevicEmulator, client: httpx.Client
) -> None:
    emu.add_assistant("helper", lambda c: [HandOff(30), "never"])
    chat = start(client)
    got: list[tuple[str, Any]] = []

    def follow() -> None:
        with client.stream("GET", f"/assistants/helper/chats/{chat}/stream") as r:
            got.extend(events_of(r.iter_lines()))

    reader = threading.Thread(target=follow)
    reader.start()
    time.sleep(0.05)
    started = time.monotonic()
    emu.reset()
    emu.wait_idle(2)
    reader.join(2)
    assert not reader.is_alive()
    assert time.monotonic() - started < 1.5
    assert got[0][0] == "snapshot"
    assert emu.conversations == {}


# ------------------------------------------------------------------- SSE


def read_stream(
    client: httpx.Client, chat: str, on_event: Callable[[str, Any], None] | None = None
) -> tuple[httpx.Response, list[tuple[str, Any]]]:
    got: list[tuple[str, Any]] = []
    with client.stream(
        "GET",
        f"/assistants/helper/chats/{chat}/stream?partial=1",
        headers={"Accept": "text/event-stream"},
    ) as response:
        for event in events_of(response.iter_lines()):
            got.append(event)
            if on_event is not None:
                on_event(*event)
    return response, got


@pytest.mark.parametrize("face", FACES, indirect=True)
def test_sse_sends_a_snapshot_then_deltas_and_partials_then_closes(
    emu: DevicEmulator, face: httpx.Client
) -> None:
    emu.add_assistant("helper", everything)
    chat = start(face, "refund please")
    live: list[str] = []
    response, got = read_stream(
        face, chat, lambda event, data: live.append(emu.realtime(chat)["status"])
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert "content-length" not in response.headers
    # The frames came while the run went on, not all at its end.
    assert live[0] != "completed"
    assert live.count("completed") < len(live) / 2

    kinds = [event for event, _ in got]
    assert kinds[0] == "snapshot"
    assert {"delta", "partial"} <= set(kinds)
    assert statuses(got) == EVERYTHING_STATUSES
    assert got[-1][0] == "partial"
    assert got[-1][1]["status"] == "completed"
    # Every piece of every Write is its own delta.
    deltas = [data["append"] for event, data in got if event == "delta"]
    assert "".join(deltas) == (
        "Let me look that up."
        "The billing agent approved it."
        "Done: your refund is on its way."
    )
    assert len(deltas) == 2 + 2 + emu.write_pieces
    # A new streaming message starts in a partial, empty; deltas grow it.
    starts = [d for e, d in got if e == "partial" and d.get("streamingMessage")]
    assert [d["streamingMessage"]["content"] for d in starts] == [{"message": ""}] * 3
    # Merged like Devic's clients merge it, the stream ends on the final view.
    assert merge(got) == emu.realtime(chat)


def test_sse_on_the_async_transport(emu: DevicEmulator) -> None:
    emu.add_assistant("helper", lambda c: ["one two three", ServerTool("t"), "four"])

    async def main() -> list[tuple[str, Any]]:
        async with httpx.AsyncClient(
            transport=emu.transport(),
            base_url="http://127.0.0.1/api/v1",
            headers=AUTH,
        ) as c:
            response = await c.post(
                "/assistants/helper/messages?async=true", json={"message": "hi"}
            )
            chat = response.json()["chatUid"]
            # Other tasks run while the stream waits: it never blocks the loop.
            ticks = 0

            async def tick() -> None:
                nonlocal ticks
                while True:
                    ticks += 1
                    await asyncio.sleep(0.001)

            ticker = asyncio.create_task(tick())
            async with c.stream("GET", f"/assistants/helper/chats/{chat}/stream") as r:
                lines = [line async for line in r.aiter_lines()]
            ticker.cancel()
            assert ticks > 10
            return list(events_of(lines))

    got = asyncio.run(main())
    assert statuses(got) == ["processing", "completed"]
    assert merge(got) == emu.realtime(CHAT_0)
    assert [m["content"].get("message") for m in merge(got)["chatHistory"]] == [
        "hi",
        "one two three",
        None,
        "ok",
        "four",
    ]


@pytest.mark.parametrize("face", FACES, indirect=True)
def test_the_stream_of_a_finished_chat_is_one_snapshot(
    emu: DevicEmulator, face: httpx.Client
) -> None:
    send(face, "hi")
    response, got = read_stream(face, CHAT_0)
    assert response.status_code == 200
    assert [event for event, _ in got] == ["snapshot"]
    assert got[0][1] == emu.realtime(CHAT_0)
    assert got[0][1]["status"] == "completed"


@pytest.mark.parametrize("face", FACES, indirect=True)
def test_sse_can_be_refused_so_clients_poll(
    emu: DevicEmulator, face: httpx.Client
) -> None:
    emu.sse = False
    chat = start(face)
    response = face.get(f"/assistants/helper/chats/{chat}/stream?partial=1")
    assert response.status_code == 404
    path = f"/api/v1/assistants/helper/chats/{chat}/stream"
    assert response.json() == nest(404, "NOT_FOUND", f"Cannot GET {path}")
    assert face.get(f"/assistants/helper/chats/{chat}/realtime").status_code == 200
    assert DevicEmulator(sse=False).sse is False


def test_a_quiet_stream_keeps_alive_or_times_out_on_the_transport(
    emu: DevicEmulator,
) -> None:
    emu.add_assistant("helper", lambda c: [HandOff(0.5), "done"])
    with httpx.Client(
        transport=emu.transport(), base_url=emu.base_url, headers=AUTH, timeout=0.15
    ) as c:
        chat = start(c)
        with (
            pytest.raises(httpx.ReadTimeout),
            c.stream("GET", f"/assistants/helper/chats/{chat}/stream") as r,
        ):
            for _ in r.iter_lines():
                pass
        emu.sse_keepalive = 0.05
        _, got = read_stream(c, chat)
    assert ":" in [event for event, _ in got]  # keep-alive comments
    assert got[-1][1]["status"] == "completed"


@pytest.mark.allow_hosts(["127.0.0.1"])
def test_closing_the_server_ends_its_open_streams(emu: DevicEmulator) -> None:
    emu.add_assistant("helper", lambda c: [HandOff(30), "never"])
    server = emu.serve()
    with httpx.Client(base_url=server.base_url, headers=AUTH, timeout=5) as c:
        chat = start(c)
        with c.stream("GET", f"/assistants/helper/chats/{chat}/stream") as r:
            lines = r.iter_lines()
            assert next(lines) == "event: snapshot"
            started = time.monotonic()
            server.close()
            with pytest.raises(httpx.HTTPError):
                for _ in lines:
                    pass
            assert time.monotonic() - started < 2
    emu.reset()


# ------------------------------------------------------------------ stop


@pytest.mark.parametrize("face", FACES, indirect=True)
def test_stop_lands_at_the_next_step_and_completes_with_the_text_so_far(
    emu: DevicEmulator, face: httpx.Client
) -> None:
    emu.add_assistant(
        "helper",
        lambda c: [
            Write("First thoughts.", pieces=3, interval=0.05),
            ServerTool("slow_tool", seconds=0.2),
            "Never written.",
        ],
    )
    chat = start(face)
    stop: list[httpx.Response] = []

    def on_event(event: str, data: Any) -> None:
        if event == "delta" and not stop:
            stop.append(face.post(f"/assistants/helper/chats/{chat}/stop"))

    _, got = read_stream(face, chat, on_event)
    assert stop[0].status_code == 201
    assert stop[0].json() == {
        "chatUid": chat,
        "message": "Stop requested. The chat will finish its current step and "
        "complete.",
    }
    final = emu.realtime(chat)
    assert final["status"] == "completed"
    assert merge(got) == final
    # The step under way finished; nothing after it ran.
    assert [m["content"].get("message") for m in final["chatHistory"]] == [
        "hi",
        "First thoughts.",
    ]
    again = face.post(f"/assistants/helper/chats/{chat}/stop")
    assert again.status_code == 400
    assert again.json() == nest(
        400, "BAD_REQUEST", f"Chat '{chat}' is not currently processing"
    )
    assert face.post("/assistants/helper/chats/nope/stop").status_code == 404
    assert send(face, "next", chat).status_code == 200


# -------------------------------------------------------- history and list


@pytest.mark.parametrize("face", FACES, indirect=True)
def test_history_has_the_chat_and_its_token_totals(
    emu: DevicEmulator, face: httpx.Client
) -> None:
    send(face, "hello there", metadata={"lang": "en"})
    start(face, "how are you", chat=CHAT_0)
    emu.wait_idle()
    history = face.get(f"/assistants/helper/chats/{CHAT_0}")
    assert history.status_code == 200
    body = history.json()
    # Words: turn 1 is 2 in, 6 out; turn 2 is 2 + 6 + 3 in, 7 out.
    assert (body["inputTokens"], body["outputTokens"]) == (2 + 11, 6 + 7)
    assert body["tokenUsage"] == {"inputTokens": 13, "outputTokens": 13}
    assert body["chatUID"] == CHAT_0
    assert body["name"] == "hello there"
    assert body["assistantSpecializationIdentifier"] == "helper"
    assert body["metadata"] == {"lang": "en"}
    assert [m["content"]["message"] for m in body["chatContent"]] == [
        "hello there",
        "Reply 1 from helper: hello there",
        "how are you",
        "Reply 2 from helper: how are you",
    ]
    assert body["chatContent"] == emu.realtime(CHAT_0)["chatHistory"]
    assert body["creationTimestampMs"] <= body["lastEditTimestampMs"]
    assert isinstance(body["creationTimestampMs"], int)
    missing = face.get("/assistants/helper/chats/nope")
    assert missing.status_code == 404
    assert missing.json() == nest(404, "CHAT_NOT_FOUND", "Chat 'nope' not found")
    # Another assistant's chat is not found under this one.
    assert face.get(f"/assistants/other/chats/{CHAT_0}").status_code == 404


@pytest.mark.parametrize("face", FACES, indirect=True)
def test_chats_are_listed_newest_first_with_paging(
    emu: DevicEmulator, face: httpx.Client
) -> None:
    for message in ("first chat", "second chat", "third chat"):
        send(face, message)
    send(face, "elsewhere", assistant="other")
    send(face, "older chat again", CHAT_0)  # a new turn does not reorder
    body = face.get("/assistants/helper/chats").json()
    assert [h["name"] for h in body["histories"]] == [
        "third chat",
        "second chat",
        "first chat",
    ]
    assert (body["total"], body["offset"], body["limit"], body["hasMore"]) == (
        3,
        0,
        3,
        False,
    )
    assert body["histories"][2]["chatUID"] == CHAT_0
    assert len(body["histories"][2]["chatContent"]) == 4
    page = face.get("/assistants/helper/chats?offset=1&limit=1&omitContent=true")
    assert page.status_code == 200
    paged = page.json()
    assert [h["name"] for h in paged["histories"]] == ["second chat"]
    assert (paged["total"], paged["offset"], paged["limit"]) == (3, 1, 1)
    assert paged["hasMore"] is True
    assert "chatContent" not in paged["histories"][0]
    assert face.get("/assistants/nobody/chats").json()["histories"] == []
    bad = face.get("/assistants/helper/chats?limit=-1")
    assert bad.json() == nest(400, "BAD_REQUEST", "'limit' must be >= 0")


# ------------------------------------------------------ busy chat: 409


@pytest.mark.parametrize("face", FACES, indirect=True)
def test_a_send_to_a_busy_chat_is_409_at_once_even_with_latency(
    emu: DevicEmulator, face: httpx.Client
) -> None:
    emu.add_assistant("helper", lambda c: [HandOff(0.4), "done"])
    chat = start(face)
    emu.latency = 1.0
    emu.inject(Fault.latency(1.0), Fault.latency(1.0))
    for run in (False, True):
        started = time.monotonic()
        busy = send(face, "intruder", chat, run=run)
        assert time.monotonic() - started < 0.3
        assert busy.status_code == 409
        assert busy.json() == nest(
            409, "CHAT_BUSY", "Chat is still processing a previous message"
        )
    emu.latency = 0
    emu.wait_idle()
    assert [r.fault for r in emu.requests] == [None, "latency", "latency"]
    assert send(face, "after", chat).status_code == 200


def test_latency_delays_the_turn_of_an_async_send(
    emu: DevicEmulator, client: httpx.Client
) -> None:
    chat = start(client)
    emu.wait_idle()
    emu.inject(Fault.latency(0.3))
    outcome: dict[str, httpx.Response] = {}
    worker = threading.Thread(
        target=lambda: outcome.setdefault("slow", send(client, "slow", chat, run=True))
    )
    worker.start()
    time.sleep(0.1)
    # The chat is already held by the delayed send: a second one is refused.
    assert send(client, "fast", chat).status_code == 409
    worker.join()
    assert outcome["slow"].status_code == 201
    emu.wait_idle()
    users = [m["content"] for m in emu.conversations[chat] if m["role"] == "user"]
    assert users == ["hi", "slow"]


def test_latency_no_longer_delays_a_409_in_the_flat_dialect() -> None:
    emu = DevicEmulator(api_key=API_KEY, random_seed=7)
    emu.add_assistant("helper", lambda c: [Write("slow reply", pieces=2, interval=0.2)])
    with httpx.Client(
        transport=emu.transport(), base_url=emu.base_url, headers=AUTH, timeout=5
    ) as c:
        send(c, "first", assistant="quick")
        replies: list[httpx.Response] = []
        worker = threading.Thread(target=lambda: replies.append(send(c, "slow")))
        worker.start()
        time.sleep(0.1)
        emu.inject(Fault.latency(2.0))
        started = time.monotonic()
        busy = c.post(
            "/assistants/helper/messages",
            json={"message": "intruder", "chatUuid": CHAT_1},
        )
        assert time.monotonic() - started < 0.3
        worker.join()
    assert busy.status_code == 409
    assert busy.json() == {
        "success": False,
        "error": {
            "message": "Chat is still processing a previous message",
            "code": "CHAT_BUSY",
        },
    }
    assert replies[0].json()["message"] == "slow reply"


# ---------------------------------------------------------- tool-response


@pytest.mark.parametrize("face", FACES, indirect=True)
def test_tool_response_is_refused_unless_the_chat_waits_for_one(
    emu: DevicEmulator, face: httpx.Client
) -> None:
    send(face, "hi")
    responses = {"responses": [{"tool_call_id": "c1", "role": "tool", "content": 1}]}
    refused = face.post(
        f"/assistants/helper/chats/{CHAT_0}/tool-response", json=responses
    )
    assert refused.status_code == 400
    assert refused.json() == nest(
        400, "BAD_REQUEST", f"Chat '{CHAT_0}' is not waiting for a tool response"
    )
    missing = face.post("/assistants/helper/chats/nope/tool-response", json=responses)
    assert missing.status_code == 404


# ------------------------------------------------------- errors and routes


@pytest.mark.parametrize("face", FACES, indirect=True)
def test_every_route_answers_on_both_faces_and_is_recorded(
    emu: DevicEmulator, face: httpx.Client
) -> None:
    chat = start(face)
    emu.wait_idle()
    calls = [
        ("GET", "/assistants/helper/chats", 200),
        ("GET", f"/assistants/helper/chats/{chat}", 200),
        ("GET", f"/assistants/helper/chats/{chat}/realtime", 200),
        ("GET", f"/assistants/helper/chats/{chat}/stream", 200),
        ("POST", f"/assistants/helper/chats/{chat}/stop", 400),
        ("POST", f"/assistants/helper/chats/{chat}/tool-response", 400),
        ("POST", "/assistants/helper/messages", 200),
    ]
    for method, path, status in calls:
        payload = {"message": "x"} if path.endswith("messages") else None
        response = face.request(method, path, json=payload)
        assert response.status_code == status, (path, response.text)
    records = emu.requests
    assert [r.route for r in records] == [
        "messages",
        "chats",
        "chat",
        "realtime",
        "stream",
        "stop",
        "tool-response",
        "messages",
    ]
    assert [r.status for r in records] == [201, *(s for *_, s in calls)]
    assert [r.chat_uuid for r in records[2:7]] == [chat] * 5
    assert {r.assistant_id for r in records} == {"helper"}
    assert all(r.authorized for r in records)


@pytest.mark.parametrize("face", FACES, indirect=True)
def test_platform_refusals_are_nestjs_bodies(
    emu: DevicEmulator, face: httpx.Client
) -> None:
    chat = start(face)
    emu.wait_idle()
    unauthorized = face.get(
        f"/assistants/helper/chats/{chat}/realtime",
        headers={"Authorization": "Bearer wrong"},
    )
    assert unauthorized.status_code == 401
    assert unauthorized.json() == nest(
        401, "UNAUTHORIZED", "Invalid or missing API key"
    )
    empty = face.post("/assistants/helper/messages", json={"message": ""})
    assert empty.json() == nest(
        400, "BAD_REQUEST", "'message' is required and must be a non-empty string"
    )
    wrong_method = face.get(f"/assistants/helper/chats/{chat}/stop")
    assert wrong_method.status_code == 405
    assert wrong_method.headers["allow"] == "POST"
    assert wrong_method.json()["error"] == "METHOD_NOT_ALLOWED"
    post_realtime = face.post(f"/assistants/helper/chats/{chat}/realtime")
    assert post_realtime.status_code == 405
    assert post_realtime.headers["allow"] == "GET"
    for path in (
        f"/assistants/helper/chats/{chat}/unknown",
        "/assistants/helper/other",
        "/assistants/helper/chats/",
    ):
        response = face.get(path)
        assert response.status_code == 404, path
        assert response.json() == nest(404, "NOT_FOUND", f"Cannot GET /api/v1{path}")


def test_unknown_assistants_are_404_on_every_route() -> None:
    emu = platform(assistants=["known"])
    with httpx.Client(
        transport=emu.transport(), base_url=emu.base_url, headers=AUTH
    ) as c:
        for method, path in (
            ("POST", "/assistants/ghost/messages"),
            ("GET", "/assistants/ghost/chats"),
            ("GET", "/assistants/ghost/chats/c1"),
            ("GET", "/assistants/ghost/chats/c1/realtime"),
            ("GET", "/assistants/ghost/chats/c1/stream"),
            ("POST", "/assistants/ghost/chats/c1/stop"),
        ):
            response = c.request(method, path, json={"message": "hi"})
            assert response.status_code == 404, path
            assert response.json() == nest(
                404, "ASSISTANT_NOT_FOUND", "Assistant 'ghost' not found"
            )


def test_faults_can_target_the_run_routes(
    emu: DevicEmulator, client: httpx.Client
) -> None:
    emu.inject(Fault.status(503).on("realtime", "stream"), Fault.drop().on("chat"))
    chat = start(client)  # the send is not a target: it goes through
    assert len(emu.queued_faults) == 2
    assert client.get(f"/assistants/helper/chats/{chat}/realtime").status_code == 503
    with pytest.raises(httpx.RemoteProtocolError):
        client.get(f"/assistants/helper/chats/{chat}")
    assert client.get(f"/assistants/helper/chats/{chat}/realtime").status_code == 200
    assert [r.fault for r in emu.requests] == [None, "status", "drop", None]
    with pytest.raises(ValueError, match="route names"):
        Fault.drop().on("nowhere")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="route names"):
        Fault.drop().on()
    emu.wait_idle()


# ------------------------------------------------------------ flat dialect


@pytest.mark.parametrize("where", FACES)
def test_the_flat_dialect_keeps_the_seed_contract_and_ignores_async(where: str) -> None:
    emu = DevicEmulator(api_key=API_KEY, random_seed=7)
    assert emu.dialect == "flat"
    with connect(emu, where) as c:
        run = c.post("/assistants/helper/messages?async=true", json={"message": "hi"})
        assert run.status_code == 200
        body = run.json()
        assert set(body) == {"chatUuid", "message", "tokens_used", "timestamp"}
        assert body["message"] == "Reply 1 from helper: hi"
        assert body["chatUuid"] == CHAT_0
        assert body["tokens_used"] == 1 + 5
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["timestamp"])
        # chatUid alone continues the chat too (Devic's own clients send it).
        more = c.post(
            "/assistants/helper/messages", json={"message": "more", "chatUid": CHAT_0}
        )
        assert more.json()["message"] == "Reply 2 from helper: more"
        # The platform's read routes exist; the flat dialect keeps its error body.
        view = c.get(f"/assistants/helper/chats/{CHAT_0}/realtime").json()
        assert view["status"] == "completed"
        assert len(view["chatHistory"]) == 4
        missing = c.get("/assistants/helper/chats/nope")
        assert missing.json() == {
            "success": False,
            "error": {"message": "Chat 'nope' not found", "code": "CHAT_NOT_FOUND"},
        }
    assert emu.requests[0].query == "async=true"


def test_reply_functions_keep_their_types() -> None:
    reply: ReplyFn = lambda c: [Buffer(), "text", Pause(0)]  # noqa: E731
    emu = platform(assistants={"helper": reply})
    with httpx.Client(
        transport=emu.transport(), base_url=emu.base_url, headers=AUTH
    ) as c:
        assert send(c, "hi").json()[-1]["content"] == {"message": "text"}


# ------------------------------------------------------------------- CLI


@pytest.mark.allow_hosts(["127.0.0.1"])
def test_cli_serves_the_platform_dialect() -> None:
    args = ("--api-key", "cli-key", "--dialect", "platform", "--no-sse")
    with served_cli(*args) as (process, line):
        match = re.search(r"(http://127\.0\.0\.1:\d+)/v1", line)
        assert match, line
        base = f"{match.group(1)}/api/v1/assistants/helper"
        headers = {"Authorization": "Bearer cli-key"}
        with httpx.Client(headers=headers, timeout=5) as c:
            started = c.post(f"{base}/messages?async=true", json={"message": "hi"})
            assert started.status_code == 201
            chat = started.json()["chatUid"]
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                view = c.get(f"{base}/chats/{chat}/realtime").json()
                if view["status"] == "completed":
                    break
                time.sleep(0.01)
            assert view["chatHistory"][-1]["content"] == {
                "message": "Reply 1 from helper: hi"
            }
            assert c.get(f"{base}/chats/{chat}/stream").status_code == 404
            assert c.get(f"{base}/chats").json()["total"] == 1
        process.terminate()
        _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0, stderr
