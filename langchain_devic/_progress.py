"""Progress of a platform run, as LangChain custom events (`devic_progress`).

A custom event needs the model run's handlers and id. `BaseChatModel` lends
its run manager to `_generate`, but not to `_stream` when it is called by
`stream`/`astream` (or by `invoke` under a streaming handler, as LangGraph's
"messages" mode makes it): there, the run's id is chosen up front (the
config's `run_id`) and its handlers are lent through a context variable, set
only while the model computes a chunk.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManager,
    AsyncCallbackManagerForLLMRun,
    BaseCallbackHandler,
    CallbackManager,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessageChunk
from langchain_core.runnables import RunnableConfig, ensure_config
from langchain_core.runnables.config import var_child_runnable_config

#: The custom event every step of a platform run dispatches.
PROGRESS_EVENT = "devic_progress"


@dataclass(frozen=True)
class ProgressSink:
    """Where a run's progress events go: the model run's handlers and id."""

    handlers: list[BaseCallbackHandler]
    run_id: uuid.UUID
    tags: list[str]
    metadata: dict[str, Any]

    @classmethod
    def of(
        cls, run_manager: CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun
    ) -> ProgressSink:
        """The sink of a model run."""
        return cls(
            run_manager.handlers,
            run_manager.run_id,
            run_manager.tags,
            run_manager.metadata,
        )

    # unasync: twin
    async def areport(self, events: list[dict[str, Any]]) -> None:
        """Dispatch each event as a `devic_progress` custom event of the run."""
        if events:
            manager = AsyncCallbackManager(
                self.handlers, tags=self.tags, metadata=self.metadata
            )
            for event in events:
                await manager.on_custom_event(PROGRESS_EVENT, event, run_id=self.run_id)

    # unasync: twin-end
    # unasync: generated (the block above, made sync: do not edit)
    def report(self, events: list[dict[str, Any]]) -> None:
        """Dispatch each event as a `devic_progress` custom event of the run."""
        if events:
            manager = CallbackManager(
                self.handlers, tags=self.tags, metadata=self.metadata
            )
            for event in events:
                manager.on_custom_event(PROGRESS_EVENT, event, run_id=self.run_id)

    # unasync: generated-end


def has_handlers(config: RunnableConfig | None) -> bool:
    """Whether a call has callback handlers: its own, or its graph node's."""
    if config and config.get("callbacks"):
        return True
    inherited = var_child_runnable_config.get()
    return bool(inherited and inherited.get("callbacks"))


def with_run_id(config: RunnableConfig | None) -> RunnableConfig:
    """`config`, with the run's id chosen now if it has none."""
    config = ensure_config(config)
    if config.get("run_id") is None:
        config = {**config, "run_id": uuid.uuid4()}
    return config


def sink_of_call(model: BaseChatModel, config: RunnableConfig) -> ProgressSink:
    """The sink of the run `model` starts for `config` (its id: the config's)."""
    manager = CallbackManager.configure(
        config.get("callbacks"),
        model.callbacks,
        model.verbose,
        config.get("tags"),
        model.tags,
        config.get("metadata"),
        model.metadata,
    )
    run_id = config.get("run_id") or uuid.uuid4()
    return ProgressSink(manager.handlers, run_id, manager.tags, manager.metadata)


@dataclass(frozen=True)
class LazySink:
    """The progress sink of an `invoke` with handlers, built only if needed."""

    model: BaseChatModel
    config: RunnableConfig

    def sink(self) -> ProgressSink:
        return sink_of_call(self.model, self.config)


LENT: ContextVar[ProgressSink | LazySink | None] = ContextVar(
    "langchain_devic_progress", default=None
)


def sink_for(
    run_manager: CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun | None,
) -> ProgressSink | None:
    """The sink of the run being computed: its manager's, else the one lent."""
    if run_manager is None:
        lent = LENT.get()
        return lent.sink() if isinstance(lent, LazySink) else lent
    return ProgressSink.of(run_manager)


# unasync: twin
async def areporting(
    chunks: AsyncIterator[AIMessageChunk], sink: ProgressSink
) -> AsyncIterator[AIMessageChunk]:
    """`chunks`, with `sink` lent while each is computed."""
    try:
        while True:
            token = LENT.set(sink)
            try:
                chunk = await anext(chunks)
            except StopAsyncIteration:
                return
            finally:
                LENT.reset(token)
            yield chunk
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:  # a stream closed early stops its run now
            await aclose()


# unasync: twin-end
# unasync: generated (the block above, made sync: do not edit)
def reporting(
    chunks: Iterator[AIMessageChunk], sink: ProgressSink
) -> Iterator[AIMessageChunk]:
    """`chunks`, with `sink` lent while each is computed."""
    try:
        while True:
            token = LENT.set(sink)
            try:
                chunk = next(chunks)
            except StopIteration:
                return
            finally:
                LENT.reset(token)
            yield chunk
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:  # a stream closed early stops its run now
            close()


# unasync: generated-end
