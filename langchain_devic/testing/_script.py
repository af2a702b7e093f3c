"""Scripted runs: every step a platform run can take, each kind in one place.

A reply function may return a script instead of a string: a sequence of steps
(a plain string in it is a `Write`). A run plays its steps in order, in real
time, so a client can watch it move: each step is data (a frozen dataclass)
whose one `play()` method says what the step does to the chat (through a
`Board`, which the core implements) and how long it waits (each `yield` is a
wait in seconds, `UNTIL_ANSWERED` a wait for the client's tool responses). A
stop request lands between two steps, or ends a wait for the client at once; a
step that ends the run (`Fail`, `LimitExceeded`) makes the steps after it
unreachable.

A new kind is its class here, with its `play()`, and its name in `Step`; a
kind that only holds a status for a while is a `_Held` naming that status.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import (
    TYPE_CHECKING,
    Any,
    ClassVar,
    Literal,
    Protocol,
    TypeAlias,
    get_args,
)

from langchain_devic.testing._render import MessageDetails

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = [
    "CLOSING_STATUSES",
    "RUN_STATUSES",
    "STEP_TYPES",
    "UNTIL_ANSWERED",
    "Board",
    "Buffer",
    "CallTools",
    "ClientCall",
    "Fail",
    "HandOff",
    "LimitExceeded",
    "Pause",
    "RunStatus",
    "ServerTool",
    "Step",
    "Write",
    "as_script",
    "split_text",
]

#: The statuses of Devic's realtime view.
RunStatus: TypeAlias = Literal[
    "buffering",
    "processing",
    "completed",
    "error",
    "waiting_for_tool_response",
    "handed_off",
    "limit_exceeded",
    "paused_for_resume",
]
#: The same statuses as values, read off `RunStatus` so the two cannot drift.
RUN_STATUSES: tuple[RunStatus, ...] = get_args(RunStatus)
#: The statuses after which a stream closes: the run ended, or waits on the client.
CLOSING_STATUSES: frozenset[str] = frozenset(
    {"completed", "error", "limit_exceeded", "waiting_for_tool_response"}
)

#: What a step's `play()` is: it yields waits (seconds) and returns when done.
Playing: TypeAlias = Generator[float, None, None]
#: The wait a step yields after `Board.wait_for_client`: it lasts until the
#: client has answered every pending call, the run is stopped, or cancelled.
UNTIL_ANSWERED = math.inf


class Board(Protocol):
    """What a step may do to the chat its run belongs to (the core implements it).

    Every method takes the emulator's lock itself and wakes whoever follows
    the chat (a stream, `wait_idle`); a step never holds the lock across a wait.
    """

    @property
    def write_pieces(self) -> int:
        """How many pieces a `Write` without its own `pieces` is cut into."""
        ...

    @property
    def write_interval(self) -> float:
        """Seconds between two pieces of a `Write` without its own `interval`."""
        ...

    @property
    def client_tool_names(self) -> frozenset[str]:
        """The names of the client tools the chat has now (declared or restated)."""
        ...

    @property
    def tools_restated(self) -> bool:
        """Whether the client tools come from a tool response, not from the send."""
        ...

    def set_status(self, status: RunStatus, **fields: Any) -> None:
        """Set the realtime status and its own fields (the previous ones go)."""
        ...

    def open_message(self) -> None:
        """Start the assistant's `streamingMessage`, empty."""
        ...

    def append(self, text: str) -> None:
        """Add text to the `streamingMessage`."""
        ...

    def close_message(self) -> None:
        """Move the `streamingMessage` into the chat history."""
        ...

    def add_message(
        self, role: str, text: str | None, **details: Unpack[MessageDetails]
    ) -> None:
        """Append a finished message to the chat history."""
        ...

    def new_id(self, kind: str) -> str:
        """A new id for a tool call (`"call"`) or a sub-thread (`"thread"`)."""
        ...

    def now_ms(self) -> int:
        """The current time in epoch milliseconds."""
        ...

    def end(self, status: RunStatus, **fields: Any) -> None:
        """End the run with `status` (`error`, `limit_exceeded`) and its fields."""
        ...

    def wait_for_client(self, calls: Sequence[Mapping[str, Any]]) -> None:
        """Hand `calls` to the client: `waiting_for_tool_response` with them pending.

        The step then yields `UNTIL_ANSWERED`.
        """
        ...


# ----------------------------------------------------------------- the steps


