"""The tour behind `python -m langchain_devic demo`: five short, readable scenes.

1. One LCEL chain call: `prompt | ChatDevic | StrOutputParser`.
2. A three-turn conversation: the reply history carries the chatUuid, so every
   turn continues the same Devic conversation.
3. An agent delegating to `DevicAssistantTool`: a scripted planner (no LLM, no
   LangGraph) asks for a tool call, the tool runs in an agent thread, and the
   planner answers from the tool's result.
4. A streamed platform run: the reply arrives in pieces as the assistant
   writes it, with `devic_progress` events for its status changes.
5. Your own tools: `bind_tools` gives the assistant a Python function; its
   call comes back as `tool_calls`, the function runs here, and its result
   goes back to the waiting run, in the same Devic chat.

Every line it prints goes through `printable`: what the assistant wrote cannot
carry escape sequences or control characters to the terminal.

It needs only the runtime dependencies (langchain-core, httpx, pydantic), so it
runs right after `pip install -e .`.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, TextIO

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    ToolCall,
    ToolMessage,
)
from langchain_core.output_parsers import StrOutputParser
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import tool

from langchain_devic._terminal import printable
from langchain_devic.chat_models import ChatDevic
from langchain_devic.testing import CallTools, ClientCall, Conversation, DevicEmulator
from langchain_devic.tools import DevicAssistantTool

__all__ = ["ScriptedPlanner", "demo_assistant", "run_agent", "run_tour"]

CONVERSATION = (
    "Hi! I'm planning a weekend in Lisbon.",
    "What should I see on Saturday?",
    "And where should I eat that evening?",
)
AGENT_QUESTION = "Which neighbourhood should I stay in for a weekend in Lisbon?"
AGENT_THREAD = "demo-thread"
TOOL_NAME = "devic_assistant"
INDENT = "   "
TOOLS_QUESTION = "What time is it in Lisbon right now?"
#: Tool rounds scene 5 allows before it stops asking (a live assistant may loop).
MAX_TOOL_ROUNDS = 3


@tool
def local_time(city: str) -> str:
    """The current time (UTC) where the user asks about; runs in this process."""
    return datetime.now(timezone.utc).strftime("%H:%M UTC") + f" (asked for {city})"


def demo_assistant(conversation: Conversation) -> Any:
    """The bundled emulator's demo assistant: it calls `local_time` when given it.

    Otherwise it is the emulator's default assistant (numbered echoes).
    """
    if conversation.tool_results:
        return f"It is {conversation.tool_results[0]['content']} right now."
    if "local_time" in conversation.tool_names:
        return CallTools(ClientCall("local_time", {"city": "Lisbon"}))
    return DevicEmulator.default_reply(conversation)


class ScriptedPlanner(BaseChatModel):
    """A stand-in for a tool-calling LLM: it always delegates, then reports back.

    Given a user question it asks for one call of `tool_name` with the question
    as `message`; given the tool's result it answers from it. Deterministic, so
    the demo shows the agent loop without any model credentials.
    """

    tool_name: str = TOOL_NAME
    """The tool the planner calls."""

    @property
    def _llm_type(self) -> str:
        return "scripted-planner"

    def _generate(
        self, messages: list[BaseMessage], *args: Any, **kwargs: Any
    ) -> ChatResult:
        """Delegate the question, or report the tool's answer (stop words unused)."""
        last = messages[-1]
        if isinstance(last, ToolMessage):
            if last.status == "error":
                answer = f"I could not get an answer from the assistant: {last.text}"
            else:
                answer = f"The Devic assistant answered: {last.text}"
            message = AIMessage(content=answer)
        else:
            call = ToolCall(
                name=self.tool_name,
                args={"message": last.text},
                id=f"call_{len(messages)}",
                type="tool_call",
            )
            message = AIMessage(content="", tool_calls=[call])
        return ChatResult(generations=[ChatGeneration(message=message)])


def run_agent(
    planner: BaseChatModel,
    tool: DevicAssistantTool,
    question: str,
    thread_id: str,
    *,
    max_steps: int = 4,
) -> list[BaseMessage]:
    """A minimal tool-calling loop: model, tools, model, ... until a plain answer.

    Each tool call runs with `configurable.thread_id`, so the tool keeps one
    Devic conversation per agent thread. Returns the whole message list.
    """
    messages: list[BaseMessage] = [HumanMessage(question)]
    config: RunnableConfig = {"configurable": {"thread_id": thread_id}}
    for _ in range(max_steps):
        step = planner.invoke(messages)
        messages.append(step)
        if not isinstance(step, AIMessage) or not step.tool_calls:
            return messages
        for call in step.tool_calls:
            result = tool.invoke(call, config=config)
            messages.append(result)
    msg = f"The planner did not finish within {max_steps} steps."
    raise RuntimeError(msg)


def _tokens(message: AIMessage) -> str:
    usage = message.usage_metadata
    return "not reported" if usage is None else str(usage["total_tokens"])


