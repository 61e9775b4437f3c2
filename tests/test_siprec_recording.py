"""SIPREC calls recorded end to end: a real recorderd with a siprec board on 127.0.0.1, and sipp
(Debian's sip-tester) as the SRC, playing the scenarios in tests/fixtures/siprec/sipp/ with
``rtp_stream`` of speech the test makes, in PCMA and PCMU, over UDP and TCP.

What must hold: the call is an ordinary row (CALLLIST finds it by DEVICEID and by ANI), the
file holds the SRC's audio (cross-correlated with the source: the same samples, its duration
within 100 ms) on the recorded party's side, and the event stream tells CALLSTART ...
RECORDINGSTOPPED for it. A CTI's CALLSTART, CALLUPDATE and CALLSTOP attach to the session's
call and row; the SRC's metadata UPDATE changes the row, not the recording; the SRC's pause
(re-INVITE, a=inactive) is RECORDINGPAUSED and digital silence; a call the schedules refuse
is answered and leaves no row; a recorderd killed mid-session has its recording recovered at
the next start; twenty sessions at once are all recorded."""

from __future__ import annotations

import shutil
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from recorder.codecs import g711
from tests.helpers.api import expect
from tests.helpers.srs import (
    RATE,
    Events,
    Srs,
    calllist,
    finish,
    judge_busy,
    left,
    matches,
    sipp,
    speech,
    start_srs,
    stop,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("sipp") is None,
                       reason="needs sipp (apt-get install sip-tester; scripts/test does)"),
]
PROCESS_FIXTURES = frozenset({"srs"})


@pytest.fixture(scope="module")
def srs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Srs]:
    started = start_srs(tmp_path_factory.mktemp("srs"))
    yield started
    stop(started)


@pytest.fixture
def events(srs: Srs) -> Iterator[Events]:
    reader = Events(srs.running)
    yield reader
    reader.close()


@pytest.mark.parametrize(("law", "transport", "device"), [("alaw", "UDP", "71"),
                                                          ("ulaw", "TCP", "72")])
def test_a_session_is_an_ordinary_recording(srs: Srs, events: Events, tmp_path: Path, *,
                                            law: str, transport: str, device: str) -> None:
    audio = speech(2.0)
    sipp("siprec_audio_uac.xml", srs, tmp_path, audio, device=device, transport=transport,
         law=law, pause_ms=2300)
    agent = f"{device}1"
    stopped = events.wait(agent, "RECORDINGSTOPPED")
    rows = calllist(srs, DEVICEID=agent)
    assert len(rows) == 1
    row = rows[0]
    assert (row["ANI"], row["DNIS"], row["RECORDID"]) == (agent, "55501", stopped["RECORDID"])
    assert [r["RECORDID"] for r in calllist(srs, ANI=agent)] == [row["RECORDID"]]
    reference = g711.decode(g711.encode(audio, law), law)  # type: ignore[arg-type]
    recorded = left(Path(row["FILENAME"]))
    lag, corr, seconds = matches(recorded, reference)
    assert corr > 0.99
    assert abs(seconds - len(audio) / RATE) < 0.1
    assert lag / RATE < 0.5  # the answer, then the first packet and the playout delay
    types = [t for t in events.types(agent) if t != "RECORDINGUPDATE"]
    assert types == ["CALLSTART", "RECORDINGSTARTED", "CALLSTOP", "RECORDINGSTOPPED"]
    start, started = events.of(agent)[0][1], events.of(agent)[1][1]
    assert start["GLOBALCALLID"].startswith("sipp-")
    assert started["ERRORREASON"] == "NONE"


