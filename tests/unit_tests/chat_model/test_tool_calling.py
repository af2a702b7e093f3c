"""ChatDevic with the caller's own tools, over a scripted platform (no sockets).

A small fake of Devic's platform routes (`httpx.MockTransport`) plays the views
each test scripts, and records every request, so each tool-calling rule (see
docs/tools.md) is checked on what went over the wire.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from langchain_core.exceptions import OutputParserException
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    ToolMessage,
)
from langchain_core.runnables import RunnableBinding
from langchain_core.tools import tool
from langchain_tests.unit_tests.chat_models import TEST_PYDANTIC_MODELS
from pydantic import BaseModel
from typing_extensions import TypedDict

from langchain_devic import ChatDevic, DevicServerError
from tests.unit_tests.platform_views import CHAT, msg, view

KEY = "tool-calling-TOKEN-91c3"
BASE = "https://devic.example.test/api/v1"
ASSISTANT = "tool-user"


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"Sunny in {city}"


def call(call_id: str, name: str, arguments: Any) -> dict[str, Any]:
    """An OpenAI-style tool call; `arguments` given as a str is sent verbatim."""
    raw = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": raw},
    }


def waiting(*calls: dict[str, Any], text: str = "", before: Any = ()) -> dict:
    """A view waiting for `calls`, made by one assistant message with `text`."""
    return view(
        "waiting_for_tool_response",
        *before,
        msg("u1", "user", "What is the weather in Paris?"),
        msg("a1", "assistant", text, tool_calls=list(calls)),
        pendingToolCalls=list(calls),
    )


class FakePlatform:
    """Devic's platform routes for one chat, answering from scripted views.

    `views` are served in order by the realtime route (the last one repeats);
    `tool_response` answers the tool-response POST; every request is kept.
    """

    def __init__(
        self,
        views: list[dict[str, Any]],
        *,
        tool_response: Callable[[httpx.Request], httpx.Response] | None = None,
        totals: tuple[int, int] = (10, 5),
    ) -> None:
        self.views = list(views)
        self.requests: list[httpx.Request] = []
        self.tool_response = tool_response or (
            lambda r: httpx.Response(201, json={"chatUid": CHAT})
        )
        self.totals = totals

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if path.endswith("/messages"):
            return httpx.Response(201, json={"chatUid": CHAT})
        if path.endswith("/stream"):
            return httpx.Response(404, json={"message": "no stream"})
        if path.endswith("/realtime"):
            current = self.views[0]
            if len(self.views) > 1:
                self.views.pop(0)
            return httpx.Response(200, json=current)
        if path.endswith("/tool-response"):
            return self.tool_response(request)
        if path.endswith("/stop"):
            return httpx.Response(201, json={"chatUid": CHAT})
        inp, out = self.totals
        return httpx.Response(
            200, json={"chatUID": CHAT, "inputTokens": inp, "outputTokens": out}
        )

    def sent(self, route: str) -> list[dict[str, Any]]:
        """The JSON bodies of the requests to `route` (`messages`, `tool-response`)."""
        return [
            json.loads(r.content)
            for r in self.requests
            if r.url.path.endswith(f"/{route}")
        ]

    def model(self, **fields: Any) -> ChatDevic:
        transport = httpx.MockTransport(self)
        return ChatDevic(
            assistant_id=ASSISTANT,
            api_key=KEY,
            base_url=BASE,
            http_client=httpx.Client(transport=transport),
            http_async_client=httpx.AsyncClient(transport=transport),
            poll_interval=0.001,
            max_poll_interval=0.002,
            max_retries=0,
            **fields,
        )


def weather_call_reply() -> AIMessage:
    """The reply that called `get_weather` in chat `CHAT` (as invoke returned it)."""
    return AIMessage(
        "",
        tool_calls=[{"name": "get_weather", "args": {"city": "Paris"}, "id": "c1"}],
        response_metadata={"chat_uuid": CHAT, "assistant_id": ASSISTANT},
    )


def answered_view(text: str = "It is sunny in Paris.") -> dict[str, Any]:
    return view(
        "completed",
        msg("u1", "user", "What is the weather in Paris?"),
        msg("a1", "assistant", None, tool_calls=[call("c1", "get_weather", {})]),
        msg("t1", "tool", "Sunny in Paris", tool_call_id="c1"),
        msg("a2", "assistant", text),
    )


# ----------------------------------------------------------------- bind_tools


def test_bound_tools_travel_as_openai_schemas_on_the_async_send() -> None:
    fake = FakePlatform([waiting(call("c1", "get_weather", {"city": "Paris"}))])
    reply = fake.model().bind_tools([get_weather]).invoke("Weather in Paris?")
    (send,) = fake.sent("messages")
    assert send["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "The weather in a city.",
                "parameters": {
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                    "type": "object",
                },
            },
        }
    ]
    assert any(r.url.params.get("async") == "true" for r in fake.requests)
    assert isinstance(reply, AIMessage)
    assert reply.tool_calls == [
        {
            "name": "get_weather",
            "args": {"city": "Paris"},
            "id": "c1",
            "type": "tool_call",
        }
    ]
    assert reply.response_metadata["finish_reason"] == "tool_calls"
    assert reply.response_metadata["chat_uuid"] == CHAT


def test_the_calling_message_text_is_the_content() -> None:
    fake = FakePlatform(
        [waiting(call("c1", "get_weather", {"city": "Paris"}), text="Checking.")]
    )
    reply = fake.model().bind_tools([get_weather]).invoke("Weather in Paris?")
    assert reply.content == "Checking."
    assert len(reply.tool_calls) == 1


def test_several_calls_keep_their_ids_and_order() -> None:
    calls = [
        call("c1", "get_weather", {"city": "Paris"}),
        call("c2", "get_weather", {"city": "Oslo"}),
    ]
    fake = FakePlatform([waiting(*calls)])
    reply = fake.model().bind_tools([get_weather]).invoke("Paris and Oslo?")
    assert [(c["id"], c["args"]) for c in reply.tool_calls] == [
        ("c1", {"city": "Paris"}),
        ("c2", {"city": "Oslo"}),
    ]


@pytest.mark.parametrize(
    ("arguments", "error"),
    [('{"city": "Par', "not JSON"), ("[1, 2]", "not a JSON object")],
)
def test_unparsable_arguments_become_invalid_tool_calls(
    arguments: str, error: str
) -> None:
    fake = FakePlatform([waiting(call("c1", "get_weather", arguments))])
    reply = fake.model().bind_tools([get_weather]).invoke("Weather?")
    assert reply.tool_calls == []
    (bad,) = reply.invalid_tool_calls
    assert bad["id"] == "c1"
    assert bad["name"] == "get_weather"
    assert bad["args"] == arguments
    assert error in str(bad["error"])


def test_a_stream_carries_the_calls_as_tool_call_chunks() -> None:
    calls = [
        call("c1", "get_weather", {"city": "Paris"}),
        call("c2", "get_weather", {"city": "Oslo"}),
    ]
    fake = FakePlatform([waiting(*calls, text="Looking.")])
    chunks = list(fake.model().bind_tools([get_weather]).stream("Paris and Oslo?"))
    last = chunks[-1]
    assert isinstance(last, AIMessageChunk)
    assert [(c["index"], c["id"]) for c in last.tool_call_chunks] == [
        (0, "c1"),
        (1, "c2"),
    ]
    joined = chunks[0]
    for chunk in chunks[1:]:
        joined += chunk
    assert isinstance(joined, AIMessageChunk)
    assert joined.content == "Looking."
    assert [c["args"] for c in joined.tool_calls] == [
        {"city": "Paris"},
        {"city": "Oslo"},
    ]
    assert joined.response_metadata["finish_reason"] == "tool_calls"


@pytest.mark.parametrize(
    ("option", "match"),
    [
        ({"tool_choice": "any"}, "tool_choice='any'"),
        ({"tool_choice": "required"}, "tool_choice='required'"),
        ({"tool_choice": "get_weather"}, "tool_choice='get_weather'"),
        ({"strict": True}, "strict=True"),
        ({"parallel_tool_calls": False}, "parallel_tool_calls=False"),
    ],
)
def test_options_devic_cannot_honour_are_refused(
    option: dict[str, Any], match: str
) -> None:
    fake = FakePlatform([answered_view()])
    with pytest.raises(ValueError, match=match):
        fake.model().bind_tools([get_weather], **option)
    assert fake.requests == []


def test_default_option_values_are_accepted() -> None:
    fake = FakePlatform([waiting(call("c1", "get_weather", {"city": "Paris"}))])
    bound = fake.model().bind_tools(
        [get_weather], tool_choice="auto", strict=False, parallel_tool_calls=True
    )
    assert bound.invoke("Weather?").tool_calls


def test_sync_run_mode_refuses_tools() -> None:
    fake = FakePlatform([answered_view()])
    model = fake.model(run_mode="sync")
    with pytest.raises(ValueError, match="run_mode='sync'"):
        model.bind_tools([get_weather])
    with pytest.raises(ValueError, match="run_mode='sync'"):
        model.invoke("Weather?", tools=[get_weather])
    assert fake.requests == []


def json_schema_of(model: Any) -> dict[str, Any]:
    """A Pydantic class's JSON schema (v2 `model_json_schema`, v1 `schema`)."""
    if hasattr(model, "model_json_schema"):
        return dict(model.model_json_schema())
    return dict(model.schema())


