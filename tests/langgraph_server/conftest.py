"""The `langgraph_server` tests: the example deployment under `langgraph dev`.

`examples/langgraph_server` (copied to a temporary folder, so the server's
`.langgraph_api` state stays out of the checkout) is served by `langgraph dev`
in a subprocess, with ChatDevic pointed at an emulator on 127.0.0.1, and
driven with `langgraph_sdk`. Sockets: 127.0.0.1 only; tracing, analytics and
version checks are switched off, so nothing leaves the machine.

They need the `server` extra (`pip install -e ".[server]"`; the in-memory
server needs Python 3.11+). Without it they skip with that reason: `.ci/run`
installs it in the dev venv only, so the dev job runs them and the floors and
sdist jobs skip them. Where it is installed, nothing else makes them skip:
under `CI=true` as anywhere, a server that does not start fails.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from langchain_devic.testing import (
    CallTools,
    ClientCall,
    Conversation,
    DevicEmulator,
    Pause,
    ServerTool,
    Write,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "langgraph_server"
LOOPBACK = ["127.0.0.1"]
#: The modules of the `server` extra: the CLI, the in-memory server, the SDK.
SERVER_MODULES = ("langgraph_cli", "langgraph_api", "langgraph_runtime_inmem")
CLIENT_MODULES = ("langgraph_sdk",)
#: Seconds `langgraph dev` may take to answer /ok (it starts in ~3 s here).
START_SECONDS = 60.0
#: Seconds it may take to exit after SIGTERM before it is killed.
STOP_SECONDS = 10.0
#: How much of the server's output a failing test shows.
LOG_TAIL_CHARS = 6000
#: Concurrent runs the server takes (`langgraph dev` defaults to 1).
JOBS = 4

#: The emulator's assistants (the example's settings name them).
WRITER = "writer"
PLANNER = "planner"
#: Words in a user message that make the writer do something else.
SLOWLY = "slowly"
WHAT_TIME = "what time"
#: The writer's server-side step, reported as `devic_progress`.
LOOKUP_SUMMARY = "Looking it up"
#: The slow run: this many pauses of PAUSE_SECONDS (a stop lands between two).
SLOW_PAUSES = 150
PAUSE_SECONDS = 0.2
SLOW_END = "This line is never written when the run is stopped."

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_OTHER_PORT = re.compile(r"using port (\d+) instead")


def missing_extra() -> str | None:
    """Why the `server` extra cannot run here, or `None`."""
    missing = [
        name
        for name in SERVER_MODULES + CLIENT_MODULES
        if importlib.util.find_spec(name) is None
    ]
    if not missing:
        return None
    return (
        f"the server extra is not installed (no {', '.join(missing)}): "
        "pip install -e '.[server]' (Python 3.11+; .ci/run installs it in the "
        "dev venv only)"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Allow every test here loopback sockets only."""
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.path).startswith(here):
            item.add_marker(pytest.mark.allow_hosts(LOOPBACK))


# ----------------------------------------------------------------- emulator


def writer(conversation: Conversation) -> Any:
    """`assistant_agent`'s assistant, and `delegating_agent`'s specialist.

    It calls `local_time` when asked the time and given the tool, runs slowly
    when asked to (pauses a stop can end), and otherwise looks something up
    (a server-side step) and writes `Reply <turn> from writer: <message>` in
    four pieces.
    """
    message = conversation.message
    if conversation.tool_results:
        return f"It is {conversation.tool_results[-1]['content']}."
    if SLOWLY in message:
        return [
            Write("Starting slowly.", pieces=1, interval=0),
            *[Pause(PAUSE_SECONDS)] * SLOW_PAUSES,
            Write(SLOW_END, pieces=1, interval=0),
        ]
    if WHAT_TIME in message and "local_time" in conversation.tool_names:
        return CallTools(ClientCall("local_time", {"city": "Lisbon"}))
    return [
        ServerTool("lookup", summary=LOOKUP_SUMMARY, seconds=0.05),
        Write(f"Reply {conversation.turn} from writer: {message}", interval=0.03),
    ]


