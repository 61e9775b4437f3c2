"""The XML socket API over real sockets, against a recorder running in this process."""

from __future__ import annotations

import logging
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from recorder.api.dispatcher import DEPRECATED, PLANNED
from recorder.app import Recorder
from recorder.config.loader import config_from_dict
from tests.helpers.api import ApiConnection, request_xml, result_code
from tests.helpers.audio import sox_info
from tests.helpers.recorders import IN_PROCESS_AND_RECORDERD, Running, base_config, stored_rows
from tests.helpers.waiting import wait_for

PRETTY_TEST = b"""<REQUEST>
  <TYPE>TEST</TYPE>
  <REQUESTID>1</REQUESTID>
</REQUEST>\r\n"""


@IN_PROCESS_AND_RECORDERD
def test_test_answers_like_the_manual(running: Running) -> None:
    conn = running.connect()
    conn.send(PRETTY_TEST)
    result = conn.read_result()
    assert [(e.tag, e.text) for e in result] == [
        ("REQUESTTYPE", "TEST"), ("REQUESTID", "1"), ("RESULTTYPE", "API_OK"),
        ("RESULTCODE", "20"), ("RESULTMSG", "API_OK")]


@pytest.mark.parametrize(("request_id", "code"), [
    (None, 14), ("", 14), ("abc", 14), ("-1", 14), ("1.5", 14), ("2147483648", 14),
    ("99999999999999999999", 14), ("0", 20), ("2147483647", 20), (" 42 ", 20),
])
def test_requestid_must_be_an_integer_from_0_to_2147483647(shared_running: Running,
                                                           request_id: str | None,
                                                           code: int) -> None:
    result = shared_running.request("TEST", request_id)
    assert result_code(result) == code
    if code == 14:
        assert result.findtext("RESULTTYPE") == "API_REQUESTID_INVALID"
        assert result.findtext("REQUESTTYPE") == "TEST"


def test_unknown_missing_and_deprecated_types(shared_running: Running) -> None:
    conn = shared_running.connect()
    result = conn.request("NOSUCHTHING")
    assert (result_code(result), result.findtext("RESULTTYPE")) == (10, "API_UNKNOWN_MESSAGE_TYPE")
    conn.send(b"<REQUEST><REQUESTID>1</REQUESTID></REQUEST>\r\n")
    assert result_code(conn.read_result()) == 16
    for name, (replacement, version) in DEPRECATED.items():
        result = conn.request(name)
        assert result_code(result) == 49, name
        assert result.findtext("RESULTTYPE") == "API_COMMAND_NOT_SUPPORTED"
        message = result.findtext("RESULTMSG") or ""
        assert version in message
        assert (replacement or "no replacement") in message
    for name in sorted(PLANNED):
        result = conn.request(name)
        assert result_code(result) == 49, name
        assert "not available in this release" in (result.findtext("RESULTMSG") or "")


def test_bad_messages_get_16_and_the_connection_keeps_working(start_recorder: Any) -> None:
    # A message that never ends is answered after the quiet period: a short one, not the
    # default 5 s.
    running = start_recorder(api={"socket_port": 0, "web_port": 0,
                                  "message_timeout_seconds": 0.3})
    conn = running.connect()
    for bad in (b"hello\r\n", b"<REQUEST><TYPE>TEST</TYPE></OOPS>\r\n",
                b'<!DOCTYPE R [<!ENTITY a "b">]><REQUEST><TYPE>&a;</TYPE></REQUEST>\r\n',
                b"\xff\xfe\xfd\r\n", b"<REQUEST><TYPE>TEST</TYPE><TYPE>X</TYPE></REQUEST>\r\n"):
        conn.send(bad)
        result = conn.read_result()
        assert (result_code(result), result.findtext("RESULTTYPE")) == (
            16, "API_INVALID_MESSAGE_FORMAT"), bad
        assert result_code(conn.request("TEST", 7)) == 20


@IN_PROCESS_AND_RECORDERD
def test_many_requests_in_one_write_are_answered_in_order(running: Running) -> None:
    conn = running.connect()
    conn.send(b"".join(request_xml("TEST", n) + b"\r\n" for n in range(1, 51)))
    ids = [conn.read_result().findtext("REQUESTID") for _ in range(50)]
    assert ids == [str(n) for n in range(1, 51)]


