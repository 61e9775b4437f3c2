"""The event interface: the bus's rules with plain objects, then real subscribers (socket API and
Server-Sent Events) on a running recorder.

Until a test needs the scheduler's own events, events are published on ``Recorder.events`` of an
in-process recorder, as the scheduler does.
"""

from __future__ import annotations

import asyncio
import http.client
import logging
import re
import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from recorder.events.bus import EventBus
from recorder.events.types import CALL, EXTRA_FIELDS, FIELDS, RECORD, Event, make_event
from tests.helpers.api import add_user, expect, fields, request_xml, result_code
from tests.helpers.recorders import IN_PROCESS_AND_RECORDERD, Running
from tests.helpers.waiting import wait_for

# The manual's "Request Command", verbatim.
MANUAL_EVENTS = b"""<REQUEST>
  <REQUESTID>0</REQUESTID>
  <TYPE>EVENTS</TYPE>
  <EVENTCLASS>ALL</EVENTCLASS>
  <EVENTVALUE></EVENTVALUE>
</REQUEST>\r\n"""
WAIT = 10.0  # seconds any one expected event may take


def call_event(event_type: str, device: str = "1111", **values: str) -> Event:
    return make_event(event_type, {"DEVICEID": device, "AGENTID": "16", **values})


# --- the bus, with plain objects -------------------------------------------------------------


def test_each_subscriber_gets_what_its_filter_asks_for_in_order() -> None:
    bus = EventBus(queue_size=10)
    everything = bus.subscribe({CALL, RECORD})
    calls_of_1111 = bus.subscribe({CALL}, {"1111"})
    records = bus.subscribe({RECORD}, {"1111", "2222"})
    published = [call_event("CALLSTART"), call_event("RECORDINGSTARTED", "2222"),
                 call_event("CALLSTART", "3333"), call_event("CALLSTOP")]
    for event in published:
        bus.publish(event)

    def drain(subscription: Any) -> list[tuple[str, str]]:
        got = []
        while (event := subscription.get_nowait()) is not None:
            got.append((event.event_type, event.device_id))
        return got

    assert drain(everything) == [(e.event_type, e.device_id) for e in published]
    assert drain(calls_of_1111) == [("CALLSTART", "1111"), ("CALLSTOP", "1111")]
    assert drain(records) == [("RECORDINGSTARTED", "2222")]
    assert len({everything.xref, calls_of_1111.xref, records.xref}) == 3
    assert bus.subscribers == 3


def test_a_subscriber_that_falls_behind_is_dropped_and_the_others_carry_on(
        caplog: pytest.LogCaptureFixture) -> None:
    bus = EventBus(queue_size=5)
    slow = bus.subscribe({CALL}, name="slow one")
    quick = bus.subscribe({CALL}, name="quick one")
    caplog.set_level(logging.WARNING, logger="recorder.events.bus")
    received = 0
    for i in range(50):
        bus.publish(call_event("CALLSTART", str(i)))
        received += quick.get_nowait() is not None
    assert received == 50
    assert (slow.dropped, slow.closed, quick.dropped) == (True, True, False)
    assert bus.subscribers == 1
    assert slow.get_nowait() is None  # what it had queued went with it
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings == [f"event subscriber slow one (EVENTXREF {slow.xref}) fell 5 events "
                        "behind; disconnected"]


def test_publishing_never_waits_for_subscribers_nor_fails_for_them() -> None:
    bus = EventBus(queue_size=100_000)
    stalled = [bus.subscribe({CALL}) for _ in range(20)]  # none of them ever reads
    loop = asyncio.new_event_loop()
    waiting = bus.subscribe({CALL}, loop=loop)
    loop.close()  # a reader whose loop is gone: waking it must not fail the publisher
    event = call_event("CALLSTART")
    started = time.monotonic()
    for _ in range(20_000):
        bus.publish(event)
    assert time.monotonic() - started < 5.0
    assert all(not s.dropped for s in stalled)
    assert waiting.get_nowait() is event


