"""langchain-tests' standard integration suite for ChatDevic.

Real HTTP to the emulator on 127.0.0.1, replayed from `cassettes/` (see
tests/conftest.py). Capability flags tell the truth: a Devic assistant takes
and returns text, and runs its own tools server-side.
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
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
