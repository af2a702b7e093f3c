"""The `python -m langchain_devic` command line: `demo` (the tour) and `chat`.

Both subcommands pick their Devic the same way: live Devic when `DEVIC_API_KEY`
is set, an emulator you started when `--base-url`/`DEVIC_BASE_URL` points at a
loopback address, else the bundled emulator, started for the run. The API key
is never printed: errors show `str(exc)`, which the package keeps token-free.

A bad argument is one line, `error: ...`, on stderr and exit status 2, checked
before anything starts; the library's log records are not printed (what the
user must know comes as an error). Everything printed that came from the
server (replies, progress, chat ids, error messages) goes through
`langchain_devic._terminal`, so it cannot carry escape sequences or control
characters to the terminal.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import secrets
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn, TextIO

import httpx
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from pydantic import SecretStr, ValidationError

from langchain_devic._terminal import StreamPrintable, printable
from langchain_devic._version import __version__
from langchain_devic._wire import DEFAULT_BASE_URL, is_loopback_host
from langchain_devic.chat_models import ChatDevic
from langchain_devic.errors import FATAL_ERRORS, DevicError, DevicNotFoundError

__all__ = ["Endpoint", "main"]

#: The assistant id used when none is given and an emulator answers.
EMULATOR_ASSISTANT = "demo-assistant"

#: The longest conversation or assistant id the command accepts, in characters.
MAX_ID_LENGTH = 256
#: Characters an id cannot hold: it is one segment of a URL path.
_PATH_CHARACTERS = frozenset("/?#%")

#: The usage error of a one-shot message that is only blanks.
EMPTY_MESSAGE = (
    "MESSAGE is empty; give the text to send, or none to chat interactively."
)

#: What the emulator's default assistant does, so its replies make sense.
EMULATOR_NOTE = (
    "(The emulator's assistant numbers its turns in each conversation and echoes "
    "your message.)"
)

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """The command line or the environment cannot work as given (exit code 2)."""


@dataclass(frozen=True)
class Endpoint:
    """Where the commands send messages, and how to describe it to the user."""

    base_url: str
    api_key: SecretStr
    assistant_id: str
    description: str
    is_emulator: bool = False

    def chat_model(self) -> ChatDevic:
        """A `ChatDevic` for this endpoint; bad settings raise `UsageError`."""
        try:
            return ChatDevic(
                assistant_id=self.assistant_id,
                api_key=self.api_key,
                base_url=self.base_url,
            )
        except ValidationError as exc:
            raise UsageError(_validation_text(exc)) from None


def _validation_text(exc: ValidationError) -> str:
    """The first validation message, without pydantic's prefix (input is hidden)."""
    errors = exc.errors()
    text = str(errors[0]["msg"]) if errors else str(exc)
    return text.removeprefix("Value error, ")


