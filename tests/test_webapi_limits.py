"""The WebAPI's connections held to account (issue 18), each attack made again over 127.0.0.0/8
against an in-process recorder and a real recorderd:

- a body sent a byte at a time is cut off at the message deadline (16, HTTP 408), and so is a
  request line or header that trickles in;
- one address holds at most its share of HTTP connections, the recorder at most
  ``max_http_connections`` (the next: HTTP 503 with code 48), with places kept for the CTI;
- meanwhile the CTI's calls are recorded, and the log does not grow with the flood.
"""

from __future__ import annotations

import logging
import socket
import time
from typing import Any

import pytest
from lxml import etree

from recorder.service.logrepeat import RepeatFilter
from tests.helpers.api import expect, result_code
from tests.helpers.load import SlowHttpBodies, answer_or_open
from tests.helpers.recorders import IN_PROCESS_AND_RECORDERD, RECORDERD_ONLY, Running

# The attackers come from other addresses of 127.0.0.0/8: api.allow lets them in.
API = {"socket_port": 0, "web_port": 0, "allow": ["127.0.0.0/8"]}
ATTACKER = "127.0.0.10"


def http_result(answer: bytes) -> tuple[int, etree._Element | None]:
    """The HTTP status of a raw answer and its RESULT, if it has one."""
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, etree.fromstring(body) if body.startswith(b"<RESULT>") else None


def still_serves(running: Running) -> None:
    assert result_code(running.request("TEST", 99)) == 20
    assert result_code(running.web_result(type="DEVICELIST", requestid=98)) == 20


@pytest.mark.slow
@IN_PROCESS_AND_RECORDERD
def test_a_body_sent_a_byte_at_a_time_is_cut_off_at_the_deadline(start_recorder: Any) -> None:
    running: Running = start_recorder(api={**API, "message_deadline_seconds": 1.0})
    slow = SlowHttpBodies(running.web_port, 6, time.monotonic() + 8.0, interval=0.1)
    slow.start()
    slow.join(15)
    # Before the fix none was ever cut off: the bodies trickled until the client gave up.
    assert len(slow.closed_after) == 6, (slow.closed_after, slow.answers)
    for took, answer in zip(slow.closed_after, slow.answers, strict=True):
        assert 0.9 <= took < 5.0, slow.closed_after
        status, result = http_result(answer)
        assert status == 408
        assert result is not None
        expect(result, 16, starts="the request did not arrive whole within 1 s of its first "
               "byte; closing the connection")
        assert result.findtext("REQUESTTYPE") == "TEST"
    still_serves(running)


@pytest.mark.slow
@IN_PROCESS_AND_RECORDERD
def test_a_request_line_and_headers_sent_a_byte_at_a_time_are_cut_off_too(
        start_recorder: Any) -> None:
    running: Running = start_recorder(api={**API, "message_deadline_seconds": 1.0})
    slow = SlowHttpBodies(running.web_port, 3, time.monotonic() + 8.0, interval=0.1,
                          headers_too=True)
    silent = socket.create_connection(("127.0.0.1", running.web_port), timeout=10)
    began = time.monotonic()
    slow.start()
    # A connection that never says anything goes at the same deadline.
    assert answer_or_open(silent, 15.0) is not None
    assert time.monotonic() - began < 5.0
    slow.join(15)
    assert len(slow.closed_after) == 3, (slow.closed_after, slow.answers)
    for took, answer in zip(slow.closed_after, slow.answers, strict=True):
        assert 0.9 <= took < 5.0, slow.closed_after
        assert answer.startswith(b"HTTP/1.1 408 "), answer
    still_serves(running)


@pytest.mark.slow
@IN_PROCESS_AND_RECORDERD
def test_slow_bodies_from_one_address_take_its_share_and_calls_are_still_recorded(
        start_recorder: Any) -> None:
    # The defaults: 32 connections from one address, a 30 s deadline (longer than this test).
    running: Running = start_recorder(api=API)
    slow = SlowHttpBodies(running.web_port, 40, time.monotonic() + 6.0, source=ATTACKER,
                          interval=0.5)
    slow.start()
    time.sleep(2.0)
    # Eight were answered at once, before they had said anything: 503, code 48.
    assert len(slow.answers) == 8, slow.answers
    for answer in slow.answers:
        status, result = http_result(answer)
        assert status == 503
        assert result is not None
        expect(result, 48, starts="the recorder already serves 32 HTTP connections from "
               "127.0.0.10")
    # Other clients are served meanwhile, over HTTP too, and a CTI's call is recorded.
    still_serves(running)
    conn = running.connect()
    expect(conn.request("CALLSTART", 1, deviceid="1001", callinstance="during"), 20)
    time.sleep(0.3)
    expect(conn.request("CALLSTOP", 2, deviceid="1001", callinstance="during"), 20)
    row = conn.request("CALLLIST", 3, deviceid="1001", callcount=1).find("SEARCHRESULT")
    assert row is not None
    assert row.findtext("FILENAME")
    conn.close()
    slow.stop()
    assert running.metric("recorder_api_http_connections") <= 33


