"""Devic's agents: autonomous threads that work through a script of steps.

The routes Devic's CLI calls for agents (`devic agents …`), on the emulator's
state, under `{prefix}/agents` (every prefix the assistants are served under):

- `GET {prefix}/agents` lists the agents (`{"agents", "total", "offset",
  "limit"}`), `GET {prefix}/agents/{id}` reads one (`AgentDto`);
- `POST {prefix}/agents/{id}/threads` `{message, tags?, metadata?}` starts a
  thread (201, the thread), `GET` lists the agent's threads (`{"threads",
  "total"}`, filtered by `state`, `tags` (comma-separated: a thread matches when
  it has any of them), `dateOrder`, paged by `offset`/`limit`, `omitContent`);
- `GET {prefix}/agents/threads/{thread}[?withTasks=true]` reads a thread
  (`AgentThreadDto`; its `tasks` only with `withTasks=true`), `PATCH` changes
  its `name`/`metadata`/`tags`;
- `POST …/threads/{thread}/approval` `{action: "approved"|"rejected",
  message?, retry?}` answers an approval pause (any other action rejects, as
  on Devic; 409 when the thread does not wait for one), `…/pause`,
  `…/resume`, `…/complete` `{state}`, `…/evaluate`, `GET …/evaluation`,
  `POST/GET …/feedback`; `GET {prefix}/agents/agents/{id}/costs/{daily |
  monthly | summary}`.

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
step costs tokens (`tokenUsage`, with a cost).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any
from urllib.parse import parse_qs

from langchain_devic.testing._chats import now_ms
from langchain_devic.testing._records import RecordedRequest
from langchain_devic.testing._render import Answer
from langchain_devic.testing._routes import flag, paging
from langchain_devic.testing._state import State

__all__ = [
    "AGENT_STATES",
    "READY_AGENTS",
    "AgentScript",
    "AgentStep",
    "Agents",
    "ReadyAgent",
]

#: Every state of an agent thread (Devic's `AgentThreadState`).
AGENT_STATES = (
    "queued",
    "processing",
    "completed",
    "failed",
    "terminated",
    "paused",
    "paused_for_approval",
    "approval_rejected",
    "waiting_for_response",
    "paused_for_resume",
    "handed_off",
    "guardrail_trigger",
    "under_construction",
    "limit_exceeded",
)
#: States a thread never leaves by itself.
_FINAL = frozenset(
    {
        "completed",
        "failed",
        "terminated",
        "approval_rejected",
        "guardrail_trigger",
        "limit_exceeded",
        "waiting_for_response",
    }
)
#: States that wait for someone (a person, a resume call).
_WAITING = frozenset({"paused_for_approval", "paused_for_resume"})
#: Tokens and cost each step of a script spends.
_STEP_TOKENS = (120, 40)
_STEP_COST = 0.0004


@dataclass(frozen=True)
class AgentStep:
    """One step of an emulated agent's script; build them with the class methods."""

    kind: str
    text: str = ""
    seconds: float = 0.0
    state: str = ""

    @classmethod
    def task(cls, title: str) -> AgentStep:
        """Complete the task called `title` (listed in the thread's tasks)."""
        return cls("task", title)

    @classmethod
    def say(cls, text: str) -> AgentStep:
        """Write an assistant message."""
        return cls("say", text)

    @classmethod
    def approval(cls, reason: str, message: str | None = None) -> AgentStep:
        """Pause for a person's approval (`pausedReason` = `reason`).

        `message`, if given, is written first as an assistant message.
        """
        return cls("approval", reason, state=message or "")

    @classmethod
    def hand_off(cls, agent_id: str, task: str | None = None) -> AgentStep:
        """Start a sub-thread of `agent_id` and wait in `handed_off` until it ends.

        The sub-thread's message is `task`, else the thread's own.
        """
        return cls("hand_off", agent_id, state=task or "")

    @classmethod
    def pause(cls, seconds: float) -> AgentStep:
        """Wait in `paused` for `seconds` (`pausedUntil` says until when)."""
        return cls("pause", seconds=seconds)

    @classmethod
    def end(cls, state: str, reason: str = "", *, resets_in: float = 60.0) -> AgentStep:
        """End the thread in `state` with `finishReason` = `reason`.

        For `limit_exceeded`, the limit resets in `resets_in` seconds.
        """
        if state not in AGENT_STATES:
            msg = f"state must be one of {AGENT_STATES}, got {state!r}."
            raise ValueError(msg)
        return cls("end", reason, seconds=resets_in, state=state)


