"""Splits the socket API's byte stream into messages.

The manual says a message ends with CR/LF, but its own examples are indented XML spread over many
lines, and clients send them that way. So a well-formed message is complete when its root
element closes; CR, LF or CRLF after it, white space between messages and a UTF-8 byte-order mark
before one are skipped. Requests are flat (a root holding text-only parameters), which is what
lets a broken message end without swallowing the requests behind it:

- text that does not start with a tag (``hello``) ends at the line end;
- a message found broken (an end tag that does not match, an element inside a parameter) ends
  at its root's end tag, or just before a line that starts a new request (``<REQUEST>`` or the
  root's own name);
- a well-formed message left open ends just before a line that starts a new request, or a line
  that starts with a tag while a parameter is still open (which a flat request never does).

Each of these is answered with code 16 by the parser. A message that never completes is bounded
by ``max_bytes``, and the server answers a partial one after a quiet period (``flush``). Every
message gets exactly one answer: when the rest of a flushed message arrives after all, it is
read to its end as usual and dropped, not answered a second time; a new request (its root's or
``<REQUEST>`` start tag, wherever it comes) ends the dropped one.

A NUL byte ends a message as CR and LF do: Flash's XMLSocket and many C clients send
``...</REQUEST>\0``. A message in UTF-16 (a byte-order mark, or ``<`` next to a NUL) would be
a cascade of broken messages if read byte by byte: it is one message up to its first line
feed (whose NUL, in little-endian, is then skipped as a line end), which the parser answers 16
once.

The usual traffic, whole one-line flat requests (``<REQUEST><TYPE>...</TYPE>...</REQUEST>`` and
a line end), is split by one pattern when nothing is pending: a message of that shape ends at
its root's end tag under every rule above, so the result is the same, for less work.

Everything here is linear in the input: the patterns cannot backtrack, and a tag left incomplete
is only looked at again when a ``<`` or ``>`` arrives. Works on bytes: in UTF-8 the bytes of
``<``, ``>`` and quotes never occur inside other characters.
"""

from __future__ import annotations

import re

WHITESPACE = b" \t\r\n\0"
LINE_ENDS = b"\r\n\0"
BOM = b"\xef\xbb\xbf"
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_LT = ord("<")
# One tag: name, then anything but <, > and quotes, and quoted values. Possessive (*+), so a tag
# that never closes costs one pass, not one per starting point.
_ELEMENT = re.compile(
    rb"""<(/?)([A-Za-z_:][^\s/<>"']*+)[^<>"']*+(?:(?:"[^<"]*+"|'[^<']*+')[^<>"']*+)*+>""")
# The start of an element tag whose end has not arrived yet (perhaps inside a quoted value).
_PARTIAL_ELEMENT = re.compile(
    rb"""</?(?:[A-Za-z_:][^<>"']*+(?:(?:"[^<"]*+"|'[^<']*+')[^<>"']*+)*+(?:"[^<"]*+|'[^<']*+)?)?\Z""")
# <!DOCTYPE ...[ internal subset ]>, whole or so far; "<" only inside the subset.
_DECLARATION = re.compile(rb"<!(?:[^\[<>]++|\[[^\]]*+\])*+>")
_PARTIAL_DECLARATION = re.compile(rb"<!(?:[^\[<>]++|\[[^\]]*+\])*+(?:\[[^\]]*+)?\Z")
_DELIMITED = ((b"<!--", b"-->"), (b"<![CDATA[", b"]]>"), (b"<?", b"?>"))
_LINE_END = re.compile(rb"[\r\n\0]")
_ANGLE = re.compile(rb"[<>]")
# Longest single tag, comment or declaration; a "<" that opens a longer one is taken as text.
MAX_MARKUP = 16 * 1024
# An incomplete markup this short is simply looked at again; a longer one only when a < or >
# has arrived, as only those can complete it or show it is not markup.
RESCAN_FREELY = 256

