"""What a V.253 voice modem's voice data becomes: samples and events on the board's timeline.

This module owns the audio side of the conversation in ``recorder.drivers.v253``:

- the modem's compression methods (``AT+VSM=?`` answers, ``AudioFormat``) and how their bytes
  decode: G.711 mu-law through ``recorder.codecs.g711``, 8- or 16-bit linear PCM;
- the voice receive stream (``VoiceStream``): ``DLE DLE`` is one 0x10 data byte, ``DLE ETX``
  ends the stream, ``DLE X`` ... ``DLE .`` frames a complex event packet, and every other
  ``DLE x`` is an event code, handed on at its place in the audio (the audio before it first);
  a 16-bit sample split across reads is carried over to the next;
- the ``Timeline``, which delivers the samples and events to the sink in stream order and paces
  silence by the clock while there is no stream.

What the event codes mean for a call is the conversation's business, not this module's.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from recorder.codecs import g711
from recorder.drivers.base import MAX_CATCH_UP_SECONDS, Block, DriverSink
from recorder.drivers.lineevents import LineEvent

SAMPLE_RATE = 8000
DLE = 0x10
ETX = 0x03
MAX_PACKET = 1024  # longest DLE X packet kept

# The sample of every mu-law byte, as the stream decodes it.
ULAW_TO_INT16: npt.NDArray[np.int16] = g711.decode(np.arange(256, dtype=np.uint8), "ulaw")


# --- audio formats -----------------------------------------------------------------------------


@dataclass(frozen=True)
class AudioFormat:
    """One of the modem's AT+VSM methods: how its bytes become int16 samples."""

    method: int  # the <cml> number AT+VSM selects it by
    name: str  # as AT+VSM=? named it
    kind: str  # "ulaw" or "linear"
    bits: int = 8
    signed: bool = True

    @property
    def sample_bytes(self) -> int:
        return 2 if self.bits == 16 else 1

    def decode(self, data: bytes) -> npt.NDArray[np.int16]:
        """Whole samples only: ``len(data)`` must be a multiple of ``sample_bytes``."""
        if self.kind == "ulaw":
            return ULAW_TO_INT16[np.frombuffer(data, dtype=np.uint8)]
        if self.bits == 16:
            # V.253 sends 16-bit linear samples low byte first.
            if self.signed:
                return np.frombuffer(data, dtype="<i2").astype(np.int16)
            return (np.frombuffer(data, dtype="<u2").astype(np.int32) - 32768).astype(np.int16)
        if self.signed:
            return np.frombuffer(data, dtype=np.int8).astype(np.int16) << 8
        return ((np.frombuffer(data, dtype=np.uint8).astype(np.int16) - 128) << 8).astype(np.int16)


_ULAW_NAMES = frozenset({"ULAW", "MULAW", "G711U", "G711ULAW", "G711MULAW", "ULOG", "PCMU",
                         "ULAWPCM"})
_LINEAR_NAMES = {"SIGNEDPCM": True, "UNSIGNEDPCM": False, "LINEAR": True, "LINEARPCM": True,
                 "PCM": True, "8BITLINEAR": False, "16BITLINEAR": True}


def _split_fields(text: str) -> list[str]:
    """Split on commas outside quotes and parentheses: ``4,"G711U",8,0,(7200,8000),0,0``."""
    fields: list[str] = []
    depth, quoted = 0, False
    current: list[str] = []
    for ch in text:
        if ch == '"':
            quoted = not quoted
        elif ch == "(" and not quoted:
            depth += 1
        elif ch == ")" and not quoted:
            depth = max(0, depth - 1)
        elif ch == "," and not quoted and depth == 0:
            fields.append("".join(current).strip())
            current = []
            continue
        current.append(ch)
    fields.append("".join(current).strip())
    return fields


def _rate_allowed(text: str, rate: int) -> bool:
    """Whether a V.250 range like ``8000``, ``(7200,8000,11025)`` or ``(7200-8000)`` has rate."""
    body = text.strip().strip("()")
    if not body:
        return True  # not stated: assume the usual 8 kHz
    for part in body.split(","):
        low, _, high = part.strip().partition("-")
        try:
            if (int(low) <= rate <= int(high)) if high else int(low) == rate:
                return True
        except ValueError:
            return True  # a form this parser does not know: let AT+VSM itself decide
    return False


def parse_vsm_list(lines: list[str]) -> list[AudioFormat]:
    """The methods an ``AT+VSM=?`` answer lists that the driver can decode at 8 kHz."""
    found: list[AudioFormat] = []
    for raw in lines:
        text = raw.strip()
        if text.upper().startswith("+VSM:"):
            text = text[5:]
        fields = _split_fields(text)
        if len(fields) < 3:
            continue
        try:
            method, bits = int(fields[0]), int(fields[2])
        except ValueError:
            continue
        name = fields[1].strip('"').strip()
        if len(fields) > 4 and not _rate_allowed(fields[4], SAMPLE_RATE):
            continue
        # "U-Log/Author", "G.711 u-law", "μ-law": compare the method part, letters and digits.
        key = re.sub(r"[^A-Z0-9]", "", name.split("/")[0].replace("\u00b5", "U")
                     .replace("\u03bc", "U").upper())
        if key in _ULAW_NAMES and bits == 8:
            found.append(AudioFormat(method, name, "ulaw"))
        elif key in _LINEAR_NAMES and bits in (8, 16):
            found.append(AudioFormat(method, name, "linear", bits, _LINEAR_NAMES[key]))
    return found


def choose_format(formats: list[AudioFormat], encoding: str) -> AudioFormat | None:
    """The method to use for ``encoding``: mu-law as listed, linear preferring 16-bit signed."""
    matching = [f for f in formats if f.kind == encoding]
    if not matching:
        return None
    return max(matching, key=lambda f: (f.bits, f.signed))


