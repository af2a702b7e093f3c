"""Shared test configuration: sockets, cassettes, and the emulator fixtures.

Unit tests run with sockets disabled (pytest-socket); tests that speak real HTTP
to the loopback emulator are allowed 127.0.0.1 only. Cassettes live in
`cassettes/` at the repository root and never hold a credential: secret headers
are redacted, and the API key in use is replaced by `REDACTED` wherever else it
appears (a URI, a request body, a response body that echoes it).
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from langchain_tests.conftest import base_vcr_config

ROOT = Path(__file__).resolve().parent.parent
CASSETTES = ROOT / "cassettes"

#: Headers that could carry a secret or a machine detail; redacted in cassettes.
_REDACTED_HEADERS = [
    ("authorization", "REDACTED"),
    ("x-api-key", "REDACTED"),
    ("api-key", "REDACTED"),
    ("cookie", "REDACTED"),
    ("set-cookie", "REDACTED"),
    ("user-agent", "REDACTED"),
    ("host", None),  # the emulator's random port: not part of the match
]
_LOOPBACK_PORT = re.compile(r"^(https?://(?:127\.0\.0\.1|localhost)):\d+")


#: The assistant id replays use; a live recording is rewritten to it.
REPLAY_ASSISTANT = "integration-assistant"

#: What a key becomes in a cassette's URIs and bodies.
REDACTED = "REDACTED"
#: Shorter keys are not scrubbed from bodies: they could match ordinary text.
MIN_SCRUBBED_KEY = 8


def keys_in_use() -> list[str]:
    """The API keys a cassette must not hold, longest first.

    `DEVIC_API_KEY` (a live recording) and the key the integration tests'
    emulator accepts (`EMULATOR_KEY` and the `api_key` of `ENDPOINT` in
    `tests/integration_tests/conftest.py`, read once that module is loaded).
    """
    keys = {os.environ.get("DEVIC_API_KEY", "")}
    for name, module in list(sys.modules.items()):
        if name.endswith("integration_tests.conftest"):
            keys.add(str(getattr(module, "EMULATOR_KEY", "")))
            keys.add(str(getattr(module, "ENDPOINT", {}).get("api_key", "")))
    return sorted((k for k in keys if len(k) >= MIN_SCRUBBED_KEY), key=len)[::-1]


def _spellings(key: str) -> list[str]:
    """`key` as it may appear: raw, URL-encoded, form-encoded, JSON-escaped."""
    forms = [key, quote(key, safe=""), quote_plus(key), json.dumps(key)[1:-1]]
    return sorted(set(forms), key=len, reverse=True)


def scrub_text(text: str, keys: Iterable[str]) -> str:
    """`text` with every spelling of every key replaced by `REDACTED`."""
    for key in keys:
        for form in _spellings(key):
            text = text.replace(form, REDACTED)
    return text


def scrub_body(body: Any, keys: Iterable[str]) -> Any:
    """A recorded body (bytes, text or `None`) without any key in it."""
    keys = list(keys)
    if isinstance(body, bytes):
        for key in keys:
            for form in _spellings(key):
                body = body.replace(form.encode("utf-8"), REDACTED.encode())
        return body
    if isinstance(body, str):
        return scrub_text(body, keys)
    return body


def _scrub_request(request: Any) -> Any:
    """Drop the random loopback port, a live assistant id and the key from URIs.

    Cassettes match on the path, so a recording made against live Devic with
    `DEVIC_ASSISTANT_ID` set must name the assistant the replay uses. The key
    in use is replaced by `REDACTED` in the URI and the body (replayed requests
    go through the same scrub before they are matched).
    """
    keys = keys_in_use()
    request.uri = scrub_text(_LOOPBACK_PORT.sub(r"\1", request.uri), keys)
    if isinstance(request.body, (bytes, str)):  # not a file or an iterator
        request.body = scrub_body(request.body, keys)
    live_id = os.environ.get("DEVIC_ASSISTANT_ID")
    if live_id and os.environ.get("DEVIC_API_KEY"):
        segment = f"/assistants/{quote(live_id, safe='')}/"
        request.uri = request.uri.replace(segment, f"/assistants/{REPLAY_ASSISTANT}/")
    return request


def _scrub_response(response: dict[str, Any]) -> dict[str, Any]:
    """Keep only the headers a replay needs; no key in the body.

    Server and date details go; a body that echoes the key in use holds
    `REDACTED` instead.
    """
    keep = {"content-type", "retry-after", "retry-after-ms"}
    response["headers"] = {
        k: v for k, v in response.get("headers", {}).items() if k.lower() in keep
    }
    body = response.get("body")
    if isinstance(body, dict) and "string" in body:
        body["string"] = scrub_body(body["string"], keys_in_use())
    return response


def _same_descriptions(value: Any) -> Any:
    """`value` with every tool `description` de-indented, line by line.

    Python 3.13 strips the indentation of docstrings when it compiles them, so
    a tool described by a multi-line docstring is sent with other whitespace
    there than on 3.10-3.12; the request is the same.
    """
    if isinstance(value, dict):
        return {
            key: "\n".join(line.strip() for line in item.splitlines())
            if key == "description" and isinstance(item, str)
            else _same_descriptions(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_same_descriptions(item) for item in value]
    return value


def _json_or_raw(body: bytes | str | None) -> Any:
    try:
        return _same_descriptions(json.loads(body or b""))
    except ValueError:
        return body


def _match_body(recorded: Any, replayed: Any) -> None:
    """vcrpy body matcher: the same JSON, tool descriptions' indentation aside."""
    assert _json_or_raw(recorded.body) == _json_or_raw(replayed.body)


def pytest_recording_configure(config: pytest.Config, vcr: Any) -> None:
    """Register the body matcher that `vcr_config` names."""
    vcr.register_matcher("devic_body", _match_body)


@pytest.fixture(scope="session")
def vcr_config() -> dict[str, Any]:
    """langchain-tests' base config, matched on method, path and JSON body.

    The emulator listens on a random port, so host and port are not matched.
    """
    config = base_vcr_config()
    # Replay only on CI: a missing or outdated cassette fails instead of
    # silently re-recording. Locally, a deleted cassette is recorded anew.
    config["record_mode"] = "none" if os.environ.get("CI") else "once"
    config.pop("cassette_library_dir", None)  # ours comes from vcr_cassette_dir
    config["filter_headers"] = _REDACTED_HEADERS
    config["match_on"] = ("method", "path", "devic_body")
    # A run is followed by reading the same URL until the status changes: each
    # recorded answer must be played once, in order (with repeats allowed, the
    # first answer would be replayed forever).
    config["allow_playback_repeats"] = False
    config["before_record_request"] = _scrub_request
    config["before_record_response"] = _scrub_response
    config["decode_compressed_response"] = True
    return config


@pytest.fixture(scope="module")
def vcr_cassette_dir(request: pytest.FixtureRequest) -> str:
    """One folder at the repository root, one sub-folder per test module."""
    return str(CASSETTES / request.module.__name__.rsplit(".", 1)[-1])
