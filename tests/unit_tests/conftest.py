"""Unit-test fixtures: ChatDevic wired to the in-process emulator (no sockets)."""

from __future__ import annotations

import httpx
import pytest

from langchain_devic import ChatDevic
from langchain_devic.testing import DevicEmulator

API_KEY = "unit-secret-TOKEN-77a1"
ASSISTANT = "unit-assistant"
BASE_URL = "http://127.0.0.1/v1"


@pytest.fixture
def emulator() -> DevicEmulator:
    return DevicEmulator(api_key=API_KEY, random_seed=1)


def make_model(emulator: DevicEmulator, **overrides: object) -> ChatDevic:
    """A ChatDevic whose sync and async clients talk to `emulator` in-process."""
    params: dict[str, object] = {
        "model": ASSISTANT,
        "api_key": API_KEY,
        "base_url": BASE_URL,
        "http_client": httpx.Client(transport=emulator.transport()),
        "http_async_client": httpx.AsyncClient(transport=emulator.transport()),
        **overrides,
    }
    return ChatDevic(**params)  # type: ignore[arg-type]


@pytest.fixture
def model(emulator: DevicEmulator) -> ChatDevic:
    return make_model(emulator)
