"""A real recorderd's siprec board under load and under stray RTP.

Load: sipp (Debian's sip-tester) brings a hundred recording sessions within a second, each
streaming the same speech; all hundred must be up at once (every RECORDINGSTARTED before the
first CALLSTOP), and each must end as one row whose file holds the speech, every sample of it
(cross-correlation > 0.99, length within 100 ms).

Stray RTP: a small SRC in Python records a call, hangs up, and goes on sending its stream
(late packets, as an SBC that stops forking late does) to the finished session's ports, and
more to closed ports of the range, while a second call is recorded. The second call must not
get the first one's ports (ports are reused least recently freed first) and its file must hold
its own audio only; the first call's row and file must stay as they were."""

from __future__ import annotations

import hashlib
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from recorder.codecs import g711
from tests.helpers.pcap import rtp
from tests.helpers.sipclient import Call, SipClient, multipart
from tests.helpers.siprec import tone
from tests.helpers.srs import (
    RATE,
    Events,
    Samples,
    Srs,
    calllist,
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

SESSIONS = 100
FRAME = 160  # 20 ms of G.711 at 8 kHz
ANSWERED_PORT = re.compile(r"^m=audio (\d+) ", re.MULTILINE)


@pytest.fixture(scope="module")
def srs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Srs]:
    # Four ports a session (two streams, each with the odd port kept for its RTCP), and room
    # over the hundred, so that no session is refused for want of a port or a slot.
    # A playout delay of a second, as a site would set on a machine that shares its cores:
    # CI runs this beside three other test workers on two cores, which keep the media thread
    # from running for a few hundred milliseconds at a time (packets then came "late").
    started = start_srs(tmp_path_factory.mktemp("srs"), ports=4 * SESSIONS + 80,
                        max_sessions=SESSIONS + 10, playout_delay=1.0)
    yield started
    stop(started)


@pytest.fixture
def events(srs: Srs) -> Iterator[Events]:
    reader = Events(srs.running)
    yield reader
    reader.close()