def test_every_spelling_of_the_request_type(shared_running: Running) -> None:
    conn = shared_running.connect()
    for message in (b"<REQUEST><REQUESTTYPE>TEST</REQUESTTYPE><REQUESTID>2</REQUESTID></REQUEST>",
                    b"<TEST><REQUESTID>3</REQUESTID></TEST>",
                    b"<request><type>test</type><requestid>4</requestid></request>",
                    b"<REQUEST><REQUESTTYPE> TEST </REQUESTTYPE><REQUESTID>5</REQUESTID>"
                    b"</REQUEST>"):
        conn.send(message + b"\n")
        result = conn.read_result()
        assert (result_code(result), result.findtext("REQUESTTYPE")) == (20, "TEST")


@IN_PROCESS_AND_RECORDERD
def test_a_client_may_drop_after_one_request_or_half_close(running: Running) -> None:
    for _ in range(3):
        sock = socket.create_connection(("127.0.0.1", running.socket_port), timeout=5)
        sock.sendall(request_xml("TEST", 9))  # no line end at all, then half-close
        sock.shutdown(socket.SHUT_WR)
        answer = sock.recv(65536)
        sock.close()
        assert result_code(etree.fromstring(answer.split(b"\r\n")[0])) == 20
    sock = socket.create_connection(("127.0.0.1", running.socket_port), timeout=5)
    sock.sendall(request_xml("CALLSTART", 1, deviceid="1003") + b"\r\n")
    sock.close()  # gone before its answer
    # Carried out all the same, however long a loaded machine takes to get to it.
    wait_for(lambda: running.request("DEVICESTATUS", deviceid="1003").findtext(
        "DEVICES/DEVICE/RECORDING/ISRECORDING") == "Y", what="1003 recording")


@pytest.mark.slow
@IN_PROCESS_AND_RECORDERD
def test_call_start_stop_list_over_the_socket(running: Running) -> None:
    tricky = 'a & b <c> "d" Zoë'
    conn = running.connect()
    result = conn.request("CALLSTART", 1, deviceid="1001", devicealias="DESK1", group="12",
                          gate="80", ani="6145551212", dnis="8889225526", user1="Gold Level",
                          user4=tricky, calldirection="i", priority=50)
    assert (result_code(result), result.findtext("RESULTMSG")) == (
        20, "CALLSTART sent to all of the following cores: 1")
    running.wait_recorded("1001", 1.0)  # the call's own audio, not the wall clock's second
    result = conn.request("CALLSTOP", 2, devicealias="DESK1")
    assert (result_code(result), result.findtext("RESULTMSG")) == (
        20, "CALLSTOP sent to all of the following cores: 1")
    result = conn.request("CALLLIST", 3, deviceid="1001")
    assert result_code(result) == 20
    (found,) = result.findall("SEARCHRESULT")
    fields = {e.tag: e.text or "" for e in found}
    assert fields["CALLNUMBER"] == "1"
    assert (fields["DEVICEID"], fields["DEVICEALIAS"], fields["GROUP"], fields["GATE"]) == (
        "1001", "DESK1", "12", "80")
    assert (fields["ANI"], fields["DNIS"], fields["CALLDIRECTION"]) == (
        "6145551212", "8889225526", "I")
    assert (fields["USER1"], fields["USER4"]) == ("Gold Level", tricky)
    assert fields["DURATION"] in ("1", "2")
    assert abs(int(fields["RECORDINGTIME"]) - time.time()) < 30
    info = sox_info(fields["FILENAME"])
    assert (info["-r"], info["-c"], info["-b"]) == ("8000", "1", "16")
    assert 0.95 < float(info["-D"]) < 2.5
    assert Path(fields["FILENAME"]).is_relative_to(running.data_dir / "recordings")


def test_device_lookups_that_find_nothing_are_device_invalid(shared_running: Running) -> None:
    before = stored_rows(shared_running)
    for params in ({"devicealias": "NOPE"}, {"sys_user": "nobody"}, {"crm_user": "x"},
                   {"stationname": "PC9"}, {}, {"deviceid": ""}):
        result = shared_running.request("CALLSTART", 1, **params)
        assert (result_code(result), result.findtext("RESULTTYPE")) == (8, "API_DEVICE_INVALID")
    result = shared_running.request("CALLSTART", 1, devicealias="NOPE")
    assert result.findtext("RESULTMSG") == "Could not find a device matching given parameters"
    assert stored_rows(shared_running) == before


