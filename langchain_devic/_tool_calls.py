"""Client tool calling: tools, tool calls and tool results between the two sides.

Tools become the OpenAI-style schemas Devic takes; a chat's pending client
tool calls become LangChain tool calls (read strictly: arguments that are not
a JSON object make an invalid call); the ToolMessages answering them become
Devic's tool responses; `with_structured_output` reads the schema tool's call.
Pure functions.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.exceptions import OutputParserException
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    InvalidToolCall,
    ToolCall,
    ToolCallChunk,
    ToolMessage,
    message_chunk_to_message,
)
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

from langchain_devic._turn_text import message_text

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


def awaited_call_ids(reply: BaseMessage, chat_uuid: str | None) -> list[str]:
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
