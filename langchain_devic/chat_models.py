"""ChatDevic: a Devic assistant as a LangChain chat model.

A call picks the conversation to continue (the `chat_uuid` keyword, the config's
`configurable["chat_uuid"]`, the last reply of this assistant in the input, or a
new one), sends the messages Devic has not seen yet, and returns an `AIMessage`
with the reply, the conversation id in `response_metadata` and Devic's token
count as `usage_metadata`. The translation is in `langchain_devic._convert`
(pure functions); the HTTP is in `langchain_devic._client`. The model holds
settings only: its connection pools live in a `ClientPools` built on first use,
per process and event loop, and never copied or pickled.
"""

from __future__ import annotations

import copy
import inspect
import threading
from collections.abc import Callable, Mapping, Sequence
from operator import attrgetter, itemgetter
from typing import TYPE_CHECKING, Any, cast

import httpx
from langchain_core.caches import BaseCache
from langchain_core.language_models import LanguageModelInput
from langchain_core.language_models.base import LangSmithParams
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk
from langchain_core.runnables import (
    Runnable,
    RunnableConfig,
    RunnableMap,
    RunnablePassthrough,
    ensure_config,
)
from langchain_core.tools import BaseTool
from pydantic import (
    BaseModel,
    PrivateAttr,
    SecretStr,
)
from typing_extensions import Self, override

from langchain_devic import _wire
from langchain_devic._async_agent_calls import _AsyncAgentCalls
from langchain_devic._async_chat import _AsyncChatCalls
from langchain_devic._call import (
    Call,
    check_call_kwargs,
    check_resume,
    check_tool_results,
)
from langchain_devic._chat_fields import RunMode, _ChatFields
from langchain_devic._client import (
    AsyncDevicClient,
    AsyncTransport,
    ClientPools,
    ClientSettings,
    DevicClient,
)
from langchain_devic._convert import (
    OPTIONS,
    PROVIDER,
    History,
    build_devic_request,
    chat_uuid_from_configurable,
    check_tool_options,
    checked_chat_uuid,
    format_tools,
    option_fields,
    reply_to_chunk,
    structured_output_parser,
    with_chat_totals,
)
from langchain_devic._sync_agent_calls import _SyncAgentCalls
from langchain_devic._sync_chat import _SyncChatCalls

__all__ = ["ChatDevic"]

#: The model's own message options (its fields of the names in `OPTIONS`).
_FIELD_OPTIONS = attrgetter(*OPTIONS)

#: Guards the lazy creation of every model's pools (rare, and never held long).
_POOLS_LOCK = threading.Lock()

# ------------------------------------------------------------------------ model


