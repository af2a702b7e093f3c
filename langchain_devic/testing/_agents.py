"""Devic's agents: the routes of agents and their autonomous threads.

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

The threads behind the routes, and how they play their agent's script, are in
`_agent_threads`; the script's steps and the ready agents in `_agent_script`
(re-exported here).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

from langchain_devic.testing._agent_script import (
    AGENT_STATES,
    FINAL_STATES,
    READY_AGENTS,
    AgentScript,
    AgentStep,
    ReadyAgent,
)
from langchain_devic.testing._agent_threads import (
    AgentThread,
    AgentThreads,
    agent_profile,
)
from langchain_devic.testing._chats import now_ms
from langchain_devic.testing._records import RecordedRequest
from langchain_devic.testing._render import Answer
from langchain_devic.testing._routes import flag, paging

__all__ = [
    "AGENT_STATES",
    "READY_AGENTS",
    "AgentScript",
    "AgentStep",
    "Agents",
    "ReadyAgent",
]


class Agents(AgentThreads):
    """The agent routes' handlers, on the scripted threads of `AgentThreads`."""

    def _agent_not_found(self, agent_id: str) -> Answer:
        return self._refusal(404, f"Agent '{agent_id}' not found", "AGENT_NOT_FOUND")

    def _thread_not_found(self, thread_id: str) -> Answer:
        return self._refusal(404, f"Thread '{thread_id}' not found", "THREAD_NOT_FOUND")

    def _find_thread(self, record: RecordedRequest) -> AgentThread | Answer:
        """The thread a thread route names, played up to now (lock held), or the 404.

        Reading or changing a thread and acting on it all start this way, so
        the look-up and the catching up live here once.
        """
        thread_id = record.chat_uuid or ""
        thread = self._agent_threads.get(thread_id)
        if thread is None:
            return self._thread_not_found(thread_id)
        self._advance(thread)
        return thread

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
        with self._lock:
            thread = self._find_thread(record)
            if isinstance(thread, Answer):
                return thread
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
        action = record.path.rstrip("/").rsplit("/", 1)[-1]
        payload = record.json if isinstance(record.json, dict) else {}
        with self._lock:
            thread = self._find_thread(record)
            if isinstance(thread, Answer):
                return thread
            thread_id = thread.thread_id
            reads = action in {"evaluation", "feedback"}
            if (record.method == "GET" and not reads) or (
                record.method == "POST" and action == "evaluation"
            ):
                message = f"Cannot {record.method} {record.path}"
                return self._refusal(405, message, "METHOD_NOT_ALLOWED")
            if action == "approval":
                return self._approve(thread, payload)
            if action == "pause":
                if thread.state in FINAL_STATES:
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
