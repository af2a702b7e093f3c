"""LangChain messages to a Devic turn, and Devic replies to LangChain messages.

Pure functions, tested directly; `ChatDevic` wires them to the HTTP client.

1. **Which conversation** (`resolve_conversation`): the id given by keyword or
   config, else the id on the last `AIMessage` from this assistant, else a new
   conversation.
2. **What is sent** (`build_devic_request`): continuing, only the messages after
   that conversation's last reply; a new conversation gets earlier turns as a
   labelled transcript (`history="transcript"`), as Devic's
   `previousConversation` (`history="native"`) or the final turn alone
   (`history="last"`). `SystemMessage` text travels in `context["system"]`;
   file and image blocks with a URL become Devic's `files`; the message
   options (`tenant_id`, ...) become their Devic fields.
3. **What comes back** (`reply_to_message`, `reply_to_chunk`): the reply text,
   the conversation id and assistant in `response_metadata`, Devic's token
   count as `usage_metadata`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from langchain_core.exceptions import OutputParserException
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    InvalidToolCall,
    SystemMessage,
    ToolCall,
    ToolCallChunk,
    ToolMessage,
    message_chunk_to_message,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.messages.tool import (
    invalid_tool_call,
    tool_call,
    tool_call_chunk,
)
from langchain_core.output_parsers.openai_tools import (
    JsonOutputKeyToolsParser,
    JsonOutputToolsParser,
    PydanticToolsParser,
)
from langchain_core.runnables import Runnable, RunnableLambda
from langchain_core.utils.function_calling import convert_to_openai_tool
from langchain_core.utils.pydantic import is_basemodel_subclass

from langchain_devic import _wire

PROVIDER = "devic"
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
#: Content blocks that carry a file: sent in the send's `files` by URL.
_FILE_BLOCK_TYPES = frozenset({"file", "image", "image_url"})
_TEXT_BLOCK_TYPES = frozenset({"text", "input_text", "output_text"})
#: Blocks an AIMessage may carry that are represented elsewhere (tool_calls) or
#: are the other model's private reasoning; they are not content to forward.
_AI_SKIPPED_BLOCK_TYPES = frozenset(
    {"tool_use", "tool_call", "tool_call_chunk", "reasoning", "thinking"}
)
TRANSCRIPT_OPEN = "<conversation_history>"
TRANSCRIPT_CLOSE = "</conversation_history>"

History = Literal["transcript", "last", "native"]


# ---------------------------------------------------------------- messages → text


def message_text(message: BaseMessage) -> str:
    """The text of a message; non-text content blocks raise a clear `ValueError`.

    Devic's `message` field is text: text blocks are joined. A human message's
    file and image blocks with a URL travel in the send's `files` (see
    `message_files`); any other block is refused rather than silently dropped.
    """
    content = message.content
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
            continue
        block_type = block.get("type")
        if block_type in _TEXT_BLOCK_TYPES:
            parts.append(str(block.get("text", "")))
        elif isinstance(message, AIMessage) and block_type in _AI_SKIPPED_BLOCK_TYPES:
            continue
        elif isinstance(message, HumanMessage) and block_type in _FILE_BLOCK_TYPES:
            file_entry(block)  # checked here; sent in `files`
            continue
        else:
            msg = (
                f"ChatDevic sends text only, but a {type(message).__name__} holds a "
                f"{block_type!r} content block. Devic's message field is plain text: "
                "remove the block, or describe it in text (e.g. an image's URL)."
            )
            raise ValueError(msg)
    return "".join(parts)


def file_entry(block: Mapping[str, Any]) -> dict[str, Any]:
    """A file or image content block as Devic's `files` entry.

    `{"name", "donwloadUrl", "fileType"}` (Devic's spelling): the name from the
    block's `filename` (or `extras.filename`), else the URL path's last segment;
    the type from `mime_type`, else the file name's extension, else left out.

    Raises:
        ValueError: the block holds inline data (`base64`, `data`, a `data:`
            URL) or a provider's `file_id`: Devic takes files by URL.
    """
    kind = block.get("type")
    if kind == "image_url":
        inner = block.get("image_url")
        url = inner.get("url") if isinstance(inner, Mapping) else inner
    else:
        url = block.get("url")
    inline = any(block.get(key) for key in ("base64", "data", "file_id")) or (
        block.get("source_type") in {"base64", "id"}
    )
    if inline or not isinstance(url, str) or not url or url.startswith("data:"):
        what = "holds inline data or a file id" if inline or url else "has no URL"
        msg = (
            f"Devic takes files by URL: this {kind!r} content block {what}. "
            "ChatDevic sends text, and files as links Devic downloads: put the "
            f"file where Devic can fetch it and pass {{'type': {kind!r}, 'url': ...}}."
        )
        raise ValueError(msg)
    extras = block.get("extras")
    filename = block.get("filename") or (
        extras.get("filename") if isinstance(extras, Mapping) else None
    )
    last = unquote(urlsplit(url).path.rstrip("/").rpartition("/")[2])
    name = str(filename) if filename else last or "file"
    entry: dict[str, Any] = {"name": name, "donwloadUrl": url}
    mime = block.get("mime_type")
    extension = name.rpartition(".")[2].lower() if "." in name else None
    if isinstance(mime, str) and mime:
        entry["fileType"] = mime
    elif extension:
        entry["fileType"] = extension
    return entry


def message_files(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    """Devic's `files` entries of the human messages' file blocks, in order."""
    files: list[dict[str, Any]] = []
    for message in messages:
        if isinstance(message, HumanMessage) and not isinstance(message.content, str):
            files.extend(
                file_entry(block)
                for block in message.content
                if isinstance(block, Mapping) and block.get("type") in _FILE_BLOCK_TYPES
            )
    return files


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


def _label(message: BaseMessage, assistant_id: str) -> str:
    if isinstance(message, HumanMessage):
        return f"User ({message.name})" if message.name else "User"
    if isinstance(message, AIMessage):
        origin = message.response_metadata.get("assistant_id")
        if message.name:
            return f"Assistant ({message.name})"
        if origin and origin != assistant_id:
            return f"Assistant ({origin})"
        return "Assistant"
    if isinstance(message, ToolMessage):
        return f"Tool result ({message.name or message.tool_call_id})"
    if isinstance(message, SystemMessage):
        return "System"
    role = getattr(message, "role", None) or message.type
    return str(role).capitalize()


def _transcript_line(message: BaseMessage, assistant_id: str) -> str:
    text = message_text(message)
    if isinstance(message, AIMessage) and message.tool_calls:
        calls = "; ".join(f"{c['name']}({c['args']})" for c in message.tool_calls)
        text = (
            f"{text}\n[called tools: {calls}]" if text else f"[called tools: {calls}]"
        )
    return f"{_label(message, assistant_id)}: {text}"


def _trailing_human(messages: Sequence[BaseMessage]) -> list[BaseMessage]:
    start = len(messages)
    while start > 0 and isinstance(messages[start - 1], HumanMessage):
        start -= 1
    return list(messages[start:])


def render_turns(messages: Sequence[BaseMessage], assistant_id: str) -> str:
    """One Devic `message` from several LangChain messages (no system messages).

    One human message is sent as its exact text; several human messages are
    joined by a blank line; anything else among them (another assistant's reply,
    a tool result) makes the earlier turns a delimited, role-labelled transcript
    placed before the final user turn.
    """
    if all(isinstance(m, HumanMessage) for m in messages):
        return "\n\n".join(message_text(m) for m in messages)
    final = _trailing_human(messages)
    earlier = messages[: len(messages) - len(final)]
    lines = "\n".join(_transcript_line(m, assistant_id) for m in earlier)
    transcript = f"{TRANSCRIPT_OPEN}\n{lines}\n{TRANSCRIPT_CLOSE}"
    if not final:
        return transcript
    return transcript + "\n\n" + "\n\n".join(message_text(m) for m in final)


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


def _final_user_turn(messages: Sequence[BaseMessage]) -> list[BaseMessage]:
    """The trailing human messages (or the last message if it is not human)."""
    return _trailing_human(messages) or list(messages[-1:])


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
            line = _transcript_line(message, assistant_id)
            text = line.partition(": ")[2]
            turns.append({"message": text, "role": "assistant"})
        elif isinstance(message, HumanMessage):
            turns.append({"message": message_text(message), "role": "user"})
        else:
            line = _transcript_line(message, assistant_id)
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
    waiting = _pending_call_ids(messages[start - 1], chat_uuid) if start else []
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
        unsent = _final_user_turn(unsent)
    files = message_files(unsent)
    if chat_uuid is None and history == "native":
        final = _final_user_turn(unsent)
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


# ------------------------------------------------------------------ client tools


def format_tools(tools: Sequence[Any]) -> list[dict[str, Any]]:
    """Tools as the OpenAI-style function schemas Devic takes (`tools` on a send)."""
    return [convert_to_openai_tool(tool) for tool in tools]


def check_tool_options(
    tool_choice: Any, strict: bool | None, parallel_tool_calls: bool | None
) -> None:
    """Refuse tool options Devic cannot honour: it can neither force nor forbid calls.

    Raises:
        ValueError: `tool_choice` other than `None`/`"auto"`, `strict=True`, or
            `parallel_tool_calls=False`.
    """
    if tool_choice not in (None, "auto"):
        msg = (
            f"ChatDevic cannot honour tool_choice={tool_choice!r}: a Devic assistant "
            "decides itself whether to call a tool. Leave tool_choice out (or "
            "'auto'), and ask for the tool in the message or the assistant's prompt."
        )
        raise ValueError(msg)
    if strict:
        msg = (
            "ChatDevic cannot honour strict=True: Devic does not constrain tool "
            "arguments to the schema. Leave strict out, and validate the arguments "
            "(a Pydantic args_schema does)."
        )
        raise ValueError(msg)
    if parallel_tool_calls is False:
        msg = (
            "ChatDevic cannot honour parallel_tool_calls=False: a Devic assistant "
            "may call several tools at once. Leave parallel_tool_calls out."
        )
        raise ValueError(msg)


def _pending_call_ids(reply: BaseMessage, chat_uuid: str | None) -> list[str]:
    """The ids of the client tool calls this chat's last reply made (it waits)."""
    if (
        chat_uuid is None
        or not isinstance(reply, AIMessage)
        or reply.response_metadata.get("chat_uuid") != chat_uuid
    ):
        return []
    calls = [*reply.tool_calls, *reply.invalid_tool_calls]
    return [str(call["id"]) for call in calls if call.get("id")]


def tool_result_content(message: ToolMessage) -> Any:
    """A ToolMessage as the `content` of a tool response (an error as `{"error"}`)."""
    text = message_text(message)
    return {"error": text} if message.status == "error" else text


def tool_responses(
    unsent: Sequence[BaseMessage], waiting: Sequence[str], chat_uuid: str
) -> tuple[dict[str, Any], ...]:
    """The tool-response items answering every call the chat waits for.

    Raises:
        ValueError: a new message that is not a ToolMessage, a call left
            unanswered, answered twice, or an answer to a call not made.
    """
    ids = ", ".join(waiting)
    others = [type(m).__name__ for m in unsent if not isinstance(m, ToolMessage)]
    if others:
        msg = (
            f"Chat {chat_uuid} waits for the results of tool calls {ids}; the new "
            f"messages also hold {', '.join(others)}. Answer every call with a "
            "ToolMessage first (alone in that call), then send the next message."
        )
        raise ValueError(msg)
    answers = [m for m in unsent if isinstance(m, ToolMessage)]
    given = [m.tool_call_id for m in answers]
    missing = [call for call in waiting if call not in given]
    unknown = [call for call in given if call not in waiting]
    twice = sorted({call for call in given if given.count(call) > 1})
    for problem, calls in (
        ("has no ToolMessage for", missing),
        ("has ToolMessages for calls the reply did not make:", unknown),
        ("answers more than once:", twice),
    ):
        if calls:
            msg = (
                f"Chat {chat_uuid} waits for the results of tool calls {ids}; the "
                f"input {problem} {', '.join(calls)}. Devic keeps the run "
                "waiting until every call is answered: give exactly one ToolMessage "
                "per call."
            )
            raise ValueError(msg)
    return tuple(
        {
            "tool_call_id": m.tool_call_id,
            "role": "tool",
            "content": tool_result_content(m),
        }
        for m in answers
    )


def tool_call_chunks(calls: Sequence[Mapping[str, Any]]) -> list[ToolCallChunk]:
    """Devic's pending calls as stream chunks (one per call, arguments whole)."""
    chunks: list[ToolCallChunk] = []
    for index, call in enumerate(calls):
        function = call.get("function")
        function = function if isinstance(function, Mapping) else {}
        arguments = function.get("arguments")
        chunks.append(
            tool_call_chunk(
                name=str(function.get("name") or ""),
                args=arguments if isinstance(arguments, str) else json.dumps(arguments),
                id=str(call.get("id")) if call.get("id") is not None else None,
                index=index,
            )
        )
    return chunks


def parse_tool_calls(
    chunks: Sequence[ToolCallChunk],
) -> tuple[list[ToolCall], list[InvalidToolCall]]:
    """Whole tool calls, their arguments read strictly (`json.loads`).

    Arguments that are not a JSON object make an invalid tool call (with the
    raw text and the reason), never a call run with guessed arguments.
    """
    valid: list[ToolCall] = []
    invalid: list[InvalidToolCall] = []
    for chunk in chunks:
        name, raw, call_id = chunk["name"] or "", chunk["args"] or "", chunk["id"]
        try:
            args = json.loads(raw) if raw.strip() else {}
        except ValueError as exc:
            error = f"arguments are not JSON: {exc}"
        else:
            if isinstance(args, dict):
                valid.append(tool_call(name=name, args=args, id=call_id))
                continue
            error = "arguments are not a JSON object"
        invalid.append(invalid_tool_call(name=name, args=raw, id=call_id, error=error))
    return valid, invalid


def chunks_to_message(chunks: Sequence[AIMessageChunk]) -> AIMessage:
    """The `AIMessage` of a followed run: its chunks joined, tool calls read strictly.

    LangChain reads streamed tool arguments leniently (a cut-off JSON is
    completed); a finished call's arguments are read as they are instead.
    """
    joined = chunks[0] if len(chunks) == 1 else chunks[0] + list(chunks[1:])
    message = message_chunk_to_message(joined)
    assert isinstance(message, AIMessage)  # noqa: S101 - an AIMessageChunk joined
    if joined.tool_call_chunks:
        message.tool_calls, message.invalid_tool_calls = parse_tool_calls(
            joined.tool_call_chunks
        )
    return message


def _require_structured(parsed: Any) -> Any:
    if parsed is None:
        msg = (
            "The assistant answered in text instead of calling the output schema's "
            "tool (Devic cannot force a tool call). Ask for the structured answer "
            "explicitly, or use include_raw=True to see the reply."
        )
        raise OutputParserException(msg)
    return parsed


def structured_output_parser(schema: dict[str, Any] | type) -> Runnable[Any, Any]:
    """The parser of `with_structured_output`: the schema tool's call, required.

    A Pydantic class gives an instance, a TypedDict or JSON schema a dict; a
    reply without the call raises `OutputParserException`.
    """
    parser: JsonOutputToolsParser
    if isinstance(schema, type) and is_basemodel_subclass(schema):
        parser = PydanticToolsParser(tools=[schema], first_tool_only=True)
    else:
        name = convert_to_openai_tool(schema)["function"]["name"]
        parser = JsonOutputKeyToolsParser(key_name=name, first_tool_only=True)
    return parser | RunnableLambda(_require_structured)


# ------------------------------------------------------------ reply → AIMessage


def usage_from_reply(reply: _wire.DevicReply) -> UsageMetadata | None:
    """Devic's token figures as `usage_metadata`, or `None` when it sent none.

    `total_tokens` is `tokens_used` and `input + output == total` always. With a
    platform split (`inputTokens`/`outputTokens`) the split is kept; with the
    seed's single total, the whole count is reported as `output_tokens`.
    """
    total, inp, out = reply.tokens_used, reply.input_tokens, reply.output_tokens
    if total is None and inp is None and out is None:
        return None
    if total is None:
        total = (inp or 0) + (out or 0)
    if inp is None and out is None:
        inp, out = 0, total
    elif inp is None:
        out = min(out or 0, total)
        inp = total - out
    else:
        inp = min(inp, total)
        out = total - inp
    # mypy's 3.10 target reads langchain-core >= 1.8 (a 3.11+ release) without
    # its NotRequired markers, so the optional *_token_details look required.
    usage: UsageMetadata = {  # type: ignore[typeddict-item, unused-ignore]
        "input_tokens": inp,
        "output_tokens": out,
        "total_tokens": total,
    }
    return usage


def _first_stop(text: str, stop: Sequence[str] | None) -> int:
    """Where the first stop sequence in `text` begins, or -1."""
    found = [i for s in stop or () if s and (i := text.find(s)) != -1]
    return min(found, default=-1)


def _cut_at_stop(text: str, stop: Sequence[str] | None) -> str:
    """The reply up to (not including) the first stop sequence."""
    cut = _first_stop(text, stop)
    return text if cut == -1 else text[:cut]


def _response_metadata(
    reply: _wire.DevicReply, assistant_id: str, usage: UsageMetadata | None
) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "chat_uuid": reply.chat_uuid,
        "assistant_id": assistant_id,
        "model_name": assistant_id,
        "model_provider": PROVIDER,
        "timestamp": reply.timestamp,
        "tokens_used": usage["total_tokens"] if usage else None,
        "finish_reason": "stop",
    }
    if reply.extra:
        metadata["devic_extra"] = reply.extra
    return metadata


