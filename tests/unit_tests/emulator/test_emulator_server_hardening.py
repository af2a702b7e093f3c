"""The emulator as a server people run: key, Host check, request log, body framing.

Every test here talks to a loopback server (127.0.0.1 only) or runs pure
functions; raw-socket tests give each socket a timeout, so a server that waits
for bytes that never come fails the test instead of hanging it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from langchain_devic.testing import DEFAULT_API_KEY, DevicEmulator, EmulatorServer
from langchain_devic.testing._server import (
    MAX_BODY_BYTES,
    is_loopback_host_header,
    prepare_request_log,
)
from tests.unit_tests.emulator.test_emulator import served_cli

pytestmark = pytest.mark.allow_hosts(["127.0.0.1"])

KEY = "hardening-KEY-9c1f"
AUTH = {"Authorization": f"Bearer {KEY}"}
SEND = "/v1/assistants/helper/messages"
#: Seconds a raw-socket test waits for the server's answer.
SOCKET_TIMEOUT = 8.0
EMULATOR_CLI = (sys.executable, "-m", "langchain_devic.testing", "--port", "0")
BANNER = re.compile(
    r"Devic emulator listening on (http://127\.0\.0\.1:\d+/v1) \(API key: (\S+)\)"
)


@pytest.fixture(params=["flat", "platform"])
def server(request: pytest.FixtureRequest) -> Iterator[EmulatorServer]:
    emulator = DevicEmulator(api_key=KEY, dialect=request.param)
    with emulator.serve() as served:
        yield served


def raw_exchange(server: EmulatorServer, data: bytes) -> tuple[int, dict[str, Any]]:
    """Send `data` on a fresh connection; the status and JSON body of the answer.

    Reads until the server closes the connection (every refusal closes it).
    """
    with socket.create_connection((server.host, server.port), SOCKET_TIMEOUT) as s:
        s.sendall(data)
        received = b""
        while b"\r\n\r\n" not in received or not _complete(received):
            piece = s.recv(65536)
            if not piece:
                break
            received += piece
    head, _, body = received.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body) if body else {}


def _complete(received: bytes) -> bool:
    head, _, body = received.partition(b"\r\n\r\n")
    match = re.search(rb"(?im)^content-length: *(\d+)", head)
    return match is not None and len(body) >= int(match.group(1))


def request_head(*headers: str, host: str = "127.0.0.1") -> bytes:
    lines = [f"POST {SEND} HTTP/1.1", f"Host: {host}", f"Authorization: Bearer {KEY}"]
    return ("\r\n".join([*lines, *headers]) + "\r\n\r\n").encode()


def error_code(body: dict[str, Any]) -> str:
    """The error code of either dialect's refusal body."""
    if "statusCode" in body:  # platform: NestJS-style
        return str(body["error"])
    return str(body["error"]["code"])


def still_serves(server: EmulatorServer) -> None:
    response = httpx.post(
        f"{server.base_url}/assistants/helper/messages",
        json={"message": "still there?"},
        headers=AUTH,
        timeout=SOCKET_TIMEOUT,
    )
    assert response.status_code in (200, 201)


# ------------------------------------------------------------------ the key


def test_the_command_line_server_has_a_new_random_key_printed_once() -> None:
    keys = []
    for _ in range(2):
        with served_cli() as (process, banner):
            match = BANNER.fullmatch(banner)
            assert match, banner
            url, key = match.groups()
            keys.append(key)
            ping = {"message": "hi"}
            with httpx.Client(base_url=url, timeout=SOCKET_TIMEOUT) as client:
                right = client.post(
                    "/assistants/helper/messages",
                    json=ping,
                    headers={"Authorization": f"Bearer {key}"},
                )
                fixed = client.post(
                    "/assistants/helper/messages",
                    json=ping,
                    headers={"Authorization": f"Bearer {DEFAULT_API_KEY}"},
                )
            assert right.status_code == 200
            assert fixed.status_code == 401
            process.send_signal(signal.SIGTERM)
            rest, stderr = process.communicate(timeout=10)
        assert process.returncode == 0, stderr
        assert (banner + rest + stderr).count(key) == 1  # printed once, at start
    assert keys[0] != keys[1]
    assert DEFAULT_API_KEY not in keys
    assert all(len(key) >= 24 for key in keys)


def test_the_command_line_server_takes_the_key_it_is_given() -> None:
    with served_cli("--api-key", "given-key") as (process, banner):
        match = BANNER.fullmatch(banner)
        assert match, banner
        assert match.group(2) == "given-key"
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=10)
    assert process.returncode == 0


