"""What the SIPREC tests share: the fixtures as wire bytes, RTP streams, tones and their pitch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

from recorder.drivers.siprec.rtp import RtpPacket

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "siprec"


def fixture_text(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def wire(text: str) -> bytes:
    """A fixture as it travels: CRLF line ends and ``Content-Length: [length]`` filled in."""
    head, _, body = text.replace("\r\n", "\n").partition("\n\n")
    body_bytes = body.replace("\n", "\r\n").encode()
    head = head.replace("[length]", str(len(body_bytes)))
    return head.replace("\n", "\r\n").encode() + b"\r\n\r\n" + body_bytes


def rfc7866_invite() -> bytes:
    """RFC 7866's example INVITE with its metadata in place."""
    metadata = fixture_text("rfc7866_metadata.xml").rstrip("\n")
    return wire(fixture_text("rfc7866_invite.sip").replace("[metadata]", metadata))


def cube_invite() -> bytes:
    return wire(fixture_text("cube_nbr_invite.sip"))


def tone(freq: float, rate: int, samples: int, amplitude: float = 10000.0
         ) -> npt.NDArray[np.int16]:
    t = np.arange(samples) / rate
    return np.round(np.sin(2 * np.pi * freq * t) * amplitude).astype(np.int16)


def peak_hz(samples: npt.NDArray[np.int16], rate: int) -> float:
    """The frequency of the strongest bin of a Hann-windowed spectrum."""
    x = samples.astype(np.float64) * np.hanning(len(samples))
    spectrum = np.abs(np.fft.rfft(x))
    return float(np.argmax(spectrum)) * rate / len(samples)


def packets(payloads: list[bytes], *, ticks: int, ssrc: int = 0x1234, seq: int = 1000,
            ts: int = 50_000, pt: int = 0) -> list[RtpPacket]:
    """One packet per payload, consecutive sequence numbers, ``ticks`` apart (with wraps)."""
    return [RtpPacket(pt, (seq + i) % 65536, (ts + i * ticks) % 2**32, ssrc, p)
            for i, p in enumerate(payloads)]
