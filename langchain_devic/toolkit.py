"""DevicToolkit: the account's Devic assistants as tools for an agent.

`DevicToolkit(chat_model=ChatDevic(...)).get_tools()` reads the account's
assistants once and gives one `DevicAssistantTool` per assistant, named and
described from Devic, each bound to its assistant (the other settings are the
given model's). `DevicAssistantTool.from_assistant` does the same for one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from langchain_core.tools import BaseTool, BaseToolkit
from pydantic import ConfigDict

from langchain_devic import _wire
from langchain_devic.chat_models import ChatDevic

if TYPE_CHECKING:
    from langchain_devic.tools import DevicAssistantTool

__all__ = ["DevicToolkit"]

#: The longest tool name tool-calling APIs take.
MAX_TOOL_NAME = 64
_INVALID = re.compile(r"[^A-Za-z0-9_-]+")
#: Assistant states whose assistants are offered (absent: offered too).
_OFFERED_STATES = frozenset({"active"})


def tool_name(name: str, taken: Iterable[str] = ()) -> str:
    """`name` made a valid tool name (`[A-Za-z0-9_-]`, at most 64), not in `taken`."""
    base = _INVALID.sub("_", name).strip("_")[:MAX_TOOL_NAME] or "devic_assistant"
    used = set(taken)
    candidate, number = base, 1
    while candidate in used:
        number += 1
        suffix = f"_{number}"
        candidate = base[: MAX_TOOL_NAME - len(suffix)] + suffix
    return candidate


def assistant_tool(
    chat_model: ChatDevic,
    assistant: Mapping[str, Any],
    taken: Iterable[str] = (),
    **tool_fields: Any,
) -> DevicAssistantTool:
    """The tool of one assistant (as `list_assistants` gives it)."""
    from langchain_devic.tools import DevicAssistantTool  # here: tools imports us

    assistant_id = _wire.validate_assistant_id(str(assistant["assistant_id"]))
    shown = assistant.get("name") or assistant_id
    description = assistant.get("description") or f"Ask the Devic assistant {shown}."
    model = chat_model.model_copy(update={"assistant_id": assistant_id})
    return DevicAssistantTool(
        name=tool_name(str(shown), taken),
        description=str(description),
        chat_model=model,
        **tool_fields,
    )


class DevicToolkit(BaseToolkit):
    """One `DevicAssistantTool` per assistant of the account.

    Each tool is named from the assistant's name (made a valid, unique tool
    name of at most 64 characters) and described by Devic's description (else
    "Ask the Devic assistant <name>."), and talks to that assistant with the
    settings of `chat_model`.

    Example:
        ```python
        from langchain_devic import ChatDevic, DevicToolkit

        toolkit = DevicToolkit(chat_model=ChatDevic(assistant_id="support"))
        tools = toolkit.get_tools()  # one per active assistant
        ```
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    chat_model: ChatDevic
    """The model whose key, base URL and settings every tool uses."""

    assistant_ids: list[str] | None = None
    """Only these assistants, in this order (default: every active one)."""

    def get_tools(self) -> list[BaseTool]:
        """Read the account's assistants (once) and give one tool for each."""
        assistants = self.chat_model.list_assistants()
        if self.assistant_ids is not None:
            known = {a["assistant_id"]: a for a in assistants}
            chosen = [
                known.get(i) or self.chat_model.get_assistant(i)
                for i in self.assistant_ids
            ]
        else:
            chosen = [
                a
                for a in assistants
                if a.get("state") is None or a["state"] in _OFFERED_STATES
            ]
        tools: list[BaseTool] = []
        for assistant in chosen:
            tools.append(
                assistant_tool(self.chat_model, assistant, (t.name for t in tools))
            )
        return tools
