"""LangChain messages ↔ Devic turns: the one import point of the conversion.

The conversion is pure functions, tested directly, in four modules with one
job each; `ChatDevic` and its calls import them from here:

- `_turn_text`: a message's text and files, several messages as one turn's text.
- `_request`: which conversation a call continues and what it sends
  (`build_devic_request` → `DevicRequest`), the message options.
- `_tool_calls`: tool schemas, tool calls read strictly, tool results as
  Devic's tool responses, `with_structured_output`'s parser.
- `_reply`: a reply, a platform run or a chat history as LangChain messages,
  with `usage_metadata` and stop sequences applied.
"""

from __future__ import annotations

from langchain_devic._reply import (
    PROVIDER,
    StopCutter,
    chat_totals_in,
    history_to_messages,
    reply_to_chunk,
    reply_to_message,
    run_reply,
    usage_from_reply,
    with_chat_totals,
)
from langchain_devic._request import (
    CALL_KWARGS,
    OPTIONS,
    DevicRequest,
    History,
    build_devic_request,
    chat_uuid_from_configurable,
    checked_chat_uuid,
    option_fields,
    resolve_conversation,
)
from langchain_devic._tool_calls import (
    check_tool_options,
    chunks_to_message,
    format_tools,
    parse_tool_calls,
    structured_output_parser,
    tool_call_chunks,
    tool_responses,
    tool_result_content,
)
from langchain_devic._turn_text import (
    TRANSCRIPT_CLOSE,
    TRANSCRIPT_OPEN,
    file_entry,
    message_files,
    message_text,
    render_turns,
)

__all__ = [
    "CALL_KWARGS",
    "OPTIONS",
    "PROVIDER",
    "TRANSCRIPT_CLOSE",
    "TRANSCRIPT_OPEN",
    "DevicRequest",
    "History",
    "StopCutter",
    "build_devic_request",
    "chat_totals_in",
    "chat_uuid_from_configurable",
    "check_tool_options",
    "checked_chat_uuid",
    "chunks_to_message",
    "file_entry",
    "format_tools",
    "history_to_messages",
    "message_files",
    "message_text",
    "option_fields",
    "parse_tool_calls",
    "render_turns",
    "reply_to_chunk",
    "reply_to_message",
    "resolve_conversation",
    "run_reply",
    "structured_output_parser",
    "tool_call_chunks",
    "tool_responses",
    "tool_result_content",
    "usage_from_reply",
    "with_chat_totals",
]
