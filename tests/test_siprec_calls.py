"""SIPREC sessions as the scheduler's calls (recorder/calls/sessions.py), driven by hand: a
capture core with a board of channels bound to calls as they come, fed block by block, and
session line events stamped as the siprec driver sends them. No sockets, no threads: the
calls layer's rules alone (bind, record from the event's sample without pre-roll, the two
parties in one stereo file, pause as a blackout, the CTI attaching, the end at its sample)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import soundfile

from recorder.calls.requests import CallStart, CallUpdate, DeviceQuery
from recorder.calls.sessions import SessionCalls
from recorder.capture.core import CaptureBoard, CaptureCore
from recorder.config.recording import RecordingConfig, ScheduleConfig
from recorder.drivers.lineevents import LineEvent, LineEventKind, StampedEvent
from recorder.drivers.registry import create_driver
from recorder.drivers.settings import SyntheticBoardConfig
from recorder.events.types import CollectedEvents
from recorder.rules.decision import Policy
from recorder.store.records import RecordingQuery, RecordingRow
from recorder.store.sqlite import SqliteStore
from tests.helpers.calls import make_calls

BLOCK = 160


class Board:
    """Four channels (two sessions' slots) fed by hand, and the calls layer above them."""

    def __init__(self, tmp_path: Path, preroll: float = 0.5, **scheduler: object) -> None:
        driver = create_driver("boards[0]", SyntheticBoardConfig(devices=("a",) * 4,
                                                                 channels=4))
        self.board = CaptureBoard(driver, ("",) * 4, 10.0)
        self.capture = CaptureCore([self.board])
        self.store = SqliteStore(tmp_path / "recorder.sqlite3")
        self.store.open()
        self.events = CollectedEvents()
        self.now = 1_700_000_000.0
        self.calls = make_calls(self.capture, self.store, tmp_path / "recordings",
                                preroll_seconds=preroll, events=self.events,
                                clock=lambda: self.now, **scheduler)  # type: ignore[arg-type]
        self.scheduler = self.calls.scheduler
        self.sessions = SessionCalls(self.capture, self.scheduler)
        self.fed = 0

    def feed(self, blocks: int, left: int = 1000, right: int = -2000) -> None:
        for _ in range(blocks):
            block = np.zeros((BLOCK, 4), np.int16)
            block[:, 0], block[:, 1] = left, right
            self.board.audio(block)
            self.fed += BLOCK
            self.now += BLOCK / 8000

    def event(self, kind: LineEventKind, session: str = "1", **data: str) -> None:
        fields = {"SESSION": session, "CHANNEL2": "1", "DEVICEID": "1001", "ANI": "1001",
                  "DNIS": "5550", "CALLDIRECTION": "O", "CALLID": f"call-{session}@src",
                  "GLOBALCALLID": "hVpd7YQgRW2nD22h7q60JQ==", **data}
        self.sessions.handle(StampedEvent(1, LineEvent(0, kind, fields), self.board.ring.write_pos,
                                          time.time()))

    def rows(self) -> list[RecordingRow]:
        return self.store.list_recordings(RecordingQuery(limit=100))


def test_a_session_is_one_stereo_recording_of_its_two_parties_from_its_sample(
        tmp_path: Path) -> None:
    b = Board(tmp_path)
    b.feed(50)  # another call on the slot before: pre-roll must not reach back into it
    start = b.board.ring.write_pos
    b.event(LineEventKind.SESSION_START)
    assert [c.device_id for c in b.capture.channels] == ["1001", "1001", "", ""]
    b.feed(25, left=3000, right=-3000)
    b.event(LineEventKind.SESSION_END)
    b.feed(5)
    (row,) = b.rows()
    assert (row.device_id, row.status, row.global_id) == ("1001", "complete",
                                                          "hVpd7YQgRW2nD22h7q60JQ==")
    assert (row.meta["ANI"], row.meta["DNIS"], row.meta["CALLDIRECTION"]) == ("1001", "5550",
                                                                              "O")
    assert row.call_instance == "call-1@src"
    audio, _ = soundfile.read(row.filename, dtype="int16")
    assert audio.shape == (25 * BLOCK, 2)
    assert (audio[:, 0] == 3000).all()  # the device's party on the left, from its sample
    assert (audio[:, 1] == -3000).all()
    assert b.board.ring.write_pos - 5 * BLOCK - start == 25 * BLOCK
    assert [c.device_id for c in b.capture.channels] == [""] * 4
    assert b.events.types("1001")[:2] == ["CALLSTART", "RECORDINGSTARTED"]
    assert "CALLSTOP" in b.events.types("1001")


def test_mono_mixes_the_parties(tmp_path: Path) -> None:
    b = Board(tmp_path, stereo=False)
    b.event(LineEventKind.SESSION_START)
    b.feed(10, left=1000, right=500)
    b.event(LineEventKind.SESSION_END)
    (row,) = b.rows()
    audio, _ = soundfile.read(row.filename, dtype="int16")
    assert audio.ndim == 1
    assert (audio == 1500).all()


def test_the_ctis_calls_attach_to_the_session(tmp_path: Path) -> None:
    b = Board(tmp_path)
    b.event(LineEventKind.SESSION_START)
    b.feed(5)
    cti = b.scheduler.call_start(CallStart(device=DeviceQuery(device_id="1001"),
                                           instance="cti-7", meta={"USER1": "gold"}))
    assert cti.siprec == "1"  # the session's call, not a second one
    b.scheduler.updates.call(DeviceQuery(device_id="1001"), "cti-7",
                             CallUpdate(meta={"USER2": "silver"}), if_not_recording=False)
    stopped = b.scheduler.call_stop(DeviceQuery(device_id="1001"), "cti-7")
    assert stopped.stop_time is None  # its BYE ends it, not the CTI
    b.feed(5)
    b.event(LineEventKind.SESSION_END)
    (row,) = b.rows()
    assert (row.meta["USER1"], row.meta["USER2"], row.meta["ANI"]) == ("gold", "silver",
                                                                       "1001")
    assert b.events.types("1001").count("CALLSTART") == 1
    assert b.events.types("1001").count("RECORDINGUPDATE") >= 2


def test_a_cti_call_that_began_before_its_session_is_the_sessions_call(
        tmp_path: Path) -> None:
    b = Board(tmp_path)
    cti = b.scheduler.call_start(CallStart(
        device=DeviceQuery(device_id="1001"), instance="cti-7", global_id="ucid-0042",
        meta={"USER1": "gold", "ANI": "5551234"}))
    assert cti.main is None  # no channel taps 1001 yet: tracked, not recorded
    b.feed(5)
    b.event(LineEventKind.SESSION_START)
    b.feed(25, left=3000, right=-3000)
    assert b.scheduler.call_stop(DeviceQuery(device_id="1001"), "cti-7").stop_time is None
    b.feed(5, left=3000, right=-3000)  # the CTI's CALLSTOP ends nothing: the BYE does
    b.event(LineEventKind.SESSION_END)
    b.feed(5)
    (row,) = b.rows()  # one row, the CTI call's
    assert (row.call_instance, row.global_id, row.status) == ("cti-7", "ucid-0042",
                                                              "complete")
    # The CTI's fields are kept; the session's fill in what the CTI did not send.
    assert (row.meta["USER1"], row.meta["ANI"], row.meta["DNIS"]) == ("gold", "5551234",
                                                                      "5550")
    audio, _ = soundfile.read(row.filename, dtype="int16")
    assert audio.shape == (30 * BLOCK, 2)  # from the session's start, not the CTI's
    assert (audio[:, 0] == 3000).all()
    assert (audio[:, 1] == -3000).all()
    types = b.events.types("1001")
    assert (types.count("CALLSTART"), types.count("CALLSTOP")) == (1, 1)
    assert types.index("CALLSTART") < types.index("CALLSTOP")
    started = [e for e in b.events.events if e.event_type == "RECORDINGSTARTED"]
    assert {e.get("CALLINSTANCE") for e in started} == {"cti-7"}
    (recorded,) = [e.get("FILENAME") for e in started if e.get("FILENAME")]
    assert Path(row.filename).name == Path(recorded).name
    assert [c.device_id for c in b.capture.channels] == [""] * 4


def test_a_cti_call_stopped_before_the_session_starts_is_not_adopted(tmp_path: Path) -> None:
    b = Board(tmp_path)
    b.scheduler.call_start(CallStart(device=DeviceQuery(device_id="1001"), instance="cti-7"))
    b.scheduler.call_stop(DeviceQuery(device_id="1001"), "cti-7")
    b.event(LineEventKind.SESSION_START)
    b.feed(5)
    b.event(LineEventKind.SESSION_END)
    (row,) = b.rows()
    assert row.call_instance == "call-1@src"


def test_a_pause_is_a_blackout_from_its_sample_to_the_resume(tmp_path: Path) -> None:
    b = Board(tmp_path)
    b.event(LineEventKind.SESSION_START)
    b.feed(10)
    b.event(LineEventKind.SESSION_PAUSE)
    b.feed(10)
    b.event(LineEventKind.SESSION_RESUME)
    b.feed(10)
    b.event(LineEventKind.SESSION_END)
    (row,) = b.rows()
    audio, _ = soundfile.read(row.filename, dtype="int16")
    left = audio[:, 0]
    assert (left[:10 * BLOCK] == 1000).all()
    assert (left[10 * BLOCK:20 * BLOCK] == 0).all()
    assert (left[20 * BLOCK:] == 1000).all()
    types = b.events.types("1001")
    assert types.index("RECORDINGPAUSED") < types.index("RECORDINGRESUMED")


def test_an_update_changes_the_row(tmp_path: Path) -> None:
    b = Board(tmp_path)
    b.event(LineEventKind.SESSION_START)
    b.feed(3)
    b.event(LineEventKind.SESSION_UPDATE, DNIS="5559")
    b.feed(3)
    b.event(LineEventKind.SESSION_END)
    (row,) = b.rows()
    assert row.meta["DNIS"] == "5559"


def test_two_sessions_of_one_device_are_two_calls(tmp_path: Path) -> None:
    b = Board(tmp_path)
    b.event(LineEventKind.SESSION_START, session="1")
    b.feed(3)
    b.sessions.handle(StampedEvent(3, LineEvent(2, LineEventKind.SESSION_START, {
        "SESSION": "2", "CHANNEL2": "3", "DEVICEID": "1001", "CALLID": "call-2@src"}),
        b.board.ring.write_pos, time.time()))
    b.feed(3)
    b.event(LineEventKind.SESSION_END, session="1")
    b.sessions.handle(StampedEvent(3, LineEvent(2, LineEventKind.SESSION_END, {
        "SESSION": "2", "CHANNEL2": "3", "DEVICEID": "1001"}), b.board.ring.write_pos,
        time.time()))
    assert sorted(r.call_instance for r in b.rows()) == ["call-1@src", "call-2@src"]
    assert {r.channel for r in b.rows()} == {1, 3}


def test_a_session_the_schedules_refuse_is_tracked_not_recorded(tmp_path: Path) -> None:
    policy = Policy.from_config(RecordingConfig(schedules=(
        ScheduleConfig(name="no", devices=("10*",), record=False),)), 4)
    b = Board(tmp_path, policy=policy)
    b.event(LineEventKind.SESSION_START)
    b.feed(3)
    b.event(LineEventKind.SESSION_END)
    assert b.rows() == []
    assert b.events.types("1001")[:2] == ["CALLSTART", "RECORDINGSTARTED"]
    assert [c.device_id for c in b.capture.channels] == [""] * 4

