"""What is wrong with a broken request, in words an integrator can act on, and what can still
be read from it.

libxml2's messages name the parser's view ("xmlParseEntityRef: no name"); an integrator
needs the fix ("write &amp; for a literal &"). And a 16 whose REQUESTID is empty cannot be
matched to the request it answers, though the broken text usually holds the id plainly: it is
recovered here when it can be read without guessing.
"""

from __future__ import annotations

import re

_POSITION = re.compile(r",? line (\d+), column (\d+)\s*$")
# (libxml2's message, what to say; groups of the first are named in the second)
_WORDS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), words) for pattern, words in (
        (r"^Opening and ending tag mismatch: (\S+) line \d+ and (\S+)",
         "<{0}> is closed by </{1}>; every element must end with its own end tag"),
        (r"^Premature end of data in tag (\S+)",
         "the message ends before <{0}> is closed (its </{0}> is missing)"),
        (r"^Document is empty", "the message holds no XML element"),
        (r"^Start tag expected, '<' not found",
         "the message is not XML: it must start with an element such as <REQUEST>"),
        (r"^Extra content at the end of the document",
         "something follows the end tag of the root element; send one request per message"),
        (r"^Entity '([^']*)' not defined",
         "&{0}; is not an XML entity (write &amp; for a literal &)"),
        (r"^xmlParseEntityRef: no name",
         "an & that starts no entity (write &amp; for a literal &)"),
        (r"^StartTag: invalid element name",
         "a < that starts no element (write &lt; for a literal <)"),
        (r"^AttValue: \" or ' expected", "an attribute value is not in quotes"),
        (r"^Couldn't find end of Start Tag (\S+)", "the start tag <{0} has no >"),
        (r"^Input is not proper UTF-8",
         "the text is not UTF-8 (name another encoding in an XML declaration, e.g. "
         "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>)"),
    ))

# A bare "&" that starts no entity or character reference: the manual's own ADDGROUP and
# MODIFYGROUPPERMISSION examples have one ("Sales & Marketing"), and integrators copy them.
BARE_AMPERSAND = re.compile(rb"&(?!#[0-9]+;|#x[0-9A-Fa-f]+;|[A-Za-z_:][A-Za-z0-9_.:-]*;)")

# The request's TYPE (or REQUESTTYPE) and REQUESTID as the text holds them: an element with
# plain text and nothing else inside, anywhere in the message.
_TYPE = re.compile(rb"<(TYPE|REQUESTTYPE)>\s*([A-Za-z_][A-Za-z0-9_]{0,63})\s*</\1>",
                   re.IGNORECASE)
_REQUEST_ID = re.compile(rb"<REQUESTID>([^<>&]{0,256})</REQUESTID>", re.IGNORECASE)
_ROOT = re.compile(rb"\A(?:\xef\xbb\xbf)?\s*(?:<\?[^>]*\?>\s*)?"
                   rb"<([A-Za-z_][A-Za-z0-9_]{0,63})[\s/>]")


def in_words(message: str) -> str:
    """libxml2's ``message`` as what is wrong and where, e.g. "malformed XML at line 1,
    column 11: <X> is closed by </REQUEST>; ..."; an unknown message is kept as it is."""
    position = _POSITION.search(message)
    core = message[:position.start()] if position else message
    where = f" at line {position.group(1)}, column {position.group(2)}" if position else ""
    for pattern, words in _WORDS:
        found = pattern.match(core)
        if found:
            return f"malformed XML{where}: {words.format(*found.groups())}"
    return f"malformed XML{where}: {core}"


def recover_ids(data: bytes) -> tuple[str, str | None]:
    """(TYPE, REQUESTID) as a broken message states them; "" and None where it does not."""
    found = _TYPE.search(data)
    request_type = found.group(2).decode().upper() if found else ""
    if not request_type:
        root = _ROOT.match(data)
        if root and root.group(1).upper() != b"REQUEST":
            request_type = root.group(1).decode().upper()  # the root names the type
    found_id = _REQUEST_ID.search(data)
    request_id = found_id.group(1).decode("utf-8", "replace").strip() if found_id else None
    return request_type, request_id