def test_a_reader_on_its_loop_is_woken_by_publishers_on_other_threads() -> None:
    bus = EventBus(queue_size=1000)

    async def read(count: int) -> list[str]:
        subscription = bus.subscribe({CALL, RECORD})
        publishers = [threading.Thread(target=lambda n=n: [
            bus.publish(call_event("CALLSTART", f"{n}-{i}")) for i in range(100)])
            for n in range(4)]
        for thread in publishers:
            thread.start()
        got = [event.device_id for _ in range(count)
               if (event := await asyncio.wait_for(subscription.get(), WAIT)) is not None]
        for thread in publishers:
            thread.join(WAIT)
        subscription.close()
        assert await subscription.get() is None  # closed: the reader is told so at once
        return got

    got = asyncio.run(read(400))
    assert sorted(got) == sorted(f"{n}-{i}" for n in range(4) for i in range(100))
    # Each publisher's events arrive in the order it published them.
    assert [d for d in got if d.startswith("2-")] == [f"2-{i}" for i in range(100)]


def test_closing_the_bus_ends_every_subscription() -> None:
    bus = EventBus()

    async def main() -> list[Event | None]:
        subscriptions = [bus.subscribe({CALL}) for _ in range(3)]
        readers = [asyncio.create_task(s.get()) for s in subscriptions]
        await asyncio.sleep(0.05)
        bus.close()
        return await asyncio.wait_for(asyncio.gather(*readers), WAIT)

    assert asyncio.run(main()) == [None, None, None]
    assert bus.subscribers == 0
    assert bus.subscribe({CALL}).closed


# --- subscribers on a running recorder ---------------------------------------------------------


class Subscriber:
    """A socket API connection after EVENTS: RESULT and CALLCOPYEVENT lines as they come."""

    def __init__(self, running: Running, request: bytes = MANUAL_EVENTS) -> None:
        self.conn = running.connect()
        self.conn.send(request)
        self.result = self.conn.read_result()

    def next(self) -> etree._Element:
        return etree.fromstring(self.conn.read_line())

    def events(self, count: int) -> list[etree._Element]:
        return [self.next() for _ in range(count)]

    def close(self) -> None:
        self.conn.close()


@pytest.fixture
def subscribers() -> Iterator[list[Subscriber]]:
    made: list[Subscriber] = []
    yield made
    for subscriber in made:
        subscriber.close()


def bus_of(running: Running) -> EventBus:
    assert running.recorder is not None
    assert running.recorder.events is not None
    return running.recorder.events


def test_the_manuals_request_then_events_in_the_manuals_layout(
        running: Running, subscribers: list[Subscriber]) -> None:
    subscriber = Subscriber(running)
    subscribers.append(subscriber)
    result = subscriber.result
    expect(result, 20, "API_OK")
    assert [child.tag for child in result] == [
        "REQUESTTYPE", "REQUESTID", "RESULTTYPE", "RESULTCODE", "RESULTMSG", "EVENTXREF",
        "EVENTCLASS", "EVENTTYPE"]
    assert (result.findtext("REQUESTID"), result.findtext("EVENTCLASS"),
            result.findtext("EVENTTYPE")) == ("0", "ALL", "")
    xref = result.findtext("EVENTXREF")
    assert xref == "0"  # the first subscription, as the manual prints it

    bus_of(running).publish(call_event("CALLSTART", USER1="Gold & <Level>\nline two",
                                       STARTTIME="1/31/2011 2:39:49 PM", COREIDENT="1"))
    line = subscriber.conn.read_line()
    assert b"\n" not in line  # one line per event, whatever its values hold
    event = etree.fromstring(line)
    assert event.tag == "CALLCOPYEVENT"
    assert [(c.tag, c.text or "") for c in event if c.tag != "EVENTDATA"] == [
        ("EVENTCLASS", "CALL"), ("EVENTTYPE", "CALLSTART"), ("MODULE", "Api"),
        ("EVENTXREF", xref)]
    data = event.find("EVENTDATA")
    assert data is not None
    assert tuple(child.tag for child in data) == FIELDS["CALLSTART"]
    got = fields(data)
    assert (got["DEVICEID"], got["AGENTID"], got["USER1"], got["STARTTIME"]) == (
        "1111", "16", "Gold & <Level>\nline two", "1/31/2011 2:39:49 PM")