def _message_fields(
    reply: _wire.DevicReply, assistant_id: str, stop: Sequence[str] | None
) -> dict[str, Any]:
    usage = usage_from_reply(reply)
    return {
        "content": _cut_at_stop(reply.text, stop),
        "response_metadata": _response_metadata(reply, assistant_id, usage),
        "usage_metadata": usage,
    }


def reply_to_message(
    reply: _wire.DevicReply, assistant_id: str, stop: Sequence[str] | None = None
) -> AIMessage:
    """The `AIMessage` for one Devic reply (pure function)."""
    return AIMessage(**_message_fields(reply, assistant_id, stop))


def reply_to_chunk(
    reply: _wire.DevicReply,
    assistant_id: str,
    stop: Sequence[str] | None,
    calls: Sequence[Mapping[str, Any]] = (),
) -> AIMessageChunk:
    """The whole reply as the one, last chunk of a stream (pure function).

    `calls` are the client tool calls the run waits for: they become the
    chunk's `tool_call_chunks`, with `finish_reason` `"tool_calls"`.
    """
    fields = _message_fields(reply, assistant_id, stop)
    if calls:
        fields["response_metadata"]["finish_reason"] = "tool_calls"
        fields["tool_call_chunks"] = tool_call_chunks(calls)
    return AIMessageChunk(**fields, chunk_position="last")


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


