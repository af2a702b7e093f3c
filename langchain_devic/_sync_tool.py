# Generated from _async_tool.py by scripts/unasync.py: do not edit by hand.
# Change the async module, then run `python scripts/unasync.py`.
"""The tool's calls: a delegated turn with its lock and thread record.

The sync calls are written once, here; the sync ones are generated from them
by `scripts/unasync.py` (`_sync_tool.py`). Both are
mixed into `DevicAssistantTool` (see `langchain_devic.tools` for what a call
does: one conversation per agent thread, crash-safe platform turns).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated, Any

from langchain_core.callbacks import CallbackManagerForToolRun
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.runnables import RunnableConfig, ensure_config
from langchain_core.tools import InjectedToolArg

from langchain_devic._delegation import (
    RAISED,
    Record,
    Turn,
    call_id_of,
    chat_in_state,
    ended_badly,
    sent_since,
    thread_key,
)
from langchain_devic._stores import (
    Answer,
    DevicStoreError,
    Pending,
    ThreadItem,
    message_digest,
    now_iso,
)
from langchain_devic.errors import (
    DevicConflictError,
    DevicError,
    DevicLockError,
    DevicNotFoundError,
)

if TYPE_CHECKING:
    from langchain_devic.tools import _ToolCore as _Base
else:
    _Base = object


class _SyncToolCalls(_Base):
    """The calls of `DevicAssistantTool`, one colour (the other is generated)."""

    # The seed call: a 404 while continuing the thread's stored chat means that
    # chat vanished: start one new conversation. A 404 with nothing stored, or
    # on that restart, means the assistant itself is unknown (raised).
    #
    # A platform turn (shared store) goes through the model's own call: an
    # intent (the in-flight mark, unconfirmed) is written before the send,
    # `on_started` confirms it with the chat as soon as Devic took the turn up,
    # `resume` follows a marked turn instead of sending it again. An intent
    # found unconfirmed is settled by reading Devic before anything is sent.
    # A 404 or 409 before the turn started restarts a vanished chat once, or
    # waits a busy one out. The lock is checked (if it can be lost) before the
    # send and before each write; a tool call answered on this thread is
    # answered again from the record, unsent.

    def get_chat_uuid(self, config: RunnableConfig | None = None) -> str | None:
        """The Devic chat the agent thread of `config` continues, if any.

        Read from the store this tool would use for that config.
        """
        config = ensure_config(config)
        key = thread_key(config)
        if key is None:
            return None
        item = self._thread_store(config).get(self.chat_model.assistant_id, key)
        return None if item is None else item.chat_uuid

    def _check(self, record: Record) -> None:
        """Raise `DevicLockError` if the lock held for this call was lost."""
        if not record.losable("check"):
            return
        try:
            record.held.check()
        except DevicLockError as error:
            raise DevicLockError(f"{error.message} {record.lost_note()}") from error

    def _save(self, record: Record, item: ThreadItem) -> None:
        """Write the thread's item, the lock checked first.

        With a lock that can be lost, a write that changes the chat is
        compare-and-set against the chat this call read (`DevicLockError` if
        someone else wrote another meanwhile). A store
        failure is logged, never raised: Devic has the turn.
        """
        self._check(record)
        assistant_id = self.chat_model.assistant_id
        try:
            if item.chat_uuid != record.chat and record.losable("check"):
                now = record.store.get(assistant_id, record.key)
                current = None if now is None else now.chat_uuid
                if current != record.chat:
                    raise DevicLockError(record.changed_note(current, item.chat_uuid))
            record.store.put(assistant_id, record.key, item)
        except DevicStoreError as error:
            self._log_unsaved(error, item)
            return
        record.chat = item.chat_uuid

    def _converse(
        self, message: str, config: RunnableConfig, stored: str | None
    ) -> Turn:
        """One ChatDevic call (its own run mode), restarting a vanished chat once."""
        try:
            return Turn(self.chat_model.invoke(message, config, chat_uuid=stored))
        except DevicNotFoundError:
            if stored is None:
                raise
            self._log_restart(stored)
        reply = self.chat_model.invoke(message, config, chat_uuid=None)
        return Turn(reply, restarted=True)

    def _run(
        self,
        message: str,
        new_conversation: bool = False,
        runtime: Annotated[Any, InjectedToolArg] = None,
        *,
        config: RunnableConfig,
        run_manager: CallbackManagerForToolRun | None = None,
    ) -> tuple[str, dict[str, Any]]:
        child = self._child_config(config, run_manager)
        key = thread_key(config)
        assistant_id = self.chat_model.assistant_id
        call_id, digest = call_id_of(runtime), message_digest(message)
        try:
            if key is None:
                return self._answer(self._converse(message, child, None))
            store = self._thread_store(config)
            with self.lock.hold(assistant_id, key) as held:
                item = store.get(assistant_id, key)
                answered = None if item is None else item.answer_for(call_id, digest)
                if answered is not None:  # LangGraph ran this tool call again
                    return answered.content, dict(answered.artifact)
                read = None if item is None else item.chat_uuid
                record = Record(store, key, held, read)
                if item is None:  # the checkpoint is enough
                    chat = chat_in_state(runtime, assistant_id)
                    item = None if chat is None else ThreadItem(chat)
                if self._on_platform(store):
                    turn = self._platform_turn(
                        message, new_conversation, child, record, item, call_id
                    )
                else:
                    stored = (
                        None if new_conversation or item is None else item.chat_uuid
                    )
                    self._check(record)
                    turn = self._converse(message, child, stored)
                content, artifact = self._answer(turn)
                chat = turn.reply.response_metadata.get("chat_uuid") or record.chat
                if chat:
                    kept = ThreadItem(None) if item is None else item
                    answer = (
                        None
                        if call_id is None
                        else Answer(call_id, digest, content, artifact)
                    )
                    record.sent = True
                    self._save(record, ThreadItem(chat, None, kept.with_answer(answer)))
        except RAISED:
            raise
        except (DevicError, ValueError) as error:
            raise self._for_agent(error) from error
        return content, artifact

    def _platform_turn(
        self,
        message: str,
        new_conversation: bool,
        config: RunnableConfig,
        record: Record,
        item: ThreadItem | None,
        call_id: str | None,
    ) -> Turn:
        """Recover an in-flight turn of this message, or send it and follow it."""
        deadline = time.monotonic() + self.chat_model.run_timeout
        stored = None if item is None else item.chat_uuid
        restarted = False
        digest = message_digest(message)
        if item is not None and item.pending is not None:
            pending = item.pending
            chat = (
                stored
                if pending.confirmed
                else self._settle(stored, pending.digest, pending.sent_at)
            )
            if chat is not None and chat != stored:  # a new chat nobody recorded
                stored = chat
            if pending.digest == digest and chat is not None:  # never twice
                try:
                    reply = self._ask(message, config, chat, record, [], True)
                    return Turn(reply, recovered=True)
                except DevicNotFoundError:  # the chat is gone, and the turn with it
                    self._log_restart(chat)
                    stored, restarted = None, True
            elif chat is not None:
                self._await_idle(chat, deadline)  # another turn's run
        if new_conversation:
            stored = None
        while True:
            started: list[str] = []
            intent = Pending(digest, now_iso(), call_id, confirmed=False)
            # Before the send: a crash from here on leaves an intent to settle.
            self._save(record, ThreadItem(stored, intent, _kept(item)))
            try:
                reply = self._ask(
                    message, config, stored, record, started, False, intent, item
                )
                return Turn(reply, restarted=restarted)
            except DevicNotFoundError:
                if started or stored is None:
                    raise
                self._log_restart(stored)
                stored, restarted = None, True
            except DevicConflictError:
                if started or stored is None or time.monotonic() > deadline:
                    raise
                self._await_idle(stored, deadline)

    def _settle(self, chat_uuid: str | None, digest: str, since: str) -> str | None:
        """Where an unconfirmed intent's message landed on Devic, if it did.

        Only reads. A known chat holds it if its last user message is that
        message; else one of the assistant's chats created since the intent,
        newest first, whose first user message it is. `None`: never sent.
        """
        model = self.chat_model

        def user_digests(chat: str) -> list[str]:
            try:
                history = model.load_chat(chat)
            except DevicNotFoundError:
                return []
            return [
                message_digest(m.text) for m in history if isinstance(m, HumanMessage)
            ]

        if chat_uuid is not None:
            digests = user_digests(chat_uuid)
            return chat_uuid if digests and digests[-1] == digest else None
        for chat in model.list_chats(limit=20):
            if not sent_since(chat.get("created_at"), since):
                break  # newest first: the rest are older than the intent
            digests = user_digests(chat["chat_uuid"])
            if digests and digests[0] == digest:
                found: str = chat["chat_uuid"]
                return found
        return None

    def _ask(
        self,
        message: str,
        config: RunnableConfig,
        chat_uuid: str | None,
        record: Record,
        started: list[str],
        resume: bool = False,
        intent: Pending | None = None,
        item: ThreadItem | None = None,
    ) -> AIMessage:
        """One model call on the platform, its intent confirmed when it starts.

        The intent is confirmed (with the chat) when Devic takes the turn up
        (`started` then holds the chat), and cleared if the turn ended badly;
        a call cut short (timeout, lost connection, cancellation) keeps it, so
        the next call of this message picks the run up instead of sending
        again. The caller writes the turn's end.
        """

        def mark(chat: str) -> None:
            started.append(chat)
            record.sent = True
            if intent is not None:
                confirmed = Pending(intent.digest, intent.sent_at, intent.call_id)
                self._save(record, ThreadItem(chat, confirmed, _kept(item)))

        if not resume:
            self._check(record)  # the last moment nothing is sent yet
        else:
            record.sent = True
        extra: dict[str, Any] = {}
        if intent is not None and intent.call_id is not None:
            # Where Devic's chat search can find the turn (tags), and read it.
            configured = (config.get("configurable") or {}).get("request_tags")
            tags = configured or self.chat_model.request_tags or []
            extra["request_tags"] = [*tags, f"langchain-call:{intent.call_id}"]
            extra["request_metadata"] = {"langchain_call_id": intent.call_id}
        try:
            return self.chat_model.invoke(
                message,
                config,
                chat_uuid=chat_uuid,
                on_started=mark,
                resume=resume,
                **extra,
            )
        except DevicError as error:
            ended = started[-1] if started else chat_uuid if resume else None
            if ended is not None and ended_badly(error):
                self._save(record, ThreadItem(ended, None, _kept(item)))
            raise

    def _await_idle(self, chat_uuid: str, deadline: float) -> None:
        """Wait until the chat's current run (not this call's) has ended.

        Only reads: another call's run is never stopped from here.
        """
        model = self.chat_model
        model.client.wait_idle(model.assistant_id, chat_uuid, deadline)


def _kept(item: ThreadItem | None) -> tuple[Answer, ...]:
    """The answers an item keeps when it is rewritten."""
    return () if item is None else item.answered
