"""Numbers from the server: a token count that is not a count is no usage.

A negative, fractional, string or boolean `tokens_used` in a seed answer is
treated as absent: `usage_metadata` is `None`, and a WARNING on the
`langchain_devic` logger says the figure was ignored.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from tests.hostile.conftest import (
    CHAT,
    MESSAGES,
    HostileServer,
    answer,
    call,
    make_model,
)

BAD_COUNTS: list[Any] = [-5, 1.5, "12", True]


@pytest.mark.parametrize(
    "tokens", BAD_COUNTS, ids=["negative", "fraction", "string", "bool"]
)
def test_a_token_count_that_is_not_a_count_is_ignored_with_a_warning(
    hostile_server: HostileServer,
    way: str,
    tokens: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    reply = {"chatUuid": CHAT, "message": "hi there", "tokens_used": tokens}
    hostile_server.on("POST", MESSAGES, answer(200, reply))
    model = make_model(hostile_server, way, run_mode="sync")
    caplog.set_level(logging.WARNING, logger="langchain_devic")
    message = call(way, model, "invoke", "hi")
    assert message.content == "hi there"
    assert message.usage_metadata is None
    warnings = [
        r
        for r in caplog.records
        if r.name.startswith("langchain_devic") and r.levelno == logging.WARNING
    ]
    assert warnings, "no WARNING on the langchain_devic logger"
