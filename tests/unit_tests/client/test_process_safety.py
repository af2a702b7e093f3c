"""What a first-week user meets: pickling, copies, blank keys and ids, configs
shared by several assistants, timeouts, and retry helpers (issue 9, items 3-8).

Every test here failed before the fix it names. No sockets: the emulator's
in-process transport or an `httpx.MockTransport` stands in for Devic (the
multiprocessing pool talks to its workers over Unix pipes only).
"""

from __future__ import annotations

import asyncio
import copy
import gc
import multiprocessing
import pickle
import types
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from langchain.agents.middleware import ModelRetryMiddleware
from langchain_core.exceptions import ModelError
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph
from pydantic import SecretStr

from langchain_devic import (
    RETRYABLE_ERRORS,
    ChatDevic,
    DevicAssistantTool,
    DevicConnectError,
    DevicConnectTimeoutError,
    DevicError,
    DevicProtocolError,
    DevicServerError,
    DevicServiceUnavailableError,
    DevicTimeoutError,
)
from langchain_devic.testing import DevicEmulator, Fault
from tests.unit_tests.conftest import API_KEY, ASSISTANT, BASE_URL, make_model

# ------------------------------------------------------------------ pickling


def settings_of(model: ChatDevic) -> dict[str, Any]:
    return model.model_dump(exclude={"api_key"}) | {
        "api_key": model.api_key.get_secret_value()
    }


def own_pools_model() -> ChatDevic:
    """A model that builds its own clients (nothing user-supplied to refuse)."""
    return ChatDevic(
        assistant_id=ASSISTANT, api_key=API_KEY, base_url=BASE_URL, timeout=33
    )


def test_a_fresh_model_pickles_with_its_settings() -> None:
    model = own_pools_model()
    restored = pickle.loads(pickle.dumps(model))  # noqa: S301 - our own bytes
    assert settings_of(restored) == settings_of(model)
    assert isinstance(restored.api_key, SecretStr)


def test_a_used_model_pickles_without_its_pools() -> None:
    model = own_pools_model()
    sync_client = model.client

    async def build_async() -> object:
        return model.async_client

    asyncio.run(build_async())
    restored = pickle.loads(pickle.dumps(model))  # noqa: S301 - our own bytes
    assert settings_of(restored) == settings_of(model)
    assert restored.client is not sync_client  # built anew in its new home
    assert model.client is sync_client


def test_pickled_bytes_hold_no_pool_or_lock() -> None:
    model = own_pools_model()
    _ = model.client
    data = pickle.dumps(model)
    for marker in (b"ClientPools", b"httpx", b"RLock", b"_thread"):
        assert marker not in data


def test_a_model_with_its_own_http_client_refuses_pickling_clearly(
    emulator: DevicEmulator,
) -> None:
    with pytest.raises(TypeError, match="http_client cannot be pickled"):
        pickle.dumps(make_model(emulator))


def test_the_tool_pickles() -> None:
    tool = DevicAssistantTool(
        name="helper", description="Helps.", chat_model=own_pools_model()
    )
    restored = pickle.loads(pickle.dumps(tool))  # noqa: S301 - our own bytes
    assert restored.name == "helper"
    assert settings_of(restored.chat_model) == settings_of(tool.chat_model)


def describe(model: ChatDevic) -> tuple[str, str, bool]:
    """Runs in a spawned worker: what arrived of the model."""
    return (
        model.assistant_id,
        model.base_url,
        model.api_key.get_secret_value() == API_KEY,
    )


def test_a_spawn_pool_maps_over_models() -> None:
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        results = pool.map(describe, [own_pools_model()])
    assert results == [(ASSISTANT, BASE_URL, True)]


def test_copies_build_their_own_pools() -> None:
    model = own_pools_model()
    built = model.pools
    for twin in (copy.copy(model), copy.deepcopy(model), model.model_copy()):
        assert twin.pools is not built
    assert model.pools is built


# ------------------------------------------------------------------ blank keys


