"""Call control answered on the socket API's event loop where it waits for nothing (issue 19):
a CALLSTART that is not recorded and a CALLSTOP with no recording to end are answered there;
one that records, ends a recording or must read the directory goes to a call-control worker
having changed nothing, and is carried out there as before (a real recorder, real sockets)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from recorder.calls.requests import CallStart, DeviceQuery, WouldBlock
from recorder.calls.scheduler import Scheduler
from tests.helpers.api import add_user, expect
from tests.helpers.recorders import Running, start_in_process

NOT_RECORDED = {"schedules": [{"name": "nothing", "record": False}]}


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Running]]:
    started: list[Running] = []

    def run(**sections: Any) -> Running:
        running = start_in_process(tmp_path / str(len(started)), **sections)
        started.append(running)
        return running

    yield run
    for running in started:
        assert running.recorder is not None
        running.recorder.stop()


class Threads:
    """Which thread each call_start and call_stop of the scheduler ran on, and whether it was
    the event loop's try (``inline``) that carried it out or gave it up (WouldBlock)."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.seen: list[tuple[str, str, str]] = []  # (method, thread name, outcome)
        for name in ("call_start", "call_stop"):
            setattr(scheduler, name, self._probe(name, getattr(scheduler, name)))

    def _probe(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def probed(*args: Any, **kwargs: Any) -> Any:
            thread = threading.current_thread().name
            try:
                found = method(*args, **kwargs)
            except WouldBlock:
                self.seen.append((name, thread, "would block"))
                raise
            except Exception:
                self.seen.append((name, thread, "refused"))
                raise
            self.seen.append((name, thread, "done"))
            return found
        return probed


def scheduler_of(running: Running) -> Scheduler:
    assert running.recorder is not None
    assert running.recorder.scheduler is not None
    return running.recorder.scheduler


def test_a_call_not_recorded_is_answered_on_the_event_loop(
        start: Callable[..., Running]) -> None:
    running = start(recording=NOT_RECORDED)
    threads = Threads(scheduler_of(running))
    conn = running.connect()
    # The device's first call reads its agent from the directory, on a worker; after that
    # the agent is in memory.
    expect(conn.request("CALLSTART", 1, deviceid="1001"), 20)
    expect(conn.request("CALLSTOP", 1, deviceid="1001"), 20)
    assert [outcome for _, _, outcome in threads.seen] == ["would block", "done", "done"]
    threads.seen.clear()
    answer = expect(conn.request("CALLSTART", 1, deviceid="1001", ani="6145550001"), 20)
    assert "not recorded" in (answer.findtext("RESULTMSG") or "")
    status = expect(conn.request("DEVICERECORDINGSTATUS", 2, deviceid="1001"), 20)
    assert status.findtext(".//RECORDING/ANI") == "6145550001"
    expect(conn.request("CALLSTOP", 3, deviceid="1001"), 20)
    # The call is over: a second CALLSTOP finds none, answered from the loop too.
    expect(conn.request("CALLSTOP", 4, deviceid="1001"), 7)
    conn.close()
    assert threads.seen == [("call_start", "api-loop", "done"),
                            ("call_stop", "api-loop", "done"),
                            ("call_stop", "api-loop", "refused")]
    assert not list((running.data_dir / "recordings").rglob("*.wav"))


def test_a_recorded_call_goes_to_a_worker_having_changed_nothing(
        start: Callable[..., Running]) -> None:
    running = start()
    scheduler = scheduler_of(running)
    threads = Threads(scheduler)
    conn = running.connect()
    expect(conn.request("CALLSTART", 1, deviceid="1002"), 20)
    first = list(threads.seen)
    assert first[0] == ("call_start", "api-loop", "would block")
    assert first[1][0::2] == ("call_start", "done")
    assert first[1][1].startswith("api-call")
    expect(conn.request("CALLSTOP", 2, deviceid="1002"), 20)
    assert threads.seen[2] == ("call_stop", "api-loop", "would block")
    assert threads.seen[3][0::2] == ("call_stop", "done")
    assert threads.seen[3][1].startswith("api-call")
    conn.close()
    files = list((running.data_dir / "recordings").rglob("*.wav"))
    assert len(files) == 1
    listed = expect(running.request("CALLLIST", 3, deviceid="1002"), 20)
    results = listed.findall(".//SEARCHRESULT")
    assert len(results) == 1  # one row: the loop's try wrote none


def test_the_loops_try_leaves_no_trace(start: Callable[..., Running]) -> None:
    running = start()
    scheduler = scheduler_of(running)
    before = scheduler.table.peek_global_id()
    with pytest.raises(WouldBlock):
        scheduler.call_start(CallStart(device=DeviceQuery(device_id="1003")), inline=True)
    # No call on the device, no GLOBALCALLID used up, nothing counted.
    assert scheduler.table.peek_global_id() == before
    assert not scheduler.table.open_calls(["1003"])
    call = scheduler.call_start(CallStart(device=DeviceQuery(device_id="1003")))
    assert call.global_id == before
    assert call.main is not None
    with pytest.raises(WouldBlock):  # it has a recording to end
        scheduler.call_stop(DeviceQuery(device_id="1003"), None, inline=True)
    assert scheduler.table.open_calls(["1003"]) == [call]
    assert call.main.active
    scheduler.call_stop(DeviceQuery(device_id="1003"), None)
    assert not scheduler.table.open_calls(["1003"])


def test_a_call_whose_agent_must_be_read_goes_to_a_worker(
        start: Callable[..., Running]) -> None:
    running = start(recording=NOT_RECORDED)
    scheduler = scheduler_of(running)
    conn = running.connect()
    ana = add_user(conn, "Ana", "Lima", username="alima", phones="1004")
    threads = Threads(scheduler)
    # The directory changed: the agent of 1004 is read on a worker, then kept in memory.
    expect(conn.request("CALLSTART", 5, deviceid="1004"), 20)
    expect(conn.request("CALLSTOP", 6, deviceid="1004"), 20)
    expect(conn.request("CALLSTART", 7, deviceid="1004"), 20)
    assert [c.agent_id for c in scheduler.table.snapshot()] == [str(ana)]
    expect(conn.request("CALLSTOP", 9, deviceid="1004"), 20)
    conn.close()
    starts = [(thread.startswith("api-call"), outcome)
              for method, thread, outcome in threads.seen if method == "call_start"]
    assert starts == [(False, "would block"), (True, "done"), (False, "done")]
