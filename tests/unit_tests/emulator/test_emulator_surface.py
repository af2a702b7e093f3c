"""Devic's surface beyond runs on the emulator: assistants, search, feedback."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest

from langchain_devic.testing import (
    READY_ASSISTANTS,
    CallTools,
    ClientCall,
    Conversation,
    DevicEmulator,
)

KEY = "surface-key"
EMULATOR = (sys.executable, "-m", "langchain_devic.testing", "--port", "0")
BANNER = re.compile(r"Devic emulator listening on (http://127\.0\.0\.1:\d+)/v1")
WEATHER_TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "description": "Weather", "parameters": {}},
}


def client_of(emu: DevicEmulator) -> httpx.Client:
    return httpx.Client(
        transport=emu.transport(),
        base_url="http://127.0.0.1/api/v1",
        headers={"Authorization": f"Bearer {KEY}"},
    )


def platform(**kwargs: Any) -> DevicEmulator:
    return DevicEmulator(api_key=KEY, dialect="platform", **kwargs)


def send(client: httpx.Client, assistant: str, **body: Any) -> str:
    response = client.post(f"/assistants/{assistant}/messages", json=body)
    assert response.status_code == 200, response.text
    return str(response.json()[-1]["chatUid"])


def test_assistants_list_get_create_update_delete() -> None:
    emu = platform(assistants=["support"])
    with client_of(emu) as client:
        listed = client.get("/assistants").json()
        assert [a["identifier"] for a in listed] == ["support"]
        assert {"name", "description", "state", "model", "provider"} <= set(listed[0])
        created = client.post(
            "/assistants", json={"name": "Billing Bot", "description": "Bills"}
        )
        assert created.status_code == 201
        identifier = created.json()["identifier"]
        assert identifier == "billing-bot"
        assert client.get(f"/assistants/{identifier}").json()["description"] == "Bills"
        patched = client.patch(
            f"/assistants/{identifier}", json={"state": "inactive", "model": "m2"}
        )
        assert patched.json()["state"] == "inactive"
        assert patched.json()["model"] == "m2"
        bad = client.patch(f"/assistants/{identifier}", json={"state": "asleep"})
        assert bad.status_code == 400
        # A created assistant answers messages with the default reply.
        chat = send(client, identifier, message="hi")
        assert emu.chat_owner(chat) == identifier
        assert client.delete(f"/assistants/{identifier}").status_code == 200
        assert client.get(f"/assistants/{identifier}").status_code == 404
        again = client.post(f"/assistants/{identifier}/messages", json={"message": "x"})
        assert again.status_code == 404
        assert client.post("/assistants", json={"description": "x"}).status_code == 400
        dup = client.post("/assistants", json={"name": "S", "identifier": "support"})
        assert dup.status_code == 409


def test_unknown_assistants_are_404_unless_any_is_accepted() -> None:
    strict = platform(assistants=["support"])
    with client_of(strict) as client:
        assert client.get("/assistants/nobody").status_code == 404
        response = client.post("/assistants/nobody/messages", json={"message": "x"})
        assert response.status_code == 404
        assert response.json()["error"] == "ASSISTANT_NOT_FOUND"
    # In-process default: any id is an assistant with the default reply.
    open_emu = platform()
    assert open_emu.accept_any_assistant
    with client_of(open_emu) as client:
        assert client.get("/assistants/anyone").json()["identifier"] == "anyone"
        send(client, "anyone", message="hi")
        assert [a["identifier"] for a in client.get("/assistants").json()] == ["anyone"]
    told = platform(assistants=["support"], accept_any_assistant=True)
    with client_of(told) as client:
        send(client, "other", message="hi")


def test_send_options_are_kept_and_filter_the_list_and_the_search() -> None:
    emu = platform()
    files = [{"name": "a.pdf", "donwloadUrl": "https://x/a.pdf", "fileType": "pdf"}]
    with client_of(emu) as client:
        first = send(
            client,
            "support",
            message="hello",
            tenantId="acme",
            subtenantId="u-1",
            userName="Ada",
            tags=["vip", "eu"],
            files=files,
            model="m1",
            provider="p1",
            skipSummarization=True,
            previousConversation=[{"message": "earlier", "role": "user"}],
        )
        second = send(client, "support", message="other", tenantId="globex")
        third = send(client, "helper", message="x", tags=["eu"], tenantId="acme")
        history = client.get(f"/assistants/support/chats/{first}").json()
        assert history["tenantId"] == "acme"
        assert history["subtenantId"] == "u-1"
        assert history["userName"] == "Ada"
        assert history["tags"] == ["vip", "eu"]
        assert history["llm"] == "m1"
        assert history["provider"] == "p1"
        contents = [m["content"] for m in history["chatContent"]]
        assert contents[0] == {"message": "earlier"}
        assert contents[1] == {"message": "hello", "files": files}

        def ids(body: dict[str, Any]) -> list[str]:
            return [h["chatUID"] for h in body["histories"]]

        listed = client.get("/assistants/support/chats", params={"tenantId": "acme"})
        assert ids(listed.json()) == [first]
        sub = client.get("/assistants/support/chats", params={"subtenantId": "nope"})
        assert ids(sub.json()) == []
        search = client.post("/assistants/chats", json={"tags": ["eu"]})
        assert ids(search.json()) == [third, first]
        scoped = client.post(
            "/assistants/chats",
            json={"tags": ["eu"], "assistantSpecializationIdentifier": "support"},
        )
        assert ids(scoped.json()) == [first]
        tenant = client.post("/assistants/chats", json={"tenantId": "globex"})
        assert ids(tenant.json()) == [second]
        now_ms = int(time.time() * 1000)
        future = client.post(
            "/assistants/chats", json={"createdAfter": now_ms + 60_000}
        )
        assert ids(future.json()) == []
        past = client.post("/assistants/chats", json={"createdBefore": now_ms + 60_000})
        assert set(ids(past.json())) == {first, second, third}
        paged = client.post(
            "/assistants/chats", params={"limit": 1, "omitContent": "true"}, json={}
        )
        assert paged.json()["total"] == 3
        assert paged.json()["hasMore"] is True
        assert "chatContent" not in paged.json()["histories"][0]
        wrong = client.post("/assistants/chats", json={"tags": "eu"})
        assert wrong.status_code == 400
        bad = client.post(
            "/assistants/support/messages", json={"message": "x", "tags": "eu"}
        )
        assert bad.status_code == 400


def test_feedback_is_kept_per_message_and_listed() -> None:
    emu = platform()
    with client_of(emu) as client:
        chat = send(client, "support", message="hi")
        history = client.get(f"/assistants/support/chats/{chat}").json()
        reply = history["chatContent"][-1]["uid"]
        path = f"/assistants/support/chats/{chat}/feedback"
        assert client.get(path).json() == []
        given = client.post(
            path,
            json={"messageId": reply, "feedback": True, "feedbackComment": "good"},
        )
        assert given.status_code == 201
        entry = given.json()
        assert entry["requestId"] == reply
        assert entry["feedback"] is True
        assert entry["chatUID"] == chat
        changed = client.post(path, json={"messageId": reply, "feedback": False})
        assert changed.json()["_id"] == entry["_id"]
        listed = client.get(path).json()
        assert len(listed) == 1
        assert listed[0]["feedback"] is False
        assert client.post(path, json={"messageId": "nope"}).status_code == 400
        assert client.post(path, json={"feedback": True}).status_code == 400
        missing = client.get("/assistants/support/chats/no-chat/feedback")
        assert missing.status_code == 404


def test_answers_are_utf8_without_escapes() -> None:
    emu = platform()
    with client_of(emu) as client:
        response = client.post(
            "/assistants/support/messages", json={"message": "héllo ünïcode ✓"}
        )
        assert "charset=utf-8" in response.headers["content-type"]
        assert "héllo ünïcode ✓".encode() in response.content
        assert b"\\u" not in response.content


def test_chat_ids_are_new_per_start_unless_seeded() -> None:
    def first_chat(**kwargs: Any) -> str:
        with client_of(platform(**kwargs)) as client:
            return send(client, "support", message="hi")

    assert first_chat(random_seed=None) != first_chat(random_seed=None)
    assert first_chat(random_seed=7) == first_chat(random_seed=7)


def test_an_expired_realtime_view_is_completed_and_refuses_tool_responses() -> None:
    def weather(conversation: Conversation) -> Any:
        if not conversation.tool_results:
            return CallTools(ClientCall("get_weather", {"city": "Paris"}, id="c1"))
        return "sunny"

    emu = platform(assistants={"weather": weather}, realtime_ttl=0.2)
    with client_of(emu) as client:
        started = client.post(
            "/assistants/weather/messages",
            params={"async": "true"},
            json={"message": "weather?", "tools": [WEATHER_TOOL]},
        )
        chat = started.json()["chatUid"]
        emu.wait_idle()
        view = client.get(f"/assistants/weather/chats/{chat}/realtime").json()
        assert view["status"] == "waiting_for_tool_response"
        time.sleep(0.3)
        expired = client.get(f"/assistants/weather/chats/{chat}/realtime").json()
        assert expired["status"] == "completed"
        assert expired["pendingToolCalls"] == []
        answer = client.post(
            f"/assistants/weather/chats/{chat}/tool-response",
            json={"responses": [{"tool_call_id": "c1", "role": "tool", "content": 1}]},
        )
        assert answer.status_code == 400
        assert answer.json()["error"] == "REALTIME_EXPIRED"
        stopped = client.post(f"/assistants/weather/chats/{chat}/stop")
        assert stopped.status_code == 201


@pytest.mark.allow_hosts(["127.0.0.1"])
def test_the_command_line_serves_ready_assistants_only_and_says_what_to_set() -> None:
    process = subprocess.Popen(
        [*EMULATOR, "--dialect", "platform", "--api-key", KEY],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(4 + len(READY_ASSISTANTS))]
        match = BANNER.match(lines[0])
        assert match, lines[0]
        origin = match.group(1)
        assert f"DEVIC_BASE_URL={origin}  (the origin" in lines[1]
        assert f"DEVIC_BASE_URL={origin}/api/v1" in lines[2]
        assert "".join(lines).count(KEY) == 1
        for name in READY_ASSISTANTS:
            assert any(line.split()[:1] == [name] for line in lines[4:]), name
        with httpx.Client(
            base_url=f"{origin}/api/v1",
            headers={"Authorization": f"Bearer {KEY}"},
            timeout=5,
        ) as client:
            listed = [a["identifier"] for a in client.get("/assistants").json()]
            assert listed == list(READY_ASSISTANTS)
            assert client.get("/assistants/nobody").status_code == 404
            refused = client.post("/assistants/nobody/messages", json={"message": "x"})
            assert refused.status_code == 404
            failing = client.post("/assistants/failing/messages", json={"message": "x"})
            assert failing.status_code == 500
    finally:
        process.terminate()
        process.wait(timeout=10)