def test_callstop_without_a_call_is_device_not_in_call(shared_running: Running) -> None:
    result = shared_running.request("CALLSTOP", 2, deviceid="1002")
    assert (result_code(result), result.findtext("RESULTTYPE")) == (7, "API_DEVICE_NOT_IN_CALL")


@pytest.mark.parametrize(("params", "field"), [
    ({"user1": "x" * 21}, "USER1"), ({"user4": "x" * 256}, "USER4"),
    ({"user9": "x" * 51}, "USER9"), ({"devicealias": "x" * 16}, "DEVICEALIAS"),
    ({"group": "x" * 21}, "GROUP"), ({"ani": "1" * 21}, "ANI"), ({"calldirection": "X"},
                                                                 "CALLDIRECTION"),
    ({"priority": "101"}, "PRIORITY"), ({"priority": "high"}, "PRIORITY"),
    ({"maxrecordtime": "-5"}, "MAXRECORDTIME"), ({"ctiinitiated": "maybe"}, "CTIINITIATED"),
    ({"callid": "x" * 17}, "CALLID"), ({"sys_user": "x" * 31}, "SYS_USER"),
])
def test_fields_beyond_the_manuals_limits_are_refused_by_name(shared_running: Running,
                                                             params: dict[str, str],
                                                             field: str) -> None:
    before = stored_rows(shared_running)
    result = shared_running.request("CALLSTART", 1, deviceid="1001", **params)
    assert result_code(result) == 16
    assert (result.findtext("RESULTMSG") or "").startswith(field)
    assert shared_running.request("DEVICESTATUS", 2, deviceid="1001").findtext(
        "DEVICES/DEVICE/RECORDING/ISRECORDING") == "N"  # nothing was started
    assert stored_rows(shared_running) == before


def test_values_at_the_limits_are_kept_whole(running: Running) -> None:
    params = {"user1": "1" * 20, "user4": "4" * 255, "user15": "5" * 50, "devicealias": "A" * 15,
              "ani": "9" * 20}
    assert result_code(running.request("CALLSTART", 1, deviceid="1002", **params)) == 20
    assert result_code(running.request("CALLSTOP", 2, deviceid="1002")) == 20
    found = running.request("CALLLIST", 3, deviceid="1002").find("SEARCHRESULT")
    assert found is not None
    for name, value in params.items():
        assert found.findtext(name.upper()) == value


def test_callupdate_live_then_after_the_call(running: Running) -> None:
    conn = running.connect()
    assert result_code(conn.request("CALLSTART", 1, deviceid="1003")) == 20
    result = conn.request("CALLUPDATE", 2, deviceid="1003", user3="Follow up on order",
                          keepdays="3650")
    assert (result_code(result), result.findtext("RESULTMSG")) == (
        20, "CALLUPDATE sent to all of the following cores: 1")
    assert result_code(conn.request("CALLSTOP", 3, deviceid="1003")) == 20
    assert result_code(conn.request("CALLUPDATE", 4, deviceid="1003", user3="x")) == 7
    result = conn.request("CALLUPDATE", 5, deviceid="1003", user5="late",
                          update_if_not_recording="Y")
    assert (result_code(result), result.findtext("RESULTMSG")) == (
        20, "Updated recording in database")
    found = conn.request("CALLLIST", 6, deviceid="1003").find("SEARCHRESULT")
    assert found is not None
    assert (found.findtext("USER3"), found.findtext("USER5")) == ("Follow up on order", "late")
    record_id = found.findtext("RECORDID")
    assert result_code(conn.request("CALLUPDATE", 7, recordid=record_id, user4="Sales Call")) == 20
    found = conn.request("CALLLIST", 8, deviceid="1003").find("SEARCHRESULT")
    assert found is not None
    assert found.findtext("USER4") == "Sales Call"
    result = conn.request("CALLUPDATE", 9, recordid="999999", user4="x")
    assert (result_code(result), result.findtext("RESULTTYPE")) == (40, "API_RECORDID_INVALID")
    result = conn.request("CALLUPDATE", 10, deviceid="1004", user1="x",
                          update_if_not_recording="Y")
    assert result_code(result) == 40  # 1004 has never been recorded


