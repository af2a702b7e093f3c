"""The base URL rule: with none set, each route goes where Devic serves it.

No `base_url` and no `DEVIC_BASE_URL`: the one call goes to
`https://api.devic.ai/v1`, everything else (runs, chats, assistants, search,
feedback) to `https://api.devic.ai/api/v1`. A base URL that is set is used as
given for every route. Checked with `httpx.MockTransport` (no network).
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from langchain_devic import ChatDevic
from tests.unit_tests.platform_views import CHAT, msg, view

KEY = "unit-secret-TOKEN-77a1"


class FakeDevic:
    """Answers every route a call makes, and records each URL."""

    def __init__(self) -> None:
        self.urls: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        self.urls.append(f"{request.method} {url.copy_with(query=None)}")
        path = url.path
        answer: Any
        if path.endswith("/messages"):
            if url.params.get("async") == "true":
                answer = {"chatUid": CHAT}
            else:
                answer = {"chatUuid": CHAT, "message": "hi", "tokens_used": 3}
        elif path.endswith("/stream"):
            return httpx.Response(404, json={"message": "no stream"})
        elif path.endswith("/realtime"):
            answer = view(
                "completed", msg("u1", "user", "hello"), msg("a1", "assistant", "hi")
            )
        elif path.endswith("/feedback"):
            answer = [] if request.method == "GET" else {"requestId": "a1"}
        elif path.endswith("/assistants/chats"):
            answer = {"histories": []}
        elif path.endswith("/assistants"):
            answer = [{"identifier": "support", "name": "Support"}]
        elif "/chats/" in path:
            answer = {"chatUID": CHAT, "chatContent": [msg("a1", "assistant", "hi")]}
        elif path.endswith("/chats"):
            answer = {"histories": []}
        else:
            answer = {"identifier": "support", "name": "Support"}
        return httpx.Response(200, json=answer)


def model_with(fake: FakeDevic, **fields: Any) -> ChatDevic:
    return ChatDevic(
        assistant_id="support",
        api_key=KEY,
        http_client=httpx.Client(transport=httpx.MockTransport(fake)),
        poll_interval=0.01,
        **fields,
    )


def every_route(model: ChatDevic) -> None:
    model.invoke("hello")  # the one call
    assert "".join(str(c.content) for c in model.stream("hello")) == "hi"
    model.load_chat(CHAT)
    model.list_chats()
    model.stop_chat(CHAT)
    model.list_assistants()
    model.get_assistant()
    model.search_chats()
    model.list_feedback(CHAT)
    model.submit_feedback(CHAT, "a1", positive=True)


def test_unset_base_sends_the_one_call_to_v1_and_the_rest_to_api_v1(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DEVIC_BASE_URL", raising=False)
    fake = FakeDevic()
    every_route(model_with(fake))
    seed = "POST https://api.devic.ai/v1/assistants/support/messages"
    assert fake.urls[0] == seed
    assert fake.urls.count(seed) == 1
    rest = fake.urls[1:]
    assert rest
    assert all(" https://api.devic.ai/api/v1/" in u for u in rest), rest
    assert "POST https://api.devic.ai/api/v1/assistants/support/messages" in rest
    assert "GET https://api.devic.ai/api/v1/assistants" in rest
    assert "POST https://api.devic.ai/api/v1/assistants/chats" in rest
    feedback = f"https://api.devic.ai/api/v1/assistants/support/chats/{CHAT}/feedback"
    assert f"POST {feedback}" in rest
    assert f"GET {feedback}" in rest


@pytest.mark.parametrize(
    "base", ["https://devic.example.com/api/v1", "https://proxy.example/v1"]
)
def test_a_set_base_is_used_for_every_route(
    monkeypatch: pytest.MonkeyPatch, base: str
) -> None:
    monkeypatch.delenv("DEVIC_BASE_URL", raising=False)
    fake = FakeDevic()
    every_route(model_with(fake, base_url=base))
    assert len(fake.urls) >= 10
    assert all(u.split(" ", 1)[1].startswith(base + "/") for u in fake.urls)


def test_the_environment_base_is_used_for_every_route(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base = "https://devic.example.com/api/v1"
    monkeypatch.setenv("DEVIC_BASE_URL", base)
    fake = FakeDevic()
    every_route(model_with(fake))
    assert all(u.split(" ", 1)[1].startswith(base + "/") for u in fake.urls)


def test_stream_with_the_default_base_follows_the_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """It used to raise DevicNotFoundError pointing at /api/v1."""
    monkeypatch.delenv("DEVIC_BASE_URL", raising=False)
    fake = FakeDevic()
    chunks = list(model_with(fake).stream("hello"))
    assert "".join(str(c.content) for c in chunks) == "hi"
    assert chunks[-1].response_metadata["chat_uuid"] == CHAT
    sent = [u for u in fake.urls if u.startswith("POST")]
    assert sent == ["POST https://api.devic.ai/api/v1/assistants/support/messages"]


async def test_async_calls_follow_the_same_rule(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DEVIC_BASE_URL", raising=False)
    fake = FakeDevic()
    model = ChatDevic(
        assistant_id="support",
        api_key=KEY,
        http_async_client=httpx.AsyncClient(transport=httpx.MockTransport(fake)),
        poll_interval=0.01,
    )
    await model.ainvoke("hello")
    async for _ in model.astream("hello"):
        pass
    await model.alist_assistants()
    assert fake.urls[0].startswith("POST https://api.devic.ai/v1/")
    assert all("https://api.devic.ai/api/v1/" in u for u in fake.urls[1:])
    assert json.dumps(fake.urls).count("/v1/assistants/support/messages") == 2
