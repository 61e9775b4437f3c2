"""Triggers: vox and line decisions as tables, then the loop driving a real scheduler."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile

from recorder.calls.requests import DeviceQuery
from recorder.calls.triggers import TriggerLoop
from recorder.capture.core import CaptureBoard, CaptureCore
from recorder.drivers.lineevents import LineEvent, LineEventKind, StampedEvent
from recorder.drivers.registry import create_driver
from recorder.drivers.settings import FileBoardConfig
from recorder.rules.triggers import (
    Action,
    Activity,
    LineState,
    VoxParams,
    VoxState,
    combine,
    line_step,
    vox_decide,
    vox_step,
)
from recorder.store.records import RecordingQuery, RecordingRow
from recorder.store.sqlite import SqliteStore
from tests.helpers.api import result_code
from tests.helpers.calls import make_calls

RATE = 8000
W = 160
P = VoxParams(start_frames=1600, hold_frames=8000)  # 0.2 s to start, 1 s to stop


@pytest.mark.parametrize(("active", "now", "action"), [
    # idle, speech not yet long enough
    (False, Activity(10_000, False, 9_000, 0), None),
    # idle, speech long enough: start where the speech began
    (False, Activity(10_600, False, 9_000, 0), Action("start", 9_000)),
    # idle and silent: nothing
    (False, Activity(50_000, True, 9_000, 20_000), None),
    # recording, silence shorter than the hold
    (True, Activity(20_000, True, 9_000, 15_000), None),
    # recording, hold reached: stop at the end of the hold
    (True, Activity(23_000, True, 9_000, 15_000), Action("stop", 23_000)),
    # recording, still talking
    (True, Activity(90_000, False, 9_000, 0), None),
])
def test_vox_step(active: bool, now: Activity, action: Action | None) -> None:
    assert vox_step(active, now, P) == action


def test_vox_decide_takes_every_device_of_a_board_at_once() -> None:
    # The six rows of test_vox_step as one board of six devices, measured up to 23,000.
    active = np.array([False, False, False, True, True, True])
    now = VoxState(23_000, silent=np.array([False, False, True, True, True, False]),
                   speech_since=np.array([22_000, 9_000, 9_000, 9_000, 9_000, 9_000]),
                   silence_since=np.array([0, 0, 20_000, 21_000, 15_000, 0]))
    start, stop = vox_decide(active, now, np.full(6, 1600), np.full(6, 8000),
                             armed_from=np.array([0, 0, 0, 0, 0, 0]))
    assert start.tolist() == [False, True, False, False, False, False]
    assert stop.tolist() == [False, False, False, False, True, False]
    # Speech that began before the device was re-armed does not start it.
    start, _ = vox_decide(active, now, np.full(6, 1600), np.full(6, 8000),
                          armed_from=np.full(6, 10_000))
    assert not start.any()


def event(kind: LineEventKind, position: int, **data: str) -> StampedEvent:
    return StampedEvent(1, LineEvent(0, kind, data), position, 0.0)


K = LineEventKind


@pytest.mark.parametrize(("events", "actions"), [
    # An inbound call with caller ID: ANI and direction I.
    ([event(K.RING, 10), event(K.CALLER_ID, 20, NMBR="6145551212", NAME="SMITH J"),
      event(K.RING, 30), event(K.OFF_HOOK, 400), event(K.ON_HOOK, 9000)],
     [Action("start", 400, {"CALLDIRECTION": "I", "ANI": "6145551212"}),
      Action("stop", 9000)]),
    # An outbound call: off-hook without ringing; dial tone does not end it; loop drop does.
    ([event(K.OFF_HOOK, 5), event(K.DIAL_TONE, 50), event(K.BUSY, 60),
      event(K.LOOP_DROP, 700)],
     [Action("start", 5, {"CALLDIRECTION": "O"}), Action("stop", 700)]),
    # Rang but nobody answered: no recording; the next call does not inherit its caller ID.
    ([event(K.CALLER_ID, 1, NMBR="111"), event(K.ON_HOOK, 2), event(K.OFF_HOOK, 3),
      event(K.END_OF_STREAM, 4)],
     [Action("start", 3, {"CALLDIRECTION": "O"}), Action("stop", 4)]),
    # A second off-hook during a call (an extension picked up) starts nothing new.
    ([event(K.OFF_HOOK, 1), event(K.OFF_HOOK, 2), event(K.ON_HOOK, 3)],
     [Action("start", 1, {"CALLDIRECTION": "O"}), Action("stop", 3)]),
    # It rang, unanswered, and the ringing stopped; a minute later someone dials out.
    ([event(K.RING, 0), event(K.CALLER_ID, 10, NMBR="222"), event(K.OFF_HOOK, 60 * 8000)],
     [Action("start", 60 * 8000, {"CALLDIRECTION": "O"})]),
    # A blank caller number is no ANI.
    ([event(K.CALLER_ID, 1, NMBR=" "), event(K.OFF_HOOK, 2)],
     [Action("start", 2, {"CALLDIRECTION": "I"})]),
])
def test_line_step(events: list[StampedEvent], actions: list[Action]) -> None:
    state, got = LineState(), []
    for e in events:
        state, action = line_step(state, e)
        if action is not None:
            got.append(action)
    assert got == actions


@pytest.mark.parametrize(("sides", "device"), [
    # either side speaking is speech, since the earliest side that is speaking
    ([Activity(100, False, 40, 0), Activity(100, True, 0, 10)], Activity(100, False, 40, 0)),
    ([Activity(100, False, 60, 0), Activity(100, False, 20, 0)], Activity(100, False, 20, 0)),
    # both silent: silence since the later of the two fell silent
    ([Activity(100, True, 0, 30), Activity(100, True, 0, 70)], Activity(100, True, 0, 70)),
])
def test_a_two_direction_device_speaks_when_either_side_does(
        sides: list[Activity], device: Activity) -> None:
    assert combine(sides) == device


# --- the loop with a real scheduler, fed by hand -----------------------------------------------


def spurts(layout: list[tuple[str, float]], seed: int = 1) -> np.ndarray:
    """Audio of talk spurts ("talk", seconds) and pauses ("pause", seconds)."""
    rng = np.random.default_rng(seed)
    parts = []
    for kind, seconds in layout:
        n = round(seconds * RATE)
        if kind == "talk":
            t = np.arange(n) / RATE
            syllables = 0.6 + 0.4 * np.sin(2 * np.pi * 4 * t)
            parts.append(8000 * np.sin(2 * np.pi * 300 * t) * syllables)
        else:
            parts.append(rng.normal(0, 10, n))  # a quiet line, about -70 dBFS
    return np.rint(np.concatenate(parts)).astype(np.int16)


LAYOUT = [("pause", 1.0), ("talk", 1.5), ("pause", 3.0), ("talk", 0.8), ("pause", 2.5),
          ("talk", 2.0), ("pause", 2.0)]


class Rig:
    def __init__(self, tmp_path: Path, audio: np.ndarray, trigger: str) -> None:
        path = tmp_path / "line.wav"
        soundfile.write(path, audio, RATE, subtype="PCM_16")
        self.driver = create_driver("boards[0]", FileBoardConfig(
            files=(path,), devices=("5001",), loop=False))
        self.audio = audio
        self.capture = CaptureCore([CaptureBoard(self.driver, ("5001",), 10.0)],
                                   triggers=[[trigger]])
        self.store = SqliteStore(tmp_path / "db.sqlite3")
        self.store.open()
        calls = make_calls(self.capture, self.store, tmp_path / "rec", preroll_seconds=0.5)
        self.writer = calls.writer
        self.scheduler = calls.scheduler
        self.triggers = TriggerLoop(self.capture, self.scheduler,
                                    vox=[VoxParams(round(0.2 * RATE), round(1.0 * RATE))])

    def play(self, seconds: float) -> None:
        """Feed the file block by block, letting the triggers look after every block."""
        for _ in range(round(seconds * RATE / W)):
            self.capture.boards[0].audio(self.driver.next_block(W))
            self.triggers.tick()

    def rows(self) -> list[RecordingRow]:
        return sorted(self.store.list_recordings(RecordingQuery(limit=100)),
                      key=lambda r: r.ident)

    def close(self) -> None:
        self.scheduler.stop()
        self.store.close()


@pytest.fixture
def vox_rig(tmp_path: Path) -> Iterator[Rig]:
    rig = Rig(tmp_path, spurts(LAYOUT), "vox")
    yield rig
    rig.close()


def test_vox_records_each_talk_spurt_and_none_of_the_pauses(vox_rig: Rig) -> None:
    vox_rig.play(sum(s for _, s in LAYOUT))
    rows = vox_rig.rows()
    assert len(rows) == 3
    talk_starts = [1.0, 5.5, 8.8]
    talk_ends = [2.5, 6.3, 10.8]
    for row, start, end in zip(rows, talk_starts, talk_ends, strict=True):
        recorded, _ = soundfile.read(row.filename, dtype="int16")
        # From 0.5 s of pre-roll before the speech to the end of the 1 s hold, to the window.
        first = round((start - 0.5) * RATE)
        np.testing.assert_array_equal(recorded[: W * 5], vox_rig.audio[first: first + W * 5])
        assert len(recorded) / RATE == pytest.approx(end - start + 0.5 + 1.0, abs=0.03)
        assert (row.cti_initiated, row.agent_initiated) == ("N", "N")
        assert row.stop_reason == "trigger"


def test_a_vox_recording_ended_by_the_api_starts_again_on_new_speech(tmp_path: Path) -> None:
    rig = Rig(tmp_path, spurts([("talk", 1.0), ("pause", 0.2), ("talk", 1.0),
                                ("pause", 2.0), ("talk", 1.0), ("pause", 1.5)]), "vox")
    try:
        rig.play(0.6)
        rig.scheduler.call_stop(DeviceQuery(device_id="5001"), None)
        rig.play(6.1)
        rows = rig.rows()
        # The API's stop ends the first. The speech it was stopped in does not restart it;
        # the speech after the 0.2 s pause does (from 1.2 s, with 0.5 s of pre-roll, to the
        # end of the hold after the 2 s pause), and the last spurt is a third.
        assert [r.stop_reason for r in rows] == ["callstop", "trigger", "trigger"]
        assert soundfile.info(rows[1].filename).duration == pytest.approx(3.2 - 0.7, abs=0.03)
    finally:
        rig.close()


def test_always_records_from_the_start_and_restarts_after_a_stop(tmp_path: Path) -> None:
    rig = Rig(tmp_path, spurts([("talk", 3.0)]), "always")
    try:
        rig.play(1.0)
        rig.scheduler.call_stop(DeviceQuery(device_id="5001"), None)
        rig.play(1.0)
        rig.scheduler.stop()
        rows = rig.rows()
        assert len(rows) == 2
        durations = [soundfile.info(r.filename).duration for r in rows]
        assert durations[0] == pytest.approx(1.0, abs=0.03)
        assert durations[1] == pytest.approx(1.5, abs=0.03)  # with its pre-roll
    finally:
        rig.close()


# --- the whole recorder, in real time ---------------------------------------------------------


# Played in real time: short spurts and pauses, a short pre-roll and hold, so the line is done
# in 7.5 s.
RUNNING_LAYOUT = [("pause", 0.5), ("talk", 1.0), ("pause", 1.5), ("talk", 0.6), ("pause", 1.5),
                  ("talk", 1.2), ("pause", 1.2)]


@pytest.mark.slow
def test_a_vox_channel_of_a_running_recorder_records_only_the_talk_spurts(
        tmp_path: Path, start_recorder: Any) -> None:
    soundfile.write(tmp_path / "spurts.wav", spurts(RUNNING_LAYOUT), RATE, subtype="PCM_16")
    running = start_recorder(
        capture={"preroll_seconds": 0.2},
        boards=[{"driver": "file", "files": ["spurts.wav"], "devices": ["6001"],
                 "loop": False, "trigger": "vox", "vox_start_seconds": 0.2,
                 "vox_hold_seconds": 0.5}])
    deadline = time.monotonic() + 30
    results: list[Any] = []
    while time.monotonic() < deadline:
        listing = running.request("CALLLIST", 1, deviceid="6001")
        assert result_code(listing) == 20
        results = listing.findall("SEARCHRESULT")
        if len(results) == 3 and all(r.findtext("DURATION") != "" for r in results):
            states = running.request("CHANNELS", 2)
            if states.findtext("CHANNELS/CHANNEL/STATE") == "Idle":
                break
        time.sleep(0.2)
    assert len(results) == 3
    durations = sorted(soundfile.info(r.findtext("FILENAME")).duration for r in results)
    # Talk spurts of 0.6, 1 and 1.2 s, each with 0.2 s pre-roll and 0.5 s hold; the 1.5 s
    # pauses between them are not recorded.
    for got, talk in zip(durations, [0.6, 1.0, 1.2], strict=True):
        assert got == pytest.approx(talk + 0.2 + 0.5, abs=0.15)


def test_vox_on_a_two_direction_device_hears_either_side(tmp_path: Path) -> None:
    quiet = spurts([("pause", 6.0)], seed=2)
    talk = spurts([("pause", 1.0), ("talk", 1.5), ("pause", 3.5)])
    paths = []
    for name, audio in (("a", quiet), ("b", talk)):
        paths.append(tmp_path / f"{name}.wav")
        soundfile.write(paths[-1], audio, RATE, subtype="PCM_16")
    driver = create_driver("boards[0]", FileBoardConfig(files=tuple(paths),
                                                        devices=("5001", "5001"), loop=False))
    capture = CaptureCore([CaptureBoard(driver, ("5001", "5001"), 10.0)],
                          triggers=[["vox", "vox"]])
    store = SqliteStore(tmp_path / "db.sqlite3")
    store.open()
    scheduler = make_calls(capture, store, tmp_path / "rec", preroll_seconds=0.5).scheduler
    loop = TriggerLoop(capture, scheduler, vox=[VoxParams(1600, 8000)] * 2)
    try:
        for _ in range(round(6.0 * RATE / W)):
            capture.boards[0].audio(driver.next_block(W))
            loop.tick()
        (row,) = store.list_recordings(RecordingQuery(limit=10))
        data, _ = soundfile.read(row.filename, dtype="int16")
        assert data.shape[1] == 2  # one party per side
        np.testing.assert_array_equal(data[:, 1], talk[4000: 4000 + len(data)])
        np.testing.assert_array_equal(data[:, 0], quiet[4000: 4000 + len(data)])
        assert len(data) / RATE == pytest.approx(0.5 + 1.5 + 1.0, abs=0.03)
    finally:
        scheduler.stop()
        store.close()
