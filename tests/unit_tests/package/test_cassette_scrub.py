"""Cassettes never keep the key: URIs and bodies are scrubbed, not only headers.

The scrub functions of `tests/conftest.py` are tested directly, on vcrpy
`Request` objects and response dicts as vcrpy hands them over; no socket.
"""

from __future__ import annotations

import json
import sys
import types
from typing import Any
from urllib.parse import quote

import pytest
import vcr
from vcr.request import Request

from tests.conftest import (
    REDACTED,
    _match_body,
    _scrub_request,
    _scrub_response,
    keys_in_use,
    scrub_body,
    scrub_text,
)

LIVE_KEY = "sk-live-SECRET+key/with=odd&chars"
EMULATOR_KEY = "integration-test-key"


@pytest.fixture(autouse=True)
def live_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("DEVIC_API_KEY", LIVE_KEY)
    return LIVE_KEY


def recorded_request(body: bytes, uri: str = "https://api.devic.ai/v1/x") -> Any:
    return Request("POST", uri, body, {"Authorization": f"Bearer {LIVE_KEY}"})


def recorded_response(body: bytes | str) -> dict[str, Any]:
    return {
        "status": {"code": 200, "message": "OK"},
        "headers": {"Content-Type": ["application/json"], "Server": ["devic"]},
        "body": {"string": body},
    }


def test_the_key_in_a_request_body_is_redacted() -> None:
    body = json.dumps({"message": f"my key is {LIVE_KEY}", "n": 1}).encode()
    scrubbed = _scrub_request(recorded_request(body))
    assert LIVE_KEY.encode() not in scrubbed.body
    assert json.loads(scrubbed.body) == {"message": f"my key is {REDACTED}", "n": 1}


def test_the_key_in_a_request_uri_is_redacted_in_every_spelling() -> None:
    uri = f"http://127.0.0.1:43210/v1/x?key={quote(LIVE_KEY, safe='')}&raw={LIVE_KEY}"
    scrubbed = _scrub_request(recorded_request(b"", uri))
    assert scrubbed.uri == f"http://127.0.0.1/v1/x?key={REDACTED}&raw={REDACTED}"


@pytest.mark.parametrize("as_text", [False, True])
def test_a_response_body_that_echoes_the_key_holds_redacted(as_text: bool) -> None:
    echoed = json.dumps({"error": f"Invalid key {LIVE_KEY}", "escaped": LIVE_KEY})
    body: bytes | str = echoed if as_text else echoed.encode()
    scrubbed = _scrub_response(recorded_response(body))
    text = scrubbed["body"]["string"]
    text = text if isinstance(text, str) else text.decode()
    assert LIVE_KEY not in text
    assert json.loads(text) == {"error": f"Invalid key {REDACTED}", "escaped": REDACTED}
    assert scrubbed["headers"] == {"Content-Type": ["application/json"]}


def test_json_escaped_and_url_encoded_spellings_are_redacted() -> None:
    key = 'sk-"quoted"\\slash-0123'
    body = json.dumps({"k": key}).encode() + b" " + quote(key, safe="").encode()
    scrubbed = scrub_body(body, [key])
    assert scrubbed == f'{{"k": "{REDACTED}"}} {REDACTED}'.encode()


def test_the_emulator_key_of_the_integration_tests_is_scrubbed_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Recorded against the emulator: its key is the one in use."""
    monkeypatch.delenv("DEVIC_API_KEY")
    fake = types.ModuleType("tests.integration_tests.conftest")
    fake.EMULATOR_KEY = EMULATOR_KEY  # type: ignore[attr-defined]
    fake.ENDPOINT = {"api_key": "endpoint-KEY-in-use"}  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tests.integration_tests.conftest", fake)
    assert set(keys_in_use()) == {EMULATOR_KEY, "endpoint-KEY-in-use"}
    body = f"{EMULATOR_KEY} and endpoint-KEY-in-use".encode()
    scrubbed = _scrub_request(recorded_request(body))
    assert scrubbed.body == f"{REDACTED} and {REDACTED}".encode()


def test_keys_in_use_without_any_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEVIC_API_KEY")
    for name in [n for n in sys.modules if n.endswith("integration_tests.conftest")]:
        monkeypatch.delitem(sys.modules, name)
    assert keys_in_use() == []
    assert scrub_text("nothing to hide", keys_in_use()) == "nothing to hide"


def test_a_short_key_is_not_scrubbed_from_ordinary_text(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DEVIC_API_KEY", "abc")
    assert "abc" not in keys_in_use()
    assert _scrub_request(recorded_request(b"abcdef")).body == b"abcdef"


def test_a_scrubbed_recording_still_matches_its_replay() -> None:
    body = json.dumps({"message": f"echo {LIVE_KEY}"}).encode()
    recorded = _scrub_request(recorded_request(body))
    replayed = _scrub_request(recorded_request(body))  # vcrpy scrubs both sides
    _match_body(recorded, replayed)


def test_the_vcr_config_scrubs_headers_uris_and_bodies(
    vcr_config: dict[str, Any],
) -> None:
    """The session's config, as vcrpy composes it (header filter first)."""
    recorder = vcr.VCR()
    before_request = recorder._build_before_record_request(vcr_config)
    before_response = recorder._build_before_record_response(vcr_config)
    body = json.dumps({"message": LIVE_KEY}).encode()
    request = before_request(recorded_request(body, f"https://d.example/?k={LIVE_KEY}"))
    response = before_response(recorded_response(body))
    dumped = repr((request.uri, request.body, request.headers, response))
    assert LIVE_KEY not in dumped
    assert quote(LIVE_KEY, safe="") not in dumped
    assert request.headers["Authorization"] == "REDACTED"