def planner(conversation: Conversation) -> Any:
    """`delegating_agent`'s planner: asks the specialist, then reports back."""
    if conversation.tool_results:
        return f"The specialist says: {conversation.tool_results[-1]['content']}"
    return CallTools(ClientCall("ask_specialist", {"message": conversation.message}))


@pytest.fixture(scope="module")
def api_key() -> str:
    """The emulator's key for this module (random: other programs cannot guess it)."""
    return secrets.token_urlsafe(24)


@pytest.fixture(scope="module")
def emulator(api_key: str) -> DevicEmulator:
    """The platform emulator the server's ChatDevic talks to, on 127.0.0.1."""
    reason = missing_extra()
    if reason:
        pytest.skip(reason)
    return DevicEmulator(
        api_key=api_key,
        dialect="platform",
        assistants={WRITER: writer, PLANNER: planner},
    )


# ------------------------------------------------------------------- server


@dataclass
class Server:
    """A running `langgraph dev`: its URL and its output so far."""

    url: str
    log: Path
    process: subprocess.Popen[bytes]

    def output(self) -> str:
        text = self.log.read_text(encoding="utf-8", errors="replace")
        return _ANSI.sub("", text)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def server_environment(emu_url: str, api_key: str) -> dict[str, str]:
    """The server's environment: ChatDevic on the emulator, nothing phoning home."""
    dropped = ("DEVIC_", "LANGSMITH_", "LANGCHAIN_", "LANGGRAPH_", "OPENAI_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    env.update(
        DEVIC_API_KEY=api_key,
        DEVIC_BASE_URL=emu_url,
        DEVIC_ASSISTANT_ID=WRITER,
        DEVIC_PLANNER_ASSISTANT_ID=PLANNER,
        # No LangSmith tracing (and so no Studio or organisation look-up).
        LANGSMITH_TRACING="false",
        LANGCHAIN_TRACING_V2="false",
        # The CLI's usage analytics and the server's PyPI version check.
        LANGGRAPH_CLI_NO_ANALYTICS="1",
        LANGGRAPH_NO_VERSION_CHECK="true",
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
        PYTHONUNBUFFERED="1",
    )
    return env


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group, then SIGKILL it if it lingers."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(STOP_SECONDS)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(STOP_SECONDS)


def _wait_ready(server: Server, deadline: float) -> None:
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(
                f"langgraph dev exited with {server.process.returncode}:\n"
                + server.output()[-LOG_TAIL_CHARS:]
            )
        moved = _OTHER_PORT.search(server.output())
        if moved:  # the port was taken meanwhile: the CLI picked another
            server.url = f"http://127.0.0.1:{moved.group(1)}"
        try:
            if httpx.get(f"{server.url}/ok", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    pytest.fail(
        f"langgraph dev did not answer /ok within {START_SECONDS:g} s:\n"
        + server.output()[-LOG_TAIL_CHARS:]
    )


@pytest.fixture(scope="module")
def langgraph_server(
    emulator: DevicEmulator, api_key: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """`langgraph dev` serving a copy of the example, stopped at the end."""
    work = tmp_path_factory.mktemp("langgraph_server")
    app = work / "app"
    shutil.copytree(EXAMPLE, app, ignore=shutil.ignore_patterns("__pycache__"))
    log = work / "server.log"
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "langgraph_cli",
        "dev",
        "--no-browser",
        "--no-reload",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--config",
        "langgraph.json",
        "--n-jobs-per-worker",
        str(JOBS),
        "--server-log-level",
        "INFO",
    ]
    with emulator.serve() as emu_server, log.open("wb") as out:
        env = server_environment(emu_server.base_url, api_key)
        process = subprocess.Popen(
            command,
            cwd=app,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group: stopped whole at the end
        )
        server = Server(f"http://127.0.0.1:{port}", log, process)
        try:
            _wait_ready(server, time.monotonic() + START_SECONDS)
            yield server
        finally:
            _stop(process)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failing test here shows the tail of the server's output."""
    report = yield
    server = getattr(item, "funcargs", {}).get("langgraph_server")
    if report.failed and isinstance(server, Server):
        report.sections.append(
            ("langgraph dev output (tail)", server.output()[-LOG_TAIL_CHARS:])
        )
    return report
