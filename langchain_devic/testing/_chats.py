"""One chat's state, the run that writes it, and the stream that follows it.

A `Chat` is what the platform keeps of a conversation: its messages, its
realtime status (with that status's own fields and the `streamingMessage`
being written), its token totals and the run in progress. A `Run` plays a
script's steps against the chat (it is the steps' `Board`), first in the
request that started it, then, from its first wait on, in a daemon thread; a
stop request lands between two steps. A run may wait for the client's tool
responses: its thread sleeps on the emulator's condition until they are all
in (then it goes on, asking the reply function again once its script is
spent), the run is stopped, or the emulator is reset. While someone follows
the chat, each change also writes the SSE frames it makes into the chat's log;
a `Follower` reads that log from where it joined, for a thread (it waits on
the emulator's condition) or a task (it sleeps in short ticks), so no change
is folded into the next one however late a follower wakes.

Every change goes through the emulator's one condition (its lock): a change
bumps the chat's `version` and wakes every follower and `wait_idle`. No lock
is held across a wait.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import (
    AsyncIterator,
    Callable,
    Generator,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from langchain_devic.testing._render import (
    KEEPALIVE_FRAME,
    Message,
    MessageDetails,
    chat_history_body,
    realtime_body,
    sse_frame,
    stream_frames,
    turn_tokens,
)
from langchain_devic.testing._script import (
    CLOSING_STATUSES,
    UNTIL_ANSWERED,
    RunStatus,
    Step,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["Chat", "Follower", "Run", "RunResult", "now_ms", "tool_names"]

#: The longest a thread following a chat waits before it looks again, in seconds.
WAIT_SLICE = 0.25
#: How often a task following a chat looks for changes, in seconds.
ASYNC_TICK = 0.005
#: How many SSE frames a chat keeps for its followers; one further behind
#: starts again from a snapshot.
LOG_FRAMES = 10_000


def now_ms() -> int:
    """The current time in epoch milliseconds."""
    return time.time_ns() // 1_000_000


def tool_names(tools: Sequence[Mapping[str, Any]]) -> frozenset[str]:
    """The names of client tool schemas: `function.name`, else a top-level `name`."""
    names: set[str] = set()
    for tool in tools:
        function = tool.get("function")
        name = function.get("name") if isinstance(function, Mapping) else None
        if name is None:
            name = tool.get("name")
        if isinstance(name, str):
            names.add(name)
    return frozenset(names)


@dataclass(frozen=True)
class RunResult:
    """A turn as a synchronous send answers it: when its run ended or first waited.

    Attributes:
        status: The status then (`completed`, `error`, `limit_exceeded`,
            `waiting_for_tool_response`).
        fields: That status's own fields (`errorMessage`, `limitExceeded`, ...).
        messages: The chat's messages then.
        written: The texts the assistant had written in the turn.
        tokens: The turn's `(input, output)` tokens so far.
    """

    status: RunStatus
    fields: Mapping[str, Any]
    messages: tuple[Message, ...]
    written: tuple[str, ...]
    tokens: tuple[int, int]


class Chat:
    """One conversation: messages, realtime status, token totals, the run.

    Mutate it only with the emulator's condition held, then call `touch()`.

    Args:
        chat_id: The conversation id.
        assistant_id: The assistant it belongs to.
        order: Its place among the emulator's chats (newest = highest).
        messages: The messages it starts with (a fork copies them).
    """

    def __init__(
        self,
        chat_id: str,
        assistant_id: str,
        order: int,
        messages: Sequence[Message] = (),
    ) -> None:
        self.chat_id = chat_id
        self.assistant_id = assistant_id
        self.order = order
        self.messages: list[Message] = list(messages)
        self.created_ms = self.updated_ms = now_ms()
        self.status: RunStatus = "completed"
        self.fields: dict[str, Any] = {}
        self.streaming: Message | None = None
        self.input_tokens = 0
        self.output_tokens = 0
        self.metadata: Mapping[str, Any] | None = None
        #: What the sends set on the chat (`tenantId`, `subtenantId`,
        #: `userName`, `tags`, `llm`, `provider`), shown by its history.
        self.options: dict[str, Any] = {}
        #: The feedback on its messages, by message id (`FeedbackEntry`).
        self.feedback: dict[str, dict[str, Any]] = {}
        #: A turn holds the chat (from its check to the end of its run).
        self.busy = False
        self.run: Run | None = None
        #: Bumped by every change a reader could see.
        self.version = 0
        #: Set when the emulator forgets the chat (`reset()`): followers stop.
        self.gone = False
        #: The SSE frames of the changes since the first follower joined, each
        #: with whether its change ended the stream; `log_end` counts them all.
        self.log: deque[tuple[bytes, bool]] = deque(maxlen=LOG_FRAMES)
        self.log_end = 0
        self._followers = 0
        self._logged_view: dict[str, Any] | None = None
        self._numbers = 0

    def touch(self) -> None:
        """Record a change (call with the condition held, then notify).

        While the chat is followed, the change's SSE frames go into the log.
        """
        self.version += 1
        self.updated_ms = max(now_ms(), self.updated_ms)
        if self._logged_view is None:
            return
        new = self.view()
        frames = stream_frames(self._logged_view, new)
        self._logged_view = new
        for index, (event, data) in enumerate(frames, start=1):
            ends = index == len(frames) and new["status"] in CLOSING_STATUSES
            self.log.append((sse_frame(event, data), ends))
            self.log_end += 1

    def follow(self) -> tuple[dict[str, Any], int]:
        """Join the followers: the view now, and where the log is (condition held)."""
        view = self.view()
        if self._followers == 0:
            self._logged_view = view
        self._followers += 1
        return view, self.log_end

    def unfollow(self) -> None:
        """Leave the followers; the last one out clears the log (condition held)."""
        self._followers -= 1
        if self._followers == 0:
            self._logged_view = None
            self.log.clear()

    def logged(self, cursor: int) -> list[tuple[bytes, bool]] | None:
        """The log's frames from `cursor` on, or `None` if they are gone."""
        start = self.log_end - len(self.log)
        if cursor < start:
            return None
        return list(self.log)[cursor - start :]

    def number(self, kind: str) -> str:
        """A new id of `kind` for this chat: a message, a tool call, a thread."""
        self._numbers += 1
        return f"{kind}_{self.chat_id[:8]}_{self._numbers}"

    def add(
        self, role: str, text: str | None, **details: Unpack[MessageDetails]
    ) -> Message:
        """Append a finished message (call with the condition held)."""
        message = Message(self.number("msg"), role, text, now_ms(), **details)
        self.messages.append(message)
        return message

    def texts(self) -> list[str | None]:
        """Every message's text, oldest first."""
        return [message.text for message in self.messages]

    def view(self) -> dict[str, Any]:
        """The realtime view (`RealtimeChatHistory`)."""
        return realtime_body(
            chat_id=self.chat_id,
            status=self.status,
            updated_ms=self.updated_ms,
            history=self.messages,
            streaming=self.streaming,
            fields=self.fields,
        )

    def history(self, *, content: bool = True) -> dict[str, Any]:
        """The stored chat (`ChatHistory`) with its token totals."""
        return chat_history_body(
            chat_id=self.chat_id,
            assistant_id=self.assistant_id,
            history=self.messages,
            created_ms=self.created_ms,
            edited_ms=self.updated_ms,
            tokens=(self.input_tokens, self.output_tokens),
            metadata=self.metadata,
            content=content,
            options=self.options,
        )