@contextlib.contextmanager
def open_endpoint(
    assistant: str | None, base_url: str | None, environ: Mapping[str, str]
) -> Iterator[Endpoint]:
    """Yield the Devic to talk to, starting (and later stopping) an emulator if needed.

    Order: `DEVIC_API_KEY` set → that Devic (`--base-url`, `DEVIC_BASE_URL` or the
    default URL; the assistant from `--assistant` or `DEVIC_ASSISTANT_ID`, which
    a loopback URL does not need: an emulator's assistant is then used). No key
    but a loopback `--base-url`/`DEVIC_BASE_URL` → the emulator listening there,
    with the fixed test key `DEFAULT_API_KEY` (an emulator built in-process with
    no key of its own accepts it; `python -m langchain_devic.testing` prints a
    random key to set as `DEVIC_API_KEY`). Otherwise the bundled emulator on
    127.0.0.1.
    """
    key = environ.get("DEVIC_API_KEY", "")
    url = base_url or environ.get("DEVIC_BASE_URL") or None
    if url is not None:
        _check_url(url, "--base-url" if base_url else "DEVIC_BASE_URL")
    if assistant is None and environ.get("DEVIC_ASSISTANT_ID"):
        assistant = _checked_id(environ["DEVIC_ASSISTANT_ID"], "DEVIC_ASSISTANT_ID")
    if key:
        if url is not None and _is_loopback_url(url) and assistant is None:
            yield Endpoint(
                url,
                SecretStr(key),
                EMULATOR_ASSISTANT,
                f"Using the Devic emulator at {url} (DEVIC_API_KEY set)",
                is_emulator=True,
            )
            return
        if assistant is None:
            msg = (
                "DEVIC_API_KEY is set but no assistant id is: set DEVIC_ASSISTANT_ID "
                "or pass --assistant ID (unset DEVIC_API_KEY to use the emulator)."
            )
            raise UsageError(msg)
        url = url or DEFAULT_BASE_URL
        yield Endpoint(
            url, SecretStr(key), assistant, f"Using Devic at {url} (DEVIC_API_KEY set)"
        )
        return
    if url is not None:
        if not _is_loopback_url(url):
            msg = (
                f"DEVIC_API_KEY is not set; it is needed to talk to {url}. Set it, or "
                "leave out --base-url/DEVIC_BASE_URL to use the bundled emulator."
            )
            raise UsageError(msg)
        from langchain_devic.testing import DEFAULT_API_KEY  # emulator only

        yield Endpoint(
            url,
            SecretStr(DEFAULT_API_KEY),
            assistant or EMULATOR_ASSISTANT,
            f"Using the Devic emulator at {url} with the fixed test key (no "
            "DEVIC_API_KEY set; set it to the key an emulator printed at start)",
            is_emulator=True,
        )
        return

    token = secrets.token_urlsafe(24)
    # The bundled emulator and the demo's scenes load only when they are used:
    # a chat with live Devic never imports them.
    from langchain_devic._demo import demo_assistant
    from langchain_devic.testing import DevicEmulator

    emulator = DevicEmulator(api_key=token, dialect="platform")
    emulator.add_assistant(EMULATOR_ASSISTANT, demo_assistant)
    with emulator.serve() as server:
        yield Endpoint(
            server.base_url,
            SecretStr(token),
            assistant or EMULATOR_ASSISTANT,
            f"Using the bundled Devic emulator at {server.base_url} "
            "(no DEVIC_API_KEY set)",
            is_emulator=True,
        )


def _is_loopback_url(url: str) -> bool:
    try:
        return is_loopback_host(httpx.URL(url.strip()).host)
    except httpx.InvalidURL:
        return False


def _check_url(url: str, source: str) -> None:
    """Refuse a URL that cannot work, without repeating a password it holds."""
    try:
        parsed = httpx.URL(url.strip())
        port = parsed.port
    except (httpx.InvalidURL, ValueError):
        msg = f"{source} is not a valid URL: {url!r}."
        raise UsageError(msg) from None
    if parsed.userinfo:
        msg = (
            f"{source} must not hold a user name or password (the key is read "
            "from DEVIC_API_KEY only)."
        )
        raise UsageError(msg)
    if port is not None and not 0 < port <= 65535:
        msg = f"{source} has an invalid port {port}: ports are 1 to 65535."
        raise UsageError(msg)


def _checked_id(value: str, source: str) -> str:
    """`value` if it can be one id in a URL path, else a `UsageError`.

    Blank, `.` or `..`, a `/`, `?`, `#` or `%`, a control character, or more
    than `MAX_ID_LENGTH` characters cannot name a conversation or an assistant.
    """
    if not value.strip():
        msg = f"{source} is empty; give an id, or leave {source} out."
        raise UsageError(msg)
    if (
        value.strip() in {".", ".."}
        or value != value.strip()
        or len(value) > MAX_ID_LENGTH
        or not _PATH_CHARACTERS.isdisjoint(value)
        or printable(value) != value
        or any(c in value for c in "\n\t")
    ):
        shown = value if len(value) <= 60 else value[:57] + "..."
        msg = (
            f"{source} {shown!r} is not a valid id: an id has no blanks around "
            "it, no '/', '?', '#', '%' or control characters, is not '.' or "
            f"'..', and is at most {MAX_ID_LENGTH} characters."
        )
        raise UsageError(msg)
    return value


