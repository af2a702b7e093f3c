"""The tool's calls: a delegated turn with its lock and thread record.

The async calls are written once, here; the sync ones are generated from them
by `scripts/unasync.py` (`_sync_tool.py`). Both are
mixed into `DevicAssistantTool` (see `langchain_devic.tools` for what a call
does: one conversation per agent thread, crash-safe platform turns).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from langchain_core.callbacks import AsyncCallbackManagerForToolRun
from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableConfig, ensure_config

from langchain_devic._delegation import RAISED, Turn, ended_badly, thread_key
from langchain_devic._stores import (
    DevicStoreError,
    Pending,
    ThreadItem,
    ThreadStore,
    message_digest,
    now_iso,
)
from langchain_devic.errors import DevicConflictError, DevicError, DevicNotFoundError

if TYPE_CHECKING:
    from langchain_devic.tools import _ToolCore as _Base
else:
    _Base = object


class _AsyncToolCalls(_Base):
    """The calls of `DevicAssistantTool`, one colour (the other is generated)."""

    # The seed call: a 404 while continuing the thread's stored chat means that
    # chat vanished: start one new conversation. A 404 with nothing stored, or
    # on that restart, means the assistant itself is unknown (raised).
    #
    # A platform turn (shared store) goes through the model's own call:
    # `on_started` writes the in-flight mark as soon as Devic took the turn up,
    # `resume` follows a marked turn instead of sending it again. A 404 or 409
    # before the turn started restarts a vanished chat once, or waits a busy
    # one out.

    async def aget_chat_uuid(self, config: RunnableConfig | None = None) -> str | None:
        """The Devic chat the agent thread of `config` continues, if any.

        Read from the store this tool would use for that config.
        """
        config = ensure_config(config)
        key = thread_key(config)
        if key is None:
            return None
        item = await self._thread_store(config).aget(self.chat_model.assistant_id, key)
        return None if item is None else item.chat_uuid

    async def _asave(self, store: ThreadStore, key: str, item: ThreadItem) -> None:
        """Store the thread's item; a failure is logged, never raised."""
        try:
            await store.aput(self.chat_model.assistant_id, key, item)
        except DevicStoreError as error:
            self._log_unsaved(error, item)

    async def _aconverse(
        self, message: str, config: RunnableConfig, stored: str | None
    ) -> Turn:
        """One ChatDevic call (its own run mode), restarting a vanished chat once."""
        try:
            return Turn(
                await self.chat_model.ainvoke(message, config, chat_uuid=stored)
            )
        except DevicNotFoundError:
            if stored is None:
                raise
            self._log_restart(stored)
        reply = await self.chat_model.ainvoke(message, config, chat_uuid=None)
        return Turn(reply, restarted=True)

    async def _arun(
        self,
        message: str,
        new_conversation: bool = False,
        *,
        config: RunnableConfig,
        run_manager: AsyncCallbackManagerForToolRun | None = None,
    ) -> tuple[str, dict[str, Any]]:
        child = self._child_config(config, run_manager)
        key = thread_key(config)
        assistant_id = self.chat_model.assistant_id
        try:
            if key is None:
                return self._answer(await self._aconverse(message, child, None))
            store = self._thread_store(config)
            async with self.lock.ahold(assistant_id, key):
                item = await store.aget(assistant_id, key)
                if self._on_platform(store):
                    turn = await self._aplatform_turn(
                        message, new_conversation, child, store, key, item
                    )
                else:
                    stored = (
                        None if new_conversation or item is None else item.chat_uuid
                    )
                    turn = await self._aconverse(message, child, stored)
                    chat = turn.reply.response_metadata.get("chat_uuid")
                    if chat:
                        await self._asave(store, key, ThreadItem(chat))
        except RAISED:
            raise
        except (DevicError, ValueError) as error:
            raise self._for_agent(error) from error
        return self._answer(turn)

    async def _aplatform_turn(
        self,
        message: str,
        new_conversation: bool,
        config: RunnableConfig,
        store: ThreadStore,
        key: str,
        item: ThreadItem | None,
    ) -> Turn:
        """Recover an in-flight turn of this message, or send it and follow it."""
        deadline = time.monotonic() + self.chat_model.run_timeout
        stored = None if item is None else item.chat_uuid
        restarted = False
        if item is not None and item.pending is not None and stored is not None:
            if item.pending.digest == message_digest(message):  # never twice
                try:
                    reply = await self._aask(
                        message, config, stored, store, key, [], True
                    )
                    return Turn(reply, recovered=True)
                except DevicNotFoundError:  # the chat is gone, and the turn with it
                    self._log_restart(stored)
                    stored, restarted = None, True
            else:
                await self._aawait_idle(stored, deadline)  # another turn's run
        if new_conversation:
            stored = None
        while True:
            started: list[str] = []
            try:
                reply = await self._aask(message, config, stored, store, key, started)
                return Turn(reply, restarted=restarted)
            except DevicNotFoundError:
                if started or stored is None:
                    raise
                self._log_restart(stored)
                stored, restarted = None, True
            except DevicConflictError:
                if started or stored is None or time.monotonic() > deadline:
                    raise
                await self._aawait_idle(stored, deadline)

    async def _aask(
        self,
        message: str,
        config: RunnableConfig,
        chat_uuid: str | None,
        store: ThreadStore,
        key: str,
        started: list[str],
        resume: bool = False,
    ) -> AIMessage:
        """One model call on the platform, its thread record kept around it.

        The mark is written when Devic takes the turn up (`started` then holds
        the chat), and rewritten without it when the turn ends, or ended badly;
        a call cut short (timeout, lost connection, cancellation) keeps it, so
        the next call of this message picks the run up instead of sending again.
        """
        digest = message_digest(message)

        async def mark(chat: str) -> None:
            started.append(chat)
            await self._asave(store, key, ThreadItem(chat, Pending(digest, now_iso())))

        try:
            reply = await self.chat_model.ainvoke(
                message,
                config,
                chat_uuid=chat_uuid,
                on_started=mark,
                resume=resume,
            )
        except DevicError as error:
            ended = started[-1] if started else chat_uuid if resume else None
            if ended is not None and ended_badly(error):
                await self._asave(store, key, ThreadItem(ended))
            raise
        chat = reply.response_metadata.get("chat_uuid") or chat_uuid
        if chat:
            await self._asave(store, key, ThreadItem(chat))
        return reply

    async def _aawait_idle(self, chat_uuid: str, deadline: float) -> None:
        """Wait until the chat's current run (not this call's) has ended.

        Only reads: another call's run is never stopped from here.
        """
        model = self.chat_model
        await model.async_client.wait_idle(model.assistant_id, chat_uuid, deadline)