def test_every_kind_of_tool_binds() -> None:
    def my_adder(a: int, b: int) -> int:
        """Return the sum of two integers."""
        return a + b

    tools: list[Any] = [get_weather, my_adder]
    for pydantic_model in TEST_PYDANTIC_MODELS:
        tools += [pydantic_model, json_schema_of(pydantic_model)]
    fake = FakePlatform([waiting(call("c1", "my_adder", {"a": 1, "b": 2}))])
    bound = fake.model().bind_tools(tools)
    assert isinstance(bound, RunnableBinding)
    reply = bound.invoke("1 + 2?")
    (send,) = fake.sent("messages")
    names = [t["function"]["name"] for t in send["tools"]]
    assert names[:2] == ["get_weather", "my_adder"]
    assert len(names) == len(tools)
    assert reply.tool_calls[0]["args"] == {"a": 1, "b": 2}


# ---------------------------------------------------------------- tool results


def history_with_results(*results: ToolMessage) -> list[BaseMessage]:
    return [
        HumanMessage("What is the weather in Paris?"),
        weather_call_reply(),
        *results,
    ]


def test_tool_messages_are_posted_as_one_tool_response_then_followed() -> None:
    fake = FakePlatform([answered_view("It is sunny in Paris.")])
    bound = fake.model().bind_tools([get_weather])
    reply = bound.invoke(
        history_with_results(ToolMessage("Sunny in Paris", tool_call_id="c1"))
    )
    assert fake.sent("messages") == []  # not a new user message
    (posted,) = fake.sent("tool-response")
    (response,) = posted["responses"]
    assert response["tool_call_id"] == "c1"
    assert response["role"] == "tool"
    assert response["content"] == "Sunny in Paris"
    assert response["tools"][0]["function"]["name"] == "get_weather"
    assert reply.content == "It is sunny in Paris."
    assert reply.response_metadata["finish_reason"] == "stop"
    assert reply.response_metadata["chat_uuid"] == CHAT


