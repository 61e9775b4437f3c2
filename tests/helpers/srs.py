"""What the end-to-end SIPREC tests share: a real recorderd with a siprec board on 127.0.0.1
(the SRS), its event stream, sipp (Debian's sip-tester) as the SRC, and the checks of a
recorded file against the audio the SRC sent."""

from __future__ import annotations

import re
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import soundfile
from lxml import etree

from recorder.codecs import g711
from tests.helpers.api import expect, fields
from tests.helpers.net import rtp_test_range, sipp_ports
from tests.helpers.recorders import RecorderProcess, Running, write_toml
from tests.helpers.waiting import wait_for

SCENARIOS = Path(__file__).resolve().parents[1] / "fixtures" / "siprec" / "sipp"
RATE = 8000
SIP_PORT = re.compile(r"SIP listening on [^:]+:(\d+)")
STALLED = "behind real time; resuming from now"  # the media thread's catch-up warning
REPORTED = re.compile(r"(\d+) lost, (\d+) late, (\d+) samples of audio lost")
EVENTS = b"<REQUEST><REQUESTID>0</REQUESTID><TYPE>EVENTS</TYPE><EVENTCLASS>ALL</EVENTCLASS>" \
         b"<EVENTVALUE></EVENTVALUE></REQUEST>\r\n"
Samples = npt.NDArray[np.int16]