def record(conn: ApiConnection, device: str, **meta: Any) -> None:
    assert result_code(conn.request("CALLSTART", 1, deviceid=device, **meta)) == 20
    assert result_code(conn.request("CALLSTOP", 2, deviceid=device)) == 20


def test_calllist_filters_count_dates_and_order(running: Running) -> None:
    conn = running.connect()
    record(conn, "1001", ani="111", user2="a")
    record(conn, "1002", ani="111", user2="b")
    record(conn, "1001", ani="222", user2="c")
    def users(**params: Any) -> list[str]:
        result = conn.request("CALLLIST", 5, **params)
        assert result_code(result) == 20, result.findtext("RESULTMSG")
        assert result.findtext("TYPE") == "CALLLIST"
        numbers = [int(r.findtext("CALLNUMBER") or 0) for r in result.findall("SEARCHRESULT")]
        assert numbers == list(range(1, len(numbers) + 1))
        return [r.findtext("USER2") or "" for r in result.findall("SEARCHRESULT")]
    assert users() == ["c", "b", "a"]  # newest first
    assert users(ani="111") == ["b", "a"]
    assert users(ani="111", deviceid="1001") == ["a"]
    assert users(ani="") == ["c", "b", "a"]  # a blank filter filters nothing
    assert users(callcount=2) == ["c", "b"]
    now = int(time.time())
    assert users(calldatestart=now - 60, calldateend=now + 60, callcount=1) == ["c"]
    assert users(calldatestart=now + 60) == []
    assert users(calldateend=now - 3600) == []
    for bad in ({"callcount": "x"}, {"callcount": "0"}, {"calldatestart": "yesterday"},
                {"calldatestart": now, "calldateend": now - 1}):
        result = conn.request("CALLLIST", 6, **bad)
        assert result_code(result) == 16, bad


def test_devicestatus_has_the_manuals_fields(running: Running) -> None:
    conn = running.connect()
    assert result_code(conn.request("CALLSTART", 1, deviceid="1004", devicealias="DESK1",
                                    sys_user="gkerber", crm_user="CCGKERBER", group="MANAGER",
                                    gate="prize", user1="E", user2="winners",
                                    calldirection="I", callinstance="2001")) == 20
    result = conn.request("DEVICESTATUS", 24, devicealias="DESK1")
    assert (result_code(result), result.findtext("RESULTMSG")) == (
        20, "Found the following matching devices")
    assert result.findtext("DEVICES/COUNT") == "1"
    device = result.find("DEVICES/DEVICE")
    assert device is not None
    assert [e.tag for e in device] == [
        "DEVICEID", "DEVICEALIAS", "SYS_USER", "CRM_USER", "GROUP", "GATE", "ANI", "DNIS",
        *(f"USER{i}" for i in range(1, 16)), "CALLDIRECTION", "ISTRUNK", "STATION",
        "STARTTIME", "STOPTIME", "COREIDENT", "RECORDING"]
    # The manual's fields in its order, then the documented extension (docs/call-model.md).
    assert [e.tag for e in device.find("RECORDING")] == [  # type: ignore[union-attr]
        "ISRECORDING", "ISRECORDINGVIDEO", "FILENAME", "CALLID", "SESSIONID", "CALLINSTANCE",
        "ERRORREASON"]
    assert device.findtext("RECORDING/ERRORREASON") == "NONE"
    assert (device.findtext("DEVICEID"), device.findtext("SYS_USER"),
            device.findtext("USER2")) == ("1004", "gkerber", "winners")
    assert device.findtext("RECORDING/ISRECORDING") == "Y"
    assert device.findtext("RECORDING/CALLINSTANCE") == "2001"
    start = device.findtext("STARTTIME") or ""
    assert time.strptime(start, "%m/%d/%Y %I:%M:%S %p")  # "2/1/2011 11:49:32 AM"
    assert device.findtext("STOPTIME") == ""
    everything = conn.request("DEVICESTATUS", 25)
    assert everything.findtext("DEVICES/COUNT") == "4"
    result = conn.request("DEVICESTATUS", 26, deviceid="nope")
    assert result_code(result) == 8


