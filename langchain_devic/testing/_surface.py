"""Devic's surface beyond a chat's run: assistants, the chat search, feedback.

The routes Devic's CLI calls around the runs themselves, on the same state:

- `GET {prefix}/assistants` lists the known assistants (`AssistantSpecialization`);
  `POST` creates one (201), `GET/PATCH/DELETE {prefix}/assistants/{id}` reads,
  updates or deletes it (a deleted assistant's chats stay readable through
  the search);
- `POST {prefix}/assistants/chats` searches every assistant's chats by
  `assistantSpecializationIdentifier`, `tags` (a chat matches when it has any
  of them), `createdAfter` / `createdBefore` (epoch ms, inclusive),
  `tenantId` and `subtenantId`, paged by `offset` / `limit` and
  `omitContent` in the query;
- `POST/GET {prefix}/assistants/{id}/chats/{chat}/feedback` keeps one
  feedback entry per message (`{messageId, feedback?, feedbackComment?,
  feedbackData?}`; a second one for the same message replaces it).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

from langchain_devic.testing._chats import Chat
from langchain_devic.testing._records import RecordedRequest
from langchain_devic.testing._render import Answer, now
from langchain_devic.testing._routes import flag, paging
from langchain_devic.testing._state import State, profile_of

__all__ = ["ASSISTANT_STATES", "Surface"]

#: The states an assistant may be in.
ASSISTANT_STATES = ("active", "inactive", "coming_soon")
#: The search's filters and the JSON type each must have.
_FILTERS: dict[str, type | tuple[type, ...]] = {
    "assistantSpecializationIdentifier": str,
    "tenantId": str,
    "subtenantId": str,
    "tags": list,
    "createdAfter": (int, float),
    "createdBefore": (int, float),
}


class Surface(State):
    """The handlers of the assistant, search and feedback routes."""

    # ------------------------------------------------------------ assistants

    def _answer_assistants(self, record: RecordedRequest) -> Answer:
        """`GET {prefix}/assistants` (the list) or `POST` (create one)."""
        if record.method == "POST":
            return self._create_assistant(record)
        project = parse_qs(record.query).get("projectId", [None])[-1]
        with self._lock:
            profiles = dict(self._profiles)
            if self.accept_any_assistant:
                for chat in self._chats.values():
                    if chat.assistant_id not in profiles:
                        profiles[chat.assistant_id] = profile_of(chat.assistant_id)
        listed = [
            p
            for p in profiles.values()
            if project is None or p.get("projectId") == project
        ]
        return self._ok(200, listed)

    def _answer_assistant(self, record: RecordedRequest) -> Answer:
        """`GET`, `PATCH` or `DELETE {prefix}/assistants/{id}`."""
        assistant_id = record.assistant_id
        assert assistant_id is not None  # noqa: S101 - the route names one
        with self._lock:
            profile = self._profiles.get(assistant_id)
            if profile is None and self.accept_any_assistant:
                profile = profile_of(assistant_id)
            if profile is None:
                return self._assistant_not_found(assistant_id)
            if record.method == "GET":
                return self._ok(200, profile)
            if record.method == "DELETE":
                if assistant_id not in self._profiles:
                    return self._assistant_not_found(assistant_id)
                del self._profiles[assistant_id]
                self._assistants.pop(assistant_id, None)
                return self._ok(200, {"identifier": assistant_id, "deleted": True})
            problem = _profile_problem(record.json, creating=False)
            if problem is not None:
                return self._refusal(400, problem, "BAD_REQUEST")
            updated = {**profile, **record.json, "identifier": assistant_id}
            self._profiles[assistant_id] = updated
            self._assistants.setdefault(assistant_id, None)
        return self._ok(200, updated)

    def _create_assistant(self, record: RecordedRequest) -> Answer:
        problem = _profile_problem(record.json, creating=True)
        if problem is not None:
            return self._refusal(400, problem, "BAD_REQUEST")
        fields: dict[str, Any] = record.json
        with self._lock:
            identifier = fields.get("identifier")
            if not isinstance(identifier, str) or not identifier:
                identifier = self._new_identifier(str(fields["name"]))
            elif identifier in self._profiles:
                message = f"Assistant '{identifier}' already exists"
                return self._refusal(409, message, "CONFLICT")
            self._assistants[identifier] = None
            self._profiles[identifier] = profile_of(identifier, fields)
            created = self._profiles[identifier]
        return self._ok(201, created)

    def _new_identifier(self, name: str) -> str:
        """A free identifier from an assistant's name (call with the lock held)."""
        slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "assistant"
        identifier, number = slug, 1
        while identifier in self._profiles:
            number += 1
            identifier = f"{slug}-{number}"
        return identifier

    # ---------------------------------------------------------------- search

    def _answer_search(self, record: RecordedRequest) -> Answer:
        """`POST {prefix}/assistants/chats`: every assistant's chats, filtered."""
        filters = record.json if record.json is not None else {}
        problem = _filters_problem(filters)
        if problem is not None:
            return self._refusal(400, problem, "BAD_REQUEST")
        pages = paging(parse_qs(record.query))
        if isinstance(pages, str):
            return self._refusal(400, pages, "BAD_REQUEST")
        offset, limit = pages
        content = not flag(record.query, "omitContent")
        return self._chats_page(filters, offset, limit, content=content)

    # -------------------------------------------------------------- feedback

    def _answer_feedback(self, record: RecordedRequest) -> Answer:
        """`POST` (submit) or `GET` (list) a chat's feedback."""
        with self._lock:
            chat = self._find_chat(record)
            if isinstance(chat, Answer):
                return chat
            if record.method == "GET":
                return self._ok(200, list(chat.feedback.values()))
            problem = _feedback_problem(record.json, chat)
            if problem is not None:
                return self._refusal(400, problem, "BAD_REQUEST")
            entry = _feedback_entry(chat, record.json)
        return self._ok(201, entry)


