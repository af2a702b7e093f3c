"""Where a request goes, and who may send it: the emulator's routing and its checks.

Pure functions of a request's path, headers and body: the route a path names
(with its decoded assistant and chat ids), the bearer check, the body checks of
a send and of a tool response, the query's paging and flags, and the record's
header and JSON parsing. The core calls them; none holds state.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs, unquote

from langchain_devic.testing._render import Route

#: The path prefix every emulator also serves, whatever its `base_path`.
PLATFORM_PREFIX = "/api/v1"
#: Headers never kept in the record, so a test log cannot hold a credential.
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization"})
#: The routes that name a chat in their path.
_CHAT_ROUTES: dict[str, Route] = {
    "realtime": "realtime",
    "stream": "stream",
    "stop": "stop",
    "tool-response": "tool-response",
    "feedback": "feedback",
}


def route_of(
    prefixes: Iterable[str], path: str, method: str = "GET"
) -> tuple[Route, str | None, str | None] | None:
    """The route of a path, its decoded assistant id and chat id, else `None`.

    `POST …/assistants/chats` is the chat search; any other method on that
    path reads (or changes) the assistant called `chats`.

    Args:
        prefixes: The path prefixes served, each ending in `/assistants`.
        path: The raw (percent-encoded) path, without the query string.
        method: The request's method (upper case).
    """
    for prefix in prefixes:
        agents = agent_route_of(prefix.removesuffix("/assistants") + "/agents", path)
        if agents is not None:
            return agents
        if path == prefix:
            return "assistants", None, None
        if not path.startswith(prefix + "/"):
            continue
        parts = [unquote(part) for part in path[len(prefix) + 1 :].split("/")]
        if not all(parts):
            continue
        match parts:
            case ["chats"] if method == "POST":
                return "search", None, None
            case [assistant_id]:
                return "assistant", assistant_id, None
            case [assistant_id, "messages"]:
                return "messages", assistant_id, None
            case [assistant_id, "chats"]:
                return "chats", assistant_id, None
            case [assistant_id, "chats", chat_id]:
                return "chat", assistant_id, chat_id
            case [assistant_id, "chats", chat_id, tail] if tail in _CHAT_ROUTES:
                return _CHAT_ROUTES[tail], assistant_id, chat_id
    return None


#: The actions on an agent thread (`…/agents/threads/{thread}/<action>`).
AGENT_THREAD_ACTIONS = frozenset(
    {"approval", "pause", "resume", "complete", "evaluate", "evaluation", "feedback"}
)


def agent_route_of(
    prefix: str, path: str
) -> tuple[Route, str | None, str | None] | None:
    """The agent route of a path under `prefix` (`…/agents`), its agent and thread."""
    if path == prefix:
        return "agents", None, None
    if not path.startswith(prefix + "/"):
        return None
    parts = [unquote(part) for part in path[len(prefix) + 1 :].split("/")]
    if not all(parts):
        return None
    match parts:
        case ["threads", thread_id]:
            return "agent-thread", None, thread_id
        case ["threads", thread_id, action] if action in AGENT_THREAD_ACTIONS:
            return "agent-thread-action", None, thread_id
        case ["agents", agent_id, "costs", ("daily" | "monthly" | "summary")]:
            return "agent-costs", agent_id, None
        case [agent_id]:
            return "agent", agent_id, None
        case [agent_id, "threads"]:
            return "agent-threads", agent_id, None
    return None


def authorized(headers: list[tuple[str, str]], api_key: bytes) -> bool:
    """Whether exactly one `Authorization: Bearer <api_key>` header was sent."""
    values = [v for k, v in headers if k.lower() == "authorization"]
    if len(values) != 1:
        return False
    scheme, _, token = values[0].strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(token.strip().encode("utf-8"), api_key)


#: What a tool-response body must look like, for its refusals.
_RESPONSES_SHAPE = (
    'the body must be {"responses": [{"tool_call_id": str, "role": "tool", '
    '"content": <any JSON>, "tools"?: [...]}, ...]} with at least one response'
)


def responses_problem(payload: Any, pending: Sequence[str]) -> str | None:
    """What is wrong with a tool-response body (given the pending ids), or `None`."""
    responses = payload.get("responses") if isinstance(payload, dict) else None
    if (
        not isinstance(responses, list)
        or not responses
        or not all(isinstance(r, dict) for r in responses)
    ):
        return _RESPONSES_SHAPE
    seen: set[str] = set()
    for index, response in enumerate(responses):
        call_id = response.get("tool_call_id")
        where = f"responses[{index}]"
        if not isinstance(call_id, str):
            return f"{where}: 'tool_call_id' is required and must be a string"
        if response.get("role") != "tool":
            return f"{where}: 'role' must be 'tool', got {response.get('role')!r}"
        if "content" not in response:
            return f"{where}: 'content' is required (any JSON)"
        if call_id in seen:
            return f"{where}: tool call '{call_id}' is answered twice"
        if call_id not in pending:
            waiting = ", ".join(f"'{p}'" for p in pending)
            return f"{where}: tool call '{call_id}' is not pending (pending: {waiting})"
        seen.add(call_id)
    tools = responses[0].get("tools")
    if tools is not None and (
        not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools)
    ):
        return "responses[0]: 'tools' must be a list of objects"
    return None


def sent_chat(payload: Mapping[str, Any]) -> str | None:
    """The conversation id a send names: `chatUuid`, else `chatUid` (strings only)."""
    for name in ("chatUuid", "chatUid"):
        value = payload.get(name)
        if isinstance(value, str):
            return value
    return None


def flag(query: str, name: str) -> bool:
    """Whether a query parameter is set to `true` or `1`."""
    values = parse_qs(query).get(name, [])
    return any(value.lower() in {"true", "1"} for value in values)


def paging(query: Mapping[str, list[str]]) -> tuple[int, int | None] | str:
    """`(offset, limit)` of a list request (no limit = every chat), or the problem."""
    numbers: dict[str, int | None] = {"offset": 0, "limit": None}
    for name in numbers:
        values = query.get(name)
        if not values:
            continue
        try:
            value = int(values[-1])
        except ValueError:
            return f"'{name}' must be an integer"
        if value < 0:
            return f"'{name}' must be >= 0"
        numbers[name] = value
    offset = numbers["offset"]
    assert offset is not None  # noqa: S101 - defaulted above
    return offset, numbers["limit"]


def body_problem(payload: Any, headers: list[tuple[str, str]]) -> str | None:
    """What is wrong with a send's body, or `None`."""
    content_type = next(
        (v for k, v in headers if k.lower() == "content-type"), ""
    ).lower()
    if "json" not in content_type:
        return "Content-Type must be application/json"
    message = payload.get("message") if isinstance(payload, dict) else None
    if not isinstance(payload, dict) or not isinstance(message, str) or not message:
        return "'message' is required and must be a non-empty string"
    for name in ("chatUuid", "chatUid"):
        chat = payload.get(name)
        if chat is not None and not isinstance(chat, str):
            return f"'{name}' must be a string or null"
    both = payload.get("chatUuid"), payload.get("chatUid")
    if None not in both and both[0] != both[1]:
        return "'chatUuid' and 'chatUid' name different chats"
    for name in ("context", "metadata"):
        value = payload.get(name)
        if value is not None and not isinstance(value, dict):
            return f"'{name}' must be an object"
    tools = payload.get("tools")
    if tools is not None and (
        not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools)
    ):
        return "'tools' must be a list of objects"
    return options_problem(payload)


