"""One list of client settings: the fields, the client's settings, the docs table.

`langchain_devic._settings.ClientSettings` is the list (name and default of
each setting a client needs). ChatDevic has a field of the same name and
default for each, the tool accepts each, and the configuration page documents
each with that default.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from langchain_devic import ChatDevic
from langchain_devic._devic_tool import CHAT_MODEL_FIELDS
from langchain_devic._settings import ClientSettings

CONFIG_PAGE = Path(__file__).resolve().parents[3] / "docs" / "configuration.md"
SETTINGS = [f for f in dataclasses.fields(ClientSettings) if f.name != "api_key"]


def table_default(name: str) -> str:
    """The default column of the configuration table's row for `name`."""
    text = CONFIG_PAGE.read_text(encoding="utf-8")
    row = re.search(rf"^\| `{name}`[^|]*\|[^|]*\| `?([^|`]*)`?", text, re.M)
    assert row is not None, f"{name} has no row in docs/configuration.md"
    return row.group(1).strip()


@pytest.mark.parametrize("setting", SETTINGS, ids=[f.name for f in SETTINGS])
def test_each_setting_is_a_chat_devic_field_with_the_same_default(
    setting: dataclasses.Field[object],
) -> None:
    field = ChatDevic.model_fields[setting.name]
    if setting.name == "base_url":  # read from DEVIC_BASE_URL by a factory
        assert field.default_factory is not None
        return
    assert field.default == setting.default


@pytest.mark.parametrize("setting", SETTINGS, ids=[f.name for f in SETTINGS])
def test_each_setting_is_documented_with_its_default(
    setting: dataclasses.Field[object],
) -> None:
    shown = table_default(setting.name)
    if setting.name == "base_url":
        assert shown.startswith("https://")
        return
    default = setting.default
    expected = f'"{default}"' if isinstance(default, str) else repr(default)
    assert shown == expected, f"{setting.name}: table says {shown}, code {expected}"


@pytest.mark.parametrize("setting", SETTINGS, ids=[f.name for f in SETTINGS])
def test_the_tool_accepts_each_setting(setting: dataclasses.Field[object]) -> None:
    assert setting.name in CHAT_MODEL_FIELDS


def test_a_model_hands_its_settings_to_its_clients() -> None:
    model = ChatDevic(
        assistant_id="a",
        api_key="k-settings",
        base_url="http://127.0.0.1:9/v1",
        timeout=7.0,
        max_retries=4,
        run_timeout=9.0,
    )
    settings = ClientSettings.from_object(model)
    assert (settings.timeout, settings.max_retries, settings.run_timeout) == (
        7.0,
        4,
        9.0,
    )
    client = model.client
    assert client.timeout.read == 7.0
    assert (client.max_retries, client.run_timeout) == (4, 9.0)
