"""`python -m langchain_devic demo` and `chat`, as a newcomer runs them.

The subprocess tests run the real command with `sys.executable` and an
environment without any `DEVIC_*` variable, so the bundled emulator answers
(pytest-socket does not reach into subprocesses). Tests that start an emulator
server in this process are marked `allow_hosts(["127.0.0.1"])`; the rest drive
`langchain_devic._cli` in-process through the emulator's transport, no sockets.
"""

from __future__ import annotations

import builtins
import io
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from langchain_core.messages import AIMessage

from langchain_devic import ChatDevic, DevicAuthenticationError
from langchain_devic._cli import (
    UsageError,
    _interactive,
    main,
    open_endpoint,
    turn_info,
)
from langchain_devic._demo import ScriptedPlanner, run_agent, run_tour
from langchain_devic.testing import (
    CallTools,
    ClientCall,
    Conversation,
    DevicEmulator,
    Fault,
    ServerTool,
)
from langchain_devic.tools import DevicAssistantTool

WRONG_KEY = "sk-wrong-TOKEN-5f3e9a7c1d"
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
EMULATOR_LINE = re.compile(
    r"^Using the bundled Devic emulator at http://127\.0\.0\.1:\d+/v1 "
    r"\(no DEVIC_API_KEY set\)$",
    re.MULTILINE,
)
TIMEOUT = 60


