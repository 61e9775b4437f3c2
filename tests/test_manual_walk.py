"""The manual, top to bottom, against a real ``recorderd`` process.

Every request type the manual defines is sent with the manual's example (verbatim, in the
manual's order) and with its documented error cases, once over the socket and once over the
WebAPI, and must get the documented result. Steps marked "setup" create what an example assumes
exists (the agent JDOE, a call on DESK1, ...). A few steps differ by transport: the media
functions (EXPORT, ...) answer 15 over the socket (docs/api-notes.md); EVENTS streams its events
after its RESULT on both, and the walk reads the RESULT. The walk's recorder has no mail server,
so EMAIL answers 31. No type in the manual answers 10 API_UNKNOWN_MESSAGE_TYPE.

Two places where the manual's text cannot be sent as printed: the ADDGROUP and
MODIFYGROUPPERMISSION examples hold a bare "&" (not well-formed XML; sent as "&amp;"), and the
RECORDSTOP example's request says <TYPE>CALLSTOP</TYPE> under a RECORDSTOP result (sent as
RECORDSTOP).
"""

from __future__ import annotations

import http.client
import re
import urllib.parse
from collections.abc import Mapping
from typing import Any

import pytest
from lxml import etree

from recorder.api.dispatcher import DEPRECATED, HANDLERS, PLANNED
from tests.helpers.api import result_code
from tests.helpers.recorders import RECORDERD_ONLY, Running
from tests.helpers.walk import CALLS, DEVICES, Step, req
from tests.helpers.walk_directory import DIRECTORY

# Every request type the manual names: its table of contents, the WebAPI-only functions and the
# event interface's request (the deprecated ones are in the dispatcher's DEPRECATED table).
MANUAL_TYPES = (
    "TEST", "CALLSTART", "CALLSTOP", "CALLUPDATE", "RECORDSTART", "RECORDSTOP", "DEVICELIST",
    "DEVICESTATUS", "DEVICERECORDINGSTATUS", "SYSTEMSTATUS", "CHANNELS", "STATIONS",
    "FETCHTERMINOLOGY", "CALLLIST", "CHATSTART", "CHATSTOP", "CHATUPDATE", "BLACKOUTSTART",
    "AGENTBLACKOUTSTART", "BLACKOUTSTOP", "AGENTBLACKOUTSTOP", "IMPORTUSER", "IMPORTAGENTPHONE",
    "IMPORTWORKSTATION", "ADDGROUP", "MODIFYGROUPPERMISSION", "MODIFYROLE",
    "MODIFYROLEGROUPPERMISSION", "MODIFYUSERROLE", "MODIFYROLEPERMISSION", "EMAIL",
    "COMBINEDEMAIL", "AGENTWINDOW", "EXPORT", "COMBINEEXPORT", "COMBINEDEXPORT", "MULTIEXPORT",
    "EVENTS",
)
# This release carries these out; every one must be walked with its example.
CARRIED_OUT = (
    "TEST", "CALLSTART", "CALLSTOP", "CALLUPDATE", "DEVICESTATUS", "SYSTEMSTATUS", "CHANNELS",
    "STATIONS", "FETCHTERMINOLOGY", "CALLLIST", "CHATSTART", "CHATSTOP", "CHATUPDATE",
    "IMPORTUSER", "IMPORTAGENTPHONE", "IMPORTWORKSTATION", "ADDGROUP", "MODIFYGROUPPERMISSION",
    "MODIFYROLE", "MODIFYROLEGROUPPERMISSION", "MODIFYUSERROLE", "MODIFYROLEPERMISSION",
    "AGENTWINDOW", "RECORDSTART", "RECORDSTOP", "DEVICELIST", "DEVICERECORDINGSTATUS",
    "BLACKOUTSTART", "BLACKOUTSTOP", "AGENTBLACKOUTSTART", "AGENTBLACKOUTSTOP", "EMAIL",
    "COMBINEDEMAIL", "EXPORT", "COMBINEDEXPORT", "COMBINEEXPORT", "MULTIEXPORT", "EVENTS",
)
# The whole walk, in the manual's order.
WALK = CALLS + DIRECTORY

_BARE_AMPERSAND = re.compile(r"&(?!(?:amp|lt|gt|quot|apos|#[0-9]+|#x[0-9a-fA-F]+);)")


def well_formed(xml: str) -> str:
    """The manual's text with a bare "&" escaped, as XML requires."""
    return _BARE_AMPERSAND.sub("&amp;", xml)


def send(running: Running, transport: str, xml: str) -> etree._Element:
    if transport == "socket":
        conn = running.connect()
        try:
            conn.send(xml.encode() + b"\r\n")
            return conn.read_result()
        finally:
            conn.close()
    root = etree.fromstring(xml.encode())
    params = [(child.tag.lower(), (child.text or "").strip()) for child in root]
    conn = http.client.HTTPConnection("127.0.0.1", running.web_port, timeout=10)
    try:
        conn.request("GET", "/webAPI.aspx?" + urllib.parse.urlencode(params))
        response = conn.getresponse()
        # The RESULT is the first line (an EVENTS answer goes on with the events after it).
        body = response.readline()
        assert response.status == 200, body
        return etree.fromstring(body)
    finally:
        conn.close()


def check(step: Step, result: etree._Element, captured: Mapping[str, str]) -> None:
    shown = f"{step.kind} {step.type}: {etree.tostring(result, encoding='unicode')}"
    assert result_code(result) == step.code, shown
    assert result.findtext("REQUESTTYPE") == step.type, shown
    wanted = {"RESULTMSG": step.message} if step.message is not None else {}
    for path, want in {**wanted, **step.body}.items():
        got = result.findtext(path)
        assert got is not None, f"{path} missing from {shown}"
        if isinstance(want, re.Pattern):
            assert want.fullmatch(got), f"{path}={got!r} in {shown}"
        else:
            assert got == want.format_map(captured), f"{path}={got!r} in {shown}"


@RECORDERD_ONLY
@pytest.mark.parametrize("transport", ["socket", "web"])
def test_the_manual_top_to_bottom(start_recorder: Any, transport: str) -> None:
    running = start_recorder(boards=[{"driver": "synthetic", "devices": DEVICES}])
    captured: dict[str, str] = {}
    for step in WALK:
        if step.transport not in ("", transport):
            continue
        result = send(running, transport, well_formed(step.request.format_map(captured)))
        check(step, result, captured)
        for name, path in step.capture.items():
            captured[name] = result.findtext(path) or ""
    # No request type the manual names, nor any it deprecates, is unknown to the recorder.
    for request_type in (*MANUAL_TYPES, *DEPRECATED):
        result = send(running, transport, req(request_type))
        assert result_code(result) != 10, request_type


def test_the_walk_covers_every_request_type() -> None:
    examples = {step.type for step in WALK if step.kind == "example"}
    assert set(MANUAL_TYPES) <= examples
    assert set(CARRIED_OUT) <= set(HANDLERS)
    assert set(MANUAL_TYPES) <= set(HANDLERS) | PLANNED
    errors = {step.type for step in WALK if step.kind == "error"}
    assert set(CARRIED_OUT) - {"TEST", "SYSTEMSTATUS", "CHANNELS", "STATIONS",
                               "FETCHTERMINOLOGY", "DEVICELIST"} <= errors  # no error case