def test_the_ctis_calls_attach_to_the_sessions_row(srs: Srs, events: Events,
                                                   tmp_path: Path) -> None:
    audio = speech(3.0, seed=2)
    proc = sipp("siprec_audio_uac.xml", srs, tmp_path, audio, device="73", pause_ms=3200,
                background=True)
    agent = "731"
    events.wait(agent, "RECORDINGSTARTED")
    api = srs.running
    expect(api.request("CALLSTART", DEVICEID=agent, CALLINSTANCE="cti-1", USER1="gold"), 20)
    expect(api.request("CALLUPDATE", DEVICEID=agent, CALLINSTANCE="cti-1", USER2="silver"), 20)
    expect(api.request("CALLSTOP", DEVICEID=agent, CALLINSTANCE="cti-1"), 20)
    status = api.request("DEVICESTATUS", DEVICEID=agent)
    assert status.findtext(".//ISRECORDING") == "Y"  # the CTI's CALLSTOP did not end it
    assert agent in [e.text for e in api.request("DEVICELIST").iter("DEVICEID")]
    finish(proc, tmp_path)
    events.wait(agent, "RECORDINGSTOPPED")
    rows = calllist(srs, DEVICEID=agent)
    assert len(rows) == 1
    assert (rows[0]["USER1"], rows[0]["USER2"], rows[0]["ANI"]) == ("gold", "silver", agent)
    assert int(rows[0]["DURATION"]) >= 3
    assert events.types(agent).count("CALLSTART") == 1


def test_a_cti_callstart_before_the_session_is_the_sessions_one_row(
        srs: Srs, events: Events, tmp_path: Path) -> None:
    agent = "741"
    api = srs.running
    api.request("CALLSTART", DEVICEID=agent, CALLINSTANCE="cti-9",
                USER1="gold")  # no channel taps it yet: tracked, not recorded
    cti = events.wait(agent, "CALLSTART")
    audio = speech(2.0, seed=3)
    sipp("siprec_audio_uac.xml", srs, tmp_path, audio, device="74", pause_ms=2300)
    stopped = events.wait(agent, "RECORDINGSTOPPED")
    rows = calllist(srs, DEVICEID=agent)
    assert len(rows) == 1
    row = rows[0]
    assert (row["CALLINSTANCE"], row["USER1"], row["RECORDID"]) == ("cti-9", "gold",
                                                                   stopped["RECORDID"])
    assert stopped["GLOBALCALLID"] == cti["GLOBALCALLID"]  # the CTI call's, not the SRC's
    reference = g711.decode(g711.encode(audio, "alaw"), "alaw")  # type: ignore[arg-type]
    _, corr, seconds = matches(left(Path(row["FILENAME"])), reference)
    assert corr > 0.99
    assert abs(seconds - len(audio) / RATE) < 0.1
    assert events.types(agent).count("CALLSTART") == 1
    assert events.types(agent).count("CALLSTOP") == 1


def test_the_srcs_pause_is_silence_and_recordingpaused(srs: Srs, events: Events,
                                                      tmp_path: Path) -> None:
    audio = speech(3.6, seed=3)
    sipp("siprec_pause_uac.xml", srs, tmp_path, audio, device="74", pause_ms=1000)
    agent = "741"
    events.wait(agent, "RECORDINGSTOPPED")
    types = events.types(agent)
    assert types.index("RECORDINGPAUSED") < types.index("RECORDINGRESUMED")
    row = calllist(srs, DEVICEID=agent)[0]
    recorded = left(Path(row["FILENAME"]))
    sound = np.flatnonzero(recorded)
    inside = recorded[sound[0]:sound[-1] + 1]
    # The one stretch of digital silence inside the audio is the pause: a second, give or
    # take the re-INVITEs' round trips.
    edges = np.flatnonzero(np.diff((inside == 0).astype(np.int8)))
    runs = [(b - a) / RATE for a, b in zip(edges[::2], edges[1::2], strict=False)]
    long_runs = [r for r in runs if r > 0.05]
    assert len(long_runs) == 1, runs
    assert 0.9 < long_runs[0] < 1.25