def test_eventclass_and_eventvalue_choose_the_events(running: Running,
                                                     subscribers: list[Subscriber]) -> None:
    records_of_1001 = Subscriber(running, request_xml("EVENTS", 1, eventclass="record",
                                                      eventvalue="1001") + b"\r\n")
    calls = Subscriber(running, request_xml("EVENTS", 2, eventclass="Call") + b"\r\n")
    subscribers += [records_of_1001, calls]
    assert records_of_1001.result.findtext("EVENTCLASS") == "RECORD"  # the manual's spelling
    assert calls.result.findtext("EVENTCLASS") == "CALL"
    bus = bus_of(running)
    for event in (call_event("CALLSTART", "1001"), call_event("RECORDINGSTARTED", "1002"),
                  call_event("RECORDINGSTARTED", "1001"), call_event("CALLSTOP", "1002"),
                  call_event("RECORDINGSTOPPED", "1001")):
        bus.publish(event)
    seen = [(e.findtext("EVENTTYPE"), e.findtext("EVENTDATA/DEVICEID"))
            for e in records_of_1001.events(2)]
    assert seen == [("RECORDINGSTARTED", "1001"), ("RECORDINGSTOPPED", "1001")]
    seen = [(e.findtext("EVENTTYPE"), e.findtext("EVENTDATA/DEVICEID")) for e in calls.events(2)]
    assert seen == [("CALLSTART", "1001"), ("CALLSTOP", "1002")]
    # Their EVENTXREFs tell the subscriptions apart.
    assert records_of_1001.result.findtext("EVENTXREF") != calls.result.findtext("EVENTXREF")


def test_a_bad_eventclass_is_refused_and_the_connection_stays_an_api_connection(
        running: Running) -> None:
    conn = running.connect()
    try:
        expect(conn.request("EVENTS", 5, eventclass="PHONE"), 30, starts="EVENTCLASS must be "
               "one of ALL, CALL, RECORD, CHAT")
        assert conn.request("EVENTS", 5).findtext("RESULTTYPE") == "API_INVALID_MESSAGE_FORMAT"
        expect(conn.request("TEST", 6), 20)
        # Subscribing still works on it afterwards, once.
        expect(conn.request("EVENTS", 7, eventclass="ALL"), 20)
        expect(conn.request("EVENTS", 8, eventclass="CALL"), 32, starts="this connection "
               "already receives events")
    finally:
        conn.close()


def test_requests_on_a_subscribed_connection_are_answered_among_its_events(
        running: Running, subscribers: list[Subscriber]) -> None:
    subscriber = Subscriber(running)
    subscribers.append(subscriber)
    bus_of(running).publish(call_event("CALLSTART", "1001"))
    subscriber.conn.send(request_xml("TEST", 77) + b"\r\n")
    lines = subscriber.events(2)
    assert sorted(line.tag for line in lines) == ["CALLCOPYEVENT", "RESULT"]
    result = next(line for line in lines if line.tag == "RESULT")
    assert (result.findtext("REQUESTID"), result_code(result)) == ("77", 20)


@IN_PROCESS_AND_RECORDERD
def test_events_on_the_webapi_request_page_stream_as_on_the_socket(running: Running) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", running.web_port, timeout=WAIT)
    try:
        conn.request("GET", "/Webapi.aspx?type=events&requestid=3&eventclass=CALL"
                            "&eventvalue=1002")
        response = conn.getresponse()
        assert response.status == 200
        assert response.getheader("Content-Type") == "text/xml; charset=utf-8"
        line = response.readline()
        assert line.endswith(b"\r\n")
        result = etree.fromstring(line)
        expect(result, 20, "API_OK")
        assert (result.findtext("REQUESTID"), result.findtext("EVENTCLASS")) == ("3", "CALL")
        assert result_code(running.request("CALLSTART", DEVICEID="1001")) == 20
        assert result_code(running.request("CALLSTART", DEVICEID="1002", ANI="555")) == 20
        assert result_code(running.request("CALLSTOP", DEVICEID="1002")) == 20
        got = [etree.fromstring(response.readline()) for _ in range(2)]
        assert [(e.tag, e.findtext("EVENTTYPE"), e.findtext("EVENTDATA/DEVICEID"),
                 e.findtext("EVENTXREF")) for e in got] == [
            ("CALLCOPYEVENT", "CALLSTART", "1002", result.findtext("EVENTXREF")),
            ("CALLCOPYEVENT", "CALLSTOP", "1002", result.findtext("EVENTXREF"))]
        assert got[0].findtext("EVENTDATA/ANI") == "555"
    finally:
        conn.close()
    # Refusals are the dispatcher's, as for any request: a plain RESULT, no stream.
    expect(running.web_result(type="events", requestid=3, eventclass="nope"), 30)
    expect(running.web_result(type="events", eventclass="ALL"), 14)


