"""Devic's error answers as typed errors, and how long Devic asks us to wait (pure)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from langchain_devic._checks import excerpt, redact
from langchain_devic.errors import DevicAPIError, error_class_for_status


def _finite_wait(value: float) -> float | None:
    """A usable wait: finite and not negative (`nan`/`inf` are ignored)."""
    return max(value, 0.0) if math.isfinite(value) else None


def _number(raw: Any) -> float | None:
    if isinstance(raw, bool):
        return None
    try:
        return _finite_wait(float(raw))
    except (TypeError, ValueError, OverflowError):
        return None


def parse_retry_after(
    headers: Mapping[str, str], body_value: Any = None, *, now: datetime | None = None
) -> float | None:
    """Seconds to wait: `retry-after-ms`, then `Retry-After`, then body `retryAfter`.

    `Retry-After` may be seconds or an HTTP date; an unusable value (not a
    number, `nan`, `inf`) is ignored so the caller falls back to its backoff.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    if "retry-after-ms" in lowered:
        millis = _number(lowered["retry-after-ms"])
        if millis is not None:
            return millis / 1000.0
    if "retry-after" in lowered:
        raw = lowered["retry-after"].strip()
        seconds = _number(raw)
        if seconds is not None:
            return seconds
        try:
            when = parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            when = None
        if when is not None:
            if when.tzinfo is None:
                when = when.replace(tzinfo=timezone.utc)
            now = now or datetime.now(timezone.utc)
            return max((when - now).total_seconds(), 0.0)
    if isinstance(body_value, (int, float)):
        return _number(body_value)
    return None


def _error_fields(payload: Any) -> tuple[str | None, str | None, Any]:
    """(message, code, retryAfter) from any of Devic's error bodies."""
    if not isinstance(payload, Mapping):
        return None, None, None
    error = payload.get("error")
    message = payload.get("message")
    code = payload.get("code")
    if isinstance(error, Mapping):
        message = error.get("message", message)
        code = error.get("code", code)
    elif isinstance(error, str):
        code = code or error
    if isinstance(message, list) and all(isinstance(m, str) for m in message):
        message = "; ".join(message)  # NestJS validation errors: a list of texts
    return (
        message if isinstance(message, str) else None,
        str(code) if code is not None else None,
        payload.get("retryAfter"),
    )


def api_error(
    status_code: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    secret: str | None,
    retry_after: float | None = None,
) -> DevicAPIError:
    """The typed exception for an HTTP error answer (token redacted throughout)."""
    try:
        payload: Any = json.loads(body) if body else None
    except (ValueError, RecursionError):
        payload = None
    message, code, body_retry_after = _error_fields(payload)
    if message is None:
        message = excerpt(body, secret) or httpx.codes.get_reason_phrase(status_code)
    message = redact(message, secret)
    code = redact(code, secret) if code else None
    if retry_after is None:
        retry_after = parse_retry_after(headers, body_retry_after)
    cls = error_class_for_status(status_code)
    return cls(
        message,
        status_code=status_code,
        code=code,
        body=excerpt(body, secret),
        retry_after=retry_after,
    )