#: The send's string options (`ProcessMessageDto`).
STRING_OPTIONS = ("tenantId", "subtenantId", "userName", "provider", "model")


def options_problem(payload: Mapping[str, Any]) -> str | None:
    """What is wrong with a send's options (tenants, tags, files, ...), or `None`."""
    for name in STRING_OPTIONS:
        value = payload.get(name)
        if value is not None and not isinstance(value, str):
            return f"'{name}' must be a string"
    for name in ("tags", "enabledTools"):
        value = payload.get(name)
        if value is not None and not _strings(value):
            return f"'{name}' must be a list of strings"
    files = payload.get("files")
    if files is not None and (
        not isinstance(files, list)
        or not all(
            isinstance(f, dict) and isinstance(f.get("name"), str) for f in files
        )
    ):
        return "'files' must be a list of {name, donwloadUrl, fileType} objects"
    previous = payload.get("previousConversation")
    if previous is not None and (
        not isinstance(previous, list)
        or not all(
            isinstance(p, dict)
            and isinstance(p.get("message"), str)
            and p.get("role") in {"user", "assistant"}
            for p in previous
        )
    ):
        return "'previousConversation' must be a list of {message, role} objects"
    skip = payload.get("skipSummarization")
    if skip is not None and not isinstance(skip, bool):
        return "'skipSummarization' must be a boolean"
    return None


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def normalize_base_path(base_path: str) -> str:
    path = base_path.strip().rstrip("/")
    if path and not path.startswith("/"):
        path = "/" + path
    return path


def public_headers(headers: list[tuple[str, str]]) -> dict[str, str]:
    """Headers with lower-cased names, duplicates joined, credentials dropped."""
    kept: dict[str, str] = {}
    for name, value in headers:
        key = name.lower()
        if key in SECRET_HEADERS:
            continue
        kept[key] = f"{kept[key]}, {value}" if key in kept else value
    return kept


def parse_json(body: bytes) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None