#: A script: the steps, or a function of the thread's message giving them.
AgentScript = Sequence[AgentStep] | Callable[[str], Sequence[AgentStep]]


def default_script(message: str) -> list[AgentStep]:
    """Two tasks, then the answer: `Done: <message>`."""
    return [
        AgentStep.task("Read the task"),
        AgentStep.task("Do the work"),
        AgentStep.say(f"Done: {message}"),
    ]


@dataclass(frozen=True)
class ReadyAgent:
    """A ready agent of the command line: what it does, and its script."""

    description: str
    script: AgentScript | None = None


def _approver(message: str) -> list[AgentStep]:
    return [
        AgentStep.task("Draft the plan"),
        AgentStep.approval(
            "Send the plan to the customer?", f"Plan drafted for: {message}"
        ),
        AgentStep.task("Send the plan"),
        AgentStep.say(f"Plan sent: {message}"),
    ]


def _researcher(message: str) -> list[AgentStep]:
    return [
        AgentStep.task("Collect sources"),
        AgentStep.task("Compare them"),
        AgentStep.task("Write the summary"),
        AgentStep.say(f"Summary of: {message}"),
    ]


def _delegator(message: str) -> list[AgentStep]:
    return [
        AgentStep.task("Split the work"),
        AgentStep.hand_off("researcher"),
        AgentStep.say(f"Delegated and done: {message}"),
    ]


#: The command line's agents, by id (`python -m langchain_devic.testing`).
READY_AGENTS: Mapping[str, ReadyAgent] = {
    "researcher": ReadyAgent("completes three tasks, then answers", _researcher),
    "approver": ReadyAgent(
        "drafts a plan, pauses for approval, then sends it", _approver
    ),
    "delegator": ReadyAgent(
        "hands off to the researcher agent, then answers", _delegator
    ),
    "patient": ReadyAgent(
        "pauses 3 s (pausedUntil), then answers",
        [AgentStep.pause(3.0), AgentStep.say("Resumed after the pause.")],
    ),
    "failing-agent": ReadyAgent(
        "completes a task, then fails",
        [
            AgentStep.task("Try the job"),
            AgentStep.end("failed", "The agent failed on purpose"),
        ],
    ),
    "limited-agent": ReadyAgent(
        "ends in limit_exceeded (resets in 60 s)",
        [AgentStep.end("limit_exceeded", "Usage limit reached", resets_in=60.0)],
    ),
}


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
        if state in _FINAL:
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


