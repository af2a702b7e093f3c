"""Platform runs in the client and the model, over a scripted `MockTransport`.

`FakePlatform` answers the platform routes from a script: the views the
realtime route shows one read after another, the stream's events (or a refusal),
and a history with token totals. No socket, and `_clock.sleep`/`asleep` are
replaced so polling never really waits.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage

from langchain_devic import ChatDevic, _clock
from langchain_devic._client import AsyncDevicClient, DevicClient
from langchain_devic._runs import RunTracker
from langchain_devic.errors import (
    DevicNotFoundError,
    DevicRunError,
    DevicServerError,
    DevicTimeoutError,
)
from tests.unit_tests.platform_views import CHAT, msg, view

KEY = "platform-TOKEN-3b1d"
BASE = "https://devic.test/api/v1"
ASSISTANT = "helper"
PREFIX = f"/api/v1/assistants/{ASSISTANT}"


USER = msg("u1", "user", "hello")
GROWING = [
    view("processing", USER),
    view("processing", USER, streamingMessage=msg("a1", "assistant", "Hel")),
    view("processing", USER, streamingMessage=msg("a1", "assistant", "Hello")),
    view("completed", USER, msg("a1", "assistant", "Hello")),
]


def sse(*events: tuple[str, Any]) -> bytes:
    return "".join(f"event: {n}\ndata: {json.dumps(d)}\n\n" for n, d in events).encode()


Answer = httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]


class FakePlatform:
    """A scripted Devic platform; every request is recorded."""

    def __init__(
        self,
        views: list[dict[str, Any]] | None = None,
        *,
        stream: bytes | None = None,
        stream_status: int = 404,
        totals: tuple[int, int] = (120, 30),
        send: list[Answer] | None = None,
        realtime: list[Answer] | None = None,
    ) -> None:
        self.views = list(views or GROWING)
        self.stream = stream
        self.stream_status = stream_status
        self.totals = totals
        self.send = list(send or [])
        self.realtime = list(realtime or [])
        self.requests: list[httpx.Request] = []

    def routes(self, method: str, suffix: str = "") -> list[httpx.Request]:
        return [
            r
            for r in self.requests
            if r.method == method and r.url.path.endswith(suffix)
        ]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if request.method == "POST" and path.endswith("/messages"):
            if self.send:
                return self._play(self.send.pop(0), request)
            return httpx.Response(201, json={"chatUid": CHAT})
        if path.endswith("/stream"):
            if self.stream is None:
                return httpx.Response(self.stream_status, json={"statusCode": 404})
            return httpx.Response(
                200, content=self.stream, headers={"content-type": "text/event-stream"}
            )
        if path.endswith("/realtime"):
            if self.realtime:
                return self._play(self.realtime.pop(0), request)
            current = self.views.pop(0) if len(self.views) > 1 else self.views[0]
            return httpx.Response(200, json=current)
        if path.endswith("/stop"):
            return httpx.Response(
                201, json={"chatUid": CHAT, "message": "Stop requested."}
            )
        if path.endswith(f"/chats/{CHAT}"):
            inp, out = self.totals
            last = self.views[-1]
            return httpx.Response(
                200,
                json={
                    "chatUID": CHAT,
                    "chatContent": last["chatHistory"],
                    "tokenUsage": {"inputTokens": inp, "outputTokens": out},
                },
            )
        if path.endswith("/chats"):
            return httpx.Response(
                200, json={"histories": [{"chatUID": CHAT, "name": "n"}]}
            )
        return httpx.Response(404, json={"statusCode": 404, "message": "no route"})

    @staticmethod
    def _play(answer: Answer, request: httpx.Request) -> httpx.Response:
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, httpx.Response):
            return answer
        return answer(request)


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    waits: list[float] = []

    async def asleep(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(_clock, "sleep", waits.append)
    monkeypatch.setattr(_clock, "asleep", asleep)
    return waits


def client_for(fake: FakePlatform, **settings: Any) -> DevicClient:
    return DevicClient(
        api_key=KEY,
        base_url=BASE,
        http_client=httpx.Client(transport=httpx.MockTransport(fake)),
        **settings,
    )


def async_client_for(fake: FakePlatform, **settings: Any) -> AsyncDevicClient:
    return AsyncDevicClient(
        api_key=KEY,
        base_url=BASE,
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(fake)),
        **settings,
    )


def model_for(fake: FakePlatform, **fields: Any) -> ChatDevic:
    transport = httpx.MockTransport(fake)
    return ChatDevic(
        assistant_id=ASSISTANT,
        api_key=KEY,
        base_url=BASE,
        http_client=httpx.Client(transport=transport),
        http_async_client=httpx.AsyncClient(transport=transport),
        **fields,
    )


def follow(client: DevicClient, text: str = "hello") -> tuple[RunTracker, list[str]]:
    tracker = RunTracker(CHAT, text)
    pieces = [p for o in client.follow_run(ASSISTANT, tracker) for p in o.text]
    return tracker, pieces


# ------------------------------------------------------------------ following


def test_polling_follows_the_run_to_its_end(no_waiting: list[float]) -> None:
    fake = FakePlatform()
    tracker, pieces = follow(client_for(fake))
    assert pieces == ["Hel", "lo"]
    assert tracker.status == "completed"
    assert len(fake.routes("GET", "/realtime")) == 4
    assert len(fake.routes("GET", "/stream")) == 1  # tried once, refused
    assert no_waiting == [0.5, 0.5, 0.5]  # every read changed something


def test_the_stream_is_followed_when_offered() -> None:
    fake = FakePlatform(
        stream=sse(
            ("snapshot", view("processing", USER)),
            ("partial", {"streamingMessage": msg("a1", "assistant", "")}),
            ("delta", {"append": "Hel"}),
            ("delta", {"append": "lo"}),
            (
                "partial",
                {
                    "status": "completed",
                    "chatHistory": [USER, msg("a1", "assistant", "Hello")],
                    "streamingMessage": None,
                },
            ),
        )
    )
    tracker, pieces = follow(client_for(fake))
    assert "".join(pieces) == "Hello"
    assert tracker.status == "completed"
    assert fake.routes("GET", "/realtime") == []
    stream = fake.routes("GET", "/stream")[0]
    assert stream.headers["accept"] == "text/event-stream"
    assert stream.url.params["partial"] == "1"


@pytest.mark.parametrize("refusal", [404, 405, 406, "not a stream"])
def test_a_missing_stream_falls_back_to_polling_and_is_remembered(
    refusal: int | str,
) -> None:
    if refusal == "not a stream":
        fake = FakePlatform(stream=b"{}", stream_status=200)
        fake.stream = None
        fake.stream_status = 200  # 200 JSON, not text/event-stream
    else:
        fake = FakePlatform(stream_status=int(refusal))
    client = client_for(fake)
    follow(client)
    assert client.capabilities.sse is False
    fake.views = list(GROWING)
    follow(client)
    assert len(fake.routes("GET", "/stream")) == 1  # not tried again


def test_a_stream_that_ends_early_is_finished_by_polling() -> None:
    fake = FakePlatform(stream=sse(("snapshot", view("processing", USER))))
    client = client_for(fake)
    tracker, _ = follow(client)
    assert tracker.status == "completed"
    assert fake.routes("GET", "/realtime")
    assert client.capabilities.sse is True  # it exists: try it next time


def test_failed_reads_are_retried_whatever_failed() -> None:
    fake = FakePlatform(
        realtime=[
            httpx.Response(503),
            httpx.ReadTimeout("slow"),
            httpx.Response(500, json={"statusCode": 500}),
            httpx.RemoteProtocolError("dropped"),
        ]
    )
    tracker, pieces = follow(client_for(fake))
    assert tracker.status == "completed"
    assert "".join(pieces) == "Hello"


def test_a_read_that_cannot_change_is_raised() -> None:
    fake = FakePlatform(realtime=[httpx.Response(401, json={"statusCode": 401})])
    with pytest.raises(Exception, match="401"):
        follow(client_for(fake))


def test_a_404_right_after_the_start_says_the_base_url_serves_no_runs() -> None:
    fake = FakePlatform(realtime=[httpx.Response(404, json={"statusCode": 404})])
    with pytest.raises(DevicNotFoundError, match="does not serve platform runs"):
        follow(client_for(fake))


def test_run_timeout_bounds_the_follow_and_names_the_chat() -> None:
    fake = FakePlatform([view("processing", USER)])
    client = client_for(fake, run_timeout=0.05)
    with pytest.raises(DevicTimeoutError, match=CHAT) as raised:
        follow(client)
    assert "may still finish" in str(raised.value)


def test_an_error_status_raises_a_run_error() -> None:
    fake = FakePlatform([view("error", USER, errorMessage="tool crashed")])
    with pytest.raises(DevicRunError, match="tool crashed"):
        follow(client_for(fake))


# --------------------------------------------------------------------- writes


def test_the_async_send_is_sent_once_and_never_repeated_after_a_500() -> None:
    fake = FakePlatform(send=[httpx.Response(500, json={"statusCode": 500})])
    client = client_for(fake)
    with pytest.raises(DevicServerError):
        client.start_run(ASSISTANT, "hello")
    assert len(fake.routes("POST", "/messages")) == 1


def test_the_async_send_is_repeated_after_a_503_and_carries_both_id_names() -> None:
    fake = FakePlatform(send=[httpx.Response(503)])
    started = client_for(fake).start_run(ASSISTANT, "hello", chat_uuid=CHAT)
    assert started.chat_uuid == CHAT
    sends = fake.routes("POST", "/messages")
    assert len(sends) == 2
    assert sends[0].url.params["async"] == "true"
    body = json.loads(sends[0].content)
    assert body["chatUuid"] == body["chatUid"] == CHAT


def test_a_finished_answer_to_the_async_send_is_the_result() -> None:
    fake = FakePlatform(
        send=[
            httpx.Response(
                200, json={"chatUuid": CHAT, "message": "done", "tokens_used": 9}
            )
        ]
    )
    model = model_for(fake)
    chunks = list(model.stream("hello"))
    assert "".join(c.text for c in chunks) == "done"
    assert fake.routes("GET", "/realtime") == []


# ----------------------------------------------------------------------- stop


def test_closing_a_stream_early_asks_devic_to_stop_once() -> None:
    fake = FakePlatform([*GROWING[:3], view("processing", USER)])
    client = client_for(fake)
    run = client.follow_run(ASSISTANT, RunTracker(CHAT, "hello"))
    next(run)
    run.close()
    stops = fake.routes("POST", "/stop")
    assert len(stops) == 1
    assert stops[0].url.path == f"{PREFIX}/chats/{CHAT}/stop"


@pytest.fixture
def ctrl_c_while_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C lands while the client waits between two reads."""

    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(_clock, "sleep", interrupted)