# --- the clock-paced delivery to the sink -----------------------------------------------------


class Timeline:
    """Delivers audio and events to the sink in stream order, keeping pace with the clock.

    ``delivered`` counts frames given to the sink (lost ones included) since ``origin``, so
    ``(now - origin) * rate - delivered`` is how far delivery is behind real time.
    """

    def __init__(self, sink: DriverSink, rate: int, block_frames: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.sink = sink
        self.rate = rate
        self.block_frames = block_frames
        self.clock = clock
        self.origin: float | None = None
        self.delivered = 0
        self.lost = 0  # reported with the next block
        self._buf = np.empty(block_frames, dtype=np.int16)
        self._fill = 0

    def due(self, now: float) -> int:
        return 0 if self.origin is None else round((now - self.origin) * self.rate)

    def resume(self, now: float) -> None:
        """The device is (again) running: the time it was away is lost."""
        if self.origin is None:
            self.origin = now
            return
        self.flush()
        behind = self.due(now) - self.delivered
        if behind > 0:
            self.lost += behind
            self.delivered += behind

    def samples(self, data: npt.NDArray[np.int16]) -> None:
        i, n = 0, data.shape[0]
        while i < n:
            take = min(self.block_frames - self._fill, n - i)
            self._buf[self._fill:self._fill + take] = data[i:i + take]
            self._fill += take
            i += take
            if self._fill == self.block_frames:
                self.flush()

    def flush(self) -> None:
        """Deliver the samples held back, even a partial block (before an event)."""
        if self._fill:
            block = self._buf[:self._fill].copy()
            self._fill = 0
            self._deliver(block)

    def event(self, event: LineEvent) -> None:
        self.flush()
        self.sink.line(event)

    def silence(self, now: float) -> None:
        """No stream: deliver zeros up to real time, whole blocks at a time."""
        self.flush()
        behind = self.due(now) - self.delivered
        if behind > MAX_CATCH_UP_SECONDS * self.rate:
            # A stalled machine: resume from now, and say what was skipped.
            skipped = behind - self.block_frames
            self.lost += skipped
            self.delivered += skipped
            behind -= skipped
        while behind >= self.block_frames:
            self._deliver(np.zeros(self.block_frames, dtype=np.int16))
            behind -= self.block_frames

    def _deliver(self, block: npt.NDArray[np.int16]) -> None:
        lost, self.lost = self.lost, 0
        self.delivered += block.shape[0]
        out: Block = block.reshape(-1, 1)
        self.sink.audio(out, lost)



# --- the voice receive stream ------------------------------------------------------------------


class VoiceStream:
    """Unshields one port's voice receive stream into samples, event codes and packets.

    Samples go to the timeline as they are decoded; ``on_code`` gets every ``DLE x`` event code
    (but ``DLE DLE``, ``DLE ETX`` and the packet brackets) and ``on_packet`` the body of every
    ``DLE X`` ... ``DLE .`` packet, each after the audio that came before it.
    """

    def __init__(self, timeline: Timeline, on_code: Callable[[int], None],
                 on_packet: Callable[[bytes], None]) -> None:
        self.timeline = timeline
        self.format = AudioFormat(0, "G711U", "ulaw")
        self._on_code = on_code
        self._on_packet = on_packet
        self._dle = False
        self._carry = b""  # half a 16-bit sample split across reads
        self._packet: bytearray | None = None  # inside DLE X ... DLE .

    def start(self) -> None:
        """A new stream begins (CONNECT): nothing of an earlier one carries over."""
        self._dle = False
        self._carry = b""
        self._packet = None

    def feed(self, data: bytes, i: int) -> tuple[int, bool]:
        """Take ``data[i:]`` up to the stream's end; where it stopped, and whether DLE ETX
        ended the stream there (what follows it is text again)."""
        n = len(data)
        payload = bytearray()
        while i < n:
            if self._dle:
                self._dle = False
                code = data[i]
                i += 1
                if code == DLE:
                    self._byte_out(payload, DLE)
                    continue
                self._audio(payload)
                payload.clear()
                if code == ETX:
                    self._carry = b""
                    self._packet = None
                    return i, True
                self._code(code)
                continue
            j = data.find(DLE, i)
            end = n if j < 0 else j
            if self._packet is not None:
                self._packet += data[i:end][:max(0, MAX_PACKET - len(self._packet))]
            else:
                payload += data[i:end]
            i = end
            if j >= 0:
                i += 1
                self._dle = True
        self._audio(payload)
        return i, False

    def _byte_out(self, payload: bytearray, byte: int) -> None:
        if self._packet is not None:
            if len(self._packet) < MAX_PACKET:
                self._packet.append(byte)
        else:
            payload.append(byte)

    def _audio(self, payload: bytearray) -> None:
        if not payload and not self._carry:
            return
        data = self._carry + bytes(payload)
        whole = len(data) - len(data) % self.format.sample_bytes
        self._carry = data[whole:]
        if whole:
            self.timeline.samples(self.format.decode(data[:whole]))

    def _code(self, code: int) -> None:
        if code == ord("X"):
            self._packet = bytearray()
        elif code == ord(".") and self._packet is not None:
            packet, self._packet = bytes(self._packet), None
            self._on_packet(packet)
        else:
            self._on_code(code)


__all__ = [
    "DLE",
    "ETX",
    "SAMPLE_RATE",
    "ULAW_TO_INT16",
    "AudioFormat",
    "Timeline",
    "VoiceStream",
    "choose_format",
    "parse_vsm_list",
]
