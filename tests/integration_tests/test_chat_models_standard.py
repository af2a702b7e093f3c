"""langchain-tests' standard integration suite for ChatDevic.

Real HTTP to the emulator on 127.0.0.1, replayed from `cassettes/` (see
tests/conftest.py). Capability flags tell the truth (tests/standard_flags.py):
a Devic assistant takes and returns text, runs its own tools server-side, and
calls the caller's tools when it decides to (no tool choice). The emulator's
assistant here is `tool_user` (tests/integration_tests/conftest.py).
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.tools import BaseTool
from langchain_tests.integration_tests import ChatModelIntegrationTests

from langchain_devic import ChatDevic
from tests.integration_tests.conftest import ENDPOINT
from tests.standard_flags import DevicCapabilities

pytestmark = pytest.mark.vcr


class TestChatDevicIntegration(DevicCapabilities, ChatModelIntegrationTests):
    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return ChatDevic

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {
            "model": ENDPOINT["assistant_id"],
            "api_key": ENDPOINT["api_key"],
            "base_url": ENDPOINT["base_url"],
        }

    @property
    def model_override_value(self) -> str:
        return "integration-assistant-2"

    @property
    def enable_vcr_tests(self) -> bool:
        return True

    @pytest.mark.xfail(
        reason=(
            "The standard test forces a call with tool_choice='any', which Devic "
            "cannot honour, so bind_tools refuses it with ValueError "
            "(see docs/tools.md). The same Chinese and Japanese arguments "
            "without tool_choice: "
            "test_tool_calling.py::test_unicode_arguments_arrive_unescaped."
        ),
        raises=ValueError,
        strict=True,
    )
    def test_unicode_tool_call_integration(self, model: BaseChatModel) -> None:
        super().test_unicode_tool_call_integration(model)

    @pytest.mark.xfail(
        reason=(
            "The standard test binds with tool_choice='any', which Devic cannot "
            "honour (the assistant decides whether to call a tool), so bind_tools "
            "refuses it with ValueError (see docs/tools.md). Few-shot tool histories "
            "without tool_choice are test_tool_message_histories_* here."
        ),
        raises=ValueError,
        strict=True,
    )
    def test_structured_few_shot_examples(
        self, model: BaseChatModel, my_adder_tool: BaseTool
    ) -> None:
        super().test_structured_few_shot_examples(model, my_adder_tool)
