"""What Devic's two tools share: their ChatDevic, built from their own fields.

`DevicAssistantTool` and `DevicAgentTool` both take either `chat_model=` or
ChatDevic's fields (`api_key`, `base_url`, ...), and both refuse a base URL
holding credentials before pydantic sees it (its errors would repeat them).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from langchain_core.language_models import BaseChatModel
from langchain_core.tools import BaseTool
from pydantic import ConfigDict

from langchain_devic import _wire
from langchain_devic.chat_models import ChatDevic

#: ChatDevic's own fields (and their aliases) a tool accepts directly, to build
#: its own ChatDevic; LangChain's common fields (name, tags, ...) are the tool's.
CHAT_MODEL_FIELDS = frozenset(
    alias
    for name, field in ChatDevic.model_fields.items()
    if name not in BaseChatModel.model_fields
    for alias in (name, field.alias)
    if alias
)


class DevicToolBase(BaseTool):
    """A tool that reaches Devic through a `chat_model` (a `ChatDevic`)."""

    model_config = ConfigDict(
        arbitrary_types_allowed=True, hide_input_in_errors=True, defer_build=True
    )

    if not TYPE_CHECKING:

        def __init__(self, **data: Any) -> None:
            # Checked before pydantic, whose validation errors would repeat it.
            _wire.refuse_credentials(
                data.get("base_url", os.environ.get("DEVIC_BASE_URL"))
            )
            super().__init__(**data)


def with_chat_model(
    data: dict[str, Any], default_assistant: str | None = None
) -> dict[str, Any]:
    """`data` with `chat_model` built from the ChatDevic fields in it.

    A given `chat_model` is kept, and ChatDevic fields beside it refused;
    `default_assistant` names the assistant when the fields name none.
    """
    if data.get("chat_model") is not None:
        stray = sorted(CHAT_MODEL_FIELDS & data.keys())
        if stray:
            msg = (
                f"Pass either chat_model=ChatDevic(...) or ChatDevic's fields "
                f"({', '.join(stray)}), not both."
            )
            raise ValueError(msg)
        return data
    fields = {k: v for k, v in data.items() if k in CHAT_MODEL_FIELDS}
    if default_assistant is not None and not fields.keys() & {"assistant_id", "model"}:
        fields["assistant_id"] = default_assistant
    rest = {k: v for k, v in data.items() if k not in CHAT_MODEL_FIELDS}
    return {**rest, "chat_model": ChatDevic(**fields)}