def _check_args(args: argparse.Namespace) -> None:
    """Refuse, before anything starts, a flag given a value that cannot work."""
    if args.assistant is not None:
        _checked_id(args.assistant, "--assistant")
    if args.base_url is not None and not args.base_url.strip():
        msg = "--base-url is empty; give a URL, or leave --base-url out."
        raise UsageError(msg)
    if getattr(args, "chat_uuid", None) is not None:
        _checked_id(args.chat_uuid, "--chat-uuid")
    if getattr(args, "message", None) and not " ".join(args.message).strip():
        raise UsageError(EMPTY_MESSAGE)


# ------------------------------------------------------------------ formatting


def turn_info(reply: AIMessage) -> str:
    """`chat <chatUuid> · <n> tokens` for one reply (what a turn cost, and where)."""
    chat = reply.response_metadata.get("chat_uuid") or "(none: cannot be continued)"
    chat = printable(str(chat))
    usage = reply.usage_metadata
    if usage is None:
        tokens = "tokens not reported"
    elif usage["input_tokens"]:
        tokens = (
            f"{usage['total_tokens']} tokens "
            f"({usage['input_tokens']} in, {usage['output_tokens']} out)"
        )
    else:
        tokens = f"{usage['total_tokens']} tokens"
    return f"chat {chat} · {tokens}"


class ProgressPrinter(BaseCallbackHandler):
    """Prints a run's progress (status changes, server-side steps) as faint lines.

    It also remembers the chat the run belongs to, so an interrupted turn can
    still name it.
    """

    def __init__(self, stream: TextIO, indent: str = "") -> None:
        self.stream = stream
        self.indent = indent
        self.chat_uuid: str | None = None

    def on_custom_event(self, name: str, data: Any, **kwargs: Any) -> None:
        """Print one `devic_progress` event."""
        if name != "devic_progress" or not isinstance(data, dict):
            return
        self.chat_uuid = data.get("chat_uuid") or self.chat_uuid
        detail = data.get("summary") or data.get("status")
        if data.get("tool"):
            detail = f"{detail} ({data['tool']})"
        line = printable(f"{self.indent}· {detail}").replace("\n", " ")
        print(_dim(line, self.stream), file=self.stream, flush=True)


def stream_turn(
    model: ChatDevic,
    text: str,
    chat_uuid: str | None,
    progress: ProgressPrinter,
    out: TextIO,
    previous: AIMessage | None = None,
) -> AIMessage:
    """Send one turn; print the reply as it is written; return it whole.

    The text goes to `out` (ending with a line break), without escape
    sequences or control characters (`printable`), progress to the printer's
    stream. `previous`, the chat's last reply, tells the model the chat's token
    totals so far (no history read to count this turn's usage).
    """
    text_out = StreamPrintable()
    reply: AIMessageChunk | None = None
    config: RunnableConfig = {"callbacks": [progress]}
    turn: list[BaseMessage] = [HumanMessage(text)]
    if (
        previous is not None
        and previous.response_metadata.get("chat_uuid") == chat_uuid
    ):
        turn.insert(0, previous)
    for chunk in model.stream(turn, config=config, chat_uuid=chat_uuid):
        print(text_out.feed(chunk.text), end="", file=out, flush=True)
        reply = chunk if reply is None else reply + chunk
    print(text_out.flush(), file=out, flush=True)
    if reply is None:  # pragma: no cover - a stream always ends with a chunk
        msg = "Devic's run ended without a reply."
        raise DevicError(msg)
    return reply


def _dim(text: str, stream: TextIO) -> str:
    """Faint text on a colour terminal (honours `NO_COLOR`), plain otherwise."""
    if stream.isatty() and "NO_COLOR" not in os.environ:
        return f"\x1b[2m{text}\x1b[0m"
    return text


