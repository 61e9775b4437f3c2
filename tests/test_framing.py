"""Splitting the socket byte stream into messages."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recorder.api.framing import MessageFramer, MessageTooLarge

ONE = b"<REQUEST><TYPE>TEST</TYPE><REQUESTID>1</REQUESTID></REQUEST>"
PRETTY = b"<REQUEST>\r\n  <TYPE>TEST</TYPE>\r\n  <REQUESTID>1</REQUESTID>\r\n</REQUEST>"

CASES: list[tuple[str, bytes, list[bytes]]] = [
    ("CRLF", ONE + b"\r\n", [ONE]),
    ("LF", ONE + b"\n", [ONE]),
    ("CR", ONE + b"\r", [ONE]),
    ("no terminator", ONE, [ONE]),
    ("pretty-printed, as in the manual", PRETTY + b"\r\n", [PRETTY]),
    ("LF-indented", PRETTY.replace(b"\r\n", b"\n") + b"\n", [PRETTY.replace(b"\r\n", b"\n")]),
    ("two on one line", ONE + ONE + b"\r\n", [ONE, ONE]),
    ("blank lines between", b"\r\n\r\n" + ONE + b"\r\n\r\n  \t\r\n" + ONE + b"\r\n", [ONE, ONE]),
    ("prolog and comment", b'<?xml version="1.0"?>\r\n<!-- hi -->\r\n' + ONE + b"\r\n",
     [b'<?xml version="1.0"?>\r\n<!-- hi -->\r\n' + ONE]),
    ("CDATA holding markup", b"<R><A><![CDATA[</R> <x>]]></A></R>\n",
     [b"<R><A><![CDATA[</R> <x>]]></A></R>"]),
    ("comment holding markup", b"<R><!-- </R> --></R>\n", [b"<R><!-- </R> --></R>"]),
    ("attribute holding >", b'<R a="x>y"><B/></R>\n', [b'<R a="x>y"><B/></R>']),
    ("self-closing root", b"<TEST/>\r\n", [b"<TEST/>"]),
    ("junk line", b"hello\r\n" + ONE + b"\r\n", [b"hello", ONE]),
    ("stray end tag", b"</R>\r\n" + ONE + b"\r\n", [b"</R>", ONE]),
    ("DOCTYPE with subset", b'<!DOCTYPE R [<!ENTITY a "x>">]>\n<R>&a;</R>\n',
     [b'<!DOCTYPE R [<!ENTITY a "x>">]>\n<R>&a;</R>']),
    ("UTF-8 text", "<R><U>Zoë → 東京</U></R>\n".encode(), ["<R><U>Zoë → 東京</U></R>".encode()]),
    ("unclosed child, then the next request",
     b"<REQUEST><TYPE>TEST</TYPE><BR></REQUEST>\r\n" + ONE + b"\r\n",
     [b"<REQUEST><TYPE>TEST</TYPE><BR></REQUEST>", ONE]),
    ("mismatched end tag mid-line waits for the line end",
     b"<R><A></B>junk<C>\n" + ONE + b"\n", [b"<R><A></B>junk<C>", ONE]),
    ("root never closed, next request on the next line",
     b"<REQUEST><TYPE>TEST</TYPE>\r\n" + PRETTY + b"\r\n",
     [b"<REQUEST><TYPE>TEST</TYPE>", PRETTY]),
    ("same-named child on the same line is just a child",
     b"<R><R>x</R></R>\n", [b"<R><R>x</R></R>"]),
]


@pytest.mark.parametrize(("stream", "expected"), [(s, e) for _, s, e in CASES],
                         ids=[name for name, _, _ in CASES])
def test_messages(stream: bytes, expected: list[bytes]) -> None:
    framer = MessageFramer(1 << 20)
    assert framer.feed(stream) == expected
    assert framer.flush() is None


@pytest.mark.parametrize(("stream", "expected"), [(s, e) for _, s, e in CASES],
                         ids=[name for name, _, _ in CASES])
def test_messages_fed_one_byte_at_a_time(stream: bytes, expected: list[bytes]) -> None:
    framer = MessageFramer(1 << 20)
    got: list[bytes] = []
    for i in range(len(stream)):
        got += framer.feed(stream[i:i + 1])
    assert got == expected


@settings(max_examples=300, deadline=None)
@given(picks=st.lists(st.sampled_from([s for _, s, _ in CASES]), min_size=1, max_size=6),
       cuts=st.lists(st.integers(0, 2000), max_size=10))
def test_any_split_of_the_stream_gives_the_same_messages(picks: list[bytes],
                                                         cuts: list[int]) -> None:
    stream = b"".join(picks)
    expected = [m for s in picks for m in dict((n, e) for _, n, e in CASES)[s]]
    framer = MessageFramer(1 << 20)
    got: list[bytes] = []
    bounds = sorted({0, len(stream), *(c % (len(stream) + 1) for c in cuts)})
    for a, b in itertools.pairwise(bounds):
        got += framer.feed(stream[a:b])
    assert got == expected


def test_unfinished_message_waits_and_can_be_flushed() -> None:
    framer = MessageFramer(1 << 20)
    assert framer.feed(b"<REQUEST><TYPE>TEST</TYPE>\r\n") == []
    assert framer.pending
    assert framer.flush() == b"<REQUEST><TYPE>TEST</TYPE>"
    assert not framer.pending
    assert framer.feed(ONE + b"\r\n") == [ONE]


def test_a_message_over_the_limit_raises_after_the_complete_ones() -> None:
    framer = MessageFramer(1024)
    with pytest.raises(MessageTooLarge) as err:
        framer.feed(ONE + b"\r\n<REQUEST><USER1>" + b"x" * 2000)
    assert err.value.complete == [ONE]
    assert framer.feed(ONE + b"\r\n") == [ONE]  # the framer is usable again


def test_the_limit_counts_the_message_not_the_connection() -> None:
    framer = MessageFramer(1024)
    for _ in range(50):
        assert framer.feed(ONE * 8 + b"\r\n") == [ONE] * 8