def clean_env(**extra: str) -> dict[str, str]:
    """The current environment without Devic settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEVIC_")}
    env.pop("CI", None)
    env["NO_COLOR"] = "1"
    env.update(extra)
    return env


def run_cli(
    *args: str, env: dict[str, str] | None = None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "langchain_devic", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env if env is not None else clean_env(),
        timeout=TIMEOUT,
        check=False,
    )


# --------------------------------------------------------------------- demo


def test_demo_tours_the_bundled_emulator() -> None:
    result = run_cli("demo")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert EMULATOR_LINE.search(out)
    assert "1. One chain call: prompt | ChatDevic | StrOutputParser" in out
    assert "2. A three-turn conversation" in out
    assert "3. An agent delegating to DevicAssistantTool" in out

    # The chain's prompt reached the assistant, and its reply came back as text.
    assert "-> Reply 1 from demo-assistant: Give me one tip for visiting Lisbon." in out

    # Three turns, one conversation: the same chatUuid each time, turns numbered.
    turns = re.findall(rf"^ +chatUuid ({UUID})  tokens (\d+)$", out, re.MULTILINE)
    assert len(turns) == 3
    assert len({chat for chat, _ in turns}) == 1
    assert [int(tokens) for _, tokens in turns] == sorted(
        int(tokens) for _, tokens in turns
    )
    for number in (1, 2, 3):
        assert f"devic: Reply {number} from demo-assistant:" in out
    assert "Same chatUuid on all three turns: yes" in out

    # The agent's final answer is built from the assistant's reply.
    tool_reply = re.search(r"^   tool:    (.+)$", out, re.MULTILINE)
    assert tool_reply is not None
    final = next(
        line
        for line in out.splitlines()
        if line.startswith("   planner: The Devic assistant answered: ")
    )
    assert tool_reply.group(1) in final
    assert re.search(rf"thread 'demo-thread' -> chatUuid {UUID}  tokens \d+", out)

    # A streamed platform run: several pieces that join to the reply, and the
    # statuses its progress events reported.
    pieces = re.search(r"^   -> (\d+) pieces: (.+)$", out, re.MULTILINE)
    assert pieces is not None
    assert int(pieces.group(1)) > 1
    joined = pieces.group(2).replace(" | ", "")
    assert joined == "Reply 1 from demo-assistant: Tell me about the tram lines."
    assert "progress: processing -> completed" in out

    # Your own tools: the assistant's call ran here, its result went back to
    # the waiting run, and the answer is built from it, in one Devic chat.
    ran = re.search(
        r"^   assistant calls local_time\(\{'city': 'Lisbon'\}\) -> (.+)$",
        out,
        re.MULTILINE,
    )
    assert ran is not None
    assert f"   -> It is {ran.group(1)} right now." in out
    assert "one Devic chat for the whole turn: yes" in out
    assert result.stderr == ""


# --------------------------------------------------------------------- chat


def test_chat_one_shot_prints_reply_then_chat_and_tokens() -> None:
    result = run_cli("chat", "hello", "there")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Reply 1 from demo-assistant: hello there\n"
    assert EMULATOR_LINE.search(result.stderr)
    tokens = r"\d+ tokens \(\d+ in, \d+ out\)"
    assert re.search(rf"^chat {UUID} · {tokens}$", result.stderr, re.MULTILINE)
    # The bundled emulator runs the turn as a platform run: progress on stderr.
    assert "· processing" in result.stderr
    assert "· completed" in result.stderr


def test_chat_interactive_keeps_the_chat_uuid_and_exits_on_eof() -> None:
    result = run_cli("chat", "--assistant", "helper", stdin="hi\n\nagain\n")
    assert result.returncode == 0, result.stderr
    replies = re.findall(r"devic> (.+)", result.stdout)
    assert replies == ["Reply 1 from helper: hi", "Reply 2 from helper: again"]
    chats = re.findall(rf"chat ({UUID}) · \d+ tokens", result.stdout)
    assert len(chats) == 2
    assert chats[0] == chats[1]
    assert result.stdout.endswith("you> \n")  # EOF: a clean newline, exit 0
    assert "Chatting with assistant 'helper'" in result.stderr


def test_chat_new_command_starts_a_new_conversation() -> None:
    result = run_cli("chat", stdin="one\n/new\ntwo\n/exit\n")
    assert result.returncode == 0, result.stderr
    chats = re.findall(rf"chat ({UUID}) · \d+ tokens", result.stdout)
    assert len(chats) == 2
    assert chats[0] != chats[1]
    assert re.findall(r"devic> Reply (\d)", result.stdout) == ["1", "1"]


@pytest.mark.allow_hosts(["127.0.0.1"])
@pytest.mark.parametrize("via", ["flag", "env"])
def test_chat_wrong_key_is_one_error_line_without_the_key(via: str) -> None:
    emulator = DevicEmulator(api_key="the-right-key")
    with emulator.serve() as server:
        env = clean_env(DEVIC_API_KEY=WRONG_KEY, DEVIC_ASSISTANT_ID="helper")
        args = ["chat", "hello"]
        if via == "flag":
            args[1:1] = ["--base-url", server.base_url]
        else:
            env["DEVIC_BASE_URL"] = server.base_url
        result = run_cli(*args, env=env)
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines == [
        "error: Devic answered 401 [UNAUTHORIZED]: Invalid or missing API key"
    ]
    assert WRONG_KEY not in result.stdout + result.stderr
    assert len(emulator.requests) == 1  # a 401 is not retried


@pytest.mark.allow_hosts(["127.0.0.1"])
def test_chat_talks_to_an_emulator_started_elsewhere_with_its_default_key() -> None:
    emulator = DevicEmulator()  # the default key, as `python -m ...testing` uses
    with emulator.serve() as server:
        result = run_cli("chat", "--base-url", server.base_url, "ping")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Reply 1 from demo-assistant: ping\n"
    assert "with the fixed test key (no DEVIC_API_KEY set;" in result.stderr


@pytest.mark.allow_hosts(["127.0.0.1"])
def test_chat_talks_to_a_command_line_emulator_with_the_key_it_printed() -> None:
    """`python -m langchain_devic.testing` prints a random key: set it, no assistant."""
    emulator = DevicEmulator(api_key="printed-RANDOM-key")
    with emulator.serve() as server:
        env = clean_env(DEVIC_API_KEY="printed-RANDOM-key")
        result = run_cli("chat", "--base-url", server.base_url, "ping", env=env)
        without = run_cli("chat", "--base-url", server.base_url, "ping")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Reply 1 from demo-assistant: ping\n"
    assert "printed-RANDOM-key" not in result.stdout + result.stderr
    assert without.returncode == 1
    assert "set it to the key an emulator printed at start" in without.stderr
    assert without.stderr.splitlines()[-1].startswith("error: Devic answered 401")


def test_chat_unknown_chat_uuid_is_a_typed_error() -> None:
    result = run_cli("chat", "--chat-uuid", "no-such-chat", "hello")
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        "error: Devic answered 404 [CHAT_NOT_FOUND]: Chat 'no-such-chat' not found"
    )


@pytest.mark.allow_hosts(["127.0.0.1"])
@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT is POSIX")
@pytest.mark.parametrize("mode", ["one-shot", "interactive"])
def test_chat_ctrl_c_during_a_slow_reply_exits_130_and_prints_the_chat_id(
    mode: str, tmp_path: Path
) -> None:
    arrived, release = threading.Event(), threading.Event()

    def slow(conversation: Conversation) -> str:
        if conversation.message == "slow":
            arrived.set()
            release.wait(TIMEOUT)
        return f"ok: {conversation.message}"

    emulator = DevicEmulator(assistants={"demo-assistant": slow})
    stdin, stdout, stderr = (tmp_path / name for name in ("in", "out", "err"))
    with emulator.serve() as server:
        try:
            if mode == "one-shot":
                first = ChatDevic(
                    model="demo-assistant",
                    api_key="emulator-key",
                    base_url=server.base_url,
                ).invoke("hi")
                chat = first.response_metadata["chat_uuid"]
                args = ["--chat-uuid", chat, "slow"]
                stdin.write_text("")
            else:
                args = []
                stdin.write_text("hi\nslow\n")
            command = ["chat", "--base-url", server.base_url, *args]
            with stdin.open() as i, stdout.open("w") as o, stderr.open("w") as e:
                process = subprocess.Popen(
                    [sys.executable, "-m", "langchain_devic", *command],
                    stdin=i,
                    stdout=o,
                    stderr=e,
                    env=clean_env(),
                )
            try:
                assert arrived.wait(TIMEOUT), "the slow turn never reached Devic"
                process.send_signal(signal.SIGINT)
                process.wait(TIMEOUT)
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait()
        finally:
            release.set()
    out, err = stdout.read_text(), stderr.read_text()
    if mode == "interactive":
        match = re.search(rf"devic> ok: hi\n +chat ({UUID}) ·", out)
        assert match is not None, out
        chat = match.group(1)
    assert process.returncode == 130, err
    assert f"\nchat id: {chat}\n" in err
    assert "the turn may still complete on Devic" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (
            ["chat", "hi"],
            {"DEVIC_API_KEY": WRONG_KEY},
            "error: DEVIC_API_KEY is set but no assistant id is",
        ),
        (
            ["demo", "--base-url", "https://devic.example/v1"],
            {},
            "error: DEVIC_API_KEY is not set; it is needed to talk to",
        ),
        (
            ["chat", "--assistant", "..", "hi"],
            {"DEVIC_API_KEY": WRONG_KEY},
            "error: --assistant '..' is not a valid id",
        ),
    ],
)
def test_configuration_problems_are_usage_errors(
    args: list[str], env: dict[str, str], message: str
) -> None:
    result = run_cli(*args, env=clean_env(**env))
    assert result.returncode == 2
    assert result.stderr.startswith(message)
    assert len(result.stderr.splitlines()) == 1
    assert WRONG_KEY not in result.stdout + result.stderr


def test_no_command_is_a_one_line_usage_error() -> None:
    result = run_cli()
    assert result.returncode == 2
    assert result.stderr == (
        "error: the following arguments are required: COMMAND "
        "(see python -m langchain_devic --help)\n"
    )


def test_an_empty_chat_uuid_is_one_line_not_a_traceback() -> None:
    result = run_cli("chat", "--chat-uuid", "", "hello")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        "error: --chat-uuid is empty; give an id, or leave --chat-uuid out.\n"
    )


def test_an_unknown_chat_uuid_prints_no_library_log_line() -> None:
    result = run_cli("chat", "--chat-uuid", "bogus", "hello")
    assert result.returncode == 1
    assert EMULATOR_LINE.fullmatch(result.stderr.splitlines()[0])
    assert result.stderr.splitlines()[1:] == [
        "error: Devic answered 404 [CHAT_NOT_FOUND]: Chat 'bogus' not found"
    ]


#: Bad arguments, each refused before anything starts: (argv, env, message).
BAD_ARGUMENTS = [
    (["chat", "--chat-uuid", "", "hi"], {}, "--chat-uuid is empty"),
    (["chat", "--chat-uuid", "   ", "hi"], {}, "--chat-uuid is empty"),
    (["chat", "--chat-uuid", "../etc", "hi"], {}, "--chat-uuid '../etc' is not"),
    (["chat", "--chat-uuid", "..", "hi"], {}, "--chat-uuid '..' is not a valid"),
    (["chat", "--chat-uuid", "a?b=1", "hi"], {}, "--chat-uuid 'a?b=1' is not"),
    (["chat", "--chat-uuid", "a#b", "hi"], {}, "--chat-uuid 'a#b' is not"),
    (["chat", "--chat-uuid", "a%2Fb", "hi"], {}, "--chat-uuid 'a%2Fb' is not"),
    (["chat", "--chat-uuid", "x\ty", "hi"], {}, "--chat-uuid 'x\\ty' is not"),
    (["chat", "--chat-uuid", "x\x1b[31m", "hi"], {}, "--chat-uuid 'x\\x1b[31m' is"),
    (["chat", "--chat-uuid", " padded", "hi"], {}, "--chat-uuid ' padded' is"),
    (["chat", "--chat-uuid", "c" * 257, "hi"], {}, "--chat-uuid 'ccc"),
    (["chat", "--assistant", "", "hi"], {}, "--assistant is empty"),
    (["demo", "--assistant", "a/b"], {}, "--assistant 'a/b' is not a valid id"),
    (["chat", "hi"], {"DEVIC_ASSISTANT_ID": "a/b"}, "DEVIC_ASSISTANT_ID 'a/b' is"),
    (["chat", "--base-url", "", "hi"], {}, "--base-url is empty"),
    (["demo", "--base-url", " "], {}, "--base-url is empty"),
    (
        ["chat", "--base-url", "http://127.0.0.1:99999/v1", "hi"],
        {},
        "--base-url has an invalid port 99999",
    ),
    (
        ["chat", "--base-url", "http://127.0.0.1:0/v1", "hi"],
        {},
        "--base-url has an invalid port 0",
    ),
    (
        ["chat", "--base-url", "http://me:hunter2@127.0.0.1:8765/v1", "hi"],
        {},
        "--base-url must not hold a user name or password",
    ),
    (
        ["chat", "hi"],
        {"DEVIC_BASE_URL": "http://me:hunter2@127.0.0.1:8765/v1"},
        "DEVIC_BASE_URL must not hold a user name or password",
    ),
    (["chat", "--base-url", "http://[::1/v1", "hi"], {}, "--base-url is not a"),
    (["chat", " "], {}, "MESSAGE is empty"),
]


@pytest.mark.parametrize(("argv", "env", "message"), BAD_ARGUMENTS)
def test_a_bad_argument_is_one_error_line_and_status_2(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    env: dict[str, str],
    message: str,
) -> None:
    for name in list(os.environ):
        if name.startswith("DEVIC_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    started: list[object] = []
    monkeypatch.setattr(DevicEmulator, "serve", lambda *a, **k: started.append(a))
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert err.startswith(f"error: {message}"), err
    assert err.count("\n") == 1
    assert "hunter2" not in err
    assert "\x1b" not in err
    assert started == []  # refused before any emulator started


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["chat", "--bogus"], "error: unrecognized arguments: --bogus"),
        (["nope"], "error: argument COMMAND: invalid choice: 'nope'"),
        (["chat", "--chat-uuid"], "error: argument --chat-uuid: expected one"),
        (["demo", "extra"], "error: unrecognized arguments: extra"),
    ],
)
def test_argparse_errors_are_one_line_and_status_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(message)
    assert err.endswith(" --help)\n")
    assert err.count("\n") == 1


def test_open_endpoint_with_a_key_and_a_loopback_url_needs_no_assistant() -> None:
    url = "http://127.0.0.1:8765/v1"
    with open_endpoint(None, url, {"DEVIC_API_KEY": WRONG_KEY}) as endpoint:
        assert endpoint.assistant_id == "demo-assistant"
        assert endpoint.is_emulator
        assert endpoint.api_key.get_secret_value() == WRONG_KEY
        assert WRONG_KEY not in endpoint.description
    with (
        pytest.raises(UsageError, match="DEVIC_ASSISTANT_ID"),
        open_endpoint(None, "https://devic.example/v1", {"DEVIC_API_KEY": "k"}),
    ):
        pass


# ------------------------------------------------------------ terminal safety

OSC52 = "\x1b]52;c;SGVsbG8=\x07"
HOSTILE = f"Hi{OSC52} \x1b[31mred\x1b[0m\r\n\tindented\u202e\x9b2J end"
CLEAN = "Hi red\n\tindented end"


def hostile(conversation: Conversation) -> Any:
    if conversation.tool_results:
        return f"Tool said{OSC52}: {conversation.tool_results[0]['content']}"
    if "local_time" in conversation.tool_names:
        return CallTools(ClientCall("local_time", {"city": "Lisbon"}))
    return [ServerTool("look", summary=f"Looking{OSC52}\x1b[5m up"), HOSTILE]


@pytest.mark.allow_hosts(["127.0.0.1"])
def test_chat_never_prints_escape_sequences_from_the_server() -> None:
    emulator = DevicEmulator(assistants={"demo-assistant": hostile}, write_pieces=7)
    emulator.dialect = "platform"
    with emulator.serve() as server:
        result = run_cli("chat", "--base-url", server.base_url, "hello")
    assert result.returncode == 0, result.stderr
    assert result.stdout == CLEAN + "\n"
    assert "· Looking up" in result.stderr
    for stream in (result.stdout, result.stderr):
        assert "\x1b" not in stream
        assert "\x07" not in stream
        assert "\x9b" not in stream
        assert "SGVsbG8=" not in stream


def test_interactive_never_prints_escape_sequences(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    emulator = DevicEmulator(
        api_key="unit-key", dialect="platform", assistants={"helper": hostile}
    )
    model = ChatDevic(
        model="helper",
        api_key="unit-key",
        base_url=emulator.base_url,
        http_client=httpx.Client(transport=emulator.transport()),
    )
    feed(monkeypatch, ["hello"])
    assert _interactive(model, "helper", None) == 0
    out, err = capsys.readouterr()
    assert f"devic> {CLEAN}\n" in out
    for stream in (out, err):
        assert "\x1b" not in stream
        assert "SGVsbG8=" not in stream


def test_error_lines_never_print_escape_sequences(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def refuse(*args: object, **kwargs: object) -> Iterator[AIMessage]:
        message = f"bad{OSC52} key\x1b[2J\nsecond line"
        raise DevicAuthenticationError(message, status_code=401)
        yield  # a generator, like ChatDevic.stream

    monkeypatch.setenv("DEVIC_API_KEY", WRONG_KEY)
    monkeypatch.setenv("DEVIC_ASSISTANT_ID", "helper")
    monkeypatch.setattr(ChatDevic, "stream", refuse)
    assert main(["chat", "hi"]) == 1
    err = capsys.readouterr().err
    assert err == "error: Devic answered 401: bad key second line\n"


def test_the_demo_never_prints_escape_sequences() -> None:
    emulator = DevicEmulator(
        api_key="unit-key", dialect="platform", assistants={"helper": hostile}
    )
    model = ChatDevic(
        model="helper",
        api_key="unit-key",
        base_url=emulator.base_url,
        http_client=httpx.Client(transport=emulator.transport()),
    )
    out = io.StringIO()
    run_tour(model, out)
    text = out.getvalue()
    assert "Hi red" in text
    assert "Tool said:" in text
    assert "\x1b" not in text
    assert "\x07" not in text
    assert "SGVsbG8=" not in text


# --------------------------------------------------------------- in-process


@pytest.fixture
def emulator() -> DevicEmulator:
    return DevicEmulator(api_key="unit-key", random_seed=3)


@pytest.fixture
def model(emulator: DevicEmulator) -> ChatDevic:
    return ChatDevic(
        model="helper",
        api_key="unit-key",
        base_url=emulator.base_url,
        http_client=httpx.Client(transport=emulator.transport()),
    )


def feed(monkeypatch: pytest.MonkeyPatch, lines: Sequence[str]) -> None:
    """Make `input()` return `lines`, then raise EOFError."""
    queue: Iterator[str] = iter(lines)

    def fake_input(prompt: str = "") -> str:
        print(prompt, end="")
        try:
            return next(queue)
        except StopIteration:
            raise EOFError from None

    monkeypatch.setattr(builtins, "input", fake_input)


def test_interactive_goes_on_after_an_error_the_user_can_wait_out(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    emulator: DevicEmulator,
    model: ChatDevic,
) -> None:
    emulator.inject(Fault.status(429, retry_after=3600))
    feed(monkeypatch, ["first", "second"])
    assert _interactive(model, "helper", None) == 0
    out, err = capsys.readouterr()
    assert err.splitlines()[-1].startswith("error: Devic answered 429")
    assert "devic> Reply 1 from helper: second" in out


def test_interactive_stops_on_errors_a_person_must_fix(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    emulator: DevicEmulator,
) -> None:
    wrong = ChatDevic(
        model="helper",
        api_key=WRONG_KEY,
        base_url=emulator.base_url,
        http_client=httpx.Client(transport=emulator.transport()),
    )
    feed(monkeypatch, ["hello", "never sent"])
    assert _interactive(wrong, "helper", None) == 1
    out, err = capsys.readouterr()
    assert err.splitlines()[-1].startswith("error: Devic answered 401")
    assert len(emulator.requests) == 1
    assert WRONG_KEY not in out + err


def test_interactive_ctrl_c_exits_cleanly(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    model: ChatDevic,
) -> None:
    def interrupted(prompt: str = "") -> str:
        raise KeyboardInterrupt

    monkeypatch.setattr(builtins, "input", interrupted)
    assert _interactive(model, "helper", None) == 0
    assert capsys.readouterr().out == "\n"


def interrupt_turn(monkeypatch: pytest.MonkeyPatch, *, after: int = 0) -> None:
    """Make `ChatDevic.stream` answer `after` turns, then meet a Ctrl-C."""
    real_stream = ChatDevic.stream
    calls = 0

    def stream(self: ChatDevic, *args: Any, **kwargs: Any) -> Iterator[Any]:
        nonlocal calls
        calls += 1
        if calls > after:
            raise KeyboardInterrupt
        yield from real_stream(self, *args, **kwargs)

    monkeypatch.setattr(ChatDevic, "stream", stream)


def test_interactive_ctrl_c_during_a_reply_exits_130_with_the_chat_id(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    model: ChatDevic,
) -> None:
    interrupt_turn(monkeypatch, after=1)
    feed(monkeypatch, ["first", "slow", "never read"])
    assert _interactive(model, "helper", None) == 130
    out, err = capsys.readouterr()
    chat = re.findall(rf"chat ({UUID}) · \d+ tokens", out)
    assert len(chat) == 1
    assert f"\nchat id: {chat[0]}\n" in err
    assert "may still complete on Devic" in err
    assert out.count("you> ") == 2  # stopped there


def test_interactive_ctrl_c_during_a_first_reply_says_the_id_is_unknown(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    model: ChatDevic,
) -> None:
    interrupt_turn(monkeypatch)
    feed(monkeypatch, ["slow"])
    assert _interactive(model, "helper", None) == 130
    err = capsys.readouterr().err
    assert "chat id:" not in err
    assert "may have opened a new conversation whose id is unknown" in err


@pytest.mark.parametrize("chat_uuid", [None, "c-42"])
def test_one_shot_ctrl_c_exits_130_and_says_what_is_known(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    chat_uuid: str | None,
) -> None:
    monkeypatch.setenv("DEVIC_API_KEY", WRONG_KEY)
    monkeypatch.setenv("DEVIC_ASSISTANT_ID", "helper")
    interrupt_turn(monkeypatch)
    args = (
        ["chat", "hi"]
        if chat_uuid is None
        else ["chat", "--chat-uuid", chat_uuid, "hi"]
    )
    assert main(args) == 130
    out, err = capsys.readouterr()
    assert out == ""  # stdout is the reply's, and there is none
    if chat_uuid is None:
        assert "may have opened a new conversation whose id is unknown" in err
        assert "chat id:" not in err
    else:
        assert "\nchat id: c-42\n" in err
        assert "may still complete on Devic" in err
    assert WRONG_KEY not in err


def test_interactive_stale_chat_uuid_offers_new_and_goes_on(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    model: ChatDevic,
) -> None:
    feed(monkeypatch, ["hello", "/new", "again"])
    assert _interactive(model, "helper", "no-such-chat") == 0
    out, err = capsys.readouterr()
    lines = err.splitlines()
    error = "error: Devic answered 404 [CHAT_NOT_FOUND]: Chat 'no-such-chat' not found"
    assert error in lines
    hint = lines[lines.index(error) + 1]
    assert "type /new to start a new conversation" in hint
    assert "devic> Reply 1 from helper: again" in out


def helper_of_an_emulator_without_it() -> tuple[DevicEmulator, ChatDevic]:
    """A model for assistant "helper", which the emulator does not know."""
    emulator = DevicEmulator(api_key="unit-key", assistants=["someone-else"])
    model = ChatDevic(
        model="helper",
        api_key="unit-key",
        base_url=emulator.base_url,
        http_client=httpx.Client(transport=emulator.transport()),
    )
    return emulator, model


def test_interactive_unknown_assistant_is_still_fatal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    emulator, model = helper_of_an_emulator_without_it()
    feed(monkeypatch, ["hello", "never sent"])
    assert _interactive(model, "helper", None) == 1
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith("error: Devic answered 404")
    assert "/new" not in err.split("\n", 1)[1]
    assert len(emulator.requests) == 1


def test_interactive_unknown_assistant_with_a_chat_id_ends_after_new(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 404 while continuing may be a vanished chat: /new is offered; the new
    conversation's 404 then says the assistant is unknown, and the chat ends."""
    emulator, model = helper_of_an_emulator_without_it()
    feed(monkeypatch, ["hello", "/new", "again", "never sent"])
    assert _interactive(model, "helper", "some-chat") == 1
    err = capsys.readouterr().err
    assert "type /new to start a new conversation" in err
    assert err.splitlines()[-1].startswith("error: Devic answered 404")
    sends = [r for r in emulator.requests if r.method == "POST"]
    assert [r.chat_uuid for r in sends] == ["some-chat", None]


