"""Two agents for LangGraph Server (`langgraph dev`, the Agent Server).

- `assistant_agent`: a Devic assistant is the agent's model
  (`langchain.agents.create_agent` with `ChatDevic`), with one local tool,
  `local_time`, that the assistant may call; it runs here, in the server.
- `delegating_agent`: a planner (another Devic assistant, through `ChatDevic`)
  that hands questions to a specialist Devic assistant through
  `DevicAssistantTool`: one Devic chat per LangGraph thread, kept in the
  server's store.

Settings come from the environment:

- `DEVIC_API_KEY`, `DEVIC_BASE_URL` (read by `ChatDevic` itself);
- `DEVIC_ASSISTANT_ID`: the assistant of `assistant_agent`, and the
  specialist of `delegating_agent`;
- `DEVIC_PLANNER_ASSISTANT_ID`: the assistant that plans for
  `delegating_agent` and calls the `ask_specialist` tool (default:
  `DEVIC_ASSISTANT_ID`);
- `DEVIC_LOCK_POSTGRES_URI` (optional): a PostgreSQL connection string; when
  set, `DevicAssistantTool` holds a `PostgresAdvisoryLock` there, so calls of
  one thread never overlap across server processes or machines (install the
  `postgres` extra). Unset: the process's own lock, enough for one process.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import Any
from uuid import UUID

from langchain.agents import create_agent
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.tools import tool
from langgraph.config import get_stream_writer

from langchain_devic import ChatDevic, DevicAssistantTool
from langchain_devic.locks import PostgresAdvisoryLock

#: The custom event ChatDevic dispatches for each step of a platform run.
PROGRESS_EVENT = "devic_progress"


class ProgressToStream(BaseCallbackHandler):
    """Forwards `devic_progress` events to the graph's `custom` stream.

    ChatDevic reports a run's progress as LangChain custom events (callbacks);
    LangGraph's `stream_mode="custom"` carries what a node writes to its stream
    writer. This handler writes each event there as `{"devic_progress": ...}`.
    """

    run_inline = True  # in the model's own task: the writer of its node

    def on_custom_event(
        self,
        name: str,
        data: Any,
        *,
        run_id: UUID,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Write a `devic_progress` event to the node's stream writer."""
        if name != PROGRESS_EVENT:
            return
        try:
            writer = get_stream_writer()
        except RuntimeError:  # not inside a graph
            return
        writer({PROGRESS_EVENT: data})


def devic_model(assistant_id: str | None = None) -> ChatDevic:
    """A ChatDevic for a server: every call a platform run, progress streamed.

    `run_mode="async"` makes each call a run that the server can follow and
    stop: text as it is written, `devic_progress` events, and a stop sent to
    Devic when the server cancels the graph run, whatever the stream mode.
    """
    settings: dict[str, Any] = {"run_mode": "async", "callbacks": [ProgressToStream()]}
    if assistant_id:
        settings["assistant_id"] = assistant_id
    return ChatDevic(**settings)


@tool
def local_time(city: str) -> str:
    """The current time (UTC), for questions about what time it is somewhere."""
    return datetime.now(timezone.utc).strftime("%H:%M UTC") + f" (asked for {city})"


def conversation_lock() -> dict[str, Any]:
    """`lock=` for DevicAssistantTool: PostgreSQL advisory locks when configured."""
    uri = os.environ.get("DEVIC_LOCK_POSTGRES_URI")
    return {"lock": PostgresAdvisoryLock(uri)} if uri else {}


assistant_agent = create_agent(
    devic_model(),
    tools=[local_time],
    name="assistant_agent",
)

ask_specialist = DevicAssistantTool(
    name="ask_specialist",
    description="Ask the specialist Devic assistant; it remembers this thread.",
    chat_model=devic_model(),
    # No store: the tool keeps thread -> chat in the server's store.
    **conversation_lock(),
)

delegating_agent = create_agent(
    devic_model(os.environ.get("DEVIC_PLANNER_ASSISTANT_ID")),
    tools=[ask_specialist],
    name="delegating_agent",
)
