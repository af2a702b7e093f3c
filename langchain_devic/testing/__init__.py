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
"""

from langchain_devic.testing._emulator import (
    Conversation,
    DevicEmulator,
    Fault,
    FaultKind,
    RecordedRequest,
    ReplyFn,
)
from langchain_devic.testing._server import EmulatorServer
from langchain_devic.testing._transport import EmulatorTransport

__all__ = [
    "Conversation",
    "DevicEmulator",
    "EmulatorServer",
    "EmulatorTransport",
    "Fault",
    "FaultKind",
    "RecordedRequest",
    "ReplyFn",
]
