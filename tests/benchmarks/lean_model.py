"""Reference chat models for benchmark 1: the least a correct Devic model costs.

- `FloorModel`: langchain-core's own cost per call, a `_generate` that returns
  a fixed message and sends nothing.
- `ComposedModel`: the floor plus the raw httpx post, composed in one
  `_generate` (the request captured from ChatDevic, replayed as bytes).
- `LeanDevicModel`: a minimal correct Devic chat model on the same httpx
  client: it builds the body from the last human message, sends it with the
  key, refuses a non-2xx answer, parses the reply and returns the conversation
  id, the way ChatDevic must. No retries, no conversation resolution, no size
  cap, no redaction: the lean bound, not a product. It takes the two shortcuts
  any model can (a parsed `httpx.URL`, a precomputed `__signature__` for
  `_generate`, which langchain-core inspects on every call), so it is the best
  a correct model does; the floor and the composed model take neither.

Benchmark 1 times each against the raw post; ChatDevic's gap to the lean model
is what its features cost.
"""

from __future__ import annotations

import inspect
import json
from functools import cached_property
from typing import Any

import httpx
from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import ConfigDict


class FloorModel(BaseChatModel):
    """langchain-core's cost alone: a `_generate` that sends nothing."""

    reply: str = "Thirty days."

    @property
    def _llm_type(self) -> str:
        return "floor"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=AIMessage(self.reply))])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=AIMessage(self.reply))])


class ComposedModel(BaseChatModel):
    """The floor plus the raw post of a captured request, in one `_generate`."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    url: str
    headers: dict[str, str]
    body: dict[str, Any]
    http_client: httpx.Client
    http_async_client: httpx.AsyncClient

    @property
    def _llm_type(self) -> str:
        return "composed-floor"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self.http_client.post(self.url, json=self.body, headers=self.headers)
        return ChatResult(generations=[ChatGeneration(message=AIMessage("raw"))])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        client = self.http_async_client
        await client.post(self.url, json=self.body, headers=self.headers)
        return ChatResult(generations=[ChatGeneration(message=AIMessage("raw"))])


class LeanDevicModel(BaseChatModel):
    """A minimal correct Devic model: one request, one typed answer."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    assistant_id: str
    api_key: str
    base_url: str
    http_client: httpx.Client
    http_async_client: httpx.AsyncClient

    @property
    def _llm_type(self) -> str:
        return "lean-devic"

    @cached_property
    def _url(self) -> httpx.URL:
        return httpx.URL(f"{self.base_url}/assistants/{self.assistant_id}/messages")

    def _request(self, messages: list[BaseMessage]) -> dict[str, Any]:
        return {
            "url": self._url,
            "json": {"message": messages[-1].text, "chatUuid": None},
            "headers": {
                "Authorization": f"Bearer {self.api_key}",
                "User-Agent": "langchain-devic-lean",
            },
        }

    def _result(self, response: httpx.Response) -> ChatResult:
        if not response.is_success:
            msg = f"Devic answered {response.status_code}"
            raise RuntimeError(msg)
        data = json.loads(response.content)
        message = AIMessage(
            data["message"], response_metadata={"chat_uuid": data.get("chatUuid")}
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        response = self.http_client.post(**self._request(messages))
        return self._result(response)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        response = await self.http_async_client.post(**self._request(messages))
        return self._result(response)


for _method in (LeanDevicModel._generate, LeanDevicModel._agenerate):
    setattr(_method, "__signature__", inspect.signature(_method))  # noqa: B010
