# Generated from _async_chat.py by scripts/unasync.py: do not edit by hand.
# Change the async module, then run `python scripts/unasync.py`.
"""ChatDevic's calls: one turn (the one call, or a platform run), and its chats.

The sync calls are written once, here; the sync ones are generated from them
by `scripts/unasync.py` (`_sync_chat.py`). Both are mixed into `ChatDevic`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import RunnableConfig
from typing_extensions import override

from langchain_devic import _surface_wire, _wire
from langchain_devic._call import Call
from langchain_devic._convert import (
    StopCutter,
    chat_totals_in,
    checked_chat_uuid,
    chunks_to_message,
    history_to_messages,
    reply_to_chunk,
    reply_to_message,
    run_reply,
)
from langchain_devic._progress import (
    LENT,
    LazySink,
    has_handlers,
    reporting,
    sink_for,
    sink_of_call,
    with_run_id,
)

if TYPE_CHECKING:
    from langchain_devic.chat_models import _ChatCore as _Base
else:
    _Base = object


class _SyncChatCalls(_Base):
    """The calls of `ChatDevic`, one colour (the other is generated)."""

    # ------------------------------------------------- config → chat_uuid kwarg
    # BaseChatModel does not hand the runnable config to _generate on a direct
    # call, so the conversation id is lifted from the config here; batch/abatch
    # and LCEL chains call these, and ensure_config() also sees the config of an
    # enclosing LangGraph node or runnable.

    @override
    def invoke(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AIMessage:
        kwargs = self._with_config(config, kwargs)
        if not has_handlers(config):
            return super().invoke(input, config, stop=stop, **kwargs)
        # With handlers, BaseChatModel may stream without lending its run
        # manager (a streaming handler: LangGraph's "messages" mode): lend the
        # run's handlers for progress events, as `stream` does.
        config = with_run_id(config)
        token = LENT.set(LazySink(self, config))
        try:
            return super().invoke(input, config, stop=stop, **kwargs)
        finally:
            LENT.reset(token)

    @override
    def stream(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> Iterator[AIMessageChunk]:
        config = with_run_id(config)
        chunks = super().stream(
            input, config, stop=stop, **self._with_config(config, kwargs)
        )
        return reporting(chunks, sink_of_call(self, config))

    @override
    def stream_events(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        **kwargs: Any,
    ) -> Any:
        """`Runnable.stream_events`, with `chat_uuid` lifted from the config."""
        return super().stream_events(input, config, **self._with_config(config, kwargs))

    # ------------------------------------------------------------------- turns

    def _send(self, call: Call) -> _wire.DevicReply:
        request = call.request
        return self.client.send_message(
            call.assistant_id,
            request.message,
            chat_uuid=request.chat_uuid,
            context=request.context,
            metadata=request.metadata,
            extra=call.extra,
        )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        call = self._prepare(messages, kwargs)
        if self.run_mode == "async" or call.needs_run:
            chunks = [c.message for c in self._run(call, messages, stop, run_manager)]
            message = chunks_to_message(cast(list[AIMessageChunk], chunks))
        else:
            reply = self._send(call)
            message = reply_to_message(reply, call.assistant_id, stop)
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        call = self._prepare(messages, kwargs)
        if self.run_mode != "sync":
            for chunk in self._run(call, messages, stop, run_manager):
                yield chunk
            return
        reply = self._send(call)
        chunk = ChatGenerationChunk(
            message=reply_to_chunk(reply, call.assistant_id, stop)
        )
        if run_manager:
            run_manager.on_llm_new_token(chunk.text, chunk=chunk)
        yield chunk

    @staticmethod
    def _started(call: Call, chat_uuid: str) -> None:
        """Tell the caller's `on_started` hook (sync or async) that Devic took it."""
        if call.on_started is not None:
            call.on_started(chat_uuid)

    def _run(
        self,
        call: Call,
        messages: list[BaseMessage],
        stop: list[str] | None,
        run_manager: CallbackManagerForLLMRun | None,
    ) -> Iterator[ChatGenerationChunk]:
        """One platform run: its text as it is written, then the closing chunk.

        The run starts with the message, or goes on with tool results; it ends
        completed, or waiting for the client tool calls the closing chunk makes.
        """
        assistant_id, request = call.assistant_id, call.request
        client = self.client
        deadline = time.monotonic() + self.run_timeout
        before = chat_totals_in(messages, request.chat_uuid)
        if before is None and request.chat_uuid is not None and not call.resume:
            before = client.chat_totals(assistant_id, request.chat_uuid)
        if request.tool_responses:
            chat_uuid = cast(str, request.chat_uuid)
            client.answer_tools(
                assistant_id, chat_uuid, request.tool_responses, call.tools
            )
            tracker = call.tracker(chat_uuid)
        elif call.resume:
            tracker = call.tracker(cast(str, request.chat_uuid))
        else:
            started = client.start_run(
                assistant_id,
                request.message,
                chat_uuid=request.chat_uuid,
                context=request.context,
                metadata=request.metadata,
                extra=call.extra,
                deadline=deadline,
            )
            if isinstance(started, _wire.DevicReply):
                chunk = self._closing_chunk(started, assistant_id, stop)
                if run_manager:
                    run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                yield chunk
                return
            self._started(call, started.chat_uuid)
            tracker = call.tracker(started.chat_uuid)
        cutter = StopCutter(stop)
        sink = sink_for(run_manager)
        for observation in client.follow_run(assistant_id, tracker, deadline):
            if sink is not None:
                sink.report(observation.progress)
            for piece in cutter.feed(observation.text):
                chunk = self._text_chunk(piece)
                if run_manager:
                    run_manager.on_llm_new_token(piece, chunk=chunk)
                yield chunk
        for piece in cutter.flush():
            chunk = self._text_chunk(piece)
            if run_manager:
                run_manager.on_llm_new_token(piece, chunk=chunk)
            yield chunk
        calls = tracker.pending_tool_calls
        if calls and call.close_tool_wait:
            client.stop_run(assistant_id, tracker.chat_uuid)
        after = client.chat_totals(assistant_id, tracker.chat_uuid)
        reply = run_reply("", tracker.chat_uuid, tracker.timestamp, before, after)
        yield self._closing_chunk(reply, assistant_id, None, after, calls)

    def load_chat(self, chat_uuid: str) -> list[BaseMessage]:
        """A Devic chat as LangChain messages; pass them back to `invoke` to go on.

        `user` → HumanMessage, `assistant` → AIMessage (with the chat id, so the
        next call continues this chat), `tool` → ToolMessage,
        `developer`/`system` → SystemMessage. Each message's `id` is Devic's
        message uid: `submit_feedback` names a message by it.
        """
        chat_uuid = checked_chat_uuid(chat_uuid, "chat_uuid")
        chat = self.client.read_chat(self.assistant_id, chat_uuid)
        return history_to_messages(chat, self.assistant_id, chat_uuid)

    def stop_chat(self, chat_uuid: str) -> bool:
        """Ask Devic to stop the chat's run; returns whether Devic accepted.

        Ends a turn that is still running, or closes a wait for client tool
        results nobody will send (the chat then takes new messages again).
        Sent once, never retried; a typed `DevicError` when Devic cannot be
        reached, within 5 s.
        """
        chat_uuid = checked_chat_uuid(chat_uuid, "chat_uuid")
        return self.client.stop_run(self.assistant_id, chat_uuid, strict=True)

    def list_chats(self, limit: int = 20) -> list[dict[str, Any]]:
        """This assistant's chats, newest first (at most `limit`).

        Each is `{"chat_uuid", "name", "created_at", "updated_at"}`, with ISO 8601
        times or `None`.
        """
        chats = self.client.list_chats(self.assistant_id, {"limit": str(limit)})
        return chats[:limit]

    # ------------------------------------------------------- Devic's surface

    def list_assistants(self) -> list[dict[str, Any]]:
        """The account's assistants.

        Each is `{"assistant_id", "name", "description", "state", "model",
        "provider"}` (a field Devic leaves out is `None`). A read: retried,
        bounded by `timeout`.
        """
        return self.client.list_assistants()

    def get_assistant(self, assistant_id: str | None = None) -> dict[str, Any]:
        """One assistant (default: this model's own), as `list_assistants` gives it.

        Raises:
            DevicNotFoundError: Devic has no assistant of that id.
        """
        wanted = _wire.validate_assistant_id(
            self.assistant_id if assistant_id is None else assistant_id
        )
        return self.client.get_assistant(wanted)

    def search_chats(
        self,
        *,
        tags: Sequence[str] | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        all_assistants: bool = False,
        limit: int = 20,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Devic's chat search: this assistant's chats (or every assistant's).

        `tags`: chats carrying any of them (set with `request_tags`);
        `created_after` / `created_before`: creation time bounds (inclusive).
        Each chat is `{"chat_uuid", "name", "created_at", "updated_at"}`, as
        `list_chats` gives it, newest first; `offset`/`limit` page.
        """
        if limit < 1 or offset < 0:
            msg = f"limit must be >= 1 and offset >= 0, got {limit} and {offset}."
            raise ValueError(msg)
        filters = _surface_wire.search_body(
            None if all_assistants else self.assistant_id,
            tags=tags,
            created_after=created_after,
            created_before=created_before,
        )
        params = {"offset": str(offset), "limit": str(limit), "omitContent": "true"}
        chats = self.client.search_chats(filters, params)
        return chats[:limit]

    def submit_feedback(
        self,
        chat_uuid: str,
        message_id: str,
        *,
        positive: bool | None = None,
        comment: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Tell Devic what you think of one message of a chat; Devic's entry.

        `message_id` is the message's `id` as `load_chat` gives it. A second
        feedback on the same message replaces the first. A write: sent again
        only when Devic certainly did not take it.
        """
        chat_uuid = checked_chat_uuid(chat_uuid, "chat_uuid")
        body = _surface_wire.feedback_body(
            message_id, positive=positive, comment=comment, data=data
        )
        return self.client.submit_feedback(self.assistant_id, chat_uuid, body)

    def list_feedback(self, chat_uuid: str) -> list[dict[str, Any]]:
        """The feedback entries of a chat, as Devic keeps them."""
        chat_uuid = checked_chat_uuid(chat_uuid, "chat_uuid")
        return self.client.list_feedback(self.assistant_id, chat_uuid)
