"""What ChatDevic can do, said once for both standard suites (unit, integration).

A Devic assistant takes and returns text, runs its own tools server-side (so
`bind_tools` and structured output are not offered) and reports token usage.
`model` is the assistant id, so a per-call `model=` reaches another assistant.
"""

from __future__ import annotations


class DevicCapabilities:
    """Capability flags of `langchain_tests` chat-model suites, truthfully set."""

    @property
    def has_tool_calling(self) -> bool:
        return False

    @property
    def has_structured_output(self) -> bool:
        return False

    @property
    def supports_image_inputs(self) -> bool:
        return False

    @property
    def returns_usage_metadata(self) -> bool:
        return True

    @property
    def supports_model_override(self) -> bool:
        return True
