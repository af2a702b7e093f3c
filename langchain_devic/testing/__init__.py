"""A local Devic emulator for tests, notebooks and demos.

One core, two faces: an in-process `httpx` transport (no sockets) and a real
HTTP server on a loopback port. Both check the bearer token, keep each
conversation's history, answer deterministically, and play injected faults::

    from langchain_devic.testing import DevicEmulator, Fault

    emu = DevicEmulator(assistants=["support"])
    emu.inject(Fault.status(429, retry_after=0))
    client = httpx.Client(transport=emu.transport(), base_url=emu.base_url)

    with emu.serve() as server:  # http://127.0.0.1:<port>/v1
        ...

With `dialect="platform"` it is the Devic platform as Devic's own clients
see it: sends answered with a `ChatMessage` list, or (`?async=true`) a run in
the background followed through the realtime view, an SSE stream, stop, the
chat history and the chat list. A reply function may return a script of steps
(`Write`, `ServerTool`, `HandOff`, `Buffer`, `Pause`, `Fail`, `LimitExceeded`,
`CallTools`) that a run plays in real time::

    def support(conversation):
        return [ServerTool("search", summary="Searching"), "Found it."]

    emu = DevicEmulator(dialect="platform", assistants={"support": support})

`CallTools` calls the caller's own tools (declared in the send's `tools`): the
run waits in `waiting_for_tool_response` until the client posts every result
to the tool-response route, then the reply function is asked again and sees
them::

    def weather(conversation):
        if not conversation.tool_results:
            return CallTools(ClientCall("get_weather", {"city": "Paris"}))
        return f"It is {conversation.tool_results[0]['content']}."

From a shell: `python -m langchain_devic.testing --port 8765` (it prints its
URL and a random API key, new at each start, unless `--api-key` gives one).

This module is the facade: `DevicEmulator` is the core (`_core`: each request's
entry) with its faces (`_transport`, `_server`). Below the core, one job per
module: the state and its inspection (`_state`), routing and request checks
(`_routes`), the send and its run (`_turns`), the other chat routes
(`_answers`), an exchange's waits (`_exchanges`), the public value types
(`_records`); each chat's state, run and stream are in `_chats`, the run steps
in `_script`, faults in `_faults` and every answer body in `_render`. None of
them imports the client they judge.
"""

from __future__ import annotations

from langchain_devic.testing._agents import (
    AGENT_STATES,
    READY_AGENTS,
    AgentScript,
    AgentStep,
    ReadyAgent,
)
from langchain_devic.testing._core import (
    DEFAULT_API_KEY,
    Conversation,
    Core,
    RecordedRequest,
    ReplyFn,
)
from langchain_devic.testing._faults import Fault, FaultKind
from langchain_devic.testing._ready import READY_ASSISTANTS, ReadyAssistant
from langchain_devic.testing._render import Route
from langchain_devic.testing._script import (
    Buffer,
    CallTools,
    ClientCall,
    Fail,
    HandOff,
    LimitExceeded,
    Pause,
    RunStatus,
    ServerTool,
    Step,
    Write,
)
from langchain_devic.testing._server import EmulatorServer
from langchain_devic.testing._transport import EmulatorTransport

__all__ = [
    "AGENT_STATES",
    "DEFAULT_API_KEY",
    "READY_AGENTS",
    "READY_ASSISTANTS",
    "AgentScript",
    "AgentStep",
    "Buffer",
    "CallTools",
    "ClientCall",
    "Conversation",
    "DevicEmulator",
    "EmulatorServer",
    "EmulatorTransport",
    "Fail",
    "Fault",
    "FaultKind",
    "HandOff",
    "LimitExceeded",
    "Pause",
    "ReadyAgent",
    "ReadyAssistant",
    "RecordedRequest",
    "ReplyFn",
    "Route",
    "RunStatus",
    "ServerTool",
    "Step",
    "Write",
]


