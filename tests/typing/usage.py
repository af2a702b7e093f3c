"""README-style calls that must type-check under pyright and `mypy --strict`.

This file is checked, never run: `.ci/run` runs `pyright tests/typing` (default
settings) and `mypy tests/typing/usage.py` (strict, with the pydantic plugin).
pytest does not collect it (no `test_` prefix, outside the test paths). Every
spelling the docs allow is here, so a declaration that hides one from a type
checker (a field alias, a field built by a validator) fails CI.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import httpx
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.stores import InMemoryStore
from langchain_core.tools import BaseTool

from langchain_devic import ChatDevic, DevicAssistantTool, DevicError, DevicToolkit


def chat_models() -> list[ChatDevic]:
    """Construction: env defaults, `assistant_id=` or its alias `model=`."""
    return [
        ChatDevic(),
        ChatDevic(assistant_id="a"),
        ChatDevic(model="a"),
        ChatDevic(
            assistant_id="a",
            api_key="k",
            base_url="http://127.0.0.1:1/v1",
            timeout=30,
            max_retries=1,
        ),
        ChatDevic(
            model="a",
            timeout=httpx.Timeout(30.0, connect=5.0),
            context={"language": "en"},
            request_metadata={"user_id": "u-1"},
            history="last",
            default_headers={"X-Team": "support"},
            http_client=httpx.Client(),
            http_async_client=httpx.AsyncClient(),
        ),
        ChatDevic(model="a", async_transport="aiohttp"),  # the `aiohttp` extra
        ChatDevic(model="a", async_transport="httpcore"),
    ]


def tools() -> list[DevicAssistantTool]:
    """The tool: around a `ChatDevic`, or built from ChatDevic's own fields."""
    return [
        DevicAssistantTool(
            name="billing_assistant",
            description="Answers questions about invoices and refunds.",
            chat_model=ChatDevic(assistant_id="billing"),
        ),
        DevicAssistantTool(
            name="billing_assistant",
            description="Answers questions about invoices and refunds.",
            assistant_id="a",
            api_key="k",
        ),
        DevicAssistantTool(
            name="billing_assistant",
            description="Answers questions about invoices and refunds.",
            model="a",
            store=InMemoryStore(),
        ),
    ]


def calls(model: ChatDevic) -> list[AIMessage]:
    """Invocation: the reply is an `AIMessage`; conversations by id or config."""
    reply: AIMessage = model.invoke("hi")
    chat: str = reply.response_metadata["chat_uuid"]
    continued: AIMessage = model.invoke("again", chat_uuid=chat)
    config: RunnableConfig = {"configurable": {"chat_uuid": "x"}}
    configured: AIMessage = model.invoke("again", config=config)
    inline: AIMessage = model.invoke(
        [HumanMessage("again")], config={"configurable": {"chat_uuid": "x"}}
    )
    per_assistant: AIMessage = model.invoke(
        "again", config={"configurable": {"chat_uuid": {"support": "x"}}}
    )
    with_context: AIMessage = model.invoke(
        "hi", context={"language": "fr"}, request_metadata={"user_id": "u-2"}
    )
    chunks: list[AIMessageChunk] = list(model.stream("hi", chat_uuid=chat))
    replies: list[AIMessage] = model.batch(["one", "two"])
    return [
        reply,
        continued,
        configured,
        inline,
        per_assistant,
        with_context,
        *chunks,
        *replies,
    ]


async def async_calls(model: ChatDevic) -> list[AIMessage]:
    """The async twins."""
    reply: AIMessage = await model.ainvoke("hi", chat_uuid="x")
    configured: AIMessage = await model.ainvoke(
        "hi", config={"configurable": {"chat_uuid": "x"}}
    )
    chunks = [chunk async for chunk in model.astream("hi")]
    return [reply, configured, *chunks]


def tool_calls(tool: DevicAssistantTool) -> object:
    """The tool as an agent calls it, and its fields."""
    config: RunnableConfig = {"configurable": {"thread_id": "customer-42"}}
    text: object = tool.invoke({"message": "Why was I charged twice?"})
    message: object = tool.invoke(
        {
            "type": "tool_call",
            "id": "call_1",
            "name": tool.name,
            "args": {"message": "Please refund it.", "new_conversation": True},
        },
        config=config,
    )
    assistant: str = tool.chat_model.assistant_id
    try:
        tool.invoke({"message": "hi"})
    except DevicError as exc:
        return exc.message
    return text, message, assistant


def client_tools(model: ChatDevic) -> object:
    """Your own tools and structured output, as a user writes them."""

    def order_status(order_id: int) -> str:
        """The shipping status of an order."""
        return f"Order {order_id} shipped."

    bound = model.bind_tools([order_status], tool_choice="auto")
    reply: AIMessage = bound.invoke("Where is order 42?")
    names = [call["name"] for call in reply.tool_calls]
    structured = model.with_structured_output(
        {"title": "Ticket", "type": "object", "properties": {}}, include_raw=True
    )
    return names, structured.invoke("I cannot log in.")


def surface(model: ChatDevic) -> object:
    """Devic's message options, files, assistants, toolkit, search, feedback."""
    options = ChatDevic(
        model="a",
        tenant_id="acme",
        subtenant_id="acme-eu",
        user_name="Ada",
        request_tags=["web"],
        enabled_tools=["search"],
        skip_summarization=True,
        llm_provider="openai",
        llm_model="gpt-4.1-mini",
        history="native",
    )
    per_call: AIMessage = options.invoke(
        "hi", tenant_id="globex", request_tags=["vip"], llm_model="m"
    )
    with_file: AIMessage = model.invoke(
        [
            HumanMessage(
                content=[
                    {"type": "text", "text": "Read this."},
                    {"type": "file", "url": "https://files.example.com/a.pdf"},
                ]
            )
        ]
    )
    assistants: list[dict[str, Any]] = model.list_assistants()
    own: dict[str, Any] = model.get_assistant()
    other: dict[str, Any] = model.get_assistant("billing")
    tools: list[BaseTool] = DevicToolkit(chat_model=model).get_tools()
    chosen = DevicToolkit(chat_model=model, assistant_ids=["billing"]).get_tools()
    one: DevicAssistantTool = DevicAssistantTool.from_assistant(
        "billing", chat_model=model
    )
    found: list[dict[str, Any]] = model.search_chats(
        tags=["web"],
        created_after=datetime(2026, 1, 1, tzinfo=timezone.utc),
        created_before=datetime(2026, 12, 31, tzinfo=timezone.utc),
        all_assistants=True,
        limit=10,
        offset=0,
    )
    entry: dict[str, Any] = model.submit_feedback(
        "chat", "m1", positive=True, comment="Good.", data={"score": 5}
    )
    entries: list[dict[str, Any]] = model.list_feedback("chat")
    return (
        per_call,
        with_file,
        assistants,
        own,
        other,
        tools,
        chosen,
        one,
        found,
        entry,
        entries,
    )


async def async_surface(model: ChatDevic) -> object:
    """The async twins of the surface."""
    assistants: list[dict[str, Any]] = await model.alist_assistants()
    own: dict[str, Any] = await model.aget_assistant()
    found: list[dict[str, Any]] = await model.asearch_chats(tags=["web"])
    entry: dict[str, Any] = await model.asubmit_feedback("chat", "m1", positive=False)
    entries: list[dict[str, Any]] = await model.alist_feedback("chat")
    return assistants, own, found, entry, entries
