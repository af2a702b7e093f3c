"""LangChain integration for Devic assistants.

`ChatDevic` puts a Devic assistant into chains and LangGraph graphs;
`DevicAssistantTool` lets a tool-calling agent delegate work to one; and
`langchain_devic.testing` holds a local Devic emulator for offline use.
"""

from typing import TYPE_CHECKING, Any

from langchain_devic import errors
from langchain_devic._version import __version__
from langchain_devic.chat_models import ChatDevic
from langchain_devic.errors import *  # noqa: F403 - every error, by errors.__all__

if TYPE_CHECKING:
    from langchain_devic.agents import DevicAgentTool
    from langchain_devic.toolkit import DevicToolkit
    from langchain_devic.tools import DevicAssistantTool


def __getattr__(name: str) -> Any:
    """Import `DevicAssistantTool` on first use, keeping `import` cheap.

    The tool module pulls in langchain-core's stores and tool machinery, which a
    chat-model-only user need not pay for.
    """
    if name == "DevicAssistantTool":
        from langchain_devic.tools import DevicAssistantTool

        return DevicAssistantTool
    if name == "DevicToolkit":
        from langchain_devic.toolkit import DevicToolkit

        return DevicToolkit
    if name == "DevicAgentTool":
        from langchain_devic.agents import DevicAgentTool

        return DevicAgentTool
    msg = f"module 'langchain_devic' has no attribute {name!r}"
    raise AttributeError(msg)


__all__ = [
    "ChatDevic",
    "DevicAgentTool",
    "DevicAssistantTool",
    "DevicToolkit",
    "__version__",
]
__all__ += errors.__all__


def __dir__() -> list[str]:
    """List the lazily imported names too (tab completion in notebooks)."""
    return sorted({*globals(), *__all__})
