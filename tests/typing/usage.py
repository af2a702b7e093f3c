"""README-style calls that must type-check under pyright and `mypy --strict`.

This file is checked, never run: `.ci/run` runs `pyright tests/typing` (default
settings) and `mypy tests/typing/usage.py` (strict, with the pydantic plugin).
pytest does not collect it (no `test_` prefix, outside the test paths). Every
spelling DESIGN.md allows is here, so a declaration that hides one from a type
checker (a field alias, a field built by a validator) fails CI.
"""

from __future__ import annotations

import httpx
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.stores import InMemoryStore

from langchain_devic import ChatDevic, DevicAssistantTool, DevicError


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