def test_tools_are_restated_on_the_first_response_only() -> None:
    calls = [
        {"name": "get_weather", "args": {"city": "Paris"}, "id": "c1"},
        {"name": "get_weather", "args": {"city": "Oslo"}, "id": "c2"},
    ]
    reply = AIMessage(
        "",
        tool_calls=calls,
        response_metadata={"chat_uuid": CHAT, "assistant_id": ASSISTANT},
    )
    fake = FakePlatform([answered_view()])
    fake.model().bind_tools([get_weather]).invoke(
        [
            HumanMessage("Paris and Oslo?"),
            reply,
            ToolMessage("Sunny", tool_call_id="c1"),
            ToolMessage("Rain", tool_call_id="c2"),
        ]
    )
    (posted,) = fake.sent("tool-response")
    first, second = posted["responses"]
    assert [first["tool_call_id"], second["tool_call_id"]] == ["c1", "c2"]
    assert "tools" in first
    assert "tools" not in second


def test_an_error_result_is_sent_as_an_error_object() -> None:
    fake = FakePlatform([answered_view()])
    fake.model().bind_tools([get_weather]).invoke(
        history_with_results(
            ToolMessage("city unknown", tool_call_id="c1", status="error")
        )
    )
    (posted,) = fake.sent("tool-response")
    assert posted["responses"][0]["content"] == {"error": "city unknown"}


