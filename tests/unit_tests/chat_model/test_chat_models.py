"""ChatDevic behaviour: translation, conversations, config paths, usage, errors."""

from __future__ import annotations

import asyncio
import json
import logging
import operator
from typing import Annotated, Any

import httpx
import pytest
from langchain_core.callbacks import get_usage_metadata_callback
from langchain_core.exceptions import ModelAuthenticationError, ModelRateLimitError
from langchain_core.load import dumpd, dumps, loads
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda
from pydantic import ValidationError
from typing_extensions import TypedDict

from langchain_devic import (
    ChatDevic,
    DevicAuthenticationError,
    DevicRateLimitError,
    DevicServerError,
)
from langchain_devic._convert import (
    TRANSCRIPT_OPEN,
    build_devic_request,
    message_text,
    render_turns,
    reply_to_message,
    usage_from_reply,
)
from langchain_devic._wire import DevicReply
from langchain_devic.testing import Conversation, DevicEmulator, Fault
from tests.unit_tests.conftest import API_KEY, ASSISTANT, make_model


def sent(emulator: DevicEmulator) -> list[dict[str, Any]]:
    """The JSON bodies the emulator received, in order."""
    return [r.json for r in emulator.requests]


# --------------------------------------------------------------- pure functions


def test_message_text_joins_text_blocks() -> None:
    message = HumanMessage(
        content=[
            {"type": "text", "text": "Hello "},
            "big ",
            {"type": "text", "text": "world"},
        ]
    )
    assert message_text(message) == "Hello big world"


@pytest.mark.parametrize("block_type", ["image_url", "image", "audio", "file"])
def test_non_text_block_is_refused_with_its_name(block_type: str) -> None:
    message = HumanMessage(
        content=[{"type": "text", "text": "see"}, {"type": block_type}]
    )
    with pytest.raises(ValueError, match=block_type) as info:
        message_text(message)
    assert "text" in str(info.value)


def test_single_human_message_is_sent_verbatim() -> None:
    assert render_turns([HumanMessage("  exact text\n")], ASSISTANT) == "  exact text\n"


def test_several_human_messages_join_with_blank_line_no_labels() -> None:
    text = render_turns([HumanMessage("one"), HumanMessage("two")], ASSISTANT)
    assert text == "one\n\ntwo"


def test_mixed_turns_become_a_labelled_transcript_before_the_final_turn() -> None:
    messages = [
        HumanMessage("What is 2+2?"),
        AIMessage("4", response_metadata={"assistant_id": "other"}),
        ToolMessage("42", tool_call_id="call-1", name="calculator"),
        HumanMessage("And doubled?"),
    ]
    text = render_turns(messages, ASSISTANT)
    assert text.startswith(TRANSCRIPT_OPEN)
    assert "User: What is 2+2?" in text
    assert "Assistant (other): 4" in text
    assert "Tool result (calculator): 42" in text
    assert text.endswith("\n\nAnd doubled?")
    assert text.count("And doubled?") == 1


def test_system_text_goes_to_context_not_message() -> None:
    request = build_devic_request(
        [SystemMessage("Be brief."), HumanMessage("hi")],
        assistant_id=ASSISTANT,
        context={"locale": "es"},
    )
    assert request.message == "hi"
    assert request.context == {"locale": "es", "system": "Be brief."}
    assert request.chat_uuid is None


def test_continuing_sends_only_messages_after_own_reply() -> None:
    own = AIMessage(
        "earlier", response_metadata={"chat_uuid": "c-1", "assistant_id": ASSISTANT}
    )
    other = AIMessage(
        "from elsewhere", response_metadata={"chat_uuid": "x", "assistant_id": "b"}
    )
    request = build_devic_request(
        [HumanMessage("first"), own, other, HumanMessage("next")],
        assistant_id=ASSISTANT,
    )
    assert request.chat_uuid == "c-1"
    assert "first" not in request.message
    assert "Assistant (b): from elsewhere" in request.message
    assert request.message.endswith("next")


def test_explicit_id_without_own_reply_sends_after_last_ai_message() -> None:
    request = build_devic_request(
        [HumanMessage("old"), AIMessage("other model"), HumanMessage("new")],
        assistant_id=ASSISTANT,
        chat_uuid="given",
    )
    assert request.chat_uuid == "given"
    assert request.message == "new"


