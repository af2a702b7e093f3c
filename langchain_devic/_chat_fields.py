"""ChatDevic's settings as pydantic fields: each one's default, doc and check.

The defaults of the client settings come from `_settings` (the one list, held
against this class and the docs by a test); the message options are Devic's
`ProcessMessageDto` fields under Python names.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Literal

import httpx
from langchain_core.caches import BaseCache
from langchain_core.language_models import BaseChatModel
from langchain_core.utils import from_env, secret_from_env
from pydantic import (
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
)

from langchain_devic import _wire
from langchain_devic._client import (
    DEFAULT_MAX_POLL_INTERVAL,
    DEFAULT_POLL_INTERVAL,
    DEFAULT_RUN_TIMEOUT,
    DEFAULT_TIMEOUT,
    MAX_RESPONSE_BYTES,
    AsyncTransport,
)
from langchain_devic._convert import (
    History,
)
from langchain_devic._retry import DEFAULT_MAX_RETRIES

RunMode = Literal["auto", "sync", "async"]


class _ChatFields(BaseChatModel):
    """The fields of `ChatDevic`, and the checks that run before any request."""

    model_config = ConfigDict(
        populate_by_name=True,
        arbitrary_types_allowed=True,
        hide_input_in_errors=True,
        defer_build=True,  # build the validator on first use, not at import
    )

    if not TYPE_CHECKING:

        def __init__(self, **data: Any) -> None:
            # Checked before pydantic, whose validation errors would repeat it.
            _wire.refuse_credentials(
                data.get("base_url", os.environ.get("DEVIC_BASE_URL"))
            )
            super().__init__(**data)

    assistant_id: str = Field(
        alias="model",
        validate_default=True,
        default_factory=from_env(
            "DEVIC_ASSISTANT_ID",
            error_message=(
                "ChatDevic needs an assistant id: pass assistant_id='...' (alias "
                "model=) or set the DEVIC_ASSISTANT_ID environment variable."
            ),
        ),
    )
    """The Devic assistant to talk to (its id from the "Get Code" dialog).

    Read from `DEVIC_ASSISTANT_ID` when not given. Percent-encoded into one URL
    path segment, never concatenated raw."""

    api_key: SecretStr = Field(
        validate_default=True,
        default_factory=secret_from_env(
            "DEVIC_API_KEY",
            error_message=(
                "ChatDevic needs a Devic API key: set the DEVIC_API_KEY environment "
                "variable or pass api_key='...'."
            ),
        ),
    )
    """The Devic API token (`DEVIC_API_KEY`). Kept as a `SecretStr`: never printed,
    logged or serialized."""

    base_url: str = Field(
        default_factory=from_env("DEVIC_BASE_URL", default=_wire.DEFAULT_BASE_URL),
        validate_default=True,
    )
    """API root (`DEVIC_BASE_URL`, default `https://api.devic.ai/v1`). Requests go to
    `{base_url}/assistants/{assistant_id}/messages`; plain `http://` is refused
    unless the host is loopback (the emulator). With the default, everything
    but the one call (runs, chats, assistants, search, feedback) goes to
    `https://api.devic.ai/api/v1`, where Devic serves it; a base URL that is
    set is used as given for every route."""

    timeout: float | httpx.Timeout | None = DEFAULT_TIMEOUT
    """Seconds to wait for a reply (default 120: assistants run tools). A float is
    the read timeout, connecting keeps 5 s; an `httpx.Timeout` sets every phase."""

    max_retries: int = Field(default=DEFAULT_MAX_RETRIES, ge=0)
    """Retries of failures Devic certainly did not process (connect errors, 408,
    409, 429, 502, 503, 504). A 500 or a read timeout is never retried."""

    context: dict[str, Any] | None = None
    """Default Devic `context` object; each call's `context=` keys win over it."""

    request_metadata: dict[str, Any] | None = None
    """Default Devic `metadata` object (e.g. a user id or a language); each call's
    `request_metadata=` keys win. Named so because `metadata` is LangChain's."""

    history: History = "transcript"
    """What to do with earlier turns when a NEW conversation starts:
    `"transcript"` renders them into the message as a labelled transcript,
    `"native"` sends them as Devic's `previousConversation` (the message is the
    last user turn alone), `"last"` sends only the final user turn."""

    tenant_id: str | None = None
    """Devic's `tenantId` for every send (per call: `tenant_id=` or
    `configurable["tenant_id"]`). `None`: not sent."""

    subtenant_id: str | None = None
    """Devic's `subtenantId` for every send. `None`: not sent."""

    user_name: str | None = None
    """Devic's `userName`: who is talking, as the assistant sees it."""

    request_tags: list[str] | None = None
    """Devic's `tags` on the chat (searchable with `search_chats(tags=...)`).
    Not `tags`, which are LangChain's tracing tags."""

    enabled_tools: list[str] | None = None
    """Devic's `enabledTools`: the assistant's own tools this turn may use."""

    skip_summarization: bool | None = None
    """Devic's `skipSummarization` (also `&skipSummarization=true` on a
    platform run's send)."""

    llm_provider: str | None = None
    """Devic's `provider`: the LLM provider for the turn (the assistant's own
    when `None`)."""

    llm_model: str | None = None
    """Devic's `model`: the LLM for the turn. Not `model`, which is the
    assistant id here."""

    http_client: httpx.Client | None = Field(default=None, exclude=True)
    """Your own `httpx.Client` (proxies, mTLS, the emulator's transport)."""

    http_async_client: httpx.AsyncClient | None = Field(default=None, exclude=True)
    """Your own `httpx.AsyncClient`, for async calls."""

    async_transport: AsyncTransport = "httpcore"
    """What carries the async calls of the clients ChatDevic builds (one per
    event loop; both are `httpx.AsyncClient`s). `"httpcore"` (default): httpx's
    own pool, which keeps at most 20 idle connections, so bursts of more
    concurrent calls open new ones. `"aiohttp"`: aiohttp's pool through the
    `httpx-aiohttp` transport (`pip install "langchain-devic[aiohttp]"`), which
    keeps them all: for hundreds of concurrent `ainvoke`s. Retries, errors, size
    caps, refused redirects and key hygiene are the same. Ignored when
    `http_async_client` is given; sync calls always use httpcore."""

    default_headers: dict[str, str] | None = None
    """Extra headers sent with every request."""

    max_response_bytes: int = Field(default=MAX_RESPONSE_BYTES, gt=0)
    """Answers larger than this (10 MiB) are refused with `DevicProtocolError`."""

    run_mode: RunMode = "auto"
    """How a call reaches Devic. `"sync"`: the one-call API only (a stream is one
    chunk); `"async"`: every call is a platform run, followed until it ends;
    `"auto"` (default): the one call for `invoke`/`batch`, a platform run for
    `stream`/`astream` (text as it is written, progress events)."""

    run_timeout: float = Field(default=DEFAULT_RUN_TIMEOUT, gt=0)
    """Seconds one platform run is followed (default 600) before
    `DevicTimeoutError`, which names the chat: the run may still finish."""

    poll_interval: float = Field(default=DEFAULT_POLL_INTERVAL, gt=0)
    """First wait between two reads of a run's view when polling (default 0.5 s);
    it grows by half each read up to `max_poll_interval`, and starts over when
    the view changed."""

    max_poll_interval: float = Field(default=DEFAULT_MAX_POLL_INTERVAL, gt=0)
    """Longest wait between two reads of a run's view (default 5 s)."""

    cache: BaseCache | bool | None = Field(default=False, exclude=True)
    """Off by default: a Devic turn changes server state, so a cached reply would
    skip the turn (and could hand one chatUuid to two callers)."""

    # Field validators, not a model validator: a model-level error would carry
    # every input (the API key included) in ValidationError.errors().
    @field_validator("assistant_id")
    @classmethod
    def _check_assistant_id(cls, value: str) -> str:
        return _wire.validate_assistant_id(value)

    @field_validator("api_key")
    @classmethod
    def _check_api_key(cls, value: SecretStr) -> SecretStr:
        _wire.validate_api_key(value.get_secret_value())
        return value

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str) -> str:
        return _wire.validate_base_url(value)