@pytest.mark.slow
@IN_PROCESS_AND_RECORDERD
def test_http_connections_over_the_limit_get_503_and_48_but_the_cti_has_places(
        start_recorder: Any) -> None:
    running: Running = start_recorder(api={
        **API, "max_http_connections": 6, "max_clients_per_address": 3,
        "cti_addresses": ["127.0.0.2"], "cti_reserved_clients": 2})
    held = [socket.create_connection(("127.0.0.1", running.web_port), timeout=10,
                                     source_address=(source, 0))
            for source in ("127.0.0.10",) * 3 + ("127.0.0.11",) * 2]
    try:
        # Four places for the others (six, two kept for the CTI): the fifth is refused.
        answers = [answer_or_open(sock, 0.3) for sock in held]
        assert answers[:4] == [None] * 4, answers
        refused = answers[4]
        assert refused is not None
        status, result = http_result(refused)
        assert status == 503
        assert result is not None
        expect(result, 48, starts="the recorder already serves 4 HTTP connections, the rest "
               "of its places kept for its CTI links")
        # The CTI's requests find their places.
        for n in range(2):
            cti = socket.create_connection(("127.0.0.1", running.web_port), timeout=10,
                                           source_address=("127.0.0.2", 0))
            held.append(cti)
            cti.sendall(b"GET /webAPI.aspx?type=TEST&requestid=%d HTTP/1.1\r\n"
                        b"Host: 127.0.0.1\r\n\r\n" % n)
            answer = cti.recv(65536)
            assert answer.startswith(b"HTTP/1.1 200 "), answer
    finally:
        for sock in held:
            sock.close()


MALFORMED = b"GET /webAPI.aspx?type=TEST&x=" + b"y" * 9000 + b" HTTP/1.1\r\n\r\n"


@pytest.mark.slow
@RECORDERD_ONLY
def test_a_flood_of_refused_requests_does_not_flood_the_log(start_recorder: Any) -> None:
    running: Running = start_recorder(api=API)
    before = len(running.log())
    for _ in range(150):  # each refused by the HTTP layer with a warning line
        with socket.create_connection(("127.0.0.1", running.web_port), timeout=10) as sock:
            sock.sendall(MALFORMED)
            assert answer_or_open(sock, 10) is not None
    still_serves(running)
    lines = [line for line in running.log().splitlines()
             if "refused a malformed HTTP request" in line]
    # Before the fix: 150 lines, one per request; and so for any warning a client can cause
    # as often as it likes (137 MB in 35 s were seen). Five per 10 s now, and a count.
    assert 1 <= len(lines) <= 10, len(lines)
    grown = len(running.log()) - before
    print(f"log grew {grown} bytes in {len(lines)} lines of refusals")
    assert grown <= 4096, grown


def test_the_repeat_filter_holds_back_a_kind_and_says_how_many() -> None:
    now = [0.0]
    repeat = RepeatFilter(interval=10.0, burst=2, clock=lambda: now[0])

    def record(msg: str, *args: object, level: int = logging.WARNING) -> logging.LogRecord:
        return logging.LogRecord("recorder.x", level, __file__, 1, msg, args or None, None)

    passed = [r for r in (record("peer %s failed", n) for n in range(6)) if repeat.filter(r)]
    assert [r.getMessage() for r in passed] == ["peer 0 failed", "peer 1 failed"]
    assert repeat.filter(record("another kind"))
    assert repeat.filter(record("peer %s failed", 9, level=logging.INFO))  # INFO: never held
    now[0] = 10.5
    later = record("peer %s failed", 7)
    assert repeat.filter(later)
    assert later.getMessage() == "peer 7 failed [4 more like this held back in the last 10 s]"
    no_args = record("100% full")
    assert repeat.filter(no_args)
    assert no_args.getMessage() == "100% full"
