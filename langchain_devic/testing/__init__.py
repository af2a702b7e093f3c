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

From a shell: `python -m langchain_devic.testing --port 8765`.

This module is the facade: `DevicEmulator` is the core (`_core`: state, request
log, turns) with its faces (`_transport`, `_server`); faults are in `_faults`
and every answer body in `_render`. None of them imports the client they judge.
"""

from __future__ import annotations

from langchain_devic.testing._core import (
    DEFAULT_API_KEY,
    Conversation,
    Core,
    RecordedRequest,
    ReplyFn,
)
from langchain_devic.testing._faults import Fault, FaultKind
from langchain_devic.testing._server import EmulatorServer
from langchain_devic.testing._transport import EmulatorTransport

__all__ = [
    "DEFAULT_API_KEY",
    "Conversation",
    "DevicEmulator",
    "EmulatorServer",
    "EmulatorTransport",
    "Fault",
    "FaultKind",
    "RecordedRequest",
    "ReplyFn",
]


class DevicEmulator(Core):
    """A faithful local Devic: bearer auth, conversations, scripted replies, faults.

    One core serves two faces: `transport()` (an in-process `httpx` transport,
    no sockets) and `serve()` (a real HTTP server on a loopback port). Both give
    the same answers for the same requests and random seed.

    Args:
        api_key: The bearer token the emulator accepts.
        assistants: `None` accepts any assistant id with the default reply;
            otherwise only these ids exist (a mapping gives each its reply
            function, `None` meaning the default reply).
        dialect: `"flat"` answers the documented flat body (`chatUuid`,
            `message`, `tokens_used`, `timestamp`); `"platform"` answers the
            platform's envelope with a chat object.
        random_seed: Makes conversation ids deterministic.
        base_path: The path prefix of the messages route (`/api/v1` is always
            served too).

    Attributes:
        dialect: The answer shape; may be switched between requests.
        random_seed: Seeds the conversation ids; may be changed between requests.
        latency: Seconds every messages request waits before it is answered.
        fault_policy: Consulted (with the recorded request) when no fault is
            queued; return a `Fault` to apply or `None`. Use seeded randomness
            for soak tests.
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