# --------------------------------------------------------------------- helpers


def _filters_problem(filters: Any) -> str | None:
    if not isinstance(filters, dict):
        return "the body must be a JSON object of filters"
    for name, kind in _FILTERS.items():
        value = filters.get(name)
        if value is None:
            continue
        if not isinstance(value, kind) or isinstance(value, bool):
            return f"'{name}' has the wrong type"
        if isinstance(value, list) and not all(isinstance(t, str) for t in value):
            return "'tags' must be a list of strings"
    return None


def _profile_problem(fields: Any, *, creating: bool) -> str | None:
    if not isinstance(fields, dict):
        return "the body must be a JSON object"
    name = fields.get("name")
    if (creating or "name" in fields) and (not isinstance(name, str) or not name):
        return "'name' is required and must be a non-empty string"
    for key in ("description", "model", "provider", "identifier"):
        if fields.get(key) is not None and not isinstance(fields[key], str):
            return f"'{key}' must be a string"
    state = fields.get("state")
    if state is not None and state not in ASSISTANT_STATES:
        return f"'state' must be one of {', '.join(ASSISTANT_STATES)}"
    tools = fields.get("enabledTools")
    if tools is not None and (
        not isinstance(tools, list) or not all(isinstance(t, str) for t in tools)
    ):
        return "'enabledTools' must be a list of strings or null"
    return None


def _feedback_problem(fields: Any, chat: Chat) -> str | None:
    if not isinstance(fields, dict):
        return "the body must be a JSON object"
    message_id = fields.get("messageId")
    if not isinstance(message_id, str) or not message_id:
        return "'messageId' is required and must be a non-empty string"
    if all(message.uid != message_id for message in chat.messages):
        return f"'messageId' {message_id!r} is no message of chat '{chat.chat_id}'"
    if fields.get("feedback") is not None and not isinstance(fields["feedback"], bool):
        return "'feedback' must be a boolean"
    comment = fields.get("feedbackComment")
    if comment is not None and not isinstance(comment, str):
        return "'feedbackComment' must be a string"
    data = fields.get("feedbackData")
    if data is not None and not isinstance(data, dict):
        return "'feedbackData' must be an object"
    return None


def _feedback_entry(chat: Chat, fields: Mapping[str, Any]) -> dict[str, Any]:
    """Store (or replace) the feedback on one message (lock held); the entry."""
    message_id = str(fields["messageId"])
    stamp = now()
    earlier = chat.feedback.get(message_id)
    entry: dict[str, Any] = {
        "_id": uuid.uuid5(uuid.NAMESPACE_URL, f"{chat.chat_id}/{message_id}").hex[:24],
        "requestId": message_id,
        "chatUID": chat.chat_id,
        "creationTimestamp": earlier["creationTimestamp"] if earlier else stamp,
        "lastEditTimestamp": stamp,
    }
    for name in ("feedback", "feedbackComment", "feedbackData"):
        if fields.get(name) is not None:
            entry[name] = fields[name]
    chat.feedback[message_id] = entry
    return entry
