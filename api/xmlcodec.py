"""XML in and out of the API: hardened parsing of requests, escaped rendering of results.

Requests are parsed with entities, DTDs and network access all off, and any message carrying a
DOCTYPE or an entity declaration is refused before it reaches the parser: the recorder has no use
for either, and both are how XML bombs and external-entity reads get in.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence

from lxml import etree

from recorder.api.request import ApiRequest, ApiResult, Node, RequestError, invalid
from recorder.resultcodes import ResultCode

_DTD_MARKUP = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
# Characters XML 1.0 cannot carry at all, not even escaped.
NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_TYPE_TAGS = ("TYPE", "REQUESTTYPE")
_local = threading.local()  # lxml parsers must not be shared between threads


def _parser() -> etree.XMLParser:
    parser: etree.XMLParser | None = getattr(_local, "parser", None)
    if parser is None:
        parser = etree.XMLParser(
            resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
            huge_tree=False, remove_comments=True, remove_pis=True, collect_ids=False,
        )
        _local.parser = parser
    return parser


def _name(tag: object) -> str:
    return etree.QName(tag).localname.upper() if isinstance(tag, str | bytes) else ""


def parse_request(data: bytes) -> ApiRequest:
    """Parse one socket message; raises RequestError (code 16) if it is not a valid request."""
    if _DTD_MARKUP.search(data):
        raise invalid("DOCTYPE and ENTITY declarations are not accepted")
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        raise invalid(f"malformed XML: {exc.msg}") from None
    params: dict[str, str] = {}
    problem: str | None = None
    for child in root:
        name = _name(child.tag)
        if not name:
            continue
        if len(child):
            problem = problem or f"{name} must hold text, not elements"
        elif name in params:
            problem = problem or f"{name} is given more than once"
        else:
            params[name] = (child.text or "").strip()
    request_type = next((params.pop(t) for t in _TYPE_TAGS if t in params), None)
    for tag in _TYPE_TAGS:
        params.pop(tag, None)
    root_name = _name(root.tag)
    if request_type is None and root_name != "REQUEST":
        request_type = root_name  # "The root XML tag ... should be the message type"
    request = ApiRequest(type=(request_type or "").upper(),
                         request_id=params.pop("REQUESTID", None), params=params)
    if problem is not None:
        # Refused, but still answered with the TYPE and REQUESTID the client sent.
        raise RequestError(ResultCode.API_INVALID_MESSAGE_FORMAT, problem,
                           request_type=request.type, request_id=request.request_id)
    return request


def render_result(request_type: str, request_id: str | None, result: ApiResult) -> bytes:
    """The RESULT element for ``result``, as UTF-8 on one line (no CR/LF inside)."""
    root = etree.Element("RESULT")
    for tag, text in (
        ("REQUESTTYPE", request_type),
        ("REQUESTID", request_id or ""),
        ("RESULTTYPE", result.code.label),
        ("RESULTCODE", str(int(result.code))),
        ("RESULTMSG", result.message),
    ):
        # These echo what a client sent, even when it was refused for holding characters XML
        # cannot carry; the answer must still be XML.
        etree.SubElement(root, tag).text = NOT_XML.sub("\ufffd", text)
    _append(root, result.body)
    # lxml writes a line feed inside a value as a raw LF; as a character reference it keeps
    # the RESULT on one line for clients that read answers line by line. (Unindented output
    # has no line feeds of its own, and CR is already written as &#13;.)
    return etree.tostring(root, encoding="utf-8", xml_declaration=False).replace(b"\n", b"&#10;")


def _append(parent: etree._Element, nodes: Sequence[Node]) -> None:
    for tag, value in nodes:
        element = etree.SubElement(parent, tag)
        if isinstance(value, str):
            element.text = value
        else:
            _append(element, value)