@dataclass(frozen=True)
class _Timed:
    """A step that lasts `seconds` (checked: a number >= 0)."""

    seconds: float = 0.05

    def __post_init__(self) -> None:
        _check_seconds(self.seconds, "seconds")


@dataclass(frozen=True)
class Write:
    """The assistant writes a message, in pieces (one assistant message).

    While it writes, the realtime view is `processing` with a growing
    `streamingMessage` (an SSE stream sends each piece as a `delta`); then the
    message joins the chat history. Several `Write` steps make several
    assistant messages.

    Attributes:
        text: The message.
        pieces: How many pieces it is written in; `None` takes the emulator's
            `write_pieces`.
        interval: Seconds before each piece; `None` takes the emulator's
            `write_interval`.
    """

    text: str
    pieces: int | None = None
    interval: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.text, str):
            msg = f"Write text must be a str, got {type(self.text).__name__}."
            raise TypeError(msg)
        if self.pieces is not None and (
            isinstance(self.pieces, bool)
            or not isinstance(self.pieces, int)
            or self.pieces < 1
        ):
            msg = f"pieces must be an int >= 1, got {self.pieces!r}."
            raise ValueError(msg)
        if self.interval is not None:
            _check_seconds(self.interval, "interval")

    def play(self, board: Board) -> Playing:
        """Write the text piece by piece, then file the message."""
        pieces = board.write_pieces if self.pieces is None else self.pieces
        interval = board.write_interval if self.interval is None else self.interval
        board.set_status("processing")
        board.open_message()
        for piece in split_text(self.text, pieces):
            if interval > 0:
                yield interval
            board.append(piece)
        board.close_message()


@dataclass(frozen=True)
class ServerTool:
    """The assistant runs one of its own (server-side) tools.

    An assistant message with the tool call (`tool_calls` and `summary`, no
    text) joins the history, the tool works for `seconds` (status stays
    `processing`), then a `tool` message with the result and the summary.

    Attributes:
        name: The tool's name.
        summary: The one-line description Devic shows for the call.
        seconds: How long the tool works.
        arguments: The call's arguments (sent as a JSON string).
        result: The tool's result text.
    """

    name: str
    summary: str = ""
    seconds: float = 0.05
    arguments: Mapping[str, Any] = field(default_factory=dict)
    result: str = "ok"

    def __post_init__(self) -> None:
        _check_seconds(self.seconds, "seconds")

    def play(self, board: Board) -> Playing:
        """File the call, wait for the tool, file its result."""
        call_id = board.new_id("call")
        board.set_status("processing")
        board.add_message(
            "assistant",
            None,
            tool_calls=(_tool_call(call_id, self.name, self.arguments),),
            summary=self.summary or None,
        )
        if self.seconds > 0:
            yield self.seconds
        board.add_message(
            "tool", self.result, tool_call_id=call_id, summary=self.summary or None
        )


@dataclass(frozen=True)
class HandOff(_Timed):
    """The assistant hands the work to a sub-agent and waits for it.

    A `hand_off_subagent` tool call joins the history; the status is
    `handed_off` with `handedOffSubThreadId` for `seconds`; then the
    sub-agent's result joins the history and the status is `processing` again.

    Attributes:
        seconds: How long the sub-agent works.
        summary: The one-line description of the hand-off.
        result: The sub-agent's result text.
    """

    seconds: float = 0.1
    summary: str = "Handed off to a sub-agent"
    result: str = "Sub-agent finished"

    def play(self, board: Board) -> Playing:
        """Call the sub-agent, stay handed off, file its result."""
        call_id = board.new_id("call")
        thread = board.new_id("thread")
        board.add_message(
            "assistant",
            None,
            tool_calls=(_tool_call(call_id, "hand_off_subagent", {}),),
            summary=self.summary,
        )
        board.set_status("handed_off", handedOffSubThreadId=thread)
        if self.seconds > 0:
            yield self.seconds
        board.add_message(
            "tool", self.result, tool_call_id=call_id, summary=self.summary
        )
        board.set_status("processing")


@dataclass(frozen=True)
class _Held(_Timed):
    """A step that holds the run in one status for `seconds`, then `processing`.

    The kinds differ only in the status held and that status's own fields, so
    they share this `play()` and say just those two.
    """

    #: The status the step holds.
    _status: ClassVar[RunStatus]

    def play(self, board: Board) -> Playing:
        """Hold the status (with its fields) for `seconds`, then `processing`."""
        board.set_status(self._status, **self._fields(board))
        if self.seconds > 0:
            yield self.seconds
        board.set_status("processing")

    def _fields(self, board: Board) -> dict[str, Any]:
        """The held status's own fields (none unless a kind has some)."""
        return {}