def test_main_reports_typed_errors_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def refuse(*args: object, **kwargs: object) -> Iterator[AIMessage]:
        raise DevicAuthenticationError("bad key", status_code=401)
        yield  # a generator, like ChatDevic.stream

    monkeypatch.setenv("DEVIC_API_KEY", WRONG_KEY)
    monkeypatch.setenv("DEVIC_ASSISTANT_ID", "helper")
    monkeypatch.setattr(ChatDevic, "stream", refuse)
    assert main(["chat", "hi"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == "error: Devic answered 401: bad key\n"


def test_open_endpoint_live_needs_an_assistant() -> None:
    with (
        pytest.raises(UsageError, match="DEVIC_ASSISTANT_ID"),
        open_endpoint(None, None, {"DEVIC_API_KEY": WRONG_KEY}),
    ):
        pass


def test_open_endpoint_live_defaults_to_devic() -> None:
    environ = {"DEVIC_API_KEY": WRONG_KEY, "DEVIC_ASSISTANT_ID": "support"}
    with open_endpoint(None, None, environ) as endpoint:
        assert endpoint.base_url == "https://api.devic.ai/v1"
        assert endpoint.assistant_id == "support"
        assert not endpoint.is_emulator
        assert WRONG_KEY not in endpoint.description
        assert WRONG_KEY not in repr(endpoint)


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        (None, "tokens not reported"),
        (
            {"input_tokens": 0, "output_tokens": 12, "total_tokens": 12},
            "12 tokens",
        ),
        (
            {"input_tokens": 5, "output_tokens": 7, "total_tokens": 12},
            "12 tokens (5 in, 7 out)",
        ),
    ],
)
def test_turn_info(usage: dict[str, int] | None, expected: str) -> None:
    reply = AIMessage(
        content="hi",
        response_metadata={"chat_uuid": "c-1"},
        usage_metadata=usage,  # type: ignore[arg-type]
    )
    assert turn_info(reply) == f"chat c-1 · {expected}"


