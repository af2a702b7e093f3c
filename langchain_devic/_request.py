"""What one ChatDevic call sends: LangChain messages to a `DevicRequest`.

1. **Which conversation** (`resolve_conversation`): the id given by keyword or
   config (checked by `checked_chat_uuid`), else the id on the last `AIMessage`
   from this assistant, else a new conversation.
2. **What is sent** (`build_devic_request`): continuing, only the messages after
   that conversation's last reply (or, when that reply waits for client tool
   calls, their results); a new conversation gets earlier turns as a labelled
   transcript (`history="transcript"`), as Devic's `previousConversation`
   (`history="native"`) or the final turn alone (`history="last"`).
   `SystemMessage` text travels in `context["system"]`; file and image blocks
   with a URL become Devic's `files`; the message options (`tenant_id`, ...)
   become their Devic fields (`option_fields`).

Pure functions, tested directly; `ChatDevic` wires them to the HTTP client.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
)

from langchain_devic import _wire
from langchain_devic._tool_calls import awaited_call_ids, tool_responses
from langchain_devic._turn_text import (
    final_user_turn,
    message_files,
    message_text,
    render_turns,
    transcript_line,
)

#: The keyword arguments a call may carry, besides LangChain's own (`stream`
#: and `ls_*` tracing keys, which BaseChatModel itself passes down).
CALL_KWARGS = frozenset(
    {
        "chat_uuid",
        "context",
        "request_metadata",
        "model",
        "tools",
        "close_tool_wait",
        "on_started",
        "resume",
        "tenant_id",
        "subtenant_id",
        "user_name",
        "request_tags",
        "enabled_tools",
        "skip_summarization",
        "llm_provider",
        "llm_model",
    }
)
#: Devic's message options: each Python name (a ChatDevic field and a call
#: keyword) and the field of the send that carries it.
OPTIONS: dict[str, str] = {
    "tenant_id": "tenantId",
    "subtenant_id": "subtenantId",
    "user_name": "userName",
    "request_tags": "tags",
    "enabled_tools": "enabledTools",
    "skip_summarization": "skipSummarization",
    "llm_provider": "provider",
    "llm_model": "model",
}
_LIST_OPTIONS = frozenset({"request_tags", "enabled_tools"})

History = Literal["transcript", "last", "native"]


# ---------------------------------------------------------------- message options


def option_fields(options: Mapping[str, Any]) -> dict[str, Any]:
    """The send's fields for Devic's message options (`None`: not sent).

    Raises:
        ValueError: an option of the wrong type (a list option that is not a
            list of strings, a flag that is not a bool, ...).
    """
    fields: dict[str, Any] = {}
    for name, value in options.items():
        if value is None:
            continue
        if name in _LIST_OPTIONS:
            if isinstance(value, str) or not all(isinstance(v, str) for v in value):
                msg = f"{name} must be a list of strings, got {value!r}."
                raise ValueError(msg)
            value = list(value)
        elif name == "skip_summarization":
            if not isinstance(value, bool):
                msg = f"skip_summarization must be a bool, got {value!r}."
                raise ValueError(msg)
        elif not isinstance(value, str):
            msg = f"{name} must be a string, got {value!r}."
            raise ValueError(msg)
        fields[OPTIONS[name]] = value
    return fields


# ------------------------------------------------------- conversation resolution


@dataclass(frozen=True)
class DevicRequest:
    """What one ChatDevic call sends: the text, the conversation and the context.

    A call whose new messages answer the client tool calls of the chat's last
    reply sends `tool_responses` instead of a message (`message` is then "").
    """

    message: str
    chat_uuid: str | None
    context: dict[str, Any] | None
    metadata: dict[str, Any] | None
    tool_responses: tuple[dict[str, Any], ...] = ()
    #: Devic's other send fields: the options, `files`, `previousConversation`.
    fields: dict[str, Any] | None = None

    @property
    def answered(self) -> frozenset[str]:
        """The ids of the tool calls this request answers."""
        return frozenset(r["tool_call_id"] for r in self.tool_responses)


def _last_index(
    messages: Sequence[BaseMessage], predicate: Callable[[BaseMessage], bool]
) -> int | None:
    for index in range(len(messages) - 1, -1, -1):
        if predicate(messages[index]):
            return index
    return None


def _check_owner(reply: BaseMessage, chat_uuid: str, assistant_id: str) -> None:
    """Refuse to continue, as this assistant, a conversation of another one."""
    owner = reply.response_metadata.get("assistant_id")
    if owner and owner != assistant_id:
        msg = (
            f"Conversation {chat_uuid!r} belongs to assistant {owner!r} (its reply in "
            f"the input says so), not to {assistant_id!r}. When one config steers "
            "several assistants, map each to its own conversation: "
            f"configurable={{'chat_uuid': {{{owner!r}: ..., {assistant_id!r}: ...}}}}."
        )
        raise ValueError(msg)


def resolve_conversation(
    messages: Sequence[BaseMessage], assistant_id: str, chat_uuid: str | None
) -> tuple[str | None, int]:
    """Which chat to continue, and where the not-yet-sent messages start.

    `chat_uuid` is the id given by keyword or config (cases 1-2); without it, the
    last reply of *this* assistant that carries an id is continued (case 3);
    else the conversation is new (case 4) and every message is unsent.
    """
    if chat_uuid is not None:
        own = _last_index(
            messages,
            lambda m: (
                isinstance(m, AIMessage)
                and m.response_metadata.get("chat_uuid") == chat_uuid
            ),
        )
        if own is not None:
            _check_owner(messages[own], chat_uuid, assistant_id)
        else:
            own = _last_index(messages, lambda m: isinstance(m, AIMessage))
        return chat_uuid, 0 if own is None else own + 1

    def is_own_reply(m: BaseMessage) -> bool:
        return (
            isinstance(m, AIMessage)
            and bool(m.response_metadata.get("chat_uuid"))
            and m.response_metadata.get("assistant_id") == assistant_id
        )

    own = _last_index(messages, is_own_reply)
    if own is None:
        return None, 0
    continued = messages[own].response_metadata["chat_uuid"]
    return str(continued), own + 1


def _previous_conversation(
    earlier: Sequence[BaseMessage], assistant_id: str
) -> list[dict[str, str]]:
    """Earlier turns as Devic's `previousConversation` (`history="native"`).

    Replies are `assistant` turns (with the tools they called); human messages
    are `user` turns; anything else (a tool result) is a labelled `user` turn,
    so nothing passed is dropped.
    """
    turns: list[dict[str, str]] = []
    for message in earlier:
        if isinstance(message, AIMessage):
            line = transcript_line(message, assistant_id)
            text = line.partition(": ")[2]
            turns.append({"message": text, "role": "assistant"})
        elif isinstance(message, HumanMessage):
            turns.append({"message": message_text(message), "role": "user"})
        else:
            line = transcript_line(message, assistant_id)
            turns.append({"message": line, "role": "user"})
    return turns


def _merge(
    defaults: Mapping[str, Any] | None, overrides: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    merged = {**(defaults or {}), **(overrides or {})}
    return merged or None


def build_devic_request(
    messages: Sequence[BaseMessage],
    *,
    assistant_id: str,
    chat_uuid: str | None = None,
    history: History = "transcript",
    context: Mapping[str, Any] | None = None,
    call_context: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
    call_metadata: Mapping[str, Any] | None = None,
    fields: Mapping[str, Any] | None = None,
) -> DevicRequest:
    """Translate a LangChain message list into one Devic turn (pure function).

    `fields` are Devic send fields set by the caller (the message options, see
    `option_fields`); `files` and `previousConversation` are added from the
    messages.

    Raises:
        ValueError: nothing new to send, an empty message, a block Devic cannot
            take (inline file data, audio, ...).
    """
    given = dict(fields) if fields else None
    if not messages:
        msg = "ChatDevic needs at least one message to send; got an empty input."
        raise ValueError(msg)
    if len(messages) == 1:
        # The common call, `invoke("text")`: one plain HumanMessage has no
        # conversation to resolve, no system text, no transcript and no tool
        # results, so the general path below would send its text as it is.
        only = messages[0]
        text = only.content
        if type(only) is HumanMessage and type(text) is str and text.strip():
            return DevicRequest(
                message=text,
                chat_uuid=chat_uuid,
                context=_merge(context, call_context),
                metadata=_merge(metadata, call_metadata),
                fields=given,
            )
    chat_uuid, start = resolve_conversation(messages, assistant_id, chat_uuid)
    system_text = "\n\n".join(
        message_text(m) for m in messages if isinstance(m, SystemMessage)
    )
    unsent = [m for m in messages[start:] if not isinstance(m, SystemMessage)]
    if not unsent:
        where = f"conversation {chat_uuid!r}" if chat_uuid else "the input"
        msg = (
            f"Nothing new to send in {where}: its last message is already the "
            "assistant's reply. Append a HumanMessage with the next turn."
        )
        raise ValueError(msg)
    merged_metadata = _merge(metadata, call_metadata)
    waiting = awaited_call_ids(messages[start - 1], chat_uuid) if start else []
    if waiting:
        return DevicRequest(
            message="",
            chat_uuid=chat_uuid,
            context=None,
            metadata=merged_metadata,
            tool_responses=tool_responses(unsent, waiting, str(chat_uuid)),
        )
    extra = dict(given or {})
    if chat_uuid is None and history == "last":
        unsent = final_user_turn(unsent)
    files = message_files(unsent)
    if chat_uuid is None and history == "native":
        final = final_user_turn(unsent)
        before = unsent[: len(unsent) - len(final)]
        if before:
            extra["previousConversation"] = _previous_conversation(before, assistant_id)
        unsent = final
    if files:
        extra["files"] = files
    text = render_turns(unsent, assistant_id)
    if not text.strip():
        msg = (
            "ChatDevic would send an empty message; Devic requires non-empty text. "
            "Check that the last HumanMessage has content."
        )
        raise ValueError(msg)
    merged_context = _merge(context, call_context)
    if system_text:
        merged_context = dict(merged_context or {})
        earlier = merged_context.get("system")
        merged_context["system"] = (
            f"{earlier}\n\n{system_text}" if isinstance(earlier, str) else system_text
        )
    return DevicRequest(
        message=text,
        chat_uuid=chat_uuid,
        context=merged_context,
        metadata=merged_metadata,
        fields=extra or None,
    )


def checked_chat_uuid(value: Any, source: str) -> str:
    """A conversation id given by the caller, refused before any request if blank.

    Accepts a string or a `uuid.UUID`; `source` names where it came from, for
    the error message.
    """
    if isinstance(value, uuid.UUID):
        return str(value)
    if not isinstance(value, str):
        msg = (
            f"{source} must be a conversation id string (or a dict of assistant id "
            f"-> conversation id in the config); got {type(value).__name__}."
        )
        raise TypeError(msg)
    if not value.strip():
        msg = (
            f"{source} is empty. Pass the chat_uuid of a Devic conversation (from a "
            "reply's response_metadata['chat_uuid']), or leave it out to start a "
            "new conversation."
        )
        raise ValueError(msg)
    return _wire.validate_chat_uuid(value)


def chat_uuid_from_configurable(value: Any, assistant_id: str) -> str | None:
    """This assistant's conversation id from `configurable["chat_uuid"]`.

    The value is a conversation id, or a dict mapping assistant ids to
    conversation ids, so one graph-level config can steer several assistants;
    an assistant absent from the dict gets `None` (the input decides).
    """
    if value is None:
        return None
    if isinstance(value, Mapping):
        if assistant_id not in value or value[assistant_id] is None:
            return None
        source = f"config['configurable']['chat_uuid'][{assistant_id!r}]"
        return checked_chat_uuid(value[assistant_id], source)
    return checked_chat_uuid(value, "config['configurable']['chat_uuid']")