class Run:
    """A script played against a chat, step by step, in real time.

    The run is the steps' `Board`. `advance()` plays up to the next wait and
    returns it (`None` once the run is over); `start(wait)` plays the rest in
    a daemon thread. A `CallTools` step makes it wait for the client's tool
    responses (`answer()`); once every call is answered it goes on, and when
    its script is spent it asks the reply function again (`ask_again`) and
    plays that script too, as many rounds as the assistant calls tools. At its
    end the run sets the final status (`completed` unless a step ended it),
    adds the turn's tokens to the chat's totals, frees the chat and leaves
    `runs`.

    Args:
        chat: The chat it writes.
        steps: The script.
        changed: The emulator's condition (its lock).
        runs: The emulator's set of runs in progress.
        write_pieces: The emulator's default `Write` pieces.
        write_interval: The emulator's default `Write` interval, in seconds.
        tools: The client tools the send declared (OpenAI-style schemas).
        ask_again: Called (in the run's thread, no lock held) when the client
            answered the last step's calls and the script is spent: the next
            round's script.
    """

    def __init__(
        self,
        chat: Chat,
        steps: Sequence[Step],
        *,
        changed: threading.Condition,
        runs: set[Run],
        write_pieces: int,
        write_interval: float,
        tools: Sequence[Mapping[str, Any]] = (),
        ask_again: Callable[[Run], Sequence[Step]],
    ) -> None:
        self.chat = chat
        self.steps = tuple(steps)
        self._changed = changed
        self._runs = runs
        self._pieces = write_pieces
        self._interval = write_interval
        self._ask_again = ask_again
        self._before = chat.texts()
        #: The texts the assistant wrote in this run, in order.
        self.written: list[str] = []
        #: Set by a stop request: the run ends at the next step boundary (or
        #: at once, if it waits for the client).
        self.stop_requested = False
        #: Set by `reset()`: the run ends at once, wherever it is.
        self.cancelled = threading.Event()
        #: The status a step ended the run with (`error`, `limit_exceeded`).
        self.ended: RunStatus | None = None
        self.done = False
        #: What a synchronous send answers; set when the run first waits for
        #: the client or ends, whichever comes first.
        self.result: RunResult | None = None
        #: The client tools the chat has now: the send's, then those restated
        #: on the first item of each tool response.
        self.tools: tuple[Mapping[str, Any], ...] = tuple(tools)
        #: Whether `tools` come from a tool response rather than the send.
        self.tools_restated = False
        #: The client tool calls the run waits on, in the order they were made.
        self.pending: tuple[Mapping[str, Any], ...] = ()
        #: The client's answers of this turn, `{"tool_call_id", "name", "content"}`.
        self.answers: list[dict[str, Any]] = []
        self._answered = False
        self._driver = self._drive()

    @property
    def waiting(self) -> bool:
        """Whether the run waits for the client's tool responses (not stopped)."""
        return bool(self.pending) and not self._halted()

    # -------------------------------------------------------------- playing

    def advance(self) -> float | None:
        """Play until the next wait; return it, or `None` when the run is over."""
        for wait in self._driver:
            if wait > 0:
                return wait
        return None

    def start(self, wait: float) -> None:
        """Play the rest in a daemon thread, beginning with `wait` seconds."""
        thread = threading.Thread(
            target=self._play,
            args=(wait,),
            name=f"devic-run-{self.chat.chat_id[:8]}",
            daemon=True,
        )
        thread.start()

    def _play(self, wait: float | None) -> None:
        while wait is not None:
            if wait == UNTIL_ANSWERED:
                with self._changed:
                    self._changed.wait_for(lambda: not self.waiting)
            else:
                self.cancelled.wait(wait)
            if self.cancelled.is_set():
                self._driver.close()
                return
            wait = self.advance()

    def _halted(self) -> bool:
        return self.stop_requested or self.cancelled.is_set()

    def _drive(self) -> Generator[float, None, None]:
        try:
            script: Sequence[Step] = self.steps
            while script:
                for step in script:
                    if self._halted():
                        break
                    self._answered = False
                    yield from step.play(self)
                    if self.ended is not None:
                        break
                again = self._answered and self.ended is None and not self._halted()
                script = self._ask_again(self) if again else ()
        except Exception as exc:  # a broken step must not leave the chat busy
            failure = f"The emulator's step failed: {type(exc).__name__}: {exc}"
            self.end("error", errorMessage=failure, error=failure)
        finally:
            self._finish()

    def _finish(self) -> None:
        with self._changed:
            chat = self.chat
            if chat.streaming is not None:  # cancelled mid-message
                chat.messages.append(chat.streaming)
                chat.streaming = None
            if self.ended is None:
                closed = {"stopReason": "tool_wait_closed"} if self.pending else {}
                chat.status, chat.fields = "completed", closed
            self.pending = ()
            tokens = (0, 0)
            if self.written or self.ended is None:
                tokens = turn_tokens(self._before, self.written)
                chat.input_tokens += tokens[0]
                chat.output_tokens += tokens[1]
            if self.result is None:
                self.result = self._result(tokens)
            chat.busy = False
            if chat.run is self:
                chat.run = None
            self.done = True
            self._runs.discard(self)
            self._changed_now()

    def _result(self, tokens: tuple[int, int]) -> RunResult:
        """The turn as it stands, for a synchronous send (condition held)."""
        return RunResult(
            status=self.chat.status,
            fields=dict(self.chat.fields),
            messages=tuple(self.chat.messages),
            written=tuple(self.written),
            tokens=tokens,
        )

    # ------------------------------------------------------ the client's side

    def answer(self, responses: Sequence[Mapping[str, Any]]) -> None:
        """Take the client's tool responses (checked by the core; condition held).

        Each joins the history as a `tool` message (a string content as its
        text, any other JSON as its `data`); the client tools become those
        restated on the first response (none if it has no `tools`). With calls
        still pending the run keeps waiting on them; with none, it is
        `processing` again and its thread goes on.
        """
        names = {call["id"]: call["function"]["name"] for call in self.pending}
        for response in responses:
            call_id, content = response["tool_call_id"], response["content"]
            if isinstance(content, str):
                self.chat.add("tool", content, tool_call_id=call_id)
            else:
                self.chat.add("tool", None, tool_call_id=call_id, data=content)
            self.answers.append(
                {"tool_call_id": call_id, "name": names[call_id], "content": content}
            )
        self.tools = tuple(responses[0].get("tools") or ())
        self.tools_restated = True
        answered = {response["tool_call_id"] for response in responses}
        self.pending = tuple(c for c in self.pending if c["id"] not in answered)
        if self.pending:
            self.chat.status = "waiting_for_tool_response"
            self.chat.fields = {"pendingToolCalls": [dict(c) for c in self.pending]}
        else:
            self._answered = True
            self.chat.status, self.chat.fields = "processing", {}
        self._changed_now()

    def _changed_now(self) -> None:
        """Record a change of the chat and wake its followers (condition held)."""
        self.chat.touch()
        self._changed.notify_all()

    # ------------------------------------------------------------ the board

    @property
    def write_pieces(self) -> int:
        """The emulator's default number of pieces of a `Write`."""
        return self._pieces

    @property
    def write_interval(self) -> float:
        """The emulator's default seconds between two pieces of a `Write`."""
        return self._interval

    @property
    def client_tool_names(self) -> frozenset[str]:
        """The names of the client tools the chat has now."""
        with self._changed:
            return tool_names(self.tools)

    def set_status(self, status: RunStatus, **fields: Any) -> None:
        """Set the realtime status and its fields (the previous fields go)."""
        with self._changed:
            if self.chat.status == status and self.chat.fields == fields:
                return
            self.chat.status, self.chat.fields = status, dict(fields)
            self._changed_now()

    def open_message(self) -> None:
        """Start an empty `streamingMessage`."""
        with self._changed:
            self.chat.streaming = Message(
                uid=self.chat.number("msg"),
                role="assistant",
                text="",
                timestamp=now_ms(),
            )
            self._changed_now()

    def append(self, text: str) -> None:
        """Add text to the `streamingMessage`."""
        with self._changed:
            streaming = self.chat.streaming
            if streaming is not None:
                grown = (streaming.text or "") + text
                self.chat.streaming = replace(streaming, text=grown)
                self._changed_now()

    def close_message(self) -> None:
        """Move the `streamingMessage` into the history."""
        with self._changed:
            streaming = self.chat.streaming
            if streaming is not None:
                self.chat.streaming = None
                self.chat.messages.append(replace(streaming, timestamp=now_ms()))
                self.written.append(streaming.text or "")
                self._changed_now()

    def add_message(
        self, role: str, text: str | None, **details: Unpack[MessageDetails]
    ) -> None:
        """Append a finished message to the history (an assistant's text is written)."""
        with self._changed:
            self.chat.add(role, text, **details)
            if role == "assistant" and text:
                self.written.append(text)
            self._changed_now()

    def new_id(self, kind: str) -> str:
        """A new id for a tool call (`"call"`) or a sub-thread (`"thread"`)."""
        with self._changed:
            return self.chat.number(kind)

    def now_ms(self) -> int:
        """The current time in epoch milliseconds."""
        return now_ms()

    def end(self, status: RunStatus, **fields: Any) -> None:
        """End the run with `status` and its fields."""
        self.ended = status
        self.set_status(status, **fields)

    def wait_for_client(self, calls: Sequence[Mapping[str, Any]]) -> None:
        """Wait on `calls`: `waiting_for_tool_response` with them in `pendingToolCalls`.

        The first such wait is what a synchronous send answers.
        """
        with self._changed:
            self.pending = tuple(calls)
            self.chat.status = "waiting_for_tool_response"
            self.chat.fields = {"pendingToolCalls": [dict(c) for c in calls]}
            if self.result is None:
                self.result = self._result(turn_tokens(self._before, self.written))
            self._changed_now()