def test_nothing_new_to_send_is_a_clear_error() -> None:
    own = AIMessage(
        "r", response_metadata={"chat_uuid": "c", "assistant_id": ASSISTANT}
    )
    with pytest.raises(ValueError, match="Nothing new to send"):
        build_devic_request([HumanMessage("q"), own], assistant_id=ASSISTANT)
    with pytest.raises(ValueError, match="at least one message"):
        build_devic_request([], assistant_id=ASSISTANT)


def test_history_last_sends_only_the_final_user_turn() -> None:
    messages = [HumanMessage("a"), AIMessage("b"), HumanMessage("c")]
    request = build_devic_request(messages, assistant_id=ASSISTANT, history="last")
    assert request.message == "c"
    full = build_devic_request(messages, assistant_id=ASSISTANT)
    assert "User: a" in full.message
    assert full.message.endswith("c")


def test_request_metadata_merges_shallowly() -> None:
    request = build_devic_request(
        [HumanMessage("hi")],
        assistant_id=ASSISTANT,
        metadata={"user": "u1", "lang": "en"},
        call_metadata={"lang": "es"},
    )
    assert request.metadata == {"user": "u1", "lang": "es"}


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (DevicReply("x", "c", tokens_used=845), (0, 845, 845)),
        (DevicReply("x", "c", input_tokens=10, output_tokens=5), (10, 5, 15)),
        (
            DevicReply("x", "c", tokens_used=15, input_tokens=10, output_tokens=5),
            (10, 5, 15),
        ),
        (
            DevicReply("x", "c", tokens_used=12, input_tokens=10, output_tokens=5),
            (10, 2, 12),
        ),
    ],
)
def test_usage_totals_always_add_up(
    reply: DevicReply, expected: tuple[int, int, int]
) -> None:
    usage = usage_from_reply(reply)
    assert usage is not None
    assert (
        usage["input_tokens"],
        usage["output_tokens"],
        usage["total_tokens"],
    ) == expected
    assert usage["input_tokens"] + usage["output_tokens"] == usage["total_tokens"]


def test_no_token_figures_means_no_usage() -> None:
    message = reply_to_message(DevicReply("x", "c"), ASSISTANT)
    assert message.usage_metadata is None
    assert message.response_metadata["tokens_used"] is None


def test_reply_metadata_and_stop_cut() -> None:
    reply = DevicReply(
        "Hello you there",
        "c-9",
        tokens_used=3,
        timestamp="2025-10-29T14:58:25Z",
        extra={"foo": 1},
    )
    message = reply_to_message(reply, ASSISTANT, stop=["there", "you"])
    assert message.content == "Hello "
    assert message.response_metadata == {
        "chat_uuid": "c-9",
        "assistant_id": ASSISTANT,
        "model_name": ASSISTANT,
        "model_provider": "devic",
        "timestamp": "2025-10-29T14:58:25Z",
        "tokens_used": 3,
        "finish_reason": "stop",
        "devic_extra": {"foo": 1},
    }


# ------------------------------------------------------------------ construction


def test_missing_key_names_the_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEVIC_API_KEY", raising=False)
    with pytest.raises((ValueError, ValidationError), match="DEVIC_API_KEY"):
        ChatDevic(model="a")


def test_missing_assistant_names_the_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEVIC_ASSISTANT_ID", raising=False)
    with pytest.raises((ValueError, ValidationError), match="DEVIC_ASSISTANT_ID"):
        ChatDevic(api_key="k")


@pytest.mark.parametrize("bad_id", ["", ".", ".."])
def test_unusable_assistant_ids_are_refused(bad_id: str) -> None:
    with pytest.raises(ValidationError, match="assistant_id"):
        ChatDevic(model=bad_id, api_key=API_KEY)


def test_plain_http_to_remote_host_is_refused_and_key_hidden() -> None:
    with pytest.raises(ValidationError) as info:
        ChatDevic(model="a", api_key=API_KEY, base_url="http://example.com/v1")
    assert "https" in str(info.value)
    assert API_KEY not in str(info.value)
    assert API_KEY not in repr(info.value)


def test_key_never_in_repr_or_serialization(model: ChatDevic) -> None:
    assert API_KEY not in repr(model)
    assert API_KEY not in str(model)
    assert API_KEY not in json.dumps(dumpd(model))


