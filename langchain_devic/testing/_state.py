"""The emulator's state, its configuration and inspection, and shared helpers.

Everything shared sits behind one lock (with one condition on it, notified on
every change) that is never held across a wait or a reply function, so the
state is safe from server threads, asyncio tasks and run threads.
"""

from __future__ import annotations

import random
import secrets
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any

from langchain_devic.testing._chats import Chat, Run, now_ms
from langchain_devic.testing._exchanges import Slot
from langchain_devic.testing._faults import Fault
from langchain_devic.testing._records import (
    DEFAULT_API_KEY,
    Conversation,
    RecordedRequest,
    ReplyFn,
    plain,
)
from langchain_devic.testing._render import (
    DIALECTS,
    Answer,
    Dialect,
    chats_body,
    enveloped,
    error_answer,
    json_answer,
)
from langchain_devic.testing._routes import PLATFORM_PREFIX, normalize_base_path
from langchain_devic.testing._script import Write

__all__ = [
    "REALTIME_TTL",
    "SSE_KEEPALIVE",
    "WRITE_INTERVAL",
    "WRITE_PIECES",
    "State",
    "chat_matches",
    "profile_of",
]

#: How much of the user's message the default reply repeats, in characters.
ECHO_CHARS = 200
#: The default pieces and interval (seconds) of a run's `Write` steps.
WRITE_PIECES = 4
WRITE_INTERVAL = 0.02
#: Seconds of quiet before an SSE stream sends a keep-alive comment.
SSE_KEEPALIVE = 15.0
#: Seconds a chat's realtime view lives after its last update (Devic: one hour).
REALTIME_TTL = 3600.0
#: The model and provider an assistant reports unless told otherwise.
DEFAULT_MODEL = "emulator-model"
DEFAULT_PROVIDER = "emulator"


