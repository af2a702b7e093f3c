"""The emulator's client-side tools: `CallTools` and the tool-response route.

A run that calls the caller's tools waits in `waiting_for_tool_response` with
the calls in `pendingToolCalls`, holding its chat, until the client posts every
result; then it goes on, asking the reply function again once its script is
spent. Everything here uses the in-process transport (no sockets).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

import httpx
import pytest
from langchain_core.messages import AIMessage, ToolMessage

from langchain_devic._convert import history_to_messages
from langchain_devic.testing import (
    CallTools,
    ClientCall,
    Conversation,
    DevicEmulator,
    Step,
    Write,
)
from tests.unit_tests.emulator._views import merge, nest

API_KEY = "sk-tools-SECRET-9"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
BASE = "http://127.0.0.1/api/v1"
#: The first conversation id of an emulator built with random_seed=7.
CHAT_0 = "e8fa2556-08c3-4ba7-b8ca-1a52b38f0e68"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
CLOCK = {"type": "function", "function": {"name": "get_time", "parameters": {}}}
TOOLS = [WEATHER, CLOCK]


def platform(**kwargs: Any) -> DevicEmulator:
    options: dict[str, Any] = {
        "api_key": API_KEY,
        "dialect": "platform",
        "random_seed": 7,
        "write_interval": 0.001,
        **kwargs,
    }
    return DevicEmulator(**options)


@pytest.fixture
def emu() -> Iterator[DevicEmulator]:
    """A platform emulator; its runs still waiting for tools are cancelled after."""
    emulator = platform()
    yield emulator
    emulator.reset()


@contextlib.contextmanager
def connect(emu: DevicEmulator) -> Iterator[httpx.Client]:
    with httpx.Client(
        transport=emu.transport(), base_url=BASE, headers=AUTH, timeout=5
    ) as c:
        yield c


@pytest.fixture
def client(emu: DevicEmulator) -> Iterator[httpx.Client]:
    with connect(emu) as c:
        yield c


class Recorder:
    """A reply function that plays `rounds` in turn and keeps what it saw."""

    def __init__(self, *rounds: Step | list[Step | str] | str) -> None:
        self.rounds = list(rounds)
        self.seen: list[Conversation] = []

    def __call__(self, conversation: Conversation) -> Any:
        self.seen.append(conversation)
        return self.rounds[len(self.seen) - 1]


def start(
    client: httpx.Client, message: str = "weather?", tools: Any = TOOLS, **extra: Any
) -> str:
    payload = {"message": message, "tools": tools, **extra}
    response = client.post("/assistants/helper/messages?async=true", json=payload)
    assert response.status_code == 201, response.text
    return str(response.json()["chatUid"])


def realtime(client: httpx.Client, chat: str) -> dict[str, Any]:
    response = client.get(f"/assistants/helper/chats/{chat}/realtime")
    assert response.status_code == 200
    return dict(response.json())


def respond(client: httpx.Client, chat: str, *answers: Any) -> httpx.Response:
    """Post tool responses: `(call_id, content)` pairs, or raw response objects."""
    responses = [
        {"tool_call_id": a[0], "role": "tool", "content": a[1]}
        if isinstance(a, tuple)
        else a
        for a in answers
    ]
    return client.post(
        f"/assistants/helper/chats/{chat}/tool-response",
        json={"responses": responses},
    )


def call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }


def events_of(lines: Iterable[str]) -> Iterator[tuple[str, Any]]:
    """SSE frames as (event, parsed data)."""
    event, data = "", []
    for line in lines:
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
        elif not line and event:
            yield event, json.loads("\n".join(data))
            event, data = "", []


def read_stream(client: httpx.Client, chat: str) -> list[tuple[str, Any]]:
    with client.stream("GET", f"/assistants/helper/chats/{chat}/stream") as r:
        assert r.status_code == 200
        return list(events_of(r.iter_lines()))


def run_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("devic-run-")}


# --------------------------------------------------------------- one round


def test_one_call_waits_then_the_reply_function_sees_the_result(
    emu: DevicEmulator, client: httpx.Client
) -> None:
    assistant = Recorder(
        CallTools(ClientCall("get_weather", {"city": "Paris"}, id="c1")),
        "Sunny in Paris.",
    )
    emu.add_assistant("helper", assistant)
    chat = start(client)
    emu.wait_idle()  # a run waiting for the client counts as idle
    view = realtime(client, chat)
    assert view["status"] == "waiting_for_tool_response"
    expected = call("c1", "get_weather", '{"city": "Paris"}')
    assert view["pendingToolCalls"] == [expected]
    calling = view["chatHistory"][-1]
    assert calling["role"] == "assistant"
    assert calling["content"] == {}  # no text: an empty content, as Devic
    assert calling["tool_calls"] == [expected]
    assert len(assistant.seen) == 1  # not asked again while it waits

    answered = respond(client, chat, ("c1", "21 C, clear"))
    assert answered.status_code == 201
    assert answered.json() == {"chatUid": chat, "message": "Tool responses received"}
    emu.wait_idle()
    view = realtime(client, chat)
    assert view["status"] == "completed"
    assert view["pendingToolCalls"] == []
    assert [(m["role"], m["content"]) for m in view["chatHistory"]] == [
        ("user", {"message": "weather?"}),
        ("assistant", {}),
        ("tool", {"message": "21 C, clear"}),
        ("assistant", {"message": "Sunny in Paris."}),
    ]
    assert view["chatHistory"][2]["tool_call_id"] == "c1"
    again = assistant.seen[1]
    assert again.message == "weather?"  # still the last user message
    assert again.turn == 1
    assert again.messages[-1] == {"role": "tool", "content": "21 C, clear"}
    assert again.messages[-2] == {"role": "assistant", "content": ""}
    assert again.tool_results == (
        {"tool_call_id": "c1", "name": "get_weather", "content": "21 C, clear"},
    )
    assert again.tools == ()  # nothing restated on the response
    assert assistant.seen[0].tool_results == ()
    assert assistant.seen[0].tool_names == {"get_weather", "get_time"}
    record = next(r for r in emu.requests if r.route == "tool-response")
    assert (record.status, record.chat_uuid) == (201, chat)


def test_a_fresh_call_id_comes_from_the_run(
    emu: DevicEmulator, client: httpx.Client
) -> None:
    emu.add_assistant("helper", lambda c: CallTools(ClientCall("get_time")))
    chat = start(client)
    emu.wait_idle()
    (pending,) = realtime(client, chat)["pendingToolCalls"]
    assert pending["id"].startswith("call_")
    assert pending["function"] == {"name": "get_time", "arguments": "{}"}


def test_several_calls_in_one_message(emu: DevicEmulator, client: httpx.Client) -> None:
    assistant = Recorder(
        CallTools(
            [
                ClientCall("get_weather", {"city": "Paris"}, id="w"),
                ClientCall("get_time", {"zone": "CET"}, id="t"),
            ]
        ),
        "Done.",
    )
    emu.add_assistant("helper", assistant)
    chat = start(client)
    emu.wait_idle()
    view = realtime(client, chat)
    assert [c["id"] for c in view["pendingToolCalls"]] == ["w", "t"]
    calling = [m for m in view["chatHistory"] if m.get("tool_calls")]
    assert len(calling) == 1  # one assistant message with both calls
    assert [c["function"]["name"] for c in calling[0]["tool_calls"]] == [
        "get_weather",
        "get_time",
    ]
    assert respond(client, chat, ("t", "12:00"), ("w", {"c": 20})).status_code == 201
    emu.wait_idle()
    assert realtime(client, chat)["status"] == "completed"
    results = assistant.seen[1].tool_results
    assert [(r["tool_call_id"], r["name"], r["content"]) for r in results] == [
        ("t", "get_time", "12:00"),
        ("w", "get_weather", {"c": 20}),
    ]


def test_several_rounds_in_one_turn(emu: DevicEmulator, client: httpx.Client) -> None:
    def assistant(conversation: Conversation) -> Any:
        results = conversation.tool_results
        if not results:
            return CallTools(ClientCall("get_weather", {"city": "Paris"}, id="r1"))
        if len(results) == 1:
            city = results[0]["content"]["next"]
            return CallTools(ClientCall("get_weather", {"city": city}, id="r2"))
        temps = [r["content"]["temp"] for r in results]
        return f"Temperatures: {temps}."

    emu.add_assistant("helper", assistant)
    chat = start(client)
    emu.wait_idle()
    first = {
        "tool_call_id": "r1",
        "role": "tool",
        "content": {"temp": 20, "next": "Oslo"},
    }
    assert respond(client, chat, {**first, "tools": TOOLS}).status_code == 201
    emu.wait_idle()
    view = realtime(client, chat)
    assert view["status"] == "waiting_for_tool_response"
    assert view["pendingToolCalls"] == [call("r2", "get_weather", '{"city": "Oslo"}')]
    second = {"tool_call_id": "r2", "role": "tool", "content": {"temp": 3}}
    assert respond(client, chat, {**second, "tools": TOOLS}).status_code == 201
    emu.wait_idle()
    view = realtime(client, chat)
    assert view["status"] == "completed"
    roles = [m["role"] for m in view["chatHistory"]]
    assert roles == ["user", "assistant", "tool", "assistant", "tool", "assistant"]
    assert view["chatHistory"][-1]["content"] == {"message": "Temperatures: [20, 3]."}


def test_the_remaining_steps_play_before_the_reply_function_is_asked_again(
    emu: DevicEmulator, client: httpx.Client
) -> None:
    assistant = Recorder(
        [CallTools(ClientCall("get_time", id="a")), "after the tool"],
        "never asked",
    )
    emu.add_assistant("helper", assistant)
    chat = start(client)
    emu.wait_idle()
    respond(client, chat, ("a", "noon"))
    emu.wait_idle()
    view = realtime(client, chat)
    assert view["status"] == "completed"
    assert view["chatHistory"][-1]["content"] == {"message": "after the tool"}
    assert len(assistant.seen) == 1


def test_arguments_given_as_a_string_are_sent_verbatim(
    emu: DevicEmulator, client: httpx.Client
) -> None:
    emu.add_assistant(
        "helper", lambda c: CallTools(ClientCall("get_weather", '{"city": Par', id="b"))
    )
    chat = start(client)
    emu.wait_idle()
    view = realtime(client, chat)
    assert view["pendingToolCalls"][0]["function"]["arguments"] == '{"city": Par'
    assert view["chatHistory"][-1]["tool_calls"][0]["function"]["arguments"] == (
        '{"city": Par'
    )


def test_text_on_the_calling_message(emu: DevicEmulator, client: httpx.Client) -> None:
    emu.add_assistant(
        "helper",
        Recorder(
            CallTools(ClientCall("get_time", id="t"), text="Let me look that up"),
            "It is noon.",
        ),
    )
    chat = start(client)
    emu.wait_idle()
    calling = realtime(client, chat)["chatHistory"][-1]
    assert calling["content"] == {"message": "Let me look that up"}
    assert calling["tool_calls"][0]["id"] == "t"
    respond(client, chat, ("t", "12:00"))
    emu.wait_idle()
    assert emu.conversations[chat][1] == {
        "role": "assistant",
        "content": "Let me look that up",
    }


# ------------------------------------------------------------- answering


def test_a_partial_answer_keeps_the_run_waiting_on_the_rest(
    emu: DevicEmulator, client: httpx.Client
) -> None:
    assistant = Recorder(
        CallTools([ClientCall("get_weather", id="w"), ClientCall("get_time", id="t")]),
        "Both in.",
    )
    emu.add_assistant("helper", assistant)
    chat = start(client)
    emu.wait_idle()
    assert respond(client, chat, ("w", "rain")).status_code == 201
    time.sleep(0.05)
    view = realtime(client, chat)
    assert view["status"] == "waiting_for_tool_response"
    assert [c["id"] for c in view["pendingToolCalls"]] == ["t"]
    assert view["chatHistory"][-1]["tool_call_id"] == "w"
    assert len(assistant.seen) == 1
    # An answered call cannot be answered again.
    again = respond(client, chat, ("w", "rain"))
    assert again.status_code == 400
    assert "'w' is not pending" in again.json()["message"]
    assert respond(client, chat, ("t", "noon")).status_code == 201
    emu.wait_idle()
    assert realtime(client, chat)["status"] == "completed"
    assert [r["tool_call_id"] for r in assistant.seen[1].tool_results] == ["w", "t"]


BAD_BODIES: list[tuple[str, Any, str]] = [
    ("not an object", [1, 2], 'the body must be {"responses"'),
    ("no responses", {"answers": []}, 'the body must be {"responses"'),
    ("empty responses", {"responses": []}, "at least one response"),
    ("a response not an object", {"responses": ["x"]}, "the body must be"),
    (
        "no tool_call_id",
        {"responses": [{"role": "tool", "content": 1}]},
        "responses[0]: 'tool_call_id' is required and must be a string",
    ),
    (
        "a number id",
        {"responses": [{"tool_call_id": 5, "role": "tool", "content": 1}]},
        "responses[0]: 'tool_call_id' is required and must be a string",
    ),
    (
        "bad role",
        {"responses": [{"tool_call_id": "w", "role": "user", "content": 1}]},
        "responses[0]: 'role' must be 'tool', got 'user'",
    ),
    (
        "no content",
        {"responses": [{"tool_call_id": "w", "role": "tool"}]},
        "responses[0]: 'content' is required (any JSON)",
    ),
    (
        "duplicate",
        {
            "responses": [
                {"tool_call_id": "w", "role": "tool", "content": 1},
                {"tool_call_id": "w", "role": "tool", "content": 2},
            ]
        },
        "responses[1]: tool call 'w' is answered twice",
    ),
    (
        "unknown id",
        {"responses": [{"tool_call_id": "zz", "role": "tool", "content": 1}]},
        "responses[0]: tool call 'zz' is not pending (pending: 'w', 't')",
    ),
    (
        "tools not a list",
        {
            "responses": [
                {"tool_call_id": "w", "role": "tool", "content": 1, "tools": 3}
            ]
        },
        "responses[0]: 'tools' must be a list of objects",
    ),
]


@pytest.mark.parametrize(
    ("body", "message"),
    [pytest.param(body, message, id=name) for name, body, message in BAD_BODIES],
)
def test_a_bad_tool_response_is_refused_and_changes_nothing(
    emu: DevicEmulator, client: httpx.Client, body: Any, message: str
) -> None:
    emu.add_assistant(
        "helper",
        lambda c: CallTools(
            [ClientCall("get_weather", id="w"), ClientCall("get_time", id="t")]
        ),
    )
    chat = start(client)
    emu.wait_idle()
    before = realtime(client, chat)
    refused = client.post(f"/assistants/helper/chats/{chat}/tool-response", json=body)
    assert refused.status_code == 400
    assert refused.json()["error"] == "BAD_REQUEST"
    assert message in refused.json()["message"]
    after = realtime(client, chat)
    assert after["status"] == "waiting_for_tool_response"
    assert after["pendingToolCalls"] == before["pendingToolCalls"]
    assert after["chatHistory"] == before["chatHistory"]


def test_a_tool_response_is_refused_once_the_run_goes_on(
    emu: DevicEmulator, client: httpx.Client
) -> None:
    emu.add_assistant(
        "helper", Recorder(CallTools(ClientCall("get_time", id="t")), "done")
    )
    chat = start(client)
    emu.wait_idle()
    respond(client, chat, ("t", "noon"))
    emu.wait_idle()
    late = respond(client, chat, ("t", "noon"))
    assert late.status_code == 400
    assert late.json() == nest(
        400, "BAD_REQUEST", f"Chat '{chat}' is not waiting for a tool response"
    )


def test_non_string_results_are_stored_as_data_and_read_back(
    emu: DevicEmulator, client: httpx.Client
) -> None:
    assistant = Recorder(
        CallTools(
            [
                ClientCall("get_weather", {"city": "Paris"}, id="w"),
                ClientCall("get_time", id="t"),
            ],
            text="Checking",
        ),
        "All done.",
    )
    emu.add_assistant("helper", assistant)
    chat = start(client)
    emu.wait_idle()
    respond(client, chat, ("w", {"temp": 21, "sky": "clear"}), ("t", "noon"))
    emu.wait_idle()
    history = client.get(f"/assistants/helper/chats/{chat}")
    assert history.status_code == 200
    content = history.json()["chatContent"]
    assert [m["role"] for m in content] == [
        "user",
        "assistant",
        "tool",
        "tool",
        "assistant",
    ]
    assert content[1]["content"] == {"message": "Checking"}
    assert [c["id"] for c in content[1]["tool_calls"]] == ["w", "t"]
    assert content[2]["content"] == {"data": {"temp": 21, "sky": "clear"}}
    assert content[2]["tool_call_id"] == "w"
    assert content[3]["content"] == {"message": "noon"}
    assert content[3]["tool_call_id"] == "t"
    # What the reply function saw: JSON text for the non-string result.
    assert assistant.seen[1].messages[2] == {
        "role": "tool",
        "content": '{"temp": 21, "sky": "clear"}',
    }
    # The client's reader of the history makes LangChain messages of it.
    messages = history_to_messages(history.json(), "helper", chat)
    calling = messages[1]
    assert isinstance(calling, AIMessage)
    assert [(c["id"], c["name"], c["args"]) for c in calling.tool_calls] == [
        ("w", "get_weather", {"city": "Paris"}),
        ("t", "get_time", {}),
    ]
    tools = [m for m in messages if isinstance(m, ToolMessage)]
    assert [(m.tool_call_id, m.content) for m in tools] == [
        ("w", '{"temp": 21, "sky": "clear"}'),
        ("t", "noon"),
    ]


# ---------------------------------------------------------- client tools


def test_a_tool_the_send_did_not_declare_fails_the_run(
    emu: DevicEmulator, client: httpx.Client
) -> None:
    emu.add_assistant("helper", lambda c: CallTools(ClientCall("delete_files")))
    chat = start(client, tools=[WEATHER])
    emu.wait_idle()
    view = realtime(client, chat)
    assert view["status"] == "error"
    assert "'delete_files'" in view["errorMessage"]
    assert "declared no such tool" in view["errorMessage"]
    assert view["pendingToolCalls"] == []
    # No call the client could never answer is left in the history.
    assert [m["role"] for m in view["chatHistory"]] == ["user"]
    assert start(client, "again", chatUid=chat)  # the chat is free


def test_tools_not_restated_on_the_response_are_gone_for_the_next_call(
    emu: DevicEmulator, client: httpx.Client
) -> None:
    assistant = Recorder(
        CallTools(ClientCall("get_weather", id="a")),
        CallTools(ClientCall("get_weather", id="b")),
    )
    emu.add_assistant("helper", assistant)
    chat = start(client)
    emu.wait_idle()
    respond(client, chat, ("a", "sunny"))  # no "tools": the client forgot them
    emu.wait_idle()
    view = realtime(client, chat)
    assert view["status"] == "error"
    assert "'get_weather'" in view["errorMessage"]
    assert "restated no such tool" in view["errorMessage"]
    assert assistant.seen[1].tools == ()
    assert view["pendingToolCalls"] == []


def test_tools_restated_on_the_first_response_stay_available(
    emu: DevicEmulator, client: httpx.Client
) -> None:
    assistant = Recorder(
        CallTools([ClientCall("get_weather", id="a"), ClientCall("get_time", id="b")]),
        CallTools(ClientCall("get_weather", id="c")),
        "done",
    )
    emu.add_assistant("helper", assistant)
    chat = start(client)
    emu.wait_idle()
    first = {"tool_call_id": "a", "role": "tool", "content": "x", "tools": [WEATHER]}
    second = {"tool_call_id": "b", "role": "tool", "content": "y", "tools": []}
    assert respond(client, chat, first, second).status_code == 201
    emu.wait_idle()
    view = realtime(client, chat)
    assert view["status"] == "waiting_for_tool_response"
    assert [c["id"] for c in view["pendingToolCalls"]] == ["c"]
    assert assistant.seen[1].tools == (WEATHER,)  # the FIRST response's tools
    assert assistant.seen[1].tool_names == {"get_weather"}
    assert (
        respond(
            client,
            chat,
            {"tool_call_id": "c", "role": "tool", "content": "z", "tools": [WEATHER]},
        ).status_code
        == 201
    )
    emu.wait_idle()
    assert realtime(client, chat)["status"] == "completed"


# --------------------------------------------------------- the chat waits


def test_a_send_to_a_chat_waiting_for_tools_is_refused_busy(
    emu: DevicEmulator, client: httpx.Client
) -> None:
    emu.add_assistant("helper", lambda c: CallTools(ClientCall("get_time", id="t")))
    chat = start(client)
    emu.wait_idle()
    busy = client.post(
        "/assistants/helper/messages?async=true",
        json={"message": "are you there?", "chatUid": chat},
    )
    assert busy.status_code == 409
    assert busy.json() == nest(
        409, "CHAT_BUSY", "Chat is still processing a previous message"
    )
    assert realtime(client, chat)["status"] == "waiting_for_tool_response"


def test_stop_ends_the_wait_and_the_run_at_once(
    emu: DevicEmulator, client: httpx.Client
) -> None:
    emu.add_assistant(
        "helper",
        Recorder(CallTools(ClientCall("get_time", id="t"), text="one moment"), "no"),
    )
    before = run_threads()
    chat = start(client)
    emu.wait_idle()
    waiting = run_threads() - before
    assert waiting
    started = time.monotonic()
    stopped = client.post(f"/assistants/helper/chats/{chat}/stop")
    assert stopped.status_code == 201
    assert stopped.json()["outcome"] == "tool_wait_closed"
    emu.wait_idle()
    deadline = time.monotonic() + 2
    while realtime(client, chat)["status"] != "completed":
        assert time.monotonic() < deadline
        time.sleep(0.005)
    assert time.monotonic() - started < 1
    view = realtime(client, chat)
    assert view["pendingToolCalls"] == []
    assert view["stopReason"] == "tool_wait_closed"
    assert not waiting & run_threads()
    # The text written before the wait is counted; the chat is free again.
    totals = client.get(f"/assistants/helper/chats/{chat}").json()["tokenUsage"]
    assert totals == {"inputTokens": 1, "outputTokens": 2}
    assert respond(client, chat, ("t", "noon")).status_code == 400
    assert start(client, "next", chatUid=chat)


def test_reset_cancels_a_run_waiting_for_tools(
    emu: DevicEmulator, client: httpx.Client
) -> None:
    emu.add_assistant("helper", lambda c: CallTools(ClientCall("get_time", id="t")))
    before = run_threads()
    start(client)
    emu.wait_idle()
    waiting = run_threads() - before
    assert waiting
    emu.reset()
    deadline = time.monotonic() + 2
    while waiting & run_threads():
        assert time.monotonic() < deadline, "the waiting run's thread never ended"
        time.sleep(0.005)
    assert emu.conversations == {}


def test_wait_idle_still_waits_for_a_run_that_works(
    emu: DevicEmulator, client: httpx.Client
) -> None:
    emu.add_assistant(
        "helper",
        Recorder(
            CallTools(ClientCall("get_time", id="t")),
            [Write("slow", pieces=1, interval=0.3)],
        ),
    )
    chat = start(client)
    emu.wait_idle()
    respond(client, chat, ("t", "noon"))
    with pytest.raises(TimeoutError, match=chat):
        emu.wait_idle(0.05)
    emu.wait_idle()
    assert realtime(client, chat)["status"] == "completed"


# ------------------------------------------------------------ sync sends


def test_a_sync_send_answers_when_the_run_starts_waiting(
    emu: DevicEmulator, client: httpx.Client
) -> None:
    emu.add_assistant(
        "helper",
        Recorder(
            ["Looking.", CallTools(ClientCall("get_time", id="t"), text="Asking you")],
            "It is noon.",
        ),
    )
    answer = client.post(
        "/assistants/helper/messages", json={"message": "time?", "tools": [CLOCK]}
    )
    assert answer.status_code == 200
    body = answer.json()
    assert [(m["role"], m["content"]) for m in body] == [
        ("user", {"message": "time?"}),
        ("assistant", {"message": "Looking."}),
        ("assistant", {"message": "Asking you"}),
    ]
    assert body[-1]["tool_calls"] == [call("t", "get_time", "{}")]
    assert body[-1]["messageTokenUsage"] == {"inputTokens": 1, "outputTokens": 3}
    assert realtime(client, CHAT_0)["status"] == "waiting_for_tool_response"
    assert respond(client, CHAT_0, ("t", "12:00")).status_code == 201
    emu.wait_idle()
    assert emu.conversations[CHAT_0][-1] == {
        "role": "assistant",
        "content": "It is noon.",
    }


def test_a_flat_sync_send_answers_the_text_so_far() -> None:
    emu = platform(dialect="flat")
    emu.add_assistant(
        "helper",
        Recorder(
            ["First.", CallTools(ClientCall("get_time", id="t"), text="Second")],
            "Third.",
        ),
    )
    with httpx.Client(
        transport=emu.transport(), base_url="http://127.0.0.1/v1", headers=AUTH
    ) as c:
        answer = c.post(
            "/assistants/helper/messages", json={"message": "go", "tools": [CLOCK]}
        )
        assert answer.status_code == 200
        assert answer.json()["message"] == "First.\n\nSecond"
        assert answer.json()["tokens_used"] == 3
        assert emu.realtime(CHAT_0)["status"] == "waiting_for_tool_response"
        answered = respond(c, CHAT_0, ("t", "noon"))
        assert answered.status_code == 201
        emu.wait_idle()
    assert emu.realtime(CHAT_0)["status"] == "completed"
    assert emu.conversations[CHAT_0][-1]["content"] == "Third."


# ------------------------------------------------------------------- SSE


def test_the_stream_closes_at_the_wait_with_the_pending_calls(
    emu: DevicEmulator, client: httpx.Client
) -> None:
    emu.add_assistant(
        "helper",
        Recorder(
            ["Let me see.", CallTools(ClientCall("get_time", id="t"))],
            "It is noon, as you said.",
        ),
    )
    chat = start(client)
    got = read_stream(client, chat)  # returns: the stream closed at the wait
    last_event, last = got[-1]
    assert last_event == "partial"
    assert last["status"] == "waiting_for_tool_response"
    assert last["pendingToolCalls"] == [call("t", "get_time", "{}")]
    assert merge(got)["pendingToolCalls"] == [call("t", "get_time", "{}")]

    respond(client, chat, ("t", "noon"))
    followed = read_stream(client, chat)
    assert followed[0][0] == "snapshot"
    assert followed[0][1]["status"] == "processing"
    assert followed[0][1]["pendingToolCalls"] == []
    assert any(event == "delta" for event, _ in followed)
    view = merge(followed)
    assert view["status"] == "completed"
    assert view["chatHistory"][-1]["content"] == {"message": "It is noon, as you said."}


def test_a_stream_opened_while_waiting_is_one_snapshot(
    emu: DevicEmulator, client: httpx.Client
) -> None:
    emu.add_assistant("helper", lambda c: CallTools(ClientCall("get_time", id="t")))
    chat = start(client)
    emu.wait_idle()
    got = read_stream(client, chat)
    assert [event for event, _ in got] == ["snapshot"]
    assert got[0][1]["pendingToolCalls"] == [call("t", "get_time", "{}")]


# -------------------------------------------------------- envelope, async


def test_the_tool_response_answer_is_enveloped_when_asked() -> None:
    emu = platform(envelope=True)
    emu.add_assistant(
        "helper", Recorder(CallTools(ClientCall("get_time", id="t")), "ok")
    )
    with connect(emu) as c:
        started = c.post(
            "/assistants/helper/messages?async=true",
            json={"message": "hi", "tools": [CLOCK]},
        )
        chat = started.json()["data"]["chatUid"]
        emu.wait_idle()
        pending = c.get(f"/assistants/helper/chats/{chat}/realtime").json()
        assert pending["data"]["pendingToolCalls"][0]["id"] == "t"
        refused = respond(c, chat, ("nope", 1))
        assert refused.status_code == 400
        assert "success" not in refused.json()  # refusals are never enveloped
        answered = respond(c, chat, ("t", "noon"))
    assert answered.status_code == 201
    assert answered.json() == {
        "success": True,
        "data": {"chatUid": chat, "message": "Tool responses received"},
    }


def test_an_async_client_answers_tools_through_the_transport(
    emu: DevicEmulator,
) -> None:
    emu.add_assistant(
        "helper", Recorder(CallTools(ClientCall("get_time", id="t")), "noon it is")
    )

    async def main() -> dict[str, Any]:
        async with httpx.AsyncClient(
            transport=emu.transport(), base_url=BASE, headers=AUTH, timeout=5
        ) as c:
            started = await c.post(
                "/assistants/helper/messages?async=true",
                json={"message": "time?", "tools": [CLOCK]},
            )
            chat = started.json()["chatUid"]
            while True:
                view = (await c.get(f"/assistants/helper/chats/{chat}/realtime")).json()
                if view["status"] == "waiting_for_tool_response":
                    break
                await asyncio.sleep(0.002)
            call_id = view["pendingToolCalls"][0]["id"]
            answered = await c.post(
                f"/assistants/helper/chats/{chat}/tool-response",
                json={
                    "responses": [
                        {"tool_call_id": call_id, "role": "tool", "content": "12"}
                    ]
                },
            )
            assert answered.status_code == 201
            while view["status"] != "completed":
                await asyncio.sleep(0.002)
                view = (await c.get(f"/assistants/helper/chats/{chat}/realtime")).json()
            return dict(view)

    view = asyncio.run(main())
    assert view["chatHistory"][-1]["content"] == {"message": "noon it is"}


# ------------------------------------------------------------------ tokens


def test_the_turn_tokens_count_every_round_when_the_run_ends(
    emu: DevicEmulator, client: httpx.Client
) -> None:
    emu.add_assistant(
        "helper",
        Recorder(
            [
                "one two",
                CallTools(ClientCall("get_time", id="t"), text="three four five"),
            ],
            "six",
        ),
    )
    chat = start(client, "a b c")
    emu.wait_idle()
    waiting = client.get(f"/assistants/helper/chats/{chat}").json()
    assert waiting["tokenUsage"] == {"inputTokens": 0, "outputTokens": 0}
    respond(client, chat, ("t", "noon"))
    emu.wait_idle()
    done = client.get(f"/assistants/helper/chats/{chat}").json()
    assert done["tokenUsage"] == {"inputTokens": 3, "outputTokens": 6}


def test_a_reply_function_that_raises_in_a_later_round_fails_the_run(
    emu: DevicEmulator, client: httpx.Client
) -> None:
    def assistant(conversation: Conversation) -> Any:
        if conversation.tool_results:
            raise RuntimeError("bad result")
        return CallTools(ClientCall("get_time", id="t"))

    emu.add_assistant("helper", assistant)
    chat = start(client)
    emu.wait_idle()
    respond(client, chat, ("t", "noon"))
    emu.wait_idle()
    view = realtime(client, chat)
    assert view["status"] == "error"
    assert view["errorMessage"] == (
        "The reply function of assistant 'helper' raised RuntimeError: bad result"
    )


# -------------------------------------------------------------- the steps


@pytest.mark.parametrize(
    ("make", "error"),
    [
        (lambda: ClientCall(""), ValueError),
        (lambda: ClientCall("t", arguments=[1]), TypeError),
        (lambda: ClientCall("t", id=""), ValueError),
        (lambda: CallTools([]), ValueError),
        (lambda: CallTools(["get_time"]), TypeError),
        (lambda: CallTools("get_time"), TypeError),
        (
            lambda: CallTools([ClientCall("a", id="x"), ClientCall("b", id="x")]),
            ValueError,
        ),
        (lambda: CallTools(ClientCall("a"), text=None), TypeError),
    ],
)
def test_the_steps_check_what_they_are_given(make: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        make()


def test_a_single_call_is_one_call() -> None:
    single = CallTools(ClientCall("get_time"))
    assert single.calls == (ClientCall("get_time"),)
    assert single == CallTools([ClientCall("get_time")])
