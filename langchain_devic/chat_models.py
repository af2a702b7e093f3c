"""ChatDevic: a Devic assistant as a LangChain chat model.

How input becomes output:

1. **Which conversation.** A Devic conversation lives on the server, named by a
   `chatUuid`. The call continues, first match wins: the `chat_uuid` keyword; the
   runnable config's `configurable["chat_uuid"]`; the id on the last `AIMessage`
   in the input that came from this assistant; else a new conversation.
2. **What is sent.** Continuing, only the messages after that conversation's last
   reply (the server has the rest). A new conversation gets the earlier turns as
   a role-labelled transcript before the final user turn (`history="transcript"`),
   or the final turn alone (`history="last"`). `SystemMessage` text travels in
   `context["system"]`, never in the user's words.
3. **What comes back.** An `AIMessage` with the reply, the conversation id in
   `response_metadata["chat_uuid"]` (so message history alone continues the chat)
   and Devic's token count as `usage_metadata`.

The translation steps are pure module-level functions, tested directly; the
class wires them to `langchain_devic._client`.
"""

from __future__ import annotations

import asyncio
import copy
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import httpx
from langchain_core.caches import BaseCache
from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.language_models.base import LangSmithParams
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import RunnableConfig, ensure_config
from langchain_core.utils import from_env, secret_from_env
from pydantic import ConfigDict, Field, PrivateAttr, SecretStr, field_validator
from typing_extensions import Self, override

from langchain_devic import _wire
from langchain_devic._client import (
    DEFAULT_TIMEOUT,
    AsyncDevicClient,
    DevicClient,
)

__all__ = [
    "ChatDevic",
    "DevicRequest",
    "build_devic_request",
    "message_text",
    "reply_to_message",
    "usage_from_reply",
]

PROVIDER = "devic"
#: The keyword arguments a call may carry, besides LangChain's own (`stream`
#: and `ls_*` tracing keys, which BaseChatModel itself passes down).
CALL_KWARGS = frozenset({"chat_uuid", "context", "request_metadata", "model"})
_TEXT_BLOCK_TYPES = frozenset({"text", "input_text", "output_text"})
#: Blocks an AIMessage may carry that are represented elsewhere (tool_calls) or
#: are the other model's private reasoning; they are not content to forward.
_AI_SKIPPED_BLOCK_TYPES = frozenset(
    {"tool_use", "tool_call", "tool_call_chunk", "reasoning", "thinking"}
)
TRANSCRIPT_OPEN = "<conversation_history>"
TRANSCRIPT_CLOSE = "</conversation_history>"

History = Literal["transcript", "last"]


# ---------------------------------------------------------------- messages → text


