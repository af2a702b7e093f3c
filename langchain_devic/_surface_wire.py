"""Devic's surface beyond a turn, on the wire: assistants, chat search, feedback.

Pure functions, as `_wire`: the routes' URLs, the search's body, and the
answers read tolerantly (bare or enveloped) into plain dicts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

from langchain_devic._checks import excerpt, validate_assistant_id
from langchain_devic._wire import _load_json, run_url, unwrap_envelope
from langchain_devic.errors import DevicProtocolError

#: The fields of an assistant as `list_assistants` gives it, and Devic's names.
ASSISTANT_FIELDS = {
    "assistant_id": "identifier",
    "name": "name",
    "description": "description",
    "state": "state",
    "model": "model",
    "provider": "provider",
}


# --------------------------------------------------------------------------- URLs


def assistants_url(base_url: str) -> str:
    """The account's assistant list."""
    return f"{base_url}/assistants"


def assistant_url(base_url: str, assistant_id: str) -> str:
    """One assistant, its id percent-encoded as one segment."""
    validate_assistant_id(assistant_id)
    return f"{base_url}/assistants/{quote(assistant_id, safe='')}"


def search_url(base_url: str) -> str:
    """Devic's chat search (`POST`, filters in the body)."""
    return f"{base_url}/assistants/chats"


def feedback_url(base_url: str, assistant_id: str, chat_uuid: str) -> str:
    """A chat's feedback (`POST` one entry, `GET` the list)."""
    return run_url(base_url, assistant_id, chat_uuid, "feedback")


# ------------------------------------------------------------------------ requests


def epoch_ms(moment: datetime) -> int:
    """A `datetime` as Devic's epoch milliseconds (a naive one is local time)."""
    return int(moment.timestamp() * 1000)


def search_body(
    assistant_id: str | None,
    *,
    tags: Sequence[str] | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> dict[str, Any]:
    """The filters of a chat search; an unset filter is not sent."""
    body: dict[str, Any] = {}
    if assistant_id is not None:
        body["assistantSpecializationIdentifier"] = assistant_id
    if tags is not None:
        if isinstance(tags, str) or not all(isinstance(t, str) for t in tags):
            msg = f"tags must be a list of strings, got {tags!r}."
            raise ValueError(msg)
        body["tags"] = list(tags)
    for name, moment in (
        ("createdAfter", created_after),
        ("createdBefore", created_before),
    ):
        if moment is None:
            continue
        if not isinstance(moment, datetime):
            msg = f"created_after / created_before must be datetimes, got {moment!r}."
            raise TypeError(msg)
        body[name] = epoch_ms(moment)
    return body


def feedback_body(
    message_id: str,
    *,
    positive: bool | None = None,
    comment: str | None = None,
    data: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One feedback entry to post: the message, and what is said of it."""
    if not isinstance(message_id, str) or not message_id.strip():
        msg = "message_id must be a non-empty string (a message's `id` from load_chat)."
        raise ValueError(msg)
    body: dict[str, Any] = {"messageId": message_id}
    if positive is not None:
        body["feedback"] = bool(positive)
    if comment is not None:
        body["feedbackComment"] = comment
    if data is not None:
        body["feedbackData"] = dict(data)
    return body


# ------------------------------------------------------------------------- answers


def _payload(body: bytes, secret: str | None) -> Any:
    payload, _ = unwrap_envelope(_load_json(body, secret))
    return payload


def _refuse(what: str, body: bytes, secret: str | None) -> DevicProtocolError:
    return DevicProtocolError(
        f"Devic's {what}: {excerpt(body, secret)!r}", body=excerpt(body, secret)
    )


def assistant_of(item: Mapping[str, Any]) -> dict[str, Any]:
    """An `AssistantSpecialization` as `{"assistant_id", "name", ...}` (or None)."""
    out: dict[str, Any] = {}
    for name, wire in ASSISTANT_FIELDS.items():
        value = item.get(wire)
        if name == "assistant_id" and value is None:
            value = item.get("assistantId", item.get("id"))
        out[name] = value if isinstance(value, str) else None
    return out


def _object(body: bytes, secret: str | None, what: str) -> Mapping[str, Any]:
    """The answer's (enveloped) object, or a `DevicProtocolError` naming `what`."""
    payload = _payload(body, secret)
    if not isinstance(payload, Mapping):
        raise _refuse(f"{what} is not an object", body, secret)
    return payload


def _listed(
    body: bytes, secret: str | None, what: str, keys: tuple[str, str]
) -> list[Mapping[str, Any]]:
    """The answer's objects: a bare list, or the list under one of `keys`."""
    payload = _payload(body, secret)
    if isinstance(payload, Mapping):
        payload = payload.get(keys[0], payload.get(keys[1]))
    if not isinstance(payload, list):
        raise _refuse(f"{what} is not a list", body, secret)
    return [item for item in payload if isinstance(item, Mapping)]


def parse_assistant_list(body: bytes, *, secret: str | None) -> list[dict[str, Any]]:
    """The account's assistants: a bare list, or `{"assistants"}`, enveloped."""
    listed = _listed(body, secret, "assistant list", ("assistants", "data"))
    assistants = [assistant_of(item) for item in listed]
    return [a for a in assistants if a["assistant_id"]]


def parse_assistant(body: bytes, *, secret: str | None) -> dict[str, Any]:
    """One assistant (`GET …/assistants/{id}`)."""
    return assistant_of(_object(body, secret, "assistant"))


def parse_feedback_entry(body: bytes, *, secret: str | None) -> dict[str, Any]:
    """The feedback entry Devic kept, as it sent it."""
    return dict(_object(body, secret, "feedback entry"))


def parse_feedback_list(body: bytes, *, secret: str | None) -> list[dict[str, Any]]:
    """A chat's feedback entries: a bare list, or `{"feedback"}`, enveloped."""
    listed = _listed(body, secret, "feedback list", ("feedback", "entries"))
    return [dict(item) for item in listed]