@dataclass(frozen=True)
class Buffer(_Held):
    """The message waits in Devic's input buffer (status `buffering`) first.

    Attributes:
        seconds: How long it stays buffered, before `processing`.
    """

    seconds: float = 0.05
    _status: ClassVar[RunStatus] = "buffering"


@dataclass(frozen=True)
class Pause(_Held):
    """The assistant pauses itself (status `paused_for_resume`, with `pausedUntil`).

    Attributes:
        seconds: How long it stays paused (until `pausedUntil`), before
            `processing`.
    """

    seconds: float = 0.1
    _status: ClassVar[RunStatus] = "paused_for_resume"

    def _fields(self, board: Board) -> dict[str, Any]:
        return {"pausedUntil": board.now_ms() + round(self.seconds * 1000)}


@dataclass(frozen=True)
class Fail:
    """The run fails: status `error` with `errorMessage` (and `error`); it ends.

    A synchronous send answers 500 with the message instead of the reply.

    Attributes:
        message: What went wrong.
    """

    message: str = "The assistant failed"

    def play(self, board: Board) -> Playing:
        """End the run in `error`."""
        board.end("error", errorMessage=self.message, error=self.message)
        yield from ()


@dataclass(frozen=True)
class LimitExceeded:
    """A tenant usage limit stops the run: status `limit_exceeded`; it ends.

    The realtime view carries `limitExceeded` `{message, current, limit,
    resetsAt (epoch ms), blockingRule}`. A synchronous send answers 429
    `TENANT_LIMIT_EXCEEDED` with these `details` and a `Retry-After` header.

    Attributes:
        message: Why the message was refused.
        resets_in: Seconds until the limit resets (`resetsAt`).
        current: The usage counted so far.
        limit: The limit.
    """

    message: str = "Tenant token limit reached"
    resets_in: float = 3600.0
    current: int = 100_412
    limit: int = 100_000

    def __post_init__(self) -> None:
        _check_seconds(self.resets_in, "resets_in")

    def play(self, board: Board) -> Playing:
        """End the run in `limit_exceeded`."""
        details = {
            "message": self.message,
            "current": self.current,
            "limit": self.limit,
            "resetsAt": board.now_ms() + round(self.resets_in * 1000),
            "blockingRule": {
                "scope": "tenant",
                "metric": "tokens",
                "windowUnit": "day",
                "windowEvery": 1,
                "limit": self.limit,
            },
        }
        board.end("limit_exceeded", limitExceeded=details)
        yield from ()


@dataclass(frozen=True)
class ClientCall:
    """One call of a client-side tool (a tool the caller declared), in `CallTools`.

    Attributes:
        name: The tool's name.
        arguments: The call's arguments: a mapping (sent as a JSON string), or
            a string sent verbatim (so a test can send arguments that are not
            JSON on purpose).
        id: The call's id; `None` takes a fresh one from the run.
    """

    name: str
    arguments: Mapping[str, Any] | str = field(default_factory=dict)
    id: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            msg = f"ClientCall name must be a non-empty str, got {self.name!r}."
            raise ValueError(msg)
        if not isinstance(self.arguments, (str, Mapping)):
            kind = type(self.arguments).__name__
            msg = f"ClientCall arguments must be a Mapping or a str, got {kind}."
            raise TypeError(msg)
        if self.id is not None and (not isinstance(self.id, str) or not self.id):
            msg = f"ClientCall id must be a non-empty str or None, got {self.id!r}."
            raise ValueError(msg)


