"""What integrators' clients put on the socket API's wire that the manual does not show: NUL
terminators, UTF-16, a request cut in two by a pause, broken XML, the manual's own raw "&".
One request gets exactly one answer, always, and in step."""

from __future__ import annotations

import logging
import socket
import time
from typing import Any

import pytest
from lxml import etree

from tests.helpers.api import ApiConnection, expect, request_xml, result_code

API = {"socket_port": 0, "web_port": 0}


def answers(conn: ApiConnection, count: int) -> list[tuple[str, str, int]]:
    """(REQUESTTYPE, REQUESTID, RESULTCODE) of the next ``count`` answers."""
    got = []
    for _ in range(count):
        result = conn.read_result()
        got.append((result.findtext("REQUESTTYPE") or "", result.findtext("REQUESTID") or "",
                    result_code(result)))
    return got


def nothing_more(conn: ApiConnection, seconds: float = 1.0) -> bytes:
    """What arrives within ``seconds`` (b"" when the server sends nothing more)."""
    conn.sock.settimeout(seconds)
    try:
        return conn.sock.recv(65536)
    except TimeoutError:
        return b""
    finally:
        conn.sock.settimeout(10)


def test_nul_terminated_requests_get_one_answer_each_in_step(start_recorder: Any) -> None:
    running = start_recorder(api=API)
    conn = running.connect()
    pretty = b"<REQUEST>\r\n  <TYPE>TEST</TYPE>\r\n  <REQUESTID>3</REQUESTID>\r\n</REQUEST>"
    conn.send(request_xml("TEST", 1) + b"\0" + request_xml("TEST", 2) + b"\0\r\n" + pretty
              + b"\r\n\0" + request_xml("TEST", 4) + b"\0")
    assert answers(conn, 4) == [("TEST", str(n), 20) for n in (1, 2, 3, 4)]
    assert nothing_more(conn) == b""
    assert result_code(conn.request("TEST", 5)) == 20  # still in step


def test_a_request_cut_by_a_pause_is_answered_once(start_recorder: Any) -> None:
    running = start_recorder(api={**API, "message_timeout_seconds": 0.3})
    conn = running.connect()
    first, second = request_xml("TEST", 7)[:30], request_xml("TEST", 7)[30:]
    conn.send(first)
    expect(conn.read_result(), 16)  # the quiet period: the part that came is answered
    conn.send(second + b"\r\n")  # the rest, late: it was answered already
    assert nothing_more(conn) == b""
    assert result_code(conn.request("TEST", 8)) == 20
    assert nothing_more(conn, 0.5) == b""


def test_utf16_lines_are_answered_16_once_each(start_recorder: Any) -> None:
    running = start_recorder(api=API)
    conn = running.connect()
    conn.send(request_xml("TEST", 1) + b"\r\n"
              + b"".join((request_xml("TEST", n).decode() + "\r\n").encode(encoding)
                         for n, encoding in ((2, "utf-16"), (3, "utf-16-le"), (4, "utf-16-be")))
              + request_xml("TEST", 5) + b"\r\n")
    got = [conn.read_result() for _ in range(5)]
    assert [(r.findtext("REQUESTID"), result_code(r)) for r in got] == [
        ("1", 20), ("2", 16), ("3", 16), ("4", 16), ("5", 20)]
    assert (got[1].findtext("RESULTMSG") or "").startswith(
        "the message is in UTF-16; the socket API reads UTF-8")
    assert nothing_more(conn) == b""  # not a cascade of 16s for its bytes


def test_broken_xml_is_answered_with_its_type_and_id_and_what_to_fix(
        start_recorder: Any) -> None:
    running = start_recorder(api=API)
    conn = running.connect()
    conn.send(b"<REQUEST><TYPE>CALLSTART</TYPE><REQUESTID>77</REQUESTID><DEVICEID>1001"
              b"</DEVICE></REQUEST>\r\n")
    result = conn.read_result()
    expect(result, 16, starts="malformed XML at line 1, column")
    assert result.findtext("REQUESTTYPE") == "CALLSTART"
    assert result.findtext("REQUESTID") == "77"
    assert "<DEVICEID> is closed by </DEVICE>" in (result.findtext("RESULTMSG") or "")


def test_the_manuals_addgroup_example_works_as_printed(start_recorder: Any) -> None:
    running = start_recorder(api=API)
    conn = running.connect()
    # Verbatim from the manual (ADDGROUP), raw "&" and all.
    conn.send(b"<REQUEST>\r\n  <TYPE>ADDGROUP</TYPE>\r\n  <REQUESTID>2</REQUESTID>\r\n"
              b"  <GROUPNAME>Sales & Marketing</GROUPNAME>\r\n</REQUEST>\r\n")
    added = conn.read_result()
    expect(added, 20, "group: Sales & Marketing has been added")  # the manual's answer
    assert added.findtext("GROUPNAME") == "Sales & Marketing"
    # The same name again is the same group: stored as printed, not mangled.
    again = conn.request("ADDGROUP", 3, GROUPNAME="Sales & Marketing")
    expect(again, 20, "group: Sales & Marketing already exists")
    assert again.findtext("GROUPID") == added.findtext("GROUPID")


def test_a_nul_between_bytes_of_one_message_does_not_desync(start_recorder: Any) -> None:
    """A C client that writes each request with its terminating NUL in a separate send."""
    running = start_recorder(api=API)
    with socket.create_connection(("127.0.0.1", running.socket_port), timeout=10) as raw:
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for n in range(1, 4):
            raw.sendall(request_xml("TEST", n))
            time.sleep(0.05)
            raw.sendall(b"\0")
        data = b""
        while data.count(b"\r\n") < 3:
            chunk = raw.recv(65536)
            assert chunk, data
            data += chunk
    ids = [etree.fromstring(line).findtext("REQUESTID") for line in data.split(b"\r\n")[:3]]
    assert ids == ["1", "2", "3"]


def test_an_unused_element_is_answered_ok_logged_once_and_counted(
        start_recorder: Any, caplog: pytest.LogCaptureFixture) -> None:
    running = start_recorder(api=API)
    caplog.set_level(logging.WARNING, logger="recorder.api.dispatcher")
    first, second = running.connect(), running.connect()
    for conn, request_id in ((first, 1), (first, 2), (second, 3)):
        # <USER01> for <USER1>, <DEVICE_ALIAS> for <DEVICEALIAS>: the manual's integrations
        # send extra elements, so still API_OK, but the data went nowhere.
        expect(conn.request("CALLSTART", request_id, DEVICEID="1001", USER01="vip",
                            DEVICE_ALIAS="7", ANI="6145551212"), 20)
        expect(conn.request("CALLSTOP", request_id, DEVICEID="1001"), 20)
    logged = [r.getMessage() for r in caplog.records if "does not use it" in r.getMessage()]
    assert len(logged) == 4, logged  # two names, once per connection each
    assert sum("sent <USER01> in CALLSTART, which does not use it" in m for m in logged) == 2
    assert sum("sent <DEVICE_ALIAS> in CALLSTART, which does" in m for m in logged) == 2
    assert all("ANI" not in m and "DEVICEID" not in m for m in logged)
    assert running.metric('recorder_api_ignored_parameters_total{type="CALLSTART"}') == 6
