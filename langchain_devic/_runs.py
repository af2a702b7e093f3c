"""Following a platform run: the pure "what next?" step and the poll schedule.

A run is watched through its realtime view (polled, or rebuilt from a stream of
events). `RunTracker.observe(view)` reads one view and says what it adds: the
reply text that is new since the last view, progress events (a status change, a
server-side tool step), and whether the run goes on, ended, or failed. The
clients in `_client.py` only read and sleep; everything they decide is here.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from langchain_devic import _wire
from langchain_devic.errors import DevicError, DevicRateLimitError, DevicRunError

#: Every run status Devic reports, and what following a run does on it: keep
#: following (`keep`; `slow`: at the longest poll interval), stop with the
#: reply (`done`), stop waiting for the client's tool results (`wait`: an error
#: when the caller has no tools), or raise (`fail`). A status not listed is
#: followed like `keep`. The emulator's statuses are held against this table
#: by a test.
STATUSES: dict[str, Literal["keep", "slow", "done", "wait", "fail"]] = {
    "buffering": "keep",
    "processing": "keep",
    "handed_off": "slow",
    "paused_for_resume": "slow",
    "completed": "done",
    "waiting_for_tool_response": "wait",
    "error": "fail",
    "limit_exceeded": "fail",
}
#: Statuses that end the run.
FINISHED = frozenset(s for s, kind in STATUSES.items() if kind == "done")
#: Statuses where the run stopped moving: it ended, or waits for client tools.
SETTLED = FINISHED | {s for s, kind in STATUSES.items() if kind == "wait"}
#: Statuses where Devic waits for something slow; followed at the longest interval.
SLOW = frozenset(s for s, kind in STATUSES.items() if kind == "slow")
#: Statuses after which the turn is over without a reply (or the client's
#: tools are needed): a turn that ended so is not followed again.
ENDED_BADLY = frozenset(s for s, kind in STATUSES.items() if kind in ("fail", "wait"))
#: Separator between two assistant messages of one turn (emitted on its own).
SEPARATOR = "\n\n"


@dataclass(frozen=True)
class Observation:
    """What one view added: new text pieces, progress events, and the verdict.

    `done` is true when the run ended (completed, or waits for client tools);
    `error` is the error to raise when it failed; `slow` asks for the longest
    poll interval; `changed` says whether anything moved since the last view.
    """

    text: list[str] = field(default_factory=list)
    progress: list[dict[str, Any]] = field(default_factory=list)
    done: bool = False
    error: DevicError | None = None
    slow: bool = False
    changed: bool = True


class RunTracker:
    """What one run has shown so far; one instance per followed run.

    Args:
        chat_uuid: The chat the run belongs to.
        sent_text: The message this client sent, to find its turn in the
            history (`None`: the last user message opens the turn).
        client_tools: Whether the caller can answer client tool calls; without,
            a run waiting for one is a `DevicRunError`.
        answered: The tool calls this client has just answered (a turn opened
            by tool results): the turn starts after them, and a view that still
            shows one of them pending is older than the answer and is skipped.
    """

    def __init__(
        self,
        chat_uuid: str,
        sent_text: str | None = None,
        *,
        client_tools: bool = False,
        answered: frozenset[str] = frozenset(),
    ) -> None:
        self.chat_uuid = chat_uuid
        self.client_tools = client_tools
        self.answered = answered
        self.sent_text = sent_text
        self.view: dict[str, Any] = {}
        self.status: str | None = None
        self._emitted: list[str] = []
        self._reported_steps: set[str] = set()
        self._fingerprint: tuple[Any, ...] | None = None

    # ----------------------------------------------------------------- results

    @property
    def text(self) -> str:
        """The reply text emitted so far (the whole reply once the run ended)."""
        return SEPARATOR.join(self._emitted)

    @property
    def pending_tool_calls(self) -> list[dict[str, Any]]:
        """The client tool calls the run waits for (empty unless it waits)."""
        return _wire.pending_calls(self.view)

    @property
    def timestamp(self) -> str | None:
        """When the last message of the turn was written (ISO 8601), if known."""
        turn = self._turn()
        if turn:
            return _wire.iso_timestamp(turn[-1].get("timestamp"))
        return _wire.iso_timestamp(self.view.get("lastUpdatedAt"))

    # ------------------------------------------------------------------- steps

    def observe(self, view: Mapping[str, Any]) -> Observation:
        """Read one realtime view; what it adds and whether the run goes on."""
        if self.answered & _wire.pending_call_ids(view):
            return Observation(changed=False)  # written before our answers landed
        self.view = dict(view)
        status = str(view.get("status"))
        progress: list[dict[str, Any]] = []
        if status != self.status:
            event: dict[str, Any] = {"chat_uuid": self.chat_uuid, "status": status}
            if status == "handed_off" and view.get("handedOffSubThreadId"):
                event["handed_off_to"] = view["handedOffSubThreadId"]
            progress.append(event)
            self.status = status
        progress += self._new_steps(status)
        fingerprint = self._fingerprint_of(view)
        changed = fingerprint != self._fingerprint
        self._fingerprint = fingerprint
        return Observation(
            text=self._new_text(),
            progress=progress,
            done=status in SETTLED,
            error=self._failure(status),
            slow=status in SLOW,
            changed=changed,
        )

    def _turn(self) -> list[Mapping[str, Any]]:
        """This turn's assistant messages, the one being written last."""
        messages = _wire.view_messages(self.view)
        start = self._turn_start(messages)
        if start is None:
            return []
        turn = _wire.assistant_messages(messages[start:])
        streaming = self.view.get("streamingMessage")
        if isinstance(streaming, Mapping) and not any(
            streaming.get("uid") is not None and m.get("uid") == streaming.get("uid")
            for m in turn
        ):
            turn.append(streaming)
        return turn

    def _turn_start(self, messages: list[Any]) -> int | None:
        """Index after the message this client sent, `None` while it is not there.

        While Devic buffers the message, the history may not show it yet: the
        last user message is then an earlier turn's, whose reply must not be
        taken for this one's. A sent text is therefore matched (Devic may merge
        buffered messages, so containment counts). A turn opened by tool results
        starts after the last of them (or the message that made the calls).
        """
        if self.answered:
            return self._after_answers(messages)
        for index in range(len(messages) - 1, -1, -1):
            message = messages[index]
            if not isinstance(message, Mapping):
                continue
            if message.get("role") != "user":
                continue
            text = _wire.message_text(message)
            if self.sent_text is None or (text is not None and self.sent_text in text):
                return index + 1
            if self.status in SETTLED:
                return index + 1  # settled: the last sent message is the turn's
            return None
        return 0 if self.status in SETTLED or self.sent_text is None else None

    def _after_answers(self, messages: list[Any]) -> int | None:
        """Index after this client's tool results, `None` while they are not there."""
        for index in range(len(messages) - 1, -1, -1):
            message = messages[index]
            if not isinstance(message, Mapping):
                continue
            if message.get("role") == "tool":
                if message.get("tool_call_id") in self.answered:
                    return index + 1
                continue
            calls = message.get("tool_calls")
            if isinstance(calls, list) and any(
                isinstance(call, Mapping) and call.get("id") in self.answered
                for call in calls
            ):
                return index + 1
        return None

    def _new_text(self) -> list[str]:
        """The pieces of reply text this view adds, separators on their own."""
        texts = [
            text for message in self._turn() if (text := _wire.message_text(message))
        ]
        pieces: list[str] = []
        for index, text in enumerate(texts):
            if index < len(self._emitted):
                before = self._emitted[index]
                if text.startswith(before) and len(text) > len(before):
                    pieces.append(text[len(before) :])
                    self._emitted[index] = text
                continue
            if index > 0:
                pieces.append(SEPARATOR)
            pieces.append(text)
            self._emitted.append(text)
        return pieces

    def _new_steps(self, status: str) -> list[dict[str, Any]]:
        """Server-side steps (tool calls, summaries) not reported yet."""
        events = []
        for message in self._turn():
            uid = message.get("uid")
            calls = message.get("tool_calls")
            summary = message.get("summary")
            if not (calls or summary) or uid is None or uid in self._reported_steps:
                continue
            self._reported_steps.add(str(uid))
            event: dict[str, Any] = {"chat_uuid": self.chat_uuid, "status": status}
            if isinstance(summary, str):
                event["summary"] = summary
            names = [
                c["function"]["name"]
                for c in calls or []
                if isinstance(c, Mapping)
                and isinstance(c.get("function"), Mapping)
                and isinstance(c["function"].get("name"), str)
            ]
            if names:
                event["tool"] = ", ".join(names)
            events.append(event)
        return events

    @staticmethod
    def _fingerprint_of(view: Mapping[str, Any]) -> tuple[Any, ...]:
        messages = _wire.view_messages(view)
        last = messages[-1] if messages else None
        streaming = view.get("streamingMessage")
        return (
            view.get("status"),
            len(messages),
            last.get("uid") if isinstance(last, Mapping) else None,
            len(_wire.message_text(streaming) or ""),
            view.get("lastUpdatedAt"),
        )

    def _failure(self, status: str) -> DevicError | None:
        view = self.view
        if status == "error":
            reason = next(
                (
                    text
                    for value in (
                        view.get("errorMessage"),
                        view.get("error"),
                        view.get("stopReason"),
                    )
                    if (text := _reason(value))
                ),
                "no reason given",
            )
            return DevicRunError(
                f"Devic's run in chat {self.chat_uuid} failed: {reason}",
                chat_uuid=self.chat_uuid,
                status=status,
            )
        if status == "waiting_for_tool_response" and not self.client_tools:
            names = ", ".join(
                str(call.get("function", {}).get("name"))
                for call in self.pending_tool_calls
            )
            return DevicRunError(
                f"The assistant in chat {self.chat_uuid} waits for a client-side "
                f"tool ({names or 'unnamed'}) that this model has no tools for. "
                "Bind the tools the assistant expects, or stop the chat "
                "(it stays blocked until every pending call is answered).",
                chat_uuid=self.chat_uuid,
                status=status,
            )
        if status == "limit_exceeded":
            limit = view.get("limitExceeded")
            limit = limit if isinstance(limit, Mapping) else {}
            message = limit.get("message")
            return DevicRateLimitError(
                message if isinstance(message, str) else "A usage limit was reached.",
                status_code=429,
                code="TENANT_LIMIT_EXCEEDED",
                retry_after=_seconds_until(limit.get("resetsAt")),
                is_retryable=False,
            )
        return None


def _reason(value: Any) -> str | None:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, Mapping):
        return _reason(value.get("message"))
    return None


def _seconds_until(resets_at_ms: Any) -> float | None:
    if isinstance(resets_at_ms, bool) or not isinstance(resets_at_ms, int | float):
        return None
    return max(0.0, resets_at_ms / 1000 - time.time())


class PollSchedule:
    """When to read next: at once, then `first`, growing by half up to `longest`.

    The interval goes back to `first` whenever the view changed, and jumps to
    `longest` while Devic waits for something slow (a hand-off).
    """

    GROWTH = 1.5

    def __init__(self, first: float, longest: float) -> None:
        self.first = first
        self.longest = max(longest, first)
        self._interval = first

    def next_wait(self, observation: Observation) -> float:
        """Seconds to sleep before the next read, after `observation`."""
        if observation.slow:
            return self.longest
        if observation.changed:
            self._interval = self.first
            return self.first
        self._interval = min(self._interval * self.GROWTH, self.longest)
        return self._interval
