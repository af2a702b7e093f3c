"""Run the Devic emulator from a shell: `python -m langchain_devic.testing`.

Serves on a loopback port until Ctrl-C (or SIGTERM) and prints the base URL and
the API key to use, once, so a notebook or `curl` can talk to it. The key is a
new random one at each start unless `--api-key` gives one: another program or
user on the machine can reach a loopback port, but cannot guess the key. (An
emulator built in-process, `DevicEmulator()`, keeps the fixed test key
`DEFAULT_API_KEY` unless given another.) With
`--dialect platform` it serves Devic's platform API: message lists, `?async=true`
runs, the realtime view, the SSE stream (unless `--no-sse`), stop, the chat
history and the chat list. The agents' routes serve the ready agents
(`READY_AGENTS`: one completes with tasks, one pauses for approval, one hands
off, one pauses, one fails, one hits a usage limit), one step every
`--agent-step-seconds`.

Other processes (a test's workers, a notebook) can read what it received:
`--log FILE` keeps the request log there as JSON lines, and
`GET /_emulator/requests` (with the API key) answers it as JSON. Neither ever
holds a credential. The log file is created `0600`; a symbolic link at its path
is refused.
"""

from __future__ import annotations

import argparse
import secrets
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from langchain_devic.testing import (
    READY_AGENTS,
    READY_ASSISTANTS,
    DevicEmulator,
    EmulatorServer,
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m langchain_devic.testing",
        description="Serve a local Devic emulator on a loopback address.",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="loopback address (default: 127.0.0.1)"
    )
    parser.add_argument(
        "--port",
        type=int,
        default=8765,
        help="port; 0 picks a free one (default: 8765)",
    )
    parser.add_argument(
        "--api-key",
        metavar="KEY",
        help="bearer token to accept (default: a new random one, printed at start)",
    )
    parser.add_argument(
        "--dialect",
        choices=("flat", "platform"),
        default="flat",
        help="flat: the seed contract's answers; platform: Devic's platform API "
        "(message lists, async runs, realtime, SSE, stop, history) (default: flat)",
    )
    parser.add_argument(
        "--no-sse",
        dest="sse",
        action="store_false",
        help="answer the SSE stream route 404, so clients poll",
    )
    parser.add_argument(
        "--envelope",
        action="store_true",
        help='wrap platform answers as {"success": true, "data": ...}',
    )
    parser.add_argument(
        "--latency",
        type=float,
        default=0.0,
        help="seconds each message waits (default: 0)",
    )
    parser.add_argument(
        "--log",
        metavar="FILE",
        help="keep the request log in FILE as JSON lines (no credentials), "
        "rewritten before each answer (GET "
        f"{EmulatorServer.REQUESTS_PATH} answers it too)",
    )
    parser.add_argument(
        "--random-seed",
        type=int,
        default=None,
        help="makes conversation ids deterministic (default: new ids at each start)",
    )
    parser.add_argument(
        "--accept-any-assistant",
        action="store_true",
        help="answer any assistant id with the echo reply (default: only the "
        "ready assistants; another id is 404, as on Devic)",
    )
    parser.add_argument(
        "--agent-step-seconds",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="seconds each step of a ready agent's thread takes (default: 1)",
    )
    parser.add_argument(
        "--realtime-ttl",
        type=float,
        default=3600.0,
        metavar="SECONDS",
        help="how long a chat's realtime view lives after its last update; "
        "then it reads 'completed' and tool responses are refused (default: 3600)",
    )
    return parser


def _same(path: object, other: str) -> bool:
    """Whether an error's file name is the `--log` path."""
    return isinstance(path, (str, Path)) and Path(path) == Path(other)


def _banner(server: EmulatorServer, dialect: str, accept_any: bool) -> str:
    """What each kind of client sets, and the ready assistants (never the key)."""
    origin = server.base_url.removesuffix(server.emulator.base_path)
    ours = f"{origin}/api/v1" if dialect == "platform" else server.base_url
    lines = [
        f"  Devic's CLI:      DEVIC_BASE_URL={origin}  (the origin; it adds /api/v1)",
        f"  langchain-devic:  DEVIC_BASE_URL={ours}",
        "  Assistants"
        + (" (any other id too, echoing):" if accept_any else " (others are 404):"),
    ]
    width = max(len(name) for name in READY_ASSISTANTS)
    lines += [
        f"    {name:<{width}}  {ready.description}"
        for name, ready in READY_ASSISTANTS.items()
    ]
    lines.append("  Agents (devic agents …; others are 404):")
    width = max(len(name) for name in READY_AGENTS)
    lines += [
        f"    {name:<{width}}  {ready.description}"
        for name, ready in READY_AGENTS.items()
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line, serve until interrupted, and return the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.latency < 0:
        parser.error("--latency must be >= 0")
    if args.agent_step_seconds < 0:
        parser.error("--agent-step-seconds must be >= 0")
    if args.realtime_ttl <= 0:
        parser.error("--realtime-ttl must be > 0")
    if not 0 <= args.port <= 65535:
        parser.error("--port must be in 0..65535")
    if args.api_key is not None and (
        not args.api_key.strip() or args.api_key != args.api_key.strip()
    ):
        parser.error("--api-key must not be empty or have surrounding whitespace")
    api_key = args.api_key or secrets.token_urlsafe(24)

    emulator = DevicEmulator(
        api_key=api_key,
        dialect=args.dialect,
        random_seed=args.random_seed,
        sse=args.sse,
        envelope=args.envelope,
        assistants={name: ready.reply for name, ready in READY_ASSISTANTS.items()},
        accept_any_assistant=args.accept_any_assistant,
        realtime_ttl=args.realtime_ttl,
    )
    for name, ready in READY_ASSISTANTS.items():
        emulator.add_assistant(name, ready.reply, {"description": ready.description})
    for name, agent in READY_AGENTS.items():
        emulator.add_agent(name, agent.script, {"description": agent.description})
    emulator.agent_step_seconds = args.agent_step_seconds
    emulator.latency = args.latency
    try:
        server = EmulatorServer(
            emulator, host=args.host, port=args.port, log_path=args.log
        )
    except ValueError as exc:  # not a loopback address
        parser.error(str(exc))
    except OSError as exc:
        if args.log is not None and exc.filename and _same(exc.filename, args.log):
            # The log is prepared before the port is bound: nothing listened.
            parser.error(f"cannot write --log {args.log}: {exc.strerror or exc}")
        print(
            f"Cannot listen on {args.host}:{args.port}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return 1

    stop = threading.Event()

    def _on_sigterm(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_sigterm)
    print(
        f"Devic emulator listening on {server.base_url} (API key: {api_key})",
        flush=True,
    )
    print(_banner(server, args.dialect, args.accept_any_assistant), flush=True)
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    print("Devic emulator stopped.", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
