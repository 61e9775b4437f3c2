"""The call model end to end over the socket API, against an in-process recorder:
MAXRECORDTIME, MAXRECORDSILENCE, preemption, blocked filters, blackouts, DEVICERECORDINGSTATUS,
DEVICELIST and RECORDSTART/RECORDSTOP, checked in the files and the answers; and a real
recorderd reloading its recording policy on SIGHUP."""

from __future__ import annotations

import errno
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pytest
import soundfile
from lxml import etree

from recorder.config.loader import config_from_dict
from recorder.config.printing import to_toml
from recorder.recording import files
from tests.helpers.api import result_code
from tests.helpers.recorders import RecorderProcess, Running, base_config, write_toml
from tests.helpers.waiting import wait_for

RATE = 8000
PREROLL = 0.5
TONE_DEVICES = ["2001", "2002", "2003"]
SILENT_DEVICE = "2004"


def write_files(tmp_path: Path) -> tuple[Path, Path]:
    t = np.arange(20 * RATE) / RATE
    tone = (12000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    soundfile.write(tmp_path / "tone.wav", tone, RATE, subtype="PCM_16")
    soundfile.write(tmp_path / "silence.wav", np.zeros(RATE * 5, np.int16), RATE,
                    subtype="PCM_16")
    return tmp_path / "tone.wav", tmp_path / "silence.wav"


@pytest.fixture
def recorder(start_recorder: Callable[..., Running], tmp_path: Path,
             ) -> Callable[..., Running]:
    tone, silence = write_files(tmp_path)

    def start(**recording: Any) -> Running:
        return start_recorder(
            boards=[
                {"driver": "file", "files": [str(tone)] * 3, "devices": TONE_DEVICES},
                {"driver": "file", "files": [str(silence)], "devices": [SILENT_DEVICE]},
            ],
            capture={"preroll_seconds": PREROLL},
            recording=recording,
        )
    return start


def ok(result: etree._Element) -> etree._Element:
    assert result_code(result) == 20, etree.tostring(result)
    return result


def device(running: Running, device_id: str) -> etree._Element:
    result = ok(running.request("DEVICESTATUS", DEVICEID=device_id))
    found = result.find("DEVICES/DEVICE")
    assert found is not None
    return found


@pytest.mark.slow
def test_maxrecordtime_gives_a_file_of_that_length(recorder: Callable[..., Running]) -> None:
    running = recorder()
    ok(running.request("CALLSTART", DEVICEID="2001", MAXRECORDTIME=2))
    wait_for(lambda: device(running, "2001").findtext("RECORDING/ISRECORDING") == "N")
    found = device(running, "2001")
    assert found.findtext("RECORDING/ERRORREASON") == "MAXRECORDTIME"
    assert soundfile.info(found.findtext("RECORDING/FILENAME")).duration == pytest.approx(2.0)
    ok(running.request("CALLSTOP", DEVICEID="2001"))


@pytest.mark.slow
def test_maxrecordsilence_ends_a_recording_on_a_silent_line(
        recorder: Callable[..., Running]) -> None:
    running = recorder()
    ok(running.request("CALLSTART", DEVICEID=SILENT_DEVICE, MAXRECORDSILENCE=1))
    wait_for(lambda: device(running, SILENT_DEVICE).findtext("RECORDING/ISRECORDING") == "N")
    found = device(running, SILENT_DEVICE)
    assert found.findtext("RECORDING/ERRORREASON") == "MAXRECORDSILENCE"
    duration = soundfile.info(found.findtext("RECORDING/FILENAME")).duration
    # Not before a second of silence; after it as soon as the silence check runs, which a
    # loaded machine may run late (a limit read as 2 s still fails).
    assert 1.0 - 0.05 <= duration <= 1.0 + 0.75, duration


def test_a_priority_90_call_preempts_a_priority_10_one_at_the_limit(
        recorder: Callable[..., Running]) -> None:
    running = recorder(max_concurrent=2)
    ok(running.request("CALLSTART", DEVICEID="2001", PRIORITY=10))
    ok(running.request("CALLSTART", DEVICEID="2002", PRIORITY=50))
    ok(running.request("CALLSTART", DEVICEID="2003", PRIORITY=90))
    states = {d: device(running, d).find("RECORDING") for d in TONE_DEVICES}
    assert {d: (s.findtext("ISRECORDING"), s.findtext("ERRORREASON"))  # type: ignore[union-attr]
            for d, s in states.items()} == {
        "2001": ("N", "PREEMPTED"), "2002": ("Y", "NONE"), "2003": ("Y", "NONE")}
    # A fourth call of lower priority than all of them is not recorded.
    ok(running.request("CALLSTART", DEVICEID=SILENT_DEVICE, PRIORITY=5))
    assert device(running, SILENT_DEVICE).findtext("RECORDING/ERRORREASON") == \
        "API_ERROR_NO_FREE_CHANNELS"


def test_a_blocked_ani_is_not_recorded(recorder: Callable[..., Running]) -> None:
    running = recorder(blocked=[{"name": "legal", "ani": ["6145551212"]}])
    blocked = ok(running.request("CALLSTART", DEVICEID="2001", ANI="6145551212"))
    recorded = ok(running.request("CALLSTART", DEVICEID="2002", ANI="6145550000"))
    # The answer says why a call is not recorded, after the manual's text; a recorded call's
    # answer is the manual's text alone.
    assert blocked.findtext("RESULTMSG") == ("CALLSTART sent to all of the following cores: 1; "
                                             "not recorded: API_ERROR_BLOCKED_RECORDING_FILTER")
    assert recorded.findtext("RESULTMSG") == "CALLSTART sent to all of the following cores: 1"
    assert device(running, "2001").findtext("RECORDING/ISRECORDING") == "N"
    assert device(running, "2001").findtext("RECORDING/ERRORREASON") == \
        "API_ERROR_BLOCKED_RECORDING_FILTER"
    assert device(running, "2002").findtext("RECORDING/ISRECORDING") == "Y"
    ok(running.request("CALLSTOP", DEVICEID="2001"))
    ok(running.request("CALLSTOP", DEVICEID="2002"))
    rows = ok(running.request("CALLLIST")).findall("SEARCHRESULT")
    assert [r.findtext("DEVICEID") for r in rows] == ["2002"]


def longest_zero_run(samples: np.ndarray) -> tuple[int, int]:
    """(start, length) of the longest run of digital zeros."""
    zero = np.concatenate([[False], samples == 0, [False]])
    edges = np.flatnonzero(np.diff(zero.astype(np.int8)))
    starts, ends = edges[::2], edges[1::2]
    longest = int(np.argmax(ends - starts))
    return int(starts[longest]), int(ends[longest] - starts[longest])


@pytest.mark.slow
def test_a_blackout_with_timeoffset_minus_2_silences_that_range_of_the_file(
        recorder: Callable[..., Running]) -> None:
    running = recorder()
    time.sleep(PREROLL + 0.3)  # so the file has its whole pre-roll
    ok(running.request("CALLSTART", DEVICEID="2001"))
    # Where each request fell in the call is read off the call's own audio (its seconds so
    # far, by /status) just before and just after it: a loaded machine may take its time over
    # a request, but the range must lie between those readings.
    running.wait_recorded("2001", PREROLL + 3.0)
    before_start = running.seconds_recorded("2001")
    ok(running.request("BLACKOUTSTART", DEVICEID="2001", TIMEOFFSET=-2))
    after_start = running.seconds_recorded("2001")
    assert device(running, "2001").findtext("RECORDING/ISRECORDING") == "Y"
    running.wait_recorded("2001", after_start + 1.0)
    before_stop = running.seconds_recorded("2001")
    ok(running.request("BLACKOUTSTOP", DEVICEID="2001"))
    after_stop = running.seconds_recorded("2001")
    running.wait_recorded("2001", after_stop + 1.0)
    ok(running.request("CALLSTOP", DEVICEID="2001"))
    path = device(running, "2001").findtext("RECORDING/FILENAME")
    samples, _ = soundfile.read(path, dtype="int16")
    start, length = longest_zero_run(samples)
    # The range starts 2 s before the BLACKOUTSTART arrived and ends when the STOP did (a
    # capture block either way).
    slack = 0.05
    assert before_start - 2.0 - slack <= start / RATE <= after_start - 2.0 + slack, (
        start / RATE, before_start, after_start)
    assert before_stop - slack <= (start + length) / RATE <= after_stop + slack, (
        (start + length) / RATE, before_stop, after_stop)
    before, after = samples[:start], samples[start + length:]
    assert longest_zero_run(before)[1] < 5
    assert longest_zero_run(after)[1] < 5
    assert len(after) / RATE == pytest.approx(1.0, abs=0.2)


def test_devicerecordingstatus_shows_two_instances_one_paused(
        recorder: Callable[..., Running]) -> None:
    running = recorder()
    ok(running.request("CALLSTART", DEVICEID="2001", CALLINSTANCE="37", ANI="7460",
                       SYS_USER="jane.doe"))
    ok(running.request("CALLSTART", DEVICEID="2001", CALLINSTANCE="38", ANI="7008"))
    ok(running.request("BLACKOUTSTART", DEVICEID="2001", CALLINSTANCE="37"))
    result = ok(running.request("DEVICERECORDINGSTATUS", SYS_USER="jane.doe"))
    assert result.findtext("RESULTMSG").startswith("Following active call instances found")
    [found] = result.findall("DEVICE")
    assert found.findtext("DEVICEID") == "2001"
    assert found.findtext("COREIDENT") == "1"
    instances = {r.findtext("CALLINSTANCE"): (r.findtext("ANI"), r.findtext("ISRECORDING"),
                                              r.findtext("STATUS"))
                 for r in found.findall("RECORDING")}
    assert instances == {"37": ("7460", "Y", "recordpaused"), "38": ("7008", "Y", "recording")}
    ok(running.request("BLACKOUTSTOP", DEVICEID="2001", CALLINSTANCE="37"))
    # A second BLACKOUTSTOP has no blackout to stop.
    assert result_code(running.request("BLACKOUTSTOP", DEVICEID="2001",
                                       CALLINSTANCE="37")) == 38


def test_devicelist_lists_every_device_once(recorder: Callable[..., Running]) -> None:
    running = recorder()
    ok(running.request("CALLSTART", DEVICEID="2002", DEVICEALIAS="DESK2", CALLINSTANCE="1"))
    ok(running.request("CALLSTART", DEVICEID="2002", DEVICEALIAS="DESK2", CALLINSTANCE="2"))
    result = ok(running.request("DEVICELIST"))
    devices = result.findall("DEVICES/DEVICE")
    assert result.findtext("DEVICES/COUNT") == str(len(devices)) == "4"
    by_id = {d.findtext("DEVICEID"): d for d in devices}
    assert sorted(by_id) == [*TONE_DEVICES, SILENT_DEVICE]
    assert by_id["2002"].findtext("DEVICEALIAS") == "DESK2"
    assert by_id["2002"].findtext("RECORDING/CALLINSTANCE") == "2"


@pytest.mark.slow
def test_recordstart_and_recordstop_make_a_partial_recording(
        recorder: Callable[..., Running]) -> None:
    running = recorder()
    assert result_code(running.request("RECORDSTART", DEVICEID="2003")) == 7  # no call
    ok(running.request("CALLSTART", DEVICEID="2003", USER1="main"))
    time.sleep(0.5)
    # The partial recording runs from RECORDSTART's arrival to RECORDSTOP's: between the
    # moments the two were sent and answered, however busy the machine.
    sent_start = time.monotonic()
    answer = ok(running.request("RECORDSTART", DEVICEID="2003", USER1="Gold Level"))
    started = time.monotonic()
    assert answer.findtext("RESULTMSG") == "RECORDSTART sent to all of the following cores: 1"
    time.sleep(1.0)
    sent_stop = time.monotonic()
    answer = ok(running.request("RECORDSTOP", DEVICEID="2003"))
    stopped = time.monotonic()
    assert answer.findtext("RESULTMSG") == "RECORDSTOP sent to all of the following cores: 1"
    assert result_code(running.request("RECORDSTOP", DEVICEID="2003")) == 12
    ok(running.request("CALLSTOP", DEVICEID="2003"))
    rows = ok(running.request("CALLLIST")).findall("SEARCHRESULT")
    by_user1 = {r.findtext("USER1"): r for r in rows}
    assert sorted(by_user1) == ["Gold Level", "main"]
    partial = soundfile.info(by_user1["Gold Level"].findtext("FILENAME")).duration
    whole = soundfile.info(by_user1["main"].findtext("FILENAME")).duration
    assert sent_stop - started - 0.05 <= partial <= stopped - sent_start + 0.05
    assert whole > partial + 0.5


def test_sighup_reloads_the_recording_policy_without_dropping_a_call(
        tmp_path: Path, processes: list[RecorderProcess]) -> None:
    tone, _ = write_files(tmp_path)
    doc = base_config(tmp_path, boards=[
        {"driver": "file", "files": [str(tone)] * 3, "devices": TONE_DEVICES}])
    path = write_toml(tmp_path / "recorder.toml", to_toml(config_from_dict(doc)))
    proc = RecorderProcess(["--config", str(path)])
    processes.append(proc)
    running = proc.wait_ready()
    ok(running.request("CALLSTART", DEVICEID="2001", ANI="555"))
    doc["recording"] = {"blocked": [{"name": "x", "ani": ["555"]}]}
    write_toml(path, to_toml(config_from_dict(doc)))
    proc.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "SIGHUP: reloaded schedules" in proc.log)
    ok(running.request("CALLSTART", DEVICEID="2002", ANI="555"))
    assert device(running, "2001").findtext("RECORDING/ISRECORDING") == "Y"
    assert device(running, "2002").findtext("RECORDING/ERRORREASON") == \
        "API_ERROR_BLOCKED_RECORDING_FILTER"
    # A file that no longer loads changes nothing, and says why.
    path.write_text("[recording]\nmax_concurrent = -1\n", encoding="utf-8")
    proc.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "not reloaded" in proc.log)
    assert "recording.max_concurrent" in proc.log
    ok(running.request("CALLSTOP", DEVICEID="2001"))
    assert proc.stop() == 0
    assert "Traceback" not in proc.log


