"""Splitting the socket byte stream into messages."""

from __future__ import annotations

import itertools
import tracemalloc

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


# A byte-order mark written out before big-endian UTF-16 (Python's "utf-16" codec writes the
# machine's order, little-endian here): with it, as without.
def _utf16_be_with_bom(text: str) -> bytes:
    return b"\xfe\xff" + text.encode("utf-16-be")  # U+FEFF, big-endian


@pytest.mark.parametrize("chunk", [1, 2, 4096])
def test_a_big_endian_utf16_line_with_its_byte_order_mark_is_one_message(chunk: int) -> None:
    framer = MessageFramer(1 << 20)
    stream = ONE + b"\r\n" + _utf16_be_with_bom(ONE.decode() + "\r\n") + ONE + b"\r\n"
    got: list[bytes] = []
    for i in range(0, len(stream), chunk):
        got += framer.feed(stream[i:i + chunk])
    assert len(got) == 3
    assert got[0] == got[2] == ONE
    assert got[1].decode("utf-16-be").removeprefix("\ufeff") == ONE.decode()


# docs/api-notes.md: "A tag, comment or declaration longer than 16 KiB is taken as text."
KIB16 = 16 * 1024


@pytest.mark.parametrize("opening", [b"<A", b'<REQUEST a="', b"<!DOCTYPE x", b"<!--"])
def test_markup_of_16_kib_is_waited_for_and_longer_is_text_ended_by_its_line(
        opening: bytes) -> None:
    # Counted from its "<" to the last byte received, the line end included.
    for size, answered in [(KIB16, False), (KIB16 + 1, True)]:
        line = opening + b"y" * (size - len(opening) - 2) + b"\r\n"
        assert len(line) == size
        framer = MessageFramer(1 << 20)
        # A tag this long can still end with its ">" (nothing answered yet); one longer is
        # text, a line answered 16 at its line end.
        assert framer.feed(line) == ([line.rstrip()] if answered else []), size


@pytest.mark.parametrize("chunk", [1, 4096])
def test_a_lone_lt_inside_a_request_leaves_the_end_tag_behind_it_whole(chunk: int) -> None:
    # "<" that starts no markup, right before the root's end tag: the message ends there, at
    # once, not at the next request.
    stream = b"<R>a<b</R>\r\n<R><!</R>\r\n<R><</R>\r\n"
    framer = MessageFramer(1 << 20)
    got: list[bytes] = []
    for i in range(0, len(stream), chunk):
        got += framer.feed(stream[i:i + chunk])
    assert got == [b"<R>a<b</R>", b"<R><!</R>", b"<R><</R>"]


def test_an_empty_parameter_leaves_the_request_well_formed() -> None:
    # <FLAG/> is a whole parameter: a parameter left open after it still ends the message at
    # the next line that starts with a tag, as in a request without it.
    framer = MessageFramer(1 << 20)
    stream = b"<REQUEST><TYPE>TEST</TYPE><FLAG/><USER1>abc\r\n<USER2>x</USER2>\r\n"
    assert framer.feed(stream) == [b"<REQUEST><TYPE>TEST</TYPE><FLAG/><USER1>abc",
                                   b"<USER2>x</USER2>"]


@pytest.mark.parametrize("before", [b"", b"\n", ONE + b"\n", ONE + b"\r\n"])
def test_a_utf16_line_is_one_message_wherever_it_starts_in_the_chunk(before: bytes) -> None:
    # At an odd or even offset of what arrived in one read, after a message or not.
    line = (ONE.decode() + "\r\n").encode("utf-16-le")
    framer = MessageFramer(1 << 20)
    got = framer.feed(before + line + ONE + b"\r\n")
    assert got[-1] == ONE
    assert len(got) == 2 + (ONE in before)
    assert got[-2].decode("utf-16-le") == ONE.decode()
    # The same, the read ending between the line feed and its NUL.
    got = framer.feed(before + line[:-1])
    got += framer.feed(line[-1:] + ONE + b"\r\n")
    assert got[-1] == ONE
    assert len(got) == 2 + (ONE in before)
    assert got[-2].decode("utf-16-le") == ONE.decode()


@pytest.mark.parametrize("broken", [
    b"<REQUEST><TYPE>TEST</TYPE></TYP><REQUESTID>1</REQUESTID></REQUEST>",
    b"<REQUEST><TYPE>TEST</TYPE><BR></REQUEST>",
    b"<R><A></B></R>",
    # A parameter named like the request, empty, inside a broken one: not its end.
    b"<DEVICELIST><TYPE>x</TYP><DEVICELIST/><REQUESTID>1</REQUESTID></DEVICELIST>",
])
def test_a_broken_message_is_answered_at_its_roots_end_tag_not_at_the_next_request(
        broken: bytes) -> None:
    framer = MessageFramer(1 << 20)
    assert framer.feed(broken + b"\r\n") == [broken]
    assert not framer.pending


def test_a_broken_message_goes_on_over_lines_that_start_with_a_parameter() -> None:
    # Broken (</X> closes nothing open) while a parameter is open: only its root's end tag or
    # a new request ends it, not a line starting with another parameter.
    message = (b"<REQUEST>\r\n  <USER1>a</X>\r\n  <REQUESTID>1</REQUESTID>\r\n  <FLAG/>\r\n"
               b"</REQUEST>")
    framer = MessageFramer(1 << 20)
    assert framer.feed(message + b"\r\n" + ONE + b"\r\n") == [message, ONE]
    # Broken by an element inside a parameter, even one closed again.
    message = (b"<REQUEST>\r\n  <USER1><B>x</B>\r\n  <USER2>y</USER2></USER1>\r\n"
               b"</REQUEST>")
    assert framer.feed(message + b"\r\n" + ONE + b"\r\n") == [message, ONE]


