"""LangChain integration for Devic assistants.

`ChatDevic` puts a Devic assistant into chains and LangGraph graphs;
`DevicAssistantTool` lets a tool-calling agent delegate work to one; and
`langchain_devic.testing` holds a local Devic emulator for offline use.
"""

from langchain_devic._version import __version__
from langchain_devic.chat_models import ChatDevic
from langchain_devic.errors import (
    DevicAPIError,
    DevicAuthenticationError,
    DevicBadRequestError,
    DevicConflictError,
    DevicConnectionError,
    DevicError,
    DevicNotFoundError,
    DevicPermissionDeniedError,
    DevicProtocolError,
    DevicRateLimitError,
    DevicRequestTimeoutError,
    DevicServerError,
    DevicTimeoutError,
)
from langchain_devic.tools import DevicAssistantTool

__all__ = [
    "ChatDevic",
    "DevicAPIError",
    "DevicAssistantTool",
    "DevicAuthenticationError",
    "DevicBadRequestError",
    "DevicConflictError",
    "DevicConnectionError",
    "DevicError",
    "DevicNotFoundError",
    "DevicPermissionDeniedError",
    "DevicProtocolError",
    "DevicRateLimitError",
    "DevicRequestTimeoutError",
    "DevicServerError",
    "DevicTimeoutError",
    "__version__",
]