def test_a_message_over_the_limit_gets_16_and_the_connection_closes(start_recorder: Any) -> None:
    running = start_recorder(api={"socket_port": 0, "web_port": 0, "max_message_bytes": 2048})
    conn = running.connect()
    conn.send(request_xml("TEST", 1) + b"\r\n" + b"<REQUEST><USER1>" + b"x" * 5000)
    assert result_code(conn.read_result()) == 20
    result = conn.read_result()
    assert result_code(result) == 16
    assert "longer than 2048 bytes" in (result.findtext("RESULTMSG") or "")
    with pytest.raises(ConnectionError):
        conn.read_line()
    assert result_code(running.request("TEST")) == 20  # the service is fine


def test_an_unfinished_message_is_answered_after_a_quiet_period(start_recorder: Any) -> None:
    running = start_recorder(api={"socket_port": 0, "web_port": 0,
                                  "message_timeout_seconds": 0.3})
    conn = running.connect()
    conn.send(b"<REQUEST><TYPE>TEST</TYPE><REQUESTID>1</REQUESTID>\r\n")  # never closed
    result = conn.read_result()
    assert result_code(result) == 16
    assert result_code(conn.request("TEST", 2)) == 20


_SOCKET_FLOOD = request_xml("DEVICESTATUS", 1) + b"\r\n"
_HTTP_FLOOD = (b"GET /webAPI.aspx?type=devicestatus&requestid=1 HTTP/1.1\r\n"
               b"Host: 127.0.0.1\r\n\r\n")  # pipelined


@pytest.mark.parametrize(("port", "flood"), [
    ("socket", _SOCKET_FLOOD),
    # aiohttp's shutdown timeout (2 s, not a setting) runs out on the stuck connection.
    pytest.param("web", _HTTP_FLOOD, marks=pytest.mark.slow)])
def test_a_client_that_never_reads_does_not_hold_up_shutdown(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, port: str, flood: bytes) -> None:
    config = config_from_dict(base_config(tmp_path), base_dir=tmp_path)
    recorder = Recorder(config)
    others = set(threading.enumerate())  # a recorder the module shares may be running too
    recorder.start()
    assert recorder.api is not None
    address = recorder.api.socket_address if port == "socket" else recorder.api.web_address
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", address[1]))
    sock.setblocking(False)
    sent = 0  # requests with ~10 kB answers each, never read
    deadline = time.monotonic() + 10
    while sent < 2000 and time.monotonic() < deadline:
        try:
            sock.send(flood)
            sent += 1
        except BlockingIOError:
            time.sleep(0.01)
    time.sleep(0.5)  # the server is now stuck writing answers nobody reads
    with caplog.at_level(logging.INFO):
        recorder.stop()
    sock.close()
    assert "did not stop" not in caplog.text
    assert not [t.name for t in set(threading.enumerate()) - others
                if t.name in ("api-loop", "writer")]


@pytest.mark.parametrize("request_id", ["1_000", "+5", "\uff11\uff12", "\u0663", "-0", "0x10",
                                        "1e3"])  # full-width 12, Arabic-Indic 3
def test_requestid_is_plain_ascii_digits(shared_running: Running, request_id: str) -> None:
    result = shared_running.request("TEST", request_id)
    assert result_code(result) == 14


def test_a_valid_requestid_is_echoed_exactly(shared_running: Running) -> None:
    padded = "0" * 70 + "7"
    assert shared_running.request("TEST", padded).findtext("REQUESTID") == padded
    junk = "x" * 500
    result = shared_running.request("TEST", junk)
    assert (result_code(result), result.findtext("REQUESTID")) == (14, "x" * 64)


def test_a_broken_message_does_not_swallow_the_next_one(shared_running: Running) -> None:
    conn = shared_running.connect()
    conn.send(b"<REQUEST><TYPE>TEST</TYPE><REQUESTID>1</REQUESTID><BR></REQUEST>\r\n"
              + request_xml("TEST", 2) + b"\r\n"
              + b"<REQUEST><TYPE>TEST</TYPE><REQUESTID>3</REQUESTID>\r\n"  # never closed
              + b"<REQUEST>\r\n  <TYPE>TEST</TYPE>\r\n  <REQUESTID>4</REQUESTID>\r\n</REQUEST>\r\n")
    answers = [conn.read_result() for _ in range(4)]
    assert [result_code(a) for a in answers] == [16, 20, 16, 20]
    assert answers[1].findtext("REQUESTID") == "2"
    assert answers[3].findtext("REQUESTID") == "4"


