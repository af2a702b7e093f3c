"""What may go on the wire, and what never leaves: URLs, ids, the key (pure).

A base URL is HTTPS (plain HTTP only to loopback) and carries no credentials;
an id that goes into a URL path is one safe segment; the key is checked before
it travels and removed from any text meant for people.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

import httpx

from langchain_devic.errors import DevicProtocolError

DEFAULT_BASE_URL = "https://api.devic.ai/v1"
#: Where Devic serves everything but the seed's one call (runs, chats,
#: assistants, search, feedback) when no base URL is set.
PLATFORM_BASE_URL = "https://api.devic.ai/api/v1"
#: How much of an answer's body an error keeps, in characters.
BODY_EXCERPT_CHARS = 300
_BEARER = re.compile(r"(?i)(bearer\s+)[^\s\"',;]+")
REDACTED = "[REDACTED]"
#: The longest identifier that goes into a URL path.
MAX_SEGMENT = 256
_UNSAFE_SEGMENT = re.compile(r"[/?#%\\\x00-\x1f\x7f-\x9f]")
#: An id that is certainly one safe segment (the common case, one regex call).
_PLAIN_SEGMENT = re.compile(rf"[A-Za-z0-9_\-]{{1,{MAX_SEGMENT}}}")


def is_loopback_host(host: str) -> bool:
    """Whether `host` is a loopback address: 127.0.0.0/8, `::1` or `localhost`."""
    host = host.strip().strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def refuse_credentials(base_url: Any) -> None:
    """Refuse a base URL that carries `user:password@`, without repeating it.

    Run before pydantic sees the value, whose validation errors would show it.
    """
    if isinstance(base_url, str) and "@" in base_url:
        try:
            userinfo = httpx.URL(base_url.strip()).userinfo
        except httpx.InvalidURL:
            return  # validate_base_url refuses it without the credentials
        if userinfo:
            msg = (
                "base_url must not carry a user name or password (user:password@"
                "host): Devic takes the API key as a bearer token; set "
                "DEVIC_API_KEY instead."
            )
            raise ValueError(msg)


def validate_base_url(base_url: str) -> str:
    """Return `base_url` without a trailing slash, or raise if it is unsafe.

    Devic refuses plain HTTP and the token must not cross the network in clear,
    so `http://` is accepted only for loopback hosts (the emulator).
    """
    try:
        url = httpx.URL(base_url.strip())
    except httpx.InvalidURL:
        msg = "base_url is not a valid URL; use e.g. 'https://api.devic.ai/v1'."
        raise ValueError(msg) from None
    refuse_credentials(base_url)
    scheme = url.scheme.lower()
    if scheme not in {"https", "http"} or not url.host:
        msg = (
            f"base_url must be an absolute https:// URL such as {DEFAULT_BASE_URL!r}; "
            f"got {base_url!r}."
        )
        raise ValueError(msg)
    if scheme == "http" and not is_loopback_host(url.host):
        msg = (
            f"base_url {base_url!r} uses plain http:// to a non-loopback host; "
            "Devic only accepts HTTPS and the API key must not travel in clear. "
            "Use https://, or http://127.0.0.1 for the local emulator."
        )
        raise ValueError(msg)
    return str(url).rstrip("/")


def platform_base_url(base_url: str) -> str:
    """The root of every route but the one call's, for a (validated) base URL.

    The default base (`DEFAULT_BASE_URL`: no `base_url`, no `DEVIC_BASE_URL`)
    is the seed's one call only; Devic serves the rest under
    `PLATFORM_BASE_URL`. Any other base URL is used as given for every route.
    """
    return PLATFORM_BASE_URL if base_url == DEFAULT_BASE_URL else base_url


def is_plain_loopback(base_url: str) -> bool:
    """Whether `base_url` is plain `http://` to a loopback host (no proxy for it)."""
    url = httpx.URL(base_url)
    return url.scheme.lower() == "http" and is_loopback_host(url.host)


def segment_problem(value: str) -> str | None:
    """Why `value` cannot be one safe URL path segment, or `None` if it can.

    Not `.` or `..`, no slash, `?`, `#`, `%` or backslash, no control character, at most
    `MAX_SEGMENT` characters, not blank.
    """
    if _PLAIN_SEGMENT.fullmatch(value):
        return None
    if not value.strip():
        return "it is blank"
    if value.strip() in {".", ".."}:
        return "it is a dot segment"
    if len(value) > MAX_SEGMENT:
        return f"it is longer than {MAX_SEGMENT} characters"
    if _UNSAFE_SEGMENT.search(value):
        return "it holds a character a path segment may not (/ ? # % \\ or a control)"
    return None


def validate_assistant_id(assistant_id: str) -> str:
    """Return the id if it can name exactly one path segment, else raise."""
    if not assistant_id or segment_problem(assistant_id):
        msg = (
            f"assistant_id {assistant_id!r} is not a valid Devic assistant id; copy "
            "the id from the assistant's 'Get Code' dialog or set DEVIC_ASSISTANT_ID."
        )
        raise ValueError(msg)
    return assistant_id


def validate_chat_uuid(chat_uuid: str) -> str:
    """Return a caller's chat id if it is one safe path segment, else `ValueError`."""
    problem = segment_problem(chat_uuid)
    if problem:
        msg = (
            f"chat_uuid {chat_uuid!r} is not a Devic chat id ({problem}); pass the "
            "chat_uuid from a reply's response_metadata."
        )
        raise ValueError(msg)
    return chat_uuid


