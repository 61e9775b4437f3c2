"""``recorderctl`` against a live service (in-process; the main commands against ``recorderd``
too), run as a real process the way a field engineer runs it: what each command prints is
checked against what happened."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile
from lxml import etree

from recorder.ctl.common import elapsed
from recorder.drivers.base import MAX_CATCH_UP_SECONDS
from tests.helpers.audio import sox_info
from tests.helpers.ctl import RECORDERCTL, ctl_env, recorderctl
from tests.helpers.recorders import (
    IN_PROCESS_AND_RECORDERD,
    RecorderProcess,
    Running,
    start_recorderd,
    write_toml,
)
from tests.helpers.terminal import on_terminal


def ok(done: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert done.returncode == 0, (done.returncode, done.stdout, done.stderr)
    return done


def call(running: Running, device: str, seconds: float, **params: Any) -> etree._Element:
    """A call of ``seconds`` on ``device`` through the API, its pre-roll included; its
    CALLLIST entry."""
    assert running.request("CALLSTART", 1, deviceid=device, **params).findtext(
        "RESULTCODE") == "20"
    # Counted in the call's own audio: a loaded machine's capture may lag the wall clock.
    running.wait_recorded(device, seconds)
    assert running.request("CALLSTOP", 2, deviceid=device).findtext("RESULTCODE") == "20"
    found = running.request("CALLLIST", 3, deviceid=device, callcount=1).find("SEARCHRESULT")
    assert found is not None
    return found


def table(stdout: str) -> list[list[str]]:
    """The rows of a table recorderctl printed, split on runs of two or more spaces."""

    return [re.split(r"\s{2,}", line.strip()) for line in stdout.strip().splitlines()[1:]]


# --- channels and levels ---------------------------------------------------------------------

@pytest.mark.slow
def test_channels_shows_every_channel_and_the_one_recording(running: Running) -> None:
    idle = ok(recorderctl(running, "channels"))
    header = idle.stdout.splitlines()[0].split()
    assert header[:4] == ["ID", "DEVICE", "STATE", "TRIGGER"]
    rows = table(idle.stdout)
    assert [r[:4] for r in rows] == [[str(i), f"100{i}", "Idle", "api"] for i in range(1, 5)]
    assert all(r[6] == "0/0" and r[7] == "0/0" for r in rows)  # nothing lost on a fresh board
    assert running.request("CALLSTART", 1, deviceid="1002").findtext("RESULTCODE") == "20"
    try:
        busy = json.loads(ok(recorderctl(running, "channels", "--json")).stdout)
    finally:
        running.request("CALLSTOP", 2, deviceid="1002")
    assert [c["device"] for c in busy] == ["1001", "1002", "1003", "1004"]
    assert [c["state"] for c in busy] == ["Idle", "Recording", "Idle", "Idle"]
    # The synthetic board talks: levels are real numbers, below full scale.
    assert all(c["peak_dbfs"] is None or -120 < c["peak_dbfs"] <= 0 for c in busy)
    assert any(c["peak_dbfs"] is not None and c["peak_dbfs"] > -40 for c in busy)


@pytest.mark.slow
def test_levels_samples_for_the_time_asked(running: Running) -> None:
    started = time.monotonic()
    lines = ok(recorderctl(running, "levels", "--seconds", "1", "--interval", "0.25",
                           "--channel", "2", "3")).stdout.splitlines()
    took = time.monotonic() - started
    # One line per sample when not on a terminal: at 0, .25, .5, .75 s (the default 5 s would
    # be twenty), and the samples spaced in time. How long recorderctl takes to start on top
    # of that is the machine's load, not the command's.
    assert len(lines) == 4
    assert took >= 0.75
    for line in lines:
        assert "2:1002 [" in line
        assert "3:1003 [" in line
        assert "1:1001" not in line
    samples = [json.loads(line) for line in ok(recorderctl(
        running, "levels", "--seconds", "0.5", "--interval", "0.25", "--json")).stdout.splitlines()]
    assert len(samples) == 2
    assert [c["device"] for c in samples[0]["channels"]] == ["1001", "1002", "1003", "1004"]
    assert samples[1]["time"] > samples[0]["time"]
    unknown = recorderctl(running, "levels", "--seconds", "0.5", "--channel", "9")
    assert unknown.returncode == 2
    assert "no channel 9" in unknown.stderr


def test_levels_redraws_in_place_on_a_terminal(running: Running) -> None:
    proc, text = on_terminal(
        [str(RECORDERCTL), "--port", str(running.socket_port), "levels", "--seconds", "0.5",
         "--interval", "0.25"], "stdout", ctl_env())
    assert proc.returncode == 0, proc.stderr
    assert text.count("\x1b[4F") == 1  # the second sample went back up over the 4 meters
    assert text.count("1001") == 2


# --- calls and export ------------------------------------------------------------------------

@pytest.mark.slow
@IN_PROCESS_AND_RECORDERD
def test_calls_lists_the_recording_just_made(running: Running) -> None:
    found = call(running, "1001", 2.0, ani="6145551212", dnis="8005551234", sys_user="ceddy")
    recordid = found.findtext("RECORDID")
    listed = table(ok(recorderctl(running, "calls", "--device", "1001")).stdout)
    assert len(listed) == 1
    row = listed[0]
    assert row[0] == recordid
    assert datetime.strptime(row[1], "%Y-%m-%d %H:%M:%S") > datetime.now() - timedelta(minutes=1)
    assert row[2] in ("0:02", "0:03")  # 2 s plus the half second of pre-roll
    assert row[3:6] == ["1001", "6145551212", "8005551234"]
    assert row[6] == found.findtext("FILENAME")
    # the call, and up to half a second of pre-roll (less when the board has just started)
    assert 1.95 <= float(sox_info(row[6])["-D"]) <= 2.8

    by_agent = json.loads(ok(recorderctl(running, "calls", "--agent", "ceddy", "--json")).stdout)
    assert [(c["RECORDID"], c["DEVICEID"], c["DURATION"]) for c in by_agent] == [
        (recordid, "1001", found.findtext("DURATION"))]
    assert ok(recorderctl(running, "calls", "--device", "1002")).stdout.strip() == "no calls match"
    # The README's first session: the file of the newest call, for sox.
    assert ok(recorderctl(running, "calls", "--last", "--files")).stdout == f"{row[6]}\n"
    newer = call(running, "1002", 0.5)
    assert ok(recorderctl(running, "calls", "--last", "--files")).stdout == (
        f"{newer.findtext('FILENAME')}\n")
    assert recorderctl(running, "calls", "--last", "--limit", "3").returncode == 2
    assert len(table(ok(recorderctl(running, "calls", "--from", "1h", "--to",
                                    str(int(time.time()) + 60))).stdout)) == 2
    today = datetime.now().date().isoformat()
    assert len(table(ok(recorderctl(running, "calls", "--from", today, "--to", today)).stdout)) == 2
    assert ok(recorderctl(running, "calls", "--to", "2h")).stdout.strip() == "no calls match"
    bad = recorderctl(running, "calls", "--from", "last tuesday")
    assert bad.returncode == 2
    assert "'last tuesday' is not a time" in bad.stderr
    refused = recorderctl(running, "calls", "--from", "2h", "--to", "3h")  # start after end: 16
    assert refused.returncode == 1
    assert "CALLLIST answered 16" in refused.stderr


@pytest.mark.slow
def test_export_mp3_gives_a_file_ffmpeg_decodes_to_the_right_duration(
        running: Running, tmp_path: Path) -> None:
    found = call(running, "1003", 2.0)
    recordid = found.findtext("RECORDID") or ""
    stored = float(sox_info(found.findtext("FILENAME") or "")["-D"])
    target = tmp_path / "call.mp3"
    done = ok(recorderctl(running, "export", recordid, "--format", "mp3", "-o", str(target)))
    assert done.stdout.startswith(f"{target}: recording {recordid} as mp3")
    assert not (tmp_path / "call.mp3.part").exists()
    decoded = tmp_path / "decoded.wav"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(target), str(decoded)], check=True,
                   timeout=60)
    audio, rate = soundfile.read(decoded)
    assert rate == 8000
    assert len(audio) / rate == pytest.approx(stored, abs=0.08)  # MP3 frames pad a little

    again = recorderctl(running, "export", recordid, "--format", "mp3", "-o", str(target))
    assert again.returncode == 2
    assert "exists" in again.stderr
    ok(recorderctl(running, "export", recordid, "--format", "wav", "-o", str(target), "--force"))
    assert soundfile.info(target).format == "WAV"  # replaced, whatever its name says

    missing = recorderctl(running, "export", "999", "-o", str(tmp_path / "none.wav"))
    assert missing.returncode == 1
    assert "41 API_FILE_NOT_FOUND" in missing.stderr
    assert list(tmp_path.glob("none.wav*")) == []  # neither the file nor a .part


@pytest.mark.slow
def test_export_refuses_a_call_in_progress_and_names_the_file_as_offered(
        running: Running, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    assert running.request("CALLSTART", 1, deviceid="1004").findtext("RESULTCODE") == "20"
    try:
        (live,) = running.request("CALLLIST", 2, deviceid="1004").findall("SEARCHRESULT")
        recordid = live.findtext("RECORDID") or ""
        busy = recorderctl(running, "export", recordid, cwd=work)
        assert busy.returncode == 1
        assert "still in progress" in busy.stderr
        assert list(work.iterdir()) == []
    finally:
        running.request("CALLSTOP", 3, deviceid="1004")
    named = recorderctl(running, "export", recordid, "--format", "vox", cwd=work)
    assert named.returncode == 0, named.stderr
    (written,) = work.iterdir()
    stem = Path(live.findtext("FILENAME") or "").stem
    assert written.name == f"{recordid}-{stem}.vox"
    assert written.stat().st_size > 0


@pytest.mark.slow
def test_export_draws_a_progress_bar_on_a_terminal(running: Running, tmp_path: Path) -> None:
    recordid = call(running, "1002", 1.0).findtext("RECORDID") or ""
    proc, text = on_terminal(
        [str(RECORDERCTL), "--port", str(running.socket_port), "--web-port",
         str(running.web_port), "export", recordid, "-o", str(tmp_path / "a.wav")], "stderr",
        ctl_env())
    assert proc.returncode == 0
    size = (tmp_path / "a.wav").stat().st_size
    assert f"\r[{'#' * 30}] " in text
    assert size > 8000  # a second of 8 kHz 16-bit audio and the pre-roll


# --- events ----------------------------------------------------------------------------------

def _events(running: Running, *args: str) -> subprocess.Popen[str]:
    """``recorderctl events`` started and subscribed (its line on stderr says so). SIGINT has
    its default action in it, as in a terminal's foreground job, even when this test run
    ignores SIGINT (a shell ignores it in the jobs it starts in the background)."""
    proc = subprocess.Popen(
        ["env", "--default-signal=INT", str(RECORDERCTL), "--port", str(running.socket_port),
         "events", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ctl_env())
    assert proc.stderr is not None
    line = proc.stderr.readline()
    assert "subscribed to" in line, line + proc.stderr.read()
    return proc


@IN_PROCESS_AND_RECORDERD
def test_events_prints_a_calls_start_as_it_happens(running: Running) -> None:
    proc = _events(running, "--count", "2")
    try:
        assert running.request("CALLSTART", 1, deviceid="1003",
                               ani="6145551212").findtext("RESULTCODE") == "20"
        out, err = proc.communicate(timeout=15)
    finally:
        proc.kill()
        running.request("CALLSTOP", 2, deviceid="1003")
    assert proc.returncode == 0, err
    first, second = out.splitlines()
    assert first.split()[1:3] == ["CALLSTART", "1003"]
    assert "ani=6145551212" in first
    assert second.split()[1:3] == ["RECORDINGSTARTED", "1003"]
    assert "reason=NONE" in second


@pytest.mark.slow
def test_events_json_filters_and_stops_after_the_seconds_asked(running: Running) -> None:
    proc = _events(running, "--class", "record", "--device", "1004", "--json", "--seconds", "3")
    started = time.monotonic()
    try:
        call(running, "1001", 0.2)  # another device: not shown
        call(running, "1004", 0.5)
        out, err = proc.communicate(timeout=15)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert 2.5 <= time.monotonic() - started < 10
    events = [json.loads(line) for line in out.splitlines()]
    assert [e["type"] for e in events] == ["RECORDINGSTARTED", "RECORDINGSTOPPED",
                                           "RECORDINGUPDATE"]
    assert {e["class"] for e in events} == {"RECORD"}
    assert {e["data"]["DEVICEID"] for e in events} == {"1004"}
    assert events[1]["data"]["RECORDID"].isdigit()


@pytest.mark.slow
def test_events_exits_0_at_ctrl_c_and_3_when_the_service_ends_the_stream(tmp_path: Path,
                                                         processes: list[RecorderProcess]) -> None:
    config = write_toml(tmp_path / "r.toml", f'[storage]\ndata_dir = "{tmp_path / "data"}"\n'
                        "[api]\nsocket_port = 0\nweb_port = 0\n")
    proc = RecorderProcess(["--config", str(config)])
    processes.append(proc)
    running = proc.wait_ready()
    interrupted = _events(running)
    interrupted.send_signal(signal.SIGINT)  # Ctrl-C: asked to stop, so not an error
    _, err = interrupted.communicate(timeout=15)
    assert interrupted.returncode == 0, err
    assert "Traceback" not in err
    events = _events(running)
    try:
        assert proc.stop() == 0
        _, err = events.communicate(timeout=15)
    finally:
        events.kill()
    assert events.returncode == 3
    assert "ended the event stream" in err


# --- status ----------------------------------------------------------------------------------

@pytest.mark.slow
@IN_PROCESS_AND_RECORDERD
def test_status_shows_the_active_recording_during_a_call(running: Running) -> None:
    idle = json.loads(ok(recorderctl(running, "status", "--json")).stdout)
    assert idle["health"] == {"ok": True, "problems": []}
    assert idle["active"] == []
    assert running.request("CALLSTART", 1, deviceid="1004").findtext("RESULTCODE") == "20"
    try:
        time.sleep(0.5)
        busy = json.loads(ok(recorderctl(running, "status", "--json")).stdout)
        human = ok(recorderctl(running, "status")).stdout
    finally:
        running.request("CALLSTOP", 2, deviceid="1004")
    (active,) = busy["active"]
    assert active["device"] == "1004"
    assert active["seconds"] > 0
    assert [c["state"] for c in busy["channels"]].count("Recording") == 1
    lines = human.splitlines()
    assert re.search(r", up \d+ s \(since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\)$", lines[0]), lines[0]
    assert lines[1] == "health:     ok"
    assert "channels:   4 (3 Idle, 1 Recording)" in lines
    assert "  boards[0]: synthetic, 8000 Hz, 4 channel(s), running" in lines
    assert any(line.split()[:2] == [str(active["recordid"]), "1004"]
               and line.endswith(active["filename"]) for line in lines)


@pytest.mark.slow
def test_status_exits_1_when_the_disk_is_below_the_floor_and_selftest_fails(
        start_recorder: Any) -> None:
    # A floor no disk meets: the service runs, refuses to record, and says why.
    running = start_recorder(retention={"min_free_mb": 1 << 40})
    done = recorderctl(running, "status")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "health:     UNHEALTHY" in done.stdout
    assert any(line.startswith("  - disk:") and "below the floor" in line
               for line in done.stdout.splitlines())
    selftest = recorderctl(running, "selftest", "--seconds", "1")
    assert selftest.returncode == 1, selftest.stdout
    assert "API_ERROR_OUT_OF_DISK_SPACE" in selftest.stdout
    assert selftest.stdout.splitlines()[-1] == "FAIL"
    # and the test call was not left running
    assert json.loads(ok(recorderctl(running, "channels", "--json")).stdout)[0]["state"] == "Idle"


# --- selftest --------------------------------------------------------------------------------

@pytest.mark.slow
def test_selftest_passes_on_the_synthetic_board(running: Running) -> None:
    assert running.request("CALLSTART", 1, deviceid="1001").findtext("RESULTCODE") == "20"
    try:
        done = ok(recorderctl(running, "selftest", "--seconds", "2"))
    finally:
        running.request("CALLSTOP", 2, deviceid="1001")
    lines = done.stdout.splitlines()
    assert lines[-1] == "PASS"
    # 1001 is busy, so the first idle channel is the second
    assert lines[0].startswith("PASS  pick channel")
    assert "channel 2, device 1002" in lines[0]
    steps = {line[6:20].strip(): line[:4] for line in lines[:-1]}
    assert steps == {name: "PASS" for name in (
        "pick channel", "start call", "record", "stop call", "export WAV", "decode",
        "duration", "sample rate", "level")}
    began = time.monotonic()
    report = json.loads(ok(recorderctl(running, "selftest", "--device", "1003", "--seconds", "1",
                                       "--json")).stdout)
    took = time.monotonic() - began
    assert (report["result"], report["channel"], report["device"]) == ("PASS", 3, "1003")
    (row,) = running.request("CALLLIST", 3, deviceid="1003").findall("SEARCHRESULT")
    assert row.findtext("RECORDID") == str(report["recordid"])
    # The second asked for and up to the half second of pre-roll; no more than the command's
    # whole run and the pre-roll, however long a loaded machine stretched that (and what a
    # board behind the clock caught up meanwhile).
    assert 0.95 <= float(sox_info(row.findtext("FILENAME") or "")["-D"]) <= (
        took + 0.5 + MAX_CATCH_UP_SECONDS)


@pytest.mark.slow
def test_selftest_warns_on_digital_silence_and_fails_if_a_signal_is_required(
        start_recorder: Any, tmp_path: Path) -> None:
    silence = tmp_path / "silence.wav"
    soundfile.write(silence, np.zeros(16000, dtype=np.int16), 16000, subtype="PCM_16")
    running = start_recorder(boards=[
        {"driver": "synthetic", "devices": ["1001"]},
        {"driver": "file", "devices": ["2001"], "files": [str(silence)]},
    ])
    quiet = ok(recorderctl(running, "selftest", "--device", "2001", "--seconds", "1"))
    lines = quiet.stdout.splitlines()
    assert lines[-1] == "PASS"
    assert any(line.startswith("WARN  level") and "digital silence" in line for line in lines)
    # channel 2 is the file board's, at the file's rate, not the first board's
    assert any(line.startswith("PASS  sample rate") and "16000 Hz; boards[1] runs at 16000 Hz"
               in line for line in lines)
    strict = recorderctl(running, "selftest", "--channel", "2", "--seconds", "1",
                         "--require-signal")
    assert strict.returncode == 1
    assert any(line.startswith("FAIL  level") for line in strict.stdout.splitlines())
    assert strict.stdout.splitlines()[-1] == "FAIL"
    unknown = recorderctl(running, "selftest", "--device", "9999")
    assert unknown.returncode == 2
    assert "no device 9999" in unknown.stderr


def test_selftest_fails_on_a_broken_recording_path(tmp_path: Path,
                                                   processes: list[RecorderProcess]) -> None:
    _, data, running = start_recorderd(tmp_path, processes)
    proc = processes[-1]
    # Where today's recordings go is a file, so no recording can be created.
    for day in (datetime.now(), datetime.now() + timedelta(days=1)):
        (data / "recordings" / day.strftime("%Y%m%d")).write_text("in the way")
    done = recorderctl(running, "selftest", "--seconds", "1")
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1] == "FAIL"
    failed = [line for line in lines if line.startswith("FAIL")]
    assert failed[0].startswith("FAIL  start call")
    assert "API_ERROR_NO_DEFAULT_RECORDING_PATH" in failed[0]
    assert "export WAV" not in done.stdout  # it stopped at the first failure
    assert running.request("DEVICESTATUS", 1, deviceid="1001").findtext(
        "DEVICES/DEVICE/RECORDING/ISRECORDING") == "N"
    assert proc.stop() == 0


@pytest.mark.parametrize(("seconds", "shown"), [
    (0, "0 s"), (16.4, "16 s"), (59.6, "1 min 0 s"), (303, "5 min 3 s"), (3600, "1 h 0 min"),
    (7500, "2 h 5 min"), (86399, "23 h 59 min"), (86400 * 3 + 3600 * 4 + 59, "3 d 4 h"),
])
def test_an_uptime_is_said_in_words(seconds: float, shown: str) -> None:
    assert elapsed(seconds) == shown
