"""The send: a user turn checked, reserved, run, and answered.

`Turns._check_send` checks a send's body, assistant and chat and reserves the
chat being continued (a second send to a busy chat gets 409 at once); the
`Turn` it returns starts the run when the exchange's wait is over.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from langchain_devic.testing._chats import Chat, Run, now_ms
from langchain_devic.testing._exchanges import Pending, Slot, Started
from langchain_devic.testing._records import Conversation, ReplyFn, plain
from langchain_devic.testing._render import (
    Answer,
    flat_reply_body,
    json_answer,
    limit_answer,
    message_list_body,
    replied_chat_id,
    started_body,
)
from langchain_devic.testing._routes import body_problem, flag
from langchain_devic.testing._script import STEP_TYPES, Fail, Step, Write, as_script
from langchain_devic.testing._state import State

__all__ = ["Turn", "Turns"]


@dataclass
class Turn:
    """A checked send waiting to run; `chat` is reserved when it is continued."""

    core: Turns
    slot: Slot
    assistant_id: str
    chat_uuid: str | None
    message: str
    context: Mapping[str, Any] | None
    metadata: Mapping[str, Any] | None
    tools: tuple[Mapping[str, Any], ...]
    reply: ReplyFn
    mode: Literal["sync", "async"]
    chat: Chat | None = None
    #: The whole send, for its options (tenants, tags, files, ...).
    payload: Mapping[str, Any] = field(default_factory=dict)

    def start(self) -> Started:
        return self.core._start_turn(self)

    def abandon(self) -> None:
        self.core._release(self)


class Turns(State):
    """The send: a checked turn, its run, and the answer of a synchronous send.

    A turn is a run: the reply function is asked, its answer becomes a script
    (`_script`), and the run plays it against the chat; an asynchronous send
    answers as soon as the run has started, a synchronous one when it has
    ended or waits for the client's tools. The tool-response route hands the
    client's answers to the waiting run; once its script is spent, the reply
    function is asked again (the conversation now ending with the tool
    results), in the same run.
    """

    # -------------------------------------------------------------- the send

    def _check_send(self, slot: Slot, headers: list[tuple[str, str]]) -> Turn | Answer:
        """The turn a send asks for (its chat reserved), or the refusal."""
        record = slot.record
        problem = body_problem(record.json, headers)
        if problem is not None:
            return self._refusal(400, problem, "BAD_REQUEST")
        payload: dict[str, Any] = record.json
        chat_uuid = record.chat_uuid
        assistant_id = record.assistant_id
        assert assistant_id is not None  # noqa: S101 - routed requests only
        asynchronous = self.dialect == "platform" and flag(record.query, "async")
        with self._lock:
            reply = self._reply_of(assistant_id)
            if reply is None:
                return self._assistant_not_found(assistant_id)
            chat = None
            if chat_uuid is not None:
                chat = self._chats.get(chat_uuid)
                if chat is None or chat.assistant_id != assistant_id:
                    return self._chat_not_found(chat_uuid)
                if chat.busy:
                    message = "Chat is still processing a previous message"
                    return self._refusal(409, message, "CHAT_BUSY")
                chat.busy = True
        return Turn(
            core=self,
            slot=slot,
            assistant_id=assistant_id,
            chat_uuid=chat_uuid,
            message=payload["message"],
            context=payload.get("context"),
            metadata=payload.get("metadata"),
            tools=tuple(payload.get("tools") or ()),
            reply=reply,
            mode="async" if asynchronous else "sync",
            chat=chat,
            payload=payload,
        )

    def _start_turn(self, turn: Turn) -> Started:
        """Append the user turn, ask the assistant for a script, start its run.

        An asynchronous send answers `{"chatUid"}` (201) as soon as the run has
        started; a synchronous one answers when it has ended.
        """
        opened = self._open_turn(turn)
        if isinstance(opened, Answer):
            return opened
        chat, conversation = opened
        try:
            steps, overrides = self._script_of(
                turn.reply, conversation, at_once=turn.mode == "sync"
            )
        except Exception as exc:
            self._undo_turn(turn, chat)
            return self._refusal(500, _reply_failure(turn, exc), "INTERNAL_ERROR")
        with self._changed:
            run = Run(
                chat,
                steps,
                changed=self._changed,
                runs=self._runs,
                write_pieces=self.write_pieces,
                write_interval=self.write_interval,
                tools=turn.tools,
                ask_again=lambda run: self._ask_again(turn, run),
            )
            chat.run = run
            self._runs.add(run)
        wait = run.advance()
        if wait is not None:
            run.start(wait)
        if turn.mode == "async":
            return self._ok(201, started_body(chat.chat_id))
        return Pending(run, lambda: self._sync_answer(run, overrides))

    def _open_turn(self, turn: Turn) -> tuple[Chat, Conversation] | Answer:
        """Append the user turn to its chat (a new one, or the one reserved)."""
        with self._changed:
            if turn.chat_uuid is None:
                chat_id = self._new_chat_id()
                self._order += 1
                chat = Chat(chat_id, turn.assistant_id, self._order)
                chat.busy = True
                self._chats[chat_id] = chat
                turn.chat = chat
            else:
                found = self._chats.get(turn.chat_uuid)
                if found is None or found is not turn.chat:  # reset() meanwhile
                    return self._chat_not_found(turn.chat_uuid)
                chat = found
            payload = turn.payload
            if turn.chat_uuid is None:
                for earlier in payload.get("previousConversation") or ():
                    chat.add(earlier["role"], earlier["message"])
            files = tuple(dict(f) for f in payload.get("files") or ())
            chat.add("user", turn.message, files=files)
            apply_options(chat, payload)
            if turn.metadata is not None:
                chat.metadata = turn.metadata
            chat.status, chat.fields, chat.streaming = "processing", {}, None
            chat.touch()
            self._changed.notify_all()
            conversation = _conversation(turn, chat, turn.tools, ())
        return chat, conversation

    def _ask_again(self, turn: Turn, run: Run) -> tuple[Step, ...]:
        """The next round of a turn whose client tools were answered.

        The reply function sees the chat ending with the tool results; its
        script is played in the same run (a plain reply in pieces). If it
        raises, the round is a `Fail` with what it raised.
        """
        with self._lock:
            conversation = _conversation(
                turn, run.chat, run.tools, tuple(dict(a) for a in run.answers)
            )
        try:
            steps, _ = self._script_of(turn.reply, conversation, at_once=False)
        except Exception as exc:
            return (Fail(_reply_failure(turn, exc)),)
        return steps

    def _script_of(
        self, reply: ReplyFn, conversation: Conversation, *, at_once: bool
    ) -> tuple[tuple[Step, ...], dict[str, Any] | None]:
        """The steps of a round, and the answer fields the reply function asked for.

        A plain reply is one `Write`: in one piece with no wait when `at_once`
        (a synchronous send), else in pieces.

        Raises:
            TypeError: If the reply function returns no reply, fields or script.
        """
        result = reply(conversation)
        overrides = None
        if isinstance(result, Mapping):
            overrides = dict(result)
            scripted = overrides.get("message")
            result = (
                scripted
                if isinstance(scripted, str)
                else self.default_reply(conversation)
            )
        if isinstance(result, str):
            if at_once:
                return (Write(result, pieces=1, interval=0),), overrides
            return (Write(result),), overrides
        if isinstance(result, (Sequence, *STEP_TYPES)):
            return as_script(result), overrides
        kind = type(result).__name__
        msg = f"a reply function must return str, Mapping or a script, not {kind}"
        raise TypeError(msg)

    def _sync_answer(self, run: Run, overrides: Mapping[str, Any] | None) -> Answer:
        """The answer to a synchronous send, from its run's result.

        The run has ended, or waits for the client's tools: then the send
        answers the turn so far (the platform's message list ends with the
        assistant message that calls them; the flat reply is the text written
        so far), and the tool-response route carries the turn on.
        """
        chat, result = run.chat, run.result
        assert result is not None  # noqa: S101 - a pending send waits for it
        if result.status == "error":
            failure = str(result.fields.get("errorMessage") or "The assistant failed")
            return self._refusal(500, failure, "INTERNAL_ERROR")
        if result.status == "limit_exceeded":
            return limit_answer(result.fields.get("limitExceeded") or {}, now_ms())
        if self.dialect == "platform":
            body = message_list_body(
                chat_id=chat.chat_id,
                history=result.messages,
                tokens=result.tokens,
                overrides=overrides,
            )
            return self._ok(200, body)
        flat = flat_reply_body(
            chat_id=chat.chat_id,
            text="\n\n".join(result.written),
            tokens=result.tokens,
            overrides=overrides,
        )
        replied = replied_chat_id(flat)
        if isinstance(replied, str) and replied != chat.chat_id:
            self._fork(chat, replied)
        try:
            return json_answer(200, flat)
        except (TypeError, ValueError) as exc:
            failure = f"The reply of assistant '{chat.assistant_id}' is not JSON: {exc}"
            return self._refusal(500, failure, "INTERNAL_ERROR")

    def _undo_turn(self, turn: Turn, chat: Chat) -> None:
        """Take back a user turn whose reply failed (and a chat it created)."""
        with self._changed:
            last = chat.messages[-1] if chat.messages else None
            if last is not None and last.role == "user" and last.text == turn.message:
                chat.messages.pop()
            chat.busy = False
            chat.status = "completed"
            if turn.chat_uuid is None and not chat.messages:
                self._chats.pop(chat.chat_id, None)
            chat.touch()
            self._changed.notify_all()

    def _release(self, turn: Turn) -> None:
        """Free the chat a turn reserved, before its run started."""
        with self._lock:
            if turn.chat is not None:
                turn.chat.busy = False


def _conversation(
    turn: Turn,
    chat: Chat,
    tools: tuple[Mapping[str, Any], ...],
    tool_results: tuple[Mapping[str, Any], ...],
) -> Conversation:
    """What the reply function of `turn` sees of `chat` now (lock held)."""
    return Conversation(
        assistant_id=turn.assistant_id,
        chat_uuid=chat.chat_id,
        messages=tuple(plain(chat.messages)),
        context=turn.context,
        metadata=turn.metadata,
        request=turn.slot.record,
        tools=tools,
        tool_results=tool_results,
    )


def _reply_failure(turn: Turn, exc: Exception) -> str:
    return (
        f"The reply function of assistant '{turn.assistant_id}' raised "
        f"{type(exc).__name__}: {exc}"
    )


def apply_options(chat: Chat, payload: Mapping[str, Any]) -> None:
    """Keep what a send sets on its chat (call with the condition held).

    `tenantId`, `subtenantId`, `userName` and `provider` as sent (a later send
    that names one replaces it), `model` as the history's `llm`, and `tags`
    added to the chat's tags.
    """
    options = chat.options
    for name in ("tenantId", "subtenantId", "userName", "provider"):
        if payload.get(name) is not None:
            options[name] = payload[name]
    if payload.get("model") is not None:
        options["llm"] = payload["model"]
    tags = payload.get("tags")
    if tags:
        options["tags"] = list(dict.fromkeys([*options.get("tags", []), *tags]))