def test_a_metadata_update_changes_the_row_not_the_recording(srs: Srs, events: Events,
                                                            tmp_path: Path) -> None:
    audio = speech(2.2, seed=6)
    sipp("siprec_update_uac.xml", srs, tmp_path, audio, device="76", pause_ms=1400)
    agent = "761"
    stopped = events.wait(agent, "RECORDINGSTOPPED")
    # The UPDATE named a new caller (a transfer): the row says so and its RECORDINGUPDATE
    # came while the call was up; the recording went on through it, one file, every sample
    # of the stream in it.
    types = events.types(agent)
    assert types[:types.index("RECORDINGSTOPPED") + 1] == [
        "CALLSTART", "RECORDINGSTARTED", "RECORDINGUPDATE", "CALLSTOP", "RECORDINGSTOPPED"]
    rows = calllist(srs, DEVICEID=agent)
    assert len(rows) == 1
    assert (rows[0]["ANI"], rows[0]["DNIS"]) == (agent, "55591")
    assert rows[0]["RECORDID"] == stopped["RECORDID"]
    reference = g711.decode(g711.encode(audio, "alaw"), "alaw")
    _, corr, seconds = matches(left(Path(rows[0]["FILENAME"])), reference)
    assert corr > 0.99
    assert abs(seconds - len(audio) / RATE) < 0.1


def test_a_call_the_schedules_refuse_is_answered_and_leaves_no_row(
        srs: Srs, events: Events, tmp_path: Path) -> None:
    sipp("siprec_audio_uac.xml", srs, tmp_path, speech(0.5), device="99", pause_ms=600)
    started = events.wait("991", "RECORDINGSTARTED")
    assert started["ERRORREASON"] != "NONE"
    events.wait("991", "CALLSTOP")
    assert calllist(srs, DEVICEID="991") == []


def test_twenty_sessions_at_once(srs: Srs, events: Events, tmp_path: Path) -> None:
    audio = speech(1.5, seed=4)
    sipp("siprec_audio_uac.xml", srs, tmp_path, audio, device="80", pause_ms=1700,
         calls=20, rate=10)
    reference = g711.decode(g711.encode(audio, "alaw"), "alaw")
    wrong: list[tuple[str, str]] = []
    for n in range(1, 21):
        agent = f"80{n}"
        events.wait(agent, "RECORDINGSTOPPED")
        rows = calllist(srs, DEVICEID=agent)
        assert len(rows) == 1, agent
        _, corr, seconds = matches(left(Path(rows[0]["FILENAME"])), reference)
        if corr <= 0.99 or abs(seconds - 1.5) >= 0.1:
            wrong.append((f"{agent}: xcorr {corr:.3f}, {seconds:.2f} s", rows[0]["CALLINSTANCE"]))
    judge_busy(srs, wrong)


@pytest.mark.process
def test_a_recorderd_killed_mid_session_recovers_the_recording(tmp_path: Path) -> None:
    srs = start_srs(tmp_path / "killed")
    audio = speech(6.0, seed=5)
    proc = sipp("siprec_audio_uac.xml", srs, tmp_path / "sipp", audio, device="75",
                pause_ms=6000, background=True)
    try:
        reader = Events(srs.running)
        reader.wait("751", "RECORDINGSTARTED")
        reader.close()
        time.sleep(2.0)
    finally:
        srs.proc.proc.send_signal(signal.SIGKILL)
        srs.proc.proc.wait(10)
        proc.kill()
        proc.communicate(timeout=10)
    again = start_srs(tmp_path / "killed")
    try:
        db = sqlite3.connect(again.data_dir / "recorder.sqlite3")
        try:
            (status, reason, filename), = db.execute(
                "SELECT status, stop_reason, filename FROM recordings WHERE device_id = '751'")
        finally:
            db.close()
        assert (status, reason) == ("complete", "recovered")
        recorded = left(Path(filename))
        reference = g711.decode(g711.encode(audio, "alaw"), "alaw")
        _, corr, seconds = matches(recorded, reference[:RATE])  # its first second
        assert corr > 0.99
        assert seconds > 1.0  # what was written before the kill, at most a second lost
    finally:
        stop(again)

