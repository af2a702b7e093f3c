"""The public surface: exactly these names, each importable, and a version."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys

import langchain_devic
from langchain_devic import errors

EXPECTED_ALL = {
    "ChatDevic",
    "DevicAssistantTool",
    "DevicAPIError",
    "DevicAuthenticationError",
    "DevicBadRequestError",
    "DevicConflictError",
    "DevicConnectError",
    "DevicConnectTimeoutError",
    "DevicConnectionError",
    "DevicError",
    "DevicNotFoundError",
    "DevicPermissionDeniedError",
    "DevicProtocolError",
    "DevicRateLimitError",
    "DevicRequestTimeoutError",
    "DevicRunError",
    "DevicServerError",
    "DevicServiceUnavailableError",
    "DevicGatewayError",
    "DevicLockTimeoutError",
    "DevicStoreError",
    "DevicTimeoutError",
    "DevicToolkit",
    "FATAL_ERRORS",
    "RETRYABLE_ERRORS",
    "__version__",
    "DevicAgentTool",
    "DevicApprovalRequired",
    "DevicLockError",
}


def test_all_is_exactly_the_public_surface() -> None:
    assert set(langchain_devic.__all__) == EXPECTED_ALL
    for name in langchain_devic.__all__:
        assert getattr(langchain_devic, name) is not None
    assert set(errors.__all__) <= EXPECTED_ALL
    assert set(dir(langchain_devic)) >= EXPECTED_ALL


def test_version_matches_the_installed_distribution() -> None:
    assert langchain_devic.__version__ == importlib.metadata.version("langchain-devic")


def test_the_tool_is_imported_lazily() -> None:
    code = (
        "import sys, langchain_devic; "
        "print('langchain_devic.tools' in sys.modules); "
        "from langchain_devic import DevicAssistantTool; "
        "print(DevicAssistantTool.__module__)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["False", "langchain_devic.tools"]