def test_a_view_older_than_the_answer_is_not_taken_for_a_new_wait() -> None:
    stale = waiting(call("c1", "get_weather", {"city": "Paris"}))
    fake = FakePlatform([stale, stale, answered_view("Sunny, 21 degrees.")])
    reply = (
        fake.model()
        .bind_tools([get_weather])
        .invoke(history_with_results(ToolMessage("Sunny", tool_call_id="c1")))
    )
    assert reply.content == "Sunny, 21 degrees."
    assert reply.tool_calls == []


def test_a_second_round_of_calls_in_the_same_turn() -> None:
    second = view(
        "waiting_for_tool_response",
        msg("u1", "user", "What is the weather in Paris?"),
        msg("a1", "assistant", None, tool_calls=[call("c1", "get_weather", {})]),
        msg("t1", "tool", "Sunny in Paris", tool_call_id="c1"),
        msg(
            "a2",
            "assistant",
            "And Oslo?",
            tool_calls=[call("c2", "get_weather", {"city": "Oslo"})],
        ),
        pendingToolCalls=[call("c2", "get_weather", {"city": "Oslo"})],
    )
    fake = FakePlatform([second])
    reply = (
        fake.model()
        .bind_tools([get_weather])
        .invoke(history_with_results(ToolMessage("Sunny in Paris", tool_call_id="c1")))
    )
    assert reply.content == "And Oslo?"
    assert [c["id"] for c in reply.tool_calls] == ["c2"]


@pytest.mark.parametrize(
    ("results", "match"),
    [
        ([], "has no ToolMessage for c1"),
        (
            [
                ToolMessage("a", tool_call_id="c1"),
                ToolMessage("b", tool_call_id="zz"),
            ],
            "did not make: zz",
        ),
        (
            [
                ToolMessage("a", tool_call_id="c1"),
                ToolMessage("a", tool_call_id="c1"),
            ],
            "more than once: c1",
        ),
        (
            [ToolMessage("a", tool_call_id="c1"), HumanMessage("and?")],
            "also hold HumanMessage",
        ),
    ],
)
def test_answers_must_match_the_pending_calls_before_anything_is_sent(
    results: list[BaseMessage], match: str
) -> None:
    fake = FakePlatform([answered_view()])
    messages = [HumanMessage("Weather?"), weather_call_reply(), *results]
    if not results:
        messages.append(HumanMessage("Never mind."))
        match = "also hold HumanMessage"
    with pytest.raises(ValueError, match=match):
        fake.model().bind_tools([get_weather]).invoke(messages)
    assert fake.requests == []


def test_results_sent_without_the_tools_are_refused() -> None:
    fake = FakePlatform([answered_view()])
    with pytest.raises(ValueError, match="no tools bound") as caught:
        fake.model().invoke(
            history_with_results(ToolMessage("Sunny", tool_call_id="c1"))
        )
    assert "c1" in str(caught.value)
    assert fake.requests == []


def test_a_missing_answer_is_named() -> None:
    calls = [
        {"name": "get_weather", "args": {}, "id": "c1"},
        {"name": "get_weather", "args": {}, "id": "c2"},
    ]
    reply = AIMessage(
        "",
        tool_calls=calls,
        response_metadata={"chat_uuid": CHAT, "assistant_id": ASSISTANT},
    )
    fake = FakePlatform([answered_view()])
    with pytest.raises(ValueError, match="has no ToolMessage for c2"):
        fake.model().bind_tools([get_weather]).invoke(
            [HumanMessage("x"), reply, ToolMessage("a", tool_call_id="c1")]
        )
    assert fake.requests == []


def test_an_unknown_outcome_that_landed_is_followed_not_resent() -> None:
    fake = FakePlatform(
        [answered_view("Landed after all.")],
        tool_response=lambda r: httpx.Response(500, json={"message": "oops"}),
    )
    reply = (
        fake.model()
        .bind_tools([get_weather])
        .invoke(history_with_results(ToolMessage("Sunny", tool_call_id="c1")))
    )
    assert reply.content == "Landed after all."
    assert len(fake.sent("tool-response")) == 1


