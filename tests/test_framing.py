"""Splitting the socket byte stream into messages."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recorder.api.transport.framing import MessageFramer, MessageTooLarge

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
    ("a parameter named like the request is still a parameter",
     b"<DEVICELIST>\r\n  <DEVICELIST/>\r\n  <REQUESTID>1</REQUESTID>\r\n</DEVICELIST>\r\n",
     [b"<DEVICELIST>\r\n  <DEVICELIST/>\r\n  <REQUESTID>1</REQUESTID>\r\n</DEVICELIST>"]),
    ("an indented broken message is one message",
     b"<REQUEST>\r\n  <TYPE>TEST</TYPE></TYP>\r\n  <REQUESTID>1</REQUESTID>\r\n</REQUEST>\r\n"
     + ONE + b"\r\n",
     [b"<REQUEST>\r\n  <TYPE>TEST</TYPE></TYP>\r\n  <REQUESTID>1</REQUESTID>\r\n</REQUEST>",
      ONE]),
    ("element inside a parameter", b"<REQUEST><USER1><B>x</B></USER1></REQUEST>\n" + ONE + b"\n",
     [b"<REQUEST><USER1><B>x</B></USER1></REQUEST>", ONE]),
    ("a parameter left open, then a new line of tags",
     b"<REQUEST><TYPE>TEST\r\n" + ONE + b"\r\n", [b"<REQUEST><TYPE>TEST", ONE]),
    ("a tag missing its >", b"<REQUEST><TYPE>TEST</TYPE\r\n" + ONE + b"\r\n" + ONE + b"\r\n",
     [b"<REQUEST><TYPE>TEST</TYPE", ONE, ONE]),
    ("the root's end tag missing its >",
     b"<REQUEST><TYPE>TEST</TYPE></REQUEST\r\n" + ONE + b"\r\n",
     [b"<REQUEST><TYPE>TEST</TYPE></REQUEST", ONE]),
    ("byte-order mark before an indented request", b"\xef\xbb\xbf" + PRETTY + b"\r\n", [PRETTY]),
    ("a DOCTYPE missing its >", b"<!DOCTYPE x\r\n" + ONE + b"\r\n", [b"<!DOCTYPE x", ONE]),
    ("a lone < is text", b"<<< 3 <\r\n" + ONE + b"\r\n", [b"<<< 3 <", ONE]),
    # Flash's XMLSocket and many C clients end each message with a NUL.
    ("NUL-terminated", ONE + b"\0" + ONE + b"\0", [ONE, ONE]),
    ("NUL and CRLF", ONE + b"\0\r\n" + ONE + b"\0\r\n", [ONE, ONE]),
    ("CRLF and NUL", ONE + b"\r\n\0" + ONE + b"\r\n\0", [ONE, ONE]),
    ("pretty-printed, NUL-terminated", PRETTY + b"\0" + ONE + b"\0", [PRETTY, ONE]),
    ("a junk line ends at a NUL", b"hello\0" + ONE + b"\0", [b"hello", ONE]),
    ("a parameter left open, then a NUL and a request",
     b"<REQUEST><TYPE>TEST\0" + ONE + b"\0", [b"<REQUEST><TYPE>TEST", ONE]),
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
@pytest.mark.slow
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


LONG = 300_000


@pytest.mark.timeout(60)  # a pass/fail bound on blow-up, not a speed measurement
@pytest.mark.parametrize("chunk", [LONG * 2, 4096, 97])
@pytest.mark.parametrize("opening", [b"<" + b"A" * LONG, b'<REQUEST a="' + b"x" * LONG,
                                     b"<!DOCTYPE x " + b"y" * LONG, b"<!--" + b"z" * LONG,
                                     b"<" * 20_000, b"<R>" + b"<" * 20_000])
def test_a_huge_unfinished_tag_is_text_and_the_next_request_is_served(opening: bytes,
                                                                      chunk: int) -> None:
    framer = MessageFramer(1 << 20)
    stream = opening + b"\r\n" + ONE + b"\r\n"
    got: list[bytes] = []
    for i in range(0, len(stream), chunk):
        got += framer.feed(stream[i:i + chunk])
    got += [m for m in [framer.flush()] if m]
    assert got[-1] == ONE
    assert b"".join(got[:-1]).startswith(opening[:100])


def test_the_rest_of_a_flushed_message_is_dropped_not_answered_again() -> None:
    framer = MessageFramer(1 << 20)
    assert framer.feed(b"<REQUEST><TYPE>TEST</TYPE><REQUESTID>7</REQ") == []
    assert framer.flush() == b"<REQUEST><TYPE>TEST</TYPE><REQUESTID>7</REQ"
    assert not framer.pending  # answered: no timer runs for it any more
    assert framer.feed(b"UESTID></REQUEST>\r\n") == []  # its end, late: no second answer
    assert framer.flush() is None
    assert framer.feed(ONE + b"\r\n") == [ONE]


@pytest.mark.parametrize("after", [ONE + b"\r\n", b"\r\n" + ONE + b"\r\n", ONE])
def test_a_new_request_after_a_flushed_one_is_answered(after: bytes) -> None:
    framer = MessageFramer(1 << 20)
    assert framer.feed(b"<REQUEST><TYPE>TEST</TYPE>") == []
    assert framer.flush() == b"<REQUEST><TYPE>TEST</TYPE>"
    assert framer.feed(after) == [ONE]  # even on the same line: it starts a new request


def test_a_flushed_message_answered_once_even_when_flushed_again() -> None:
    framer = MessageFramer(1 << 20)
    framer.feed(b"<REQUEST><TYPE>TEST</TYPE>")
    assert framer.flush() is not None
    framer.feed(b"<USER1>x</USER1>")
    assert framer.flush() is None  # at the next quiet period, or the connection's end


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
@pytest.mark.parametrize("chunk", [1, 2, 3, 4096])
def test_a_utf16_line_is_one_message_not_a_cascade(encoding: str, chunk: int) -> None:
    framer = MessageFramer(1 << 20)
    line = (ONE.decode() + "\r\n").encode(encoding)
    stream = ONE + b"\r\n" + line * 3 + ONE + b"\0"
    got: list[bytes] = []
    for i in range(0, len(stream), chunk):
        got += framer.feed(stream[i:i + chunk])
    assert got[0] == ONE
    assert got[-1] == ONE
    utf16 = got[1:-1]
    assert len(utf16) == 3  # one message, so one answer, per line sent
    for message in utf16:  # whole characters, the line end left out
        assert message.decode("utf-16-be" if encoding == "utf-16-be" else "utf-16-le"
                              ).removeprefix("\ufeff") == ONE.decode()