@pytest.mark.slow
def test_a_stalled_subscriber_is_cut_off_and_a_reading_one_keeps_receiving(
        start_recorder: Any, caplog: pytest.LogCaptureFixture) -> None:
    running = start_recorder(api={"socket_port": 0, "web_port": 0, "event_queue_size": 20})
    bus = bus_of(running)
    stalled = stalled_subscriber(running)
    good = ReadingSubscriber(running)
    try:
        wait_for(lambda: bus.subscribers == 2)
        caplog.set_level(logging.WARNING, logger="recorder.events.bus")
        published = 0
        # Batches the reading subscriber takes in before the next, until the stalled one's
        # socket buffers and queue are full; bounded in count.
        while bus.subscribers == 2 and published < 20_000:
            for _ in range(10):
                bus.publish(call_event("CALLSTART", "1001", USER4="x" * 200))
                published += 1
            wait_for(lambda n=published: good.count() >= n)
        assert bus.subscribers == 1, f"still subscribed after {published} events"
        assert cut_off(stalled)
        assert any(r.getMessage().startswith(f"event subscriber socket 127.0.0.1:"
                                             f"{stalled.getsockname()[1]} ")
                   and r.getMessage().endswith("fell 20 events behind; disconnected")
                   for r in caplog.records), caplog.text
        bus.publish(call_event("CALLSTOP", "1001"))
        wait_for(lambda: good.count() == published + 1)
        assert good.last_type() == "CALLSTOP"
    finally:
        stalled.close()
        good.close()


def stalled_subscriber(running: Running) -> socket.socket:
    """Subscribes to everything and never reads, with receive buffers as small as they go."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(WAIT)
    sock.connect(("127.0.0.1", running.socket_port))
    sock.sendall(MANUAL_EVENTS)
    return sock


def cut_off(sock: socket.socket, timeout: float = WAIT) -> bool:
    """Whether the recorder reset the connection, seen without reading what is buffered."""
    poller = select.poll()
    poller.register(sock, select.POLLERR | select.POLLHUP)
    return bool(poller.poll(timeout * 1000))


class ReadingSubscriber:
    """Subscribes to everything and reads all the time, on a thread of its own."""

    def __init__(self, running: Running) -> None:
        self.conn = running.connect()
        self.conn.send(MANUAL_EVENTS)
        expect(self.conn.read_result(), 20)
        self._events: list[etree._Element] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        self.conn.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                line = self.conn.read_line()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self._events.append(etree.fromstring(line))

    def count(self) -> int:
        with self._lock:
            return len(self._events)

    def events(self) -> list[etree._Element]:
        with self._lock:
            return list(self._events)

    def types(self) -> list[str]:
        return [event.findtext("EVENTTYPE") or "" for event in self.events()]

    def last_type(self) -> str:
        return self.types()[-1]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(WAIT)
        self.conn.close()


# --- Server-Sent Events ----------------------------------------------------------------------


class EventStream:
    """``GET /events?...`` read as a browser's EventSource would: (event, data) messages."""

    def __init__(self, running: Running, query: str) -> None:
        self.http = http.client.HTTPConnection("127.0.0.1", running.web_port, timeout=WAIT)
        self.http.request("GET", f"/events?{query}")
        self.response = self.http.getresponse()

    def next(self) -> tuple[str, str]:
        event, data = "message", []
        while True:
            line = self.response.readline().decode().rstrip("\n")
            if not line:
                if data:
                    return event, "\n".join(data)
                continue
            if line.startswith(":"):
                continue  # a comment (keep-alive)
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                event = value
            elif name == "data":
                data.append(value)

    def close(self) -> None:
        self.http.close()


