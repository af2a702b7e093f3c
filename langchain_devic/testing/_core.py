"""The one way a request goes through the emulator.

`Core` is the emulator without its faces: its state (`_state`: assistants,
chats, runs, faults, the request log), the send (`_turns`), the other chat
routes (`_answers`), and here the entry of every request. A face hands it each
request with `begin()`, which records it, routes it (`_routes`), checks the
method and the token, applies the next fault for its route, and, for a send,
checks the body, the assistant and the chat and reserves the chat being
continued (a second send to a busy chat gets 409 at once). The `Exchange`
(`_exchanges`) it returns knows how long the request must wait: `play()` (a
thread) or `aplay()` (a task) waits with the face's own sleep, starts the
request's work (a turn, or a read of a chat), waits for a synchronous run to
end if there is one, and says how the face must end the exchange: answer (a
body, or a stream of SSE frames), drop the connection, or time out. A wait cut
short before the work started (a cancelled task, an interrupt) calls
`abandon()`, which frees the chat.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import replace

from langchain_devic.testing._agents import Agents
from langchain_devic.testing._answers import Answers
from langchain_devic.testing._exchanges import Exchange, Read, Slot, Work, refused
from langchain_devic.testing._faults import NO_FAULT, Face, Fault
from langchain_devic.testing._records import (
    DEFAULT_API_KEY,
    Conversation,
    Outcome,
    RecordedRequest,
    ReplyFn,
)
from langchain_devic.testing._render import (
    ROUTE_METHODS,
    Answer,
    Route,
    StreamAnswer,
    method_not_allowed,
    route_not_found,
)
from langchain_devic.testing._routes import (
    authorized,
    parse_json,
    public_headers,
    route_of,
    sent_chat,
)
from langchain_devic.testing._surface import Surface
from langchain_devic.testing._turns import Turns

__all__ = [
    "DEFAULT_API_KEY",
    "Conversation",
    "Core",
    "Exchange",
    "Outcome",
    "RecordedRequest",
    "ReplyFn",
]


class Core(Turns, Answers, Surface, Agents):
    """The emulator's state and its request handling, without any face.

    `DevicEmulator` (in `langchain_devic.testing`) adds the faces; its
    docstring documents the arguments and attributes.
    """

    # ------------------------------------------------------ the faces' entry

    def begin(
        self,
        method: str,
        target: str,
        headers: Iterable[tuple[str, str]],
        body: bytes,
        *,
        face: Face,
    ) -> Exchange:
        """Record a request and decide how it will be answered (no waiting).

        A refusal (no route, wrong method, bad token, bad body, unknown
        assistant or chat, busy chat) answers at once: latency, injected or
        not, delays the work, never a refusal.

        Args:
            method: The HTTP method.
            target: The raw request target: the percent-encoded path and query.
            headers: The request headers, as `(name, value)` pairs.
            body: The whole request body.
            face: The face that received it (a fault may act differently).

        Returns:
            The exchange; the face waits it out with `play` or `aplay`.
        """
        header_pairs = list(headers)
        slot = Slot(self._record(method, target, header_pairs, body))
        record = slot.record
        with self._lock:
            self._slots.append(slot)
        route = record.route
        if route is None or (route == "stream" and not self.sse):
            not_found = route_not_found(record.method, record.path)
            return Exchange(self, slot, answer=not_found)
        if record.method not in ROUTE_METHODS[route]:
            allowed = ", ".join(ROUTE_METHODS[route])
            not_allowed = method_not_allowed(record.method, allowed)
            return Exchange(self, slot, answer=not_allowed)
        if not record.authorized:
            refusal = self._refusal(401, "Invalid or missing API key", "UNAUTHORIZED")
            return Exchange(self, slot, answer=refusal)

        fault = self._next_fault(record, route)
        effect = NO_FAULT if fault is None else fault.effect(face)
        if fault is not None:
            slot.record = replace(record, fault=fault.kind)
        if not effect.arrives:
            self._forget(slot)
            return Exchange(self, None, action=effect.action)
        delay = effect.delay + (max(self.latency, 0.0) if route == "messages" else 0.0)
        checked = self._check(route, slot, header_pairs) if effect.runs_turn else None
        if isinstance(checked, Answer) and effect.answer is None:
            if effect.action == "answer":
                return Exchange(self, slot, answer=checked)  # refused at once
            delay = 0.0
        return Exchange(
            self,
            slot,
            delay=delay,
            answer=effect.answer if effect.answer is not None else refused(checked),
            work=None if isinstance(checked, Answer) else checked,
            action=effect.action,
            stall=effect.stall,
        )

    # ------------------------------------------------------------ the request

    def _record(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes
    ) -> RecordedRequest:
        """The log entry of a request, as it came off the wire."""
        arrived = time.monotonic()
        path, _, query = target.partition("?")
        parsed = parse_json(body)
        payload = parsed if isinstance(parsed, dict) else {}
        routed = route_of(self._prefixes, path, method.upper())
        route, assistant_id, path_chat = routed or (None, None, None)
        sent_message = payload.get("message")
        chat_uuid = path_chat if route != "messages" else sent_chat(payload)
        return RecordedRequest(
            method=method.upper(),
            path=path,
            query=query,
            headers=public_headers(headers),
            body=body,
            json=parsed,
            assistant_id=assistant_id,
            chat_uuid=chat_uuid,
            message=sent_message if isinstance(sent_message, str) else None,
            authorized=self._authorized(headers),
            timestamp=arrived,
            route=route,
        )

    def _authorized(self, headers: list[tuple[str, str]]) -> bool:
        """Whether exactly one `Authorization: Bearer <api_key>` header was sent."""
        return authorized(headers, self._api_key)

    def _next_fault(self, record: RecordedRequest, route: Route) -> Fault | None:
        """The next queued fault for this route, else what the fault policy says.

        The policy is asked about sends (the messages route) only.
        """
        with self._lock:
            for index, fault in enumerate(self._faults):
                if route in fault.routes:
                    del self._faults[index]
                    return fault
        policy = self.fault_policy
        if policy is None or route != "messages":
            return None
        return policy(record)

    def _check(
        self, route: Route, slot: Slot, headers: list[tuple[str, str]]
    ) -> Work | Answer:
        """The work a request asks for, or its refusal (answered at once)."""
        record = slot.record
        if route == "messages":
            return self._check_send(slot, headers)
        readers: dict[Route, Callable[[RecordedRequest], Answer | StreamAnswer]] = {
            "chats": self._answer_chats,
            "chat": self._answer_history,
            "realtime": self._answer_realtime,
            "stream": self._answer_stream,
            "stop": self._answer_stop,
            "tool-response": self._answer_tool_response,
            "feedback": self._answer_feedback,
            "assistants": self._answer_assistants,
            "assistant": self._answer_assistant,
            "search": self._answer_search,
            "agents": self._answer_agents,
            "agent": self._answer_agent,
            "agent-threads": self._answer_agent_threads,
            "agent-thread": self._answer_agent_thread,
            "agent-thread-action": self._answer_thread_action,
            "agent-costs": self._answer_agent_costs,
        }
        reader = readers[route]
        return Read(lambda: reader(record))