def speech(seconds: float, seed: int = 1, rate: int = RATE) -> Samples:
    """Speech-like test audio: a wandering pitch with harmonics, a syllable envelope and a
    noise floor, so no stretch of it is ever digital silence."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * rate)) / rate
    pitch = 140 + 40 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    voice = sum(np.sin(k * phase) / k for k in range(1, 6))
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * 4 * t)
    noise = rng.normal(0, 300, len(t))
    return np.clip(5000 * voice * envelope + noise, -32000, 32000).astype(np.int16)


@dataclass
class Srs:
    """A recorderd with a siprec board: its API, its SIP port, its RTP range and its data."""

    proc: RecorderProcess
    running: Running
    sip_port: int
    data_dir: Path
    config: Path
    rtp_ports: tuple[int, int]


def start_srs(directory: Path, *, ports: int = 400, max_sessions: int = 25,
              media_timeout: float = 10.0, playout_delay: float = 0.1) -> Srs:
    """A recorderd whose siprec board takes ``max_sessions`` sessions on ``ports`` RTP ports
    of this worker's range; devices 99* are refused by its schedules."""
    low, high = rtp_test_range(ports)
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
rtp_port_max = {high}
max_sessions = {max_sessions}
media_timeout_seconds = {media_timeout}
playout_delay_seconds = {playout_delay}
''')
    proc = RecorderProcess(["--config", str(config)])
    running = proc.wait_ready()
    running.data_dir = data
    port = wait_for(lambda: SIP_PORT.search(proc.log), what="the SIP port in the log")
    return Srs(proc, running, int(port.group(1)), data, config, (low, high))


def stop(srs: Srs) -> None:
    code = srs.proc.stop()
    assert code == 0, srs.proc.log
    assert "Traceback" not in srs.proc.log, srs.proc.log


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

    def sequence(self) -> list[tuple[str, str]]:
        """Every event so far, in the order heard: (type, DEVICEID)."""
        with self._lock:
            return [(t, f.get("DEVICEID", "")) for t, f in self._events]

    def wait(self, device: str, event_type: str, timeout: float = 15.0) -> dict[str, str]:
        found = wait_for(lambda: [f for t, f in self.of(device) if t == event_type],
                         timeout, what=lambda: f"{event_type} of {device}: heard "
                         f"{self.types(device)}")
        return found[0]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.conn.close()


def sipp_command(scenario: str, srs: Srs, *, transport: str = "UDP", pause_ms: int = 1000,
                 calls: int = 1, rate: int = 1, variables: dict[str, str] | None = None,
                 extra: tuple[str, ...] = ()) -> list[str]:
    """sipp playing ``scenario`` against ``srs``: ``calls`` calls, ``rate`` a second, all of
    them allowed at once, ``-d pause_ms``, each of ``variables`` as a ``-set``."""
    sets = [arg for name, value in (variables or {}).items() for arg in ("-set", name, value)]
    sip_port, media_port = sipp_ports()  # sipp offers [media_port] and [media_port+2]
    return ["sipp", "-sf", str(SCENARIOS / scenario), "-m", str(calls), "-r", str(rate),
            "-l", str(calls), "-i", "127.0.0.1", "-p", str(sip_port),
            "-mp", str(media_port), "-t", {"UDP": "u1", "TCP": "t1"}[transport],
            "-nostdin", *sets, *extra, "-d", str(pause_ms), "-timeout", "30s",
            "-timeout_error", "-trace_err", "-error_file", "errors.log",
            f"127.0.0.1:{srs.sip_port}"]


def sipp(scenario: str, srs: Srs, directory: Path, audio: Samples, *, device: str,
         transport: str = "UDP", law: str = "alaw", pause_ms: int = 0, calls: int = 1,
         rate: int = 1, background: bool = False, extra: tuple[str, ...] = ()
         ) -> subprocess.Popen[str]:
    """Start sipp playing ``scenario`` against ``srs``: ``calls`` calls (``rate`` a second),
    ``audio`` streamed in ``law``, the agent's number ``device`` plus the call number."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "speech.g711").write_bytes(g711.encode(audio, law).tobytes())  # type: ignore[arg-type]
    pt = "8" if law == "alaw" else "0"
    command = sipp_command(scenario, srs, transport=transport, pause_ms=pause_ms or 1000,
                           calls=calls, rate=rate, variables={"pt": pt, "device": device},
                           extra=("-rtp_payload", pt, *extra))
    return run_sipp(command, directory, background=background)


def run_sipp(command: list[str], directory: Path, *, background: bool = False
             ) -> subprocess.Popen[str]:
    """Start ``command`` in ``directory``; unless ``background``, wait for it to succeed."""
    directory.mkdir(parents=True, exist_ok=True)
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


def session_log(srs: Srs, call_id: str) -> str:
    """The recorder's log lines about one session (its per-stream counts at its end: packets,
    lost, late ...) and the media thread's stalls, for a failing test to show."""
    return "\n".join(line for line in srs.proc.log.splitlines()
                     if f" {call_id}" in line or "behind real time" in line)


def reported_lost(log: str) -> bool:
    """Whether a session's log lines (``session_log``) report lost audio: packets lost or
    late, samples lost, or the media thread falling behind."""
    return STALLED in log or any(int(n) for m in REPORTED.findall(log) for n in m)


def judge_busy(srs: Srs, wrong: list[tuple[str, str]]) -> None:
    """Fail for the (message, CALLINSTANCE) of files that are not the audio sent, unless the
    recorder reported every one of them as losing audio: then its media thread got too
    little CPU (other processes on a small machine) and the files cannot be judged (skip).
    Damage nobody reported is a bug."""
    logs = [f"{message}\n{session_log(srs, call)}" for message, call in wrong]
    if logs and all(reported_lost(log) for log in logs):
        pytest.skip(f"the machine was too busy: audio reported lost\n{logs[0]}")
    assert not logs, "\n".join(logs[:3])


def calllist(srs: Srs, **query: str) -> list[dict[str, str]]:
    result = srs.running.request("CALLLIST", **query)
    expect(result, 20)
    return [fields(row) for row in result.iter("SEARCHRESULT")]


def left(path: Path) -> Samples:
    """The recorded party's side of a recording (the left channel), at 8 kHz."""
    data, rate = soundfile.read(path, dtype="int16", always_2d=True)
    assert rate == RATE
    return data[:, 0]


def sound_seconds(recorded: Samples) -> float:
    """How long the audio runs from the first sound of a recording to its last (seconds)."""
    sound = np.flatnonzero(recorded)
    assert len(sound), "no sound in the recording"
    return (int(sound[-1]) + 1 - int(sound[0])) / RATE


def matches(recorded: Samples, source: Samples) -> tuple[int, float, float]:
    """Where ``source`` begins in ``recorded``, their normalised correlation there, and how
    long the audio runs from there to the recording's last sound (seconds)."""
    sound = np.flatnonzero(recorded)
    if not len(sound):
        return 0, 0.0, 0.0  # digital silence: nothing of the source
    a = recorded.astype(np.float64)
    b = source.astype(np.float64)
    size = 1 << int(np.ceil(np.log2(len(a) + len(b))))
    xcorr = np.fft.irfft(np.fft.rfft(a, size) * np.conj(np.fft.rfft(b, size)), size)
    lag = int(np.argmax(xcorr[:len(a)]))
    piece = a[lag:lag + len(b)]
    corr = float(np.dot(piece, b[:len(piece)]) /
                 (np.linalg.norm(piece) * np.linalg.norm(b[:len(piece)]) or 1.0))
    return lag, corr, (int(sound[-1]) + 1 - lag) / RATE
