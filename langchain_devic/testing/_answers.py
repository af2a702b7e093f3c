"""The routes that read a chat, stop its run, or answer its pending tool calls.

Each handler takes the recorded request and returns its answer: the history,
the realtime view, the SSE stream, stop, tool-response and the chat list.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from langchain_devic.testing._chats import Chat, Follower, now_ms
from langchain_devic.testing._records import RecordedRequest
from langchain_devic.testing._render import (
    SSE_CONTENT_TYPE,
    Answer,
    StreamAnswer,
    realtime_body,
    stop_body,
    tool_response_body,
)
from langchain_devic.testing._routes import flag, paging, responses_problem
from langchain_devic.testing._state import State

__all__ = ["Answers"]

#: The longest a stop waits for a run waiting on the client to end (a bound only:
#: the run's thread ends it as soon as it wakes).
STOP_WAIT_SECONDS = 5.0


class Answers(State):
    """The handlers of the chat routes other than the send (see the module)."""

    # ------------------------------------------------------------- the reads

    def _answer_history(self, record: RecordedRequest) -> Answer:
        """`GET …/chats/{chat}`: the stored chat with its token totals."""
        return self._answer_chat(record, lambda chat: chat.history())

    def _answer_realtime(self, record: RecordedRequest) -> Answer:
        """`GET …/chats/{chat}/realtime`: the realtime view.

        Once it has expired (`realtime_ttl` after the chat's last update), the
        view is rebuilt from the stored chat and says `completed`, as Devic's
        is once its realtime key is gone, whatever the run was doing.
        """
        return self._answer_chat(record, self._view_of)

    def _view_of(self, chat: Chat) -> dict[str, Any]:
        if not self._expired(chat):
            return chat.view()
        return realtime_body(
            chat_id=chat.chat_id,
            status="completed",
            updated_ms=chat.updated_ms,
            history=chat.messages,
            streaming=None,
            fields={},
        )

    def _expired(self, chat: Chat) -> bool:
        """Whether a chat's realtime view has expired (lock held)."""
        return now_ms() - chat.updated_ms > self.realtime_ttl * 1000

    def _answer_chat(
        self, record: RecordedRequest, body: Callable[[Chat], dict[str, Any]]
    ) -> Answer:
        """A body read from the chat a route names, or the 404."""
        with self._lock:
            chat = self._find_chat(record)
            if isinstance(chat, Answer):
                return chat
            payload = body(chat)
        return self._ok(200, payload)

    def _answer_stream(self, record: RecordedRequest) -> Answer | StreamAnswer:
        """`GET …/chats/{chat}/stream`: the realtime view as SSE frames."""
        with self._lock:
            chat = self._find_chat(record)
            if isinstance(chat, Answer):
                return chat
        follower = Follower(chat, self._changed, self.sse_keepalive)
        headers = (("Content-Type", SSE_CONTENT_TYPE), ("Cache-Control", "no-cache"))
        return StreamAnswer(200, headers, follower)

    def _answer_stop(self, record: RecordedRequest) -> Answer:
        """`POST …/chats/{chat}/stop`: end the run at its next step boundary.

        A run waiting for the client's tools ends before the answer leaves
        (`completed`, with `stopReason: "tool_wait_closed"`), so the chat takes
        a new message at once.
        """
        with self._changed:
            chat = self._find_chat(record)
            if isinstance(chat, Answer):
                return chat
            run = chat.run
            if run is None or run.done:
                message = f"Chat '{chat.chat_id}' is not currently processing"
                return self._refusal(400, message, "BAD_REQUEST")
            waiting = run.waiting
            run.stop_requested = True
            self._changed.notify_all()
            if waiting:  # the answer says the wait is closed: make it so first
                self._changed.wait_for(lambda: run.done, STOP_WAIT_SECONDS)
        return self._ok(201, stop_body(chat.chat_id, closes_tool_wait=waiting))

    def _answer_tool_response(self, record: RecordedRequest) -> Answer:
        """`POST …/chats/{chat}/tool-response`: the client answers pending calls.

        Only a chat whose run waits takes one, and only answers to its pending
        calls; the run keeps waiting until every call is answered (201
        `{"chatUid", "message"}` each time).
        """
        with self._changed:
            chat = self._find_chat(record)
            if isinstance(chat, Answer):
                return chat
            run = chat.run
            if run is None or run.done or not run.waiting:
                message = f"Chat '{chat.chat_id}' is not waiting for a tool response"
                return self._refusal(400, message, "BAD_REQUEST")
            if self._expired(chat):
                message = (
                    f"Chat '{chat.chat_id}' has no realtime entry any more (it "
                    "expired after its last update): tool responses are refused"
                )
                return self._refusal(400, message, "REALTIME_EXPIRED")
            pending = [str(call["id"]) for call in run.pending]
            problem = responses_problem(record.json, pending)
            if problem is not None:
                return self._refusal(400, problem, "BAD_REQUEST")
            run.answer(record.json["responses"])
        return self._ok(201, tool_response_body(chat.chat_id))

    def _answer_chats(self, record: RecordedRequest) -> Answer:
        """`GET …/assistants/{id}/chats`: the assistant's chats, newest first.

        `tenantId` and `subtenantId` in the query keep the chats whose sends
        named them.
        """
        assistant_id = record.assistant_id
        assert assistant_id is not None  # noqa: S101 - routed requests only
        query = parse_qs(record.query)
        pages = paging(query)
        if isinstance(pages, str):
            return self._refusal(400, pages, "BAD_REQUEST")
        offset, limit = pages
        content = not flag(record.query, "omitContent")
        filters: dict[str, Any] = {"assistantSpecializationIdentifier": assistant_id}
        for name in ("tenantId", "subtenantId"):
            if query.get(name):
                filters[name] = query[name][-1]
        with self._lock:
            if self._reply_of(assistant_id) is None:
                return self._assistant_not_found(assistant_id)
            return self._chats_page(filters, offset, limit, content=content)