@pytest.mark.usefixtures("ctrl_c_while_waiting")
def test_keyboard_interrupt_while_following_stops_the_run() -> None:
    fake = FakePlatform()
    with pytest.raises(KeyboardInterrupt):
        follow(client_for(fake))
    assert len(fake.routes("POST", "/stop")) == 1


@pytest.mark.usefixtures("ctrl_c_while_waiting")
def test_a_failed_stop_request_never_hides_the_interrupt() -> None:
    fake = FakePlatform()
    original = fake.__call__

    def refuse_stop(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/stop"):
            raise httpx.ConnectError("down")
        return original(request)

    client = DevicClient(
        api_key=KEY,
        base_url=BASE,
        http_client=httpx.Client(transport=httpx.MockTransport(refuse_stop)),
    )
    with pytest.raises(KeyboardInterrupt):
        follow(client)


async def test_a_cancelled_task_stops_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    gate = asyncio.Event()

    async def wait_forever(seconds: float) -> None:
        gate.set()
        await asyncio.Event().wait()

    monkeypatch.setattr(_clock, "asleep", wait_forever)
    fake = FakePlatform([view("processing", USER)])
    client = async_client_for(fake)

    async def consume() -> None:
        async for _ in client.follow_run(ASSISTANT, RunTracker(CHAT, "hello")):
            pass

    task = asyncio.create_task(consume())
    await gate.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(fake.routes("POST", "/stop")) == 1


# ---------------------------------------------------------------------- model


class Recorder(BaseCallbackHandler):
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def on_custom_event(self, name: str, data: Any, **kwargs: Any) -> None:
        self.events.append((name, data))


def test_stream_chunks_join_to_what_invoke_returns() -> None:
    streamed = list(model_for(FakePlatform()).stream("hello"))
    invoked = model_for(FakePlatform(), run_mode="async").invoke("hello")
    assert "".join(c.text for c in streamed) == invoked.text == "Hello"
    assert len(streamed) >= 3  # text as it was written, then the closing chunk
    last = streamed[-1]
    assert last.chunk_position == "last"
    assert last.usage_metadata == {
        "input_tokens": 120,
        "output_tokens": 30,
        "total_tokens": 150,
    }
    assert last.response_metadata["chat_uuid"] == CHAT
    assert last.response_metadata["devic_chat_totals"] == {
        "input_tokens": 120,
        "output_tokens": 30,
    }
    assert invoked.usage_metadata == last.usage_metadata


def test_usage_is_the_growth_since_the_last_reply_of_the_chat() -> None:
    previous = AIMessage(
        "earlier",
        response_metadata={
            "chat_uuid": CHAT,
            "assistant_id": ASSISTANT,
            "devic_chat_totals": {"input_tokens": 100, "output_tokens": 20},
        },
    )
    fake = FakePlatform()
    reply = model_for(fake, run_mode="async").invoke(
        [HumanMessage("a"), previous, HumanMessage("hello")]
    )
    assert reply.usage_metadata == {
        "input_tokens": 20,
        "output_tokens": 10,
        "total_tokens": 30,
    }
    history_reads = [
        r for r in fake.routes("GET") if r.url.path.endswith(f"/chats/{CHAT}")
    ]
    assert len(history_reads) == 1  # after the run only: the input knew the totals


def test_a_continued_chat_without_known_totals_reads_them_before_sending() -> None:
    fake = FakePlatform(totals=(50, 5))
    model_for(fake, run_mode="async").invoke("hello", chat_uuid=CHAT)
    kinds = [
        (
            "history"
            if r.url.path.endswith(f"/chats/{CHAT}")
            else r.url.path.rsplit("/", 1)[-1]
        )
        for r in fake.requests
    ]
    assert kinds[:2] == ["history", "messages"]


def test_progress_reaches_callbacks_and_stream_events() -> None:
    step = msg(
        "a0",
        "assistant",
        None,
        summary="Checking the order",
        tool_calls=[
            {
                "id": "t",
                "type": "function",
                "function": {"name": "orders", "arguments": "{}"},
            }
        ],
    )
    views = [
        view("processing", USER, step),
        view("completed", USER, step, msg("a1", "assistant", "Done")),
    ]
    recorder = Recorder()
    list(
        model_for(FakePlatform(list(views))).stream(
            "hello", config={"callbacks": [recorder]}
        )
    )
    names = {name for name, _ in recorder.events}
    assert names == {"devic_progress"}
    data = [d for _, d in recorder.events]
    assert {"chat_uuid": CHAT, "status": "processing"} in data
    assert any(
        d.get("summary") == "Checking the order" and d.get("tool") == "orders"
        for d in data
    )
    assert {"chat_uuid": CHAT, "status": "completed"} in data


async def test_progress_shows_in_astream_events() -> None:
    events = [
        e async for e in model_for(FakePlatform()).astream_events("hello", version="v2")
    ]
    custom = [e for e in events if e["event"] == "on_custom_event"]
    assert [e["name"] for e in custom] == ["devic_progress"] * len(custom)
    assert [e["data"]["status"] for e in custom] == ["processing", "completed"]
    streamed = [
        e["data"]["chunk"] for e in events if e["event"] == "on_chat_model_stream"
    ]
    assert "".join(c.text for c in streamed) == "Hello"


async def test_async_stream_matches_async_invoke() -> None:
    chunks = [c async for c in model_for(FakePlatform()).astream("hello")]
    reply = await model_for(FakePlatform(), run_mode="async").ainvoke("hello")
    assert "".join(c.text for c in chunks) == reply.text == "Hello"
    assert isinstance(chunks[-1], AIMessageChunk)
    assert chunks[-1].chunk_position == "last"


def test_stop_sequences_cut_the_stream_as_they_cut_invoke() -> None:
    streamed = list(model_for(FakePlatform()).stream("hello", stop=["lo"]))
    invoked = model_for(FakePlatform(), run_mode="async").invoke("hello", stop=["lo"])
    assert "".join(c.text for c in streamed) == invoked.text == "Hel"


def test_sync_mode_streams_one_chunk_from_the_one_call() -> None:
    fake = FakePlatform(
        send=[
            httpx.Response(
                200, json={"chatUuid": CHAT, "message": "whole", "tokens_used": 3}
            )
        ]
    )
    chunks = list(model_for(fake, run_mode="sync").stream("hello"))
    assert [c.text for c in chunks] == ["whole"]
    assert "async" not in fake.routes("POST", "/messages")[0].url.params


def test_invoke_in_auto_mode_is_the_one_call() -> None:
    fake = FakePlatform(
        send=[
            httpx.Response(
                200, json={"chatUuid": CHAT, "message": "whole", "tokens_used": 3}
            )
        ]
    )
    assert model_for(fake).invoke("hello").text == "whole"
    assert "async" not in fake.routes("POST", "/messages")[0].url.params


# -------------------------------------------------------------------- history


def test_load_chat_returns_messages_that_continue_the_chat() -> None:
    views = [
        view(
            "completed",
            msg("d", "developer", "You are helpful."),
            USER,
            msg(
                "a0",
                "assistant",
                None,
                tool_calls=[
                    {
                        "id": "t1",
                        "type": "function",
                        "function": {"name": "lookup", "arguments": '{"q": 1}'},
                    }
                ],
            ),
            msg("t1", "tool", "42", tool_call_id="t1"),
            msg("a1", "assistant", "Hello"),
        )
    ]
    fake = FakePlatform(views)
    model = model_for(fake, run_mode="async")
    history = model.load_chat(CHAT)
    assert [m.type for m in history] == ["system", "human", "ai", "tool", "ai"]
    assert history[2].tool_calls[0]["args"] == {"q": 1}
    assert history[-1].response_metadata["chat_uuid"] == CHAT
    assert history[-1].response_metadata["devic_chat_totals"] == {
        "input_tokens": 120,
        "output_tokens": 30,
    }
    fake.views = list(GROWING)
    model.invoke([*history, HumanMessage("hello")])
    send = json.loads(fake.routes("POST", "/messages")[-1].content)
    assert send["chatUid"] == CHAT
    assert send["message"] == "hello"  # only the new turn: Devic has the rest


def test_list_chats_reads_the_assistants_chats() -> None:
    fake = FakePlatform()
    chats = model_for(fake).list_chats(limit=5)
    assert chats == [
        {"chat_uuid": CHAT, "name": "n", "created_at": None, "updated_at": None}
    ]
    assert fake.routes("GET", "/chats")[0].url.params["limit"] == "5"


async def test_async_history_twins() -> None:
    model = model_for(FakePlatform())
    assert (await model.alist_chats())[0]["chat_uuid"] == CHAT
    assert (await model.aload_chat(CHAT))[-1].text == "Hello"


def test_a_blank_chat_id_for_load_chat_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        model_for(FakePlatform()).load_chat(" ")