def _error(exc: BaseException | str) -> None:
    """One line on stderr: `error: ...` (server text in it made printable)."""
    text = printable(str(exc)).replace("\n", " ").replace("\t", " ")
    print(f"error: {text}", file=sys.stderr)


def _interrupted(chat_uuid: str | None) -> int:
    """Report a Ctrl-C that landed during a turn; return the exit status (130).

    The message had been sent, so Devic may still run the turn: say where to
    look before sending it again. A new conversation's id is known once Devic
    accepted the run (its progress names it); before that, it is not.
    """
    print(file=sys.stderr)  # past the ^C the terminal echoed
    if chat_uuid is not None:
        print(f"chat id: {printable(chat_uuid)}", file=sys.stderr)
        print(
            "interrupted: the turn may still complete on Devic (a platform run "
            "was asked to stop after its current step); check the conversation "
            "before sending the message again.",
            file=sys.stderr,
        )
    else:
        print(
            "interrupted: the turn may still complete on Devic, and may have "
            "opened a new conversation whose id is unknown (Ctrl-C came before "
            "Devic's answer); check before sending the message again.",
            file=sys.stderr,
        )
    return EXIT_INTERRUPTED


def _is_stale_chat(exc: DevicError, chat_uuid: str | None) -> bool:
    """Whether `exc` may say the conversation being continued is gone.

    A 404 while continuing a chat offers `/new`; a 404 on a new conversation
    means the assistant is unknown (fatal). No error code is read: Devic's are
    not documented (the tool follows the same rule).
    """
    return isinstance(exc, DevicNotFoundError) and chat_uuid is not None


# ------------------------------------------------------------------- commands


def _run_demo(args: argparse.Namespace) -> int:
    from langchain_devic._demo import run_tour

    with open_endpoint(args.assistant, args.base_url, os.environ) as endpoint:
        model = endpoint.chat_model()
        print(f"langchain-devic {__version__}: a short tour")
        print(endpoint.description)
        if endpoint.is_emulator:
            print(EMULATOR_NOTE)
        run_tour(model, sys.stdout)
    return EXIT_OK


def _run_chat(args: argparse.Namespace) -> int:
    with open_endpoint(args.assistant, args.base_url, os.environ) as endpoint:
        model = endpoint.chat_model()
        if endpoint.is_emulator or not args.message:
            # A one-shot call to a configured Devic stays quiet on stderr.
            print(endpoint.description, file=sys.stderr)
        if args.message:
            return _one_shot(model, " ".join(args.message), args.chat_uuid)
        return _interactive(model, endpoint.assistant_id, args.chat_uuid)


def _one_shot(model: ChatDevic, text: str, chat_uuid: str | None) -> int:
    """Send one message: the reply on stdout, `chat … · tokens` on stderr."""
    if not text.strip():
        raise UsageError(EMPTY_MESSAGE)
    progress = ProgressPrinter(sys.stderr)
    try:
        reply = stream_turn(model, text, chat_uuid, progress, sys.stdout)
    except KeyboardInterrupt:
        return _interrupted(chat_uuid or progress.chat_uuid)
    print(turn_info(reply), file=sys.stderr)
    return EXIT_OK


