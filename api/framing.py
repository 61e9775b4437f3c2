"""Splits the socket API's byte stream into messages.

The manual says a message ends with CR/LF, but its own examples are indented XML spread over many
lines, and clients send them that way. So a message is complete when its root element closes;
the CR, LF or CRLF after it (and any white space between messages) is skipped. Text that does
not start with a tag (``hello\\r\\n``) is a message ending at the line end, which the parser
then rejects with code 16. A message that never completes is bounded by ``max_bytes``, and the
server answers a partial one after a quiet period (``flush``).

Works on bytes: in UTF-8 the bytes of ``<``, ``>`` and quotes never occur inside other characters.
"""

from __future__ import annotations

import re

WHITESPACE = b" \t\r\n"
_LT = ord("<")
_ELEMENT = re.compile(rb"""<(/?)[A-Za-z_:][^>"']*(?:(?:"[^"]*"|'[^']*')[^>"']*)*>""")
# The start of an element tag whose end has not arrived yet (perhaps inside a quoted value).
_PARTIAL_ELEMENT = re.compile(
    rb"""</?(?:[A-Za-z_:](?:[^>"']|"[^"]*"|'[^']*')*(?:"[^"]*|'[^']*)?)?\Z""")
_DECLARATION = re.compile(rb"<!(?:[^\[>]|\[[^\]]*\])*>")  # <!DOCTYPE ...[ internal subset ]>
_DELIMITED = ((b"<!--", b"-->"), (b"<![CDATA[", b"]]>"), (b"<?", b"?>"))
_LINE_END = re.compile(rb"[\r\n]")


class MessageTooLarge(Exception):
    """A message grew past the limit; ``complete`` holds the messages before it."""

    def __init__(self, complete: list[bytes], limit: int) -> None:
        super().__init__(f"message longer than {limit} bytes")
        self.complete = complete
        self.limit = limit


class MessageFramer:
    """Feed it bytes as they arrive; it returns each message once the whole of it is there."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._buf = bytearray()
        self._pos = 0  # next byte to scan
        self._start = -1  # first byte of the message being read, -1 between messages
        self._depth = 0  # open elements
        self._rooted = False  # the message's root element has opened
        self._text = False  # the message is text outside any element, ending at a line end

    @property
    def pending(self) -> bool:
        """True while part of a message has arrived but not all of it."""
        return self._start >= 0

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        out: list[bytes] = []
        buf = self._buf
        pos = self._pos
        while pos < len(buf):
            if self._start < 0:
                while pos < len(buf) and buf[pos] in WHITESPACE:
                    pos += 1
                if pos == len(buf):
                    break
                self._start = pos
            if self._text:
                # Text outside any element: not XML, so the line end is all that can end it.
                line_end = _LINE_END.search(buf, pos)
                if line_end is None:
                    pos = len(buf)
                    break
                out.append(bytes(buf[self._start : line_end.start()]))
                pos = line_end.end()
                self._reset()
            elif self._depth == 0 and buf[pos] in WHITESPACE:
                pos += 1  # between a prolog, comments or a DOCTYPE and the root element
            elif buf[pos] == _LT:
                step = self._markup(pos)
                if step is None:
                    break  # the tag is not complete yet
                pos, delta, element = step
                self._depth += delta
                self._rooted = self._rooted or element
                if self._depth < 0 or (self._rooted and self._depth == 0):
                    out.append(bytes(buf[self._start : pos]))
                    self._reset()
            elif self._depth > 0:
                nxt = buf.find(b"<", pos)
                pos = len(buf) if nxt < 0 else nxt
            else:
                self._text = True
        self._pos = pos
        self._compact()
        if self._start >= 0 and len(self._buf) - self._start > self.max_bytes:
            self._buf.clear()
            self._pos = 0
            self._reset()
            raise MessageTooLarge(out, self.max_bytes)
        return out

    def flush(self) -> bytes | None:
        """Give up waiting: return the partial message (if any) and start afresh."""
        partial = bytes(self._buf[self._start :]).strip() if self._start >= 0 else b""
        self._buf.clear()
        self._pos = 0
        self._reset()
        return partial or None

    def _reset(self) -> None:
        self._start = -1
        self._depth = 0
        self._rooted = False
        self._text = False

    def _compact(self) -> None:
        keep = self._start if self._start >= 0 else self._pos
        if keep:
            del self._buf[:keep]
            self._pos -= keep
            if self._start >= 0:
                self._start -= keep

    def _markup(self, pos: int) -> tuple[int, int, bool] | None:
        """(end, depth change, is an element) of the markup at ``pos``; None if incomplete."""
        buf = self._buf
        for opening, closing in _DELIMITED:
            if buf.startswith(opening, pos):
                end = buf.find(closing, pos + len(opening))
                return None if end < 0 else (end + len(closing), 0, False)
            if opening.startswith(bytes(buf[pos : pos + len(opening)])) and \
                    len(buf) - pos < len(opening):
                return None  # could still become a comment/CDATA/PI
        if buf.startswith(b"<!", pos):
            decl = _DECLARATION.match(buf, pos)
            return None if decl is None else (decl.end(), 0, False)
        element = _ELEMENT.match(buf, pos)
        if element is not None:
            if element.group(1):
                return element.end(), -1, False
            empty = buf[element.end() - 2] == ord("/")
            return element.end(), 0 if empty else 1, True
        if _PARTIAL_ELEMENT.match(buf, pos):
            return None  # not enough yet to tell
        # "<" that starts no markup ("< 3", "<1>"): ordinary text, for the parser to reject.
        return pos + 1, 0, False
