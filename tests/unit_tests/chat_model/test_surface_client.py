"""Devic's surface from ChatDevic: assistants, chat search, feedback, message ids.

Against the in-process emulator (no sockets), sync and async, plus the read
and write rules: reads are retried, a feedback post is never sent again once
Devic may have taken it.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from langchain_core.messages import AIMessage, HumanMessage

from langchain_devic import ChatDevic, DevicNotFoundError
from langchain_devic._surface_wire import parse_assistant_list, parse_feedback_list
from langchain_devic.errors import DevicError
from langchain_devic.testing import DevicEmulator, Fault
from tests.unit_tests.conftest import API_KEY, ASSISTANT, make_model

ASSISTANT_KEYS = {"assistant_id", "name", "description", "state", "model", "provider"}


@pytest.fixture
def emulator() -> DevicEmulator:
    emulator = DevicEmulator(
        api_key=API_KEY, random_seed=1, assistants={ASSISTANT: None, "billing": None}
    )
    emulator.add_assistant(
        "billing",
        profile={"name": "Billing desk", "description": "Invoices and refunds."},
    )
    return emulator


def routes(emulator: DevicEmulator, route: str) -> list[Any]:
    return [r for r in emulator.requests if r.route == route]


# -------------------------------------------------------------------- assistants


def test_list_assistants_gives_plain_dicts(emulator: DevicEmulator) -> None:
    assistants = make_model(emulator).list_assistants()
    by_id = {a["assistant_id"]: a for a in assistants}
    assert set(by_id) == {ASSISTANT, "billing"}
    assert all(set(a) == ASSISTANT_KEYS for a in assistants)
    assert by_id["billing"]["name"] == "Billing desk"
    assert by_id["billing"]["description"] == "Invoices and refunds."
    assert by_id["billing"]["state"] == "active"


def test_get_assistant_defaults_to_the_models_own(emulator: DevicEmulator) -> None:
    model = make_model(emulator)
    assert model.get_assistant()["assistant_id"] == ASSISTANT
    assert model.get_assistant("billing")["name"] == "Billing desk"
    with pytest.raises(DevicNotFoundError):
        model.get_assistant("nobody")


def test_assistant_answers_are_read_bare_or_enveloped() -> None:
    bare = b'[{"identifier": "a", "name": "A"}, {"name": "no id"}, 3]'
    enveloped = b'{"success": true, "data": [{"identifier": "a", "name": "A"}]}'
    expected = [
        {
            "assistant_id": "a",
            "name": "A",
            "description": None,
            "state": None,
            "model": None,
            "provider": None,
        }
    ]
    assert parse_assistant_list(bare, secret=None) == expected
    assert parse_assistant_list(enveloped, secret=None) == expected
    with pytest.raises(DevicError, match="not a list"):
        parse_assistant_list(b'{"x": 1}', secret=None)
    assert parse_feedback_list(b'{"data": [{"requestId": "m"}]}', secret=None) == [
        {"requestId": "m"}
    ]


def test_reads_are_retried(emulator: DevicEmulator) -> None:
    emulator.inject(Fault.status(503).on("assistants"))
    assert make_model(emulator).list_assistants()
    assert len(routes(emulator, "assistants")) == 2


async def test_async_assistants(emulator: DevicEmulator) -> None:
    model = make_model(emulator)
    assert {a["assistant_id"] for a in await model.alist_assistants()} == {
        ASSISTANT,
        "billing",
    }
    assert (await model.aget_assistant("billing"))["name"] == "Billing desk"


# ------------------------------------------------------------------------ search


def test_search_by_tags_and_this_assistant(emulator: DevicEmulator) -> None:
    model = make_model(emulator, run_mode="sync")
    tagged = model.invoke("a", request_tags=["vip"]).response_metadata["chat_uuid"]
    model.invoke("b", request_tags=["other"])
    other = make_model(emulator, model="billing", run_mode="sync")
    theirs = other.invoke("c", request_tags=["vip"]).response_metadata["chat_uuid"]
    found = model.search_chats(tags=["vip"])
    assert [c["chat_uuid"] for c in found] == [tagged]
    assert set(found[0]) == {"chat_uuid", "name", "created_at", "updated_at"}
    everywhere = model.search_chats(tags=["vip"], all_assistants=True)
    assert {c["chat_uuid"] for c in everywhere} == {tagged, theirs}
    body = routes(emulator, "search")[0].json
    assert body == {"assistantSpecializationIdentifier": ASSISTANT, "tags": ["vip"]}
    assert routes(emulator, "search")[1].json == {"tags": ["vip"]}


def test_search_by_creation_time_and_paging(emulator: DevicEmulator) -> None:
    model = make_model(emulator, run_mode="sync")
    for text in ("one", "two", "three"):
        model.invoke(text)
    now = datetime.now(timezone.utc)
    assert len(model.search_chats(created_after=now - timedelta(hours=1))) == 3
    assert model.search_chats(created_after=now + timedelta(hours=1)) == []
    assert model.search_chats(created_before=now - timedelta(hours=1)) == []
    assert len(model.search_chats(limit=2)) == 2
    assert len(model.search_chats(limit=2, offset=2)) == 1
    record = routes(emulator, "search")[0]
    assert isinstance(record.json["createdAfter"], int)
    assert "omitContent=true" in record.query
    with pytest.raises(ValueError, match="limit"):
        model.search_chats(limit=0)
    with pytest.raises(ValueError, match="tags"):
        model.search_chats(tags="vip")  # type: ignore[arg-type]


async def test_async_search(emulator: DevicEmulator) -> None:
    model = make_model(emulator, run_mode="sync")
    await model.ainvoke("hello", request_tags=["t"])
    assert len(await model.asearch_chats(tags=["t"])) == 1


# ----------------------------------------------------------------------- feedback


def test_load_chat_messages_carry_devics_message_ids(emulator: DevicEmulator) -> None:
    model = make_model(emulator, run_mode="sync")
    chat = model.invoke("hello").response_metadata["chat_uuid"]
    messages = model.load_chat(chat)
    assert isinstance(messages[0], HumanMessage)
    assert isinstance(messages[-1], AIMessage)
    ids = [m.id for m in messages]
    assert all(isinstance(i, str) and i for i in ids)
    assert len(set(ids)) == len(ids)


def test_submit_and_list_feedback(emulator: DevicEmulator) -> None:
    model = make_model(emulator, run_mode="sync")
    chat = model.invoke("hello").response_metadata["chat_uuid"]
    reply_id = str(model.load_chat(chat)[-1].id)
    entry = model.submit_feedback(
        chat, reply_id, positive=True, comment="Spot on.", data={"score": 5}
    )
    assert entry["feedback"] is True
    assert entry["feedbackComment"] == "Spot on."
    sent = routes(emulator, "feedback")[0].json
    assert sent == {
        "messageId": reply_id,
        "feedback": True,
        "feedbackComment": "Spot on.",
        "feedbackData": {"score": 5},
    }
    listed = model.list_feedback(chat)
    assert len(listed) == 1
    assert listed[0]["feedbackData"] == {"score": 5}
    only_comment = model.submit_feedback(chat, reply_id, comment="Second thoughts.")
    assert "feedback" not in routes(emulator, "feedback")[-1].json
    assert only_comment["feedbackComment"] == "Second thoughts."


async def test_async_feedback(emulator: DevicEmulator) -> None:
    model = make_model(emulator, run_mode="sync")
    chat = (await model.ainvoke("hello")).response_metadata["chat_uuid"]
    reply_id = str((await model.aload_chat(chat))[-1].id)
    await model.asubmit_feedback(chat, reply_id, positive=False)
    assert [e["feedback"] for e in await model.alist_feedback(chat)] == [False]


def test_feedback_is_checked_before_any_request(emulator: DevicEmulator) -> None:
    model = make_model(emulator)
    with pytest.raises(ValueError, match="message_id"):
        model.submit_feedback("chat-1", " ")
    with pytest.raises(ValueError, match="chat_uuid"):
        model.submit_feedback("../x", "m1")
    assert emulator.requests == []


def test_feedback_is_never_posted_twice_after_an_unknown_outcome(
    emulator: DevicEmulator,
) -> None:
    model = make_model(emulator, run_mode="sync")
    chat = model.invoke("hello").response_metadata["chat_uuid"]
    reply_id = str(model.load_chat(chat)[-1].id)
    emulator.inject(Fault.drop_after_processing().on("feedback"))
    with pytest.raises(DevicError, match="not sent again") as info:
        model.submit_feedback(chat, reply_id, positive=True)
    assert info.value.is_retryable is False
    assert len(routes(emulator, "feedback")) == 1
    assert len(model.list_feedback(chat)) == 1  # it was written


def test_feedback_is_sent_again_when_devic_certainly_did_not_take_it(
    emulator: DevicEmulator,
) -> None:
    model = make_model(emulator, run_mode="sync")
    chat = model.invoke("hello").response_metadata["chat_uuid"]
    reply_id = str(model.load_chat(chat)[-1].id)
    emulator.inject(Fault.status(429, retry_after=0).on("feedback"))
    assert model.submit_feedback(chat, reply_id, positive=True)["feedback"] is True
    assert len(routes(emulator, "feedback")) == 2


def test_feedback_over_mock_transport_with_an_envelope() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.method == "POST":
            return httpx.Response(201, json={"success": True, "data": {"_id": "f1"}})
        return httpx.Response(200, json={"success": True, "data": [{"_id": "f1"}]})

    model = ChatDevic(
        model="a",
        api_key=API_KEY,
        base_url="https://devic.example.com/api/v1",
        http_client=httpx.Client(transport=httpx.MockTransport(handler)),
    )
    assert model.submit_feedback("c1", "m1", positive=True) == {"_id": "f1"}
    assert model.list_feedback("c1") == [{"_id": "f1"}]
    assert str(seen[0].url) == (
        "https://devic.example.com/api/v1/assistants/a/chats/c1/feedback"
    )