@pytest.mark.parametrize(
    "key", ["", "   ", "tok-9f3e\n", " tok-9f3e", "tok\t9f3e", "tök-9f3e"]
)
def test_blank_or_padded_keys_are_refused_at_construction(key: str) -> None:
    with pytest.raises(ValueError, match="DEVIC_API_KEY") as raised:
        ChatDevic(assistant_id=ASSISTANT, api_key=key, base_url=BASE_URL)
    assert "9f3e" not in str(raised.value)


def test_an_empty_key_in_the_environment_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DEVIC_API_KEY", "")
    with pytest.raises(ValueError, match="DEVIC_API_KEY"):
        ChatDevic(assistant_id=ASSISTANT, base_url=BASE_URL)


def test_the_tool_refuses_a_blank_key_too() -> None:
    with pytest.raises(ValueError, match="DEVIC_API_KEY"):
        DevicAssistantTool(
            name="t", description="d", assistant_id=ASSISTANT, api_key=" "
        )


# ---------------------------------------------------------------- blank ids


@pytest.mark.parametrize("blank", ["", "  "])
def test_a_blank_chat_uuid_keyword_is_refused_before_any_request(
    blank: str, emulator: DevicEmulator, model: ChatDevic
) -> None:
    with pytest.raises(ValueError, match="chat_uuid is empty"):
        model.invoke("hello", chat_uuid=blank)
    assert emulator.requests == []


async def test_a_blank_chat_uuid_in_the_config_is_refused_async(
    emulator: DevicEmulator, model: ChatDevic
) -> None:
    with pytest.raises(ValueError, match="chat_uuid'\\] is empty"):
        await model.ainvoke("hello", config={"configurable": {"chat_uuid": ""}})
    assert emulator.requests == []


def test_a_chat_uuid_of_another_type_is_a_type_error(model: ChatDevic) -> None:
    with pytest.raises(TypeError, match="conversation id string"):
        model.invoke("hello", config={"configurable": {"chat_uuid": 42}})


# --------------------------------------------- one config, several assistants


@pytest.fixture
def two_assistants() -> DevicEmulator:
    return DevicEmulator(
        api_key=API_KEY, assistants=["support", "billing"], random_seed=1
    )


def assistant(emulator: DevicEmulator, assistant_id: str) -> ChatDevic:
    return make_model(emulator, model=assistant_id)


