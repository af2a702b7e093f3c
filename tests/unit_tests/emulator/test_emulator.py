"""The Devic emulator: one core behind an httpx transport and a loopback server.

Tests that use the loopback server are marked `allow_hosts(["127.0.0.1"])`;
everything else goes through the in-process transport and opens no socket.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, get_args
from urllib.parse import quote

import httpx
import pytest

import langchain_devic.testing
from langchain_devic import _wire
from langchain_devic.testing import (
    Conversation,
    DevicEmulator,
    EmulatorServer,
    EmulatorTransport,
    Fault,
    FaultKind,
    RecordedRequest,
)
from langchain_devic.testing.__main__ import main as cli_main
from langchain_devic.testing._server import is_loopback_host

API_KEY = "sk-test-SECRET-0123456789"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
#: The first two conversation ids of an emulator built with random_seed=7.
CHAT_0 = "e8fa2556-08c3-4ba7-b8ca-1a52b38f0e68"
CHAT_1 = "0e55f757-b845-4dd9-936f-df80fd422fb5"
#: Refused on purpose: the emulator must never listen on every interface.
ALL_INTERFACES = "0.0.0.0"  # noqa: S104
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")

SERVER = pytest.param("server", marks=pytest.mark.allow_hosts(["127.0.0.1"]))
FACES = ["transport", SERVER]


def send(
    client: httpx.Client,
    message: str | None,
    chat: str | None = None,
    *,
    assistant: str = "helper",
    **extra: Any,
) -> httpx.Response:
    payload: dict[str, Any] = {"message": message, "chatUuid": chat, **extra}
    return client.post(
        f"/assistants/{quote(assistant, safe='')}/messages", json=payload
    )


def without_timestamps(body: Any) -> Any:
    if isinstance(body, dict):
        return {
            k: without_timestamps(v)
            for k, v in body.items()
            if k not in {"timestamp", "createdAt"}
        }
    if isinstance(body, list):
        return [without_timestamps(v) for v in body]
    return body


@pytest.fixture
def emu() -> DevicEmulator:
    return DevicEmulator(api_key=API_KEY, random_seed=7)


@pytest.fixture
def client(emu: DevicEmulator) -> Iterator[httpx.Client]:
    with httpx.Client(
        transport=emu.transport(), base_url=emu.base_url, headers=AUTH
    ) as c:
        yield c


@pytest.fixture(params=FACES)
def face(request: pytest.FixtureRequest, emu: DevicEmulator) -> Iterator[httpx.Client]:
    """A client on either face of the same emulator."""
    if request.param == "transport":
        with httpx.Client(
            transport=emu.transport(), base_url=emu.base_url, headers=AUTH
        ) as c:
            yield c
        return
    with (
        emu.serve() as server,
        httpx.Client(base_url=server.base_url, headers=AUTH, timeout=5) as c,
    ):
        yield c


# ---------------------------------------------------------------- one core


THREE_TURNS = ["hello there", "how are you", "tell me more please"]


def three_turns(client: httpx.Client) -> list[httpx.Response]:
    responses = []
    chat = None
    for message in THREE_TURNS:
        response = send(client, message, chat)
        chat = response.json()["chatUuid"]
        responses.append(response)
    return responses


@pytest.mark.allow_hosts(["127.0.0.1"])
def test_transport_and_server_give_the_same_answers() -> None:
    in_process = DevicEmulator(api_key=API_KEY, random_seed=7)
    networked = DevicEmulator(api_key=API_KEY, random_seed=7)
    with httpx.Client(
        transport=in_process.transport(), base_url=in_process.base_url, headers=AUTH
    ) as c:
        a = three_turns(c)
    with (
        networked.serve() as server,
        httpx.Client(base_url=server.base_url, headers=AUTH) as c,
    ):
        b = three_turns(c)

    expected = [
        {
            "chatUuid": CHAT_0,
            "message": "Reply 1 from helper: hello there",
            "tokens_used": 8,
        },
        {
            "chatUuid": CHAT_0,
            "message": "Reply 2 from helper: how are you",
            "tokens_used": 18,
        },
        {
            "chatUuid": CHAT_0,
            "message": "Reply 3 from helper: tell me more please",
            "tokens_used": 30,
        },
    ]
    for ra, rb, want in zip(a, b, expected, strict=True):
        assert ra.status_code == rb.status_code == 200
        assert ra.headers["content-type"] == rb.headers["content-type"]
        assert ra.headers["content-type"] == "application/json; charset=utf-8"
        assert int(ra.headers["content-length"]) == len(ra.content)
        assert int(rb.headers["content-length"]) == len(rb.content)
        assert without_timestamps(ra.json()) == without_timestamps(rb.json()) == want
        assert TIMESTAMP.match(ra.json()["timestamp"])
        assert TIMESTAMP.match(rb.json()["timestamp"])
    assert in_process.conversations == networked.conversations
    assert list(in_process.conversations) == [CHAT_0]
    assert [r.message for r in in_process.requests] == THREE_TURNS
    assert [r.message for r in networked.requests] == THREE_TURNS
    assert [r.chat_uuid for r in networked.requests] == [None, CHAT_0, CHAT_0]


def test_second_conversation_gets_the_next_deterministic_id(
    client: httpx.Client,
) -> None:
    assert send(client, "one").json()["chatUuid"] == CHAT_0
    assert send(client, "two").json()["chatUuid"] == CHAT_1


def test_transport_is_sync_and_async(emu: DevicEmulator) -> None:
    transport = emu.transport()
    assert isinstance(transport, EmulatorTransport)
    assert isinstance(transport, httpx.BaseTransport)
    assert isinstance(transport, httpx.AsyncBaseTransport)
    assert emu.base_url == "http://127.0.0.1/v1"


# ----------------------------------------------------------- conversations


@pytest.mark.allow_hosts(["127.0.0.1"])
def test_fifty_concurrent_clients_keep_their_conversations(
    emu: DevicEmulator,
) -> None:
    emu.latency = 0.01  # lets the turns of different clients interleave

    def converse(i: int, base_url: str) -> str:
        chat = None
        with httpx.Client(base_url=base_url, headers=AUTH, timeout=10) as c:
            for turn in range(1, 4):
                response = send(
                    c, f"client {i} turn {turn}", chat, assistant=f"a{i % 3}"
                )
                assert response.status_code == 200, response.text
                body = response.json()
                assert (
                    body["message"]
                    == f"Reply {turn} from a{i % 3}: client {i} turn {turn}"
                )
                chat = chat or body["chatUuid"]
                assert body["chatUuid"] == chat
        assert isinstance(chat, str)
        return chat

    with emu.serve() as server, ThreadPoolExecutor(max_workers=50) as pool:
        chats = list(pool.map(lambda i: converse(i, server.base_url), range(50)))

    assert len(set(chats)) == 50
    conversations = emu.conversations
    assert set(conversations) == set(chats)
    for i, chat in enumerate(chats):
        assert conversations[chat] == [
            message
            for turn in range(1, 4)
            for message in (
                {"role": "user", "content": f"client {i} turn {turn}"},
                {
                    "role": "assistant",
                    "content": f"Reply {turn} from a{i % 3}: client {i} turn {turn}",
                },
            )
        ]
        assert emu.chat_owner(chat) == f"a{i % 3}"
    requests = emu.requests
    assert len(requests) == 150
    assert all(r.status == 200 and r.authorized for r in requests)
    for i, chat in enumerate(chats):
        sent = [
            r for r in requests if r.message and r.message.startswith(f"client {i} ")
        ]
        assert [r.message for r in sent] == [f"client {i} turn {t}" for t in (1, 2, 3)]
        assert [r.chat_uuid for r in sent] == [None, chat, chat]
        assert [r.assistant_id for r in sent] == [f"a{i % 3}"] * 3


async def test_fifty_concurrent_tasks_on_the_async_transport(
    emu: DevicEmulator,
) -> None:
    emu.latency = 0.01

    async def converse(c: httpx.AsyncClient, i: int) -> str:
        chat: str | None = None
        for turn in range(1, 4):
            payload = {"message": f"task {i} turn {turn}", "chatUuid": chat}
            response = await c.post("/assistants/helper/messages", json=payload)
            assert response.status_code == 200, response.text
            chat = str(response.json()["chatUuid"])
        assert chat is not None
        return chat

    started = time.monotonic()
    async with httpx.AsyncClient(
        transport=emu.transport(), base_url=emu.base_url, headers=AUTH
    ) as c:
        chats = await asyncio.gather(*(converse(c, i) for i in range(50)))
    # 150 requests of 10 ms each, concurrently: the latency did not block the loop.
    assert time.monotonic() - started < 1.0
    assert len(set(chats)) == 50
    for i, chat in enumerate(chats):
        history = emu.conversations[chat]
        assert [m["content"] for m in history if m["role"] == "user"] == [
            f"task {i} turn {t}" for t in (1, 2, 3)
        ]
        assert history[-1] == {
            "role": "assistant",
            "content": f"Reply 3 from helper: task {i} turn 3",
        }


def test_default_reply_truncates_and_counts_tokens(client: httpx.Client) -> None:
    body = send(client, "x" * 250).json()
    assert body["message"] == "Reply 1 from helper: " + "x" * 200 + "…"
    assert body["tokens_used"] == 1 + 5  # one long word in, five words out


def test_context_system_is_not_echoed_and_reply_fn_sees_it(
    emu: DevicEmulator, client: httpx.Client
) -> None:
    seen: list[Conversation] = []

    def reply(conversation: Conversation) -> str:
        seen.append(conversation)
        return DevicEmulator.default_reply(conversation)

    emu.add_assistant("helper", reply)
    body = send(
        client, "hi", context={"system": "be terse"}, metadata={"user": "u1"}
    ).json()
    assert body["message"] == "Reply 1 from helper: hi"
    assert "be terse" not in json.dumps(emu.conversations)
    (conversation,) = seen
    assert conversation.context == {"system": "be terse"}
    assert conversation.metadata == {"user": "u1"}
    assert conversation.messages == ({"role": "user", "content": "hi"},)
    assert conversation.turn == 1
    assert conversation.chat_uuid == CHAT_0
    assert emu.requests[0].json["context"] == {"system": "be terse"}


def test_reset_forgets_everything(emu: DevicEmulator, client: httpx.Client) -> None:
    send(client, "hi")
    emu.inject(Fault.drop())
    emu.reset()
    assert emu.requests == []
    assert emu.conversations == {}
    assert emu.queued_faults == ()
    assert send(client, "again").json()["chatUuid"] == CHAT_0


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize("face", FACES, indirect=True)
def test_401_without_or_with_a_wrong_token_never_echoes_it(
    emu: DevicEmulator, face: httpx.Client
) -> None:
    wrong = "sk-WRONG-token-987"
    responses = [
        face.post(
            "/assistants/helper/messages",
            json={"message": "hi"},
            headers={"Authorization": ""},
        ),
        face.post(
            "/assistants/helper/messages",
            json={"message": "hi"},
            headers={"Authorization": f"Bearer {wrong}"},
        ),
        face.post(
            "/assistants/helper/messages",
            json={"message": "hi"},
            headers={"Authorization": f"Basic {API_KEY}"},
        ),
    ]
    for response in responses:
        assert response.status_code == 401
        assert response.json() == {
            "success": False,
            "error": {"message": "Invalid or missing API key", "code": "UNAUTHORIZED"},
        }
    ok = send(face, "hi")
    assert ok.status_code == 200
    for response in [*responses, ok]:
        raw = response.content.decode() + str(response.headers)
        assert API_KEY not in raw
        assert wrong not in raw
    records = emu.requests
    assert [r.authorized for r in records] == [False, False, False, True]
    assert [r.status for r in records] == [401, 401, 401, 200]
    assert all("authorization" not in r.headers for r in records)
    assert API_KEY not in repr(records)
    assert wrong not in repr(records)
    assert len(emu.conversations) == 1


def test_unknown_assistant_is_404() -> None:
    emu = DevicEmulator(api_key=API_KEY, assistants=["known"])
    with httpx.Client(
        transport=emu.transport(), base_url=emu.base_url, headers=AUTH
    ) as c:
        missing = send(c, "hi", assistant="ghost")
        assert missing.status_code == 404
        assert missing.json() == {
            "success": False,
            "error": {
                "message": "Assistant 'ghost' not found",
                "code": "ASSISTANT_NOT_FOUND",
            },
        }
        assert send(c, "hi", assistant="known").status_code == 200
        emu.add_assistant("ghost")
        assert send(c, "hi", assistant="ghost").status_code == 200


def test_unknown_chat_and_another_assistants_chat_are_404(
    client: httpx.Client,
) -> None:
    chat = send(client, "hi", assistant="first").json()["chatUuid"]
    for assistant, chat_id in [("first", "nope"), ("second", chat), ("first", "")]:
        response = send(client, "hi", chat_id, assistant=assistant)
        assert response.status_code == 404
        assert response.json() == {
            "success": False,
            "error": {
                "message": f"Chat '{chat_id}' not found",
                "code": "CHAT_NOT_FOUND",
            },
        }
    assert send(client, "more", chat, assistant="first").status_code == 200


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"message": ""}, "'message' is required and must be a non-empty string"),
        ({"chatUuid": None}, "'message' is required and must be a non-empty string"),
        ({"message": 42}, "'message' is required and must be a non-empty string"),
        (["message", "hi"], "'message' is required and must be a non-empty string"),
        ({"message": "hi", "chatUuid": 5}, "'chatUuid' must be a string or null"),
        ({"message": "hi", "context": "x"}, "'context' must be an object"),
        ({"message": "hi", "metadata": [1]}, "'metadata' must be an object"),
    ],
)
def test_bad_bodies_are_400(
    emu: DevicEmulator, client: httpx.Client, payload: Any, message: str
) -> None:
    response = client.post("/assistants/helper/messages", json=payload)
    assert response.status_code == 400
    assert response.json() == {
        "success": False,
        "error": {"message": message, "code": "BAD_REQUEST"},
    }
    assert emu.conversations == {}


def test_non_json_body_is_400(emu: DevicEmulator, client: httpx.Client) -> None:
    response = client.post(
        "/assistants/helper/messages",
        content=b"message=hi",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "BAD_REQUEST"
    assert emu.requests[0].json is None
    assert emu.requests[0].body == b"message=hi"


def test_other_paths_are_404_and_other_methods_405(
    emu: DevicEmulator, client: httpx.Client
) -> None:
    for path in [
        "/assistants/a/b/messages",
        "/assistants//messages",
        "/assistants/a/messages/",
        "/assistants/a",
        "/v2/assistants/a/messages",
    ]:
        response = client.post(
            httpx.URL(f"http://127.0.0.1{path}"), json={"message": "hi"}
        )
        assert response.status_code == 404, path
        assert response.json() == {
            "statusCode": 404,
            "error": "NOT_FOUND",
            "message": f"Cannot POST {path}",
        }
    response = client.get("/assistants/helper/messages")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.json()["error"] == "METHOD_NOT_ALLOWED"
    assert [r.status for r in emu.requests] == [404] * 5 + [405]
    assert emu.conversations == {}


def test_platform_prefix_and_custom_base_path_are_served() -> None:
    emu = DevicEmulator(api_key=API_KEY, base_path="/custom/")
    assert emu.base_url == "http://127.0.0.1/custom"
    with httpx.Client(transport=emu.transport(), headers=AUTH) as c:
        for prefix in ["/custom", "/api/v1"]:
            response = c.post(
                f"http://127.0.0.1{prefix}/assistants/helper/messages",
                json={"message": "hi"},
            )
            assert response.status_code == 200
        assert (
            c.post(
                "http://127.0.0.1/v1/assistants/helper/messages", json={"message": "hi"}
            ).status_code
            == 404
        )


@pytest.mark.parametrize("face", FACES, indirect=True)
def test_concurrent_turns_in_one_chat_get_409(
    emu: DevicEmulator, face: httpx.Client
) -> None:
    chat = send(face, "first").json()["chatUuid"]
    emu.latency = 0.25
    results: dict[str, httpx.Response] = {}

    def slow_turn() -> None:
        results["slow"] = send(face, "second", chat)

    worker = threading.Thread(target=slow_turn)
    worker.start()
    time.sleep(0.08)
    busy = send(face, "intruder", chat)
    worker.join()
    assert busy.status_code == 409
    assert busy.json() == {
        "success": False,
        "error": {
            "message": "Chat is still processing a previous message",
            "code": "CHAT_BUSY",
        },
    }
    assert results["slow"].status_code == 200
    emu.latency = 0
    assert send(face, "third", chat).json()["message"] == "Reply 3 from helper: third"
    assert [m["content"] for m in emu.conversations[chat] if m["role"] == "user"] == [
        "first",
        "second",
        "third",
    ]


async def test_409_with_async_tasks(emu: DevicEmulator) -> None:
    async with httpx.AsyncClient(
        transport=emu.transport(), base_url=emu.base_url, headers=AUTH
    ) as c:
        first = await c.post("/assistants/helper/messages", json={"message": "a"})
        chat = first.json()["chatUuid"]
        emu.latency = 0.1
        one, two = await asyncio.gather(
            c.post(
                "/assistants/helper/messages", json={"message": "b", "chatUuid": chat}
            ),
            c.post(
                "/assistants/helper/messages", json={"message": "c", "chatUuid": chat}
            ),
        )
    assert sorted([one.status_code, two.status_code]) == [200, 409]


async def test_a_cancelled_wait_frees_the_chat(emu: DevicEmulator) -> None:
    async with httpx.AsyncClient(
        transport=emu.transport(), base_url=emu.base_url, headers=AUTH
    ) as c:
        first = await c.post("/assistants/helper/messages", json={"message": "a"})
        chat = first.json()["chatUuid"]
        emu.latency = 5.0
        payload = {"message": "cut", "chatUuid": chat}
        task = asyncio.create_task(c.post("/assistants/helper/messages", json=payload))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        emu.latency = 0
        payload = {"message": "again", "chatUuid": chat}
        again = await c.post("/assistants/helper/messages", json=payload)
    assert again.status_code == 200  # not 409: the abandoned turn let go
    assert again.json()["message"] == "Reply 2 from helper: again"
    assert [(r.message, r.status) for r in emu.requests] == [
        ("a", 200),
        ("cut", None),
        ("again", 200),
    ]


def test_an_interrupted_wait_frees_the_chat(
    emu: DevicEmulator, client: httpx.Client
) -> None:
    """The faces' interface: `begin()`, then `play()` with the face's own sleep."""
    chat = send(client, "first").json()["chatUuid"]
    emu.latency = 5.0
    exchange = emu.begin(
        "POST",
        "/v1/assistants/helper/messages",
        [*AUTH.items(), ("Content-Type", "application/json")],
        json.dumps({"message": "cut", "chatUuid": chat}).encode(),
        face="server",
    )
    waits: list[float] = []

    def interrupted(seconds: float) -> None:
        waits.append(seconds)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        exchange.play(interrupted)
    assert waits == [5.0]
    emu.latency = 0
    assert send(client, "again", chat).json()["message"] == "Reply 2 from helper: again"
    assert [r.status for r in emu.requests] == [200, None, 200]


# ------------------------------------------------------------------ faults


@pytest.mark.parametrize("face", FACES, indirect=True)
def test_status_faults_answer_with_retry_after_and_skip_the_turn(
    emu: DevicEmulator, face: httpx.Client
) -> None:
    emu.inject(
        Fault.status(429, retry_after=2, retry_after_ms=1500, retry_after_body=30),
        Fault.status(503, retry_after=0.5),
        Fault.status(409, retry_after="Wed, 21 Oct 2015 07:28:00 GMT"),
    )
    limited = send(face, "one")
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "2"
    assert limited.headers["retry-after-ms"] == "1500"
    assert limited.json() == {
        "statusCode": 429,
        "error": "TENANT_LIMIT_EXCEEDED",
        "message": "Rate limit exceeded",
        "retryAfter": 30,
    }
    unavailable = send(face, "two")
    assert unavailable.status_code == 503
    assert unavailable.headers["retry-after"] == "0.5"
    assert unavailable.json() == {
        "success": False,
        "error": {"message": "Service Unavailable", "code": "SERVICE_UNAVAILABLE"},
    }
    conflict = send(face, "three")
    assert conflict.status_code == 409
    assert conflict.headers["retry-after"] == "Wed, 21 Oct 2015 07:28:00 GMT"
    assert conflict.json()["error"] == {"message": "Conflict", "code": "CONFLICT"}
    assert emu.conversations == {}
    ok = send(face, "four")
    assert ok.status_code == 200
    assert ok.json()["message"] == "Reply 1 from helper: four"
    assert [(r.status, r.fault) for r in emu.requests] == [
        (429, "status"),
        (503, "status"),
        (409, "status"),
        (200, None),
    ]
    assert emu.queued_faults == ()


@pytest.mark.parametrize("face", FACES, indirect=True)
def test_a_500_runs_the_turn_before_failing(
    emu: DevicEmulator, face: httpx.Client
) -> None:
    chat = send(face, "one").json()["chatUuid"]
    emu.inject(Fault.status(500))
    failed = send(face, "two", chat)
    assert failed.status_code == 500
    assert failed.json() == {
        "success": False,
        "error": {"message": "Internal Server Error", "code": "INTERNAL_ERROR"},
    }
    assert emu.conversations[chat][-1] == {
        "role": "assistant",
        "content": "Reply 2 from helper: two",
    }
    assert send(face, "three", chat).json()["message"] == "Reply 3 from helper: three"


@pytest.mark.parametrize("face", FACES, indirect=True)
def test_drops(emu: DevicEmulator, face: httpx.Client) -> None:
    emu.inject(Fault.drop(), Fault.drop_after_processing())
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        send(face, "dropped")
    assert emu.conversations == {}
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        send(face, "processed")
    assert emu.conversations == {
        CHAT_0: [
            {"role": "user", "content": "processed"},
            {"role": "assistant", "content": "Reply 1 from helper: processed"},
        ]
    }
    assert send(face, "fine").status_code == 200
    assert [(r.message, r.status, r.fault) for r in emu.requests] == [
        ("dropped", None, "drop"),
        ("processed", None, "drop_after_processing"),
        ("fine", 200, None),
    ]


def test_connect_error_on_the_transport_is_not_received(
    emu: DevicEmulator, client: httpx.Client
) -> None:
    emu.inject(Fault.connect_error())
    with pytest.raises(httpx.ConnectError):
        send(client, "never arrives")
    assert emu.requests == []
    assert send(client, "arrives").status_code == 200
    assert [r.message for r in emu.requests] == ["arrives"]


@pytest.mark.allow_hosts(["127.0.0.1"])
def test_connect_error_on_the_server_drops_the_connection(emu: DevicEmulator) -> None:
    emu.inject(Fault.connect_error())
    with (
        emu.serve() as server,
        httpx.Client(base_url=server.base_url, headers=AUTH) as c,
    ):
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            send(c, "cut")
        assert send(c, "ok").status_code == 200
    assert [(r.status, r.fault) for r in emu.requests] == [
        (None, "connect_error"),
        (200, None),
    ]


@pytest.mark.parametrize("face", FACES, indirect=True)
def test_read_timeout_runs_the_turn_and_never_answers(
    emu: DevicEmulator, face: httpx.Client
) -> None:
    emu.inject(Fault.read_timeout(5.0))
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        face.post("/assistants/helper/messages", json={"message": "slow"}, timeout=0.2)
    assert time.monotonic() - started < 2.0  # the client's timeout won
    deadline = time.monotonic() + 2
    while not emu.conversations and time.monotonic() < deadline:
        time.sleep(0.01)
    assert emu.conversations[CHAT_0][0] == {"role": "user", "content": "slow"}
    assert emu.requests[0].fault == "read_timeout"
    assert emu.requests[0].status is None


def test_read_timeout_without_client_timeout_stalls_then_raises(
    emu: DevicEmulator,
) -> None:
    emu.inject(Fault.read_timeout(0.05))
    with httpx.Client(
        transport=emu.transport(),
        base_url=emu.base_url,
        headers=AUTH,
        timeout=httpx.Timeout(None),
    ) as c:
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            send(c, "slow")
        assert time.monotonic() - started >= 0.05


def test_latency_longer_than_the_read_timeout_times_out_on_the_transport(
    emu: DevicEmulator,
) -> None:
    emu.latency = 5.0
    with httpx.Client(
        transport=emu.transport(), base_url=emu.base_url, headers=AUTH, timeout=0.1
    ) as c:
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            send(c, "slow")
        assert time.monotonic() - started < 1.0
    # A real server keeps working after the client gave up: the turn ran.
    assert len(emu.conversations[CHAT_0]) == 2


@pytest.mark.parametrize("face", FACES, indirect=True)
def test_latency_fault_delays_one_request(
    emu: DevicEmulator, face: httpx.Client
) -> None:
    emu.inject(Fault.latency(0.15))
    started = time.monotonic()
    assert send(face, "slow").status_code == 200
    assert time.monotonic() - started >= 0.15
    started = time.monotonic()
    assert send(face, "fast").status_code == 200
    assert time.monotonic() - started < 0.15
    assert [r.fault for r in emu.requests] == ["latency", None]


@pytest.mark.parametrize("face", FACES, indirect=True)
def test_malformed_and_raw_answers_are_verbatim(
    emu: DevicEmulator, face: httpx.Client
) -> None:
    emu.inject(
        Fault.malformed(),
        Fault.malformed(b"not json", status=502, content_type="text/plain"),
        Fault.raw(418, {"weird": True}, headers={"X-Devic-Test": "yes"}),
        Fault.raw(200, b"", headers={"Content-Type": "application/json"}),
    )
    html = send(face, "a")
    assert (html.status_code, html.text) == (200, "<html>oops</html>")
    assert html.headers["content-type"] == "text/html"
    plain = send(face, "b")
    assert (plain.status_code, plain.text) == (502, "not json")
    assert plain.headers["content-type"] == "text/plain"
    teapot = send(face, "c")
    assert teapot.status_code == 418
    assert teapot.json() == {"weird": True}
    assert teapot.headers["x-devic-test"] == "yes"
    empty = send(face, "d")
    assert (empty.status_code, empty.content) == (200, b"")
    assert empty.headers["content-length"] == "0"
    assert emu.conversations == {}
    assert [r.fault for r in emu.requests] == ["malformed", "malformed", "raw", "raw"]


def test_faults_are_consumed_only_by_authorized_message_posts(
    emu: DevicEmulator, client: httpx.Client
) -> None:
    emu.inject(Fault.status(503))
    assert (
        client.post(
            "/assistants/helper/messages",
            json={"message": "x"},
            headers={"Authorization": "Bearer no"},
        ).status_code
        == 401
    )
    assert client.post("/elsewhere", json={"message": "x"}).status_code == 404
    assert len(emu.queued_faults) == 1
    assert send(client, "x").status_code == 503


def test_fault_policy_applies_when_the_queue_is_empty(
    emu: DevicEmulator, client: httpx.Client
) -> None:
    seen: list[RecordedRequest] = []

    def policy(request: RecordedRequest) -> Fault | None:
        seen.append(request)
        return Fault.status(503) if request.message == "fail" else None

    emu.fault_policy = policy
    emu.inject(Fault.status(429))
    assert send(client, "fail").status_code == 429  # the queue goes first
    assert send(client, "fail").status_code == 503
    assert send(client, "pass").status_code == 200
    assert [r.message for r in seen] == ["fail", "pass"]
    assert all(r.status is None and r.authorized for r in seen)


def test_fault_constructors_validate() -> None:
    with pytest.raises(ValueError, match="status"):
        Fault.status(99)
    with pytest.raises(ValueError, match="seconds"):
        Fault.latency(-1)
    with pytest.raises(TypeError):
        DevicEmulator().inject("boom")  # type: ignore[arg-type]
    assert json.loads(Fault.status(502).body or b"") == {
        "success": False,
        "error": {"message": "Bad Gateway", "code": "BAD_GATEWAY"},
    }
    assert Fault.status(429).body == (
        b'{"statusCode": 429, "error": "TENANT_LIMIT_EXCEEDED", '
        b'"message": "Rate limit exceeded"}'
    )


TURN_RUNNING_KINDS = {"latency", "drop_after_processing", "read_timeout"}


@pytest.mark.parametrize("kind", get_args(FaultKind))
def test_every_fault_kind_has_one_effect_on_each_face(kind: FaultKind) -> None:
    fault = Fault(kind=kind, code=503, body=b"")
    transport, server = fault.effect("transport"), fault.effect("server")
    assert fault.runs_turn is (kind in TURN_RUNNING_KINDS)
    assert transport.runs_turn is server.runs_turn is fault.runs_turn
    # Only a refused connection never reaches the in-process face; the server
    # has already accepted it, so there it is a dropped connection.
    assert transport.arrives is (kind != "connect_error")
    assert server.arrives
    assert server.action != "connect_error"
    assert Fault(kind="status", code=500).runs_turn


# ----------------------------------------------------------------- dialects


def test_dialects_are_flat_and_platform() -> None:
    emu = DevicEmulator(random_seed=7)
    assert emu.dialect == "flat"
    assert emu.random_seed == 7
    assert repr(emu) == (
        "DevicEmulator(dialect='flat', random_seed=7, base_path='/v1')"
    )
    with pytest.raises(ValueError, match="'flat' or 'platform'"):
        DevicEmulator(dialect="seed")  # type: ignore[arg-type]


def test_cli_names_the_dialects_and_the_random_seed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as excinfo:
        cli_main(["--dialect", "seed"])
    assert excinfo.value.code == 2
    assert "'flat', 'platform'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as excinfo:
        cli_main(["--help"])
    assert excinfo.value.code == 0
    assert "--random-seed" in capsys.readouterr().out


# -------------------------------------------------------------- reply scripts


def test_reply_mapping_overrides_and_deletes_fields(
    emu: DevicEmulator, client: httpx.Client
) -> None:
    emu.add_assistant(
        "scripted",
        lambda conversation: {
            "message": f"scripted {conversation.turn}",
            "tokens_used": 7,
            "citations": ["doc-1"],
            "timestamp": None,
        },
    )
    body = send(client, "hi", assistant="scripted").json()
    assert body == {
        "chatUuid": CHAT_0,
        "message": "scripted 1",
        "tokens_used": 7,
        "citations": ["doc-1"],
    }
    assert emu.conversations[CHAT_0][-1] == {
        "role": "assistant",
        "content": "scripted 1",
    }


def test_reply_mapping_can_fork_the_conversation(
    emu: DevicEmulator, client: httpx.Client
) -> None:
    emu.add_assistant(
        "helper",
        lambda c: {"chatUuid": "forked-1"} if c.message == "fork" else "plain",
    )
    chat = send(client, "start").json()["chatUuid"]
    forked = send(client, "fork", chat).json()
    assert forked["chatUuid"] == "forked-1"
    assert forked["message"] == "Reply 2 from helper: fork"
    assert emu.conversations["forked-1"] == emu.conversations[chat]
    assert send(client, "go on", "forked-1").json()["message"] == "plain"
    assert len(emu.conversations["forked-1"]) == 6
    assert len(emu.conversations[chat]) == 4


def test_platform_reply_mapping_updates_the_last_assistant_message() -> None:
    emu = DevicEmulator(
        api_key=API_KEY,
        dialect="platform",
        assistants={
            "helper": lambda c: {
                "message": "custom",
                "timestamp": None,
                "messageTokenUsage": None,
                "citations": ["doc-1"],
            }
        },
    )
    with httpx.Client(
        transport=emu.transport(), base_url=emu.base_url, headers=AUTH
    ) as c:
        user, reply = send(c, "hi").json()
    assert "timestamp" in user
    assert reply == {
        "uid": reply["uid"],
        "role": "assistant",
        "content": {"message": "custom"},
        "chatUid": user["chatUid"],
        "citations": ["doc-1"],
    }


def test_a_failing_reply_function_is_a_500_and_leaves_no_turn(
    emu: DevicEmulator, client: httpx.Client
) -> None:
    def broken(conversation: Conversation) -> str:
        raise RuntimeError("scripted failure")

    emu.add_assistant("broken", broken)
    response = send(client, "hi", assistant="broken")
    assert response.status_code == 500
    assert response.json()["error"] == {
        "message": "The reply function of assistant 'broken' raised "
        "RuntimeError: scripted failure",
        "code": "INTERNAL_ERROR",
    }
    assert emu.conversations == {}


# --------------------------------------------------------- hostile ids


HOSTILE_IDS = ["../admin", "a b", "x?y#z", "ü", "a/b", "%41"]


@pytest.mark.parametrize("face", FACES, indirect=True)
def test_hostile_assistant_ids_arrive_decoded(
    emu: DevicEmulator, face: httpx.Client
) -> None:
    for assistant in HOSTILE_IDS:
        response = send(face, "hi", assistant=assistant)
        assert response.status_code == 200, assistant
        assert response.json()["message"] == f"Reply 1 from {assistant}: hi"
    records = emu.requests
    assert [r.assistant_id for r in records] == HOSTILE_IDS
    assert records[0].path == "/v1/assistants/..%2Fadmin/messages"
    assert records[2].path == "/v1/assistants/x%3Fy%23z/messages"
    assert all(r.query == "" for r in records)


# ------------------------------------------------------------------ server


@pytest.mark.allow_hosts(["127.0.0.1"])
def test_close_frees_the_port_and_is_idempotent() -> None:
    emu = DevicEmulator(api_key=API_KEY)
    server = emu.serve()
    assert isinstance(server, EmulatorServer)
    assert server.host == "127.0.0.1"
    assert server.base_url == f"http://127.0.0.1:{server.port}/v1"
    port = server.port
    with httpx.Client(base_url=server.base_url, headers=AUTH) as c:
        assert send(c, "hi").status_code == 200
        server.close()
        server.close()
        assert server.closed
        with pytest.raises(httpx.TransportError):
            send(c, "after close")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))
        probe.listen()
    with (
        emu.serve(port=port) as again,
        httpx.Client(base_url=again.base_url, headers=AUTH) as c,
    ):
        assert again.port == port
        assert send(c, "back").status_code == 200


@pytest.mark.parametrize(
    "host",
    [ALL_INTERFACES, "192.168.1.10", "127.0.0.1.example.com", "example.com", "::"],
)
def test_serve_refuses_non_loopback_hosts(host: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        DevicEmulator().serve(host=host)


def test_loopback_hosts() -> None:
    loopback = ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "LOCALHOST"]
    remote = ["", ALL_INTERFACES, "10.0.0.1", "localhost.evil.com", "127.0.0.1.nip.io"]
    for host in loopback:
        assert is_loopback_host(host), host
    for host in remote:
        assert not is_loopback_host(host), host
    # The emulator keeps its own copy of the rule; it must agree with the client's.
    for host in [*loopback, *remote, "127.0.0.1.example.com", " ::1 ", "::"]:
        assert is_loopback_host(host) == _wire.is_loopback_host(host), host


# --------------------------------------------------------------------- CLI


@pytest.mark.allow_hosts(["127.0.0.1"])
@pytest.mark.parametrize(
    "stop", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"]
)
def test_cli_serves_until_interrupted(stop: signal.Signals) -> None:
    with served_cli("--api-key", "cli-key") as (process, line):
        match = re.fullmatch(
            r"Devic emulator listening on (http://127\.0\.0\.1:(\d+)/v1) "
            r"\(API key: cli-key\)",
            line,
        )
        assert match, line
        assert int(match.group(2)) > 0
        response = httpx.post(
            f"{match.group(1)}/assistants/helper/messages",
            json={"message": "hi"},
            headers={"Authorization": "Bearer cli-key"},
        )
        assert response.status_code == 200
        assert response.json()["message"] == "Reply 1 from helper: hi"
        process.send_signal(stop)
        _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr


@contextlib.contextmanager
def served_cli(*args: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """`python -m langchain_devic.testing --port 0 *args`, and its first line.

    The process is killed on the way out if it still runs.
    """
    process = subprocess.Popen(
        [sys.executable, "-m", "langchain_devic.testing", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        yield process, process.stdout.readline().strip()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_cli_refuses_non_loopback_hosts(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as excinfo:
        cli_main(["--host", ALL_INTERFACES])
    assert excinfo.value.code == 2
    assert "loopback" in capsys.readouterr().err


# ------------------------------------------------------------------ layout


TESTING = Path(langchain_devic.testing.__file__).parent
PACKAGE = "langchain_devic.testing"
#: What the emulator must never import: the client it is meant to judge.
CLIENT_MODULES = {
    "langchain_devic._wire",
    "langchain_devic._client",
    "langchain_devic.chat_models",
}


def module_name(path: Path) -> str:
    return PACKAGE if path.stem == "__init__" else f"{PACKAGE}.{path.stem}"


def imports_of(path: Path) -> list[tuple[str, list[str]]]:
    """Every import in a file (type-checking and function-level ones too)."""
    found: list[tuple[str, list[str]]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.extend((alias.name, []) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"relative import in {path.name}"
            assert node.module is not None
            found.append((node.module, [alias.name for alias in node.names]))
    return found


def imported_modules(module: str, names: list[str]) -> set[str]:
    """`module`, and each imported name that is itself a module of the package."""
    modules = {module}
    modules.update(
        f"{module}.{name}"
        for name in names
        if (TESTING / f"{name}.py").exists() and module == PACKAGE
    )
    modules.update(f"{module}.{name}" for name in names if module == "langchain_devic")
    return modules


def test_the_emulator_imports_nothing_of_the_client() -> None:
    files = sorted(TESTING.glob("*.py"))
    assert {f.stem for f in files} >= {
        "__init__",
        "__main__",
        "_core",
        "_faults",
        "_render",
        "_server",
        "_transport",
    }
    for path in files:
        for module, names in imports_of(path):
            reached = imported_modules(module, names)
            assert not reached & CLIENT_MODULES, f"{path.name} imports {module}"
            ours = [m for m in reached if m.split(".")[0] == "langchain_devic"]
            for name in ours:
                assert name == PACKAGE or name.startswith(f"{PACKAGE}."), (
                    f"{path.name} imports {name}: the emulator stands alone"
                )


def test_the_emulator_cli_uses_only_the_public_api() -> None:
    ours = [
        (module, names)
        for module, names in imports_of(TESTING / "__main__.py")
        if module.split(".")[0] == "langchain_devic"
    ]
    assert ours, "__main__ should import the emulator"
    for module, names in ours:
        assert module == PACKAGE, module
        assert set(names) <= set(langchain_devic.testing.__all__), names


def test_the_emulator_modules_import_each_other_without_a_cycle() -> None:
    graph = {
        module_name(path): {
            reached
            for module, names in imports_of(path)
            for reached in imported_modules(module, names)
            if reached == PACKAGE or reached.startswith(f"{PACKAGE}.")
        }
        - {module_name(path)}
        for path in TESTING.glob("*.py")
    }
    done: set[str] = set()

    def visit(node: str, path: tuple[str, ...]) -> None:
        assert node not in path, " -> ".join((*path, node))
        if node in done:
            return
        for successor in sorted(graph.get(node, set())):
            visit(successor, (*path, node))
        done.add(node)

    for node in sorted(graph):
        visit(node, ())
    # The faces and the pieces below them never reach back for the facade.
    for module in ("_core", "_faults", "_render", "_server", "_transport"):
        assert PACKAGE not in graph[f"{PACKAGE}.{module}"], module
