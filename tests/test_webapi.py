"""The WebAPI over real HTTP: the manual's URLs, the same dispatcher and results as the socket."""

from __future__ import annotations

import urllib.parse

import pytest
from lxml import etree

from tests.helpers.api import request_xml, result_code
from tests.helpers.recorders import IN_PROCESS_AND_RECORDERD, Running, stored_rows


@pytest.mark.parametrize("path", ["/webAPI.aspx", "/webAPI.php", "/Webapi.aspx", "/WEBAPI.PHP",
                                  "/webapi.aspx"])
def test_both_pages_in_any_case(shared_running: Running, path: str) -> None:
    status, body = shared_running.web("type=test&requestid=1", path=path)
    assert status == 200
    assert result_code(etree.fromstring(body)) == 20


@IN_PROCESS_AND_RECORDERD
def test_same_result_bytes_as_the_socket(running: Running) -> None:
    conn = running.connect()
    conn.send(request_xml("CALLSTART", 5, deviceid="1002", user1="a&b") + b"\r\n")
    conn.read_line()
    conn.send(request_xml("CALLSTOP", 6, deviceid="1002") + b"\r\n")
    conn.read_line()
    conn.send(request_xml("CALLLIST", 7, deviceid="1002") + b"\r\n")
    over_socket = conn.read_line()
    status, over_web = running.web("type=calllist&requestid=7&deviceid=1002")
    assert status == 200
    assert over_web == over_socket


def test_the_manuals_callupdate_url(running: Running) -> None:
    assert result_code(running.web_result(type="callstart", requestid=1, deviceid="1001")) == 20
    status, body = running.web(
        "type=callupdate&requestid=18213567&deviceid=1001&user9=SpecialCall&user10=10121968"
        "&keepdays=3650")
    result = etree.fromstring(body)
    assert (status, result_code(result), result.findtext("REQUESTID")) == (200, 20, "18213567")
    assert result.findtext("REQUESTTYPE") == "CALLUPDATE"
    running.web_result(type="callstop", requestid=2, deviceid="1001")
    found = running.web_result(type="calllist", requestid=3, deviceid="1001").find("SEARCHRESULT")
    assert found is not None
    assert (found.findtext("USER9"), found.findtext("USER10")) == ("SpecialCall", "10121968")


def test_post_with_query_string_and_with_form_body(running: Running) -> None:
    status, body = running.web("type=test&requestid=3", method="POST", body=b"")
    assert (status, result_code(etree.fromstring(body))) == (200, 20)
    form = urllib.parse.urlencode({"type": "callstart", "requestid": 4, "deviceid": "1003",
                                   "user1": "Zoë & <co>"}).encode()
    status, body = running.web("", method="POST", body=form)
    assert (status, result_code(etree.fromstring(body))) == (200, 20)
    device = running.web_result(type="devicestatus", requestid=5, deviceid="1003")
    assert device.findtext("DEVICES/DEVICE/USER1") == "Zoë & <co>"


def test_repeated_parameter_is_one_comma_joined_value(running: Running) -> None:
    status, body = running.web("type=callstart&requestid=1&deviceid=1234&deviceid=5555")
    assert (status, result_code(etree.fromstring(body))) == (200, 20)
    device = running.web_result(type="devicestatus", requestid=2, deviceid="1234,5555")
    assert device.findtext("DEVICES/DEVICE/DEVICEID") == "1234,5555"


def test_same_parameter_in_two_cases_is_refused(shared_running: Running) -> None:
    before = stored_rows(shared_running)
    status, body = shared_running.web("type=callstart&requestid=8&deviceid=1234&DEVICEID=5555")
    result = etree.fromstring(body)
    assert (status, result_code(result)) == (200, 16)
    assert result.findtext("RESULTMSG") == "parameters must be unique but duplicates were found"
    assert (result.findtext("REQUESTTYPE"), result.findtext("REQUESTID")) == ("CALLSTART", "8")
    assert stored_rows(shared_running) == before


def test_bad_requests_get_the_same_codes_as_on_the_socket(shared_running: Running) -> None:
    before = stored_rows(shared_running)
    for query, code in (("type=test", 14), ("type=test&requestid=x", 14),
                        ("type=bogus&requestid=1", 10), ("requestid=1", 16),
                        ("type=importstation&requestid=1", 49),
                        ("type=callstart&requestid=1&user1=%01", 16),
                        ("type=te%01st&requestid=1%0B", 16),
                        ("type=callstart&requestid=1&devicealias=nobody", 8)):
        status, body = shared_running.web(query)
        assert (status, result_code(etree.fromstring(body))) == (200, code), query
    assert stored_rows(shared_running) == before


@IN_PROCESS_AND_RECORDERD
def test_other_paths_and_methods(running: Running) -> None:
    status, _ = running.web("type=test&requestid=1", path="/index.html")
    assert status == 404
    status, _ = running.web("type=test&requestid=1", method="PUT", body=b"")
    assert status == 405
