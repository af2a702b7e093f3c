"""Integration tests: real HTTP to the emulator on 127.0.0.1, through cassettes.

Every test here may open sockets to loopback only. The emulator server runs for
the whole session; with `DEVIC_API_KEY` and `DEVIC_ASSISTANT_ID` set (and the
cassettes deleted) the same tests record against live Devic instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from langchain_devic.testing import DevicEmulator
from tests.conftest import REPLAY_ASSISTANT

LOOPBACK = ["127.0.0.1"]
EMULATOR_KEY = "integration-test-key"
LIVE = bool(os.environ.get("DEVIC_API_KEY") and os.environ.get("DEVIC_ASSISTANT_ID"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Allow loopback sockets (and nothing else) for every integration test."""
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.path).startswith(here):
            item.add_marker(pytest.mark.allow_hosts(LOOPBACK))


@pytest.fixture(scope="session")
def emulator() -> DevicEmulator:
    """The session's emulator (any assistant id exists), as Devic's platform.

    Streams are platform runs followed over HTTP, so the cassettes hold real
    runs: the async send, the event stream or the realtime reads, the history.
    """
    return DevicEmulator(api_key=EMULATOR_KEY, random_seed=7, dialect="platform")


#: Filled by `devic_endpoint` for the standard suites, whose `chat_model_params`
#: and `tool_constructor_params` are properties and cannot take fixtures.
ENDPOINT: dict[str, str] = {}


@pytest.fixture(scope="session", autouse=True)
def devic_endpoint(emulator: DevicEmulator) -> Iterator[dict[str, str]]:
    """`api_key`, `base_url` and `assistant_id` of the peer under test."""
    if LIVE:
        ENDPOINT.update(
            api_key=os.environ["DEVIC_API_KEY"],
            base_url=os.environ.get("DEVIC_BASE_URL", "https://api.devic.ai/v1"),
            assistant_id=os.environ["DEVIC_ASSISTANT_ID"],
        )
        yield ENDPOINT
        return
    with emulator.serve() as server:
        ENDPOINT.update(
            api_key=EMULATOR_KEY,
            base_url=server.base_url,
            assistant_id=REPLAY_ASSISTANT,
        )
        yield ENDPOINT
