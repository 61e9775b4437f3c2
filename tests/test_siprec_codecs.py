"""G.722 and G.729 recorded end to end: a real recorderd with a siprec board, and sipp (Debian's
sip-tester) as the SRC playing a capture the test writes (tests/helpers/pcap.py) with
``play_pcap_audio``: RTP packets of a known tone then speech, encoded by encoders that are not
ours (FFmpeg's G.722 through PyAV, Belledonne's bcg729 for G.729), offered in the SDP as
RFC 3551 says (G.722 payload 9 on an 8000 clock for 16 kHz audio; G.729 payload 18 with
annexb=no).

What must hold, in the file a user would play: the tone at its pitch (a G.722 decoded at the
wrong rate is an octave off), the speech the same as the source's (G.722) or as bcg729's own
decoding of the frames sent (G.729, which keeps a voice's spectrum more than its waveform),
and the recording as long as the capture, within 100 ms (a wrong RTP clock halves or doubles
it)."""

from __future__ import annotations

import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.pcap import rtp_stream, write_pcap
from tests.helpers.siprec import peak_hz, tone
from tests.helpers.srs import (
    RATE,
    Events,
    Samples,
    Srs,
    calllist,
    left,
    matches,
    run_sipp,
    sipp_command,
    sound_seconds,
    speech,
    start_srs,
    stop,
)
from tests.helpers.voicecodecs import G722_RATE, bcg729, g722_payloads, g729_decode, g729_payloads


def _raw_sockets() -> bool:
    """Whether sipp's play_pcap_audio can send here: it writes UDP headers on a raw socket."""
    try:
        socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP).close()
    except PermissionError:
        return False
    return True


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("sipp") is None,
                       reason="needs sipp (apt-get install sip-tester; scripts/test does)"),
    pytest.mark.skipif(not _raw_sockets(), reason="sipp's play_pcap_audio needs raw sockets "
                       "(root or CAP_NET_RAW)"),
]
PROCESS_FIXTURES = frozenset({"srs"})

TONE_HZ = 1000
TONE_SECONDS = 1.0
VOICE_SECONDS = 1.0
SECONDS = TONE_SECONDS + VOICE_SECONDS


@pytest.fixture(scope="module")
def srs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Srs]:
    started = start_srs(tmp_path_factory.mktemp("srs"), ports=40, max_sessions=4)
    yield started
    stop(started)


@pytest.fixture
def events(srs: Srs) -> Iterator[Events]:
    reader = Events(srs.running)
    yield reader
    reader.close()


def record_capture(srs: Srs, events: Events, directory: Path, payloads: list[bytes], *,
                   pt: int, rtpmap: str, attr: str, device: str) -> Samples:
    """Play ``payloads`` (20 ms each) as the first stream of one sipp call; the recorded
    party's side of its recording."""
    write_pcap(directory / "audio.pcap", rtp_stream(payloads, pt=pt, ticks=160))
    command = sipp_command("siprec_pcap_uac.xml", srs, pause_ms=round(SECONDS * 1000) + 300,
                           variables={"pt": str(pt), "device": device, "rtpmap": rtpmap,
                                      "attr": attr})
    run_sipp(command, directory)
    agent = f"{device}1"
    events.wait(agent, "RECORDINGSTOPPED")
    rows = calllist(srs, DEVICEID=agent)
    assert len(rows) == 1
    return left(Path(rows[0]["FILENAME"]))


def tone_and_voice(recorded: Samples) -> tuple[Samples, Samples]:
    """The recording's tone (its steady middle) and its voice part, by where its sound
    begins."""
    start = int(np.flatnonzero(recorded)[0])
    edge = start + round(TONE_SECONDS * RATE)
    return recorded[start + RATE // 10:edge - RATE // 10], recorded[edge - RATE // 10:]


def test_g722_from_a_capture(srs: Srs, events: Events, tmp_path: Path) -> None:
    source = np.concatenate([tone(TONE_HZ, G722_RATE, round(TONE_SECONDS * G722_RATE)),
                             speech(VOICE_SECONDS, seed=11, rate=G722_RATE)])
    recorded = record_capture(srs, events, tmp_path, g722_payloads(source), pt=9,
                              rtpmap="G722/8000", attr="ptime:20", device="82")
    assert abs(sound_seconds(recorded) - SECONDS) < 0.1
    tone_part, voice = tone_and_voice(recorded)
    assert abs(peak_hz(tone_part, RATE) - TONE_HZ) < 10
    assert np.abs(tone_part).max() > 5000  # the tone, not a whisper of it
    # The stored 8 kHz voice against the same voice made at 8 kHz: FFmpeg's G.722 keeps the
    # waveform (0.98 measured); a decoder at the wrong rate or a wrong clock gives about 0.
    _, corr, _ = matches(voice, speech(VOICE_SECONDS, seed=11, rate=RATE))
    assert corr > 0.95


@pytest.mark.skipif(bcg729() is None, reason="needs libbcg729 (apt-get install libbcg729-0; "
                    "scripts/test does) to encode G.729")
def test_g729_from_a_capture(srs: Srs, events: Events, tmp_path: Path) -> None:
    lib = bcg729()
    assert lib is not None
    source = np.concatenate([tone(TONE_HZ, RATE, round(TONE_SECONDS * RATE)),
                             speech(VOICE_SECONDS, seed=12)])
    payloads = g729_payloads(lib, source)
    recorded = record_capture(srs, events, tmp_path, payloads, pt=18, rtpmap="G729/8000",
                              attr="fmtp:18 annexb=no", device="83")
    assert abs(sound_seconds(recorded) - SECONDS) < 0.1
    tone_part, _ = tone_and_voice(recorded)
    assert abs(peak_hz(tone_part, RATE) - TONE_HZ) < 10
    # Against bcg729's decoding of the very frames sent: 0.99 and more measured (FFmpeg's
    # decoder and bcg729's agree); against the source itself G.729 gives about 0.6 on this
    # speech, and a wrong decoder about 0.
    _, corr, _ = matches(recorded, g729_decode(lib, payloads))
    assert corr > 0.95
