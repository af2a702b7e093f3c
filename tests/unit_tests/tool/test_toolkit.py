"""DevicToolkit and DevicAssistantTool.from_assistant: tools named from Devic."""

from __future__ import annotations

import re

import pytest
from langchain_core.tools import BaseToolkit

from langchain_devic import DevicAssistantTool, DevicNotFoundError, DevicToolkit
from langchain_devic.testing import DevicEmulator
from langchain_devic.toolkit import MAX_TOOL_NAME, tool_name
from tests.unit_tests.conftest import API_KEY, ASSISTANT, make_model

LONG = "A very long assistant name " * 5


@pytest.fixture
def emulator() -> DevicEmulator:
    emulator = DevicEmulator(api_key=API_KEY, random_seed=1, assistants={})
    emulator.add_assistant(
        "billing", profile={"name": "Billing desk", "description": "Refunds."}
    )
    emulator.add_assistant("twin-1", profile={"name": "Twin", "description": ""})
    emulator.add_assistant("twin-2", profile={"name": "Twin", "description": None})
    emulator.add_assistant("long", profile={"name": LONG})
    emulator.add_assistant("off", profile={"name": "Off", "state": "inactive"})
    emulator.add_assistant(ASSISTANT)
    return emulator


def test_one_tool_per_active_assistant(emulator: DevicEmulator) -> None:
    toolkit = DevicToolkit(chat_model=make_model(emulator, tenant_id="acme"))
    assert isinstance(toolkit, BaseToolkit)
    tools = toolkit.get_tools()
    assert [r.route for r in emulator.requests] == ["assistants"]  # read once
    by_id = {t.chat_model.assistant_id: t for t in tools}  # type: ignore[attr-defined]
    assert set(by_id) == {"billing", "twin-1", "twin-2", "long", ASSISTANT}
    assert all(isinstance(t, DevicAssistantTool) for t in tools)
    names = [t.name for t in tools]
    assert len(set(names)) == len(names)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{1,64}", n) for n in names)
    assert by_id["billing"].name == "Billing_desk"
    assert by_id["billing"].description == "Refunds."
    assert by_id["twin-1"].description == "Ask the Devic assistant Twin."
    assert {by_id["twin-1"].name, by_id["twin-2"].name} == {"Twin", "Twin_2"}
    assert len(by_id["long"].name) == MAX_TOOL_NAME
    # Each tool keeps the given model's settings.
    assert by_id["billing"].chat_model.tenant_id == "acme"  # type: ignore[attr-defined]


def test_a_tool_talks_to_its_assistant(emulator: DevicEmulator) -> None:
    tools = DevicToolkit(chat_model=make_model(emulator)).get_tools()
    billing = next(t for t in tools if t.name == "Billing_desk")
    billing.invoke({"message": "Refund order 7"})
    sends = [r for r in emulator.requests if r.route == "messages"]
    assert [r.assistant_id for r in sends] == ["billing"]


def test_only_the_given_ids_in_their_order(emulator: DevicEmulator) -> None:
    toolkit = DevicToolkit(
        chat_model=make_model(emulator), assistant_ids=["off", "billing"]
    )
    tools = toolkit.get_tools()
    ids = [t.chat_model.assistant_id for t in tools]  # type: ignore[attr-defined]
    assert ids == ["off", "billing"]
    with pytest.raises(DevicNotFoundError):
        DevicToolkit(
            chat_model=make_model(emulator), assistant_ids=["nobody"]
        ).get_tools()


def test_from_assistant(emulator: DevicEmulator) -> None:
    model = make_model(emulator)
    tool = DevicAssistantTool.from_assistant("billing", chat_model=model)
    assert tool.name == "Billing_desk"
    assert tool.description == "Refunds."
    assert tool.chat_model.assistant_id == "billing"
    assert model.assistant_id == ASSISTANT  # the given model is unchanged
    plain = DevicAssistantTool.from_assistant(ASSISTANT, chat_model=model)
    assert plain.name == ASSISTANT  # already a valid tool name
    with pytest.raises(DevicNotFoundError):
        DevicAssistantTool.from_assistant("nobody", chat_model=model)


@pytest.mark.parametrize(
    ("name", "taken", "expected"),
    [
        ("Sales & Support!", (), "Sales_Support"),
        ("  ", (), "devic_assistant"),
        ("héllo wörld", (), "h_llo_w_rld"),
        ("a", ("a", "a_2"), "a_3"),
        ("x" * 70, ("x" * 64,), "x" * 62 + "_2"),
    ],
)
def test_tool_name(name: str, taken: tuple[str, ...], expected: str) -> None:
    assert tool_name(name, taken) == expected