def support_then_billing(emulator: DevicEmulator) -> Any:
    """The issue's graph: support answers, then billing, on a checkpointer."""
    support = assistant(emulator, "support")
    billing = assistant(emulator, "billing")

    def ask_support(state: MessagesState) -> dict[str, Any]:
        return {"messages": [support.invoke(state["messages"])]}

    def ask_billing(state: MessagesState) -> dict[str, Any]:
        return {"messages": [billing.invoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("support", ask_support)
    graph.add_node("billing", ask_billing)
    graph.add_edge(START, "support")
    graph.add_edge("support", "billing")
    return graph.compile(checkpointer=InMemorySaver())


def first_turn(emulator: DevicEmulator) -> tuple[Any, dict[str, str]]:
    """Run the graph once on thread 1; the chat each assistant opened."""
    graph = support_then_billing(emulator)
    out = graph.invoke(
        {"messages": [HumanMessage("My invoice is wrong.")]},
        {"configurable": {"thread_id": "1"}},
    )
    chats = {
        m.response_metadata["assistant_id"]: m.response_metadata["chat_uuid"]
        for m in out["messages"]
        if isinstance(m, AIMessage)
    }
    return graph, chats


def test_a_graph_config_maps_each_assistant_to_its_chat(
    two_assistants: DevicEmulator,
) -> None:
    graph, chats = first_turn(two_assistants)
    config = {"configurable": {"thread_id": "1", "chat_uuid": chats}}

    graph.invoke({"messages": [HumanMessage("Still wrong.")]}, config)

    later = two_assistants.requests[2:]
    assert [(r.assistant_id, r.chat_uuid) for r in later] == [
        ("support", chats["support"]),
        ("billing", chats["billing"]),
    ]


def test_an_assistant_missing_from_the_dict_follows_its_own_replies(
    two_assistants: DevicEmulator,
) -> None:
    graph, chats = first_turn(two_assistants)
    config = {"configurable": {"thread_id": "1", "chat_uuid": {"x": "y"}}}

    graph.invoke({"messages": [HumanMessage("Still wrong.")]}, config)

    later = two_assistants.requests[2:]
    assert [r.chat_uuid for r in later] == [chats["support"], chats["billing"]]


def test_a_string_config_naming_another_assistants_chat_says_so(
    two_assistants: DevicEmulator,
) -> None:
    graph, chats = first_turn(two_assistants)
    config = {"configurable": {"thread_id": "1", "chat_uuid": chats["support"]}}

    with pytest.raises(ValueError, match="belongs to assistant 'support'") as raised:
        graph.invoke({"messages": [HumanMessage("Still wrong.")]}, config)

    assert "not to 'billing'" in str(raised.value)
    assert "{'support': ..., 'billing': ...}" in str(raised.value)
    # support continued its chat; billing refused before sending anything.
    assert [r.assistant_id for r in two_assistants.requests[2:]] == ["support"]


# ---------------------------------------------------------- errors and the key

KEY_CORE = API_KEY.split("-")[2]


def reachable(root: object) -> Iterator[object]:
    """Every object reachable from an exception, tracebacks and code aside."""
    skip = (types.FrameType, types.TracebackType, types.ModuleType, type)
    skip += (types.FunctionType, types.CodeType, types.BuiltinFunctionType)
    seen: set[int] = set()
    todo = [root]
    while todo:
        obj = todo.pop()
        if id(obj) in seen or isinstance(obj, skip):
            continue
        seen.add(id(obj))
        yield obj
        if isinstance(obj, BaseException):
            todo += [obj.__cause__, obj.__context__, *obj.args]
        todo += gc.get_referents(obj)


def assert_key_unreachable(error: BaseException) -> None:
    for obj in reachable(error):
        if isinstance(obj, str | bytes | bytearray):
            text = obj if isinstance(obj, str) else bytes(obj).decode("latin-1")
            assert KEY_CORE not in text, (type(error).__name__, text[:200])


def failing_model(exc: Callable[[httpx.Request], Exception]) -> ChatDevic:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc(request)

    return ChatDevic(
        assistant_id=ASSISTANT,
        api_key=API_KEY,
        base_url=BASE_URL,
        timeout=7.5,
        max_retries=0,
        http_client=httpx.Client(transport=httpx.MockTransport(handler)),
    )


def test_a_read_timeout_names_the_timeout_and_the_conversation() -> None:
    model = failing_model(lambda r: httpx.ReadTimeout("timed out", request=r))
    with pytest.raises(DevicTimeoutError) as raised:
        model.invoke("hello", chat_uuid="chat-7")
    text = str(raised.value)
    assert "7.5 s" in text
    assert "chat-7" in text
    assert "may still have run" in text
    assert raised.value.is_retryable is False


@pytest.mark.parametrize(
    ("failure", "raised_type"),
    [
        (lambda r: httpx.ReadTimeout("read", request=r), DevicTimeoutError),
        (
            lambda r: httpx.ConnectTimeout("connect", request=r),
            DevicConnectTimeoutError,
        ),
        (lambda r: httpx.ConnectError("refused", request=r), DevicConnectError),
        (
            lambda r: httpx.RemoteProtocolError("dropped", request=r),
            DevicError,
        ),
    ],
)
def test_no_object_reachable_from_a_transport_error_holds_the_key(
    failure: Callable[[httpx.Request], Exception], raised_type: type[DevicError]
) -> None:
    model = failing_model(failure)
    with pytest.raises(raised_type) as raised:
        model.invoke("hello")
    cause = raised.value.__cause__
    assert cause is not None  # the httpx failure's type and text stay visible
    assert isinstance(cause, httpx.TransportError)
    assert_key_unreachable(raised.value)


def test_no_object_reachable_from_a_malformed_answer_holds_the_key(
    emulator: DevicEmulator, model: ChatDevic
) -> None:
    emulator.inject(Fault.malformed(f"not json {API_KEY}".encode()))
    with pytest.raises(DevicError) as raised:
        model.invoke("hello")
    assert_key_unreachable(raised.value)


def test_no_object_reachable_from_an_api_error_holds_the_key(
    emulator: DevicEmulator, model: ChatDevic
) -> None:
    emulator.inject(Fault.status(500, body={"message": f"Bearer {API_KEY}"}))
    with pytest.raises(DevicServerError) as raised:
        model.invoke("hello")
    assert_key_unreachable(raised.value)


# ------------------------------------------------------------------- retries


@pytest.mark.parametrize(("status", "statuses_seen"), [(500, [500]), (503, [503, 200])])
def test_with_retry_on_retryable_errors_resends_only_unprocessed_turns(
    status: int, statuses_seen: list[int], emulator: DevicEmulator
) -> None:
    """`with_retry()` alone would post a 500's turn twice; with RETRYABLE_ERRORS
    only a turn Devic refused unprocessed (503) is sent again."""
    model = make_model(emulator, max_retries=0)
    emulator.inject(Fault.status(status))
    retrying = model.with_retry(
        retry_if_exception_type=RETRYABLE_ERRORS, wait_exponential_jitter=False
    )
    if status == 500:
        with pytest.raises(DevicServerError):
            retrying.invoke("hello")
    else:
        assert retrying.invoke("hello").text
    assert [r.status for r in emulator.requests] == statuses_seen


@pytest.mark.parametrize("status", [408, 409, 429, 503])
def test_every_not_processed_status_raises_a_retryable_type(
    status: int, emulator: DevicEmulator
) -> None:
    model = make_model(emulator, max_retries=0)
    emulator.inject(Fault.status(status, retry_after=0))
    with pytest.raises(RETRYABLE_ERRORS) as raised:
        model.invoke("hello")
    assert raised.value.is_retryable is True


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422, 500, 501, 502, 504])
def test_no_other_status_raises_a_retryable_type(
    status: int, emulator: DevicEmulator
) -> None:
    model = make_model(emulator, max_retries=0)
    emulator.inject(Fault.status(status))
    with pytest.raises(DevicError) as raised:
        model.invoke("hello")
    assert not isinstance(raised.value, RETRYABLE_ERRORS)
    assert raised.value.is_retryable is False


