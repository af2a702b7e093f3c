"""One request on its way through the core: begun, waited, then finished.

`Exchange` is what `Core.begin` hands a face: it knows how long the request
must wait, starts the request's work (a `Work`: a turn, or a `Read` of a chat)
once the wait is over, waits for a synchronous run (`Pending`) if there is one,
and says how the face must end the exchange (an `Outcome`). A wait cut short
before the work started calls `abandon()`, which frees what the work reserved.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from typing import Protocol, TypeAlias

from langchain_devic.testing._chats import Run
from langchain_devic.testing._faults import Action
from langchain_devic.testing._records import Outcome, RecordedRequest
from langchain_devic.testing._render import Answer, StreamAnswer

__all__ = ["RUN_TICK", "Exchange", "Ledger", "Pending", "Read", "Slot", "Work"]

#: How often a request waiting for its synchronous run looks again, in seconds.
RUN_TICK = 0.005


class Ledger(Protocol):
    """Where an exchange writes the status it answered (the core's request log)."""

    def _settle(self, slot: Slot | None, status: int | None) -> None: ...


# --------------------------------------------------------------- internal types


class Slot:
    """A place in the request log, filled in as the request is answered."""

    __slots__ = ("record",)

    def __init__(self, record: RecordedRequest) -> None:
        self.record = record


class Pending:
    """A synchronous send whose run is still going: the answer comes at its end.

    Or when the run first waits for the client's tools (`run.result` is set
    then): the send answers the turn so far, and the run keeps waiting.
    """

    def __init__(self, run: Run, answer: Callable[[], Answer]) -> None:
        self.run = run
        self._answer = answer

    def answer(self) -> Answer:
        return self._answer()


#: What starting a request's work gives: an answer, or a run to wait for.
Started: TypeAlias = Answer | StreamAnswer | Pending


class Work(Protocol):
    """A request's work, done once its wait is over."""

    def start(self) -> Started:
        """Do it: answer, or hand back the run to wait for."""
        ...

    def abandon(self) -> None:
        """The face gave up before `start`: let go of what was reserved."""
        ...


@dataclass
class Read:
    """The work of a route that reads (or stops) a chat: one function."""

    answer: Callable[[], Answer | StreamAnswer]

    def start(self) -> Started:
        return self.answer()

    def abandon(self) -> None:
        """Nothing was reserved."""


# -------------------------------------------------------------------- exchange


class Exchange:
    """One request on its way through the core: begun, waited, then finished.

    Made by `Core.begin`. A face either calls `play` / `aplay` (wait, start
    the work, wait for a synchronous run, abandoning if the first wait is cut
    short), or does the same by hand with `finish` and `abandon`.
    """

    def __init__(
        self,
        core: Ledger,
        slot: Slot | None,
        *,
        delay: float = 0.0,
        answer: Answer | None = None,
        work: Work | None = None,
        action: Action = "answer",
        stall: float = 0.0,
    ) -> None:
        self._core = core
        self._slot = slot
        self._answer = answer
        self._work = work
        self._action = action
        self._stall = stall
        self._outcome: Outcome | None = None
        #: Seconds to wait before the work starts (latency, injected or not).
        self.delay = delay

    def finish(self) -> Outcome:
        """Start the work, wait for its run, settle the record, say how to end."""
        started = self._start()
        while isinstance(started, Pending) and started.run.result is None:
            time.sleep(RUN_TICK)
        return self._conclude(started)

    def abandon(self) -> None:
        """The face stopped waiting (e.g. a cancelled task): free the chat."""
        work, self._work = self._work, None
        if work is not None:
            work.abandon()
        self._core._settle(self._slot, None)

    def play(
        self, sleep: Callable[[float], object], read_timeout: float | None = None
    ) -> Outcome:
        """Wait with `sleep` (e.g. `time.sleep`), then finish.

        Args:
            sleep: The face's way to wait in its thread.
            read_timeout: The client's read timeout, if the face knows it: a
                longer wait ends there (see `_waits`).

        Returns:
            How the exchange ends.
        """
        with contextlib.closing(self._waits(read_timeout)) as waits:
            for seconds in waits:
                sleep(seconds)
        return self._ended()

    async def aplay(
        self,
        sleep: Callable[[float], Awaitable[object]],
        read_timeout: float | None = None,
    ) -> Outcome:
        """Wait with `sleep` (e.g. `asyncio.sleep`), then finish; see `play`."""
        with contextlib.closing(self._waits(read_timeout)) as waits:
            for seconds in waits:
                await sleep(seconds)
        return self._ended()

    def _start(self) -> Started | None:
        work, self._work = self._work, None
        return work.start() if work is not None else None

    def _conclude(self, started: Started | None) -> Outcome:
        """Settle the record with what is answered, and say how to end."""
        if isinstance(started, Pending):
            started = started.answer()
        answer = self._answer if self._answer is not None else started
        if self._action != "answer":
            self._core._settle(self._slot, None)
            return Outcome(self._action)
        assert answer is not None  # noqa: S101 - an answering exchange has one
        self._core._settle(self._slot, answer.status)
        return Outcome("answer", answer)

    def _waits(self, read_timeout: float | None) -> Generator[float, None, None]:
        """Each wait of this exchange, in order; finishes it on the way.

        The request waits `delay`, then its work starts; a synchronous send
        then waits for its run to end. If the client's read timeout comes
        first, the wait ends there with a `read_timeout` outcome, and the turn
        still runs, as on a real server that kept working. A `read_timeout`
        ending stalls (up to the client's timeout) before the face gives up. A
        face that stops waiting (the generator is closed at a wait) abandons
        the exchange; a run already started goes on.
        """
        began = time.monotonic()
        wait, gives_up = self.delay, False
        if read_timeout is not None and wait > read_timeout:
            wait, gives_up = read_timeout, True
        try:
            if wait > 0:
                yield wait
            started = self._start()
            while isinstance(started, Pending) and started.run.result is None:
                left = (
                    None
                    if read_timeout is None
                    else read_timeout - (time.monotonic() - began)
                )
                if left is not None and left <= 0:
                    break
                yield RUN_TICK if left is None else min(RUN_TICK, left)
        except BaseException:
            self.abandon()
            raise
        if isinstance(started, Pending) and started.run.result is None:
            self._core._settle(self._slot, None)
            self._outcome = Outcome("read_timeout")
            return
        outcome = self._conclude(started)
        if gives_up:
            outcome = Outcome("read_timeout")
        elif outcome.action == "read_timeout":
            stall = self._stall
            if read_timeout is not None:
                stall = min(stall, read_timeout)
            if stall > 0:
                yield stall
        self._outcome = outcome

    def _ended(self) -> Outcome:
        assert self._outcome is not None  # noqa: S101 - set when the waits run out
        return self._outcome


def refused(checked: Work | Answer | None) -> Answer | None:
    return checked if isinstance(checked, Answer) else None