@dataclass(frozen=True)
class CallTools:
    """The assistant calls one or several of the caller's own (client-side) tools.

    One assistant message with `text` and the calls (`tool_calls`) joins the
    history; then the status is `waiting_for_tool_response` with the calls in
    `pendingToolCalls`, and the run waits (holding the chat) until the client
    has answered every call on the tool-response route. It then goes on with
    the script's next steps; when there are none, the reply function is asked
    again, the conversation now ending with the tool results. A stop ends the
    wait and the run (`completed`).

    A call of a tool the chat does not have (not in the send's `tools`, or,
    after a tool response, not restated on its first response) ends the run
    in `error` instead, before any message is written.

    Attributes:
        calls: The calls, in order (a single `ClientCall` is one call).
        text: What the assistant writes on the calling message (may be empty).
    """

    calls: Sequence[ClientCall] | ClientCall
    text: str = ""

    def __post_init__(self) -> None:
        calls = (self.calls,) if isinstance(self.calls, ClientCall) else self.calls
        if isinstance(calls, (str, Mapping)) or not isinstance(calls, Sequence):
            kind = type(calls).__name__
            msg = f"CallTools calls must be ClientCall objects, got {kind}."
            raise TypeError(msg)
        if not calls:
            msg = "CallTools needs at least one ClientCall."
            raise ValueError(msg)
        for call in calls:
            if not isinstance(call, ClientCall):
                kind = type(call).__name__
                msg = f"CallTools calls must be ClientCall objects, got {kind}."
                raise TypeError(msg)
        ids = [call.id for call in calls if call.id is not None]
        if len(ids) != len(set(ids)):
            msg = f"CallTools call ids must differ, got {ids}."
            raise ValueError(msg)
        if not isinstance(self.text, str):
            msg = f"CallTools text must be a str, got {type(self.text).__name__}."
            raise TypeError(msg)
        object.__setattr__(self, "calls", tuple(calls))

    def play(self, board: Board) -> Playing:
        """Check the tools, file the calling message, wait for the client."""
        board.set_status("processing")
        calls = self.calls
        assert not isinstance(calls, ClientCall)  # noqa: S101 - made a tuple above
        known = board.client_tool_names
        unknown = [call.name for call in calls if call.name not in known]
        if unknown:
            failure = _no_such_tool(unknown[0], restated=board.tools_restated)
            board.end("error", errorMessage=failure, error=failure)
            return
        tool_calls = tuple(
            _tool_call(call.id or board.new_id("call"), call.name, call.arguments)
            for call in calls
        )
        board.add_message("assistant", self.text or None, tool_calls=tool_calls)
        board.wait_for_client(tool_calls)
        yield UNTIL_ANSWERED


#: One step of a scripted run.
Step: TypeAlias = (
    Write | ServerTool | HandOff | Buffer | Pause | Fail | LimitExceeded | CallTools
)
#: Every step class, for `isinstance`.
STEP_TYPES = (
    Write,
    ServerTool,
    HandOff,
    Buffer,
    Pause,
    Fail,
    LimitExceeded,
    CallTools,
)


# ------------------------------------------------------------------- helpers


def as_script(result: Sequence[Step | str] | Step) -> tuple[Step, ...]:
    """A reply function's script as steps (a string in it is a `Write`).

    Raises:
        TypeError: If an item is neither a step nor a string.
    """
    items: Sequence[Step | str] = (
        (result,) if isinstance(result, STEP_TYPES) else result
    )
    steps: list[Step] = []
    for item in items:
        if isinstance(item, str):
            steps.append(Write(item))
        elif isinstance(item, STEP_TYPES):
            steps.append(item)
        else:
            kind = type(item).__name__
            msg = f"a script holds steps (Write, ServerTool, ...) or str, not {kind}"
            raise TypeError(msg)
    return tuple(steps)


def split_text(text: str, pieces: int) -> list[str]:
    """`text` cut into at most `pieces` non-empty parts of near-equal length."""
    count = max(1, min(pieces, len(text)))
    bounds = [len(text) * i // count for i in range(count + 1)]
    return [text[a:b] for a, b in itertools.pairwise(bounds) if b > a]


def _tool_call(
    call_id: str, name: str, arguments: Mapping[str, Any] | str
) -> dict[str, Any]:
    """An OpenAI-style tool call; string arguments are sent verbatim."""
    sent = arguments if isinstance(arguments, str) else json.dumps(dict(arguments))
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": sent},
    }


def _no_such_tool(name: str, *, restated: bool) -> str:
    """Why a call of client tool `name` fails: the client did not give it."""
    if restated:
        return (
            f"The assistant called the client tool '{name}', but the client "
            "restated no such tool on its tool response ('tools' on the first "
            "response); without them the continuation has no client tools."
        )
    return (
        f"The assistant called the client tool '{name}', but the client "
        "declared no such tool ('tools' on the send)."
    )


def _check_seconds(seconds: float, name: str) -> None:
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, (int, float))
        or not seconds >= 0
    ):
        msg = f"{name} must be a number of seconds >= 0, got {seconds!r}."
        raise ValueError(msg)
