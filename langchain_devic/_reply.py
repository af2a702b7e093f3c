"""What comes back: Devic replies, runs and chat histories as LangChain messages.

`reply_to_message` and `reply_to_chunk` give the reply text (cut at the stop
sequences), the conversation id and assistant in `response_metadata`, and
Devic's token count as `usage_metadata`; a platform run's text is cut while it
streams (`StopCutter`) and its usage is the growth of the chat's token totals;
`history_to_messages` turns a stored chat into messages that continue it.
Pure functions.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolCall,
    ToolMessage,
)
from langchain_core.messages.ai import UsageMetadata

from langchain_devic import _wire
from langchain_devic._tool_calls import tool_call_chunks

PROVIDER = "devic"


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
