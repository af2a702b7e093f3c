"""Devic's message options, files and native history, as they reach the wire.

Every send a call makes (the one call, a platform run's send) carries the
options set by keyword, by `configurable` or by field (in that precedence);
an option left `None` is not sent. File and image blocks with a URL become
Devic's `files`; `history="native"` sends earlier turns as
`previousConversation`.
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from langchain_devic import ChatDevic, DevicAssistantTool
from langchain_devic._convert import (
    CALL_KWARGS,
    OPTIONS,
    build_devic_request,
    file_entry,
)
from langchain_devic._devic_tool import CHAT_MODEL_FIELDS
from langchain_devic.testing import DevicEmulator
from tests.unit_tests.conftest import ASSISTANT, make_model

#: One value per option, and the field and value Devic must receive.
VALUES: dict[str, tuple[Any, str, Any]] = {
    "tenant_id": ("acme", "tenantId", "acme"),
    "subtenant_id": ("acme-eu", "subtenantId", "acme-eu"),
    "user_name": ("Ada", "userName", "Ada"),
    "request_tags": (("vip", "q3"), "tags", ["vip", "q3"]),
    "enabled_tools": (["search"], "enabledTools", ["search"]),
    "skip_summarization": (True, "skipSummarization", True),
    "llm_provider": ("openai", "provider", "openai"),
    "llm_model": ("gpt-4.1-mini", "model", "gpt-4.1-mini"),
}


def sends(emulator: DevicEmulator) -> list[Any]:
    """The requests that posted a message (the one call and run sends)."""
    return [r for r in emulator.requests if r.route == "messages"]


def test_every_option_is_a_field_a_call_keyword_and_a_tool_field() -> None:
    assert set(VALUES) == set(OPTIONS)
    for name in OPTIONS:
        assert ChatDevic.model_fields[name].default is None
        assert name in CALL_KWARGS
        assert name in CHAT_MODEL_FIELDS


@pytest.mark.parametrize("name", sorted(VALUES))
def test_a_field_reaches_the_one_call(emulator: DevicEmulator, name: str) -> None:
    value, wire, expected = VALUES[name]
    model = make_model(emulator, run_mode="sync", **{name: value})
    model.invoke("hello")
    body = sends(emulator)[-1].json
    assert body[wire] == expected


@pytest.mark.parametrize("name", sorted(VALUES))
def test_a_keyword_reaches_a_platform_run_send(
    emulator: DevicEmulator, name: str
) -> None:
    value, wire, expected = VALUES[name]
    model = make_model(emulator)
    text = "".join(str(c.content) for c in model.stream("hello", **{name: value}))
    assert text
    record = sends(emulator)[-1]
    assert "async=true" in record.query
    assert record.json[wire] == expected


def test_options_left_none_are_not_sent(emulator: DevicEmulator) -> None:
    model = make_model(emulator, run_mode="sync")
    model.invoke("hello")
    assert set(sends(emulator)[-1].json) == {"message", "chatUuid"}


def test_skip_summarization_is_also_in_the_async_query(
    emulator: DevicEmulator,
) -> None:
    model = make_model(emulator, skip_summarization=True)
    list(model.stream("hello"))
    assert "skipSummarization=true" in sends(emulator)[-1].query
    emulator.reset()
    model.invoke("hello")  # the one call: the body only
    record = sends(emulator)[-1]
    assert "skipSummarization" not in (record.query or "")
    assert record.json["skipSummarization"] is True


def test_false_is_sent_but_not_in_the_query(emulator: DevicEmulator) -> None:
    model = make_model(emulator, skip_summarization=False)
    list(model.stream("hello"))
    record = sends(emulator)[-1]
    assert record.json["skipSummarization"] is False
    assert "skipSummarization" not in record.query


def test_precedence_keyword_over_configurable_over_field(
    emulator: DevicEmulator,
) -> None:
    model = make_model(emulator, run_mode="sync", tenant_id="field")
    model.invoke("a")
    assert sends(emulator)[-1].json["tenantId"] == "field"
    config: Any = {"configurable": {"tenant_id": "config", "user_name": "Bo"}}
    model.invoke("b", config=config)
    assert sends(emulator)[-1].json["tenantId"] == "config"
    assert sends(emulator)[-1].json["userName"] == "Bo"
    model.invoke("c", config=config, tenant_id="kwarg")
    assert sends(emulator)[-1].json["tenantId"] == "kwarg"


async def test_configurable_options_reach_async_calls(
    emulator: DevicEmulator,
) -> None:
    model = make_model(emulator, run_mode="sync")
    config: Any = {"configurable": {"request_tags": ["a"]}}
    await model.ainvoke("hi", config=config)
    async for _ in model.astream("hi", config=config):
        pass
    await model.abatch(["x"], config=config)
    assert [r.json["tags"] for r in sends(emulator)] == [["a"], ["a"], ["a"]]


def test_every_send_of_a_continued_call_carries_them(
    emulator: DevicEmulator,
) -> None:
    model = make_model(emulator, tenant_id="acme")
    first = model.invoke("one")
    chat = first.response_metadata["chat_uuid"]
    list(model.stream("two", chat_uuid=chat))
    bodies = [r.json for r in sends(emulator)]
    assert len(bodies) == 2
    assert all(b["tenantId"] == "acme" for b in bodies)
    assert bodies[1]["chatUid"] == chat


def test_a_wrongly_typed_option_is_refused_before_any_request(
    emulator: DevicEmulator,
) -> None:
    model = make_model(emulator)
    with pytest.raises(ValueError, match="request_tags must be a list of strings"):
        model.invoke("hi", request_tags="vip")
    with pytest.raises(ValueError, match="skip_summarization must be a bool"):
        model.invoke("hi", skip_summarization="yes")
    with pytest.raises(ValueError, match="tenant_id must be a string"):
        model.invoke("hi", tenant_id=7)
    assert emulator.requests == []


def test_the_tool_sends_its_options_on_every_delegated_turn(
    emulator: DevicEmulator,
) -> None:
    model = make_model(emulator, tenant_id="acme", request_tags=["agent"])
    tool = DevicAssistantTool(name="helper", description="Helps.", chat_model=model)
    tool.invoke({"message": "first"})
    tool.invoke({"message": "second"})
    bodies = [r.json for r in sends(emulator)]
    assert len(bodies) == 2
    assert all(b["tenantId"] == "acme" and b["tags"] == ["agent"] for b in bodies)


def test_the_tool_takes_the_options_as_its_own_fields() -> None:
    tool = DevicAssistantTool(
        name="helper",
        description="Helps.",
        assistant_id=ASSISTANT,
        api_key="unit-secret-TOKEN-77a1",
        user_name="Ada",
        llm_model="m",
    )
    assert tool.chat_model.user_name == "Ada"
    assert tool.chat_model.llm_model == "m"


# ------------------------------------------------------------------------ files


def test_file_blocks_become_devic_files_in_block_order(
    emulator: DevicEmulator,
) -> None:
    model = make_model(emulator, run_mode="sync")
    message = HumanMessage(
        content=[
            {"type": "text", "text": "Compare these."},
            {"type": "file", "url": "https://f.example/docs/Q3%20report.pdf"},
            {
                "type": "image",
                "url": "https://f.example/i/123",
                "mime_type": "image/png",
                "filename": "chart.png",
            },
            {"type": "image_url", "image_url": {"url": "https://f.example/a.JPG"}},
        ]
    )
    model.invoke([message])
    body = sends(emulator)[-1].json
    assert body["message"] == "Compare these."
    assert body["files"] == [
        {
            "name": "Q3 report.pdf",
            "donwloadUrl": "https://f.example/docs/Q3%20report.pdf",
            "fileType": "pdf",
        },
        {
            "name": "chart.png",
            "donwloadUrl": "https://f.example/i/123",
            "fileType": "image/png",
        },
        {"name": "a.JPG", "donwloadUrl": "https://f.example/a.JPG", "fileType": "jpg"},
    ]


def test_file_name_rules() -> None:
    extras = file_entry(
        {"type": "file", "url": "https://x.example/y", "extras": {"filename": "z.csv"}}
    )
    assert extras == {
        "name": "z.csv",
        "donwloadUrl": "https://x.example/y",
        "fileType": "csv",
    }
    bare = file_entry({"type": "file", "url": "https://x.example/download"})
    assert bare == {"name": "download", "donwloadUrl": "https://x.example/download"}
    legacy = file_entry({"type": "image_url", "image_url": "https://x.example/p.gif"})
    assert legacy["name"] == "p.gif"
    assert legacy["fileType"] == "gif"


@pytest.mark.parametrize(
    "block",
    [
        {"type": "image", "base64": "iVBORw0KGgo=", "mime_type": "image/png"},
        {"type": "file", "data": "JVBERi0=", "mime_type": "application/pdf"},
        {"type": "file", "file_id": "file-123"},
        {
            "type": "image",
            "source_type": "base64",
            "data": "iVBO",
            "mime_type": "image/png",
        },
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
    ],
    ids=["base64", "data", "file_id", "v0-base64", "data-url"],
)
def test_inline_files_are_refused_before_any_request(
    emulator: DevicEmulator, block: dict[str, Any]
) -> None:
    model = make_model(emulator)
    message = HumanMessage(content=[{"type": "text", "text": "see"}, block])
    with pytest.raises(ValueError, match="Devic takes files by URL"):
        model.invoke([message])
    assert emulator.requests == []


def test_files_in_a_continued_chat_are_those_of_the_new_messages() -> None:
    earlier = HumanMessage(
        content=[
            {"type": "text", "text": "a"},
            {"type": "file", "url": "https://x/1.txt"},
        ]
    )
    reply = AIMessage(
        "ok", response_metadata={"chat_uuid": "c1", "assistant_id": ASSISTANT}
    )
    new = HumanMessage(
        content=[
            {"type": "text", "text": "b"},
            {"type": "file", "url": "https://x/2.txt"},
        ]
    )
    request = build_devic_request([earlier, reply, new], assistant_id=ASSISTANT)
    assert request.chat_uuid == "c1"
    assert request.fields == {
        "files": [
            {"name": "2.txt", "donwloadUrl": "https://x/2.txt", "fileType": "txt"}
        ]
    }


def test_an_ai_message_file_block_is_still_refused() -> None:
    ai = AIMessage(content=[{"type": "file", "url": "https://x/1.txt"}])
    with pytest.raises(ValueError, match="file"):
        build_devic_request([ai, HumanMessage("go")], assistant_id=ASSISTANT)


# ------------------------------------------------------------- native history


def test_native_history_sends_previous_conversation(emulator: DevicEmulator) -> None:
    model = make_model(emulator, run_mode="sync", history="native")
    model.invoke(
        [
            SystemMessage("Be brief."),
            HumanMessage("Hi"),
            AIMessage("Hello, how can I help?"),
            HumanMessage("What is 2+2?"),
            HumanMessage("And 3+3?"),
        ]
    )
    body = sends(emulator)[-1].json
    assert body["message"] == "What is 2+2?\n\nAnd 3+3?"
    assert body["previousConversation"] == [
        {"message": "Hi", "role": "user"},
        {"message": "Hello, how can I help?", "role": "assistant"},
    ]
    assert body["context"] == {"system": "Be brief."}


def test_native_history_labels_what_is_neither_user_nor_assistant() -> None:
    call = AIMessage(
        "",
        tool_calls=[{"name": "f", "args": {"x": 1}, "id": "t1", "type": "tool_call"}],
    )
    request = build_devic_request(
        [
            HumanMessage("q"),
            call,
            ToolMessage("42", tool_call_id="t1"),
            HumanMessage("so?"),
        ],
        assistant_id=ASSISTANT,
        history="native",
    )
    assert request.message == "so?"
    assert request.fields is not None
    assert request.fields["previousConversation"] == [
        {"message": "q", "role": "user"},
        {"message": "[called tools: f({'x': 1})]", "role": "assistant"},
        {"message": "Tool result (t1): 42", "role": "user"},
    ]


def test_native_history_with_one_turn_and_continuing_send_no_previous() -> None:
    only = build_devic_request(
        [HumanMessage("hi")], assistant_id=ASSISTANT, history="native"
    )
    assert only.fields is None
    reply = AIMessage(
        "ok", response_metadata={"chat_uuid": "c1", "assistant_id": ASSISTANT}
    )
    continued = build_devic_request(
        [HumanMessage("a"), reply, HumanMessage("b")],
        assistant_id=ASSISTANT,
        history="native",
    )
    assert continued.message == "b"
    assert continued.fields is None


def test_transcript_stays_the_default(emulator: DevicEmulator) -> None:
    model = make_model(emulator, run_mode="sync")
    assert model.history == "transcript"
    model.invoke([HumanMessage("Hi"), AIMessage("Hello"), HumanMessage("Bye")])
    body = sends(emulator)[-1].json
    assert "previousConversation" not in body
    assert "<conversation_history>" in body["message"]