def test_below_the_free_space_floor_calls_are_refused(start_recorder: Callable[..., Running],
                                                      tmp_path: Path) -> None:
    running = start_recorder(retention={"min_free_mb": 1 << 40})  # more than any disk has
    # Refused by the decision, before any file is tried: the call is tracked, API_OK says why.
    assert ok(running.request("CALLSTART", DEVICEID="1001")).findtext("RESULTMSG").endswith(
        "; not recorded: API_ERROR_OUT_OF_DISK_SPACE")
    assert device(running, "1001").findtext("RECORDING/ISRECORDING") == "N"
    assert device(running, "1001").findtext("RECORDING/ERRORREASON") == \
        "API_ERROR_OUT_OF_DISK_SPACE"
    assert result_code(running.request("RECORDSTART", DEVICEID="1001")) == 2


@pytest.mark.parametrize(("error", "code", "label"), [
    (errno.EMFILE, 18, "API_ERROR_NO_DEFAULT_RECORDING_PATH"),  # no descriptor left
    (errno.ENOSPC, 2, "API_ERROR_OUT_OF_DISK_SPACE"),  # the disk filled just then
])
def test_a_callstart_whose_file_cannot_be_made_is_answered_with_the_error(
        start_recorder: Callable[..., Running], monkeypatch: pytest.MonkeyPatch, error: int,
        code: int, label: str) -> None:
    running = start_recorder()

    def refuse(path: Path) -> tuple[Path, BinaryIO]:
        raise OSError(error, os.strerror(error), str(path))

    monkeypatch.setattr(files, "create_unique", refuse)
    refused = running.request("CALLSTART", DEVICEID="1001")
    assert result_code(refused) == code, etree.tostring(refused)
    assert refused.findtext("RESULTTYPE") == label
    assert "could not be opened" in (refused.findtext("RESULTMSG") or "")
    # The call is tracked all the same, not recorded, and says why where the status is read.
    assert device(running, "1001").findtext("RECORDING/ISRECORDING") == "N"
    assert device(running, "1001").findtext("RECORDING/ERRORREASON") == label
    ok(running.request("CALLSTOP", DEVICEID="1001"))
    assert ok(running.request("CALLLIST")).findall("SEARCHRESULT") == []


