"""What ChatDevic can do, said once for both standard suites (unit, integration).

A Devic assistant takes and returns text and reports token usage. It can call
the caller's own tools (client tools, in a platform run), so tool calling and
structured output (through tool calling) are offered; it decides itself whether
to call one, so there is no tool choice, and it has no JSON mode. `model` is the
assistant id, so a per-call `model=` reaches another assistant.
"""

from __future__ import annotations


class DevicCapabilities:
    """Capability flags of `langchain_tests` chat-model suites, truthfully set."""

    @property
    def has_tool_calling(self) -> bool:
        return True

    @property
    def has_tool_choice(self) -> bool:
        return False

    @property
    def has_structured_output(self) -> bool:
        return True

    @property
    def supports_json_mode(self) -> bool:
        return False

    @property
    def supports_image_inputs(self) -> bool:
        return False

    @property
    def supports_image_tool_message(self) -> bool:
        return False

    @property
    def supports_pdf_tool_message(self) -> bool:
        return False

    @property
    def returns_usage_metadata(self) -> bool:
        return True

    @property
    def supports_model_override(self) -> bool:
        return True