@pytest.mark.filterwarnings(
    "ignore::langchain_core._api.beta_decorator.LangChainBetaWarning"
)
def test_serialization_round_trip(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEVIC_API_KEY", API_KEY)
    original = ChatDevic(model="round-trip", context={"tone": "dry"})
    text = dumps(original)
    assert API_KEY not in text
    restored = loads(
        text,
        allowed_objects=[ChatDevic],
        valid_namespaces=["langchain_devic"],
        secrets_from_env=True,
    )
    assert isinstance(restored, ChatDevic)
    assert restored.assistant_id == "round-trip"
    assert restored.context == {"tone": "dry"}
    assert restored.api_key.get_secret_value() == API_KEY


def test_bind_tools_refuses_a_tool_choice_devic_cannot_force(model: ChatDevic) -> None:
    with pytest.raises(ValueError, match="tool_choice='any'"):
        model.bind_tools([], tool_choice="any")


def test_ls_params(model: ChatDevic) -> None:
    params = model._get_ls_params(stop=["x"])
    assert params == {
        "ls_provider": "devic",
        "ls_model_name": ASSISTANT,
        "ls_model_type": "chat",
        "ls_stop": ["x"],
    }


def test_no_cache_by_default_posts_every_turn(
    model: ChatDevic, emulator: DevicEmulator
) -> None:
    model.invoke("same question")
    model.invoke("same question")
    assert [r.chat_uuid for r in emulator.requests] == [None, None]
    assert len(emulator.conversations) == 2


def test_unknown_keyword_is_a_type_error(model: ChatDevic) -> None:
    with pytest.raises(TypeError, match="chat_uid"):
        model.invoke("hi", chat_uid="typo")
    assert model.client is model.client


# --------------------------------------------------- the eight config paths


@pytest.fixture
def started(model: ChatDevic) -> str:
    """A conversation id that exists on the emulator."""
    return str(model.invoke("start").response_metadata["chat_uuid"])


def _config(chat_uuid: str) -> dict[str, Any]:
    return {"configurable": {"chat_uuid": chat_uuid}}


def _assert_continued(emulator: DevicEmulator, chat_uuid: str, count: int = 1) -> None:
    tail = emulator.requests[-count:]
    assert [r.chat_uuid for r in tail] == [chat_uuid] * count
    assert all(r.status == 200 for r in tail)


def test_config_path_invoke(
    model: ChatDevic, emulator: DevicEmulator, started: str
) -> None:
    reply = model.invoke("next", config=_config(started))
    assert reply.response_metadata["chat_uuid"] == started
    _assert_continued(emulator, started)


async def test_config_path_ainvoke(
    model: ChatDevic, emulator: DevicEmulator, started: str
) -> None:
    reply = await model.ainvoke("next", config=_config(started))
    assert reply.response_metadata["chat_uuid"] == started
    _assert_continued(emulator, started)


def test_config_path_stream(
    model: ChatDevic, emulator: DevicEmulator, started: str
) -> None:
    chunks = list(model.stream("next", config=_config(started)))
    assert len(chunks) == 1
    assert isinstance(chunks[0], AIMessageChunk)
    assert chunks[0].chunk_position == "last"
    assert chunks[0].usage_metadata is not None
    assert chunks[0].response_metadata["chat_uuid"] == started
    _assert_continued(emulator, started)


async def test_config_path_astream(
    model: ChatDevic, emulator: DevicEmulator, started: str
) -> None:
    chunks = [c async for c in model.astream("next", config=_config(started))]
    assert len(chunks) == 1
    assert chunks[0].chunk_position == "last"
    assert chunks[0].response_metadata["chat_uuid"] == started
    _assert_continued(emulator, started)


def test_config_path_batch(
    model: ChatDevic, emulator: DevicEmulator, started: str
) -> None:
    other = str(model.invoke("another").response_metadata["chat_uuid"])
    replies = model.batch(
        ["to first", "to second"], config=[_config(started), _config(other)]
    )
    assert [r.response_metadata["chat_uuid"] for r in replies] == [started, other]
    by_message = {r.message: r.chat_uuid for r in emulator.requests[-2:]}
    assert by_message == {"to first": started, "to second": other}


async def test_config_path_abatch(
    model: ChatDevic, emulator: DevicEmulator, started: str
) -> None:
    config = {**_config(started), "max_concurrency": 1}
    replies = await model.abatch(["a1", "a2"], config=config)
    assert [r.response_metadata["chat_uuid"] for r in replies] == [started, started]
    _assert_continued(emulator, started, count=2)


def test_config_path_lcel_chain(
    model: ChatDevic, emulator: DevicEmulator, started: str
) -> None:
    chain = (
        ChatPromptTemplate.from_messages([("human", "Tell me about {topic}")]) | model
    )
    reply = chain.invoke({"topic": "otters"}, config=_config(started))
    assert reply.response_metadata["chat_uuid"] == started
    assert emulator.requests[-1].message == "Tell me about otters"
    _assert_continued(emulator, started)


class _State(TypedDict):
    messages: Annotated[list[BaseMessage], operator.add]


def test_config_path_langgraph_node(
    model: ChatDevic, emulator: DevicEmulator, started: str
) -> None:
    from langgraph.graph import END, START, StateGraph

    def call_model(state: _State) -> dict[str, Any]:
        # The node calls the model without passing config: the id must still
        # arrive, through the config LangGraph puts in context.
        return {"messages": [model.invoke(state["messages"][-1:])]}

    builder = StateGraph(_State)
    builder.add_node("assistant", call_model)
    builder.add_edge(START, "assistant")
    builder.add_edge("assistant", END)
    graph = builder.compile()
    result = graph.invoke({"messages": [HumanMessage("via graph")]}, _config(started))
    assert result["messages"][-1].response_metadata["chat_uuid"] == started
    _assert_continued(emulator, started)


def test_keyword_wins_over_config(
    model: ChatDevic, emulator: DevicEmulator, started: str
) -> None:
    other = str(model.invoke("another").response_metadata["chat_uuid"])
    model.invoke("which?", config=_config(started), chat_uuid=other)
    assert emulator.requests[-1].chat_uuid == other


# ---------------------------------------------------------- conversations a-f


def test_a_three_turns_through_config(
    model: ChatDevic, emulator: DevicEmulator
) -> None:
    first = model.invoke("turn one")
    chat = first.response_metadata["chat_uuid"]
    for text in ("turn two", "turn three"):
        reply = model.invoke(text, config=_config(chat))
        assert reply.response_metadata["chat_uuid"] == chat
    assert [r.chat_uuid for r in emulator.requests] == [None, chat, chat]
    assert [
        t["content"] for t in emulator.conversations[chat] if t["role"] == "user"
    ] == [
        "turn one",
        "turn two",
        "turn three",
    ]
    assert "Reply 3" in str(reply.content)


def test_b_three_turns_through_history_only(
    model: ChatDevic, emulator: DevicEmulator
) -> None:
    history: list[BaseMessage] = []
    for text in ("h one", "h two", "h three"):
        history.append(HumanMessage(text))
        history.append(model.invoke(history))
    chat = history[1].response_metadata["chat_uuid"]
    assert [r.chat_uuid for r in emulator.requests] == [None, chat, chat]
    assert [r.message for r in emulator.requests] == ["h one", "h two", "h three"]


def test_c_langgraph_checkpointer_thread_per_chat(
    model: ChatDevic, emulator: DevicEmulator
) -> None:
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.graph import END, START, StateGraph

    def call_model(state: _State) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    builder = StateGraph(_State)
    builder.add_node("assistant", call_model)
    builder.add_edge(START, "assistant")
    builder.add_edge("assistant", END)
    graph = builder.compile(checkpointer=InMemorySaver())

    def ask(thread: str, text: str) -> AIMessage:
        config = {"configurable": {"thread_id": thread}}
        result = graph.invoke({"messages": [HumanMessage(text)]}, config)
        message = result["messages"][-1]
        assert isinstance(message, AIMessage)
        return message

    a1, a2 = ask("A", "a first"), ask("A", "a second")
    b1 = ask("B", "b first")
    assert a1.response_metadata["chat_uuid"] == a2.response_metadata["chat_uuid"]
    assert b1.response_metadata["chat_uuid"] != a1.response_metadata["chat_uuid"]
    assert [(r.message, r.chat_uuid) for r in emulator.requests] == [
        ("a first", None),
        ("a second", a1.response_metadata["chat_uuid"]),
        ("b first", None),
    ]


def test_d_two_assistants_never_continue_each_other(
    emulator: DevicEmulator,
) -> None:
    alpha = make_model(emulator, model="alpha")
    beta = make_model(emulator, model="beta")
    history: list[BaseMessage] = [HumanMessage("hello both")]
    history.append(alpha.invoke(history))
    history.append(HumanMessage("beta, your view?"))
    history.append(beta.invoke(history))
    history.append(HumanMessage("alpha again"))
    alpha_reply = alpha.invoke(history)
    alpha_chat = history[1].response_metadata["chat_uuid"]
    beta_chat = history[3].response_metadata["chat_uuid"]
    assert alpha_chat != beta_chat
    assert alpha_reply.response_metadata["chat_uuid"] == alpha_chat
    requests = emulator.requests
    assert [(r.assistant_id, r.chat_uuid) for r in requests] == [
        ("alpha", None),
        ("beta", None),
        ("alpha", alpha_chat),
    ]
    # beta started fresh, so it got the earlier turns as a transcript once
    assert requests[1].message is not None
    assert requests[1].message.count("User: hello both") == 1
    # alpha continues and is sent beta's later reply, which it has not seen
    assert requests[2].message is not None
    assert "Assistant (beta)" in requests[2].message
    assert requests[2].message.startswith(TRANSCRIPT_OPEN + "\nUser: beta, your view?")


async def test_e_hundred_concurrent_conversations_no_cross_talk(
    model: ChatDevic, emulator: DevicEmulator
) -> None:
    firsts = await asyncio.gather(*(model.ainvoke(f"open {i}") for i in range(100)))
    chats = [str(m.response_metadata["chat_uuid"]) for m in firsts]
    assert len(set(chats)) == 100
    seconds = await asyncio.gather(
        *(model.ainvoke(f"follow {i}", chat_uuid=chats[i]) for i in range(100))
    )
    for i, reply in enumerate(seconds):
        assert reply.response_metadata["chat_uuid"] == chats[i]
        assert f"follow {i}" in str(reply.content)
    for i, chat in enumerate(chats):
        users = [
            t["content"] for t in emulator.conversations[chat] if t["role"] == "user"
        ]
        assert users == [f"open {i}", f"follow {i}"]
    assert len(emulator.requests) == 200


def test_f_history_without_id_sends_transcript_once(
    model: ChatDevic, emulator: DevicEmulator
) -> None:
    history = [
        SystemMessage("You are terse."),
        HumanMessage("q1"),
        AIMessage("a1"),
        HumanMessage("q2"),
        AIMessage("a2"),
        HumanMessage("q3"),
    ]
    model.invoke(history)
    (request,) = emulator.requests
    assert request.message is not None
    for text in ("User: q1", "Assistant: a1", "User: q2", "Assistant: a2"):
        assert request.message.count(text) == 1
    assert request.message.endswith("\n\nq3")
    assert "terse" not in request.message
    assert request.json["context"] == {"system": "You are terse."}


# ------------------------------------------------------------------------ usage


def test_usage_callback_sums_tokens_used_over_a_batch(
    model: ChatDevic,
) -> None:
    with get_usage_metadata_callback() as callback:
        replies = model.batch(["one two", "three", "four five six"])
    total = sum(r.response_metadata["tokens_used"] for r in replies)
    assert total > 0
    assert callback.usage_metadata[ASSISTANT]["total_tokens"] == total


def test_platform_split_is_used(emulator: DevicEmulator) -> None:
    platform = DevicEmulator(api_key=API_KEY, dialect="platform")
    model = make_model(platform)
    reply = model.invoke("split these tokens please")
    usage = reply.usage_metadata
    assert usage is not None
    assert usage["input_tokens"] > 0
    assert usage["output_tokens"] > 0
    assert usage["input_tokens"] + usage["output_tokens"] == usage["total_tokens"]
    assert reply.response_metadata["chat_uuid"] == platform.requests[-1].chat_uuid or (
        reply.response_metadata["chat_uuid"] in platform.conversations
    )


# ----------------------------------------------------------------------- errors


def test_auth_error_through_invoke_and_ainvoke(emulator: DevicEmulator) -> None:
    model = make_model(emulator, api_key="wrong-key-123")
    with pytest.raises(DevicAuthenticationError) as info:
        model.invoke("hi")
    assert isinstance(info.value, ModelAuthenticationError)
    assert "wrong-key-123" not in str(info.value) + repr(info.value)
    with pytest.raises(DevicAuthenticationError):
        asyncio.run(model.ainvoke("hi"))


async def test_rate_limit_error_through_ainvoke(emulator: DevicEmulator) -> None:
    model = make_model(emulator, max_retries=0)
    emulator.inject(Fault.status(429, retry_after=3600))
    with pytest.raises(DevicRateLimitError) as info:
        await model.ainvoke("hi")
    assert isinstance(info.value, ModelRateLimitError)
    assert info.value.retry_after == 3600


def test_with_retry_composes(emulator: DevicEmulator) -> None:
    model = make_model(emulator, max_retries=0)
    emulator.inject(Fault.status(503))
    runnable = model.with_retry(
        retry_if_exception_type=(DevicServerError,),
        stop_after_attempt=2,
        wait_exponential_jitter=False,
    )
    reply = runnable.invoke("retry me")
    assert "retry me" in str(reply.content)
    assert [r.status for r in emulator.requests] == [503, 200]


def test_with_fallbacks_composes(emulator: DevicEmulator) -> None:
    broken = make_model(emulator, api_key="not-the-key")
    working = make_model(emulator)
    reply = broken.with_fallbacks([working]).invoke("fall back")
    assert "fall back" in str(reply.content)
    assert [r.status for r in emulator.requests] == [401, 200]


def test_forked_conversation_is_followed_and_logged(
    emulator: DevicEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    def forking(conversation: Conversation) -> str | dict[str, Any]:
        if conversation.turn < 2:
            return "first answer"
        return {"message": "moved", "chatUuid": "forked-chat"}

    emulator.add_assistant("forky", forking)
    model = make_model(emulator, model="forky")
    first = model.invoke("start")
    with caplog.at_level(logging.WARNING, logger="langchain_devic"):
        reply = model.invoke([HumanMessage("start"), first, HumanMessage("go on")])
    assert reply.response_metadata["chat_uuid"] == "forked-chat"
    assert any("forked" in r.getMessage() for r in caplog.records)


def test_mock_transport_exact_request() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"chatUuid": "c", "message": "ok"})

    model = ChatDevic(
        model="a b",
        api_key=API_KEY,
        base_url="https://api.devic.ai/v1",
        http_client=httpx.Client(transport=httpx.MockTransport(handler)),
        request_metadata={"userId": "u-1"},
    )
    model.invoke("hello", context={"lang": "es"})
    (request,) = seen
    assert request.url.raw_path == b"/v1/assistants/a%20b/messages"
    assert json.loads(request.content) == {
        "message": "hello",
        "chatUuid": None,
        "context": {"lang": "es"},
        "metadata": {"userId": "u-1"},
    }
    assert request.headers["authorization"] == f"Bearer {API_KEY}"


