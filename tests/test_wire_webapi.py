"""What integrators' clients send the WebAPI that the manual does not show: Latin-1
percent-escapes from older clients, and the socket API's XML POSTed as the body."""

from __future__ import annotations

from typing import Any

import pytest
from lxml import etree

from recorder.api.protocol.webquery import MAX_FIELDS, TooManyFields, decode_pairs
from tests.helpers.api import expect

API = {"socket_port": 0, "web_port": 0}


@pytest.mark.parametrize(("encoded", "pairs"), [
    ("type=TEST&requestid=1", [("type", "TEST"), ("requestid", "1")]),
    ("user2=M%FCller", [("user2", "Müller")]),  # Latin-1, as older clients send
    ("user2=M%C3%BCller", [("user2", "Müller")]),  # UTF-8
    ("user2=%E6%9D%B1%E4%BA%AC", [("user2", "東京")]),
    ("user2=%E6%9D%B1%FC", [("user2", "æ\x9d±ü")]),  # not UTF-8 as a whole: every byte Latin-1
    ("a=b+c%20d%2B", [("a", "b c d+")]),
    ("flag&&x=&=y", [("flag", ""), ("x", ""), ("", "y")]),
    ("n%FCm=1", [("nüm", "1")]),
    (b"user1=Gr%FC%DFe", [("user1", "Grüße")]),
])
def test_each_value_is_utf8_when_it_is_that_else_latin1(encoded: str | bytes,
                                                      pairs: list[tuple[str, str]]) -> None:
    assert decode_pairs(encoded) == pairs
    assert all("\ufffd" not in name + value for name, value in decode_pairs(encoded))


def test_a_query_with_too_many_fields_is_refused() -> None:
    decode_pairs("&".join(f"a{i}=1" for i in range(MAX_FIELDS)))
    with pytest.raises(TooManyFields):
        decode_pairs("&".join(f"a{i}=1" for i in range(MAX_FIELDS + 1)))


@pytest.mark.parametrize("escaped", ["Gr%FC%DFe%20M%FCller", "Gr%C3%BC%C3%9Fe%20M%C3%BCller"])
def test_a_latin1_or_utf8_name_is_stored_as_sent_not_as_replacement_characters(
        start_recorder: Any, escaped: str) -> None:
    running = start_recorder(api=API)
    status, answer = running.web(f"type=ADDGROUP&requestid=1&groupname={escaped}")
    assert status == 200
    added = expect(etree.fromstring(answer), 20, "group: Grüße Müller has been added")
    assert added.findtext("GROUPNAME") == "Grüße Müller"
    # The same through the socket API finds the same group: it was stored as written.
    again = running.request("ADDGROUP", 2, GROUPNAME="Grüße Müller")
    expect(again, 20, "group: Grüße Müller already exists")
    # And a form body is read by the same rule.
    status, answer = running.web("", method="POST",
                                 body=b"type=ADDGROUP&requestid=3&groupname=Gr%FC%DFe+M%FCller")
    expect(etree.fromstring(answer), 20, "group: Grüße Müller already exists")


@pytest.mark.parametrize("content_type", ["text/xml", "application/xml",
                                          "text/xml; charset=utf-8"])
def test_an_xml_body_is_the_request_the_socket_would_get(start_recorder: Any,
                                                         content_type: str) -> None:
    running = start_recorder(api=API)
    status, answer = running.web(
        "", method="POST", content_type=content_type,
        body=b"<REQUEST>\r\n  <TYPE>ADDGROUP</TYPE>\r\n  <REQUESTID>2</REQUESTID>\r\n"
             b"  <GROUPNAME>Sales & Marketing</GROUPNAME>\r\n</REQUEST>")
    assert status == 200
    result = expect(etree.fromstring(answer), 20, "group: Sales & Marketing has been added")
    assert (result.findtext("REQUESTTYPE"), result.findtext("REQUESTID")) == ("ADDGROUP", "2")
    status, answer = running.web("", method="POST", content_type=content_type,
                                 body=b"<TEST><REQUESTID>9</REQUESTID></TEST>")
    result = expect(etree.fromstring(answer), 20)
    assert (result.findtext("REQUESTTYPE"), result.findtext("REQUESTID")) == ("TEST", "9")


def test_a_broken_xml_body_is_answered_16_with_its_type_and_id(start_recorder: Any) -> None:
    running = start_recorder(api=API)
    status, answer = running.web("", method="POST", content_type="text/xml",
                                 body=b"<REQUEST><TYPE>CALLSTOP</TYPE><REQUESTID>31</REQUESTID>"
                                      b"<DEVICEID>1001</DEVICE></REQUEST>")
    assert status == 200
    result = expect(etree.fromstring(answer), 16, starts="malformed XML at line 1, column")
    assert (result.findtext("REQUESTTYPE"), result.findtext("REQUESTID")) == ("CALLSTOP", "31")
    assert "<DEVICEID> is closed by </DEVICE>" in (result.findtext("RESULTMSG") or "")


def test_an_xml_body_starts_a_recorded_call_the_query_then_stops(start_recorder: Any) -> None:
    running = start_recorder(api=API)
    body = (b"<REQUEST><TYPE>CALLSTART</TYPE><REQUESTID>4</REQUESTID><DEVICEID>1001</DEVICEID>"
            b"<ANI>6145551212</ANI></REQUEST>")
    status, answer = running.web("", method="POST", content_type="text/xml", body=body)
    assert status == 200
    started = expect(etree.fromstring(answer), 20)
    assert started.findtext("REQUESTID") == "4"
    assert "not recorded" not in (started.findtext("RESULTMSG") or "")
    running.wait_recorded("1001", 0.5)
    status, answer = running.web("type=CALLSTOP&requestid=5&deviceid=1001")
    assert status == 200
    expect(etree.fromstring(answer), 20)


def test_a_long_xml_body_is_read_off_the_event_loop_and_answered(start_recorder: Any) -> None:
    running = start_recorder(api=API)
    padding = b"<!--" + b"x" * 200_000 + b"-->"  # past what is parsed on the loop
    status, answer = running.web("", method="POST", content_type="text/xml",
                                 body=b"<REQUEST>" + padding + b"<TYPE>TEST</TYPE>"
                                      b"<REQUESTID>12</REQUESTID></REQUEST>")
    assert status == 200
    result = expect(etree.fromstring(answer), 20)
    assert result.findtext("REQUESTID") == "12"
