"""LangChain messages as the text and files of one Devic turn.

Devic's `message` is plain text: this module reads a message's text (refusing
blocks Devic cannot take), turns file and image blocks into Devic's `files`
entries, and renders several messages as one turn (a labelled transcript of
earlier turns before the final user turn). Pure functions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

#: Content blocks that carry a file: sent in the send's `files` by URL.
_FILE_BLOCK_TYPES = frozenset({"file", "image", "image_url"})
_TEXT_BLOCK_TYPES = frozenset({"text", "input_text", "output_text"})
#: Blocks an AIMessage may carry that are represented elsewhere (tool_calls) or
#: are the other model's private reasoning; they are not content to forward.
_AI_SKIPPED_BLOCK_TYPES = frozenset(
    {"tool_use", "tool_call", "tool_call_chunk", "reasoning", "thinking"}
)
TRANSCRIPT_OPEN = "<conversation_history>"
TRANSCRIPT_CLOSE = "</conversation_history>"


# ---------------------------------------------------------------- messages → text


def message_text(message: BaseMessage) -> str:
    """The text of a message; non-text content blocks raise a clear `ValueError`.

    Devic's `message` field is text: text blocks are joined. A human message's
    file and image blocks with a URL travel in the send's `files` (see
    `message_files`); any other block is refused rather than silently dropped.
    """
    content = message.content
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
            continue
        block_type = block.get("type")
        if block_type in _TEXT_BLOCK_TYPES:
            parts.append(str(block.get("text", "")))
        elif isinstance(message, AIMessage) and block_type in _AI_SKIPPED_BLOCK_TYPES:
            continue
        elif isinstance(message, HumanMessage) and block_type in _FILE_BLOCK_TYPES:
            file_entry(block)  # checked here; sent in `files`
            continue
        else:
            msg = (
                f"ChatDevic sends text only, but a {type(message).__name__} holds a "
                f"{block_type!r} content block. Devic's message field is plain text: "
                "remove the block, or describe it in text (e.g. an image's URL)."
            )
            raise ValueError(msg)
    return "".join(parts)


def file_entry(block: Mapping[str, Any]) -> dict[str, Any]:
    """A file or image content block as Devic's `files` entry.

    `{"name", "donwloadUrl", "fileType"}` (Devic's spelling): the name from the
    block's `filename` (or `extras.filename`), else the URL path's last segment;
    the type from `mime_type`, else the file name's extension, else left out.

    Raises:
        ValueError: the block holds inline data (`base64`, `data`, a `data:`
            URL) or a provider's `file_id`: Devic takes files by URL.
    """
    kind = block.get("type")
    if kind == "image_url":
        inner = block.get("image_url")
        url = inner.get("url") if isinstance(inner, Mapping) else inner
    else:
        url = block.get("url")
    inline = any(block.get(key) for key in ("base64", "data", "file_id")) or (
        block.get("source_type") in {"base64", "id"}
    )
    if inline or not isinstance(url, str) or not url or url.startswith("data:"):
        what = "holds inline data or a file id" if inline or url else "has no URL"
        msg = (
            f"Devic takes files by URL: this {kind!r} content block {what}. "
            "ChatDevic sends text, and files as links Devic downloads: put the "
            f"file where Devic can fetch it and pass {{'type': {kind!r}, 'url': ...}}."
        )
        raise ValueError(msg)
    extras = block.get("extras")
    filename = block.get("filename") or (
        extras.get("filename") if isinstance(extras, Mapping) else None
    )
    last = unquote(urlsplit(url).path.rstrip("/").rpartition("/")[2])
    name = str(filename) if filename else last or "file"
    entry: dict[str, Any] = {"name": name, "donwloadUrl": url}
    mime = block.get("mime_type")
    extension = name.rpartition(".")[2].lower() if "." in name else None
    if isinstance(mime, str) and mime:
        entry["fileType"] = mime
    elif extension:
        entry["fileType"] = extension
    return entry


def message_files(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    """Devic's `files` entries of the human messages' file blocks, in order."""
    files: list[dict[str, Any]] = []
    for message in messages:
        if isinstance(message, HumanMessage) and not isinstance(message.content, str):
            files.extend(
                file_entry(block)
                for block in message.content
                if isinstance(block, Mapping) and block.get("type") in _FILE_BLOCK_TYPES
            )
    return files


def _label(message: BaseMessage, assistant_id: str) -> str:
    if isinstance(message, HumanMessage):
        return f"User ({message.name})" if message.name else "User"
    if isinstance(message, AIMessage):
        origin = message.response_metadata.get("assistant_id")
        if message.name:
            return f"Assistant ({message.name})"
        if origin and origin != assistant_id:
            return f"Assistant ({origin})"
        return "Assistant"
    if isinstance(message, ToolMessage):
        return f"Tool result ({message.name or message.tool_call_id})"
    if isinstance(message, SystemMessage):
        return "System"
    role = getattr(message, "role", None) or message.type
    return str(role).capitalize()


def transcript_line(message: BaseMessage, assistant_id: str) -> str:
    text = message_text(message)
    if isinstance(message, AIMessage) and message.tool_calls:
        calls = "; ".join(f"{c['name']}({c['args']})" for c in message.tool_calls)
        text = (
            f"{text}\n[called tools: {calls}]" if text else f"[called tools: {calls}]"
        )
    return f"{_label(message, assistant_id)}: {text}"


def _trailing_human(messages: Sequence[BaseMessage]) -> list[BaseMessage]:
    start = len(messages)
    while start > 0 and isinstance(messages[start - 1], HumanMessage):
        start -= 1
    return list(messages[start:])


def render_turns(messages: Sequence[BaseMessage], assistant_id: str) -> str:
    """One Devic `message` from several LangChain messages (no system messages).

    One human message is sent as its exact text; several human messages are
    joined by a blank line; anything else among them (another assistant's reply,
    a tool result) makes the earlier turns a delimited, role-labelled transcript
    placed before the final user turn.
    """
    if all(isinstance(m, HumanMessage) for m in messages):
        return "\n\n".join(message_text(m) for m in messages)
    final = _trailing_human(messages)
    earlier = messages[: len(messages) - len(final)]
    lines = "\n".join(transcript_line(m, assistant_id) for m in earlier)
    transcript = f"{TRANSCRIPT_OPEN}\n{lines}\n{TRANSCRIPT_CLOSE}"
    if not final:
        return transcript
    return transcript + "\n\n" + "\n\n".join(message_text(m) for m in final)


def final_user_turn(messages: Sequence[BaseMessage]) -> list[BaseMessage]:
    """The trailing human messages (or the last message if it is not human)."""
    return _trailing_human(messages) or list(messages[-1:])