def test_a_hundred_sessions_at_once(srs: Srs, events: Events, tmp_path: Path) -> None:
    audio = speech(1.5, seed=21)
    # A hundred calls within two seconds (-r 50), each streaming 1.5 s and hanging up 5 s
    # after its start: all hundred are up at once even when a busy machine slows sipp down,
    # and the BYE never cuts a stream that started late.
    sipp("siprec_audio_uac.xml", srs, tmp_path, audio, device="60", pause_ms=5000,
         calls=SESSIONS, rate=SESSIONS // 2, extra=("-rp", "1000"))
    agents = [f"60{n}" for n in range(1, SESSIONS + 1)]
    for agent in agents:
        events.wait(agent, "RECORDINGSTOPPED", timeout=20)
    heard = [(t, d) for t, d in events.sequence() if d in agents]
    first_stop = next(i for i, (t, _) in enumerate(heard) if t == "CALLSTOP")
    assert sum(t == "RECORDINGSTARTED" for t, _ in heard[:first_stop]) == SESSIONS
    reference = g711.decode(g711.encode(audio, "alaw"), "alaw")
    wrong: list[tuple[str, str]] = []
    for agent in agents:
        rows = calllist(srs, DEVICEID=agent)
        assert len(rows) == 1, agent
        _, corr, seconds = matches(left(Path(rows[0]["FILENAME"])), reference)
        if corr <= 0.99 or abs(seconds - 1.5) >= 0.1:
            wrong.append((f"{agent}: xcorr {corr:.3f}, {seconds:.2f} s", rows[0]["CALLINSTANCE"]))
    judge_busy(srs, wrong)


class PySrc:
    """One recording session from a Python SRC: a UDP socket per stream, bound where its SDP
    says, and the ports the recorder answered."""

    def __init__(self, srs: Srs, device: str, streams: int = 2) -> None:
        self.sockets = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(streams)]
        for sock in self.sockets:
            sock.bind(("127.0.0.1", 0))
        lines = ["v=0", "o=src 1 1 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1", "t=0 0"]
        for n, sock in enumerate(self.sockets, 1):
            lines += [f"m=audio {sock.getsockname()[1]} RTP/AVP 0", f"a=label:{n}",
                      "a=sendonly"]
        self.call = Call(SipClient("UDP", ("127.0.0.1", srs.sip_port)))
        response = self.call.invite(*multipart("\r\n".join([*lines, ""]), metadata(device)))
        assert response.status == 200, response
        self.ports = [int(p) for p in ANSWERED_PORT.findall(response.body.decode())]
        assert len(self.ports) == streams

    def play(self, samples: Samples, *, ssrc: int, seq: int = 0) -> None:
        """``samples`` as μ-law RTP to the first stream, paced in real time."""
        codes = g711.encode(samples, "ulaw").tobytes()
        origin = time.monotonic()
        for i in range(len(codes) // FRAME):
            time.sleep(max(0.0, origin + i * 0.02 - time.monotonic()))
            self.sockets[0].sendto(rtp(codes[i * FRAME:(i + 1) * FRAME], pt=0, seq=seq + i,
                                       ts=(seq + i) * FRAME, ssrc=ssrc),
                                   ("127.0.0.1", self.ports[0]))

    def bye(self) -> None:
        self.call.send("BYE")
        assert self.call.client.response(method="BYE").status == 200

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()
        self.call.client.close()


def metadata(device: str) -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<recording xmlns='urn:ietf:params:xml:ns:recording:1'>
  <datamode>complete</datamode>
  <session session_id="py-{device}"/>
  <participant participant_id="a"><nameID aor="sip:{device}@pbx.example.com"/></participant>
  <participant participant_id="b"><nameID aor="sip:555{device}@pstn.example.com"/></participant>
  <stream stream_id="s1" session_id="py-{device}"><label>1</label></stream>
  <stream stream_id="s2" session_id="py-{device}"><label>2</label></stream>
  <participantstreamassoc participant_id="a"><send>s1</send></participantstreamassoc>
  <participantstreamassoc participant_id="b"><send>s2</send></participantstreamassoc>
</recording>"""


def ulaw_round_trip(samples: Samples) -> Samples:
    return g711.decode(g711.encode(samples, "ulaw"), "ulaw")


def test_rtp_to_closed_ports_and_a_finished_sessions_ports_disturbs_nothing(
        srs: Srs, events: Events) -> None:
    first_audio = speech(1.0, seed=22)
    first = PySrc(srs, "8501")
    first.play(first_audio, ssrc=0xA1)
    first.bye()
    events.wait("8501", "RECORDINGSTOPPED")
    (first_row,) = calllist(srs, DEVICEID="8501")
    first_file = Path(first_row["FILENAME"])
    first_digest = hashlib.sha256(first_file.read_bytes()).digest()

    second = PySrc(srs, "8502")
    assert not set(second.ports) & set(first.ports)  # least recently freed first
    # The first call's stream goes on, loud, from where it was: to its old ports, and to
    # closed ports of the range (the RTCP ports, which the recorder never opens, and others).
    low, high = srs.rtp_ports
    closed = [p + 1 for p in first.ports + second.ports]
    closed += [p for p in range(low, high + 1, 7) if p not in second.ports][:30]
    stray = tone(1200, RATE, 3 * RATE, amplitude=30000)
    stop_stray = threading.Event()

    def spray() -> None:
        codes = g711.encode(stray, "ulaw").tobytes()
        seq = len(first_audio) // FRAME
        while not stop_stray.is_set():
            payload = codes[(seq * FRAME) % len(codes):][:FRAME]
            packet = rtp(payload, pt=0, seq=seq, ts=seq * FRAME, ssrc=0xA1)
            for port in first.ports + closed:
                first.sockets[0].sendto(packet, ("127.0.0.1", port))
            seq += 1
            time.sleep(0.02)

    sprayer = threading.Thread(target=spray, daemon=True)
    sprayer.start()
    try:
        second_audio = speech(1.5, seed=23)
        second.play(second_audio, ssrc=0xB2)
        time.sleep(0.2)  # the stray stream goes on after the second call's last packet
        second.bye()
        events.wait("8502", "RECORDINGSTOPPED")
    finally:
        stop_stray.set()
        sprayer.join(5)
    first.close()
    second.close()

    (second_row,) = calllist(srs, DEVICEID="8502")
    recorded = left(Path(second_row["FILENAME"]))
    _, corr, seconds = matches(recorded, ulaw_round_trip(second_audio))
    assert corr > 0.99
    assert abs(seconds - 1.5) < 0.1
    # The first call is as it was: one row, the same file.
    assert [r["RECORDID"] for r in calllist(srs, DEVICEID="8501")] == [first_row["RECORDID"]]
    assert hashlib.sha256(first_file.read_bytes()).digest() == first_digest
    assert "Traceback" not in srs.proc.log