def test_unavailable_is_a_server_error_family() -> None:
    assert issubclass(DevicServiceUnavailableError, DevicServerError)


@pytest.mark.parametrize(
    ("error", "retried"),
    [
        (DevicServerError("boom", status_code=500), False),
        (DevicProtocolError("not json"), False),
        (DevicTimeoutError("read timeout", is_retryable=False), False),
        (DevicServiceUnavailableError("busy", status_code=503), True),
        (DevicConnectError("refused"), True),
    ],
)
def test_langchains_model_retry_middleware_honours_is_retryable(
    error: DevicError, retried: bool
) -> None:
    """The agent middleware's default filter reads `is_retryable` of every
    `ModelError`; each Devic error is one, so a processed turn is never resent."""
    middleware = ModelRetryMiddleware()
    assert isinstance(error, ModelError)
    assert middleware.retry_on(error) is retried


# ------------------------------------------------------------------- TLS cost


def test_every_built_client_shares_one_tls_context(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Loading the CA bundle costs ~30 ms and 0.8 MiB: once per process, not once
    per client (a client per event loop would pay it at every asyncio.run)."""
    from langchain_devic import _transports

    built: list[object] = []
    real = httpx.create_ssl_context

    def counting(*args: Any, **kwargs: Any) -> Any:
        built.append(real(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(_transports, "_SSL_CONTEXT", None)
    monkeypatch.setattr(httpx, "create_ssl_context", counting)
    models = [own_pools_model() for _ in range(3)]
    clients = [m.client.http for m in models]

    async def build_async() -> list[object]:
        return [m.async_client.http for m in models]

    clients += asyncio.run(build_async())
    assert len(built) == 1
    assert len({id(c) for c in clients}) == 6  # six pools ...
    contexts = {id(c._transport._pool._ssl_context) for c in clients}  # type: ignore[attr-defined]
    assert contexts == {id(built[0])}  # ... one TLS context