class DevicEmulator(Core):
    """A faithful local Devic: bearer auth, conversations, scripted replies, faults.

    One core serves two faces: `transport()` (an in-process `httpx` transport,
    no sockets) and `serve()` (a real HTTP server on a loopback port). Both give
    the same answers for the same requests and random seed.

    Routes, under `base_path` and `/api/v1` alike, each `{prefix}/assistants/{id}/…`:
    `POST messages` (a send; `?async=true` starts a run in the platform
    dialect), `GET chats` (the chat list, newest first), `GET chats/{chat}`
    (the history, with token totals), `GET chats/{chat}/realtime`,
    `GET chats/{chat}/stream` (SSE), `POST chats/{chat}/stop` and
    `POST chats/{chat}/tool-response` (the client's results for the calls a
    `CallTools` step made; 400 unless the run waits for exactly those). The
    agents' routes live beside them, `{prefix}/agents/…`: scripted agent
    threads (`add_agent` with `AgentStep`s; see `langchain_devic.testing._agents`).
    Any
    other path is 404, another method 405. A refusal answers at once; latency
    only delays a turn.

    A run waiting for the client's tools holds its chat (a send to it is 409)
    and its thread until every call is answered, it is stopped, or `reset()`
    cancels it; a synchronous send whose run comes to such a wait answers
    then, with the turn so far. `wait_idle()` counts a waiting run as idle.

    Args:
        api_key: The bearer token the emulator accepts; by default the fixed,
            documented test key `DEFAULT_API_KEY` (`"emulator-key"`), for
            emulators a test or notebook builds in-process. Give `serve()` a
            key of your own when other programs on the machine should not
            guess it: `python -m langchain_devic.testing` picks a new random
            key at each start (printed once) unless `--api-key` gives one.
        assistants: `None` accepts any assistant id with the default reply;
            otherwise only these ids exist (a mapping gives each its reply
            function, `None` meaning the default reply). A reply function
            returns the reply text, answer fields to merge in, or a script
            (`Write`, `ServerTool`, `CallTools`, ... ; a string in it is a
            `Write`).
        dialect: `"flat"` (the seed contract) answers a send with the flat
            body (`chatUuid`, `message`, `tokens_used`, `timestamp`), ignores
            `?async=true`, and refuses with `{"success": false, "error":
            {"message", "code"}}`; `"platform"` answers a send with the chat
            as a list of `ChatMessage` (the turn's last reply carries the
            turn's counts as `messageTokenUsage`), runs `?async=true` sends in
            the background
            (answering 201 `{"chatUid"}`), and refuses NestJS-style with
            `{"statusCode", "message", "error": <CODE>}`.
        random_seed: Makes conversation ids deterministic; `None` picks a
            new seed, so ids differ at each start.
        base_path: The path prefix of the routes (`/api/v1` is always served
            too).
        sse: Whether the stream route is served; `False` answers it 404, so
            clients fall back to polling.
        envelope: In the platform dialect, wrap every 2xx JSON answer as
            `{"success": true, "data": …}`.
        write_pieces: How many pieces a run writes a reply (or a `Write`
            without its own) in.
        write_interval: Seconds before each piece.
        accept_any_assistant: Whether any assistant id exists (with the
            default reply); `None` means yes exactly when `assistants` is
            `None`. Otherwise an unknown id answers 404, as on Devic.
        realtime_ttl: Seconds a chat's realtime view lives after its last
            update; then it reads `completed` (rebuilt from the history) and
            tool responses are refused, as Devic's expired realtime key is.

    Attributes:
        dialect: The answer shape; may be switched between requests.
        random_seed: Seeds the conversation ids; may be changed between requests.
        latency: Seconds every send waits before its turn starts (a refusal,
            such as the 409 of a busy chat, answers at once).
        fault_policy: Consulted (with the recorded request) for a send when no
            fault is queued for it; return a `Fault` to apply or `None`. Use
            seeded randomness for soak tests.
        sse: Whether the stream route is served.
        envelope: Whether platform answers are enveloped.
        write_pieces: The default pieces of a `Write`.
        write_interval: The default seconds between two pieces of a `Write`.
        sse_keepalive: Seconds of quiet before a stream sends a keep-alive
            comment.
    """

    @property
    def base_url(self) -> str:
        """The base URL to pair with `transport()` (loopback, so plain HTTP is fine)."""
        return f"http://127.0.0.1{self.base_path}"

    def transport(self) -> EmulatorTransport:
        """An `httpx` transport (sync and async) answering from this emulator."""
        return EmulatorTransport(self)

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> EmulatorServer:
        """Serve this emulator over HTTP on a loopback address, in the background.

        Args:
            host: A loopback address (`127.0.0.0/8`, `::1` or `localhost`).
            port: The port; `0` picks a free one (read it from `.port`).

        Returns:
            The running server; use it as a context manager or call `close()`.

        Raises:
            ValueError: If `host` is not a loopback address.
        """
        return EmulatorServer(self, host=host, port=port)