@pytest.mark.slow
def test_server_sent_events(running: Running) -> None:
    stream = EventStream(running, "class=record&value=1001")
    try:
        assert stream.response.status == 200
        assert stream.response.getheader("Content-Type") == "text/event-stream; charset=utf-8"
        kind, data = stream.next()
        result = etree.fromstring(data)
        assert kind == "RESULT"
        expect(result, 20)
        assert (result.findtext("REQUESTTYPE"), result.findtext("EVENTCLASS")) == ("EVENTS",
                                                                                  "RECORD")
        bus = bus_of(running)
        wait_for(lambda: bus.subscribers == 1)
        for event in (call_event("CALLSTART", "1001"), call_event("RECORDINGSTARTED", "1002"),
                      call_event("RECORDINGSTARTED", "1001", FILENAME="a.wav")):
            bus.publish(event)
        kind, data = stream.next()
        event = etree.fromstring(data)
        assert kind == "RECORDINGSTARTED"
        assert (event.findtext("EVENTCLASS"), event.findtext("EVENTXREF"),
                event.findtext("EVENTDATA/DEVICEID"), event.findtext("EVENTDATA/FILENAME")) == (
            "RECORD", result.findtext("EVENTXREF"), "1001", "a.wav")
    finally:
        stream.close()
    wait_for(lambda: bus.subscribers == 0)  # a browser that leaves is unsubscribed


def test_a_bad_event_stream_request_is_refused_with_the_result_code(running: Running) -> None:
    status, body = running.web("class=PHONE", path="/events")
    assert status == 400
    expect(etree.fromstring(body), 30)
    status, body = running.web("class=ALL&CLASS=CALL", path="/events")
    assert status == 400
    expect(etree.fromstring(body), 16, "parameters must be unique but duplicates were found")


# --- what the recorder itself publishes ------------------------------------------------------


def test_chat_sessions_reach_subscribers(running: Running,
                                         subscribers: list[Subscriber]) -> None:
    conn = running.connect()
    try:
        agent = add_user(conn, "John", "Doe", username="JDOE", phones="4321")
        chats = Subscriber(running, request_xml("EVENTS", 1, eventclass="CHAT") + b"\r\n")
        subscribers.append(chats)
        expect(conn.request("CHATSTART", 2, sessionid="82738", keyname="USERNAME",
                            keyvalue="JDOE", user1="Gold"), 20)
        expect(conn.request("CHATSTOP", 3, sessionid="82738"), 20)
    finally:
        conn.close()
    start, stop = chats.events(2)
    assert [e.findtext("EVENTTYPE") for e in (start, stop)] == ["CHATSTART", "CHATSTOP"]
    assert start.findtext("EVENTCLASS") == "CHAT"
    got = fields(start.find("EVENTDATA"))
    assert (got["SESSIONID"], got["DEVICEID"], got["AGENTID"], got["USER1"]) == (
        "82738", "4321", str(agent), "Gold")
    assert got["RECORDID"] == stop.findtext("EVENTDATA/RECORDID")
    assert stop.findtext("EVENTDATA/STOPTIME")


CALL_SEQUENCE = ["CALLSTART", "RECORDINGSTARTED", "CALLSTOP", "RECORDINGSTOPPED",
                 "RECORDINGUPDATE"]
# ... and with a blackout in the middle of the call.
PAUSED_SEQUENCE = ["CALLSTART", "RECORDINGSTARTED", "RECORDINGPAUSED", "RECORDINGRESUMED",
                   "CALLSTOP", "RECORDINGSTOPPED", "RECORDINGUPDATE"]


