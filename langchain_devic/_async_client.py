"""The Devic client: a turn sent or started, tool results, chats, the surface.

It stands on the follow loop (`_async_follow`) and the core (`_async_core`:
the pool, the door, reads, writes and stop).
"""

# unasync: async-only
# Written once, here: `_sync_client.py` is generated from this file by
# `scripts/unasync.py` (run it after any change; `.ci/run` fails when stale).
# unasync: end

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
from typing_extensions import Unpack

from langchain_devic import _clock, _exchange, _retry, _runs, _surface_wire, _wire
from langchain_devic._async_follow import _AsyncRunFollowing
from langchain_devic._base_client import ASettle, Parse, TurnFields
from langchain_devic._settings import (
    SETTLE_SECONDS,
    TOTALS_BUDGET,
)
from langchain_devic.errors import DevicError

logger = logging.getLogger("langchain_devic")


class AsyncDevicClient(_AsyncRunFollowing):
    """Devic client with one reusable connection pool."""

    # ------------------------------------------------------------------ writes

    async def send_message(
        self, assistant_id: str, message: str, **fields: Unpack[TurnFields]
    ) -> _wire.DevicReply:
        """Send one turn and wait for the reply (the seed's one call)."""
        chat_uuid = fields.get("chat_uuid")
        request = self.http.build_request(
            **self._request_args(assistant_id, message, fields)
        )
        parse = _wire.parse_reply
        settle = self._settler(assistant_id, chat_uuid, message, parse)
        reply = await self._deliver(request, chat_uuid, parse, None, settle)
        if isinstance(reply, _wire.RunStarted):  # it ran, and is still running
            return await self._finish_turn(assistant_id, reply.chat_uuid, message)
        return reply

    async def start_run(
        self,
        assistant_id: str,
        message: str,
        *,
        deadline: float | None = None,
        **fields: Unpack[TurnFields],
    ) -> _wire.RunStarted | _wire.DevicReply:
        """Start a platform run (`?async=true`); a server may answer it at once."""
        chat_uuid, extra = fields.get("chat_uuid"), fields.get("extra")
        args = self._request_args(assistant_id, message, fields, platform=True)
        params = {"async": "true"}
        if extra and extra.get("skipSummarization") is True:
            params["skipSummarization"] = "true"  # Devic's clients send both
        args["params"] = params
        request = self.http.build_request(**args)
        parse = _wire.parse_run_start
        settle = self._settler(assistant_id, chat_uuid, message, parse)
        return await self._deliver(request, chat_uuid, parse, deadline, settle)

    def _settler(
        self, assistant_id: str, chat_uuid: str | None, message: str, parse: Parse
    ) -> ASettle | None:
        if chat_uuid is None:
            return None

        async def settle() -> _wire.DevicReply | _wire.RunStarted | None:
            seconds = max(self._exchange_seconds, SETTLE_SECONDS)
            deadline = time.monotonic() + seconds
            chat = await self.read_chat(assistant_id, chat_uuid, deadline=deadline)
            return self._settled_send(chat, chat_uuid, message, parse)

        return settle

    async def _finish_turn(
        self, assistant_id: str, chat_uuid: str, message: str
    ) -> _wire.DevicReply:
        """The reply of a turn found running after a send of unknown outcome."""
        tracker = _runs.RunTracker(chat_uuid, message)
        deadline = time.monotonic() + self.run_timeout
        async for _ in self._follow(assistant_id, tracker, deadline, sse=False):
            pass
        return _wire.DevicReply(
            text=tracker.text,
            chat_uuid=chat_uuid,
            timestamp=tracker.timestamp,
            extra={"recovered": True},
        )

    async def _deliver(
        self,
        request: httpx.Request,
        chat_uuid: str | None,
        parse: Parse,
        deadline: float | None,
        settle: ASettle | None,
    ) -> _wire.DevicReply | _wire.RunStarted:
        """Send a write; retry only what Devic certainly did not process.

        An unknown outcome (a 502 or 504, or a failure after the request was
        written) is settled by reading the chat where its id is known: the
        message there means it landed; not there means it may be sent again.
        """
        attempt = 0
        while True:
            outcome: _wire.DevicReply | _wire.RunStarted | DevicError
            try:
                answer = await self._exchange(request, self._write_deadline(deadline))
                outcome = self._reply_or_error(answer, chat_uuid, parse)
            except _exchange.Failure as failure:
                outcome = self._write_error(failure, chat_uuid)
            if not isinstance(outcome, DevicError):
                return outcome
            if self._outcome_unknown(outcome):
                if settle is None or chat_uuid is None:
                    raise self._unsettled(outcome, chat_uuid)
                settled: _wire.DevicReply | _wire.RunStarted | DevicError | None
                try:
                    settled = await settle()
                except DevicError as failure:
                    settled = failure
                if isinstance(settled, DevicError):
                    raise self._settle_failed(outcome, chat_uuid, settled)
                if settled is not None:
                    logger.info("The turn in chat %s landed after all.", chat_uuid)
                    return settled
                outcome.is_retryable = True  # certainly not processed
            wait = _retry.next_wait(outcome, attempt, self.max_retries)
            if wait is None:
                raise self._explained(outcome, chat_uuid)
            self._log_attempt(attempt, wait, outcome)
            await _clock.asleep(wait)
            attempt += 1

    async def answer_tools(
        self,
        assistant_id: str,
        chat_uuid: str,
        responses: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        """Post the results of the client tool calls a run waits for.

        Retried like any write (only what Devic certainly did not process). A
        failure whose outcome is unknown is settled by reading the realtime
        view: the calls no longer pending means the results landed.
        """
        body = _wire.tool_response_body(responses, tools)
        request = self.http.build_request(
            **self._tool_response_args(assistant_id, chat_uuid, body)
        )
        try:
            await self._deliver(request, chat_uuid, _wire.parse_tool_ack, None, None)
        except DevicError as error:
            if not self._outcome_unknown(error):
                raise
            url = _wire.run_url(self.platform_url, assistant_id, chat_uuid, "realtime")
            view: dict[str, Any] | DevicError
            try:
                raw = await self.read(url, deadline=time.monotonic() + TOTALS_BUDGET)
                view = _wire.parse_view(raw, secret=self._secret)
            except DevicError as failure:
                view = failure
            answered = {str(r["tool_call_id"]) for r in responses}
            self._settle_answers(error, chat_uuid, view, answered)

    # ------------------------------------------------------------------- reads

    async def read_chat(
        self, assistant_id: str, chat_uuid: str, *, deadline: float | None = None
    ) -> dict[str, Any]:
        """A chat's history, as Devic stores it."""
        url = _wire.run_url(self.platform_url, assistant_id, chat_uuid)
        return _wire.parse_chat(
            await self.read(url, deadline=deadline), secret=self._secret
        )

    async def list_chats(
        self, assistant_id: str, params: Mapping[str, str] | None = None
    ) -> list[dict[str, Any]]:
        """The assistant's chats, newest first."""
        url = _wire.chats_url(self.platform_url, assistant_id)
        return _wire.parse_chat_list(
            await self.read(url, params=params), secret=self._secret
        )

    # ------------------------------------------------------ assistants, feedback

    async def list_assistants(self) -> list[dict[str, Any]]:
        """The account's assistants."""
        url = _surface_wire.assistants_url(self.platform_url)
        return _surface_wire.parse_assistant_list(
            await self.read(url), secret=self._secret
        )

    async def get_assistant(self, assistant_id: str) -> dict[str, Any]:
        """One assistant (`DevicNotFoundError` when Devic has none of that id)."""
        url = _surface_wire.assistant_url(self.platform_url, assistant_id)
        return _surface_wire.parse_assistant(await self.read(url), secret=self._secret)

    async def search_chats(
        self, filters: Mapping[str, Any], params: Mapping[str, str]
    ) -> list[dict[str, Any]]:
        """Devic's chat search: a POST that only reads, so retried as a read."""
        url = _surface_wire.search_url(self.platform_url)
        raw = await self.read(url, params=params, body=filters)
        return _wire.parse_chat_list(raw, secret=self._secret)

    async def list_feedback(
        self, assistant_id: str, chat_uuid: str
    ) -> list[dict[str, Any]]:
        """A chat's feedback entries."""
        url = _surface_wire.feedback_url(self.platform_url, assistant_id, chat_uuid)
        return _surface_wire.parse_feedback_list(
            await self.read(url), secret=self._secret
        )

    async def submit_feedback(
        self, assistant_id: str, chat_uuid: str, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Post one feedback entry: a write, never sent again once it may be in."""
        url = _surface_wire.feedback_url(self.platform_url, assistant_id, chat_uuid)
        raw = await self.post(url, body, what="feedback")
        return _surface_wire.parse_feedback_entry(raw, secret=self._secret)

    async def chat_totals(
        self, assistant_id: str, chat_uuid: str
    ) -> tuple[int, int] | None:
        """The chat's token totals so far, or `None` if the history cannot say.

        One history read, for usage only: a server without the history route, or
        one that keeps failing for `TOTALS_BUDGET` s, costs the usage, never the
        turn.
        """
        deadline = self._exchange_deadline(time.monotonic() + TOTALS_BUDGET)
        try:
            chat = await self.read_chat(assistant_id, chat_uuid, deadline=deadline)
        except DevicError as error:
            logger.warning("No token totals for chat %s: %s", chat_uuid, error)
            return None
        return _wire.chat_totals(chat)