class _ChatCore(_ChatFields):
    """What the model's sync and async calls share (its fields: `_ChatFields`)."""

    _pools: ClientPools | None = PrivateAttr(default=None)

    def __copy__(self) -> Self:
        """Copies share settings, never connection pools (a copy may change them)."""
        new = super().__copy__()
        new._pools = None
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
        object.__setattr__(new, "__pydantic_private__", {"_pools": None})
        return new

    def __getstate__(self) -> dict[Any, Any]:
        """Pickle the settings (the key stays a `SecretStr`), never pools or locks."""
        for name in ("http_client", "http_async_client"):
            if getattr(self, name) is not None:
                msg = (
                    f"A ChatDevic with its own {name} cannot be pickled: an httpx "
                    "client holds sockets and locks. Build the model (and its client) "
                    "in each process, or pickle one without it."
                )
                raise TypeError(msg)
        state = super().__getstate__()
        return {**state, "__pydantic_private__": {"_pools": None}}

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

    @override
    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        strict: bool | None = None,
        parallel_tool_calls: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Give the assistant your own tools: it may call them, you run them.

        Each tool is sent as an OpenAI-style function schema with the message
        (a platform run). When the assistant calls some, the run waits on Devic
        and the reply is an `AIMessage` with `tool_calls`; the next call whose
        new messages are the `ToolMessage`s answering every call posts them and
        the run goes on. Devic can neither force nor forbid a call:
        `tool_choice` other than `None`/`"auto"`, `strict=True` and
        `parallel_tool_calls=False` are a `ValueError`.
        """
        check_tool_options(tool_choice, strict, parallel_tool_calls)
        self._check_tools_allowed()
        return super().bind(tools=format_tools(tools), **kwargs)

    @override
    def with_structured_output(
        self,
        schema: dict[str, Any] | type,
        *,
        include_raw: bool = False,
        method: str = "function_calling",
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict[str, Any] | BaseModel]:
        """Answers shaped by `schema` (Pydantic, TypedDict or JSON schema).

        Works through tool calling: the schema is bound as the one tool, and the
        assistant's call to it is the answer (the run's wait for the tool is
        then closed with a stop, so the chat can go on). Devic cannot force the
        call: an answer in plain text raises `OutputParserException` (with
        `include_raw=True` it is the `parsing_error`, beside the raw message).
        `method="json_mode"` / `"json_schema"` are not offered.
        """
        kwargs.pop("strict", None)
        if method != "function_calling":
            msg = (
                f"ChatDevic does not offer method={method!r}: Devic has no JSON "
                "mode or response schema. Use the default method='function_calling' "
                "(the schema becomes a tool the assistant calls)."
            )
            raise NotImplementedError(msg)
        if kwargs:
            msg = f"Received unsupported arguments {kwargs}"
            raise ValueError(msg)
        llm = self.bind_tools(
            [schema],
            close_tool_wait=True,
            ls_structured_output_format={
                "kwargs": {"method": method},
                "schema": schema,
            },
        )
        parser = structured_output_parser(schema)
        if not include_raw:
            return llm | parser
        parse_raw = RunnablePassthrough.assign(
            parsed=itemgetter("raw") | parser, parsing_error=lambda _: None
        ).with_fallbacks(
            [RunnablePassthrough.assign(parsed=lambda _: None)],
            exception_key="parsing_error",
        )
        return RunnableMap(raw=llm) | parse_raw

    def _check_tools_allowed(self) -> None:
        if self.run_mode == "sync":
            msg = (
                "ChatDevic with run_mode='sync' cannot use client tools: Devic "
                "takes tools, and waits for their results, only in a platform run. "
                "Use run_mode='auto' (the default) or 'async'."
            )
            raise ValueError(msg)

    def _with_config(
        self, config: RunnableConfig | None, kwargs: dict[str, Any]
    ) -> dict[str, Any]:
        """Lift the config's `chat_uuid` and message options into the kwargs.

        This assistant's `configurable["chat_uuid"]`, and Devic's message
        options (`configurable["tenant_id"]`, ...); a keyword argument wins.
        """
        configurable = ensure_config(config).get("configurable") or {}
        lifted = {
            name: configurable[name]
            for name in configurable.keys() & OPTIONS.keys()
            if configurable[name] is not None and kwargs.get(name) is None
        }
        if lifted:
            kwargs = {**kwargs, **lifted}
        if kwargs.get("chat_uuid") is not None:
            return kwargs
        assistant_id = str(kwargs.get("model") or self.assistant_id)
        chat_uuid = chat_uuid_from_configurable(
            configurable.get("chat_uuid"), assistant_id
        )
        return kwargs if chat_uuid is None else {**kwargs, "chat_uuid": chat_uuid}

    def _options(self, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """Devic's message options of one call as send fields: kwarg, else field."""
        options = dict(zip(OPTIONS, _FIELD_OPTIONS(self), strict=True))
        for name in kwargs.keys() & OPTIONS.keys():
            if kwargs[name] is not None:
                options[name] = kwargs[name]
        return option_fields(options)

    # ------------------------------------------------------------------- calls

    def _prepare(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> Call:
        check_call_kwargs(kwargs)
        assistant_id = _wire.validate_assistant_id(
            str(kwargs.get("model") or self.assistant_id)
        )
        chat_uuid = kwargs.get("chat_uuid")
        request = build_devic_request(
            messages,
            assistant_id=assistant_id,
            chat_uuid=None
            if chat_uuid is None
            else checked_chat_uuid(chat_uuid, "chat_uuid"),
            history=self.history,
            context=self.context,
            call_context=kwargs.get("context"),
            metadata=self.request_metadata,
            call_metadata=kwargs.get("request_metadata"),
            fields=self._options(kwargs),
        )
        given = kwargs.get("tools")
        tools = format_tools(given) if given else []
        if tools or request.tool_responses:
            self._check_tools_allowed()
        check_tool_results(request, tools)
        resume = check_resume(request, kwargs)
        return Call(
            assistant_id,
            request,
            tools,
            close_tool_wait=bool(kwargs.get("close_tool_wait")),
            on_started=kwargs.get("on_started"),
            resume=resume,
        )

    @property
    def pools(self) -> ClientPools:
        """This model's HTTP clients (per process and event loop), built lazily.

        Read straight from pydantic's private-attribute dict: `self._pools`
        goes through `BaseModel.__getattr__` (about 1.7 µs, on every call).
        Copies, deep copies and unpickled models get a fresh dict holding
        `None`, so the fast read sees exactly what `self._pools` would.
        """
        private = self.__pydantic_private__
        pools = private.get("_pools") if private is not None else None
        if pools is None:
            with _POOLS_LOCK:
                pools = self._pools
                if pools is None:
                    pools = ClientPools(
                        ClientSettings.from_object(self),
                        self.http_client,
                        self.http_async_client,
                    )
                    self._pools = pools
        return pools

    @property
    def client(self) -> DevicClient:
        """The sync Devic client of this process (one connection pool)."""
        return self.pools.sync_client()

    @property
    def async_client(self) -> AsyncDevicClient:
        """The async client of the running event loop (pools are loop-bound)."""
        return self.pools.async_client()

    # ------------------------------------------------------------ platform runs

    @staticmethod
    def _text_chunk(text: str) -> ChatGenerationChunk:
        return ChatGenerationChunk(message=AIMessageChunk(content=text))

    @staticmethod
    def _closing_chunk(
        reply: _wire.DevicReply,
        assistant_id: str,
        stop: list[str] | None,
        totals: tuple[int, int] | None = None,
        calls: Sequence[Mapping[str, Any]] = (),
    ) -> ChatGenerationChunk:
        chunk = reply_to_chunk(reply, assistant_id, stop, calls)
        message = with_chat_totals(chunk, totals)
        return ChatGenerationChunk(message=cast(AIMessageChunk, message))


class ChatDevic(
    _SyncAgentCalls, _AsyncAgentCalls, _SyncChatCalls, _AsyncChatCalls, _ChatCore
):
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
        The one call reports `tokens_used` (and sometimes an input/output split):
        it becomes `usage_metadata` with `total_tokens == tokens_used`; without
        a split the whole count is `output_tokens`. A platform run reports no
        counts: its usage is the growth of the chat's totals (read from the
        history after the run), and `response_metadata["devic_chat_totals"]`
        keeps the totals for the next turn. No figures at all: `None`.

    Streaming:
        `stream`/`astream` follow a platform run (`run_mode="auto"`): the text
        as it is written, then a closing chunk with usage and metadata, and
        `devic_progress` custom events for status changes and server-side
        steps. Stopping early (closing the stream, cancelling the task, Ctrl-C)
        asks Devic once to stop the run.

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

    if TYPE_CHECKING:
        # What type checkers see. Pydantic's synthesized signature knows one
        # name per field (the alias `model`) and `SecretStr` for the key; at run
        # time both names and a plain string are accepted, so say so here.
        # Checked by tests/typing/usage.py (pyright and mypy, in .ci/run).
        def __init__(
            self,
            *,
            assistant_id: str = ...,
            model: str = ...,
            api_key: SecretStr | str = ...,
            base_url: str = ...,
            timeout: float | httpx.Timeout | None = ...,
            max_retries: int = ...,
            context: dict[str, Any] | None = ...,
            request_metadata: dict[str, Any] | None = ...,
            history: History = ...,
            tenant_id: str | None = ...,
            subtenant_id: str | None = ...,
            user_name: str | None = ...,
            request_tags: list[str] | None = ...,
            enabled_tools: list[str] | None = ...,
            skip_summarization: bool | None = ...,
            llm_provider: str | None = ...,
            llm_model: str | None = ...,
            http_client: httpx.Client | None = ...,
            http_async_client: httpx.AsyncClient | None = ...,
            async_transport: AsyncTransport = ...,
            default_headers: dict[str, str] | None = ...,
            max_response_bytes: int = ...,
            run_mode: RunMode = ...,
            run_timeout: float = ...,
            poll_interval: float = ...,
            max_poll_interval: float = ...,
            cache: BaseCache | bool | None = ...,
            **kwargs: Any,
        ) -> None: ...


# BaseChatModel inspects `_generate`'s signature on every call; a precomputed one
# makes that a lookup.
for _method in (ChatDevic._generate, ChatDevic._agenerate):
    setattr(_method, "__signature__", inspect.signature(_method))  # noqa: B010
