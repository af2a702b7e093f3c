r"""Server text made safe to print on a terminal.

A reply, a progress summary or an error message comes from the server (and,
through it, from whatever the assistant read). Written to a terminal as is, an
escape sequence in it could recolour or hide text, move the cursor to forge
output, set the window title, or write the clipboard (OSC 52). `printable`
removes every escape sequence and control character; line breaks and tabs stay.
`StreamPrintable` does the same for text that arrives in pieces, holding back
the start of a sequence until its end arrives, so a sequence split across two
pieces is removed whole.

What goes:

- CSI sequences (`ESC [` ... final byte, and the one-byte CSI U+009B);
- string sequences: OSC (`ESC ]`), DCS (`ESC P`), SOS (`ESC X`), PM (`ESC ^`)
  and APC (`ESC _`), and their one-byte forms, up to BEL or ST (`ESC \`,
  U+009C), or to the end of the text when unterminated;
- any other `ESC` sequence (intermediate bytes and a final byte), and a lone
  `ESC`;
- C0 controls except `\n` and `\t` (a carriage return could overwrite a
  line), DEL, C1 controls (U+0080-U+009F);
- bidirectional embeddings, overrides and isolates (U+202A-U+202E,
  U+2066-U+2069), which can make text read in another order than it runs.
"""

from __future__ import annotations

import re

__all__ = ["StreamPrintable", "printable"]

_SEQUENCE = re.compile(
    # A string sequence: its body runs to BEL or ST; an ESC that does not start
    # ST ends it too (terminals abort the string there).
    r"(?P<string>(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*"
    r"(?P<st>\x07|\x1b\\|\x9c)?)"
    r"|(?P<csi>(?:\x1b\[|\x9b)[\x30-\x3f]*[\x20-\x2f]*(?P<csi_end>[\x40-\x7e])?)"
    r"|(?P<esc>\x1b[\x20-\x2f]*(?P<esc_end>[\x30-\x7e])?)"
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")

#: The most a `StreamPrintable` holds back waiting for a sequence's end; an
#: unterminated sequence longer than this is dropped as it stands.
MAX_PENDING = 64 * 1024


def printable(text: str) -> str:
    r"""`text` without escape sequences or control characters; `\n`, `\t` stay.

    Pure: the same text always gives the same result. An unterminated sequence
    at the end is removed to the end.
    """
    return _CONTROL.sub("", _SEQUENCE.sub("", text))


def _unfinished(match: re.Match[str]) -> bool:
    """Whether a sequence that reaches the end of the text may still go on."""
    if match.group("string") is not None:
        return match.group("st") is None
    if match.group("csi") is not None:
        return match.group("csi_end") is None
    return match.group("esc_end") is None


class StreamPrintable:
    """`printable` for text that arrives in pieces (a streamed reply).

    `feed` returns what can be printed now; the start of an escape sequence
    whose end has not arrived is held back (up to `MAX_PENDING` characters).
    `flush` at the end returns the rest, without that unfinished sequence.
    """

    def __init__(self) -> None:
        self._pending = ""

    def feed(self, piece: str) -> str:
        """The printable part of everything fed so far that is complete."""
        text = self._pending + piece
        self._pending = ""
        last = None
        for last in _SEQUENCE.finditer(text):  # noqa: B007 - the last one matters
            pass
        if last is not None and last.end() == len(text) and _unfinished(last):
            held = text[last.start() :]
            text = text[: last.start()]
            if len(held) <= MAX_PENDING:
                self._pending = held
        return printable(text)

    def flush(self) -> str:
        """What is still held back, made printable (an unfinished sequence goes)."""
        text, self._pending = self._pending, ""
        return printable(text)
