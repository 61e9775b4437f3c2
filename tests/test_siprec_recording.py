"""SIPREC calls recorded end to end: a real recorderd with a siprec board on 127.0.0.1, and sipp
(Debian's sip-tester) as the SRC, playing the scenarios in tests/fixtures/siprec/sipp/ with
``rtp_stream`` of speech the test makes, in PCMA and PCMU, over UDP and TCP.

What must hold: the call is an ordinary row (CALLLIST finds it by DEVICEID and by ANI), the
file holds the SRC's audio (cross-correlated with the source: the same samples, its duration
within 100 ms) on the recorded party's side, and the event stream tells CALLSTART ...
RECORDINGSTOPPED for it. A CTI's CALLSTART, CALLUPDATE and CALLSTOP attach to the session's
call and row; the SRC's pause (re-INVITE, a=inactive) is RECORDINGPAUSED and digital silence;
a call the schedules refuse is answered and leaves no row; a recorderd killed mid-session
has its recording recovered at the next start; twenty sessions at once are all recorded."""

from __future__ import annotations

import re
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import soundfile
from lxml import etree

from recorder.codecs import g711
from tests.helpers.api import expect, fields
from tests.helpers.net import free_port, rtp_test_range
from tests.helpers.recorders import RecorderProcess, Running, write_toml
from tests.helpers.waiting import wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("sipp") is None,
                       reason="needs sipp (apt-get install sip-tester; scripts/test does)"),
]
PROCESS_FIXTURES = frozenset({"srs"})

SCENARIOS = Path(__file__).resolve().parent / "fixtures" / "siprec" / "sipp"
RATE = 8000
SIP_PORT = re.compile(r"SIP listening on [^:]+:(\d+)")
EVENTS = b"<REQUEST><REQUESTID>0</REQUESTID><TYPE>EVENTS</TYPE><EVENTCLASS>ALL</EVENTCLASS>" \
         b"<EVENTVALUE></EVENTVALUE></REQUEST>\r\n"
Samples = npt.NDArray[np.int16]