def message_text(message: BaseMessage) -> str:
    """The text of a message; non-text content blocks raise a clear `ValueError`.

    Devic's `message` field is text: text blocks are joined, and an image, audio
    or file block is refused rather than silently dropped.
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
        else:
            msg = (
                f"ChatDevic sends text only, but a {type(message).__name__} holds a "
                f"{block_type!r} content block. Devic's message field is plain text: "
                "remove the block, or describe it in text (e.g. an image's URL)."
            )
            raise ValueError(msg)
    return "".join(parts)


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
    """What one ChatDevic call sends: the text, the conversation and the context."""

    message: str
    chat_uuid: str | None
    context: dict[str, Any] | None
    metadata: dict[str, Any] | None


def _last_index(
    messages: Sequence[BaseMessage], predicate: Callable[[BaseMessage], bool]
) -> int | None:
    for index in range(len(messages) - 1, -1, -1):
        if predicate(messages[index]):
            return index
    return None


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
        if own is None:
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
) -> DevicRequest:
    """Translate a LangChain message list into one Devic turn (pure function).

    Raises:
        ValueError: nothing new to send, an empty message, or a non-text block.
    """
    if not messages:
        msg = "ChatDevic needs at least one message to send; got an empty input."
        raise ValueError(msg)
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
    if chat_uuid is None and history == "last":
        unsent = _final_user_turn(unsent)
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
        metadata=_merge(metadata, call_metadata),
    )


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
    usage: UsageMetadata = {
        "input_tokens": inp,
        "output_tokens": out,
        "total_tokens": total,
    }
    return usage


def _cut_at_stop(text: str, stop: Sequence[str] | None) -> str:
    """The reply up to (not including) the first stop sequence."""
    cut = len(text)
    for sequence in stop or ():
        if sequence:
            found = text.find(sequence)
            if found != -1:
                cut = min(cut, found)
    return text[:cut]


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


def reply_to_message(
    reply: _wire.DevicReply, assistant_id: str, stop: Sequence[str] | None = None
) -> AIMessage:
    """The `AIMessage` for one Devic reply (pure function)."""
    usage = usage_from_reply(reply)
    return AIMessage(
        content=_cut_at_stop(reply.text, stop),
        response_metadata=_response_metadata(reply, assistant_id, usage),
        usage_metadata=usage,
    )


def _reply_to_chunk(
    reply: _wire.DevicReply, assistant_id: str, stop: Sequence[str] | None
) -> AIMessageChunk:
    usage = usage_from_reply(reply)
    return AIMessageChunk(
        content=_cut_at_stop(reply.text, stop),
        response_metadata=_response_metadata(reply, assistant_id, usage),
        usage_metadata=usage,
        chunk_position="last",
    )


def _chat_uuid_from_config(config: RunnableConfig | None) -> str | None:
    configurable = ensure_config(config).get("configurable") or {}
    value = configurable.get("chat_uuid")
    return str(value) if value else None


# ------------------------------------------------------------------------ model


class ChatDevic(BaseChatModel):
    """A Devic assistant as a LangChain chat model.

    Setup:
        Install `langchain-devic` and set `DEVIC_API_KEY` and
        `DEVIC_ASSISTANT_ID` (or pass `api_key=` and `assistant_id=`).

    Conversations live on Devic's side and are named by a `chatUuid`. Continue
    one by passing `chat_uuid=` or `config={"configurable": {"chat_uuid": ...}}`,
    or simply by passing back the history: every reply carries its id in
    `response_metadata["chat_uuid"]`. The instance keeps no conversation state,
    so one object serves any number of concurrent conversations.

    Usage:
        Devic reports one total, `tokens_used`. It becomes `usage_metadata` with
        `total_tokens == tokens_used`; when Devic gives no input/output split,
        the whole count is reported as `output_tokens` (and `input_tokens` is 0).

    Example:
        ```python
        from langchain_devic import ChatDevic

        model = ChatDevic(assistant_id="my-assistant")
        first = model.invoke("Summarise the Q3 report.")
        chat = first.response_metadata["chat_uuid"]
        follow_up = model.invoke(
            "Now only the risks.", config={"configurable": {"chat_uuid": chat}}
        )
        ```
    """

    model_config = ConfigDict(
        populate_by_name=True,
        arbitrary_types_allowed=True,
        hide_input_in_errors=True,
        defer_build=True,  # build the validator on first use, not at import
    )

    assistant_id: str = Field(
        alias="model",
        validate_default=True,
        default_factory=from_env(
            "DEVIC_ASSISTANT_ID",
            error_message=(
                "ChatDevic needs an assistant id: pass assistant_id='...' (alias "
                "model=) or set the DEVIC_ASSISTANT_ID environment variable."
            ),
        ),
    )
    """The Devic assistant to talk to (its id from the "Get Code" dialog).

    Read from `DEVIC_ASSISTANT_ID` when not given. Percent-encoded into one URL
    path segment, never concatenated raw."""

    api_key: SecretStr = Field(
        default_factory=secret_from_env(
            "DEVIC_API_KEY",
            error_message=(
                "ChatDevic needs a Devic API key: set the DEVIC_API_KEY environment "
                "variable or pass api_key='...'."
            ),
        ),
    )
    """The Devic API token (`DEVIC_API_KEY`). Kept as a `SecretStr`: never printed,
    logged or serialized."""

    base_url: str = Field(
        default_factory=from_env("DEVIC_BASE_URL", default=_wire.DEFAULT_BASE_URL),
        validate_default=True,
    )
    """API root (`DEVIC_BASE_URL`, default `https://api.devic.ai/v1`). Requests go to
    `{base_url}/assistants/{assistant_id}/messages`; plain `http://` is refused
    unless the host is loopback (the emulator)."""

    timeout: float | httpx.Timeout | None = DEFAULT_TIMEOUT
    """Seconds to wait for a reply (default 120: assistants run tools). A float is
    the read timeout, connecting keeps 5 s; an `httpx.Timeout` sets every phase."""

    max_retries: int = Field(default=2, ge=0)
    """Retries of failures Devic certainly did not process (connect errors, 408,
    409, 429, 502, 503, 504). A 500 or a read timeout is never retried."""

    context: dict[str, Any] | None = None
    """Default Devic `context` object; each call's `context=` keys win over it."""

    request_metadata: dict[str, Any] | None = None
    """Default Devic `metadata` object (e.g. a user id or a language); each call's
    `request_metadata=` keys win. Named so because `metadata` is LangChain's."""

    history: History = "transcript"
    """What to do with earlier turns when a NEW conversation starts:
    `"transcript"` renders them into the message as a labelled transcript,
    `"last"` sends only the final user turn."""

    http_client: httpx.Client | None = Field(default=None, exclude=True)
    """Your own `httpx.Client` (proxies, mTLS, the emulator's transport)."""

    http_async_client: httpx.AsyncClient | None = Field(default=None, exclude=True)
    """Your own `httpx.AsyncClient`, for async calls."""

    default_headers: dict[str, str] | None = None
    """Extra headers sent with every request."""

    max_response_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    """Answers larger than this (10 MiB) are refused with `DevicProtocolError`."""

    cache: BaseCache | bool | None = Field(default=False, exclude=True)
    """Off by default: a Devic turn changes server state, so a cached reply would
    skip the turn (and could hand one chatUuid to two callers)."""

    _client: DevicClient | None = PrivateAttr(default=None)
    _async_clients: weakref.WeakKeyDictionary[
        asyncio.AbstractEventLoop, AsyncDevicClient
    ] = PrivateAttr(default_factory=weakref.WeakKeyDictionary)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def _reset_clients(self) -> None:
        """Give this instance its own, not-yet-built HTTP clients."""
        object.__setattr__(
            self,
            "__pydantic_private__",
            {
                "_client": None,
                "_async_clients": weakref.WeakKeyDictionary(),
                "_lock": threading.Lock(),
            },
        )

    def __copy__(self) -> Self:
        """Copies share settings, never connection pools (a copy may change them)."""
        new = super().__copy__()
        new._reset_clients()
        return new

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> Self:
        """Deep copies keep user-supplied httpx clients and build their own pools."""
        cls = type(self)
        new = cls.__new__(cls)
        fields = {
            key: value
            if isinstance(value, httpx.Client | httpx.AsyncClient)
            else copy.deepcopy(value, memo)
            for key, value in self.__dict__.items()
        }
        object.__setattr__(new, "__dict__", fields)
        object.__setattr__(
            new, "__pydantic_extra__", copy.deepcopy(self.__pydantic_extra__, memo)
        )
        object.__setattr__(
            new, "__pydantic_fields_set__", set(self.__pydantic_fields_set__)
        )
        new._reset_clients()
        return new

    # Field validators, not a model validator: a model-level error would carry
    # every input (the API key included) in ValidationError.errors().
    @field_validator("assistant_id")
    @classmethod
    def _check_assistant_id(cls, value: str) -> str:
        return _wire.validate_assistant_id(value)

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str) -> str:
        return _wire.validate_base_url(value)

    # ------------------------------------------------------------- LangChain API

    @property
    def _llm_type(self) -> str:
        return "devic-chat"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"assistant_id": self.assistant_id, "base_url": self.base_url}

    @classmethod
    def is_lc_serializable(cls) -> bool:
        """ChatDevic serializes with `dumpd`/`dumps`; the key never does."""
        return True

    @classmethod
    def get_lc_namespace(cls) -> list[str]:
        """The import path `load` uses: `langchain_devic.chat_models`."""
        return ["langchain_devic", "chat_models"]

    @property
    def lc_secrets(self) -> dict[str, str]:
        """The key is serialized as a reference to `DEVIC_API_KEY`, never its value."""
        return {"api_key": "DEVIC_API_KEY"}

    def _get_ls_params(
        self, stop: list[str] | None = None, **kwargs: Any
    ) -> LangSmithParams:
        params = LangSmithParams(
            ls_provider=PROVIDER,
            ls_model_name=str(kwargs.get("model") or self.assistant_id),
            ls_model_type="chat",
        )
        if stop:
            params["ls_stop"] = stop
        return params

    def bind_tools(self, *args: Any, **kwargs: Any) -> Any:
        """Not offered: Devic assistants run their own tools on Devic's side."""
        msg = (
            "ChatDevic does not take LangChain tools: a Devic assistant runs its own "
            "tools server-side. To let a tool-calling agent use this assistant, wrap "
            "it in langchain_devic.DevicAssistantTool and give that tool to a model "
            "that supports tool calling."
        )
        raise NotImplementedError(msg)

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
        return super().invoke(
            input, config, stop=stop, **self._with_config(config, kwargs)
        )

    @override
    async def ainvoke(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AIMessage:
        return await super().ainvoke(
            input, config, stop=stop, **self._with_config(config, kwargs)
        )

    @override
    def stream(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> Iterator[AIMessageChunk]:
        return super().stream(
            input, config, stop=stop, **self._with_config(config, kwargs)
        )

    @override
    def astream(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[AIMessageChunk]:
        return super().astream(
            input, config, stop=stop, **self._with_config(config, kwargs)
        )

    def stream_events(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        **kwargs: Any,
    ) -> Any:
        """`Runnable.stream_events`, with `chat_uuid` lifted from the config."""
        return super().stream_events(input, config, **self._with_config(config, kwargs))

    def astream_events(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        **kwargs: Any,
    ) -> Any:
        """`Runnable.astream_events`, with `chat_uuid` lifted from the config."""
        return super().astream_events(
            input, config, **self._with_config(config, kwargs)
        )

    @staticmethod
    def _with_config(
        config: RunnableConfig | None, kwargs: dict[str, Any]
    ) -> dict[str, Any]:
        if kwargs.get("chat_uuid") is None:
            from_config = _chat_uuid_from_config(config)
            if from_config is not None:
                return {**kwargs, "chat_uuid": from_config}
        return kwargs

    # ------------------------------------------------------------------- calls

    def _prepare(
        self, messages: list[BaseMessage], kwargs: dict[str, Any]
    ) -> tuple[str, DevicRequest]:
        unknown = sorted(
            k
            for k in kwargs
            if k not in CALL_KWARGS and k != "stream" and not k.startswith("ls_")
        )
        if unknown:
            msg = (
                f"ChatDevic got unexpected keyword argument(s) {unknown}; "
                f"it accepts {sorted(CALL_KWARGS)}."
            )
            raise TypeError(msg)
        assistant_id = _wire.validate_assistant_id(
            str(kwargs.get("model") or self.assistant_id)
        )
        request = build_devic_request(
            messages,
            assistant_id=assistant_id,
            chat_uuid=kwargs.get("chat_uuid"),
            history=self.history,
            context=self.context,
            call_context=kwargs.get("context"),
            metadata=self.request_metadata,
            call_metadata=kwargs.get("request_metadata"),
        )
        return assistant_id, request

    def _client_settings(self) -> dict[str, Any]:
        return {
            "api_key": self.api_key,
            "base_url": self.base_url,
            "timeout": self.timeout,
            "max_retries": self.max_retries,
            "default_headers": self.default_headers,
            "max_response_bytes": self.max_response_bytes,
        }

    @property
    def client(self) -> DevicClient:
        """The sync Devic client, built once and reused (one connection pool)."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = DevicClient(
                        http_client=self.http_client, **self._client_settings()
                    )
        return self._client

    @property
    def async_client(self) -> AsyncDevicClient:
        """The async client of the running event loop (pools are loop-bound)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            client = self._async_clients.get(loop)
            if client is None:
                client = AsyncDevicClient(
                    http_client=self.http_async_client, **self._client_settings()
                )
                self._async_clients[loop] = client
        return client

    def _send(
        self, messages: list[BaseMessage], kwargs: dict[str, Any]
    ) -> tuple[str, _wire.DevicReply]:
        assistant_id, request = self._prepare(messages, kwargs)
        reply = self.client.send_message(
            assistant_id,
            request.message,
            chat_uuid=request.chat_uuid,
            context=request.context,
            metadata=request.metadata,
        )
        return assistant_id, reply

    async def _asend(
        self, messages: list[BaseMessage], kwargs: dict[str, Any]
    ) -> tuple[str, _wire.DevicReply]:
        assistant_id, request = self._prepare(messages, kwargs)
        reply = await self.async_client.send_message(
            assistant_id,
            request.message,
            chat_uuid=request.chat_uuid,
            context=request.context,
            metadata=request.metadata,
        )
        return assistant_id, reply

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        assistant_id, reply = self._send(messages, kwargs)
        message = reply_to_message(reply, assistant_id, stop)
        return ChatResult(generations=[ChatGeneration(message=message)])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        assistant_id, reply = await self._asend(messages, kwargs)
        message = reply_to_message(reply, assistant_id, stop)
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        assistant_id, reply = self._send(messages, kwargs)
        chunk = ChatGenerationChunk(message=_reply_to_chunk(reply, assistant_id, stop))
        if run_manager:
            run_manager.on_llm_new_token(chunk.text, chunk=chunk)
        yield chunk

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        assistant_id, reply = await self._asend(messages, kwargs)
        chunk = ChatGenerationChunk(message=_reply_to_chunk(reply, assistant_id, stop))
        if run_manager:
            await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
        yield chunk
