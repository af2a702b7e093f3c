"""DevicAssistantTool: a tool-calling agent hands work to a Devic assistant.

One Devic conversation per agent thread: the tool keys the conversation by the
runnable config's `thread_id` plus the parent checkpoint namespace, and keeps
thread → chat in a store (see `langchain_devic._stores`): the `store` given,
else the store of the LangGraph graph it runs in, else its own in-memory one.
Without a thread id every call starts a new conversation, so two users of one
tool never share a chat.

Calls of one thread never overlap: `lock` (see `langchain_devic.locks`) is held
around read store → Devic → write store, per (assistant, thread); by default
one lock table for the whole process, `PostgresAdvisoryLock` across machines.

With a shared store (an explicit `store=`, or the graph's) a turn is a platform
run, made crash-safe: as soon as Devic accepts the message, the thread's item
gets an in-flight mark (the message's digest), cleared when the turn ends. A
call that finds the mark for its own message (a worker died, the graph was
resumed elsewhere) does not send again: it follows the run, or reads the turn's
reply from the chat (artifact `"recovered": true`). A call with another message
first waits for that run to end. A 409 (the chat busy with a run this tool did
not start) is waited out the same way, then sent again (a 409 was not
processed).

Errors an agent can act on (bad input, rate limit after retries, server error,
timeout, lock timeout) come back as a `ToolMessage` with `status="error"`;
misconfiguration (401, 403, unknown assistant) raises, because a person must
fix it, and so does a store that cannot be read (nothing was sent). A store
that cannot be written after Devic answered is logged: the reply is returned.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Annotated, Any, Literal

from langchain_core.callbacks import (
    AsyncCallbackManagerForToolRun,
    CallbackManagerForToolRun,
)
from langchain_core.runnables import RunnableConfig
from langchain_core.stores import InMemoryStore
from langchain_core.tools import InjectedToolArg, ToolException
from pydantic import (
    BaseModel,
    Field,
    SkipValidation,
    field_validator,
    model_validator,
)

from langchain_devic._async_tool import _AsyncToolCalls
from langchain_devic._delegation import Turn, thread_key
from langchain_devic._devic_tool import DevicToolBase, with_chat_model
from langchain_devic._stores import (
    DevicStoreError,
    ThreadItem,
    ThreadStore,
    adapt_store,
    graph_store,
    is_store,
)
from langchain_devic._sync_tool import _SyncToolCalls
from langchain_devic.chat_models import ChatDevic
from langchain_devic.errors import (
    DevicError,
)
from langchain_devic.locks import ConversationLock, InProcessLock

__all__ = ["DevicAssistantInput", "DevicAssistantTool", "DevicStoreError", "thread_key"]

logger = logging.getLogger("langchain_devic")


#: Errors the tool raises instead of telling the agent: a person must act (a
#: store that cannot be read: nothing was sent, the call may be made again).
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
    runtime: Annotated[Any, InjectedToolArg, SkipValidation] = Field(
        default=None, exclude=True
    )
    """Filled in by LangGraph's `ToolNode` (and so `create_agent`), never by the
    model: the tool call's id and the graph's state. The tool finds the
    thread's chat in the state's messages when no store holds it, and knows a
    tool call LangGraph runs again by its id."""


class _ToolCore(DevicToolBase):
    """The tool's fields, their checks, and what its sync and async calls share."""

    args_schema: type[BaseModel] = DevicAssistantInput
    response_format: Literal["content", "content_and_artifact"] = "content_and_artifact"
    handle_tool_error: bool | str | Any = True
    """Actionable Devic errors become an error ToolMessage the agent can read."""

    chat_model: ChatDevic
    """The assistant to delegate to (built from ChatDevic's fields if not given)."""

    store: Any = Field(default_factory=InMemoryStore, exclude=True)
    """Where each agent thread's Devic chat is kept.

    A LangGraph `BaseStore` (e.g. `PostgresStore`: namespace
    `("langchain_devic", assistant_id)`, key the thread key, value
    `{"chat_uuid": …}`), or a langchain_core key-value store with `str` or
    `bytes` values (`RedisStore`, `SQLStore`, `LocalFileStore`,
    `InMemoryByteStore`, …: UTF-8 JSON under keys of `A-Z a-z 0-9 . _ / -`).
    Not given: the store of the LangGraph graph the tool runs in, if it has
    one, else an in-memory store of this tool. Any store but that default is
    *shared*: turns then run as crash-safe platform runs (see the module)."""

    lock: ConversationLock = Field(default_factory=InProcessLock, exclude=True)
    """Keeps two calls of one (assistant, thread) from overlapping: the process's
    lock table by default (every tool instance, sync and async), or
    `langchain_devic.locks.PostgresAdvisoryLock` for workers on several
    machines. A lock not had in time is an error ToolMessage (nothing sent)."""

    @model_validator(mode="before")
    @classmethod
    def _build_chat_model(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        if "store" in data and data["store"] is None:
            data = {k: v for k, v in data.items() if k != "store"}  # the default
        return with_chat_model(data)

    @field_validator("store")
    @classmethod
    def _check_store(cls, value: Any) -> Any:
        if not is_store(value):
            msg = (
                "store must be a LangGraph BaseStore (PostgresStore, langgraph's "
                "InMemoryStore, ...) or a langchain_core key-value BaseStore "
                "(InMemoryStore, InMemoryByteStore, LocalFileStore, RedisStore, "
                f"SQLStore, ...); got {type(value).__name__}."
            )
            raise ValueError(msg)
        return value

    @field_validator("lock", mode="before")
    @classmethod
    def _check_lock(cls, value: Any) -> Any:
        if not isinstance(value, ConversationLock):
            msg = (
                "lock must have hold(scope, key) and ahold(scope, key) context "
                "managers, like langchain_devic.locks.InProcessLock or "
                f"PostgresAdvisoryLock; got {type(value).__name__}."
            )
            raise ValueError(msg)
        return value

    # ------------------------------------------------------------------ stores

    def _thread_store(self, config: RunnableConfig) -> ThreadStore:
        """The store for this call: given, the graph's, or the tool's own."""
        if "store" in self.model_fields_set:
            return adapt_store(self.store, shared=True)
        graph = graph_store(config)
        if graph is not None:
            return adapt_store(graph, shared=True)
        return adapt_store(self.store, shared=False)

    def _on_platform(self, store: ThreadStore) -> bool:
        """Whether turns are crash-safe platform runs (shared store, runs allowed).

        `run_mode="sync"` keeps the one call (no mark): a crash mid-call may
        then repeat a turn.
        """
        return store.shared and self.chat_model.run_mode != "sync"

    @staticmethod
    def _log_unsaved(error: DevicStoreError, item: ThreadItem) -> None:
        # Devic has the turn: losing the reply over the store would be worse.
        what = (
            "the in-flight mark (a crash before the turn ends may repeat it)"
            if item.pending is not None
            else f"chat {item.chat_uuid} (the thread's next call may not continue it)"
        )
        logger.error("%s Not stored: %s; the turn goes on.", error.message, what)

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

    def _answer(self, turn: Turn) -> tuple[str, dict[str, Any]]:
        metadata = turn.reply.response_metadata
        artifact = {
            "chat_uuid": metadata.get("chat_uuid"),
            "assistant_id": metadata.get("assistant_id"),
            "tokens_used": metadata.get("tokens_used"),
            "timestamp": metadata.get("timestamp"),
            "restarted": turn.restarted,
        }
        if turn.recovered:  # only then: the usual artifact keeps its five keys
            artifact["recovered"] = True
        return turn.reply.text, artifact

    @staticmethod
    def _for_agent(error: DevicError | ValueError) -> ToolException:
        """The error text an agent reads; the original stays as `__cause__`."""
        return ToolException(f"The Devic assistant could not answer: {error}")

    @staticmethod
    def _log_restart(stored: str) -> None:
        logger.warning(
            "Devic no longer knows chat %s of this thread; starting a new "
            "conversation for it.",
            stored,
        )


class DevicAssistantTool(_SyncToolCalls, _AsyncToolCalls, _ToolCore):
    """Lets a tool-calling agent delegate a task to a Devic assistant.

    Give it a `name` and a `description` that tell the agent what the assistant
    is for, and either a `chat_model=ChatDevic(...)` or ChatDevic's own fields
    (`assistant_id`, `api_key`, `base_url`, ...). The tool answers with the
    assistant's reply as content and an artifact `{"chat_uuid",
    "assistant_id", "tokens_used", "timestamp", "restarted"}`, plus
    `"recovered": True` when the reply is that of a turn an earlier call had
    sent (see the module: a resumed call never sends its message twice).

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
            store: Any = ...,
            lock: ConversationLock = ...,
            **kwargs: Any,
        ) -> None: ...

    @classmethod
    def from_assistant(
        cls, assistant_id: str, *, chat_model: ChatDevic, **fields: Any
    ) -> DevicAssistantTool:
        """The tool of one Devic assistant, named and described from Devic.

        Reads the assistant (`chat_model.get_assistant`): the tool's `name` is
        its name made a valid tool name, its `description` Devic's (else "Ask
        the Devic assistant <name>."); it talks to `assistant_id` with the
        settings of `chat_model`. `fields` are the tool's other fields
        (`store`, `lock`, ...).
        """
        # Imported here: the toolkit module imports this one.
        from langchain_devic.toolkit import assistant_tool

        assistant = chat_model.get_assistant(assistant_id)
        return assistant_tool(chat_model, assistant, **fields)
