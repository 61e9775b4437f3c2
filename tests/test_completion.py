"""The completion worker: a closed recording's row, journal entry and events are finished by one
worker from one queue, never by the writer loop (docs/architecture.md, "The data flow")."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from recorder.calls.requests import CallStart, DeviceQuery
from recorder.capture.core import CaptureCore
from recorder.drivers.registry import create_driver
from recorder.drivers.settings import SyntheticBoardConfig
from recorder.events.types import Event
from recorder.recording.journal import Journal
from recorder.store.records import FinishedRecording, RecordingQuery, RecordingRow
from recorder.store.sqlite import SqliteStore
from tests.helpers.calls import Calls, make_calls
from tests.helpers.waiting import wait_for

BLOCK = 160


class ThreadNotingStore(SqliteStore):
    """The real SQLite store, noting which thread completes each row."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.finished_on: list[str] = []

    def finish_recording(self, ident: int, done: FinishedRecording) -> None:
        self.finished_on.append(threading.current_thread().name)
        super().finish_recording(ident, done)


class ThreadNotingJournal(Journal):
    """The real crash journal, noting which thread ends each entry."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.ended_on: list[str] = []

    def end(self, key: int) -> None:
        self.ended_on.append(threading.current_thread().name)
        super().end(key)


class ThreadNotingEvents:
    def __init__(self) -> None:
        self.published: list[tuple[str, str, Event]] = []

    def publish(self, event: Event) -> None:
        self.published.append((event.event_type, threading.current_thread().name, event))


class Rig:
    """One channel fed by hand into real writer and completion threads."""

    def __init__(self, tmp_path: Path, delay: float) -> None:
        self.driver = create_driver("boards[0]", SyntheticBoardConfig(devices=("1001",),
                                                                      channels=1))
        self.capture = CaptureCore.simple([(self.driver, ("1001",))], lookback_seconds=10)
        self.store = ThreadNotingStore(tmp_path / "recorder.sqlite3")
        self.store.open()
        self.journal = ThreadNotingJournal(tmp_path)
        self.journal.open()
        self.events = ThreadNotingEvents()
        self.calls: Calls = make_calls(self.capture, self.store, tmp_path / "rec",
                                       commit_delay_seconds=delay, journal=self.journal,
                                       events=self.events)
        self.calls.completion.start()
        self.calls.writer.start()
        self._feeding = threading.Event()
        self._feeder = threading.Thread(target=self._feed, name="feeder")
        self._feeder.start()

    def _feed(self) -> None:
        while not self._feeding.is_set():
            self.capture.boards[0].on_block(self.driver.next_block(BLOCK))
            time.sleep(BLOCK / 8000)

    def rows(self) -> list[RecordingRow]:
        return self.store.list_recordings(RecordingQuery(limit=100))

    def stopped(self) -> list[tuple[str, str, Event]]:
        return [e for e in self.events.published if e[0] == "RECORDINGSTOPPED"]

    def close(self) -> None:
        self.calls.scheduler.stop()
        for worker in (self.calls.writer, self.calls.completion):
            worker.stop()
            assert worker.join(10)
        self._feeding.set()
        self._feeder.join(10)
        self.journal.close()
        self.store.close()


@pytest.fixture
def rig(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Rig]:
    rig = Rig(tmp_path, delay=getattr(request, "param", 0.0))
    try:
        yield rig
    finally:
        rig.close()


def _call(rig: Rig, seconds: float) -> None:
    device = DeviceQuery(device_id="1001")
    rig.calls.scheduler.call_start(CallStart(device=device))
    time.sleep(seconds)
    rig.calls.scheduler.call_stop(device, None)


def test_a_callstop_is_answered_once_its_recording_is_complete(rig: Rig) -> None:
    _call(rig, 0.5)
    # No waiting: the stop returned after the worker had finished with the recording.
    (row,) = rig.rows()
    assert row.status == "complete"
    assert row.duration is not None
    assert row.duration > 0.3
    ((_, thread, event),) = rig.stopped()
    assert event.get("RECORDID") == str(row.ident)
    assert rig.store.finished_on == rig.journal.ended_on == [thread] == ["completion"]


@pytest.mark.parametrize("rig", [0.5], indirect=True)
@pytest.mark.slow
def test_after_the_commit_delay_the_writer_hands_the_file_over_and_touches_nothing_else(
        rig: Rig) -> None:
    _call(rig, 0.5)
    # Inside the delay the file is still open: the answer came before the completion.
    assert rig.rows()[0].status == "recording"
    wait_for(lambda: rig.rows()[0].status == "complete")
    wait_for(lambda: len(rig.stopped()) == 1)
    # The writer loop closed the file; the row, the journal and the events were the worker's.
    assert rig.store.finished_on == ["completion"]
    assert rig.journal.ended_on == ["completion"]
    assert [thread for kind, thread, _ in rig.events.published
            if kind in ("RECORDINGSTOPPED", "RECORDINGUPDATE")] == ["completion", "completion"]
    assert rig.journal.open_count == 0


def test_stopping_finishes_every_recording_already_handed_over(rig: Rig) -> None:
    device = DeviceQuery(device_id="1001")
    for instance in ("a", "b", "c"):
        rig.calls.scheduler.call_start(CallStart(device=device, instance=instance))
    time.sleep(0.3)
    rig.calls.scheduler.stop()  # ends the three calls: three closings
    rig.calls.completion.stop()
    assert rig.calls.completion.join(10)
    rows = rig.rows()
    assert len(rows) == 3
    assert {r.status for r in rows} == {"complete"}
    assert {r.stop_reason for r in rows} == {"shutdown"}
    assert len(rig.stopped()) == 3


def test_a_file_handed_over_after_the_worker_ended_is_still_completed(rig: Rig) -> None:
    device = DeviceQuery(device_id="1001")
    rig.calls.scheduler.call_start(CallStart(device=device))
    time.sleep(0.2)
    rig.calls.completion.stop()
    assert rig.calls.completion.join(10)
    rig.calls.scheduler.call_stop(device, None)
    # Nobody is left to queue it for: it is completed on the thread that closed it.
    (row,) = rig.rows()
    assert row.status == "complete"
    assert rig.store.finished_on == [threading.current_thread().name]
