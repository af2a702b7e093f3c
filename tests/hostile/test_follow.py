"""One follow loop: a run waiting for client tools fails a model without tools.

The same run (`waiting_for_tool_response`, with pending calls) followed by a
model that has no tools bound is a `DevicRunError`, whether the client
follows it over the event stream or by polling the realtime view.
"""

from __future__ import annotations

import pytest

from langchain_devic import DevicRunError
from tests.hostile.conftest import (
    CHAT,
    MESSAGES,
    REALTIME,
    SSE_HEADERS,
    STREAM,
    HostileServer,
    Request,
    Writer,
    answer,
    call,
    make_model,
    msg,
    sse,
    view,
)

CALL = {
    "id": "call-1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": "{}"},
}
WAITING = view(
    "waiting_for_tool_response",
    msg("u1", "user", "hi"),
    msg("a1", "assistant", None, tool_calls=[CALL]),
    pendingToolCalls=[CALL],
)


def waiting_stream(request: Request, writer: Writer) -> None:
    writer.head(200, SSE_HEADERS)
    writer.write(sse("snapshot", WAITING))
    writer.hold(1.0)


@pytest.mark.parametrize("path", ["stream", "polling"])
def test_a_run_waiting_for_client_tools_fails_a_model_without_tools(
    hostile_server: HostileServer, way: str, path: str
) -> None:
    hostile_server.on("POST", MESSAGES, answer(201, {"chatUid": CHAT}))
    hostile_server.on("GET", REALTIME, answer(200, WAITING))
    if path == "stream":
        hostile_server.on("GET", STREAM, waiting_stream)
    model = make_model(hostile_server, way, run_mode="async", run_timeout=5)
    with pytest.raises(DevicRunError) as info:
        call(way, model, "invoke", "hi")
    assert info.value.chat_uuid == CHAT
    assert info.value.status == "waiting_for_tool_response"
    if path == "stream":
        assert hostile_server.count("GET", STREAM) == 1
