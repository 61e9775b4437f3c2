"""XML in and out of the API: hardened parsing of requests, escaped rendering of results.

Requests are parsed with entities, DTDs and network access all off, and any message carrying a
DOCTYPE or an entity declaration is refused before it reaches the parser: the recorder has no use
for either, and both are how XML bombs and external-entity reads get in.

Almost every request a CTI link sends is one flat line of plain ASCII
(``<REQUEST><TYPE>CALLSTART</TYPE>...</REQUEST>``). Those are read by a pattern that accepts
nothing else (no attributes, entities, white space between tags, line ends, non-ASCII or control
characters, comments, declarations, nor anything over FLAT_MAX_BYTES), and give exactly what lxml
gives for them; any other message goes to lxml. Results are written as strings with the
escaping lxml applies, and refuse what lxml refuses (ValueError).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from lxml import etree

from recorder import safexml
from recorder.api.protocol.xmlerrors import BARE_AMPERSAND, in_words, recover_ids
from recorder.api.request import RAW, ApiRequest, ApiResult, Node, RequestError, invalid
from recorder.resultcodes import ResultCode

_DTD_MARKUP = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
# Characters XML 1.0 cannot carry at all, not even escaped (exactly those lxml refuses).
NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_TYPE_TAGS = ("TYPE", "REQUESTTYPE")

# The flat one-line request. Names and text are kept far inside libxml2's own limits (names of
# 50,000 characters, text nodes of 10 MB), so anything this accepts lxml accepts too.
FLAT_MAX_BYTES = 64 * 1024
_NAME = rb"[A-Za-z_][A-Za-z0-9_.-]{0,255}+"
# Printable ASCII but "<", ">" and "&": text that means what it says, with nothing to unescape.
_PLAIN = rb"[\x20-\x25\x27-\x3b\x3d\x3f-\x7e]*+"
_FLAT_REQUEST = re.compile(rb"<(" + _NAME + rb")>((?:<(" + _NAME + rb")>" + _PLAIN + rb"</\3>)*+)"
                           rb"</\1>")
_FLAT_PARAM = re.compile(rb"<(" + _NAME + rb")>(" + _PLAIN + rb")</")

# (name, text; None for an element that holds elements) of each child of the root.
_Children = list[tuple[str, str | None]]


def _name(tag: object) -> str:
    return etree.QName(tag).localname.upper() if isinstance(tag, str | bytes) else ""


def parse_flat(data: bytes) -> tuple[str, _Children] | None:
    """(root name, children) of a flat one-line ASCII request; None for any other message."""
    if len(data) > FLAT_MAX_BYTES:
        return None
    whole = _FLAT_REQUEST.fullmatch(data)
    if whole is None:
        return None
    return whole.group(1).decode().upper(), [
        (name.decode().upper(), text.decode()) for name, text in
        _FLAT_PARAM.findall(whole.group(2))]


def parse_tree(data: bytes) -> tuple[str, _Children]:
    """(root name, children) of any message, by lxml; raises RequestError (16), with the TYPE
    and REQUESTID the broken text states when they can be read from it."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\0" in data[:2]:
        # lxml would read UTF-16 (or UTF-32) with a byte-order mark; the manual's API is 8-bit,
        # and a client that sends it needs to hear so, not a request half understood.
        wide = _wide_encoding(data)
        text = data.decode(wide, "replace").lstrip("\ufeff")
        raise _refused(text.encode(), f"the message is in {wide[:6].upper()}; the socket API "
                       "reads UTF-8 (or the 8-bit encoding an XML declaration names)")
    if _DTD_MARKUP.search(data):
        raise _refused(data, "DOCTYPE and ENTITY declarations are not accepted")
    if b"&" in data:
        data = BARE_AMPERSAND.sub(b"&amp;", data)
    try:
        root = etree.fromstring(data, safexml.parser())
    except etree.XMLSyntaxError as exc:
        raise _refused(data, in_words(exc.msg)) from None
    if root.getroottree().docinfo.internalDTD is not None:
        # One the byte check above could not see (a message in UTF-16, say).
        raise invalid("DOCTYPE and ENTITY declarations are not accepted")
    children: _Children = []
    for child in root:
        name = _name(child.tag)
        if name:
            children.append((name, None if len(child) else child.text or ""))
    return _name(root.tag), children


def _wide_encoding(data: bytes) -> str:
    """Which of UTF-32 and UTF-16 (and which end first) a message starting with a NUL or a
    byte-order mark is in."""
    if data.startswith((b"\xff\xfe\0\0", b"\0\0\xfe\xff")) or data[1:4] == b"\0\0\0" \
            or data[:3] == b"\0\0\0":
        return "utf-32-be" if data[:1] == b"\0" else "utf-32-le"
    return "utf-16-be" if data.startswith(b"\xfe\xff") or data[:1] == b"\0" else "utf-16-le"


