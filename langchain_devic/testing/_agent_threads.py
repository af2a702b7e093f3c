"""The emulator's agent threads: each one plays its agent's script.

A thread plays its agent's script (`AgentStep`s), one step every
`agent_step_seconds`, advanced whenever the thread is read: `queued`, then
`processing`; a task step completes a task (the thread's tasks are every task
step's title, known from the start), a say step writes an assistant message,
an approval step pauses in `paused_for_approval` (with `pausedReason`), a
hand-off step starts a sub-thread of another agent and waits in `handed_off`
until it ends, a pause step waits in `paused` until `pausedUntil`, and an end
step ends the thread in any state (`failed`, `terminated`,
`guardrail_trigger`, `limit_exceeded` with `pausedUntil` as its reset time,
`waiting_for_response`). A script that runs out completes the thread. Every
step costs tokens (`tokenUsage`, with a cost). The routes that start, read and
answer the threads are in `_agents`; this module keeps the tables and the
playing apart from them.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from langchain_devic.testing._agent_script import (
    FINAL_STATES,
    WAITING_STATES,
    AgentScript,
    AgentStep,
    default_script,
)
from langchain_devic.testing._chats import now_ms
from langchain_devic.testing._state import State

__all__ = ["AgentThread", "AgentThreads", "agent_profile"]

#: Tokens and cost each step of a script spends.
_STEP_TOKENS = (120, 40)
_STEP_COST = 0.0004


@dataclass
class AgentThread:
    """One agent thread and where its script stands."""

    thread_id: str
    agent_id: str
    message: str
    steps: list[AgentStep]
    order: int
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    state: str = "queued"
    index: int = 0
    next_at: float = 0.0
    content: list[dict[str, Any]] = field(default_factory=list)
    tasks: list[dict[str, Any]] = field(default_factory=list)
    changes: list[dict[str, Any]] = field(default_factory=list)
    created_ms: int = field(default_factory=now_ms)
    edited_ms: int = field(default_factory=now_ms)
    finish_ms: int | None = None
    finish_reason: str | None = None
    paused_reason: str | None = None
    paused_until: int | None = None
    limit: dict[str, Any] | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    name: str | None = None
    parent_id: str | None = None
    sub_threads: list[str] = field(default_factory=list)
    pending_sub_threads: list[str] = field(default_factory=list)
    feedback: list[dict[str, Any]] = field(default_factory=list)
    approvals: list[dict[str, Any]] = field(default_factory=list)

    def move(self, state: str, source: str = "agent") -> None:
        if state != self.state:
            self.state = state
            self.changes.append(
                {"state": state, "timestamp": now_ms(), "source": source}
            )
        self.edited_ms = now_ms()
        if state in FINAL_STATES:
            self.finish_ms = self.edited_ms

    def write(self, role: str, text: str) -> None:
        self.content.append(
            {
                "uid": uuid.uuid4().hex,
                "role": role,
                "content": {"message": text},
                "timestamp": now_ms(),
            }
        )

    def dto(self, *, content: bool = True, tasks: bool = True) -> dict[str, Any]:
        """The thread as Devic shows it (`AgentThreadDto`)."""
        body: dict[str, Any] = {
            "_id": self.thread_id,
            "threadId": self.thread_id,
            "agentId": self.agent_id,
            "state": self.state,
            "name": self.name or self.message[:60],
            "tags": list(self.tags),
            "metadata": dict(self.metadata),
            "creationTimestampMs": self.created_ms,
            "lastEditTimestampMs": self.edited_ms,
            "threadStatesChanges": [dict(c) for c in self.changes],
            "tokenUsage": {
                "inputTokens": self.input_tokens,
                "outputTokens": self.output_tokens,
                "cost": {"totalCost": round(self.cost, 6)},
            },
            "isSubthread": self.parent_id is not None,
        }
        if content:
            body["threadContent"] = [dict(m) for m in self.content]
        if tasks:
            body["tasks"] = [dict(t) for t in self.tasks]
        optional = {
            "finishTimestampMs": self.finish_ms,
            "finishReason": self.finish_reason,
            "pausedReason": self.paused_reason,
            "pausedUntil": self.paused_until,
            "parentThreadId": self.parent_id,
            "limitExceeded": self.limit,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        if self.sub_threads:
            body["handOffSubThreadIds"] = list(self.sub_threads)
        if self.pending_sub_threads:
            body["pendingHandOffSubThreadIds"] = list(self.pending_sub_threads)
        return body


def agent_profile(
    agent_id: str, profile: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """An agent's `AgentDto` fields: defaults, then `profile`'s."""
    base: dict[str, Any] = {
        "_id": agent_id,
        "agentId": agent_id,
        "name": agent_id,
        "description": f"Emulated Devic agent '{agent_id}'.",
        "disabled": False,
        "archived": False,
        "provider": "emulator",
        "llm": "scripted",
        "creationTimestampMs": 1764150000000,
    }
    base.update(profile or {})
    base["_id"] = agent_id
    return base


class AgentThreads(State):
    """The agents' tables, their configuration, and the playing of threads."""

    # No `__init__` here: the emulator's signature stays `State`'s (the API
    # pages read it). The agents' tables are made on first use, under the lock.

    #: Seconds each step of a script takes (read whenever a thread is read).
    agent_step_seconds: float = 0.05
    _agent_counter: int = 0

    @cached_property
    def _agent_scripts(self) -> dict[str, AgentScript | None]:
        return {}

    @cached_property
    def _agent_profiles(self) -> dict[str, dict[str, Any]]:
        return {}

    @cached_property
    def _agent_threads(self) -> dict[str, AgentThread]:
        return {}

    # ----------------------------------------------------------- configuration

    def add_agent(
        self,
        agent_id: str,
        script: AgentScript | None = None,
        profile: Mapping[str, Any] | None = None,
    ) -> None:
        """Create (or re-script) an agent.

        Args:
            agent_id: Its id (`_id`).
            script: Its steps, or a function of a thread's message giving them;
                `None`: two tasks, then `Done: <message>`.
            profile: `AgentDto` fields (`name`, `description`, `disabled`, ...).
        """
        if not isinstance(agent_id, str) or not agent_id or "/" in agent_id:
            msg = "agent_id must be a non-empty string without '/'."
            raise ValueError(msg)
        with self._lock:
            self._agent_scripts[agent_id] = script
            self._agent_profiles[agent_id] = agent_profile(agent_id, profile)

    def agent_thread(self, thread_id: str) -> dict[str, Any]:
        """A thread as the thread route shows it now (`KeyError` if unknown)."""
        with self._lock:
            thread = self._agent_threads[thread_id]
            self._advance(thread)
            return thread.dto()

    def reset(self) -> None:
        """Forget requests, chats, faults and agent threads (agents stay)."""
        super().reset()
        with self._lock:
            self._agent_threads.clear()

    # ---------------------------------------------------------------- playing

    def _steps_of(self, agent_id: str, message: str) -> list[AgentStep]:
        script = self._agent_scripts.get(agent_id)
        if script is None:
            return default_script(message)
        return list(script(message) if callable(script) else script)

    def _start_thread(
        self,
        agent_id: str,
        message: str,
        tags: Sequence[str] = (),
        metadata: Mapping[str, Any] | None = None,
        parent: str | None = None,
    ) -> AgentThread:
        """A new thread of `agent_id` (call with the lock held)."""
        self._agent_counter += 1
        number = (self.random_seed * 1_000_003 + self._agent_counter) % (1 << 96)
        thread_id = f"{number:024x}"
        while thread_id in self._agent_threads:
            thread_id = uuid.uuid4().hex
        steps = self._steps_of(agent_id, message)
        thread = AgentThread(
            thread_id,
            agent_id,
            message,
            steps,
            order=len(self._agent_threads),
            tags=list(tags),
            metadata=dict(metadata or {}),
            parent_id=parent,
        )
        thread.tasks = [
            {
                "_id": f"task-{n}",
                "title": s.text,
                "description": s.text,
                "completed": False,
            }
            for n, s in enumerate(st for st in steps if st.kind == "task")
        ]
        thread.write("user", message)
        thread.changes.append(
            {"state": "queued", "timestamp": now_ms(), "source": "api"}
        )
        thread.next_at = time.monotonic() + self.agent_step_seconds
        self._agent_threads[thread_id] = thread
        return thread

    def _advance(self, thread: AgentThread) -> None:
        """Play the thread's steps that are due (call with the lock held)."""
        while True:
            now = time.monotonic()
            state = thread.state
            if state in FINAL_STATES or state in WAITING_STATES:
                return
            if state == "handed_off":
                waiting = []
                for sub_id in thread.pending_sub_threads:
                    sub = self._agent_threads.get(sub_id)
                    if sub is not None:
                        self._advance(sub)
                        if sub.state not in FINAL_STATES:
                            waiting.append(sub_id)
                thread.pending_sub_threads = waiting
                if waiting:
                    return
                thread.move("processing")
                thread.next_at = now
                continue
            if state == "paused":
                if thread.paused_until is not None and now_ms() < thread.paused_until:
                    return
                thread.paused_until = None
                thread.move("processing")
                thread.next_at = now
                continue
            if now < thread.next_at:
                return
            # Every step due since the last read plays now, each at its time.
            thread.next_at += self.agent_step_seconds
            if state == "queued":
                thread.move("processing")
                continue
            if thread.index >= len(thread.steps):
                thread.move("completed")
                thread.finish_reason = thread.finish_reason or "completed"
                return
            step = thread.steps[thread.index]
            thread.index += 1
            self._play(thread, step)

    def _play(self, thread: AgentThread, step: AgentStep) -> None:
        thread.input_tokens += _STEP_TOKENS[0]
        thread.output_tokens += _STEP_TOKENS[1]
        thread.cost += _STEP_COST
        if step.kind == "task":
            for task in thread.tasks:
                if task["title"] == step.text and not task["completed"]:
                    task["completed"] = True
                    break
        elif step.kind == "say":
            thread.write("assistant", step.text)
        elif step.kind == "approval":
            if step.state:
                thread.write("assistant", step.state)
            thread.paused_reason = step.text
            thread.move("paused_for_approval")
        elif step.kind == "hand_off":
            sub = self._start_thread(
                step.text, step.state or thread.message, parent=thread.thread_id
            )
            thread.sub_threads.append(sub.thread_id)
            thread.pending_sub_threads.append(sub.thread_id)
            thread.move("handed_off")
        elif step.kind == "pause":
            thread.paused_until = now_ms() + int(step.seconds * 1000)
            thread.move("paused")
        elif step.kind == "end":
            thread.finish_reason = step.text or step.state
            if step.state == "limit_exceeded":
                resets = now_ms() + int(step.seconds * 1000)
                thread.paused_until = resets
                thread.limit = {
                    "message": step.text or "Usage limit reached",
                    "resetsAt": resets,
                }
            if step.state in {"paused_for_approval", "waiting_for_response"}:
                thread.paused_reason = step.text or None
            thread.move(step.state)
