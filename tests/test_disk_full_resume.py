"""After a full disk: recording resumes on a small volume, calls started while it was full are
recorded once there is room, and the status says a resumed call is recorded.

The recordings directory is a small tmpfs (tests/helpers/smalldisk.py); the database stays on
the ordinary disk. Without the right to mount, the fault is injected in-process only.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import soundfile

from tests.helpers.api import result_code
from tests.helpers.exports import PREROLL, tone
from tests.helpers.recorders import IN_PROCESS_AND_RECORDERD, Running
from tests.helpers.smalldisk import (
    KIB,
    RATE,
    Events,
    SmallDisk,
    check_file,
    inject,
    rows,
    small_disk,
)
from tests.helpers.waiting import wait_for

MIB = 1 << 20
TONES = {"2001": 440.0, "2002": 1000.0, "2003": 660.0, "2004": 550.0, "2005": 770.0,
         "2006": 880.0}


def _start(tmp_path: Path, disk: SmallDisk, start_recorder: Callable[..., Running],
           request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, *,
           leave: int) -> Running:
    """A recorder on six tone lines with ``leave`` bytes of the small disk free."""
    if disk.mode == "injected" and request.node.callspec.params["start_recorder"] != \
            "in-process":
        pytest.skip("without a tmpfs the fault is injected in-process only")
    lines = tmp_path / "lines"
    lines.mkdir()
    disk.fill(leave)
    running = start_recorder(
        boards=[{"driver": "file", "devices": list(TONES), "files": [
            str(tone(lines / f"{d}.wav", hz)) for d, hz in TONES.items()]}],
        retention={"min_free_mb": 0})
    if disk.mode == "injected":
        inject(running, disk, monkeypatch)
    return running


def _source(tmp_path: Path, device: str) -> Any:
    return soundfile.read(tmp_path / "lines" / f"{device}.wav", dtype="int16")[0]


def _truncated(data: Path, devices: tuple[str, ...]) -> None:
    def cut() -> bool:
        return {r["device_id"] for r in rows(data) if r["stop_reason"] == "truncated"} == \
            set(devices)
    wait_for(cut, 20.0, what=lambda: [dict(r) for r in rows(data)])


def _stop(running: Running) -> None:
    """End every call and recording before the file system goes away (a test that failed
    midway leaves them open)."""
    if running.recorder is not None:
        running.recorder.stop()
        return
    conn = running.connect()
    try:
        for device in TONES:
            conn.request("CALLSTOP", 99, DEVICEID=device)
    finally:
        conn.close()


@pytest.mark.slow
@IN_PROCESS_AND_RECORDERD
def test_six_calls_cut_on_an_8_mib_volume_resume_once_half_of_it_is_free(
        tmp_path: Path, start_recorder: Callable[..., Running], request: pytest.FixtureRequest,
        monkeypatch: pytest.MonkeyPatch, disk_path: Callable[[SmallDisk], None]) -> None:
    data = tmp_path / "data"
    devices = tuple(TONES)
    with small_disk(data / "recordings", 8 * MIB) as disk:
        disk_path(disk)
        running = _start(tmp_path, disk, start_recorder, request, monkeypatch, leave=192 * KIB)
        events = Events(running)
        conn = running.connect()
        try:
            for device in devices:
                assert result_code(conn.request("CALLSTART", 1, DEVICEID=device)) == 20
            _truncated(data, devices)
            # Two minutes of six calls' writing would be 11.5 MB, more than the volume: the
            # threshold is half the volume instead.
            status = running.status()["disk"]
            assert status["full"] is True
            assert 0 < status["resume_free_bytes"] <= 4 * MIB

            disk.free_up()  # 97% of the volume free
            wait_for(lambda: all(len(rows(data, d)) == 2 for d in devices), 6.0,
                     what=lambda: [dict(r) for r in rows(data)])
            for device in devices:
                events.until(("RECORDINGSTARTED", device, "NONE"))
            assert running.status()["disk"]["full"] is False
            time.sleep(1.0)
            for device in devices:
                assert result_code(conn.request("CALLSTOP", 2, DEVICEID=device)) == 20
            for device in devices:
                first, continued = rows(data, device)
                assert (first["stop_reason"], continued["stop_reason"]) == (
                    "truncated", "callended")
                check_file(continued, _source(tmp_path, device), TONES[device])
        finally:
            conn.close()
            events.close()
            _stop(running)


@pytest.mark.slow
@IN_PROCESS_AND_RECORDERD
def test_a_call_started_while_the_disk_is_full_is_recorded_once_there_is_room(
        tmp_path: Path, start_recorder: Callable[..., Running], request: pytest.FixtureRequest,
        monkeypatch: pytest.MonkeyPatch, disk_path: Callable[[SmallDisk], None]) -> None:
    data = tmp_path / "data"
    with small_disk(data / "recordings", 6 * MIB) as disk:
        disk_path(disk)
        running = _start(tmp_path, disk, start_recorder, request, monkeypatch, leave=48 * KIB)
        events = Events(running)
        conn = running.connect()
        try:
            time.sleep(PREROLL + 0.2)  # the lines have captured a whole pre-roll
            assert result_code(conn.request("CALLSTART", 1, DEVICEID="2001")) == 20
            _truncated(data, ("2001",))
            called = time.time()
            assert result_code(conn.request("CALLSTART", 2, DEVICEID="2003", ANI="555")) == 20
            answered = time.time()
            events.until(("RECORDINGSTARTED", "2003", "API_ERROR_OUT_OF_DISK_SPACE"))
            time.sleep(1.0)  # a second of the call with nowhere to put it
            assert rows(data, "2003") == []

            disk.free_up()
            wait_for(lambda: len(rows(data, "2003")) == 1, 6.0,
                     what=lambda: [dict(r) for r in rows(data)])
            events.until(("RECORDINGSTARTED", "2003", "NONE"))
            state = conn.request("DEVICESTATUS", 3, DEVICEID="2003")
            assert state.findtext("DEVICES/DEVICE/RECORDING/ISRECORDING") == "Y"
            assert state.findtext("DEVICES/DEVICE/RECORDING/ERRORREASON") == "NONE"
            running.wait_recorded("2003", 1.5)  # its own audio: a loaded machine captures late
            for device in ("2001", "2003"):
                assert result_code(conn.request("CALLSTOP", 4, DEVICEID=device)) == 20
            events.until(("RECORDINGSTOPPED", "2003", "NONE"))

            (late,) = rows(data, "2003")
            assert (late["status"], late["stop_reason"], late["ani"]) == (
                "complete", "callstop", "555")
            assert late["duration"] >= 1.4
            check_file(late, _source(tmp_path, "2003"), TONES["2003"])
            # The call's audio from its start (pre-roll included) to the recording's is lost
            # audio of the call, and the row counts it.
            # The call began between the request and its answer, however long a loaded
            # machine took to answer.
            missed = late["start_time"] - called + PREROLL
            assert missed > 1.0
            lost = late["lost_samples"] / RATE
            assert late["start_time"] - answered + PREROLL - 0.15 <= lost <= missed + 0.15, (
                lost, missed, answered - called)
            # The cut call's continuation counts the audio between the cut and itself too.
            first, continued = rows(data, "2001")
            gap = continued["start_time"] - (first["start_time"] - PREROLL + first["duration"])
            assert continued["lost_samples"] / RATE == pytest.approx(gap, abs=0.15)
        finally:
            conn.close()
            events.close()
            _stop(running)


@pytest.mark.slow
@IN_PROCESS_AND_RECORDERD
def test_a_call_whose_recording_resumed_is_shown_as_recording(
        tmp_path: Path, start_recorder: Callable[..., Running], request: pytest.FixtureRequest,
        monkeypatch: pytest.MonkeyPatch, disk_path: Callable[[SmallDisk], None]) -> None:
    data = tmp_path / "data"
    with small_disk(data / "recordings", 6 * MIB) as disk:
        disk_path(disk)
        running = _start(tmp_path, disk, start_recorder, request, monkeypatch, leave=48 * KIB)
        conn = running.connect()
        try:
            assert result_code(conn.request("CALLSTART", 1, DEVICEID="2001")) == 20
            _truncated(data, ("2001",))
            state = conn.request("DEVICESTATUS", 2, DEVICEID="2001")
            assert state.findtext("DEVICES/DEVICE/RECORDING/ISRECORDING") == "N"
            assert state.findtext("DEVICES/DEVICE/RECORDING/ERRORREASON") == "TRUNCATED"

            disk.free_up()
            wait_for(lambda: len(rows(data, "2001")) == 2, 6.0,
                     what=lambda: [dict(r) for r in rows(data)])
            continued = rows(data, "2001")[1]
            state = conn.request("DEVICESTATUS", 3, DEVICEID="2001")
            assert state.findtext("DEVICES/DEVICE/RECORDING/ISRECORDING") == "Y"
            assert state.findtext("DEVICES/DEVICE/RECORDING/ERRORREASON") == "NONE"
            assert state.findtext("DEVICES/DEVICE/RECORDING/FILENAME") == continued["filename"]
            instance = conn.request("DEVICERECORDINGSTATUS", 4, DEVICEID="2001").find(
                "DEVICE/RECORDING")
            assert instance is not None
            assert (instance.findtext("ISRECORDING"), instance.findtext("STATUS")) == (
                "Y", "recording")
            listed = conn.request("DEVICELIST", 5)
            (device,) = [d for d in listed.iter("DEVICE") if d.findtext("DEVICEID") == "2001"]
            assert device.findtext("RECORDING/ISRECORDING") == "Y"

            assert result_code(conn.request("CALLSTOP", 6, DEVICEID="2001")) == 20
            state = conn.request("DEVICESTATUS", 7, DEVICEID="2001")
            assert state.findtext("DEVICES/DEVICE/RECORDING/ISRECORDING") == "N"
            # Part of the call was lost to the full disk: the reason stays after it ended.
            assert state.findtext("DEVICES/DEVICE/RECORDING/ERRORREASON") == "TRUNCATED"
        finally:
            conn.close()
            _stop(running)


def _leave_free(disk: SmallDisk, target: int) -> None:
    """Make the disk hold about ``target`` free bytes by shrinking the filler (tmpfs) or
    giving back part of the budget (injected): free space comes back a little at a time."""
    if disk.mode == "tmpfs":
        assert disk.filler is not None
        size = disk.filler.stat().st_size
        os.truncate(disk.filler, max(0, size - (target - disk.free())))
    else:
        with disk.lock:
            grant = min(disk.filled, max(0, target - disk.left))
            disk.filled -= grant
            disk.left += grant


PCM_RATE = 2 * RATE  # bytes a second of an 8 kHz 16-bit mono recording (the stored format)
WATCH_ROUNDS = 3.0  # the limits watch asks the guard every second: three chances to resume


@pytest.mark.slow
@pytest.mark.parametrize("resume_seconds", [60.0, 0.0])
def test_recording_resumes_at_the_configured_threshold_not_before(
        tmp_path: Path, start_recorder: Callable[..., Running],
        monkeypatch: pytest.MonkeyPatch, disk_path: Callable[[SmallDisk], None],
        resume_seconds: float) -> None:
    """storage.disk_full_resume_seconds: one cut 8 kHz PCM call waits for that many seconds of
    its writing (60 s: 960,000 bytes) before it is recorded again; with 0, any room will do.
    Free space comes back in two steps, 500 kB (not enough for 60 s) then 1.5 MB: a guard
    that ignores the setting, or resumes at once, or never, records at the wrong step."""
    data = tmp_path / "data"
    threshold = max(1, round(resume_seconds * PCM_RATE))
    with small_disk(data / "recordings", 8 * MIB) as disk:
        disk_path(disk)
        lines = tmp_path / "lines"
        lines.mkdir()
        disk.fill(48 * KIB)
        running = start_recorder(
            boards=[{"driver": "file", "devices": ["2001"],
                     "files": [str(tone(lines / "2001.wav", TONES["2001"]))]}],
            retention={"min_free_mb": 0},
            storage={"data_dir": str(data), "disk_full_resume_seconds": resume_seconds})
        if disk.mode == "injected":
            inject(running, disk, monkeypatch)
        conn = running.connect()
        try:
            assert result_code(conn.request("CALLSTART", 1, DEVICEID="2001")) == 20
            _truncated(data, ("2001",))
            status = running.status()["disk"]
            assert (status["full"], status["resume_free_bytes"]) == (True, threshold)

            _leave_free(disk, 500_000)
            if resume_seconds:
                time.sleep(WATCH_ROUNDS)
                assert len(rows(data, "2001")) == 1, "resumed below the threshold"
                assert running.status()["disk"]["full"] is True
                _leave_free(disk, 1_500_000)
            wait_for(lambda: len(rows(data, "2001")) == 2, 6.0,
                     what=lambda: [dict(r) for r in rows(data)])
            assert running.status()["disk"]["full"] is False
            assert result_code(conn.request("CALLSTOP", 2, DEVICEID="2001")) == 20
            first, continued = rows(data, "2001")
            assert (first["stop_reason"], continued["stop_reason"]) == ("truncated", "callended")
        finally:
            conn.close()
            _stop(running)