def _refused(data: bytes, problem: str) -> RequestError:
    request_type, request_id = recover_ids(data)
    return RequestError(ResultCode.API_INVALID_MESSAGE_FORMAT, problem,
                        request_type=request_type, request_id=request_id)


def parse_request(data: bytes) -> ApiRequest:
    """Parse one socket message; raises RequestError (code 16) if it is not a valid request."""
    flat = parse_flat(data)
    return request_of(*(flat if flat is not None else parse_tree(data)))


def parse_flat_request(data: bytes) -> ApiRequest | None:
    """The request if ``data`` is a flat one-line request (cheap and bounded: fit for the event
    loop); None for any other message. Raises RequestError as ``parse_request`` does."""
    flat = parse_flat(data)
    return request_of(*flat) if flat is not None else None


def request_of(root_name: str, children: _Children) -> ApiRequest:
    """The request a parsed message makes; raises RequestError (16) for a malformed one."""
    params: dict[str, str] = {}
    problem: str | None = None
    for name, text in children:
        if text is None:
            problem = problem or f"{name} must hold text, not elements"
        elif name in params:
            problem = problem or f"{name} is given more than once"
        else:
            params[name] = text.strip()
    request_type = next((params.pop(t) for t in _TYPE_TAGS if t in params), None)
    for tag in _TYPE_TAGS:
        params.pop(tag, None)
    if request_type is None and root_name != "REQUEST":
        request_type = root_name  # "The root XML tag ... should be the message type"
    request = ApiRequest(type=(request_type or "").upper(),
                         request_id=params.pop("REQUESTID", None), params=params)
    if problem is not None:
        # Refused, but still answered with the TYPE and REQUESTID the client sent.
        raise RequestError(ResultCode.API_INVALID_MESSAGE_FORMAT, problem,
                           request_type=request.type, request_id=request.request_id)
    return request


# What lxml writes for these in text; a line feed as a reference too, so that the RESULT stays
# on one line for clients that read answers line by line.
_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;",
                          "\n": "&#10;"})
_NEEDS_ESCAPE = re.compile("[&<>\r\n]")
_valid_tags: set[str] = set()  # body tag names lxml has accepted (handlers use a few dozen)


def _text(value: str) -> str:
    return value.translate(_ESCAPES) if _NEEDS_ESCAPE.search(value) else value


def text_escaped(value: str) -> str:
    """``value`` escaped as the text of an element (&, <, >, CR and LF), as results write it."""
    return _text(value)


def _header_text(value: str) -> str:
    # These echo what a client sent, even when it was refused for holding characters XML
    # cannot carry; the answer must still be XML.
    return _text(NOT_XML.sub("\ufffd", value))


def render_result(request_type: str, request_id: str | None, result: ApiResult) -> bytes:
    """The RESULT element for ``result``, as UTF-8 on one line (no CR/LF inside).

    Raises ValueError for a body holding a character XML cannot carry or a tag name XML does
    not allow, as lxml would.
    """
    code = result.code
    head = (f"<RESULT><REQUESTTYPE>{_header_text(request_type)}</REQUESTTYPE>"
            f"<REQUESTID>{_header_text(request_id or '')}</REQUESTID>"
            f"<RESULTTYPE>{_header_text(code.label)}</RESULTTYPE>"
            f"<RESULTCODE>{int(code)}</RESULTCODE>"
            f"<RESULTMSG>{_header_text(result.message)}</RESULTMSG>")
    if not result.body:
        return (head + "</RESULT>").encode()
    parts = [head]
    _append(parts, result.body)
    parts.append("</RESULT>")
    return "".join(parts).encode()


def _append(parts: list[str], nodes: Sequence[Node]) -> None:
    for tag, value in nodes:
        if tag == RAW and isinstance(value, str):
            parts.append(value)  # written by the handler (api.request.RAW)
            continue
        if tag not in _valid_tags:
            etree.Element(tag)  # raises ValueError for a name XML does not allow
            _valid_tags.add(tag)
        if isinstance(value, str):
            if NOT_XML.search(value):
                raise ValueError(f"{tag}: the value holds a character XML cannot carry")
            parts.append(f"<{tag}>{_text(value)}</{tag}>")
        elif not value:
            parts.append(f"<{tag}/>")  # as lxml writes an element with no text or children
        else:
            parts.append(f"<{tag}>")
            _append(parts, value)
            parts.append(f"</{tag}>")
