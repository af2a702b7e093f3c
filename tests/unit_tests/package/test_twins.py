"""Sync and async twins stay twins.

The client, the model's calls and the tool's calls are written once, async, and
their sync twins generated (`scripts/unasync.py`, checked fresh by `.ci/run`).
The few hand-written pairs left (the progress sink, the thread stores, the
locks) are compared here: each async method, with its `await`s, `async`
keywords and `a`-prefixed names mapped to their sync spelling, must parse to
the same tree as its sync twin, so a fix made to one and not the other fails.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Callable
from typing import Any

import pytest

from langchain_devic._locks import LockTable
from langchain_devic._progress import ProgressSink
from langchain_devic._stores import ThreadStore
from langchain_devic.locks import InProcessLock, PostgresAdvisoryLock

#: Async spelling -> sync spelling, for names that differ only by colour.
SYNC_NAMES = {
    "AsyncCallbackManagerForLLMRun": "CallbackManagerForLLMRun",
    "AsyncCallbackManagerForToolRun": "CallbackManagerForToolRun",
    "AsyncClient": "Client",
    "AsyncDevicClient": "DevicClient",
    "AsyncIterator": "Iterator",
    "_aask": "_ask",
    "_agenerate": "_generate",
    "_arun": "_run",
    "agenerate_from_stream": "generate_from_stream",
    "aload_chat": "load_chat",
    "alist_chats": "list_chats",
    "astop_chat": "stop_chat",
    "aiter_lines": "iter_lines",
    "aread": "read",
    "areport": "report",
    "AsyncCallbackManager": "CallbackManager",
    "_asend": "_send",
    "_asleep": "_sleep",
    "_astream": "_stream",
    "aclose": "close",
    "ahold": "hold",
    "ainvoke": "invoke",
    "aiter_bytes": "iter_bytes",
    "amget": "mget",
    "amset": "mset",
    "async_client": "client",
    "awork": "work",
    # DevicAssistantTool, its stores and locks
    "_aconverse": "_converse",
    "aget_chat_uuid": "get_chat_uuid",
    "_asave": "_save",
    "_adelegate": "_delegate",
    "_aplatform_turn": "_platform_turn",
    "_aawait_idle": "_await_idle",
    "_areport": "_report",
    "aget": "get",
    "aput": "put",
    "_aread": "_read",
    "_awrite": "_write",
    "aacquire": "acquire",
    "_aconnection": "_connection",
    "_alock": "_lock",
    "_aunlock": "_unlock",
    "asynccontextmanager": "contextmanager",
    "AsyncConnection": "Connection",
    "asend": "send",
    "_astarted": "_started",
    "_averify": "_verify",
    "AsyncHeldLock": "HeldLock",
    "AsyncExitStack": "ExitStack",
    "enter_async_context": "enter_context",
    "aopen_stream": "open_stream",
    "ASettle": "Settle",
}


class _ToSync(ast.NodeTransformer):
    def visit_Await(self, node: ast.Await) -> Any:
        return self.visit(node.value)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> Any:
        sync = ast.FunctionDef(**{f: getattr(node, f) for f in node._fields})
        return self.visit_FunctionDef(ast.copy_location(sync, node))

    def visit_AsyncFor(self, node: ast.AsyncFor) -> Any:
        body = node.body
        if (  # `async for x in it: yield x` is the async spelling of `yield from it`
            len(body) == 1
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Yield)
            and ast.dump(body[0].value.value or ast.Constant(None))
            == ast.dump(node.target).replace("Store()", "Load()")
        ):
            delegate = ast.Expr(ast.YieldFrom(node.iter))
            return self.generic_visit(ast.copy_location(delegate, node))
        sync = ast.For(**{f: getattr(node, f) for f in node._fields})
        return self.generic_visit(ast.copy_location(sync, node))

    def visit_comprehension(self, node: ast.comprehension) -> Any:
        node.is_async = 0
        return self.generic_visit(node)

    def visit_AsyncWith(self, node: ast.AsyncWith) -> Any:
        sync = ast.With(**{f: getattr(node, f) for f in node._fields})
        return self.generic_visit(ast.copy_location(sync, node))

    def visit_Name(self, node: ast.Name) -> Any:
        node.id = SYNC_NAMES.get(node.id, node.id)
        return node

    def visit_Attribute(self, node: ast.Attribute) -> Any:
        node.attr = SYNC_NAMES.get(node.attr, node.attr)
        return self.generic_visit(node)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> Any:
        node.name = SYNC_NAMES.get(node.name, node.name)
        body = node.body
        if (
            body
            and isinstance(body[0], ast.Expr)
            and isinstance(getattr(body[0], "value", None), ast.Constant)
        ):
            node.body = body[1:] or [ast.Pass()]  # docstrings may differ
        return self.generic_visit(node)


def normalized(function: Callable[..., Any]) -> str:
    source = textwrap.dedent(inspect.getsource(function))
    tree = _ToSync().visit(ast.parse(source))
    return ast.unparse(tree)


TWINS = [
    (ProgressSink.report, ProgressSink.areport),
    (ThreadStore.get, ThreadStore.aget),
    (ThreadStore.put, ThreadStore.aput),
    (LockTable.hold, LockTable.ahold),
    (InProcessLock.hold, InProcessLock.ahold),
    (PostgresAdvisoryLock.hold, PostgresAdvisoryLock.ahold),
    (PostgresAdvisoryLock._lock, PostgresAdvisoryLock._alock),
    (PostgresAdvisoryLock._unlock, PostgresAdvisoryLock._aunlock),
]


@pytest.mark.parametrize(
    ("sync", "async_"), TWINS, ids=[s.__qualname__ for s, _ in TWINS]
)
def test_async_twin_matches_its_sync_twin(
    sync: Callable[..., Any], async_: Callable[..., Any]
) -> None:
    assert normalized(async_) == normalized(sync)


def test_the_comparison_sees_a_drifted_twin() -> None:
    """The check itself can fail: one extra statement in a twin is caught."""

    def work(client: Any) -> int:
        client.close()
        return 1

    async def awork(client: Any) -> int:
        await client.aclose()
        client.flush()
        return 1

    assert normalized(awork) != normalized(work)

    async def awork(client: Any) -> int:  # the faithful twin
        await client.aclose()
        return 1

    assert normalized(awork) == normalized(work)