def server_chat_id(chat_uuid: str | None, secret: str | None) -> str | None:
    """A chat id chosen by the server, checked before it goes into any path.

    An id that is not one safe path segment (`..`, `a/b`…), or that equals the
    API key, is a `DevicProtocolError` (the key never goes into a URL or a log).
    """
    if chat_uuid is None:
        return None
    if secret and secret in chat_uuid:
        msg = "Devic answered with a chat id that holds the API key; refused."
        raise DevicProtocolError(msg)
    problem = segment_problem(chat_uuid)
    if problem:
        shown = redact(chat_uuid[:80], secret)
        msg = f"Devic answered with an unusable chat id {shown!r} ({problem})."
        raise DevicProtocolError(msg)
    return chat_uuid


def validate_api_key(api_key: str) -> str:
    """Return the key if it can travel in an `Authorization` header, else raise.

    A blank key, or one with surrounding whitespace (a pasted newline), would
    only fail later, at send time, with a misleading transport error. The
    message never repeats the key.
    """
    if not api_key.strip():
        msg = (
            "The Devic API key is empty: set DEVIC_API_KEY (or pass api_key=) to "
            "the token from the assistant's 'Get Code' dialog."
        )
        raise ValueError(msg)
    if api_key != api_key.strip():
        msg = (
            "The Devic API key has leading or trailing whitespace (a pasted newline?):"
            " remove it from DEVIC_API_KEY or api_key=."
        )
        raise ValueError(msg)
    if not (api_key.isascii() and api_key.isprintable()):
        msg = (
            "The Devic API key holds characters an HTTP header cannot carry "
            "(control or non-ASCII characters): check DEVIC_API_KEY."
        )
        raise ValueError(msg)
    return api_key


# ---------------------------------------------------------------------- redaction


def redact(text: str, secret: str | None) -> str:
    """Remove the API key (and any bearer token) from text meant for people."""
    if secret:
        text = text.replace(secret, REDACTED)
    return _BEARER.sub(rf"\g<1>{REDACTED}", text)


def excerpt(body: bytes, secret: str | None) -> str:
    """The first characters of a body, decoded leniently and redacted."""
    # Decode enough bytes that a token straddling the cut is still whole when
    # it is redacted; truncate only afterwards.
    window = BODY_EXCERPT_CHARS * 4 + (len(secret.encode()) if secret else 0)
    text = body[:window].decode("utf-8", errors="replace")
    text = redact(text, secret)
    if len(text) > BODY_EXCERPT_CHARS:
        text = text[:BODY_EXCERPT_CHARS] + "…"
    return text
