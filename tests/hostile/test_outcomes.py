"""Outcomes: a write is never posted twice, and a reply is never lost.

A 502 or 504 to a write (or a failure after it was written) is an UNKNOWN
outcome: it is never re-posted blindly. Where the chat is known, the client
reads it and decides: the message is there, so that turn is returned; it is
not, so the message may be sent again (within `max_retries`). A new chat
cannot be read: the error says the turn may have run and is not retryable.
A 2xx answer to a send that is over `max_response_bytes` or not JSON, after
the turn ran, is read back from the chat (any error names the chat).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from langchain_devic import DevicError
from tests.hostile.conftest import (
    ASSISTANT,
    CHAT,
    HISTORY,
    MESSAGES,
    MIB,
    REALTIME,
    TOOL_RESPONSE,
    HostileServer,
    Request,
    Writer,
    answer,
    call,
    history,
    in_turn,
    make_model,
    msg,
    view,
)

GATEWAY = [502, 504]
REFUSED = {"statusCode": 502, "message": "Bad Gateway"}
#: What the history shows once the first send ran, although it answered 5xx.
RAN = history(msg("u1", "user", "hello"), msg("a1", "assistant", "It ran."))
#: A second POST's answer: reaching it means the turn was posted twice.
TWICE = {"chatUuid": CHAT, "message": "posted twice", "tokens_used": 3}
MAY_HAVE_RUN = re.compile(r"may\b.*\b(run|ran|processed|been)", re.IGNORECASE)


def posts(server: HostileServer, path: str = MESSAGES) -> int:
    return server.count("POST", path)


# --------------------------------------------------------------- seed sends


@pytest.mark.parametrize("status", GATEWAY)
def test_a_continued_seed_send_answered_5xx_but_processed_returns_that_turn(
    hostile_server: HostileServer, way: str, status: int
) -> None:
    hostile_server.on(
        "POST", MESSAGES, in_turn(answer(status, REFUSED), answer(200, TWICE))
    )
    hostile_server.on("GET", HISTORY, answer(200, RAN))
    model = make_model(hostile_server, way, run_mode="sync", max_retries=2)
    reply = call(way, model, "invoke", "hello", chat_uuid=CHAT)
    assert reply.content == "It ran."
    assert posts(hostile_server) == 1


@pytest.mark.parametrize("status", GATEWAY)
def test_a_continued_seed_send_answered_5xx_and_not_processed_is_sent_again(
    hostile_server: HostileServer, way: str, status: int
) -> None:
    again = {"chatUuid": CHAT, "message": "Second try.", "tokens_used": 3}
    hostile_server.on(
        "POST", MESSAGES, in_turn(answer(status, REFUSED), answer(200, again))
    )
    earlier = history(msg("u0", "user", "before"), msg("a0", "assistant", "old"))
    hostile_server.on("GET", HISTORY, answer(200, earlier))
    model = make_model(hostile_server, way, run_mode="sync", max_retries=2)
    reply = call(way, model, "invoke", "hello", chat_uuid=CHAT)
    assert reply.content == "Second try."
    assert posts(hostile_server) == 2


@pytest.mark.parametrize("status", GATEWAY)
def test_a_new_chat_seed_send_answered_5xx_is_not_retried_and_says_so(
    hostile_server: HostileServer, way: str, status: int
) -> None:
    hostile_server.on(
        "POST", MESSAGES, in_turn(answer(status, REFUSED), answer(200, TWICE))
    )
    model = make_model(hostile_server, way, run_mode="sync", max_retries=2)
    with pytest.raises(DevicError) as info:
        call(way, model, "invoke", "hello")
    assert info.value.is_retryable is False
    assert MAY_HAVE_RUN.search(str(info.value)), str(info.value)
    assert posts(hostile_server) == 1


# ---------------------------------------------------------- platform writes


def test_an_async_send_answered_504_is_never_posted_twice(
    hostile_server: HostileServer, way: str
) -> None:
    hostile_server.on(
        "POST",
        MESSAGES,
        in_turn(answer(504, REFUSED), answer(201, {"chatUid": CHAT})),
    )
    done = view("completed", msg("u1", "user", "hello"), msg("a1", "assistant", "x"))
    hostile_server.on("GET", REALTIME, answer(200, done))
    model = make_model(
        hostile_server, way, run_mode="async", max_retries=2, run_timeout=5
    )
    with pytest.raises(DevicError) as info:
        call(way, model, "invoke", "hello")
    assert info.value.is_retryable is False
    assert posts(hostile_server) == 1


def get_weather(city: str) -> str:
    """The weather in a city."""
    return "sunny"


TOOL_CALL = {
    "id": "call-1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
}


def test_tool_results_answered_504_are_never_posted_twice(
    hostile_server: HostileServer, way: str
) -> None:
    """The results landed although the post answered 504; the run completes."""
    user = msg("u1", "user", "weather?")
    caller = msg("a1", "assistant", None, tool_calls=[TOOL_CALL])
    result = msg("t1", "tool", "sunny", tool_call_id="call-1")
    done = view("completed", user, caller, result, msg("a2", "assistant", "Sunny."))
    hostile_server.on("POST", TOOL_RESPONSE, answer(504, REFUSED))
    hostile_server.on("GET", REALTIME, answer(200, done))
    hostile_server.on("GET", HISTORY, answer(200, history(user, caller)))
    model = make_model(
        hostile_server, way, run_mode="async", max_retries=2, run_timeout=5
    ).bind_tools([get_weather])
    messages: list[Any] = [
        HumanMessage("weather?"),
        AIMessage(
            "",
            tool_calls=[
                {"name": "get_weather", "args": {"city": "Paris"}, "id": "call-1"}
            ],
            response_metadata={"chat_uuid": CHAT, "assistant_id": ASSISTANT},
        ),
        ToolMessage("sunny", tool_call_id="call-1"),
    ]
    outcome: Any
    try:
        outcome = call(way, model, "invoke", messages)
    except DevicError as error:
        outcome = error
    if isinstance(outcome, DevicError):
        assert outcome.is_retryable is False
    else:
        assert outcome.content == "Sunny."
    assert posts(hostile_server, TOOL_RESPONSE) == 1


# ------------------------------------------------------------ replies kept


def too_big(request: Request, writer: Writer) -> None:
    """A 2 MiB 200 answer (over the 1 MiB cap); the turn ran all the same."""
    text = "x" * (2 * MIB)
    writer.json(200, {"chatUuid": CHAT, "message": text, "tokens_used": 3})


def not_json(request: Request, writer: Writer) -> None:
    writer.respond(200, b"<html>upstream hiccup</html>", {"Content-Type": "text/html"})


SEND_ANSWERS = {"over max_response_bytes": too_big, "not JSON": not_json}


@pytest.mark.parametrize("answer_shape", list(SEND_ANSWERS), ids=list(SEND_ANSWERS))
def test_a_reply_whose_answer_is_unreadable_is_read_from_the_chat(
    hostile_server: HostileServer, way: str, answer_shape: str
) -> None:
    hostile_server.on("POST", MESSAGES, SEND_ANSWERS[answer_shape])
    hostile_server.on("GET", HISTORY, answer(200, RAN))
    model = make_model(
        hostile_server, way, run_mode="sync", max_response_bytes=MIB, max_retries=2
    )
    reply = call(way, model, "invoke", "hello", chat_uuid=CHAT)
    assert reply.content == "It ran."
    assert posts(hostile_server) == 1


def test_an_unreadable_reply_that_the_chat_cannot_give_back_names_the_chat(
    hostile_server: HostileServer, way: str
) -> None:
    hostile_server.on("POST", MESSAGES, not_json)
    model = make_model(hostile_server, way, run_mode="sync", max_retries=2)
    with pytest.raises(DevicError) as info:
        call(way, model, "invoke", "hello", chat_uuid=CHAT)
    assert CHAT in str(info.value)
    assert hostile_server.count("GET", HISTORY) >= 1
    assert posts(hostile_server) == 1