# A whole flat request on one line: tags without attributes, text without markup or line ends.
_NAME = rb"[A-Za-z_][A-Za-z0-9_.-]*+"
_FLAT_MESSAGE = re.compile(rb"[ \t\r\n\0]*+(<(" + _NAME + rb")>"
                           rb"(?:<(" + _NAME + rb")>[^<>\r\n]*+</\3>)*+</\2>)")

OPEN, CLOSE, EMPTY, OTHER, LONE_LT = range(5)  # kinds of markup; LONE_LT: "<" that is text
NORMAL, BROKEN, TEXT, UTF16 = range(4)  # states of a message


class MessageTooLarge(Exception):
    """A message grew past the limit; ``complete`` holds the messages before it."""

    def __init__(self, complete: list[bytes], limit: int) -> None:
        super().__init__(f"message longer than {limit} bytes")
        self.complete = complete
        self.limit = limit


class MessageFramer:
    """Feed it bytes as they arrive; it returns each message once the whole of it is there."""

    def __init__(self, max_bytes: int, *, fast_path: bool = True) -> None:
        self.max_bytes = max_bytes
        self._fast_path = fast_path  # False: every byte through the general rules (tests)
        self._buf = bytearray()
        self._pos = 0  # next byte to scan
        self._reset()

    def _reset(self) -> None:
        self._start = -1  # first byte of the message being read, -1 between messages
        self._open: list[bytes] = []  # names of the open elements, root first
        self._root = b""
        self._state = NORMAL
        self._line_start = True  # nothing but white space since the last line end
        self._waited = -1  # buffer length when an incomplete markup was last looked at
        self._answered = False  # flushed already: its end is dropped, not answered again
        self._little_endian = True  # of a UTF-16 message (state UTF16)

    @property
    def pending(self) -> bool:
        """True while part of a message has arrived but not all of it, and it has not been
        answered yet (the rest of a flushed message is read and dropped)."""
        return self._start >= 0 and not self._answered

    def _emit(self, out: list[bytes], message: bytes) -> None:
        if not self._answered:
            out.append(message)
        self._reset()

    def feed(self, data: bytes) -> list[bytes]:
        out: list[bytes] = []
        if self._fast_path and self._start < 0 and self._buf == b"\0":
            # A NUL kept back from the last chunk (it could have begun UTF-16BE "<")
            data = b"\0" + data
            self._buf.clear()
            self._pos = 0
        if self._fast_path and not self._buf:
            data = self._split_flat(data, out)
        self._buf += data
        buf = self._buf
        pos = self._pos
        while pos < len(buf):
            if self._start < 0:
                pos, found = self._skip_between_messages(pos)
                if not found:
                    break
                utf16 = self._is_utf16(pos)
                if utf16 is None:
                    break  # too few bytes yet to tell
                self._start = pos
                if utf16:
                    self._state = UTF16
                    self._little_endian = not (buf[pos] == 0 or buf.startswith(UTF16_BOMS[1], pos))
            if self._state == UTF16:
                # Up to the first line feed, whatever its alignment: no request holds one,
                # and a byte 0x0A inside another character is far rarer than ASCII text.
                line_feed = buf.find(b"\n", pos)
                if line_feed < 0:
                    pos = len(buf)
                    break
                # In little-endian the line feed's NUL comes after it: part of this line end,
                # or it would look like the first byte of a big-endian "<".
                if self._little_endian and line_feed + 1 == len(buf):
                    pos = line_feed
                    break
                pos = line_feed + 1
                message = bytes(buf[self._start : line_feed])
                if self._little_endian:
                    if buf[pos] == 0:
                        pos += 1
                    message = message.removesuffix(b"\r\0")
                else:
                    message = message.removesuffix(b"\0").removesuffix(b"\0\r")
                self._emit(out, message)  # whole characters, for the parser to name
                continue
            if self._state == TEXT:
                line_end = _LINE_END.search(buf, pos)
                if line_end is None:
                    pos = len(buf)
                    break
                # Trailing blanks are no part of a line, whichever way it was cut.
                pos = line_end.end()
                self._emit(out, bytes(buf[self._start : line_end.start()]).rstrip(WHITESPACE))
            elif buf[pos] == _LT:
                step = self._markup(pos)
                if step is None:
                    break  # the markup is not complete yet
                end, kind, name = step
                if self._starts_next_message(kind, name):
                    self._emit(out, bytes(buf[self._start : pos]).rstrip(WHITESPACE))
                    continue  # the tag at `pos` begins the next message
                at_line_start = self._line_start
                self._line_start = False
                pos = end
                if self._ends_message(kind, name, at_line_start):
                    self._emit(out, bytes(buf[self._start : end]))
            elif not self._open and self._state == NORMAL:
                if buf[pos] in WHITESPACE:  # between a prolog or comment and the root
                    self._line_start = self._line_start or buf[pos] in LINE_ENDS
                    pos += 1
                else:
                    self._state = TEXT  # text outside any element: not XML at all
            else:
                nxt = buf.find(b"<", pos)
                text_end = len(buf) if nxt < 0 else nxt
                self._note_text(pos, text_end)
                pos = text_end
        self._pos = pos
        self._compact()
        if self._start >= 0 and len(self._buf) - self._start > self.max_bytes:
            self._buf.clear()
            self._pos = 0
            self._reset()
            raise MessageTooLarge(out, self.max_bytes)
        return out

    @staticmethod
    def _split_flat(data: bytes, out: list[bytes]) -> bytes:
        """Take the whole flat one-line requests at the start of ``data`` (nothing pending
        before it) into ``out``; returns the rest, for the general rules."""
        pos = 0
        while (found := _FLAT_MESSAGE.match(data, pos)) is not None:
            out.append(found.group(1))
            pos = found.end()
        return data[pos:] if pos else data

    def flush(self) -> bytes | None:
        """Give up waiting: the partial message to answer now, or None if there is none (or
        it was answered already). The framer goes on reading that message to its end, and
        drops it then: the answer given now is its only one."""
        if self._start < 0 or self._answered:
            return None
        partial = bytes(self._buf[self._start :]).strip(WHITESPACE)
        if not partial:
            self._buf.clear()
            self._pos = 0
            self._reset()
            return None
        self._answered = True
        return partial

    def _is_utf16(self, pos: int) -> bool | None:
        """Whether the message starting at ``pos`` is UTF-16 (a byte-order mark, "<" then a
        NUL, or a NUL, "<" and a NUL); None when too few bytes have come to tell."""
        buf = self._buf
        if buf.startswith(UTF16_BOMS[0], pos) or buf.startswith(UTF16_BOMS[1], pos):
            return True
        if buf[pos] == 0:
            return True  # _skip_between_messages stops at a NUL only before "<" and a NUL
        if buf[pos] in (_LT, UTF16_BOMS[0][0], UTF16_BOMS[1][0]) and pos + 1 == len(buf):
            return None
        return buf[pos] == _LT and buf[pos + 1] == 0

    def _skip_between_messages(self, pos: int) -> tuple[int, bool]:
        """Skip to the next message: (its first byte, True), or (where to resume, False)."""
        buf = self._buf
        while pos < len(buf):
            if buf[pos] == 0 and (pos + 1 == len(buf) or buf[pos + 1] == _LT):
                # A NUL that ends a message, or the first byte of UTF-16BE "<": the bytes
                # after it tell.
                if pos + 2 >= len(buf):
                    return pos, False
                if buf[pos + 2] == 0:
                    return pos, True
                pos += 1
            elif buf[pos] in WHITESPACE:
                pos += 1
            elif buf.startswith(BOM, pos):
                pos += len(BOM)  # what .NET's UTF-8 writers put before their first message
            elif BOM.startswith(bytes(buf[pos : pos + len(BOM)])):
                return pos, False  # perhaps a byte-order mark cut in two: wait for the rest
            else:
                return pos, True
        return pos, False

    def _note_text(self, start: int, end: int) -> None:
        """Follow whether the next tag begins a line, through the text before it."""
        text = self._buf[start:end]
        last_break = max(text.rfind(b"\n"), text.rfind(b"\r"), text.rfind(b"\0"))
        if last_break >= 0:
            self._line_start = not text[last_break + 1 :].strip()
        elif text.strip():
            self._line_start = False

    def _starts_next_message(self, kind: int, name: bytes) -> bool:
        """Whether a tag at the start of a line shows the message before it never ended."""
        if kind not in (OPEN, EMPTY) or not self._open:
            return False
        names_a_request = kind == OPEN and name.upper() in (self._root.upper(), b"REQUEST")
        if self._answered and names_a_request:
            return True  # what is left of an answered message never holds a new request
        if not self._line_start:
            return False
        if self._state == BROKEN:
            return names_a_request
        return names_a_request or len(self._open) >= 2  # a parameter never closed

    def _ends_message(self, kind: int, name: bytes, at_line_start: bool) -> bool:
        """Take a markup into the message's state; True when the message is complete."""
        depth = len(self._open)
        if self._state == BROKEN:
            return kind == CLOSE and name == self._root
        if kind == LONE_LT and depth == 0:
            self._state = TEXT  # text outside any element: not XML at all
            return False
        if kind == OPEN:
            if depth == 0:
                self._root = name
            if depth >= 2:
                self._state = BROKEN  # an element inside a parameter
            else:
                self._open.append(name)
            return False
        if kind == EMPTY:
            if depth >= 2:
                self._state = BROKEN
            return depth == 0  # <TEST/> is a whole message
        if kind == CLOSE:
            if depth == 0:
                return True  # a stray end tag: a message of its own, answered 16
            if name == self._open[-1]:
                self._open.pop()
                return not self._open
            if name == self._root:
                return True  # <REQUEST><BR></REQUEST>: broken, but plainly over
            self._state = BROKEN
        return False

    def _compact(self) -> None:
        keep = self._start if self._start >= 0 else self._pos
        if keep:
            del self._buf[:keep]
            self._pos -= keep
            if self._start >= 0:
                self._start -= keep
            if self._waited >= 0:
                self._waited -= keep

    def _markup(self, pos: int) -> tuple[int, int, bytes] | None:
        """(end, kind, element name) of the markup at ``pos``; None if it is not all here."""
        buf = self._buf
        length = len(buf) - pos
        if (length > RESCAN_FREELY and self._waited >= 0 and length <= MAX_MARKUP
                and not _ANGLE.search(buf, max(pos + 1, self._waited))):
            return None  # nothing has arrived that could change the answer
        self._waited = len(buf)
        step = self._read_markup(pos)
        if step is None and length > MAX_MARKUP:
            return pos + 1, LONE_LT, b""  # too long to be anything but text
        if step is not None:
            self._waited = -1
        return step

    def _read_markup(self, pos: int) -> tuple[int, int, bytes] | None:
        buf = self._buf
        for opening, closing in _DELIMITED:
            if buf.startswith(opening, pos):
                end = buf.find(closing, pos + len(opening))
                return None if end < 0 else (end + len(closing), OTHER, b"")
            if len(buf) - pos < len(opening) and opening.startswith(bytes(buf[pos:])):
                return None  # could still become a comment, CDATA or PI
        if buf.startswith(b"<!", pos):
            decl = _DECLARATION.match(buf, pos)
            if decl is not None:
                return decl.end(), OTHER, b""
            if _PARTIAL_DECLARATION.match(buf, pos):
                return None
            return pos + 1, LONE_LT, b""  # cannot be a declaration: text
        element = _ELEMENT.match(buf, pos)
        if element is not None:
            name = element.group(2)
            if element.group(1):
                return element.end(), CLOSE, name
            empty = buf[element.end() - 2] == ord("/")
            return element.end(), EMPTY if empty else OPEN, name
        if _PARTIAL_ELEMENT.match(buf, pos):
            return None  # not enough yet to tell
        # "<" that starts no markup ("< 3", "<1>", a tag cut off by another "<"): text, for
        # the parser to reject.
        return pos + 1, LONE_LT, b""