class Follower:
    """The SSE frames of one chat, as they happen, for a thread or a task.

    First a `snapshot` (the whole realtime view), then a `delta` for each piece
    of text added to the `streamingMessage` and a `partial` for every other
    change; the stream ends after a closing status (`completed`, `error`,
    `limit_exceeded`, `waiting_for_tool_response`), or when the chat is
    forgotten. A quiet stream sends a keep-alive comment every `keepalive`
    seconds.

    Args:
        chat: The chat followed.
        changed: The emulator's condition (its lock).
        keepalive: Seconds of quiet before a keep-alive comment.
    """

    def __init__(
        self, chat: Chat, changed: threading.Condition, keepalive: float
    ) -> None:
        self._chat = chat
        self._changed = changed
        self._keepalive = keepalive
        self._cursor = -1

    def iterate(self, stop: Callable[[], bool] | None = None) -> Iterator[bytes]:
        """The frames, waiting in this thread; ends early once `stop()` is true."""
        for item in self._follow():
            if isinstance(item, bytes):
                yield item
                continue
            with self._changed:
                self._changed.wait_for(
                    lambda: self._moved() or (stop is not None and stop()), item
                )
            if stop is not None and stop():
                return

    async def aiterate(
        self, stop: Callable[[], bool] | None = None
    ) -> AsyncIterator[bytes]:
        """The frames, waiting as a task; ends early once `stop()` is true."""
        for item in self._follow():
            if isinstance(item, bytes):
                yield item
                continue
            waited = 0.0
            while waited < item and not self._moved():
                if stop is not None and stop():
                    return
                await asyncio.sleep(ASYNC_TICK)
                waited += ASYNC_TICK
            if stop is not None and stop():
                return

    def _moved(self) -> bool:
        return self._chat.log_end != self._cursor or self._chat.gone

    def _follow(self) -> Generator[bytes | float, None, None]:
        """Frames to send (bytes), and waits for a change (at most float seconds)."""
        chat = self._chat
        with self._changed:
            view, self._cursor = chat.follow()
        try:
            yield sse_frame("snapshot", view)
            if view["status"] in CLOSING_STATUSES:
                return
            quiet_since = time.monotonic()
            while True:
                yield min(WAIT_SLICE, self._keepalive)
                with self._changed:
                    if chat.gone:
                        return
                    frames = chat.logged(self._cursor)
                    if frames is None:  # fell behind the log: start again
                        view = chat.view()
                        ends = view["status"] in CLOSING_STATUSES
                        frames = [(sse_frame("snapshot", view), ends)]
                    self._cursor = chat.log_end
                for frame, ends in frames:
                    yield frame
                    if ends:
                        return
                if frames:
                    quiet_since = time.monotonic()
                elif time.monotonic() - quiet_since >= self._keepalive:
                    quiet_since = time.monotonic()
                    yield KEEPALIVE_FRAME
        finally:
            with self._changed:
                chat.unfollow()
