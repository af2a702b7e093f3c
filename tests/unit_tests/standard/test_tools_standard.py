"""langchain-tests' standard unit suite for DevicAssistantTool (no network)."""

from __future__ import annotations

from typing import Any

from langchain_core.tools import BaseTool
from langchain_tests.unit_tests import ToolsUnitTests

from langchain_devic import DevicAssistantTool


class TestDevicAssistantToolUnit(ToolsUnitTests):
    @property
    def tool_constructor(self) -> type[BaseTool]:
        return DevicAssistantTool

    @property
    def tool_constructor_params(self) -> dict[str, Any]:
        # Construction only: no request is sent, so no base_url is needed.
        return {
            "name": "research_assistant",
            "description": "Researches a topic in depth and reports back.",
            "assistant_id": "unit-assistant",
            "api_key": "unit-test-key",
        }

    @property
    def tool_invoke_params_example(self) -> dict[str, Any]:
        return {"message": "Summarise the report", "new_conversation": False}

    @property
    def init_from_env_params(
        self,
    ) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
        # With only a name and a description, the tool builds its ChatDevic from
        # DEVIC_API_KEY / DEVIC_ASSISTANT_ID (the assistant id and key are checked
        # in test_tools.py::test_builds_its_chat_model_from_env).
        return (
            {"DEVIC_API_KEY": "env-key", "DEVIC_ASSISTANT_ID": "env-assistant"},
            {
                "name": "research_assistant",
                "description": "Researches a topic in depth and reports back.",
            },
            {
                "name": "research_assistant",
                "description": "Researches a topic in depth and reports back.",
            },
        )