# ------------------------------------------------------------------ platform runs


class StopCutter:
    """Streamed text cut before the first stop sequence, as `invoke` cuts it.

    Text that could be the start of a stop sequence is held back until the
    next piece shows it is not; once a stop sequence appears nothing more is
    let through.
    """

    def __init__(self, stop: Sequence[str] | None) -> None:
        self._stops = [s for s in stop or () if s]
        self._held = ""
        self.stopped = False

    def feed(self, pieces: Sequence[str]) -> list[str]:
        """The part of `pieces` that may be shown now."""
        out: list[str] = []
        for piece in pieces:
            if self.stopped:
                break
            if not self._stops:
                out.append(piece)
                continue
            self._held += piece
            cut = _first_stop(self._held, self._stops)
            if cut != -1:
                out.append(self._held[:cut])
                self._held, self.stopped = "", True
                break
            keep = max(len(s) for s in self._stops) - 1
            ready = len(self._held) - keep
            if ready > 0:
                out.append(self._held[:ready])
                self._held = self._held[ready:]
        return [piece for piece in out if piece]

    def flush(self) -> list[str]:
        """What was held back, once the run has ended without a stop sequence."""
        held, self._held = self._held, ""
        return [held] if held and not self.stopped else []


def chat_totals_in(
    messages: Sequence[BaseMessage], chat_uuid: str | None
) -> tuple[int, int] | None:
    """The chat's token totals before this turn, as far as the input tells.

    A new chat starts at zero; a continued one at the `devic_chat_totals` of its
    last reply in the input; `None` when the input does not say (read them).
    """
    if chat_uuid is None:
        return (0, 0)
    for message in reversed(messages):
        if (
            isinstance(message, AIMessage)
            and message.response_metadata.get("chat_uuid") == chat_uuid
        ):
            totals = message.response_metadata.get("devic_chat_totals")
            if isinstance(totals, Mapping):
                return (
                    int(totals.get("input_tokens") or 0),
                    int(totals.get("output_tokens") or 0),
                )
            return None
    return None