class Agents(State):
    """The agent routes' handlers and the scripted threads behind them."""

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
            if state in _FINAL or state in _WAITING:
                return
            if state == "handed_off":
                waiting = []
                for sub_id in thread.pending_sub_threads:
                    sub = self._agent_threads.get(sub_id)
                    if sub is not None:
                        self._advance(sub)
                        if sub.state not in _FINAL:
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

    # ------------------------------------------------------------------ routes

    def _agent_not_found(self, agent_id: str) -> Answer:
        return self._refusal(404, f"Agent '{agent_id}' not found", "AGENT_NOT_FOUND")

    def _thread_not_found(self, thread_id: str) -> Answer:
        return self._refusal(404, f"Thread '{thread_id}' not found", "THREAD_NOT_FOUND")

    def _answer_agents(self, record: RecordedRequest) -> Answer:
        """`GET {prefix}/agents` (the list) or `POST` (create one)."""
        if record.method == "POST":
            fields = record.json
            if not isinstance(fields, dict) or not isinstance(fields.get("name"), str):
                return self._refusal(400, "'name' is required", "BAD_REQUEST")
            with self._lock:
                agent_id = uuid.uuid4().hex[:24]
                self._agent_scripts[agent_id] = None
                self._agent_profiles[agent_id] = agent_profile(agent_id, fields)
                return self._ok(201, self._agent_profiles[agent_id])
        pages = paging(parse_qs(record.query))
        if isinstance(pages, str):
            return self._refusal(400, pages, "BAD_REQUEST")
        offset, limit = pages
        archived = flag(record.query, "archived")
        with self._lock:
            agents = [
                dict(p)
                for p in self._agent_profiles.values()
                if archived or not p.get("archived")
            ]
        page = agents[offset : None if limit is None else offset + limit]
        return self._ok(
            200,
            {"agents": page, "total": len(agents), "offset": offset, "limit": limit},
        )

    def _answer_agent(self, record: RecordedRequest) -> Answer:
        """`GET`, `PATCH` or `DELETE {prefix}/agents/{id}`."""
        agent_id = record.assistant_id or ""
        with self._lock:
            profile = self._agent_profiles.get(agent_id)
            if profile is None:
                return self._agent_not_found(agent_id)
            if record.method == "DELETE":
                del self._agent_profiles[agent_id]
                self._agent_scripts.pop(agent_id, None)
                return self._ok(200, {"_id": agent_id, "deleted": True})
            if record.method == "PATCH":
                if not isinstance(record.json, dict):
                    return self._refusal(
                        400, "the body must be an object", "BAD_REQUEST"
                    )
                profile = agent_profile(agent_id, {**profile, **record.json})
                self._agent_profiles[agent_id] = profile
            return self._ok(200, dict(profile))

    def _answer_agent_threads(self, record: RecordedRequest) -> Answer:
        """`POST {prefix}/agents/{id}/threads` (start one) or `GET` (the list)."""
        agent_id = record.assistant_id or ""
        with self._lock:
            if agent_id not in self._agent_profiles:
                return self._agent_not_found(agent_id)
            if self._agent_profiles[agent_id].get("disabled"):
                return self._refusal(
                    400, f"Agent '{agent_id}' is disabled", "AGENT_DISABLED"
                )
        if record.method == "POST":
            return self._create_thread(agent_id, record.json)
        query = parse_qs(record.query)
        pages = paging(query)
        if isinstance(pages, str):
            return self._refusal(400, pages, "BAD_REQUEST")
        offset, limit = pages
        state = query.get("state", [None])[-1]
        tags = {
            t.strip() for v in query.get("tags", []) for t in v.split(",") if t.strip()
        }
        newest_first = query.get("dateOrder", ["desc"])[-1].lower() != "asc"
        content = not flag(record.query, "omitContent")
        with self._lock:
            threads = [
                t for t in self._agent_threads.values() if t.agent_id == agent_id
            ]
            for thread in threads:
                self._advance(thread)
            chosen = [
                t
                for t in threads
                if (state is None or t.state == state)
                and (not tags or tags & set(t.tags))
            ]
            chosen.sort(key=lambda t: t.order, reverse=newest_first)
            page = chosen[offset : None if limit is None else offset + limit]
            listed = [t.dto(content=content) for t in page]
        return self._ok(200, {"threads": listed, "total": len(chosen)})

    def _create_thread(self, agent_id: str, payload: Any) -> Answer:
        message = payload.get("message") if isinstance(payload, dict) else None
        if not isinstance(message, str) or not message:
            return self._refusal(
                400,
                "'message' is required and must be a non-empty string",
                "BAD_REQUEST",
            )
        tags = payload.get("tags")
        if tags is not None and (
            not isinstance(tags, list) or not all(isinstance(t, str) for t in tags)
        ):
            return self._refusal(400, "'tags' must be a list of strings", "BAD_REQUEST")
        metadata = payload.get("metadata")
        if metadata is not None and not isinstance(metadata, dict):
            return self._refusal(400, "'metadata' must be an object", "BAD_REQUEST")
        with self._lock:
            thread = self._start_thread(agent_id, message, tags or (), metadata)
            return self._ok(201, thread.dto())

    def _answer_agent_thread(self, record: RecordedRequest) -> Answer:
        """`GET {prefix}/agents/threads/{thread}` or `PATCH` (name, tags, metadata)."""
        thread_id = record.chat_uuid or ""
        with self._lock:
            thread = self._agent_threads.get(thread_id)
            if thread is None:
                return self._thread_not_found(thread_id)
            self._advance(thread)
            if record.method == "PATCH":
                fields = record.json if isinstance(record.json, dict) else {}
                if isinstance(fields.get("name"), str):
                    thread.name = fields["name"]
                if isinstance(fields.get("tags"), list):
                    thread.tags = [str(t) for t in fields["tags"]]
                if isinstance(fields.get("metadata"), dict):
                    thread.metadata = dict(fields["metadata"])
                thread.edited_ms = now_ms()
            return self._ok(200, thread.dto(tasks=flag(record.query, "withTasks")))

    def _answer_thread_action(self, record: RecordedRequest) -> Answer:
        """`…/agents/threads/{thread}/<action>`: approval, pause, resume, etc."""
        thread_id = record.chat_uuid or ""
        action = record.path.rstrip("/").rsplit("/", 1)[-1]
        payload = record.json if isinstance(record.json, dict) else {}
        with self._lock:
            thread = self._agent_threads.get(thread_id)
            if thread is None:
                return self._thread_not_found(thread_id)
            self._advance(thread)
            reads = action in {"evaluation", "feedback"}
            if (record.method == "GET" and not reads) or (
                record.method == "POST" and action == "evaluation"
            ):
                message = f"Cannot {record.method} {record.path}"
                return self._refusal(405, message, "METHOD_NOT_ALLOWED")
            if action == "approval":
                return self._approve(thread, payload)
            if action == "pause":
                if thread.state in _FINAL:
                    return self._refusal(409, f"Thread is {thread.state}", "CONFLICT")
                thread.move("paused_for_resume", "api")
            elif action == "resume":
                if thread.state != "paused_for_resume":
                    return self._refusal(409, f"Thread is {thread.state}", "CONFLICT")
                thread.move("processing", "api")
                thread.next_at = time.monotonic()
            elif action == "complete":
                state = payload.get("state")
                # Devic's CLI documents the states in capitals (`COMPLETED`).
                state = state.lower() if isinstance(state, str) else state
                if state not in AGENT_STATES:
                    return self._refusal(
                        400, f"'state' must be one of {AGENT_STATES}", "BAD_REQUEST"
                    )
                thread.move(str(state), "api")
            elif action == "evaluate":
                return self._ok(201, {"threadId": thread_id, "state": "queued"})
            elif action == "evaluation":
                done = thread.state == "completed"
                return self._ok(
                    200,
                    {
                        "threadId": thread_id,
                        "score": 1.0 if done else None,
                        "state": thread.state,
                    },
                )
            elif action == "feedback":
                if record.method == "GET":
                    return self._ok(200, [dict(f) for f in thread.feedback])
                entry = {
                    "_id": uuid.uuid4().hex,
                    "threadId": thread_id,
                    **{
                        k: payload[k]
                        for k in (
                            "messageId",
                            "feedback",
                            "feedbackComment",
                            "feedbackData",
                        )
                        if k in payload
                    },
                    "creationTimestampMs": now_ms(),
                }
                thread.feedback.append(entry)
                return self._ok(201, entry)
            return self._ok(200, thread.dto())

    def _approve(self, thread: AgentThread, payload: Mapping[str, Any]) -> Answer:
        if thread.state != "paused_for_approval":
            message = (
                f"Thread {thread.thread_id} is {thread.state}, not paused_for_approval"
            )
            return self._refusal(409, message, "CONFLICT")
        approved = payload.get("action") == "approved"
        note = payload.get("message")
        thread.approvals.append(
            {"action": "approved" if approved else "rejected", "message": note}
        )
        if isinstance(note, str) and note:
            thread.write("user", note)
        if approved or payload.get("retry") is True:
            thread.paused_reason = None
            thread.move("processing", "api")
            thread.next_at = time.monotonic() + self.agent_step_seconds
        else:
            thread.finish_reason = (
                note if isinstance(note, str) and note else "rejected"
            )
            thread.move("approval_rejected", "api")
        return self._ok(201, thread.dto())

    def _answer_agent_costs(self, record: RecordedRequest) -> Answer:
        """`GET {prefix}/agents/agents/{id}/costs/{daily | monthly | summary}`."""
        agent_id = record.assistant_id or ""
        kind = record.path.rstrip("/").rsplit("/", 1)[-1]
        with self._lock:
            if agent_id not in self._agent_profiles:
                return self._agent_not_found(agent_id)
            threads = [
                t for t in self._agent_threads.values() if t.agent_id == agent_id
            ]
            total = {
                "agentId": agent_id,
                "totalCost": round(sum(t.cost for t in threads), 6),
                "inputTokens": sum(t.input_tokens for t in threads),
                "outputTokens": sum(t.output_tokens for t in threads),
                "threads": len(threads),
            }
        if kind == "summary":
            return self._ok(200, total)
        return self._ok(200, {"agentId": agent_id, "period": kind, "entries": [total]})