def profile_of(
    assistant_id: str, fields: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """An assistant's `AssistantSpecialization`: the defaults, then `fields`."""
    profile: dict[str, Any] = {
        "identifier": assistant_id,
        "name": assistant_id,
        "description": f"Emulated assistant {assistant_id}",
        "state": "active",
        "model": DEFAULT_MODEL,
        "provider": DEFAULT_PROVIDER,
        "isCustom": True,
        "enabledTools": None,
        "availableToolsGroups": [],
        "creationTimestampMs": now_ms(),
    }
    profile.update(fields or {})
    profile["identifier"] = assistant_id
    return profile


class State:
    """The emulator's state: assistants, chats, runs, faults and the request log.

    Its configuration, inspection and the small helpers every handler shares
    (answers in the dialect, not-found refusals, chat ids, a page of chats).
    `Core` adds the request handling (`_turns`, `_answers`) on top;
    `DevicEmulator` (in `langchain_devic.testing`) adds the faces, and its
    docstring documents the arguments and attributes.
    """

    def __init__(
        self,
        api_key: str = DEFAULT_API_KEY,
        assistants: Iterable[str] | Mapping[str, ReplyFn | None] | None = None,
        dialect: Dialect = "flat",
        random_seed: int | None = 0,
        base_path: str = "/v1",
        *,
        sse: bool = True,
        envelope: bool = False,
        write_pieces: int = WRITE_PIECES,
        write_interval: float = WRITE_INTERVAL,
        accept_any_assistant: bool | None = None,
        realtime_ttl: float = REALTIME_TTL,
    ) -> None:
        if not isinstance(api_key, str) or not api_key:
            msg = "api_key must be a non-empty string."
            raise ValueError(msg)
        if dialect not in DIALECTS:
            msg = f"dialect must be 'flat' or 'platform', got {dialect!r}."
            raise ValueError(msg)
        # A `Write` checks its own pieces and interval the same way.
        Write("", pieces=write_pieces, interval=write_interval)
        self._api_key = api_key.encode("utf-8")
        self.dialect: Dialect = dialect
        self.random_seed = (
            random_seed if random_seed is not None else secrets.randbits(64)
        )
        self.base_path = normalize_base_path(base_path)
        self.latency: float = 0.0
        self.fault_policy: Callable[[RecordedRequest], Fault | None] | None = None
        self.sse = sse
        self.envelope = envelope
        self.write_pieces = write_pieces
        self.write_interval = write_interval
        self.sse_keepalive = SSE_KEEPALIVE
        self.realtime_ttl = realtime_ttl
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self.accept_any_assistant = (
            assistants is None if accept_any_assistant is None else accept_any_assistant
        )
        self._assistants: dict[str, ReplyFn | None] = {}
        if isinstance(assistants, str):
            self._assistants[assistants] = None
        elif isinstance(assistants, Mapping):
            self._assistants.update(assistants)
        elif assistants is not None:
            self._assistants.update(dict.fromkeys(assistants))
        #: Each known assistant's `AssistantSpecialization` fields.
        self._profiles: dict[str, dict[str, Any]] = {
            name: profile_of(name) for name in self._assistants
        }
        self._chats: dict[str, Chat] = {}
        self._runs: set[Run] = set()
        self._slots: list[Slot] = []
        self._faults: deque[Fault] = deque()
        self._counter = 0
        self._order = 0
        prefixes = [self.base_path, PLATFORM_PREFIX]
        self._prefixes = tuple(dict.fromkeys(p + "/assistants" for p in prefixes))

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(dialect={self.dialect!r}, "
            f"random_seed={self.random_seed}, base_path={self.base_path!r})"
        )

    # ----------------------------------------------------------- configuration

    def add_assistant(
        self,
        assistant_id: str,
        reply: ReplyFn | None = None,
        profile: Mapping[str, Any] | None = None,
    ) -> None:
        """Create (or re-script) an assistant; `reply=None` uses the default reply.

        Args:
            assistant_id: Its identifier.
            reply: Its reply function (`None`: the default reply).
            profile: `AssistantSpecialization` fields the assistant routes
                show (`name`, `description`, `state`, `model`, `provider`,
                ...), over the defaults.
        """
        if not isinstance(assistant_id, str) or not assistant_id:
            msg = "assistant_id must be a non-empty string."
            raise ValueError(msg)
        with self._lock:
            self._assistants[assistant_id] = reply
            self._profiles[assistant_id] = profile_of(assistant_id, profile)

    def inject(self, *faults: Fault) -> None:
        """Queue faults; each is consumed, in order, by the next request it is for."""
        for fault in faults:
            if not isinstance(fault, Fault):
                msg = f"inject() takes Fault objects, got {type(fault).__name__}."
                raise TypeError(msg)
        with self._lock:
            self._faults.extend(faults)

    def reset(self) -> None:
        """Forget requests, chats and queued faults (and restart the ids).

        Runs in progress are cancelled where they stand (a run waiting for
        the client's tools too), and streams of the forgotten chats close.
        """
        with self._changed:
            for run in self._runs:
                run.cancelled.set()
            for chat in self._chats.values():
                chat.gone = True
            self._slots.clear()
            self._chats.clear()
            self._faults.clear()
            self._counter = 0
            self._changed.notify_all()

    @staticmethod
    def default_reply(conversation: Conversation) -> str:
        """The default assistant: numbers the turn and echoes the user's message."""
        message = conversation.message
        if len(message) > ECHO_CHARS:
            message = message[:ECHO_CHARS] + "…"
        return f"Reply {conversation.turn} from {conversation.assistant_id}: {message}"

    # --------------------------------------------------------------- inspection

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, in arrival order (a snapshot)."""
        with self._lock:
            return [slot.record for slot in self._slots]

    @property
    def conversations(self) -> dict[str, list[dict[str, str]]]:
        """Each chat id's history, oldest message first (a snapshot).

        Each message is `{"role", "content"}`; see `Conversation.messages`.
        """
        with self._lock:
            return {
                chat_id: plain(chat.messages) for chat_id, chat in self._chats.items()
            }

    @property
    def queued_faults(self) -> tuple[Fault, ...]:
        """The faults injected but not yet consumed, next first."""
        with self._lock:
            return tuple(self._faults)

    def chat_owner(self, chat_uuid: str) -> str | None:
        """The assistant a chat id belongs to, or `None` if there is no such chat."""
        with self._lock:
            chat = self._chats.get(chat_uuid)
            return chat.assistant_id if chat is not None else None

    def realtime(self, chat_uuid: str) -> dict[str, Any]:
        """A chat's realtime view now, as the realtime route answers it.

        Raises:
            KeyError: If there is no such chat.
        """
        with self._lock:
            return self._chats[chat_uuid].view()

    def wait_idle(self, timeout: float = 5.0) -> None:
        """Wait until no run is working: each has ended or waits for the client.

        A run waiting for client tool responses would never end by itself, so
        it counts as idle; answer it (or stop it) and wait again.

        Args:
            timeout: The longest wait, in seconds.

        Raises:
            TimeoutError: If runs are still working after `timeout`; it names
                their chats.
        """
        with self._changed:
            if self._changed.wait_for(
                lambda: all(run.waiting for run in self._runs), timeout
            ):
                return
            busy = sorted(run.chat.chat_id for run in self._runs if not run.waiting)
        msg = f"Runs still going after {timeout} s in chats {busy}."
        raise TimeoutError(msg)

    def _forget(self, slot: Slot) -> None:
        """Take a request that never arrived out of the log."""
        with self._lock:
            if slot in self._slots:
                self._slots.remove(slot)

    def _settle(self, slot: Slot | None, status: int | None) -> None:
        """Write the status answered (or `None`) into the request's record."""
        if slot is not None:
            with self._lock:
                slot.record = replace(slot.record, status=status)

    def _refusal(self, status: int, message: str, code: str) -> Answer:
        """An error answer in the emulator's dialect."""
        return error_answer(status, message, code, self.dialect)

    def _ok(self, status: int, payload: Any) -> Answer:
        """A JSON answer; in the platform dialect, enveloped if asked to be."""
        if self.dialect == "platform" and self.envelope:
            payload = enveloped(payload)
        return json_answer(status, payload)

    def _reply_of(self, assistant_id: str) -> ReplyFn | None:
        """The reply function of an assistant, `None` if there is no such assistant."""
        if assistant_id in self._assistants:
            return self._assistants[assistant_id] or self.default_reply
        return self.default_reply if self.accept_any_assistant else None

    def _new_chat_id(self) -> str:
        """The next deterministic conversation id (call with the lock held)."""
        while True:
            rng = random.Random(f"{self.random_seed}:{self._counter}")  # noqa: S311 - ids, not secrets
            self._counter += 1
            chat_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            if chat_id not in self._chats:
                return chat_id

    def _fork(self, source: Chat, new_id: str) -> None:
        """Register a scripted fork: the new id continues a copy of the history."""
        with self._lock:
            if new_id not in self._chats:
                self._order += 1
                self._chats[new_id] = Chat(
                    new_id, source.assistant_id, self._order, source.messages
                )

    def _find_chat(self, record: RecordedRequest) -> Chat | Answer:
        """The chat a chat route names (call with the lock held), or the 404."""
        assistant_id, chat_id = record.assistant_id, record.chat_uuid
        assert assistant_id is not None  # noqa: S101 - routed requests only
        assert chat_id is not None  # noqa: S101 - chat routes name one
        if self._reply_of(assistant_id) is None:
            return self._assistant_not_found(assistant_id)
        chat = self._chats.get(chat_id)
        if chat is None or chat.assistant_id != assistant_id:
            return self._chat_not_found(chat_id)
        return chat

    def _chats_page(
        self,
        filters: Mapping[str, Any],
        offset: int,
        limit: int | None,
        *,
        content: bool,
    ) -> Answer:
        """One page of the chats that pass `filters`, newest first (200).

        The search and an assistant's chat list answer the same page, so both
        build it here; it takes the lock itself (reentrant: a caller may hold it).
        """
        with self._lock:
            chosen = sorted(
                (c for c in self._chats.values() if chat_matches(c, filters)),
                key=lambda c: c.order,
                reverse=True,
            )
            end = len(chosen) if limit is None else offset + limit
            page = [chat.history(content=content) for chat in chosen[offset:end]]
        body = chats_body(
            page,
            total=len(chosen),
            offset=offset,
            limit=len(chosen) if limit is None else limit,
        )
        return self._ok(200, body)

    def _assistant_not_found(self, assistant_id: str) -> Answer:
        message = f"Assistant '{assistant_id}' not found"
        return self._refusal(404, message, "ASSISTANT_NOT_FOUND")

    def _chat_not_found(self, chat_uuid: str) -> Answer:
        return self._refusal(404, f"Chat '{chat_uuid}' not found", "CHAT_NOT_FOUND")


def chat_matches(chat: Chat, filters: Mapping[str, Any]) -> bool:
    """Whether a chat passes the search's (or the list's) filters."""
    options = chat.options
    wanted = filters.get("assistantSpecializationIdentifier")
    if wanted is not None and chat.assistant_id != wanted:
        return False
    for name in ("tenantId", "subtenantId"):
        if filters.get(name) is not None and options.get(name) != filters[name]:
            return False
    tags = filters.get("tags")
    if tags and not set(tags) & set(options.get("tags", ())):
        return False
    after, before = filters.get("createdAfter"), filters.get("createdBefore")
    if after is not None and chat.created_ms < after:
        return False
    return before is None or chat.created_ms <= before
