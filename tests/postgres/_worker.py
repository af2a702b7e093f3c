"""One worker process of the `postgres` tests: an agent on shared PostgreSQL.

Run as `python -m tests.postgres._worker DSN BASE_URL API_KEY ASSISTANT`. It
builds what a production worker would (PostgresSaver checkpoints, a
PostgresStore, a PostgresAdvisoryLock, and a tool-calling agent whose one tool
is a DevicAssistantTool talking to the emulator), prints `ready`, then serves
JSON commands from stdin, one at a time, one JSON answer line each:

- `{"op": "agent", "thread", "message"}`: one agent turn (the planner hands
  the message verbatim to the Devic tool; the tool uses the graph's store);
- `{"op": "resume", "thread"}`: resume the thread's interrupted run;
- `{"op": "tool", "thread", "message"}`: a direct tool call with
  `store=PostgresStore` (no graph);
- `{"op": "plain", "thread", "message"}`: one agent turn of a graph with
  PostgresSaver and no store at all (the checkpoint alone keeps the chat).

A command may carry `"die"`: `"after_tool"` (the process exits once the tool
returned, before the tools node's checkpoint) or `"at_mark"` (it exits when
the in-flight mark would be confirmed: Devic has the turn, the store does
not know its chat). Connections come from pools that check them
(`check=ConnectionPool.check_connection`), as the docs advise.

The answer is `{"ok": true, "content", "artifact", "status"}` for the tool's
last ToolMessage, or `{"ok": false, "error", "type"}` (the exception's class).
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from typing import Any

import httpx
from langchain.agents import create_agent
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.store.postgres import PostgresStore
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from langchain_devic import ChatDevic, DevicAssistantTool
from langchain_devic._stores import ThreadStore
from langchain_devic.locks import PostgresAdvisoryLock

TOOL = "devic_assistant"


class Planner(BaseChatModel):
    """Hands each user turn verbatim to one tool; answers with the tool's result.

    `argument` names the tool's input field, `call_id` its tool call's id
    (`{turn}`: the number of user turns so far).
    """

    tool_name: str = TOOL
    argument: str = "message"
    call_id: str = "c{turn}"

    @property
    def _llm_type(self) -> str:
        return "worker-planner"

    def bind_tools(self, tools: Any, **kwargs: Any) -> Planner:
        return self

    def _generate(
        self, messages: list[BaseMessage], *args: Any, **kwargs: Any
    ) -> ChatResult:
        last = messages[-1]
        if isinstance(last, ToolMessage):
            answer = AIMessage(content=f"Final answer: {last.content}")
        else:
            turn = sum(isinstance(m, HumanMessage) for m in messages)
            call = {
                "name": self.tool_name,
                "args": {self.argument: last.content},
                "id": self.call_id.format(turn=turn),
            }
            answer = AIMessage(content="", tool_calls=[call])
        return ChatResult(generations=[ChatGeneration(message=answer)])


def pool(dsn: str, **kwargs: Any) -> ConnectionPool[Any]:
    """A pool that checks each connection before lending it."""
    return ConnectionPool(
        dsn,
        min_size=1,
        max_size=4,
        open=True,
        check=ConnectionPool.check_connection,
        **kwargs,
    )


class DieAfterTool(BaseCallbackHandler):
    """Exit the process once the tool returned (its result never checkpointed)."""

    def on_tool_end(self, output: Any, **kwargs: Any) -> None:
        os._exit(9)


def die_at_mark() -> None:
    """Exit when the in-flight mark would be confirmed (Devic took the turn)."""
    put = ThreadStore.put

    def dying_put(self: ThreadStore, assistant_id: str, thread: str, item: Any) -> None:
        if item.pending is not None and item.pending.confirmed:
            os._exit(9)
        put(self, assistant_id, thread, item)

    ThreadStore.put = dying_put  # type: ignore[method-assign]


def main() -> None:
    dsn, base_url, api_key, assistant = sys.argv[1:5]
    rows = {
        "kwargs": {"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row}
    }
    store = PostgresStore(pool(dsn, **rows))  # type: ignore[arg-type]
    saver = PostgresSaver(pool(dsn, **rows))  # type: ignore[arg-type]
    lock = PostgresAdvisoryLock(pool(dsn), timeout=60)
    model = ChatDevic(
        assistant_id=assistant,
        api_key=api_key,
        base_url=base_url,
        poll_interval=0.05,
        max_poll_interval=0.2,
        run_timeout=60,
        http_client=httpx.Client(trust_env=False),  # 127.0.0.1, never a proxy
    )
    graph_tool = DevicAssistantTool(
        name=TOOL, description="Delegates to Devic.", chat_model=model, lock=lock
    )
    direct_tool = DevicAssistantTool(
        name=TOOL,
        description="Delegates to Devic.",
        chat_model=model,
        lock=lock,
        store=store,
    )
    agent = create_agent(Planner(), [graph_tool], checkpointer=saver, store=store)
    plain_tool = DevicAssistantTool(
        name=TOOL, description="Delegates to Devic.", chat_model=model, lock=lock
    )
    plain = create_agent(Planner(), [plain_tool], checkpointer=saver)
    print("ready", flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        config: dict[str, Any] = {"configurable": {"thread_id": command["thread"]}}
        if command.get("die") == "after_tool":
            config["callbacks"] = [DieAfterTool()]
        elif command.get("die") == "at_mark":
            die_at_mark()
        try:
            if command["op"] == "tool":
                call = {
                    "name": TOOL,
                    "args": {"message": command["message"]},
                    "id": "direct",
                    "type": "tool_call",
                }
                result = direct_tool.invoke(call, config)
            else:
                inputs = (
                    None
                    if command["op"] == "resume"
                    else {"messages": [HumanMessage(command["message"])]}
                )
                graph = plain if command["op"] == "plain" else agent
                state = graph.invoke(inputs, config, durability="sync")
                result = [m for m in state["messages"] if isinstance(m, ToolMessage)][
                    -1
                ]
            answer = {
                "ok": True,
                "content": result.content,
                "artifact": result.artifact,
                "status": result.status,
            }
        except Exception as exc:
            error = traceback.format_exc()
            answer = {"ok": False, "error": error, "type": type(exc).__name__}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