def run_reply(
    text: str,
    chat_uuid: str,
    timestamp: str | None,
    before: tuple[int, int] | None,
    after: tuple[int, int] | None,
) -> _wire.DevicReply:
    """A finished run as a reply; its usage is the chat's totals' growth.

    No usage is invented: without both totals the token figures stay `None`.
    """
    inp = out = None
    if before is not None and after is not None:
        inp = max(after[0] - before[0], 0)
        out = max(after[1] - before[1], 0)
    return _wire.DevicReply(
        text=text,
        chat_uuid=chat_uuid,
        tokens_used=None if inp is None or out is None else inp + out,
        input_tokens=inp,
        output_tokens=out,
        timestamp=timestamp,
    )


def with_chat_totals(
    message: AIMessage | AIMessageChunk, totals: tuple[int, int] | None
) -> AIMessage | AIMessageChunk:
    """Record the chat's totals after the turn, for the next turn's usage."""
    if totals is not None:
        message.response_metadata["devic_chat_totals"] = {
            "input_tokens": totals[0],
            "output_tokens": totals[1],
        }
    return message


def _history_tool_calls(message: Mapping[str, Any]) -> list[ToolCall]:
    calls: list[ToolCall] = []
    for call in message.get("tool_calls") or []:
        function = call.get("function") if isinstance(call, Mapping) else None
        if not isinstance(function, Mapping) or not isinstance(call.get("id"), str):
            continue
        try:
            args = json.loads(function.get("arguments") or "{}")
        except ValueError:
            args = {"arguments": function.get("arguments")}
        calls.append(
            ToolCall(
                name=str(function.get("name")),
                args=args if isinstance(args, dict) else {"value": args},
                id=call["id"],
                type="tool_call",
            )
        )
    return calls


