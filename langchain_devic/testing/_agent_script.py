"""What an emulated Devic agent does: its script of steps, and the ready agents.

An agent's script is a list of `AgentStep`s (or a function of a thread's
message giving them); `AGENT_STATES` are the states a thread can be in. The
threads that play a script are in `_agent_threads`, the routes in `_agents`.
This module holds only the values, so a script can be written without the
emulator's state.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

__all__ = [
    "AGENT_STATES",
    "FINAL_STATES",
    "READY_AGENTS",
    "WAITING_STATES",
    "AgentScript",
    "AgentStep",
    "ReadyAgent",
    "default_script",
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
FINAL_STATES = frozenset(
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
WAITING_STATES = frozenset({"paused_for_approval", "paused_for_resume"})


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


def _with_message(*steps: AgentStep) -> Callable[[str], list[AgentStep]]:
    """A script of `steps` with the thread's message put where they say `{message}`.

    The ready agents differ only in their steps, so each is one such call in
    the table below rather than a function of its own.
    """

    def script(message: str) -> list[AgentStep]:
        return [
            replace(
                step,
                text=step.text.replace("{message}", message),
                state=step.state.replace("{message}", message),
            )
            for step in steps
        ]

    return script


#: The command line's agents, by id (`python -m langchain_devic.testing`).
READY_AGENTS: Mapping[str, ReadyAgent] = {
    "researcher": ReadyAgent(
        "completes three tasks, then answers",
        _with_message(
            AgentStep.task("Collect sources"),
            AgentStep.task("Compare them"),
            AgentStep.task("Write the summary"),
            AgentStep.say("Summary of: {message}"),
        ),
    ),
    "approver": ReadyAgent(
        "drafts a plan, pauses for approval, then sends it",
        _with_message(
            AgentStep.task("Draft the plan"),
            AgentStep.approval(
                "Send the plan to the customer?", "Plan drafted for: {message}"
            ),
            AgentStep.task("Send the plan"),
            AgentStep.say("Plan sent: {message}"),
        ),
    ),
    "delegator": ReadyAgent(
        "hands off to the researcher agent, then answers",
        _with_message(
            AgentStep.task("Split the work"),
            AgentStep.hand_off("researcher"),
            AgentStep.say("Delegated and done: {message}"),
        ),
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
