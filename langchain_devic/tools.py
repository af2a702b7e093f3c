"""DevicAssistantTool: a tool-calling agent hands work to a Devic assistant.

One Devic conversation per agent thread: the tool keys the conversation by the
runnable config's `thread_id` plus the parent checkpoint namespace, and keeps
the thread → chatUuid map in a `langchain_core.stores.BaseStore` (in memory by
default; a Redis or SQL store shares it across processes). Calls that share a
thread run one at a time in this process (Devic refuses a second message to a
busy chat, and parallel first calls would each open a chat). Without a thread id
every call starts a new conversation, so two users of one tool never share a
chat.

Errors an agent can act on (bad input, rate limit after retries, server error,
timeout) come back as a `ToolMessage` with `status="error"`; misconfiguration
(401, 403, unknown assistant) raises, because a person must fix it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Literal

from langchain_core.callbacks import (
    AsyncCallbackManagerForToolRun,
    CallbackManagerForToolRun,
)
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableConfig, ensure_config
from langchain_core.stores import BaseStore, InMemoryStore
from langchain_core.tools import BaseTool, ToolException
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from langchain_devic._locks import KeyedLocks
from langchain_devic.chat_models import ChatDevic
from langchain_devic.errors import FATAL_ERRORS, DevicError, DevicNotFoundError

__all__ = ["DevicAssistantInput", "DevicAssistantTool", "thread_key"]

logger = logging.getLogger("langchain_devic")

#: ChatDevic's own fields (and their aliases) the tool accepts directly, to
#: build its own ChatDevic; LangChain's common fields (name, tags, ...) are the
#: tool's.
_CHAT_MODEL_FIELDS = frozenset(
    alias
    for name, field in ChatDevic.model_fields.items()
    if name not in BaseChatModel.model_fields
    for alias in (name, field.alias)
    if alias
)


class DevicAssistantInput(BaseModel):
    """What an agent sends to a Devic assistant."""

    message: str = Field(
        min_length=1,
        description="The request for the assistant, in plain language, with every "
        "detail it needs: it does not see the rest of your conversation.",
    )
    new_conversation: bool = Field(
        default=False,
        description="Start a fresh conversation with the assistant instead of "
        "continuing this thread's one.",
    )


def thread_key(config: RunnableConfig | None) -> str | None:
    """The conversation key of an agent thread, or `None` outside any thread.

    It is `thread_id` plus the parent checkpoint namespace with task ids removed
    (`"research:9f2…|tools:4c1…"` → `"research"`), so every tool call of one
    thread, at one level of the graph, shares one Devic conversation.
    """
    configurable = ensure_config(config).get("configurable") or {}
    thread_id = configurable.get("thread_id")
    if thread_id is None or thread_id == "":
        return None
    namespace = str(configurable.get("checkpoint_ns") or "")
    parents = [segment.split(":", 1)[0] for segment in namespace.split("|")[:-1]]
    return f"{thread_id}|{'|'.join(parents)}"


class DevicAssistantTool(BaseTool):
    """Lets a tool-calling agent delegate a task to a Devic assistant.

    Give it a `name` and a `description` that tell the agent what the assistant
    is for, and either a `chat_model=ChatDevic(...)` or ChatDevic's own fields
    (`assistant_id`, `api_key`, `base_url`, ...). The tool answers with the
    assistant's reply as content and an artifact
    `{"chat_uuid", "assistant_id", "tokens_used", "timestamp", "restarted"}`.

    Example:
        ```python
        from langchain_devic import DevicAssistantTool

        billing = DevicAssistantTool(
            name="billing_assistant",
            description="Answers questions about invoices and refunds.",
            assistant_id="billing",
        )
        ```
    """

    model_config = ConfigDict(
        arbitrary_types_allowed=True, hide_input_in_errors=True, defer_build=True
    )

    args_schema: type[BaseModel] = DevicAssistantInput
    response_format: Literal["content", "content_and_artifact"] = "content_and_artifact"
    handle_tool_error: bool | str | Any = True
    """Actionable Devic errors become an error ToolMessage the agent can read."""

    chat_model: ChatDevic
    """The assistant to delegate to (built from ChatDevic's fields if not given)."""

    store: BaseStore[str, Any] = Field(default_factory=InMemoryStore, exclude=True)
    """Maps an agent thread to its Devic chatUuid. Any `BaseStore[str, str]` plugs
    in: share one across tool instances or processes to share conversations.
    Keys are `"{assistant_id}|{thread_key(config)}"`, so tools for different
    assistants can share one store."""

    _turns: KeyedLocks = PrivateAttr(default_factory=KeyedLocks)

    if TYPE_CHECKING:
        # What type checkers see: `chat_model` may be left out, and the tool then
        # builds it from ChatDevic's fields passed here (`assistant_id`, ...).
        # Checked by tests/typing/usage.py (pyright and mypy, in .ci/run).
        def __init__(
            self,
            *,
            name: str,
            description: str,
            chat_model: ChatDevic | None = None,
            store: BaseStore[str, Any] = ...,
            **kwargs: Any,
        ) -> None: ...

    @model_validator(mode="before")
    @classmethod
    def _build_chat_model(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("chat_model") is not None:
            if isinstance(data, dict):
                stray = sorted(_CHAT_MODEL_FIELDS & data.keys())
                if stray:
                    msg = (
                        f"Pass either chat_model=ChatDevic(...) or ChatDevic's fields "
                        f"({', '.join(stray)}), not both."
                    )
                    raise ValueError(msg)
            return data
        model_kwargs = {k: data.pop(k) for k in list(data) if k in _CHAT_MODEL_FIELDS}
        return {**data, "chat_model": ChatDevic(**model_kwargs)}

    # ---------------------------------------------------------------- helpers

    def _child_config(
        self,
        config: RunnableConfig,
        run_manager: CallbackManagerForToolRun | AsyncCallbackManagerForToolRun | None,
    ) -> RunnableConfig:
        """The config of the Devic call: a child run, with no inherited chat id.

        The conversation is chosen by the tool, so a `chat_uuid` the agent's own
        config may carry (for another model) must not leak into this call.
        """
        configurable = {
            k: v
            for k, v in (config.get("configurable") or {}).items()
            if k != "chat_uuid"
        }
        child: RunnableConfig = {
            "configurable": configurable,
            "tags": list(config.get("tags") or []),
            "metadata": dict(config.get("metadata") or {}),
        }
        if run_manager is not None:
            child["callbacks"] = run_manager.get_child()
        return child

    def _artifact(self, reply: AIMessage, *, restarted: bool) -> dict[str, Any]:
        metadata = reply.response_metadata
        return {
            "chat_uuid": metadata.get("chat_uuid"),
            "assistant_id": metadata.get("assistant_id"),
            "tokens_used": metadata.get("tokens_used"),
            "timestamp": metadata.get("timestamp"),
            "restarted": restarted,
        }

    @staticmethod
    def _for_agent(error: DevicError | ValueError) -> ToolException:
        """The error text an agent reads; the original stays as `__cause__`."""
        return ToolException(f"The Devic assistant could not answer: {error}")

    # ------------------------------------------------------------------ runs

    def _store_key(self, config: RunnableConfig) -> str | None:
        """The thread's key in the store, per assistant: tools may share a store."""
        key = thread_key(config)
        return f"{self.chat_model.assistant_id}|{key}" if key is not None else None

    @staticmethod
    def _log_restart(stored: str) -> None:
        logger.warning(
            "Devic no longer knows chat %s of this thread; starting a new "
            "conversation for it.",
            stored,
        )

    # A 404 while continuing the thread's stored chat means that chat vanished:
    # start one new conversation. A 404 with nothing stored, or on that restart,
    # means the assistant itself is unknown, which a person must fix (raised).

    def _ask(
        self, message: str, config: RunnableConfig, stored: str | None
    ) -> tuple[AIMessage, bool]:
        """The assistant's reply, and whether the thread's chat had to restart."""
        try:
            try:
                return self.chat_model.invoke(message, config, chat_uuid=stored), False
            except DevicNotFoundError:
                if stored is None:
                    raise
                self._log_restart(stored)
            return self.chat_model.invoke(message, config, chat_uuid=None), True
        except FATAL_ERRORS:
            raise
        except (DevicError, ValueError) as error:
            raise self._for_agent(error) from error

    async def _aask(
        self, message: str, config: RunnableConfig, stored: str | None
    ) -> tuple[AIMessage, bool]:
        """The assistant's reply, and whether the thread's chat had to restart."""
        try:
            try:
                return await self.chat_model.ainvoke(
                    message, config, chat_uuid=stored
                ), False
            except DevicNotFoundError:
                if stored is None:
                    raise
                self._log_restart(stored)
            return await self.chat_model.ainvoke(message, config, chat_uuid=None), True
        except FATAL_ERRORS:
            raise
        except (DevicError, ValueError) as error:
            raise self._for_agent(error) from error

    def _run(
        self,
        message: str,
        new_conversation: bool = False,
        *,
        config: RunnableConfig,
        run_manager: CallbackManagerForToolRun | None = None,
    ) -> tuple[str, dict[str, Any]]:
        key = self._store_key(config)
        child = self._child_config(config, run_manager)
        with self._turns.hold(key):
            stored = self.store.mget([key])[0] if key and not new_conversation else None
            reply, restarted = self._ask(message, child, stored)
            chat_uuid = reply.response_metadata.get("chat_uuid")
            if key and chat_uuid:
                self.store.mset([(key, chat_uuid)])
        return reply.text, self._artifact(reply, restarted=restarted)

    async def _arun(
        self,
        message: str,
        new_conversation: bool = False,
        *,
        config: RunnableConfig,
        run_manager: AsyncCallbackManagerForToolRun | None = None,
    ) -> tuple[str, dict[str, Any]]:
        key = self._store_key(config)
        child = self._child_config(config, run_manager)
        async with self._turns.ahold(key):
            stored = (
                (await self.store.amget([key]))[0]
                if key and not new_conversation
                else None
            )
            reply, restarted = await self._aask(message, child, stored)
            chat_uuid = reply.response_metadata.get("chat_uuid")
            if key and chat_uuid:
                await self.store.amset([(key, chat_uuid)])
        return reply.text, self._artifact(reply, restarted=restarted)