def _interactive(model: ChatDevic, assistant_id: str, chat_uuid: str | None) -> int:
    """A terminal conversation that keeps its chatUuid from turn to turn.

    Errors a person must fix end it (status 1), except a 404 for the chat being
    continued, which offers `/new`; Ctrl-C during a reply ends it with 130.
    """
    if sys.stdin.isatty():
        with contextlib.suppress(ImportError):
            import readline  # noqa: F401 - line editing and history for input()
    print(
        f"Chatting with assistant {assistant_id!r}. /new starts a new conversation; "
        "Ctrl-D or /exit quits.",
        file=sys.stderr,
    )
    previous: AIMessage | None = None
    while True:
        try:
            text = input("you> ").strip()
        except (EOFError, KeyboardInterrupt):
            print()
            return EXIT_OK
        if not text:
            continue
        if text in {"/exit", "/quit"}:
            return EXIT_OK
        if text == "/new":
            chat_uuid = None
            note = "(a new conversation starts with your next message)"
            print(_dim(note, sys.stdout))
            continue
        progress = ProgressPrinter(sys.stderr, indent="       ")
        try:
            print("devic> ", end="", flush=True)
            reply = stream_turn(model, text, chat_uuid, progress, sys.stdout, previous)
        except KeyboardInterrupt:
            return _interrupted(chat_uuid or progress.chat_uuid)
        except DevicError as exc:
            print()
            _error(exc)
            if _is_stale_chat(exc, chat_uuid):
                print(
                    f"Devic does not know chat {printable(str(chat_uuid))}: "
                    "type /new to start a new conversation.",
                    file=sys.stderr,
                )
                continue
            if isinstance(exc, FATAL_ERRORS):
                return EXIT_ERROR
            continue
        chat_uuid = reply.response_metadata.get("chat_uuid") or chat_uuid
        previous = reply
        print(_dim(f"       {turn_info(reply)}", sys.stdout))


# --------------------------------------------------------------------- parser


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line: `error: ...`, status 2."""

    def error(self, message: str) -> NoReturn:
        """Print `error: <message> (see --help)` on stderr and exit with 2."""
        _error(f"{message} (see {self.prog} --help)")
        sys.exit(EXIT_USAGE)


def _parser() -> argparse.ArgumentParser:
    endpoint = _Parser(add_help=False)
    endpoint.add_argument(
        "--assistant",
        metavar="ID",
        help="assistant id (default: DEVIC_ASSISTANT_ID; with an emulator, "
        f"{EMULATOR_ASSISTANT!r})",
    )
    endpoint.add_argument(
        "--base-url",
        metavar="URL",
        help="API root (default: DEVIC_BASE_URL, else Devic's; a loopback URL "
        "without DEVIC_API_KEY means an emulator you started)",
    )

    parser = _Parser(
        prog="python -m langchain_devic",
        description="Try a Devic assistant from the terminal. Without DEVIC_API_KEY "
        "the bundled emulator answers, so everything works offline. The key is "
        "read from the environment only, never from the command line.",
    )
    parser.add_argument(
        "--version", action="version", version=f"langchain-devic {__version__}"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    commands.add_parser(
        "demo",
        parents=[endpoint],
        help="a short tour: a chain, a three-turn conversation, an agent",
        description="A short tour: one LCEL chain call, a three-turn conversation "
        "on one chatUuid, and an agent delegating to DevicAssistantTool.",
    )
    chat = commands.add_parser(
        "chat",
        parents=[endpoint],
        help="talk to an assistant (interactive, or one-shot with MESSAGE)",
        description="Talk to a Devic assistant. With MESSAGE, send it once: the "
        "reply goes to stdout, the chat id and tokens to stderr. Without, chat "
        "interactively; the conversation id is kept from turn to turn.",
    )
    chat.add_argument(
        "--chat-uuid",
        metavar="X",
        help="continue this conversation instead of starting a new one",
    )
    chat.add_argument("message", nargs="*", metavar="MESSAGE", help="one-shot message")
    return parser


def _quiet_library_logs() -> None:
    """Keep the library's log records off the terminal.

    Python prints WARNING records of a logger without handlers to stderr; a
    command's errors already say what matters, in one line. A handler the
    user configured on the root logger still receives every record.
    """
    logger = logging.getLogger("langchain_devic")
    if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
        logger.addHandler(logging.NullHandler())


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return the process exit code."""
    _quiet_library_logs()
    args = _parser().parse_args(argv)
    run = _run_demo if args.command == "demo" else _run_chat
    try:
        _check_args(args)
        return run(args)
    except UsageError as exc:
        _error(exc)
        return EXIT_USAGE
    except DevicError as exc:
        _error(exc)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print()
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`| head`): silence the flush at exit, fail quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_ERROR
