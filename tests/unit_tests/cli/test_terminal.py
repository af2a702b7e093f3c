"""Server text made safe for a terminal: `printable` and `StreamPrintable`."""

from __future__ import annotations

import pytest

from langchain_devic._terminal import MAX_PENDING, StreamPrintable, printable

OSC52 = "\x1b]52;c;SGVsbG8=\x07"  # writes "Hello" to the clipboard


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain text", "plain text"),
        ("lines\nand\ttabs\n", "lines\nand\ttabs\n"),
        (f"before{OSC52}after", "beforeafter"),
        ("a\x1b]52;c;SGVsbG8=\x1b\\b", "ab"),  # OSC ended by ST
        ("a\x1b]0;title\x9cb", "ab"),  # OSC ended by the one-byte ST
        ("a\x9d8;;http://evil.example\x07link\x9d8;;\x07", "alink"),  # C1 OSC
        ("a\x1b]52;c;SGVsbG8=", "a"),  # unterminated: removed to the end
        ("\x1b[31mred\x1b[0m", "red"),
        ("\x1b[38;2;255;0;0mtrue colour\x1b[m", "true colour"),
        ("\x1b[2J\x1b[Hcleared", "cleared"),
        ("\x1b[?1049hscreen", "screen"),
        ("\x9b31mred", "red"),  # one-byte CSI
        ("\x1bPq#0;2;0;0;0\x1b\\sixel", "sixel"),  # DCS
        ("\x1b_apc\x07x", "x"),  # APC
        ("\x1bcreset", "reset"),  # RIS, a full reset
        ("\x1b(0box", "box"),  # charset designation
        ("\x1b7save\x1b8", "save"),
        ("lone \x1b", "lone "),
        ("over\rwrite", "overwrite"),
        ("bell\x07 back\x08space del\x7f", "bell backspace del"),
        ("nul\x00 vt\x0b ff\x0c", "nul vt ff"),
        ("c1 \x85 \x80 end", "c1   end"),
        ("apc \x9f to the end", "apc "),  # one-byte APC, unterminated
        ("\u202eevil\u202c \u2066iso\u2069", "evil iso"),
        ("é, 日本, emoji 🎉", "é, 日本, emoji 🎉"),
        ("\x1b]52;c;abc\x1b[31mred", "red"),  # an ESC aborts the OSC
    ],
)
def test_printable(text: str, expected: str) -> None:
    assert printable(text) == expected


def test_printable_leaves_no_escape_or_control_character() -> None:
    every = "".join(chr(c) for c in range(0xA0)) + "\u202a\u202e\u2066\u2069"
    out = printable(every + OSC52 + every)
    assert {c for c in out if ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F} <= {"\n", "\t"}
    assert "\u202e" not in out


def feed_all(pieces: list[str]) -> str:
    stream = StreamPrintable()
    return "".join(stream.feed(piece) for piece in pieces) + stream.flush()


@pytest.mark.parametrize("cut", range(1, len(OSC52)))
def test_a_sequence_split_across_pieces_is_removed_whole(cut: int) -> None:
    text = f"Hi {OSC52}there\n"
    pieces = [text[: 3 + cut], text[3 + cut :]]
    assert feed_all(pieces) == "Hi there\n"


@pytest.mark.parametrize("cut", range(1, 5))
def test_a_csi_split_across_pieces_is_removed_whole(cut: int) -> None:
    text = "\x1b[31mred"
    assert feed_all([text[:cut], text[cut:]]) == "red"


def test_stream_prints_complete_text_at_once() -> None:
    stream = StreamPrintable()
    assert stream.feed("Hello\x1b[1m, ") == "Hello, "
    assert stream.feed("wor\x1b]52;c;") == "wor"  # the OSC waits for its end
    assert stream.feed("SGVsbG8=\x07ld") == "ld"
    assert stream.flush() == ""


def test_stream_drops_an_unterminated_sequence_at_the_end() -> None:
    stream = StreamPrintable()
    assert stream.feed("text\x1b]52;c;SGVs") == "text"
    assert stream.flush() == ""


def test_stream_holds_back_a_bounded_amount() -> None:
    stream = StreamPrintable()
    assert stream.feed("\x1b]" + "x" * (MAX_PENDING + 10)) == ""
    assert stream._pending == ""  # too long to wait for: dropped
    assert stream.feed("\x07done") == "done"
