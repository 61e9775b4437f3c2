"""Splits the socket API's byte stream into messages.

The manual says a message ends with CR/LF, but its own examples are indented XML spread over many
lines, and clients send them that way. So a message is complete when its root element closes;
the CR, LF or CRLF after it (and any white space between messages) is skipped.

A broken message must not swallow the requests behind it, so three things end a message early,
each answered with code 16 by the parser:

- text that does not start with a tag (``hello``) ends at the line end;
- an end tag that does not match the open element (``<A><B></A>``) ends it at the line end;
- the root's own start tag again on a later line (``<REQUEST>...`` left open, then
  ``<REQUEST>`` on the next line) ends it just before that tag, which starts the next message.

A message that never completes is bounded by ``max_bytes``, and the server answers a partial one
after a quiet period (``flush``). Works on bytes: in UTF-8 the bytes of ``<``, ``>`` and quotes
never occur inside other characters.
"""

from __future__ import annotations

import re

WHITESPACE = b" \t\r\n"
_LT = ord("<")
_ELEMENT = re.compile(
    rb"""<(/?)([A-Za-z_:][^\s/>"']*)[^>"']*(?:(?:"[^"]*"|'[^']*')[^>"']*)*>""")
# The start of an element tag whose end has not arrived yet (perhaps inside a quoted value).
_PARTIAL_ELEMENT = re.compile(
    rb"""</?(?:[A-Za-z_:](?:[^>"']|"[^"]*"|'[^']*')*(?:"[^"]*|'[^']*)?)?\Z""")
_DECLARATION = re.compile(rb"<!(?:[^\[>]|\[[^\]]*\])*>")  # <!DOCTYPE ...[ internal subset ]>
_DELIMITED = ((b"<!--", b"-->"), (b"<![CDATA[", b"]]>"), (b"<?", b"?>"))
_LINE_END = re.compile(rb"[\r\n]")

OPEN, CLOSE, EMPTY, OTHER = range(4)  # kinds of markup


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
        self._reset()

    def _reset(self) -> None:
        self._start = -1  # first byte of the message being read, -1 between messages
        self._open: list[bytes] = []  # names of the open elements, root first
        self._root = b""
        self._to_line_end = False  # the message is text or broken: it ends at a line end
        self._new_line = False  # a line end has passed inside the root element

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
            if self._to_line_end:
                line_end = _LINE_END.search(buf, pos)
                if line_end is None:
                    pos = len(buf)
                    break
                out.append(bytes(buf[self._start : line_end.start()]))
                pos = line_end.end()
                self._reset()
            elif not self._open and buf[pos] in WHITESPACE:
                pos += 1  # between a prolog, comments or a DOCTYPE and the root element
            elif buf[pos] == _LT:
                step = self._markup(pos)
                if step is None:
                    break  # the tag is not complete yet
                end, kind, name = step
                if (kind in (OPEN, EMPTY) and self._open and self._new_line
                        and name.upper() == self._root.upper()):
                    # The message before never closed: answer it; this tag starts the next one.
                    out.append(bytes(buf[self._start : pos]).rstrip())
                    self._reset()
                    continue
                pos = end
                if kind == OPEN:
                    self._root = self._root or name
                    self._open.append(name)
                elif kind == EMPTY and not self._open:
                    out.append(bytes(buf[self._start : end]))  # <TEST/>
                    self._reset()
                elif kind == CLOSE:
                    if not self._open:
                        out.append(bytes(buf[self._start : end]))  # a stray end tag
                        self._reset()
                    elif name != self._open[-1]:
                        self._to_line_end = True
                    else:
                        self._open.pop()
                        if not self._open:
                            out.append(bytes(buf[self._start : end]))
                            self._reset()
            elif self._open:
                nxt = buf.find(b"<", pos)
                text_end = len(buf) if nxt < 0 else nxt
                if _LINE_END.search(buf, pos, text_end):
                    self._new_line = True
                pos = text_end
            else:
                self._to_line_end = True  # text outside any element: not XML at all
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

    def _compact(self) -> None:
        keep = self._start if self._start >= 0 else self._pos
        if keep:
            del self._buf[:keep]
            self._pos -= keep
            if self._start >= 0:
                self._start -= keep

    def _markup(self, pos: int) -> tuple[int, int, bytes] | None:
        """(end, kind, element name) of the markup at ``pos``; None if it is not all here."""
        buf = self._buf
        for opening, closing in _DELIMITED:
            if buf.startswith(opening, pos):
                end = buf.find(closing, pos + len(opening))
                return None if end < 0 else (end + len(closing), OTHER, b"")
            if len(buf) - pos < len(opening) and opening.startswith(bytes(buf[pos:])):
                return None  # could still become a comment, CDATA or PI
        if buf.startswith(b"<!", pos):
            decl = _DECLARATION.match(buf, pos)
            return None if decl is None else (decl.end(), OTHER, b"")
        element = _ELEMENT.match(buf, pos)
        if element is not None:
            name = element.group(2)
            if element.group(1):
                return element.end(), CLOSE, name
            empty = buf[element.end() - 2] == ord("/")
            return element.end(), EMPTY if empty else OPEN, name
        if _PARTIAL_ELEMENT.match(buf, pos):
            return None  # not enough yet to tell
        # "<" that starts no markup ("< 3", "<1>"): ordinary text, for the parser to reject.
        return pos + 1, OTHER, b""