@pytest.mark.slow
@IN_PROCESS_AND_RECORDERD
def test_a_calls_events_end_to_end_while_a_stalled_subscriber_is_dropped(
        start_recorder: Any) -> None:
    running = start_recorder(api={"socket_port": 0, "web_port": 0, "event_queue_size": 20})
    stalled = stalled_subscriber(running)
    good = ReadingSubscriber(running)
    conn = running.connect()
    try:
        time.sleep(0.6)  # a recorder that just started has less than the pre-roll captured
        # Calls until the stalled subscriber is cut off: its buffers and queue hold a few
        # dozen calls' events. Bounded in count and time.
        deadline = time.monotonic() + 60
        calls = 0
        while not cut_off(stalled, 0) and calls < 300 and time.monotonic() < deadline:
            expect(conn.request("CALLSTART", 1, deviceid="1001", user4="x" * 200), 20)
            expect(conn.request("CALLSTOP", 2, deviceid="1001"), 20)
            calls += 1
        assert cut_off(stalled), f"not cut off after {calls} calls"
        wait_for(lambda: good.count() >= 5 * calls)
        assert good.types() == CALL_SEQUENCE * calls
        # The subscriber that kept reading still gets everything, with the manual's data.
        expect(conn.request("CALLSTART", 3, deviceid="1002", ani="6145551212"), 20)
        time.sleep(0.5)
        expect(conn.request("BLACKOUTSTART", 4, deviceid="1002"), 20)
        time.sleep(0.3)
        expect(conn.request("BLACKOUTSTOP", 5, deviceid="1002"), 20)
        time.sleep(0.3)
        expect(conn.request("CALLSTOP", 6, deviceid="1002"), 20)
        wait_for(lambda: good.count() == 5 * calls + 7)
        last = good.events()[-7:]
        assert [e.findtext("EVENTTYPE") for e in last] == PAUSED_SEQUENCE
        row = fields(conn.request("CALLLIST", 7, deviceid="1002").find("SEARCHRESULT"))
        by_type = {e.findtext("EVENTTYPE"): fields(e.find("EVENTDATA")) for e in last}
        assert {data["DEVICEID"] for data in by_type.values()} == {"1002"}
        assert by_type["CALLSTART"]["ANI"] == "6145551212"
        assert by_type["RECORDINGSTARTED"]["FILENAME"] == row["FILENAME"]
        assert by_type["RECORDINGSTOPPED"]["RECORDID"] == row["RECORDID"]
        assert by_type["RECORDINGUPDATE"]["RECORDID"] == row["RECORDID"]
        assert {e.findtext("EVENTCLASS") for e in last[2:4]} == {"RECORD"}
    finally:
        conn.close()
        stalled.close()
        good.close()


def test_many_subscribers_at_once_each_get_a_calls_events(
        start_recorder: Any, subscribers: list[Subscriber]) -> None:
    count = 60
    # All from one address (and a request after them), more than its default share (32).
    running = start_recorder(api={"socket_port": 0, "web_port": 0,
                                  "max_clients_per_address": count + 1})
    subscribers += [Subscriber(running) for _ in range(count)]
    assert all(s.result.findtext("RESULTCODE") == "20" for s in subscribers)
    assert len({s.result.findtext("EVENTXREF") for s in subscribers}) == count
    assert result_code(running.request("CALLSTART", DEVICEID="1003", USER1="many")) == 20
    assert result_code(running.request("CALLSTOP", DEVICEID="1003")) == 20
    wanted = ["CALLSTART", "RECORDINGSTARTED", "CALLSTOP", "RECORDINGSTOPPED",
              "RECORDINGUPDATE"]
    for subscriber in subscribers:
        got = subscriber.events(len(wanted))
        assert [e.findtext("EVENTTYPE") for e in got] == wanted
        assert got[0].findtext("EVENTDATA/USER1") == "many"


# The manual's event examples, verbatim (the manual itself is not part of the repository).
MANUAL = Path(__file__).resolve().parent / "fixtures" / "manual" / "events.txt"


def test_every_events_fields_are_the_manuals_first_then_the_documented_extras() -> None:
    text = MANUAL.read_text()
    examples = re.findall(r"<EVENTTYPE>(\w+)</EVENTTYPE>.*?<EVENTDATA>(.*?)</EVENTDATA>", text,
                          re.S)
    assert {event_type for event_type, _ in examples} >= {
        "CALLSTART", "CALLSTOP", "RECORDINGSTARTED", "RECORDINGSTOPPED", "RECORDINGUPDATE"}
    documented = (Path(__file__).resolve().parents[1] / "docs" / "events.md").read_text()
    for event_type, data in examples:
        manual = tuple(re.findall(r"<([A-Z_0-9]+)>", data))
        ours = FIELDS[event_type]
        assert ours[:len(manual)] == manual, event_type
        extras = ours[len(manual):]
        assert extras == EXTRA_FIELDS.get(event_type, ()), event_type
        for name in extras:
            assert name in documented or name.startswith("USER"), name