def test_scripted_planner_reports_a_tool_error(
    emulator: DevicEmulator, model: ChatDevic
) -> None:
    tool = DevicAssistantTool(
        name="devic_assistant", description="a helper", chat_model=model
    )
    emulator.inject(Fault.status(429, retry_after=3600))
    messages = run_agent(ScriptedPlanner(), tool, "hello?", "thread-1")
    assert [m.type for m in messages] == ["human", "ai", "tool", "ai"]
    assert messages[-1].text.startswith("I could not get an answer from the assistant")
    assert "429" in messages[-1].text


def test_agent_thread_keeps_one_conversation(
    emulator: DevicEmulator, model: ChatDevic
) -> None:
    tool = DevicAssistantTool(
        name="devic_assistant", description="a helper", chat_model=model
    )
    first = run_agent(ScriptedPlanner(), tool, "one", "thread-1")
    second = run_agent(ScriptedPlanner(), tool, "two", "thread-1")
    assert first[2].artifact["chat_uuid"] == second[2].artifact["chat_uuid"]
    assert second[-1].text == "The Devic assistant answered: Reply 2 from helper: two"


def test_the_chat_cli_loads_the_emulator_only_when_it_uses_it() -> None:
    """A chat with live Devic never imports the emulator (nor the demo)."""
    import subprocess
    import sys

    code = (
        "import sys, langchain_devic._cli; "
        "loaded = [m for m in ('langchain_devic.testing', 'langchain_devic._demo') "
        "if m in sys.modules]; print(loaded)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
