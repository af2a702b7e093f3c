"""langchain-tests' standard integration suite for DevicAssistantTool.

Real HTTP to the emulator on 127.0.0.1, replayed from `cassettes/` (see
tests/conftest.py). The example call carries no thread id, so each call starts
a new Devic conversation and every cassette holds one request.
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.tools import BaseTool
from langchain_tests.integration_tests import ToolsIntegrationTests

from langchain_devic import DevicAssistantTool
from tests.integration_tests.conftest import ENDPOINT

pytestmark = pytest.mark.vcr


class TestDevicAssistantToolIntegration(ToolsIntegrationTests):
    @property
    def tool_constructor(self) -> type[BaseTool]:
        return DevicAssistantTool

    @property
    def tool_constructor_params(self) -> dict[str, Any]:
        return {
            "name": "research_assistant",
            "description": "Researches a topic in depth and reports back.",
            "assistant_id": ENDPOINT["assistant_id"],
            "api_key": ENDPOINT["api_key"],
            "base_url": ENDPOINT["base_url"],
        }

    @property
    def tool_invoke_params_example(self) -> dict[str, Any]:
        return {"message": "Summarise the report", "new_conversation": False}