@pytest.mark.parametrize("key", ["", " ", " padded "])
def test_the_command_line_server_refuses_a_blank_key(key: str) -> None:
    result = subprocess.run(
        [*EMULATOR_CLI, "--api-key", key],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "--api-key must not be empty" in result.stderr
    assert result.stdout == ""


def test_an_emulator_built_in_process_keeps_the_documented_test_key() -> None:
    emulator = DevicEmulator()
    with emulator.serve() as server:
        response = httpx.post(
            f"{server.base_url}/assistants/helper/messages",
            json={"message": "hi"},
            headers={"Authorization": f"Bearer {DEFAULT_API_KEY}"},
            timeout=SOCKET_TIMEOUT,
        )
    assert DEFAULT_API_KEY == "emulator-key"
    assert response.status_code == 200


# ------------------------------------------------------------- Host header


@pytest.mark.parametrize(
    ("value", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.1:8765", True),
        ("127.9.9.9:1", True),
        ("localhost", True),
        ("LOCALHOST:80", True),
        ("localhost:", True),
        ("[::1]", True),
        ("[::1]:8765", True),
        ("::1", True),
        ("evil.example", False),
        ("evil.example:8765", False),
        ("127.0.0.1.nip.io:8765", False),
        ("localhost.evil.example", False),
        ("localhost:http", False),
        ("localhost:8765:1", False),
        ("127.0.0.1:-1", False),
        ("[::1", False),
        ("[::2]:80", False),
        ("[evil.example]:80", False),
        ("10.0.0.1", False),
        ("", False),
        (":8765", False),
    ],
)
def test_host_header_names(value: str, loopback: bool) -> None:
    assert is_loopback_host_header(value) is loopback


@pytest.mark.parametrize(
    "host", ["localhost", "127.0.0.1:{port}", "localhost:{port}", "127.0.0.2:1"]
)
def test_a_loopback_host_header_is_answered(server: EmulatorServer, host: str) -> None:
    with httpx.Client(base_url=server.base_url, timeout=SOCKET_TIMEOUT) as client:
        response = client.post(
            "/assistants/helper/messages",
            json={"message": "hi"},
            headers={**AUTH, "Host": host.format(port=server.port)},
        )
    assert response.status_code == 200


@pytest.mark.parametrize(
    "host", ["rebound.example:{port}", "rebound.example", "127.0.0.1.nip.io:{port}"]
)
def test_another_host_header_is_refused_before_anything_runs(
    server: EmulatorServer, host: str
) -> None:
    """DNS rebinding: a page on rebound.example reached 127.0.0.1 by name."""
    headers = {**AUTH, "Host": host.format(port=server.port)}
    with httpx.Client(base_url=server.base_url, timeout=SOCKET_TIMEOUT) as client:
        send = client.post(
            "/assistants/helper/messages", json={"message": "hi"}, headers=headers
        )
        log = client.get(server.requests_url, headers=headers)
    for response in (send, log):
        assert response.status_code == 421
        body = response.json()
        assert error_code(body) == "MISDIRECTED_REQUEST"
        if server.emulator.dialect == "platform":
            assert body["statusCode"] == 421
            assert "loopback" in body["message"]
    assert server.emulator.requests == []  # nothing was recorded or answered
    still_serves(server)


def test_two_host_headers_are_refused(server: EmulatorServer) -> None:
    head = request_head("Host: rebound.example", "Content-Length: 0")
    status, body = raw_exchange(server, head)
    assert status == 421
    assert error_code(body) == "MISDIRECTED_REQUEST"


def test_a_request_without_a_host_header_is_answered(server: EmulatorServer) -> None:
    """HTTP/1.0 clients may leave it out; a browser never does."""
    body = b'{"message": "hi"}'
    data = (
        f"POST {SEND} HTTP/1.0\r\nAuthorization: Bearer {KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    status, _ = raw_exchange(server, data)
    assert status == 200


# ------------------------------------------------------------- request log


def test_the_request_log_is_created_0600(tmp_path: Path) -> None:
    path = tmp_path / "requests.jsonl"
    old_umask = os.umask(0)  # even with a permissive umask
    try:
        emulator = DevicEmulator(api_key=KEY)
        with EmulatorServer(emulator, log_path=path) as server:
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
            still_serves(server)
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
            assert len(path.read_text().splitlines()) == 1
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["requests.jsonl"]


def test_a_symlink_at_the_log_path_is_refused_not_written_through(
    tmp_path: Path,
) -> None:
    target = tmp_path / "victim"
    target.write_text("precious\n")
    link = tmp_path / "requests.jsonl"
    link.symlink_to(target)
    with pytest.raises(OSError, match="symbolic link"):
        EmulatorServer(DevicEmulator(api_key=KEY), log_path=link)
    with pytest.raises(OSError, match="symbolic link"):
        prepare_request_log(link)
    assert target.read_text() == "precious\n"
    assert link.is_symlink()


def test_a_dangling_symlink_at_the_log_path_creates_nothing(tmp_path: Path) -> None:
    target = tmp_path / "created-through-the-link"
    link = tmp_path / "requests.jsonl"
    link.symlink_to(target)
    with pytest.raises(OSError, match="symbolic link"):
        prepare_request_log(link)
    assert not target.exists()


def test_the_command_line_refuses_a_symlinked_log_in_one_clear_line(
    tmp_path: Path,
) -> None:
    target = tmp_path / "victim"
    target.write_text("precious\n")
    link = tmp_path / "requests.jsonl"
    link.symlink_to(target)
    result = subprocess.run(
        [*EMULATOR_CLI, "--log", str(link)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "is a symbolic link" in result.stderr
    assert "Traceback" not in result.stderr
    assert target.read_text() == "precious\n"


def test_the_log_is_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(OSError, match=r"Is a directory|not a regular file"):
        prepare_request_log(tmp_path)


def test_no_predictable_temporary_file_is_written_through(tmp_path: Path) -> None:
    """A link planted where a pid-named temp file would go is never followed."""
    target = tmp_path / "victim"
    target.write_text("precious\n")
    path = tmp_path / "requests.jsonl"
    (tmp_path / f".{path.name}.{os.getpid()}.tmp").symlink_to(target)
    with EmulatorServer(DevicEmulator(api_key=KEY), log_path=path) as server:
        still_serves(server)
    assert target.read_text() == "precious\n"
    assert len(path.read_text().splitlines()) == 1
    leftovers = {p.name for p in tmp_path.iterdir()} - {"victim", path.name}
    assert leftovers == {f".{path.name}.{os.getpid()}.tmp"}  # only the planted link


# ----------------------------------------------------------- body framing


@pytest.mark.parametrize(
    "size", ["-1", "zz", "0x10", "+5", "1_0", " ", "", "-0", "1" * 20, "5 5"]
)
def test_a_bad_chunk_size_is_refused_with_400(
    server: EmulatorServer, size: str
) -> None:
    data = request_head("Transfer-Encoding: chunked") + f"{size}\r\nhello\r\n".encode()
    status, body = raw_exchange(server, data)
    assert status == 400
    assert error_code(body) == "BAD_REQUEST"
    assert server.emulator.requests == []
    still_serves(server)


def test_a_chunk_without_its_line_break_is_refused(server: EmulatorServer) -> None:
    data = request_head("Transfer-Encoding: chunked") + b"5\r\nhelloXX0\r\n\r\n"
    status, _ = raw_exchange(server, data)
    assert status == 400


def test_a_valid_chunked_body_is_read(server: EmulatorServer) -> None:
    payload = b'{"message": "in chunks"}'
    chunks = b"".join(
        b"%x;ext=1\r\n%s\r\n" % (len(piece), piece)
        for piece in (payload[:5], payload[5:])
    )
    data = (
        request_head("Transfer-Encoding: chunked", "Content-Type: application/json")
        + chunks
        + b"0\r\nX-Trailer: yes\r\n\r\n"
    )
    status, _ = raw_exchange(server, data)
    assert status in (200, 201)
    assert server.emulator.requests[0].body == payload


@pytest.mark.parametrize(
    "headers",
    [
        ["Content-Length: -1"],
        ["Content-Length: +5"],
        ["Content-Length: 1_0"],
        ["Content-Length: five"],
        ["Content-Length: 5", "Content-Length: 6"],
        ["Transfer-Encoding: gzip"],
        ["Transfer-Encoding: gzip, chunked"],
    ],
)
def test_a_bad_framing_is_refused_with_400(
    server: EmulatorServer, headers: list[str]
) -> None:
    status, body = raw_exchange(server, request_head(*headers) + b"hello")
    assert status == 400
    assert error_code(body) == "BAD_REQUEST"
    still_serves(server)


def test_a_chunk_over_the_cap_is_a_413(server: EmulatorServer) -> None:
    size = f"{MAX_BODY_BYTES + 1:x}"
    data = request_head("Transfer-Encoding: chunked") + f"{size}\r\nxx".encode()
    status, body = raw_exchange(server, data)
    assert status == 413
    assert error_code(body) == "PAYLOAD_TOO_LARGE"


def test_a_declared_length_over_the_cap_with_expect_is_refused_at_once(
    server: EmulatorServer,
) -> None:
    """No `100 Continue` for a body that would be refused: the client sends none."""
    head = request_head(f"Content-Length: {MAX_BODY_BYTES + 1}", "Expect: 100-continue")
    with socket.create_connection((server.host, server.port), SOCKET_TIMEOUT) as s:
        s.sendall(head)
        first = s.recv(65536)
    assert first.startswith(b"HTTP/1.1 413 "), first[:80]


SEVENTEEN_MB = 17 * 1000 * 1000


def _seventeen_mb_in_pieces() -> Iterator[bytes]:
    piece = b"x" * (1000 * 1000)
    for _ in range(17):
        yield piece


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_17_mb_body_gets_a_clean_413_every_time(
    server: EmulatorServer, framing: str
) -> None:
    """The server reads what the client sends after refusing: no reset, an answer."""
    for _ in range(3):
        with httpx.Client(timeout=SOCKET_TIMEOUT) as client:
            if framing == "chunked":  # a generator body goes out chunked
                content: Any = _seventeen_mb_in_pieces()
            else:
                content = b"x" * SEVENTEEN_MB
            response = client.post(
                f"{server.base_url}/assistants/helper/messages",
                content=content,
                headers={**AUTH, "Content-Type": "application/json"},
            )
        assert response.status_code == 413
        assert error_code(response.json()) == "PAYLOAD_TOO_LARGE"
    assert server.emulator.requests == []
    still_serves(server)