def speech(seconds: float, seed: int = 1) -> Samples:
    """Speech-like test audio: a wandering pitch with harmonics, a syllable envelope and a
    noise floor, so no stretch of it is ever digital silence."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * RATE)) / RATE
    pitch = 140 + 40 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / RATE
    voice = sum(np.sin(k * phase) / k for k in range(1, 6))
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * 4 * t)
    noise = rng.normal(0, 300, len(t))
    return np.clip(5000 * voice * envelope + noise, -32000, 32000).astype(np.int16)


@dataclass
class Srs:
    """A recorderd with a siprec board: its API, its SIP port and its data."""

    proc: RecorderProcess
    running: Running
    sip_port: int
    data_dir: Path
    config: Path


def start_srs(directory: Path) -> Srs:
    low, _ = rtp_test_range(400)
    directory.mkdir(parents=True, exist_ok=True)
    data = directory / "data"
    config = write_toml(directory / "r.toml", f'''
[storage]
data_dir = "{data}"
[api]
socket_port = 0
web_port = 0
[[recording.schedules]]
name = "not the 99s"
devices = ["99*"]
record = false
[[recording.schedules]]
name = "everything else"
[[boards]]
driver = "siprec"
sip_host = "127.0.0.1"
sip_port = 0
rtp_port_min = {low}
rtp_port_max = {low + 399}
max_sessions = 25
media_timeout_seconds = 10
''')
    proc = RecorderProcess(["--config", str(config)])
    running = proc.wait_ready()
    running.data_dir = data
    port = wait_for(lambda: SIP_PORT.search(proc.log), what="the SIP port in the log")
    return Srs(proc, running, int(port.group(1)), data, config)


def stop(srs: Srs) -> None:
    code = srs.proc.stop()
    assert code == 0, srs.proc.log
    assert "Traceback" not in srs.proc.log, srs.proc.log


@pytest.fixture(scope="module")
def srs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Srs]:
    started = start_srs(tmp_path_factory.mktemp("srs"))
    yield started
    stop(started)


class Events:
    """The recorder's event stream, read on a thread of its own."""

    def __init__(self, running: Running) -> None:
        self.conn = running.connect()
        self.conn.send(EVENTS)
        expect(self.conn.read_result(), 20)
        self._events: list[tuple[str, dict[str, str]]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        self.conn.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                event = etree.fromstring(self.conn.read_line())
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self._events.append((event.findtext("EVENTTYPE") or "",
                                     fields(event.find("EVENTDATA"))))

    def of(self, device: str) -> list[tuple[str, dict[str, str]]]:
        with self._lock:
            return [(t, f) for t, f in self._events if f.get("DEVICEID") == device]

    def types(self, device: str) -> list[str]:
        return [t for t, _ in self.of(device)]

    def wait(self, device: str, event_type: str, timeout: float = 15.0) -> dict[str, str]:
        found = wait_for(lambda: [f for t, f in self.of(device) if t == event_type],
                         timeout, what=lambda: f"{event_type} of {device}: heard "
                         f"{self.types(device)}")
        return found[0]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.conn.close()


@pytest.fixture
def events(srs: Srs) -> Iterator[Events]:
    reader = Events(srs.running)
    yield reader
    reader.close()


def sipp(scenario: str, srs: Srs, directory: Path, audio: Samples, *, device: str,
         transport: str = "UDP", law: str = "alaw", pause_ms: int = 0, calls: int = 1,
         rate: int = 1, background: bool = False) -> subprocess.Popen[str]:
    """Start sipp playing ``scenario`` against ``srs``: ``calls`` calls (``rate`` a second),
    ``audio`` streamed in ``law``, the agent's number ``device`` plus the call number."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "speech.g711").write_bytes(g711.encode(audio, law).tobytes())  # type: ignore[arg-type]
    pt = "8" if law == "alaw" else "0"
    command = ["sipp", "-sf", str(SCENARIOS / scenario), "-m", str(calls), "-r", str(rate),
               "-l", str(calls), "-i", "127.0.0.1", "-p", str(free_port()),
               "-mp", str(free_port() & ~1), "-t", {"UDP": "u1", "TCP": "t1"}[transport],
               "-nostdin", "-set", "pt", pt, "-set", "device", device, "-rtp_payload", pt,
               "-d", str(pause_ms or 1000), "-timeout", "30s", "-timeout_error",
               "-trace_err", "-error_file", str(directory / "errors.log"),
               f"127.0.0.1:{srs.sip_port}"]
    proc = subprocess.Popen(command, cwd=directory, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    if not background:
        finish(proc, directory)
    return proc


def finish(proc: subprocess.Popen[str], directory: Path, timeout: float = 40.0) -> None:
    out, _ = proc.communicate(timeout=timeout)
    errors = directory / "errors.log"
    log = errors.read_text(errors="replace") if errors.exists() else ""
    assert proc.returncode == 0, f"sipp exited {proc.returncode}\n{out[-2000:]}\n{log}"


def calllist(srs: Srs, **query: str) -> list[dict[str, str]]:
    result = srs.running.request("CALLLIST", **query)
    expect(result, 20)
    return [fields(row) for row in result.iter("SEARCHRESULT")]


def left(path: Path) -> Samples:
    data, rate = soundfile.read(path, dtype="int16", always_2d=True)
    assert rate == RATE
    return data[:, 0]


def matches(recorded: Samples, source: Samples) -> tuple[int, float, float]:
    """Where ``source`` begins in ``recorded``, their normalised correlation there, and how
    long the audio runs from there to the recording's last sound (seconds)."""
    a = recorded.astype(np.float64)
    b = source.astype(np.float64)
    size = 1 << int(np.ceil(np.log2(len(a) + len(b))))
    xcorr = np.fft.irfft(np.fft.rfft(a, size) * np.conj(np.fft.rfft(b, size)), size)
    lag = int(np.argmax(xcorr[:len(a)]))
    piece = a[lag:lag + len(b)]
    corr = float(np.dot(piece, b[:len(piece)]) /
                 (np.linalg.norm(piece) * np.linalg.norm(b[:len(piece)]) or 1.0))
    last = int(np.flatnonzero(recorded)[-1])
    return lag, corr, (last + 1 - lag) / RATE


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
    for n in range(1, 21):
        agent = f"80{n}"
        events.wait(agent, "RECORDINGSTOPPED")
        rows = calllist(srs, DEVICEID=agent)
        assert len(rows) == 1, agent
        _, corr, seconds = matches(left(Path(rows[0]["FILENAME"])), reference)
        assert corr > 0.99, agent
        assert abs(seconds - 1.5) < 0.1, agent


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

