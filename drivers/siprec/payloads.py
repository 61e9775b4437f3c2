"""RTP payload formats: the RFC 3551 static table, the formats we decode, and their clocks.

Pure data shared by the SDP answer (which codecs to accept), the decoders and the jitter
buffer (RTP clock against audio rate). Two codecs run an RTP clock that is not their audio
rate: G.722 keeps an 8 kHz RTP clock for 16 kHz audio (RFC 3551 §4.5.2, an error kept for
compatibility) and Opus always signals 48000/2 whatever it carries (RFC 7587 §7).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PayloadFormat:
    """One payload type of an m-line: its number and what its rtpmap (or RFC 3551) says."""

    pt: int
    name: str  # encoding name as offered; compare with ``key``
    clock_rate: int
    channels: int = 1
    fmtp: str = ""

    @property
    def key(self) -> str:
        return self.name.upper()

    def rtpmap(self) -> str:
        """The ``a=rtpmap`` value for this format (channels only when not 1, RFC 4566 §6)."""
        tail = f"/{self.channels}" if self.channels != 1 else ""
        return f"{self.pt} {self.name}/{self.clock_rate}{tail}"


# RFC 3551 table 4, audio only. A static type with an rtpmap is read from the rtpmap instead.
STATIC: dict[int, PayloadFormat] = {
    0: PayloadFormat(0, "PCMU", 8000),
    3: PayloadFormat(3, "GSM", 8000),
    4: PayloadFormat(4, "G723", 8000),
    5: PayloadFormat(5, "DVI4", 8000),
    6: PayloadFormat(6, "DVI4", 16000),
    7: PayloadFormat(7, "LPC", 8000),
    8: PayloadFormat(8, "PCMA", 8000),
    9: PayloadFormat(9, "G722", 8000),
    10: PayloadFormat(10, "L16", 44100, 2),
    11: PayloadFormat(11, "L16", 44100),
    12: PayloadFormat(12, "QCELP", 8000),
    13: PayloadFormat(13, "CN", 8000),
    14: PayloadFormat(14, "MPA", 90000),
    15: PayloadFormat(15, "G728", 8000),
    16: PayloadFormat(16, "DVI4", 11025),
    17: PayloadFormat(17, "DVI4", 22050),
    18: PayloadFormat(18, "G729", 8000),
}

# Codecs we decode: encoding name -> (RTP clock it must be offered with, audio rate it decodes
# to). Anything else is refused in the answer.
DECODABLE: dict[str, tuple[int, int]] = {
    "PCMU": (8000, 8000),
    "PCMA": (8000, 8000),
    "G722": (8000, 16000),
    "G729": (8000, 8000),
    "OPUS": (48000, 48000),
}

TELEPHONE_EVENT = "TELEPHONE-EVENT"  # RFC 4733: counted, never stored
COMFORT_NOISE = "CN"  # RFC 3389: becomes silence


def can_decode(fmt: PayloadFormat) -> bool:
    """True for a format our decoders take, at the clock its RFC gives it."""
    entry = DECODABLE.get(fmt.key)
    if entry is None or fmt.clock_rate != entry[0]:
        return False
    # Opus is always signalled with two channels (RFC 7587); the others are mono only.
    return fmt.channels == 2 if fmt.key == "OPUS" else fmt.channels == 1


def audio_rate(fmt: PayloadFormat) -> int:
    """The sample rate a decodable format's decoder produces."""
    return DECODABLE[fmt.key][1]


def is_event(fmt: PayloadFormat) -> bool:
    return fmt.key == TELEPHONE_EVENT


def is_comfort_noise(fmt: PayloadFormat) -> bool:
    return fmt.key == COMFORT_NOISE