def test_runnable_lambda_context_carries_chat_uuid(
    model: ChatDevic, emulator: DevicEmulator, started: str
) -> None:
    chain = RunnableLambda(lambda text: model.invoke(text))
    chain.invoke("inside lambda", config=_config(started))
    _assert_continued(emulator, started)


def test_copies_get_their_own_clients(model: ChatDevic) -> None:
    import copy

    built = model.client
    deep = copy.deepcopy(model)
    moved = model.model_copy(update={"base_url": "https://other.devic.test/v1"})
    assert deep.client is not built
    assert deep.http_client is model.http_client  # the user's client is kept
    assert moved.client is not built
    assert moved.client.base_url == "https://other.devic.test/v1"
    assert model.client is built


def test_copy_cannot_smuggle_an_insecure_base_url(model: ChatDevic) -> None:
    insecure = model.model_copy(update={"base_url": "http://example.com/v1"})
    with pytest.raises(ValueError, match="non-loopback"):
        insecure.invoke("hi")


@pytest.mark.filterwarnings(
    "ignore::langchain_core._api.beta_decorator.LangChainBetaWarning"
)
def test_config_path_stream_events_v3(
    model: ChatDevic, emulator: DevicEmulator, started: str
) -> None:
    stream = model.stream_events("v3 turn", config=_config(started), version="v3")
    assert stream.output.response_metadata["chat_uuid"] == started
    _assert_continued(emulator, started)


async def test_config_path_astream_events_v2(
    model: ChatDevic, emulator: DevicEmulator, started: str
) -> None:
    events = [
        e
        async for e in model.astream_events(
            "v2 turn", config=_config(started), version="v2"
        )
    ]
    assert events[-1]["event"] == "on_chat_model_end"
    _assert_continued(emulator, started)
