"""One ChatDevic across forked processes and event loops, over real loopback HTTP.

Each test failed before connection pools moved into `ClientPools`:
- forked children shared the parent's pooled connection, and one child read
  another child's reply (issue 9, item 1);
- every `asyncio.run(model.ainvoke(...))` kept an async client and its sockets
  (407 descriptors after 400 runs; issue 9, item 2).
Both are bounded: a fixed number of children or runs, each child with a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import select
import sys
import time
from collections.abc import Iterator

import pytest

from langchain_devic import ChatDevic
from langchain_devic.testing import DevicEmulator, EmulatorServer

pytestmark = pytest.mark.allow_hosts(["127.0.0.1"])

KEY = "process-safety-TOKEN-91c2"
ASSISTANT = "echo"
CHILDREN = 8
#: How long the parent waits for all children together, at most.
CHILD_DEADLINE_S = 60.0

linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"),
    reason="counts descriptors in /proc/self/fd and forks: Linux only",
)


@pytest.fixture
def server() -> Iterator[EmulatorServer]:
    emulator = DevicEmulator(api_key=KEY, assistants=[ASSISTANT], random_seed=1)
    with emulator.serve() as running:
        yield running


def make_model(server: EmulatorServer) -> ChatDevic:
    return ChatDevic(assistant_id=ASSISTANT, api_key=KEY, base_url=server.base_url)


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def run_child(model: ChatDevic, index: int, write_end: int) -> None:
    """In a forked child: one call, the reply text to the pipe, then exit."""
    status = 1
    try:
        reply = model.invoke(f"user-{index} secret")
        os.write(write_end, f"{index}\t{reply.text}\n".encode())
        status = 0
    except BaseException as exc:  # report anything to the parent
        os.write(write_end, f"{index}\tERROR {type(exc).__name__}: {exc}\n".encode())
    finally:
        os._exit(status)


def collect(read_end: int, expected_lines: int) -> list[str]:
    """Read lines from the children until all arrived or the deadline passed."""
    deadline = time.monotonic() + CHILD_DEADLINE_S
    data = b""
    while data.count(b"\n") < expected_lines:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        ready, _, _ = select.select([read_end], [], [], left)
        if not ready:
            break
        chunk = os.read(read_end, 65536)
        if not chunk:
            break
        data += chunk
    return data.decode().splitlines()


@linux_only
# The emulator's server thread runs in this process; the children touch only the
# client (as forked web workers do), so Python 3.12+'s warning about forking a
# threaded process is expected here.
@pytest.mark.filterwarnings(
    "ignore:This process .* is multi-threaded, use of fork:DeprecationWarning"
)
def test_forked_children_never_read_each_others_replies(
    server: EmulatorServer,
) -> None:
    model = make_model(server)
    model.invoke("parent warms its pool")  # the pool now holds a live connection
    read_end, write_end = os.pipe()
    pids = []
    for index in range(CHILDREN):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            os.close(read_end)
            run_child(model, index, write_end)
        pids.append(pid)
    os.close(write_end)
    try:
        lines = collect(read_end, CHILDREN)
    finally:
        os.close(read_end)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
            os.waitpid(pid, 0)

    replies = dict(line.split("\t", 1) for line in lines)
    assert sorted(replies) == [str(i) for i in range(CHILDREN)], lines
    for index, text in replies.items():
        assert f"user-{index} secret" in text, (index, text)
        others = [i for i in range(CHILDREN) if str(i) != index]
        assert not any(f"user-{i} secret" in text for i in others), (index, text)
    # The parent's own pool still works after its children used theirs.
    assert "parent again" in model.invoke("parent again").text


@linux_only
def test_asyncio_run_per_call_keeps_no_client_or_socket(server: EmulatorServer) -> None:
    model = make_model(server)
    asyncio.run(model.ainvoke("warm up"))
    gc.collect()
    before = open_descriptors()

    for index in range(60):
        reply = asyncio.run(model.ainvoke(f"call {index}"))
        assert reply.text.endswith(f"call {index}")
        assert len(model.pools) <= 1  # at most the sync client, never a dead loop's

    gc.collect()
    assert open_descriptors() - before <= 3
    assert model.pools.async_clients() == 0


@linux_only
def test_loops_closed_by_hand_leave_at_most_one_stale_client(
    server: EmulatorServer,
) -> None:
    """A loop closed without `shutdown_asyncgens` cannot close its own client:
    the next call from any loop drops it, so stale clients never pile up."""
    model = make_model(server)
    gc.collect()
    before = open_descriptors()

    for index in range(60):
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(model.ainvoke(f"by hand {index}"))
        finally:
            loop.close()
        assert model.pools.async_clients() <= 1

    gc.collect()
    assert open_descriptors() - before <= 6


def test_an_async_stream_left_early_stops_its_run_before_its_pool_closes() -> None:
    """At the end of `asyncio.run` the loop finalizes the abandoned stream (which
    sends the stop) and the model's pool together: the stop still goes out."""
    from langchain_devic.testing import Write

    def slow(conversation: object) -> list[Write]:
        return [Write(f"part {i}.", pieces=2, interval=0.02) for i in range(10)]

    emulator = DevicEmulator(
        api_key=KEY, dialect="platform", assistants={"slow": slow}, random_seed=3
    )
    with emulator.serve() as running:
        chat = ChatDevic(assistant_id="slow", api_key=KEY, base_url=running.base_url)

        async def main() -> None:
            async for chunk in chat.astream("go"):
                if chunk.text:
                    break

        asyncio.run(main())
        emulator.wait_idle()
    stops = [r for r in emulator.requests if r.path.endswith("/stop")]
    assert len(stops) == 1
    assert stops[0].status == 201
