"""The emulator's agent routes on their own: agents, threads, and each state.

Driven over the in-process transport with plain `httpx` (no client code), so
what is checked is the emulator's answers, as Devic's CLI reads them.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from langchain_devic.testing import (
    AGENT_STATES,
    READY_AGENTS,
    AgentStep,
    DevicEmulator,
)

KEY = "agents-key"
EMULATOR = (sys.executable, "-m", "langchain_devic.testing", "--port", "0")
BANNER = re.compile(r"Devic emulator listening on (http://127\.0\.0\.1:\d+)/v1")


def emulator(dialect: str = "platform", step: float = 0.0) -> DevicEmulator:
    emu = DevicEmulator(api_key=KEY, dialect=dialect, random_seed=3)  # type: ignore[arg-type]
    emu.agent_step_seconds = step
    emu.add_agent("researcher", profile={"name": "Research Agent"})
    emu.add_agent(
        "approver",
        [
            AgentStep.task("Draft"),
            AgentStep.approval("Send it?", "Draft ready"),
            AgentStep.task("Send"),
            AgentStep.say("Sent"),
        ],
    )
    return emu


@pytest.fixture
def emu() -> DevicEmulator:
    return emulator()


@pytest.fixture
def client(emu: DevicEmulator) -> Iterator[httpx.Client]:
    with client_of(emu) as http:
        yield http


def client_of(emu: DevicEmulator) -> httpx.Client:
    return httpx.Client(
        transport=emu.transport(),
        base_url="http://127.0.0.1/api/v1",
        headers={"Authorization": f"Bearer {KEY}"},
    )


def start(client: httpx.Client, agent: str, message: str = "go", **body: Any) -> str:
    answer = client.post(f"/agents/{agent}/threads", json={"message": message, **body})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["_id"])


def read(client: httpx.Client, thread: str, tasks: bool = True) -> dict[str, Any]:
    params = {"withTasks": "true"} if tasks else {}
    answer = client.get(f"/agents/threads/{thread}", params=params)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def action(client: httpx.Client, thread: str, name: str, **body: Any) -> httpx.Response:
    return client.post(f"/agents/threads/{thread}/{name}", json=body)


def seen_states(thread: dict[str, Any]) -> list[str]:
    return [change["state"] for change in thread["threadStatesChanges"]]


# ------------------------------------------------------------------- agents


def test_list_and_get_agents(client: httpx.Client, emu: DevicEmulator) -> None:
    listed = client.get("/agents").json()
    assert [a["_id"] for a in listed["agents"]] == ["researcher", "approver"]
    assert listed["total"] == 2
    assert listed["offset"] == 0
    first = listed["agents"][0]
    assert first["name"] == "Research Agent"
    assert {"description", "disabled", "archived", "provider", "llm"} <= set(first)
    page = client.get("/agents", params={"offset": 1, "limit": 1}).json()
    assert [a["_id"] for a in page["agents"]] == ["approver"]
    assert page["total"] == 2
    emu.add_agent("old", profile={"archived": True})
    assert client.get("/agents").json()["total"] == 2
    assert client.get("/agents", params={"archived": "true"}).json()["total"] == 3
    assert client.get("/agents/researcher").json()["agentId"] == "researcher"


def test_agent_create_update_delete(client: httpx.Client) -> None:
    created = client.post("/agents", json={"name": "Writer", "description": "d"})
    assert created.status_code == 201
    agent = created.json()["_id"]
    patched = client.patch(f"/agents/{agent}", json={"description": "new"})
    assert patched.json()["description"] == "new"
    assert patched.json()["_id"] == agent
    # A created agent runs the default script.
    thread = start(client, agent, "x")
    assert [t["title"] for t in read(client, thread)["tasks"]] == [
        "Read the task",
        "Do the work",
    ]
    assert client.delete(f"/agents/{agent}").json() == {"_id": agent, "deleted": True}
    assert client.get(f"/agents/{agent}").status_code == 404


@pytest.mark.parametrize("dialect", ["flat", "platform"])
def test_bad_input_answered_like_the_other_routes(dialect: str) -> None:
    emu = emulator(dialect)
    with client_of(emu) as client:
        unknown_assistant = client.get("/assistants/nobody/chats/x")
        expected_keys = set(unknown_assistant.json())
        refusals = {
            "unknown agent": client.get("/agents/nobody"),
            "threads of unknown agent": client.post(
                "/agents/nobody/threads", json={"message": "m"}
            ),
            "unknown thread": client.get("/agents/threads/nothread"),
            "action on unknown thread": action(client, "nothread", "approval"),
            "no message": client.post("/agents/researcher/threads", json={}),
            "empty message": client.post(
                "/agents/researcher/threads", json={"message": ""}
            ),
            "tags not a list": client.post(
                "/agents/researcher/threads", json={"message": "m", "tags": "a"}
            ),
            "metadata not an object": client.post(
                "/agents/researcher/threads", json={"message": "m", "metadata": [1]}
            ),
            "bad limit": client.get("/agents/researcher/threads?limit=-1"),
            "bad offset": client.get("/agents?offset=x"),
            "agent without name": client.post("/agents", json={"description": "d"}),
        }
        statuses = {name: answer.status_code for name, answer in refusals.items()}
        assert statuses == {
            "unknown agent": 404,
            "threads of unknown agent": 404,
            "unknown thread": 404,
            "action on unknown thread": 404,
            "no message": 400,
            "empty message": 400,
            "tags not a list": 400,
            "metadata not an object": 400,
            "bad limit": 400,
            "bad offset": 400,
            "agent without name": 400,
        }
        for name, answer in refusals.items():
            assert set(answer.json()) == expected_keys, name
        if dialect == "platform":
            assert refusals["unknown agent"].json()["error"] == "AGENT_NOT_FOUND"
            assert refusals["unknown thread"].json()["error"] == "THREAD_NOT_FOUND"
        else:
            assert refusals["unknown agent"].json()["error"]["code"] == (
                "AGENT_NOT_FOUND"
            )
        with httpx.Client(transport=emu.transport()) as anonymous:
            no_key = anonymous.get("http://127.0.0.1/api/v1/agents")
        assert no_key.status_code == 401


def test_disabled_agent_refuses_threads(client: httpx.Client) -> None:
    client.patch("/agents/researcher", json={"disabled": True})
    answer = client.post("/agents/researcher/threads", json={"message": "m"})
    assert answer.status_code == 400
    assert answer.json()["error"] == "AGENT_DISABLED"


# ------------------------------------------------------------------ threads


def test_create_thread_answers_the_queued_thread() -> None:
    emu = emulator(step=60.0)  # no step is due during the test
    with client_of(emu) as client:
        answer = client.post(
            "/agents/approver/threads",
            json={"message": "Plan it", "tags": ["a", "b"], "metadata": {"k": 1}},
        )
        assert answer.status_code == 201
        thread = answer.json()
        assert thread["state"] == "queued"
        assert thread["_id"] == thread["threadId"]
        assert thread["agentId"] == "approver"
        assert thread["tags"] == ["a", "b"]
        assert thread["metadata"] == {"k": 1}
        assert thread["threadContent"][0]["role"] == "user"
        assert thread["threadContent"][0]["content"] == {"message": "Plan it"}
        assert thread["tasks"] == [
            {
                "_id": "task-0",
                "title": "Draft",
                "description": "Draft",
                "completed": False,
            },
            {
                "_id": "task-1",
                "title": "Send",
                "description": "Send",
                "completed": False,
            },
        ]
        assert thread["tokenUsage"]["inputTokens"] == 0
        # Nothing is due yet: it stays queued.
        assert read(client, thread["_id"])["state"] == "queued"


def test_get_thread_tasks_only_with_tasks(client: httpx.Client) -> None:
    thread = start(client, "researcher")
    assert "tasks" not in read(client, thread, tasks=False)
    body = read(client, thread)
    assert [t["completed"] for t in body["tasks"]] == [True, True]
    assert body["state"] == "completed"
    assert body["threadContent"][-1]["content"] == {"message": "Done: go"}
    assert body["finishTimestampMs"] >= body["creationTimestampMs"]
    assert body["tokenUsage"]["inputTokens"] > 0
    assert body["tokenUsage"]["cost"]["totalCost"] > 0


def test_patch_thread(client: httpx.Client) -> None:
    thread = start(client, "researcher")
    answer = client.patch(
        f"/agents/threads/{thread}",
        json={"name": "Renamed", "tags": ["x"], "metadata": {"m": 2}},
    )
    assert answer.status_code == 200
    body = read(client, thread)
    assert (body["name"], body["tags"], body["metadata"]) == (
        "Renamed",
        ["x"],
        {"m": 2},
    )


def test_list_threads_filters_order_and_pages(client: httpx.Client) -> None:
    first = start(client, "researcher", "one", tags=["red", "blue"])
    second = start(client, "researcher", "two", tags=["green"])
    paused = start(client, "approver", "three", tags=["red"])
    start(client, "approver", "four")

    def ids(agent: str, **params: Any) -> list[str]:
        answer = client.get(f"/agents/{agent}/threads", params=params)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["total"] >= len(body["threads"])
        return [t["_id"] for t in body["threads"]]

    assert ids("researcher") == [second, first]  # newest first by default
    assert ids("researcher", dateOrder="asc") == [first, second]
    assert ids("researcher", tags="red") == [first]
    assert ids("researcher", tags="green,red") == [second, first]  # any of them
    assert ids("researcher", tags="yellow") == []
    assert ids("approver", tags="red") == [paused]
    assert ids("approver", state="paused_for_approval", dateOrder="asc")[0] == paused
    assert ids("researcher", state="paused_for_approval") == []
    assert ids("researcher", offset=1, limit=1) == [first]
    body = client.get("/agents/researcher/threads", params={"limit": 1}).json()
    assert body["total"] == 2
    lean = client.get("/agents/researcher/threads", params={"omitContent": "true"})
    listed = lean.json()["threads"]
    assert all("threadContent" not in t and "tasks" in t for t in listed)


# ---------------------------------------------------------------- approvals


def test_approval_approved_goes_on_to_completed(client: httpx.Client) -> None:
    thread = start(client, "approver")
    paused = read(client, thread)
    assert paused["state"] == "paused_for_approval"
    assert paused["pausedReason"] == "Send it?"
    assert paused["threadContent"][-1]["content"] == {"message": "Draft ready"}
    assert read(client, thread)["state"] == "paused_for_approval"  # it waits
    answer = action(client, thread, "approval", action="approved", message="Yes")
    assert answer.status_code == 201
    assert answer.json()["state"] == "processing"
    done = read(client, thread)
    assert done["state"] == "completed"
    assert "pausedReason" not in done
    texts = [m["content"]["message"] for m in done["threadContent"]]
    assert texts == ["go", "Draft ready", "Yes", "Sent"]
    again = action(client, thread, "approval", action="approved")
    assert again.status_code == 409


@pytest.mark.parametrize(
    ("body", "state"),
    [
        ({"action": "rejected", "message": "No"}, "approval_rejected"),
        ({"action": "maybe"}, "approval_rejected"),  # any other action rejects
        ({}, "approval_rejected"),
        ({"action": "rejected", "message": "Redo", "retry": True}, "processing"),
    ],
)
def test_approval_rejected(
    client: httpx.Client, body: dict[str, Any], state: str
) -> None:
    thread = start(client, "approver")
    assert read(client, thread)["state"] == "paused_for_approval"
    answer = action(client, thread, "approval", **body)
    assert answer.status_code == 201
    assert answer.json()["state"] == state
    after = read(client, thread)
    if state == "approval_rejected":
        assert after["state"] == "approval_rejected"
        assert after["finishReason"] == body.get("message", "rejected")
    else:  # a retry goes on with the script
        assert after["state"] == "completed"


def test_pause_resume_complete(client: httpx.Client, emu: DevicEmulator) -> None:
    emu.agent_step_seconds = 60.0
    thread = start(client, "researcher")
    assert action(client, thread, "resume").status_code == 409  # not paused
    assert action(client, thread, "pause").json()["state"] == "paused_for_resume"
    assert read(client, thread)["state"] == "paused_for_resume"
    assert action(client, thread, "resume").json()["state"] == "processing"
    assert action(client, thread, "complete", state="nope").status_code == 400
    # Devic's CLI documents the states in capitals.
    done = action(client, thread, "complete", state="TERMINATED")
    assert done.json()["state"] == "terminated"
    assert [c["source"] for c in read(client, thread)["threadStatesChanges"]][-1] == (
        "api"
    )
    assert action(client, thread, "pause").status_code == 409  # final


def test_feedback_evaluation_and_methods(client: httpx.Client) -> None:
    thread = start(client, "researcher")
    read(client, thread)
    posted = action(client, thread, "feedback", feedback=True, feedbackComment="ok")
    assert posted.status_code == 201
    assert posted.json()["feedbackComment"] == "ok"
    listed = client.get(f"/agents/threads/{thread}/feedback").json()
    assert [f["_id"] for f in listed] == [posted.json()["_id"]]
    assert action(client, thread, "evaluate").status_code == 201
    evaluation = client.get(f"/agents/threads/{thread}/evaluation").json()
    assert evaluation["score"] == 1.0
    assert client.get(f"/agents/threads/{thread}/approval").status_code == 405
    assert action(client, thread, "evaluation").status_code == 405


def test_costs(client: httpx.Client) -> None:
    thread = start(client, "researcher")
    usage = read(client, thread)["tokenUsage"]
    summary = client.get("/agents/agents/researcher/costs/summary").json()
    assert summary["inputTokens"] == usage["inputTokens"]
    assert summary["threads"] == 1
    daily = client.get("/agents/agents/researcher/costs/daily").json()
    assert daily["entries"] == [summary]
    assert client.get("/agents/agents/nobody/costs/daily").status_code == 404


# ----------------------------------------------------------- every state


def test_every_state_is_reachable(client: httpx.Client, emu: DevicEmulator) -> None:
    seen: set[str] = set()
    ends = [
        "failed",
        "terminated",
        "guardrail_trigger",
        "waiting_for_response",
        "limit_exceeded",
        "under_construction",
    ]
    for state in ends:
        emu.add_agent(f"end-{state}", [AgentStep.end(state, f"why {state}")])
        body = read(client, start(client, f"end-{state}"))
        seen.update(seen_states(body))
        if state == "under_construction":  # not final: the script goes on
            assert body["state"] == "completed"
        else:
            assert body["state"] == state
            assert body["finishReason"] == f"why {state}"
        if state == "limit_exceeded":
            assert body["limitExceeded"]["resetsAt"] == body["pausedUntil"]
            assert body["pausedUntil"] > time.time() * 1000 + 50_000
    emu.add_agent("sub", [AgentStep.say("sub done")])
    emu.add_agent("boss", [AgentStep.hand_off("sub", "part"), AgentStep.say("ok")])
    boss = start(client, "boss")
    # One read plays the hand-off, then follows the sub-thread to its end.
    body = read(client, boss)
    seen.update(seen_states(body))
    (sub,) = body["handOffSubThreadIds"]
    sub_body = read(client, sub)
    assert sub_body["isSubthread"] is True
    assert sub_body["parentThreadId"] == boss
    assert sub_body["threadContent"][0]["content"] == {"message": "part"}
    assert body["state"] == "completed"
    assert "handed_off" in seen_states(body)
    emu.add_agent("napper", [AgentStep.pause(30.0), AgentStep.say("awake")])
    napper = read(client, start(client, "napper"))
    assert napper["state"] == "paused"
    assert napper["pausedUntil"] > time.time() * 1000 + 20_000
    seen.update(seen_states(napper))
    approval = start(client, "approver")
    seen.update(seen_states(read(client, approval)))
    seen.add(action(client, approval, "approval", action="rejected").json()["state"])
    emu.agent_step_seconds = 60.0  # it stays queued
    running = start(client, "researcher")
    seen.add(action(client, running, "pause").json()["state"])
    assert seen == set(AGENT_STATES)


def test_hand_off_parent_waits_for_its_sub_thread(
    client: httpx.Client, emu: DevicEmulator
) -> None:
    emu.add_agent("sub", [AgentStep.approval("ok?")])
    emu.add_agent("boss", [AgentStep.hand_off("sub"), AgentStep.say("ok")])
    boss = start(client, "boss")
    body = read(client, boss)
    assert body["state"] == "handed_off"
    (sub,) = body["pendingHandOffSubThreadIds"]
    assert read(client, sub)["state"] == "paused_for_approval"
    action(client, sub, "approval", action="approved")
    done = read(client, boss)
    assert done["state"] == "completed"
    assert "pendingHandOffSubThreadIds" not in done


def test_steps_take_their_time() -> None:
    emu = emulator(step=0.05)
    with client_of(emu) as client:
        thread = start(client, "researcher")
        assert read(client, thread)["state"] == "queued"
        deadline = time.monotonic() + 5
        states = {"queued"}
        while time.monotonic() < deadline:
            state = read(client, thread)["state"]
            states.add(state)
            if state == "completed":
                break
            time.sleep(0.02)
        assert states == {"queued", "processing", "completed"}


def test_reset_forgets_threads_not_agents(
    client: httpx.Client, emu: DevicEmulator
) -> None:
    thread = start(client, "researcher")
    emu.reset()
    assert client.get(f"/agents/threads/{thread}").status_code == 404
    assert client.get("/agents/researcher").status_code == 200


# --------------------------------------------------------- the command line


@pytest.mark.allow_hosts(["127.0.0.1"])
def test_command_line_serves_the_ready_agents() -> None:
    command = [*EMULATOR, "--dialect", "platform", "--api-key", KEY]
    command += ["--agent-step-seconds", "0"]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        try:
            assert process.stdout is not None
            match = BANNER.match(process.stdout.readline())
            assert match
            lines = []
            while not lines or not lines[-1].startswith("  Agents"):
                lines.append(process.stdout.readline())
            listed = [process.stdout.readline().split()[0] for _ in READY_AGENTS]
            assert listed == list(READY_AGENTS)
            headers = {"Authorization": f"Bearer {KEY}"}
            with httpx.Client(base_url=f"{match[1]}/api/v1", headers=headers) as http:
                agents = http.get("/agents").json()["agents"]
                assert [a["_id"] for a in agents] == list(READY_AGENTS)
                outcomes = {}
                for name in READY_AGENTS:
                    made = http.post(f"/agents/{name}/threads", json={"message": "m"})
                    thread = made.json()["_id"]
                    outcomes[name] = http.get(f"/agents/threads/{thread}").json()[
                        "state"
                    ]
        finally:
            process.terminate()
            process.wait(timeout=10)
    assert outcomes == {
        "researcher": "completed",
        "approver": "paused_for_approval",
        "delegator": "completed",
        "patient": "paused",
        "failing-agent": "failed",
        "limited-agent": "limit_exceeded",
    }
