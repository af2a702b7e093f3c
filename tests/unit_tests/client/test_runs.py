"""The pure half of platform runs: reading views, events, and what comes next."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from langchain_devic import _wire
from langchain_devic._convert import StopCutter, chat_totals_in, run_reply
from langchain_devic._runs import Observation, PollSchedule, RunTracker
from langchain_devic.errors import (
    DevicProtocolError,
    DevicRateLimitError,
    DevicRunError,
)
from tests.unit_tests.platform_views import CHAT, msg, view

EARLIER = [msg("u0", "user", "first"), msg("a0", "assistant", "old reply")]


# ------------------------------------------------------------------ tracker


def test_text_is_emitted_as_it_grows_with_separators_on_their_own() -> None:
    tracker = RunTracker(CHAT, "hello")
    steps = [
        view("buffering", *EARLIER),  # our message is not in the history yet
        view("processing", *EARLIER, msg("u1", "user", "hello")),
        view(
            "processing",
            *EARLIER,
            msg("u1", "user", "hello"),
            streamingMessage=msg("s1", "assistant", "Hel"),
        ),
        view(
            "processing",
            *EARLIER,
            msg("u1", "user", "hello"),
            streamingMessage=msg("s1", "assistant", "Hello there"),
        ),
        view(
            "processing",
            *EARLIER,
            msg("u1", "user", "hello"),
            msg("s1", "assistant", "Hello there"),
            streamingMessage=msg("s2", "assistant", "More"),
        ),
        view(
            "completed",
            *EARLIER,
            msg("u1", "user", "hello"),
            msg("s1", "assistant", "Hello there"),
            msg("s2", "assistant", "More."),
        ),
    ]
    pieces = [tracker.observe(v).text for v in steps]
    assert pieces == [[], [], ["Hel"], ["lo there"], ["\n\n", "More"], ["."]]
    assert tracker.text == "Hello there\n\nMore."
    assert (
        _wire.turn_text(_wire.assistant_turn(steps[-1]["chatHistory"])) == tracker.text
    )


def test_an_earlier_turns_reply_is_never_taken_for_this_one() -> None:
    tracker = RunTracker(CHAT, "new question")
    observation = tracker.observe(view("processing", *EARLIER))
    assert observation.text == []
    assert not observation.done


def test_buffered_messages_merged_by_devic_still_anchor_the_turn() -> None:
    tracker = RunTracker(CHAT, "second")
    merged = msg("u1", "user", "first part\nsecond")
    observation = tracker.observe(
        view("completed", merged, msg("a1", "assistant", "ok"))
    )
    assert observation.text == ["ok"]
    assert observation.done


def test_a_message_that_only_calls_tools_adds_no_text_or_separator() -> None:
    tracker = RunTracker(CHAT, "q")
    call = {
        "id": "t1",
        "type": "function",
        "function": {"name": "search", "arguments": "{}"},
    }
    observed = tracker.observe(
        view(
            "completed",
            msg("u1", "user", "q"),
            msg("a1", "assistant", None, tool_calls=[call], summary="Searching docs"),
            msg("t1", "tool", "found", tool_call_id="t1"),
            msg("a2", "assistant", "Answer"),
        )
    )
    assert observed.text == ["Answer"]
    assert {"summary": "Searching docs", "tool": "search"}.items() <= observed.progress[
        1
    ].items()


def test_progress_reports_each_status_change_and_each_step_once() -> None:
    tracker = RunTracker(CHAT, "q")
    step = msg("a1", "assistant", None, summary="Looking up the order")
    first = tracker.observe(view("processing", msg("u1", "user", "q"), step))
    again = tracker.observe(view("processing", msg("u1", "user", "q"), step))
    handed = tracker.observe(
        view("handed_off", msg("u1", "user", "q"), step, handedOffSubThreadId="sub-1")
    )
    assert [e["status"] for e in first.progress] == ["processing", "processing"]
    assert first.progress[1]["summary"] == "Looking up the order"
    assert again.progress == []
    assert handed.progress == [
        {"chat_uuid": CHAT, "status": "handed_off", "handed_off_to": "sub-1"}
    ]
    assert handed.slow


def test_error_status_is_a_run_error_with_the_servers_reason() -> None:
    tracker = RunTracker(CHAT, "q")
    observation = tracker.observe(view("error", errorMessage="model overloaded"))
    assert isinstance(observation.error, DevicRunError)
    assert observation.error.chat_uuid == CHAT
    assert observation.error.status == "error"
    assert "model overloaded" in str(observation.error)
    assert observation.error.is_retryable is False


@pytest.mark.parametrize(
    "extra",
    [{"error": {"message": "boom"}}, {"error": "boom"}, {"stopReason": "boom"}],
)
def test_every_failure_field_is_read(extra: dict[str, Any]) -> None:
    observation = RunTracker(CHAT, "q").observe(view("error", **extra))
    assert "boom" in str(observation.error)


def test_limit_exceeded_is_a_rate_limit_with_the_wait_until_reset() -> None:
    resets = (time.time() + 120) * 1000
    observation = RunTracker(CHAT, "q").observe(
        view(
            "limit_exceeded",
            limitExceeded={"message": "Monthly cap", "resetsAt": resets},
        )
    )
    error = observation.error
    assert isinstance(error, DevicRateLimitError)
    assert error.status_code == 429
    assert error.code == "TENANT_LIMIT_EXCEEDED"
    assert error.message == "Monthly cap"
    assert error.retry_after is not None
    assert 100 < error.retry_after <= 120


def test_waiting_for_a_client_tool_without_tools_is_a_run_error() -> None:
    call = {
        "id": "c1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": "{}"},
    }
    observation = RunTracker(CHAT, "q").observe(
        view("waiting_for_tool_response", pendingToolCalls=[call])
    )
    assert isinstance(observation.error, DevicRunError)
    assert "get_weather" in str(observation.error)


def test_waiting_for_a_client_tool_with_tools_ends_the_follow() -> None:
    tracker = RunTracker(CHAT, "q", client_tools=True)
    observation = tracker.observe(
        view("waiting_for_tool_response", pendingToolCalls=[{"id": "c"}])
    )
    assert observation.done
    assert observation.error is None
    assert tracker.pending_tool_calls == [{"id": "c"}]


# ------------------------------------------------------------------ schedule


def test_schedule_grows_by_half_to_the_cap_and_starts_over_on_change() -> None:
    schedule = PollSchedule(0.5, 5.0)
    same = Observation(changed=False)
    waits = [schedule.next_wait(Observation(changed=True))]
    waits += [schedule.next_wait(same) for _ in range(7)]
    assert waits == pytest.approx(
        [0.5, 0.75, 1.125, 1.6875, 2.53125, 3.796875, 5.0, 5.0]
    )
    assert schedule.next_wait(Observation(changed=True)) == 0.5
    assert schedule.next_wait(Observation(slow=True, changed=False)) == 5.0


def test_a_ten_second_quiet_run_costs_few_reads() -> None:
    """The default schedule reads a run that shows nothing new for 10 s this often."""
    schedule = PollSchedule(0.5, 5.0)
    elapsed, reads = 0.0, 1
    wait = schedule.next_wait(Observation(changed=True))
    while elapsed + wait <= 10.0:
        elapsed += wait
        reads += 1
        wait = schedule.next_wait(Observation(changed=False))
    assert reads == 6  # at 0, 0.5, 1.25, 2.4, 4.1 and 6.6 s
    assert elapsed + wait == pytest.approx(10.39, abs=0.01)  # the 7th sees the end
    assert reads + 1 <= 15


# --------------------------------------------------------------------- wire


def lines(text: str) -> list[str]:
    return text.split("\n")


def test_sse_decoder_reads_named_events_and_ignores_comments() -> None:
    decoder = _wire.SSEDecoder()
    stream = (
        ": keep-alive\nevent: snapshot\n"
        'data: {"status": "processing"}\n\n'
        'event: delta\ndata: {"append": "Hi"}\n\n'
    )
    events = [e for line in lines(stream) if (e := decoder.feed(line)) is not None]
    assert [(e.event, e.data) for e in events] == [
        ("snapshot", {"status": "processing"}),
        ("delta", {"append": "Hi"}),
    ]


def test_sse_data_that_is_not_json_is_a_protocol_error() -> None:
    decoder = _wire.SSEDecoder()
    decoder.feed("data: not json")
    with pytest.raises(DevicProtocolError):
        decoder.feed("")


def test_events_rebuild_the_view() -> None:
    state: dict[str, Any] = {}
    for event in [
        _wire.SSEEvent("snapshot", {"success": True, "data": view("processing")}),
        _wire.SSEEvent("partial", {"streamingMessage": msg("s", "assistant", "")}),
        _wire.SSEEvent("delta", {"append": "Hel"}),
        _wire.SSEEvent("delta", {"append": "lo"}),
        _wire.SSEEvent("partial", {"status": "completed"}),
    ]:
        state = _wire.apply_event(state, event)
    assert state["status"] == "completed"
    assert state["streamingMessage"]["content"]["message"] == "Hello"


def test_async_send_answers() -> None:
    def start(payload: Any, sent: str | None = None) -> Any:
        return _wire.parse_run_start(
            json.dumps(payload).encode(), sent_chat_uuid=sent, secret="k"
        )

    assert start({"chatUid": "c-1"}) == _wire.RunStarted("c-1")
    assert start(
        {"success": True, "data": {"chatUid": "c-2", "message": "queued"}}
    ) == (_wire.RunStarted("c-2", "queued"))
    finished = start({"chatUuid": "c-3", "message": "done", "tokens_used": 4})
    assert isinstance(finished, _wire.DevicReply)
    assert finished.text == "done"
    as_list = start([msg("u", "user", "q"), msg("a", "assistant", "A", chatUid="c-4")])
    assert isinstance(as_list, _wire.DevicReply)
    assert as_list.chat_uuid == "c-4"
    with pytest.raises(DevicProtocolError):
        start({"note": "no id"})


def test_the_message_list_answer_is_the_turn_after_the_last_user_message() -> None:
    body = json.dumps(
        [
            msg("u0", "user", "old"),
            msg("a0", "assistant", "old answer"),
            msg("u1", "user", "new"),
            msg("a1", "assistant", "part one"),
            msg("a2", "assistant", "part two", chatUid="c-9"),
        ]
    ).encode()
    reply = _wire.parse_reply(body, sent_chat_uuid=None, secret=None)
    assert reply.text == "part one\n\npart two"
    assert reply.chat_uuid == "c-9"
    assert reply.timestamp == "2023-11-14T22:13:20.000Z"  # epoch ms -> ISO 8601 UTC


def test_chat_totals_prefer_token_usage() -> None:
    assert _wire.chat_totals(
        {"tokenUsage": {"inputTokens": 5, "outputTokens": 2}, "inputTokens": 1}
    ) == (5, 2)
    assert _wire.chat_totals({"inputTokens": 3, "outputTokens": 4}) == (3, 4)
    assert _wire.chat_totals({"name": "x"}) is None


@pytest.mark.parametrize(
    "payload",
    [
        [
            {"chatUID": "a", "lastEditTimestampMs": 1000},
            {"chatUID": "b", "lastEditTimestampMs": 2000},
        ],
        {
            "histories": [
                {"chatUid": "a", "updatedAt": "1970-01-01T00:00:01Z"},
                {"chatUid": "b", "updatedAt": "1970-01-01T00:00:02Z"},
            ]
        },
        {
            "success": True,
            "data": {
                "chats": [
                    {"chatUid": "a", "creationTimestampMs": 1000},
                    {"chatUid": "b", "creationTimestampMs": 2000},
                ]
            },
        },
    ],
)
def test_chat_lists_in_every_shape_come_newest_first(payload: Any) -> None:
    chats = _wire.parse_chat_list(json.dumps(payload).encode(), secret=None)
    assert [c["chat_uuid"] for c in chats] == ["b", "a"]
    assert set(chats[0]) == {"chat_uuid", "name", "created_at", "updated_at"}


def test_nestjs_validation_messages_are_joined() -> None:
    body = json.dumps(
        {"statusCode": 400, "message": ["a is bad", "b is bad"], "error": "Bad Request"}
    )
    error = _wire.api_error(400, {}, body.encode(), secret=None)
    assert error.message == "a is bad; b is bad"
    assert error.code == "Bad Request"


# ------------------------------------------------------------------ convert


def test_stop_cutter_holds_back_a_possible_stop_sequence() -> None:
    cutter = StopCutter(["END"])
    out = cutter.feed(["Hello E", "N", "D and more"]) + cutter.flush()
    assert "".join(out) == "Hello "
    plain = StopCutter(None)
    assert plain.feed(["a", "\n\n", "b"]) == ["a", "\n\n", "b"]


def test_stop_cutter_lets_everything_through_without_a_match() -> None:
    cutter = StopCutter(["###"])
    out = cutter.feed(["ab", "c#", "#d"]) + cutter.flush()
    assert "".join(out) == "abc##d"


def test_usage_is_the_growth_of_the_chat_totals() -> None:
    reply = run_reply("t", CHAT, None, (100, 20), (180, 50))
    assert (reply.input_tokens, reply.output_tokens, reply.tokens_used) == (80, 30, 110)
    unknown = run_reply("t", CHAT, None, None, (180, 50))
    assert unknown.tokens_used is None
    assert unknown.input_tokens is None


def test_totals_before_a_turn_come_from_the_input() -> None:
    from langchain_core.messages import AIMessage, HumanMessage

    reply = AIMessage(
        "x",
        response_metadata={
            "chat_uuid": CHAT,
            "devic_chat_totals": {"input_tokens": 7, "output_tokens": 3},
        },
    )
    assert chat_totals_in([HumanMessage("a")], None) == (0, 0)
    assert chat_totals_in([reply, HumanMessage("b")], CHAT) == (7, 3)
    assert chat_totals_in([HumanMessage("b")], CHAT) is None