def history_to_messages(
    chat: Mapping[str, Any], assistant_id: str, chat_uuid: str
) -> list[BaseMessage]:
    """A Devic chat history as LangChain messages that continue the chat.

    `user` → HumanMessage, `assistant` → AIMessage (its tool calls, and the chat
    id and assistant in `response_metadata`, so passing the list back to
    `invoke` continues the chat), `tool` → ToolMessage, `developer`/`system` →
    SystemMessage. Each message's `id` is Devic's message uid (feedback names
    messages by it). The last AIMessage carries the chat's token totals.
    """
    out: list[BaseMessage] = []
    for item in _wire.view_messages(chat):
        if not isinstance(item, Mapping):
            continue
        uid = item.get("uid")
        ids: dict[str, Any] = {"id": uid} if isinstance(uid, str) and uid else {}
        role = item.get("role")
        text = _wire.message_text(item)
        if text is None:
            content = item.get("content")
            data = content.get("data") if isinstance(content, Mapping) else None
            text = "" if data is None else json.dumps(data, ensure_ascii=False)
        if role == "user":
            out.append(HumanMessage(text, **ids))
        elif role == "assistant":
            out.append(
                AIMessage(
                    content=text,
                    **ids,
                    tool_calls=_history_tool_calls(item),
                    response_metadata={
                        "chat_uuid": chat_uuid,
                        "assistant_id": assistant_id,
                        "model_name": assistant_id,
                        "model_provider": PROVIDER,
                        "timestamp": _wire.iso_timestamp(item.get("timestamp")),
                    },
                )
            )
        elif role == "tool":
            out.append(
                ToolMessage(text, tool_call_id=str(item.get("tool_call_id")), **ids)
            )
        elif role in {"developer", "system"}:
            out.append(SystemMessage(text, **ids))
    totals = _wire.chat_totals(chat)
    last_reply = next((m for m in reversed(out) if isinstance(m, AIMessage)), None)
    if last_reply is not None:
        with_chat_totals(last_reply, totals)
    return out
