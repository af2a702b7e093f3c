"""Identifiers: a chat id that goes into a path is one safe path segment.

No `.`, `..`, `/`, `?`, `#`, `%`, control characters, at most 256 characters.
A server-chosen id that is not is a `DevicProtocolError`, and the client then
sends nothing built from it (no stop, tool-response or read at a wrong place);
a caller's is a `ValueError` before any request.
"""

from __future__ import annotations

from typing import Any

import pytest

from langchain_devic import DevicProtocolError
from tests.hostile.conftest import (
    MESSAGES,
    HostileServer,
    answer,
    call,
    make_model,
)

SERVER_IDS = ["..", ".", "a/b", "x?y"]
CALLER_IDS = ["..", ".", "a/b", "x?y", "a#b", "%2e%2e", "a\nb", "x" * 257]
CALLER_IDS_NAMES = [
    "dotdot",
    "dot",
    "slash",
    "query",
    "fragment",
    "percent",
    "newline",
    "long",
]
TURNS = ("invoke", "stream")
REPLY = {"message": "hi there", "tokens_used": 3}


def only_the_send(server: HostileServer) -> list[str]:
    """Every request other than the one send, as `METHOD path`."""
    return [
        f"{r.method} {r.target}"
        for r in server.requests
        if not (r.method == "POST" and r.path == MESSAGES)
    ]


@pytest.mark.parametrize("chat_id", SERVER_IDS)
def test_a_run_in_a_server_chosen_unsafe_chat_is_refused(
    hostile_server: HostileServer, way: str, chat_id: str
) -> None:
    """The async send names a chat the client cannot put into a path."""
    hostile_server.on("POST", MESSAGES, answer(201, {"chatUid": chat_id}))
    model = make_model(hostile_server, way, run_mode="async", run_timeout=3)
    with pytest.raises(DevicProtocolError):
        call(way, model, "invoke", "hi")
    assert only_the_send(hostile_server) == []
    assert hostile_server.count("POST", MESSAGES) == 1


@pytest.mark.parametrize("chat_id", SERVER_IDS)
def test_a_reply_in_a_server_chosen_unsafe_chat_is_refused(
    hostile_server: HostileServer, way: str, chat_id: str
) -> None:
    """The seed send's reply names such a chat: it could never be continued."""
    hostile_server.on("POST", MESSAGES, answer(200, {"chatUuid": chat_id, **REPLY}))
    model = make_model(hostile_server, way, run_mode="sync")
    with pytest.raises(DevicProtocolError):
        call(way, model, "invoke", "hi")
    assert only_the_send(hostile_server) == []


@pytest.mark.parametrize("source", ["keyword", "configurable"])
@pytest.mark.parametrize("chat_id", CALLER_IDS, ids=CALLER_IDS_NAMES)
def test_a_callers_unsafe_chat_id_is_refused_before_any_request(
    hostile_server: HostileServer, chat_id: str, source: str
) -> None:
    hostile_server.on("POST", MESSAGES, answer(200, {"chatUuid": "c1", **REPLY}))
    model = make_model(hostile_server, run_mode="sync")
    given: dict[str, Any] = (
        {"chat_uuid": chat_id}
        if source == "keyword"
        else {"config": {"configurable": {"chat_uuid": chat_id}}}
    )
    with pytest.raises(ValueError, match="chat"):
        model.invoke("hi", **given)
    assert hostile_server.requests == []


@pytest.mark.parametrize("name", ["invoke", "stream", "load_chat", "stop_chat"])
def test_a_callers_dotdot_is_refused_on_every_path(
    hostile_server: HostileServer, way: str, name: str
) -> None:
    hostile_server.on("POST", MESSAGES, answer(200, {"chatUuid": "c1", **REPLY}))
    model = make_model(hostile_server, way, run_mode="async", run_timeout=3)
    args, kwargs = (("hi",), {"chat_uuid": ".."}) if name in TURNS else (("..",), {})
    with pytest.raises(ValueError, match="chat"):
        call(way, model, name, *args, **kwargs)
    assert hostile_server.requests == []