def test_an_untapped_device_is_tracked_and_the_answer_says_it_is_not_recorded(
        start_recorder: Callable[..., Running]) -> None:
    running = start_recorder()
    answer = ok(running.request("CALLSTART", DEVICEID="7777"))
    assert answer.findtext("RESULTMSG") == ("CALLSTART sent to all of the following cores: 1; "
                                            "not recorded: API_DEVICE_INVALID")
    ok(running.request("CALLSTOP", DEVICEID="7777"))


def test_an_archive_action_that_purges_empties_the_file_at_the_next_purge(
        start_recorder: Callable[..., Running]) -> None:
    running = start_recorder(retention={"archive_actions": [
        {"id": 8, "name": "do not keep", "purge": True}]})
    ok(running.request("CALLSTART", DEVICEID="1001", ARCHIVEACTION=8))
    ok(running.request("CALLSTART", DEVICEID="1002", KEEP_DAYS=30))
    ok(running.request("CALLSTART", DEVICEID="1003"))
    time.sleep(0.3)
    for device_id in ("1001", "1002", "1003"):
        ok(running.request("CALLSTOP", DEVICEID=device_id))
    rows = {r.findtext("DEVICEID"): r for r in
            ok(running.request("CALLLIST")).findall("SEARCHRESULT")}
    # A stored recording given the purging archive action afterwards (CALLUPDATE by RECORDID).
    record_id = rows["1003"].findtext("RECORDID")
    status, _ = running.web(f"type=callupdate&requestid=1&recordid={record_id}&archiveaction=8")
    assert status == 200
    assert running.recorder is not None
    assert running.recorder.retention is not None
    report = running.recorder.retention.run_now()
    assert report.purged == 2
    files = {d: Path(r.findtext("FILENAME") or "") for d, r in rows.items()}
    assert not files["1001"].exists()
    assert files["1002"].exists()
    assert not files["1003"].exists()
    # The rows stay, so the calls' history does.
    assert sorted(r.findtext("DEVICEID") for r in ok(running.request("CALLLIST")).findall(
        "SEARCHRESULT")) == ["1001", "1002", "1003"]