def run_tour(model: ChatDevic, out: TextIO) -> None:
    """Run the five scenes against `model`'s assistant, writing to `out`."""

    def say(text: str = "") -> None:
        # Every line may hold server text: no escape sequences reach a terminal.
        out.write(printable(text) + "\n")
        out.flush()

    say(f"Assistant: {model.assistant_id}")

    say()
    say("1. One chain call: prompt | ChatDevic | StrOutputParser")
    prompt = ChatPromptTemplate.from_messages(
        [
            ("system", "You are a concise travel guide."),
            ("human", "Give me one tip for visiting {city}."),
        ]
    )
    chain = prompt | model | StrOutputParser()
    inputs = {"city": "Lisbon"}
    say(f"{INDENT}chain.invoke({inputs})")
    say(f"{INDENT}-> {chain.invoke(inputs)}")

    say()
    say("2. A three-turn conversation: the history carries the chatUuid")
    history: list[BaseMessage] = []
    chat_ids: list[str | None] = []
    for number, text in enumerate(CONVERSATION, start=1):
        history.append(HumanMessage(text))
        reply = model.invoke(history)
        history.append(reply)
        chat_ids.append(reply.response_metadata.get("chat_uuid"))
        say(f"{INDENT}turn {number}  you:   {text}")
        say(f"{INDENT}        devic: {reply.text}")
        say(f"{INDENT}        chatUuid {chat_ids[-1]}  tokens {_tokens(reply)}")
    same = len(set(chat_ids)) == 1 and chat_ids[0] is not None
    say(f"{INDENT}Same chatUuid on all three turns: {'yes' if same else 'no'}")

    say()
    say("3. An agent delegating to DevicAssistantTool (scripted planner)")
    tool = DevicAssistantTool(
        name=TOOL_NAME,
        description="A Devic travel assistant: ask it anything about a trip.",
        chat_model=model,
    )
    messages = run_agent(ScriptedPlanner(), tool, AGENT_QUESTION, AGENT_THREAD)
    say(f"{INDENT}user:    {AGENT_QUESTION}")
    for message in messages[1:]:
        if isinstance(message, AIMessage) and message.tool_calls:
            for call in message.tool_calls:
                args = ", ".join(f"{k}={v!r}" for k, v in call["args"].items())
                say(f"{INDENT}planner: calls {call['name']}({args})")
        elif isinstance(message, ToolMessage):
            artifact = message.artifact or {}
            say(f"{INDENT}tool:    {message.text}")
            say(
                f"{INDENT}         thread {AGENT_THREAD!r} -> chatUuid "
                f"{artifact.get('chat_uuid')}  tokens {artifact.get('tokens_used')}"
            )
        else:
            say(f"{INDENT}planner: {message.text}")

    say()
    say("4. Streaming a platform run: text as it is written, progress as it moves")
    progress = _ProgressLog()
    pieces: list[str] = []
    question = "Tell me about the tram lines."
    for chunk in model.stream(question, config={"callbacks": [progress]}):
        if chunk.text:
            pieces.append(chunk.text)
    say(f"{INDENT}model.stream({question!r})")
    say(f"{INDENT}-> {len(pieces)} pieces: {' | '.join(pieces)}")
    say(f"{INDENT}   progress: {' -> '.join(progress.statuses) or 'none reported'}")

    say()
    say("5. Your own tools: the assistant calls a Python function that runs here")
    bound = model.bind_tools([local_time])
    conversation: list[BaseMessage] = [HumanMessage(TOOLS_QUESTION)]
    say(f"{INDENT}model.bind_tools([local_time]).invoke({TOOLS_QUESTION!r})")
    reply = bound.invoke(conversation)
    for _ in range(MAX_TOOL_ROUNDS):
        if not reply.tool_calls:
            break
        conversation.append(reply)
        for call in reply.tool_calls:
            result = local_time.invoke(call)
            calls = f"{call['name']}({call['args']})"
            say(f"{INDENT}assistant calls {calls} -> {result.text}")
            conversation.append(result)
        reply = bound.invoke(conversation)
    chats = {
        m.response_metadata.get("chat_uuid")
        for m in [*conversation, reply]
        if isinstance(m, AIMessage)
    }
    say(f"{INDENT}-> {reply.text}")
    one = "yes" if len(chats) == 1 else "no"
    say(f"{INDENT}   one Devic chat for the whole turn: {one}")

    say()
    say("Done. Next: `python -m langchain_devic chat`, or the README's guide.")


class _ProgressLog(BaseCallbackHandler):
    """Collects the statuses a run's `devic_progress` events report."""

    def __init__(self) -> None:
        self.statuses: list[str] = []

    def on_custom_event(self, name: str, data: Any, **kwargs: Any) -> None:
        if name == "devic_progress" and isinstance(data, dict):
            self.statuses.append(str(data.get("summary") or data.get("status")))