def test_an_unknown_outcome_that_did_not_land_says_to_resend() -> None:
    fake = FakePlatform(
        [waiting(call("c1", "get_weather", {"city": "Paris"}))],
        tool_response=lambda r: httpx.Response(500, json={"message": "oops"}),
    )
    bound = fake.model().bind_tools([get_weather])
    with pytest.raises(DevicServerError, match="were not delivered") as caught:
        bound.invoke(history_with_results(ToolMessage("Sunny", tool_call_id="c1")))
    assert "resends them" in str(caught.value)
    assert len(fake.sent("tool-response")) == 1


def test_a_busy_answer_is_retried_like_any_write() -> None:
    answers = iter(
        [
            httpx.Response(409, json={"message": "busy"}),
            httpx.Response(201, json={"chatUid": CHAT}),
        ]
    )
    fake = FakePlatform([answered_view("ok")], tool_response=lambda r: next(answers))
    model = fake.model().model_copy(update={"max_retries": 1})
    reply = model.bind_tools([get_weather]).invoke(
        history_with_results(ToolMessage("Sunny", tool_call_id="c1"))
    )
    assert reply.content == "ok"
    assert len(fake.sent("tool-response")) == 2


async def test_async_tool_round_trip() -> None:
    fake = FakePlatform(
        [waiting(call("c1", "get_weather", {"city": "Paris"})), answered_view()]
    )
    bound = fake.model().bind_tools([get_weather])
    first = await bound.ainvoke("What is the weather in Paris?")
    assert [c["id"] for c in first.tool_calls] == ["c1"]
    result = await get_weather.ainvoke(first.tool_calls[0])
    second = await bound.ainvoke(
        [HumanMessage("What is the weather in Paris?"), first, result]
    )
    assert second.content == "It is sunny in Paris."
    (posted,) = fake.sent("tool-response")
    assert posted["responses"][0]["content"] == "Sunny in Paris"


# ------------------------------------------------------------ structured output


class Joke(BaseModel):
    setup: str
    punchline: str


class JokeDict(TypedDict):
    setup: str
    punchline: str


JOKE_ARGS = {"setup": "Why cats?", "punchline": "Because."}


@pytest.mark.parametrize(
    ("schema", "name"),
    [(Joke, "Joke"), (JokeDict, "JokeDict"), (Joke.model_json_schema(), "Joke")],
)
def test_structured_output_reads_the_schema_call_and_closes_the_wait(
    schema: Any, name: str
) -> None:
    fake = FakePlatform([waiting(call("c1", name, JOKE_ARGS))])
    result = fake.model().with_structured_output(schema).invoke("A joke.")
    expected = Joke(**JOKE_ARGS) if schema is Joke else JOKE_ARGS
    assert result == expected
    (send,) = fake.sent("messages")
    assert [t["function"]["name"] for t in send["tools"]] == [name]
    assert sum(r.url.path.endswith("/stop") for r in fake.requests) == 1


def test_structured_output_without_the_call_is_a_parser_error() -> None:
    fake = FakePlatform(
        [view("completed", msg("u1", "user", "A joke."), msg("a1", "assistant", "No."))]
    )
    structured = fake.model().with_structured_output(Joke)
    with pytest.raises(OutputParserException, match="answered in text"):
        structured.invoke("A joke.")
    raw = fake.model().with_structured_output(Joke, include_raw=True).invoke("A joke.")
    assert raw["parsed"] is None
    assert isinstance(raw["parsing_error"], OutputParserException)
    assert raw["raw"].content == "No."


@pytest.mark.parametrize("schema", TEST_PYDANTIC_MODELS)
@pytest.mark.parametrize("strict", [None, False, True])
def test_structured_output_builds_for_every_schema_kind(
    schema: Any, strict: bool | None
) -> None:
    model = FakePlatform([]).model()
    assert model.with_structured_output(schema, strict=strict) is not None
    json_schema = json_schema_of(schema)
    assert model.with_structured_output(json_schema, method="function_calling")


@pytest.mark.parametrize("method", ["json_mode", "json_schema"])
def test_json_methods_are_not_offered(method: str) -> None:
    with pytest.raises(NotImplementedError, match="function_calling"):
        FakePlatform([]).model().with_structured_output(Joke, method=method)
