"""Following a platform run: one loop over its views, by stream or by polling.

The stream of events first (unless this server showed it has none), then
polling for the rest; each view is judged by `_runs.RunTracker`, whichever way
it came, so the two cannot disagree. Every read goes through the client's
door (`_exchange`): the run's deadline bounds the whole follow.
"""

# unasync: async-only
# Written once, here: `_sync_follow.py` is generated from this file by
# `scripts/unasync.py` (run it after any change; `.ci/run` fails when stale).
# unasync: end

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from langchain_devic import _clock, _exchange, _runs, _wire
from langchain_devic._async_core import _AsyncClientCore
from langchain_devic.errors import DevicError


class _AsyncRunFollowing(_AsyncClientCore):
    """The follow loop of the Devic client, on its core."""

    async def follow_run(
        self,
        assistant_id: str,
        tracker: _runs.RunTracker,
        deadline: float | None = None,
    ) -> AsyncIterator[_runs.Observation]:
        """Each observation of the run until it ends, by `deadline` at the latest.

        If the caller stops following (an interrupt, a cancellation, a stream
        closed early) Devic is asked once to stop the run.
        """
        if deadline is None:
            deadline = time.monotonic() + self.run_timeout
        try:
            async for observation in self._follow(assistant_id, tracker, deadline):
                yield observation
        except (KeyboardInterrupt, GeneratorExit, asyncio.CancelledError):
            await self.stop_run(assistant_id, tracker.chat_uuid)
            raise

    async def _follow(
        self,
        assistant_id: str,
        tracker: _runs.RunTracker,
        deadline: float,
        *,
        sse: bool = True,
    ) -> AsyncIterator[_runs.Observation]:
        """The one follow loop: views by stream or by polling, judged alike."""
        schedule = _runs.PollSchedule(self.poll_interval, self.max_poll_interval)
        views = self._views(assistant_id, tracker, deadline, sse=sse)
        try:
            async for view, polled in views:
                observation = tracker.observe(view)
                if observation.error is not None:
                    raise observation.error
                yield observation
                if observation.done:
                    return
                if polled:
                    wait = schedule.next_wait(observation)
                    await _clock.asleep(
                        min(wait, max(deadline - time.monotonic(), 0.0))
                    )
        finally:
            await views.aclose()

    async def _views(
        self,
        assistant_id: str,
        tracker: _runs.RunTracker,
        deadline: float,
        *,
        sse: bool,
    ) -> AsyncGenerator[tuple[dict[str, Any], bool], None]:
        """Realtime views with a status: from the stream, then from polling."""
        if sse and self.capabilities.sse:
            streamed = self._streamed_views(assistant_id, tracker, deadline)
            try:
                async for view in streamed:
                    yield view, False
            finally:
                await streamed.aclose()
        chat = tracker.chat_uuid
        url = _wire.run_url(self.platform_url, assistant_id, chat, "realtime")
        while True:
            if time.monotonic() >= deadline:
                raise self._deadline_passed(tracker)
            try:
                body = await self.read(url, deadline=deadline, in_run=True)
            except DevicError as error:
                raise self._follow_error(error, tracker, deadline) from None
            yield _wire.parse_view(body, secret=self._secret), True

    async def _streamed_views(
        self, assistant_id: str, tracker: _runs.RunTracker, deadline: float
    ) -> AsyncGenerator[dict[str, Any], None]:
        url = _wire.run_url(
            self.platform_url, assistant_id, tracker.chat_uuid, "stream"
        )
        request = self.http.build_request(**self._stream_args(url))
        error: DevicError | None = None
        try:
            async with self._stream(request, deadline) as stream:
                if not self._is_event_stream(stream.status_code, stream.headers):
                    return
                decoder = _wire.SSEDecoder()
                view: dict[str, Any] = {}
                async for line in stream.lines:
                    event = decoder.feed(line)
                    if event is not None:
                        view = _wire.apply_event(view, event)
                        if "status" in view:
                            yield view
        except _exchange.Failure as failure:
            error = self._stream_gave_out(failure, tracker)
        if error is not None:
            raise error

    async def wait_idle(
        self, assistant_id: str, chat_uuid: str, deadline: float
    ) -> None:
        """Read the chat until its current run ends (or waits for a client).

        Only reads, so it never disturbs the run. It gives up quietly at
        `deadline`, when the run fails or the chat cannot be read: the caller's
        next write finds out how the chat stands.
        """
        tracker = _runs.RunTracker(chat_uuid)
        with contextlib.suppress(DevicError):
            async for _ in self._follow(assistant_id, tracker, deadline, sse=False):
                pass