@pytest.mark.parametrize("cut", [1, 3, 9, 10, 12])
def test_a_long_request_cut_inside_its_last_tag_is_answered_when_the_tag_ends(cut: int) -> None:
    # A parameter of 20 kB (well under the message limit, over the 16 KiB of one tag) arrives
    # in two reads, cut inside the root's end tag: the message ends when it is whole.
    message = (b"<REQUEST><TYPE>TEST</TYPE><USER1>" + b"x" * 20_000
               + b"</USER1><REQUESTID>1</REQUESTID></REQUEST>")
    framer = MessageFramer(1 << 20)
    assert framer.feed(message[:-cut]) == []
    assert framer.feed(message[-cut:] + b"\r\n") == [message]


@pytest.mark.parametrize("value", [b"a", b"ab", b"abc", b"abcd"])
@pytest.mark.parametrize("line_end", [b"\n", b"\r\n", b"\0"])
def test_a_parameter_left_open_ends_at_a_line_of_tags_whatever_its_text(
        value: bytes, line_end: bytes) -> None:
    framer = MessageFramer(1 << 20)
    stream = b"<REQUEST><USER1>" + value + line_end + b"<USER2>x</USER2>" + line_end
    assert framer.feed(stream) == [b"<REQUEST><USER1>" + value, b"<USER2>x</USER2>"]


def test_nul_padding_between_messages_is_skipped() -> None:
    # A C client writing fixed-size buffers pads each message with NULs.
    framer = MessageFramer(1 << 20)
    assert framer.feed(ONE + b"\0" * 7 + ONE + b"\0" * 8 + ONE + b"\0\r\0\n\0") == [ONE] * 3
    assert framer.feed(ONE + b"\0") == [ONE]


@pytest.mark.parametrize("pad", [b"", b" "])  # at an even or odd offset of the read
def test_text_lines_after_a_long_request_in_the_same_read_end_at_their_own_line_ends(
        pad: bytes) -> None:
    # The junk lines come after an indented request of 20 kB, all in one read: each is one
    # message of its own, the request after them too.
    long_request = (b"<REQUEST>\r\n  <TYPE>TEST</TYPE>\r\n  <USER1>" + b"x" * 20_000
                    + b"</USER1>\r\n</REQUEST>")
    long_tag = b"<A" + b"y" * 17_000  # longer than a tag may be: text
    lines = [b"<!<x", long_tag, b"<!<z"]
    framer = MessageFramer(1 << 20)
    stream = (long_request + b"\r\n" + b"\r\n".join(pad + line for line in lines) + b"\r\n"
              + ONE + b"\r\n")
    assert framer.feed(stream) == [long_request, *lines, ONE]
    # The same, the read ending inside the long tag.
    assert framer.feed(long_request + b"\r\n" + pad + long_tag) == [long_request]
    assert framer.feed(b"\r\n" + ONE + b"\r\n") == [long_tag, ONE]


def test_a_tag_after_text_on_a_new_line_does_not_start_that_line() -> None:
    # "d<USER2>": the line starts with text, so <USER2> is an element inside the open USER1
    # (broken, answered 16 as one message), not a new message.
    message = b"<REQUEST><USER1>abc\nd<USER2>x</USER2></REQUEST>"
    framer = MessageFramer(1 << 20)
    assert framer.feed(message + b"\n") == [message]
    # Nor does a blank on the line before it.
    message = b"<REQUEST><USER1> <USER2>x</USER2></REQUEST>"
    assert framer.feed(message + b"\n") == [message]


def test_a_long_line_after_a_lone_lt_is_text_answered_at_its_line_end() -> None:
    # Over 256 bytes with no < or > after the first: no markup can be read in it.
    for line in [b"< " + b"z" * 300, b"<1" + b"z" * 300, b"<<" + b"z" * 300]:
        framer = MessageFramer(1 << 20)
        assert framer.feed(line + b"\r\n") == [line]


def test_a_message_begun_right_after_a_nul_is_pending_and_can_be_flushed() -> None:
    framer = MessageFramer(1 << 20)
    assert framer.feed(ONE + b"\0<R") == [ONE]
    assert framer.pending  # the server's quiet-period timer runs for it
    assert framer.flush() == b"<R"


@pytest.mark.parametrize("stream", [b"<!--> <R>x</R> -->\n<R>y</R>", b"<?> <R>x</R> ?>\n<R>y</R>",
                                    b"<R><!--></R>--></R>", b"<R><?></R>?></R>"])
def test_a_comment_or_processing_instruction_is_not_closed_by_its_own_opening(
        stream: bytes) -> None:
    # "<!-->" opens a comment that "-->" ends later (XML 1.0, 2.5): whatever it holds, a
    # root included, is part of it; the same for "<?>" and "?>".
    framer = MessageFramer(1 << 20)
    assert framer.feed(stream + b"\n") == [stream]


def test_a_connection_holds_no_more_than_the_message_being_read() -> None:
    # 20 MB of indented requests (the general rules, not the one-line fast path) over one
    # connection: what has been handed over is not kept.
    message = PRETTY.replace(b"<TYPE>", b"<USER1>" + b"x" * 200_000 + b"</USER1>\r\n  <TYPE>")
    framer = MessageFramer(1 << 20)
    tracemalloc.start()
    try:
        for _ in range(100):
            assert framer.feed(message + b"\r\n") == [message]
        held, _peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert held < 2 * len(message)