def test_refused_messages_still_carry_their_type_and_requestid(shared_running: Running) -> None:
    before = stored_rows(shared_running)
    conn = shared_running.connect()
    conn.send(b"<REQUEST><TYPE>CALLSTART</TYPE><REQUESTID>78</REQUESTID><ANI>1</ANI><ANI>2</ANI>"
              b"</REQUEST>\r\n")
    result = conn.read_result()
    assert (result_code(result), result.findtext("REQUESTTYPE"), result.findtext("REQUESTID")) == (
        16, "CALLSTART", "78")
    assert "ANI is given more than once" in (result.findtext("RESULTMSG") or "")
    assert stored_rows(shared_running) == before


def test_values_with_line_breaks_keep_every_result_on_one_line(running: Running) -> None:
    conn = running.connect()
    conn.send(b"<REQUEST><TYPE>CALLSTART</TYPE><REQUESTID>1</REQUESTID><DEVICEID>1001</DEVICEID>"
              b"<USER4>line one&#10;line two&#13;&#10;three</USER4></REQUEST>\r\n")
    assert result_code(conn.read_result()) == 20
    conn.send(b"<REQUEST><TYPE>bo&#10;gus</TYPE><REQUESTID>2</REQUESTID></REQUEST>\r\n")
    assert conn.read_result().findtext("REQUESTTYPE") == "BO\nGUS"
    device = conn.request("DEVICESTATUS", 3, deviceid="1001")  # read_line: one line each
    assert device.findtext("DEVICES/DEVICE/USER4") == "line one\nline two\r\nthree"
    status, body = running.web("type=devicestatus&requestid=4&deviceid=1001")
    assert status == 200
    assert body.count(b"\n") == 0
    assert etree.fromstring(body).findtext("DEVICES/DEVICE/USER4") == "line one\nline two\r\nthree"


def test_both_spellings_of_keepdays_at_once_are_refused(running: Running) -> None:
    assert result_code(running.request("CALLSTART", 1, deviceid="1001")) == 20
    for params in ({"keepdays": "1", "keep_days": "2"}, {"keep_days": "2", "keepdays": "1"}):
        result = running.request("CALLUPDATE", 2, deviceid="1001", **params)
        assert result_code(result) == 16, params


def test_a_blank_callinstance_means_the_last_call(running: Running) -> None:
    conn = running.connect()
    assert result_code(conn.request("CALLSTART", 1, deviceid="1001", callinstance="2001")) == 20
    result = conn.request("CALLUPDATE", 2, deviceid="1001", callinstance="", user1="x")
    assert result_code(result) == 20
    assert result_code(conn.request("CALLSTOP", 3, deviceid="1001", callinstance="")) == 20
    found = conn.request("CALLLIST", 4, deviceid="1001").find("SEARCHRESULT")
    assert found is not None
    assert (found.findtext("CALLINSTANCE"), found.findtext("USER1")) == ("2001", "x")


def test_numbers_too_long_for_any_field_are_refused_not_crashed_on(
        shared_running: Running) -> None:
    before = stored_rows(shared_running)
    conn = shared_running.connect()
    result = conn.request("TEST", "1" * 4301)
    assert (result_code(result), result.findtext("REQUESTID")) == (14, "1" * 64)
    result = conn.request("CALLSTART", 2, deviceid="1001", priority="9" * 5000)
    assert result_code(result) == 16
    assert (result.findtext("RESULTMSG") or "").startswith("PRIORITY must be between 0 and 100")
    assert result_code(conn.request("TEST", 3)) == 20
    status, body = shared_running.web("type=test&requestid=" + "1" * 4301)
    assert (status, result_code(etree.fromstring(body))) == (200, 14)
    assert stored_rows(shared_running) == before


