"""The API's limits, each produced for real over 127.0.0.1 against an in-process recorder and a
real recorderd: message size (16, closed), slow sender (16, closed), a quiet unfinished message
(16, kept), idle connections (closed), the client limit (48) and the command queue (47). After
each, the service still answers."""

from __future__ import annotations

import select
import socket
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from lxml import etree

from tests.helpers.api import ApiConnection, expect, request_xml, result_code
from tests.helpers.exports import record
from tests.helpers.recorders import IN_PROCESS_AND_RECORDERD, Running
from tests.helpers.waiting import wait_for

WAIT = 15.0
API = {"socket_port": 0, "web_port": 0}


def closed_within(conn: ApiConnection, seconds: float) -> float:
    """Seconds until the server closes ``conn`` (which must send nothing more)."""
    began = time.monotonic()
    conn.sock.settimeout(seconds)
    assert conn.sock.recv(65536) == b""
    return time.monotonic() - began


def wait_for_metric(running: Running, name: str, value: float) -> None:
    wait_for(lambda: running.metric(name) == value, WAIT, step=0.02,
             what=lambda: f"{name} to be {value}, not {running.metric(name)}")


def http_get(port: int, target: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
    sock.sendall(b"GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % target.encode())
    return sock


def read_until(sock: socket.socket, marker: bytes) -> bytes:
    data = b""
    while marker not in data:
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    return data


def still_serves(running: Running) -> None:
    assert result_code(running.request("TEST", 99)) == 20
    assert result_code(running.web_result(type="TEST", requestid=98)) == 20


@IN_PROCESS_AND_RECORDERD
def test_a_message_over_the_size_limit_gets_16_and_the_connection_closes(
        start_recorder: Any) -> None:
    running = start_recorder(api={**API, "max_message_bytes": 2048})
    conn = running.connect()
    conn.send(request_xml("TEST", 1) + b"\r\n<REQUEST><TYPE>TEST</TYPE><USER1>" + b"x" * 5000)
    assert result_code(conn.read_result()) == 20  # what came before the big one is answered
    expect(conn.read_result(), 16, starts="message longer than 2048 bytes")
    with pytest.raises(ConnectionError):
        conn.read_line()
    # The WebAPI holds its form bodies to the same limit: 413, in the manual's answer.
    body = urllib.parse.urlencode({"type": "TEST", "requestid": "5", "user1": "x" * 5000})
    status, answer = running.web("", method="POST", body=body.encode())
    assert status == 413
    expect(etree.fromstring(answer), 16, starts="the request body is longer than 2048 bytes")
    still_serves(running)


@pytest.mark.slow
@IN_PROCESS_AND_RECORDERD
def test_a_slow_sender_gets_16_and_the_connection_closes(start_recorder: Any) -> None:
    running = start_recorder(api={**API, "message_timeout_seconds": 0.5,
                                  "message_deadline_seconds": 1.0})
    conn = running.connect()
    message = request_xml("TEST", 1, user1="y" * 200)
    conn.sock.settimeout(0.1)
    began = time.monotonic()
    answer = b""
    for byte in message:  # one byte every 0.1 s: never quiet long enough to be answered
        try:
            conn.sock.sendall(bytes([byte]))
            answer = conn.sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionError:
            break
        break
    took = time.monotonic() - began
    assert answer.endswith(b"\r\n"), answer
    expect(etree.fromstring(answer.rstrip()), 16, starts="message not complete within 1 s")
    assert 0.9 <= took < 5.0
    assert closed_within(conn, WAIT) < WAIT
    still_serves(running)


@IN_PROCESS_AND_RECORDERD
def test_a_quiet_unfinished_message_gets_16_and_the_connection_stays(
        start_recorder: Any) -> None:
    running = start_recorder(api={**API, "message_timeout_seconds": 0.3})
    conn = running.connect()
    conn.send(b"<REQUEST><TYPE>TEST</TYPE><REQUESTID>1</REQUESTID>\r\n")  # never closed
    expect(conn.read_result(), 16)
    assert result_code(conn.request("TEST", 2)) == 20


@pytest.mark.slow
@IN_PROCESS_AND_RECORDERD
def test_an_idle_connection_is_closed_but_not_a_busy_one_or_a_subscriber(
        start_recorder: Any) -> None:
    running = start_recorder(api={**API, "idle_timeout_seconds": 0.6})
    idle, busy, subscriber = running.connect(), running.connect(), running.connect()
    assert result_code(idle.request("TEST", 1)) == 20
    expect(subscriber.request("EVENTS", 0, eventclass="ALL"), 20)
    began = time.monotonic()
    for n in range(8):  # a request every 0.2 s keeps a connection open
        assert result_code(busy.request("TEST", n)) == 20
        time.sleep(0.2)
    assert time.monotonic() - began > 1.2  # twice the idle timeout
    assert closed_within(idle, WAIT) < WAIT
    # The subscriber sent nothing either, yet it is still connected and served.
    assert result_code(subscriber.request("TEST", 2)) == 20
    assert result_code(busy.request("TEST", 9)) == 20
    still_serves(running)


@pytest.mark.slow
@IN_PROCESS_AND_RECORDERD
def test_clients_over_the_limit_get_48_and_event_streams_count(start_recorder: Any) -> None:
    running = start_recorder(api={**API, "max_clients": 3})
    conns = [running.connect() for _ in range(3)]
    for n, conn in enumerate(conns):
        assert result_code(conn.request("TEST", n)) == 20
    wait_for_metric(running, "recorder_api_clients", 3)
    refused = running.connect()
    expect(refused.read_result(), 48, starts="the recorder already serves 3 clients")
    with pytest.raises(ConnectionError):
        refused.read_line()
    stream = http_get(running.web_port, "/events?class=ALL")
    answer = read_until(stream, b"</RESULT>")
    assert answer.startswith(b"HTTP/1.1 503"), answer
    assert b"<RESULTCODE>48</RESULTCODE>" in answer
    stream.close()
    # Ordinary WebAPI requests are not clients (the command queue bounds them): still served.
    assert result_code(running.web_result(type="TEST", requestid=7)) == 20

    conns.pop().close()  # a place comes free: an event stream takes it
    wait_for_metric(running, "recorder_api_clients", 2)
    stream = http_get(running.web_port, "/events?class=ALL")
    assert b"<RESULTCODE>20</RESULTCODE>" in read_until(stream, b"</RESULT>")
    wait_for_metric(running, "recorder_api_clients", 3)
    expect(running.connect().read_result(), 48)
    stream.close()
    for conn in conns:
        conn.close()
    wait_for_metric(running, "recorder_api_clients", 0)
    still_serves(running)


@contextmanager
def stalled_smtp() -> Iterator[socket.socket]:
    """A mail server that accepts connections and never says a word (until closed)."""
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        yield listener
    finally:
        listener.close()


@IN_PROCESS_AND_RECORDERD
@pytest.mark.slow
def test_requests_beyond_the_command_queue_get_47_at_once(start_recorder: Any) -> None:
    with stalled_smtp() as smtp:
        running = start_recorder(
            api={**API, "workers": 1, "command_queue_size": 2},
            smtp={"host": "127.0.0.1", "port": smtp.getsockname()[1],
                  "timeout_seconds": 60.0})
        conn = running.connect()
        ident = record(conn, "1001", 0.2)["RECORDID"]
        # EMAIL holds the only worker while it waits for the mail server's greeting.
        mailer = running.connect()
        mailer.send(request_xml("EMAIL", 1, ident=ident, toaddress="qa@example.com",
                                media_format="WAV") + b"\r\n")
        assert select.select([smtp], [], [], WAIT)[0], "EMAIL never reached the mail server"
        session, _ = smtp.accept()
        try:
            # DEVICELIST, not TEST: TEST runs in the call-control lane with CALLSTART (the CTI
            # link's keep-alive), which this queue does not hold up.
            waiting = [running.connect(), running.connect()]
            for n, queued in enumerate(waiting):
                queued.send(request_xml("DEVICELIST", 10 + n) + b"\r\n")
            wait_for_metric(running, "recorder_api_requests_pending", 3)

            began = time.monotonic()
            expect(conn.request("DEVICELIST", 4), 47,
                   starts="the recorder has 3 requests running")
            # The WebAPI shares the queue.
            full = running.web_result(type="DEVICELIST", requestid=5)
            expect(full, 47)
            assert full.findtext("REQUESTID") == "5"
            # Call control has its own lane: answered while the general one is full.
            expect(conn.request("TEST", 9), 20)
            expect(running.web_result(type="TEST", requestid=10), 20)
            # Pipelined requests get no further: each one is refused in turn.
            conn.send(b"".join(request_xml("DEVICESTATUS", n, deviceid="1001") + b"\r\n"
                               for n in (6, 7, 8)))
            for n in (6, 7, 8):
                result = expect(conn.read_result(), 47)
                assert result.findtext("REQUESTTYPE") == "DEVICESTATUS"
                assert result.findtext("REQUESTID") == str(n)
            assert time.monotonic() - began < 5.0  # at once, not after the EMAIL
        finally:
            session.close()  # the mail server hangs up: EMAIL fails, the worker is free
        expect(mailer.read_result(), 31)
        for n, queued in enumerate(waiting):
            result = expect(queued.read_result(), 20)
            assert result.findtext("REQUESTID") == str(10 + n)
        wait_for_metric(running, "recorder_api_requests_pending", 0)
        still_serves(running)