def test_numbers_at_the_ends_of_their_range_are_taken(running: Running) -> None:
    conn = running.connect()
    result = conn.request("CALLSTART", 1, deviceid="1001", priority="100",
                          maxrecordtime="2147483647", keep_days="-1")
    assert result_code(result) == 20, result.findtext("RESULTMSG")
    assert result_code(conn.request("CALLSTOP", 2, deviceid="1001")) == 20
    # Dates (and RECORDIDs) run to the top of a 64-bit integer: 19 digits.
    result = conn.request("CALLLIST", 3, calldatestart="0", calldateend=str(2**63 - 1))
    assert result_code(result) == 20, result.findtext("RESULTMSG")
    assert len(result.findall("SEARCHRESULT")) == 1


def test_a_blank_number_counts_as_not_sent(running: Running) -> None:
    result = running.request("CALLSTART", 1, deviceid="1001", priority="", maxrecordtime="",
                             keep_days="")
    assert result_code(result) == 20, result.findtext("RESULTMSG")


def test_refused_numbers_are_quoted_as_sent(shared_running: Running) -> None:
    before = stored_rows(shared_running)
    conn = shared_running.connect()
    typed = "twelve" * 10
    result = conn.request("CALLSTART", 1, deviceid="1001", priority=typed)
    assert (result_code(result), result.findtext("RESULTMSG")) == (
        16, f"PRIORITY must be a whole number, not {typed[:40]!r}")
    # A negative number too long for any field is refused as below the range, not above it
    # (nor taken as 0).
    result = conn.request("CALLSTART", 2, deviceid="1001", priority="-" + "9" * 30)
    assert result_code(result) == 16
    assert (result.findtext("RESULTMSG") or "").startswith(
        "PRIORITY must be between 0 and 100, not -")
    assert stored_rows(shared_running) == before


def test_devicestatus_finds_a_device_by_its_calls_callid(running: Running) -> None:
    conn = running.connect()
    assert result_code(conn.request("CALLSTART", 1, deviceid="1001", callid="C-77")) == 20
    assert result_code(conn.request("CALLSTART", 2, deviceid="1002", callid="C-78")) == 20
    found = conn.request("DEVICESTATUS", 3, callid="C-78")
    assert result_code(found) == 20, found.findtext("RESULTMSG")
    assert found.findtext("DEVICES/COUNT") == "1"
    assert found.findtext("DEVICES/DEVICE/DEVICEID") == "1002"


def test_a_phone_named_by_its_alias_takes_a_call_with_a_new_callid(running: Running) -> None:
    conn = running.connect()
    assert result_code(conn.request("CALLSTART", 1, deviceid="1001", devicealias="Desk 1",
                                    callid="C-1")) == 20
    assert result_code(conn.request("CALLSTOP", 2, deviceid="1001")) == 20
    # The next call names the phone by its alias only; its CALLID is its own, not the last's.
    result = conn.request("CALLSTART", 3, devicealias="Desk 1", callid="C-2")
    assert result_code(result) == 20, result.findtext("RESULTMSG")
    found = conn.request("DEVICESTATUS", 4, callid="C-2")
    assert found.findtext("DEVICES/DEVICE/DEVICEID") == "1001"


def test_every_broken_request_gets_one_answer_and_the_next_is_served(
        shared_running: Running) -> None:
    conn = shared_running.connect()
    conn.send(b"<REQUEST>\r\n  <TYPE>TEST</TYPE></TYP>\r\n  <REQUESTID>1</REQUESTID>\r\n"
              b"</REQUEST>\r\n"
              b"<REQUEST><TYPE>TEST</TYPE><REQUESTID>2</REQUESTID></REQUEST>\r\n"
              b"<REQUEST><TYPE>TEST</TYPE\r\n"
              b"<REQUEST><TYPE>TEST</TYPE><REQUESTID>4</REQUESTID></REQUEST>\r\n"
              b"\xef\xbb\xbf<REQUEST>\r\n  <TYPE>TEST</TYPE>\r\n  <REQUESTID>5</REQUESTID>\r\n"
              b"</REQUEST>\r\n")
    answers = [(result_code(r), r.findtext("REQUESTID")) for r in
               (conn.read_result() for _ in range(5))]
    # The first one's REQUESTID is read from its broken text; the third has none.
    assert answers == [(16, "1"), (20, "2"), (16, ""), (20, "4"), (20, "5")]
