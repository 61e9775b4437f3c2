"""The V.253 voice-modem conversation of one open port: what the driver says and hears.

How a call on a line the modem only listens to is followed:

1. Idle, in voice command mode: the modem reports ``RING`` and the formatted caller ID lines
   (``DATE = ..``, ``TIME = ..``, ``NMBR = ..``, ``NAME = ..``) between the first two rings.
   Each RING is a RING event; the caller ID block becomes one CALLER_ID event once all four
   fields are in, another line arrives, or no field came for CALLER_ID_SETTLE_SECONDS.
2. Once the caller ID is in (or at the second ring without one, or the first ring when caller
   ID is off) the driver starts voice receive (``AT+VRX``, answered ``CONNECT``) and stays in it
   for the call: further rings, off-hook, the speech and the hang-up arrive in the stream.
3. A hang-up sign (on-hook, loop-current drop, busy, dial tone) or a ring that is not answered
   within ``ring_timeout_seconds`` ends receive: the driver sends ``DLE !`` (receive abort), the
   modem closes the stream with ``DLE ETX`` and ``OK``, and the driver waits for the next ring.
   A stream the modem ends on its own while the line is still off-hook is restarted at once,
   and OFF_HOOK (source "resumed") is reported again so the rest of the call is recorded.

Calls that do not ring (outgoing calls) are not followed: a modem reports the local handset
only in voice data mode, which the driver leaves while idle to receive the caller ID text.

In the stream, ``DLE DLE`` is one 0x10 data byte; every other ``DLE x`` is an event, reported
at its place in the audio (the audio before it is delivered first). The mapping, by V.253's
simple event codes as the Rockwell/Conexant, USR, ZyXEL and Multi-Tech manuals list them:

- ``R`` ring: RING
- ``H`` local handset off-hook (line current detected): OFF_HOOK, source "handset"
- ``h`` local handset on-hook (line current break): ON_HOOK, source "handset"
- ``P`` extension phone off-hook: OFF_HOOK, source "extension"
- ``p`` extension phone on-hook: ON_HOOK, source "extension"
- ``l`` loop current interruption (the far end hung up): LOOP_DROP
- ``b`` busy: BUSY
- ``d`` dial tone: DIAL_TONE
- ``s`` presumed hang-up (silence) time-out: SILENCE, kind "silence"
- ``q`` presumed end of message (quiet) time-out: SILENCE, kind "quiet"
- ``ETX`` end of the voice data stream: END_OF_STREAM (also reported, reason "device lost",
  when the port vanishes during voice receive)
- ``X`` ... ``.`` complex event packet: CALLER_ID, when it holds DATE/TIME/NMBR/NAME lines

OFF_HOOK and ON_HOOK describe the line: OFF_HOOK when the first phone picks up, ON_HOOK when
the last one hangs up (an extension that joins or leaves a call in progress is only logged),
so a line trigger does not end a recording while someone is still on the line. DTMF digits,
fax/data tones and buffer under-runs are logged at debug level; a receive buffer overrun
(``o``) is logged as a warning (the modem does not say how much it dropped).

Audio is delivered continuously, in ``block_ms`` blocks at 8 kHz: the decoded stream during
voice receive (mu-law or linear PCM), silence paced by the clock while there is no stream, so
the board's timeline keeps pace with real time. How the stream's bytes become samples, codes
and packets, and how they reach the sink, is ``recorder.drivers.v253stream``'s; this module
owns the AT-command conversation and what each event means for the call.
"""

from __future__ import annotations

import enum
import logging
import re
import time
from collections.abc import Callable, Mapping

from serial.threaded import Protocol

from recorder.drivers.lineevents import LineEvent, LineEventKind
from recorder.drivers.v253stream import AudioFormat, Timeline, VoiceStream
from recorder.errors import DriverError

logger = logging.getLogger(__name__)

RECEIVE_ABORT = b"\x10!"  # DLE ! : end voice receive now (V.253 receive abort)
TICK_SECONDS = 0.02  # longest read; how often silence is paced and time-outs are checked
CALLER_ID_SETTLE_SECONDS = 0.5  # caller ID fields arrive together; a pause ends the block
CALLER_ID_FIELDS = ("DATE", "TIME", "NMBR", "NAME")
MAX_LINE = 512  # longest text line kept; a modem never sends more in command mode

_CALLER_ID_LINE = re.compile(r"^(DATE|TIME|NMBR|NAME|MESG|DDN_NMBR)\s*=\s*(.*)$", re.IGNORECASE)
_FINAL_OK = frozenset({"OK", "CONNECT", "VCON"})
_FINAL_ERROR = frozenset({"ERROR", "NO CARRIER", "BUSY", "NO DIALTONE", "NO DIAL TONE",
                          "NO ANSWER"})


# --- the protocol: one open port's conversation ------------------------------------------------


class Mode(enum.Enum):
    SETUP = "setup"  # the set-up dialogue: lines are answers to commands
    IDLE = "idle"  # voice command mode, waiting for a call
    ENTERING = "entering"  # AT+VRX sent, waiting for CONNECT
    STREAMING = "streaming"  # voice receive: the stream is audio and DLE codes
    ABORTING = "aborting"  # DLE ! sent, waiting for DLE ETX


class ModemError(DriverError):
    """The modem refused a command, did not answer, or broke the protocol."""


class Stopped(Exception):
    """The driver was stopped in the middle of the set-up dialogue."""


_EVENTS: Mapping[int, tuple[LineEventKind, Mapping[str, str]]] = {
    ord("R"): (LineEventKind.RING, {}),
    ord("l"): (LineEventKind.LOOP_DROP, {}),
    ord("b"): (LineEventKind.BUSY, {}),
    ord("d"): (LineEventKind.DIAL_TONE, {}),
    ord("s"): (LineEventKind.SILENCE, {"kind": "silence"}),
    ord("q"): (LineEventKind.SILENCE, {"kind": "quiet"}),
}
_HOOK = {ord("H"): ("handset", True), ord("h"): ("handset", False),
         ord("P"): ("extension", True), ord("p"): ("extension", False)}
# Signs that the call is over: receive ends, and the driver waits for the next ring.
_HANG_UP = frozenset({LineEventKind.LOOP_DROP, LineEventKind.BUSY, LineEventKind.DIAL_TONE,
                      LineEventKind.ON_HOOK})


class V253Protocol(Protocol):
    """Parses what the modem sends (text lines, or the DLE-shielded voice stream) and drives
    the call-following state machine. Runs on the driver's reader thread only."""

    def __init__(self, key: str, timeline: Timeline, *, caller_id: bool,
                 command_timeout: float, ring_timeout: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.key = key
        self.timeline = timeline
        self.caller_id = caller_id
        self.command_timeout = command_timeout
        self.ring_timeout = ring_timeout
        self.clock = clock
        self._voice = VoiceStream(timeline, self._code, self._complex_event)
        self.mode = Mode.SETUP
        self._write: Callable[[bytes], object] = lambda data: None
        self._line = bytearray()
        self._skip_lf = False
        # set-up dialogue
        self._answer: list[str] = []
        self._final: str | None = None
        self._early: list[str] = []  # RING and caller ID lines that came during set-up
        # call following
        self._rings = 0
        self._last_ring = 0.0
        self._cid: dict[str, str] = {}
        self._cid_at = 0.0
        self._deadline = 0.0  # of ENTERING or ABORTING
        self._hooks: set[str] = set()  # phones off-hook on the line
        self._ended = False  # a hang-up sign was seen in this stream
        self._resume_off_hook = False

    @property
    def format(self) -> AudioFormat:
        """The AT+VSM method the modem was set to: how the stream's bytes decode."""
        return self._voice.format

    @format.setter
    def format(self, value: AudioFormat) -> None:
        self._voice.format = value

    # --- serial.threaded.Protocol ------------------------------------------------------------

    def connection_made(self, transport: object) -> None:
        # Anything with write(bytes): a ReaderThread, or the driver's own _Transport.
        write = getattr(transport, "write", None)
        if callable(write):
            self._write = write

    def connection_lost(self, exc: BaseException | None) -> None:
        # What was captured before the port vanished still belongs on the timeline.
        self.timeline.flush()
        if self.mode in (Mode.STREAMING, Mode.ABORTING):
            # The stream is gone with the port; a call in progress ends here, or a line
            # trigger would run its recording on into the next call.
            self.timeline.event(LineEvent(0, LineEventKind.END_OF_STREAM,
                                          {"reason": "device lost"}))
        self.mode = Mode.SETUP
        self._write = lambda data: None

    def data_received(self, data: bytes) -> None:
        i = 0
        while i < len(data):
            if self.mode in (Mode.STREAMING, Mode.ABORTING):
                i = self._stream(data, i)
            else:
                i = self._text(data, i)

    # --- commands (set-up) -------------------------------------------------------------------

    def send_command(self, command: str) -> None:
        self._answer, self._final = [], None
        self._write(command.encode("ascii") + b"\r")

    def result(self) -> tuple[str | None, list[str]]:
        """The final result of the last command (None while pending) and its other lines."""
        return self._final, self._answer

    def close_stream(self) -> None:
        """Ask the modem to end voice receive (when stopping): it would stay on the line."""
        if self.mode in (Mode.STREAMING, Mode.ENTERING):
            self._write(RECEIVE_ABORT)

    def start_following(self) -> None:
        """Set-up is done (and the timeline running): follow calls from here on."""
        self.mode = Mode.IDLE
        self._rings = 0
        self._cid = {}
        early, self._early = self._early, []
        for line in early:
            self._on_line(line)

    # --- time ---------------------------------------------------------------------------------

    def tick(self, now: float) -> None:
        """Called at least every TICK_SECONDS: pace silence, notice what timed out."""
        if self.mode in (Mode.IDLE, Mode.ENTERING):
            self.timeline.silence(now)
        if self.mode is Mode.IDLE:
            if self._cid and now - self._cid_at >= CALLER_ID_SETTLE_SECONDS:
                self._caller_id_done()
            elif self._rings and now - self._last_ring > self.ring_timeout:
                logger.info("%s: the line stopped ringing; waiting for the next call", self.key)
                self._rings = 0
                self._cid = {}
        elif self.mode is Mode.ENTERING and now > self._deadline:
            raise ModemError(f"{self.key}: no answer to AT+VRX within "
                             f"{self.command_timeout:g} s")
        elif self.mode is Mode.STREAMING:
            if (not self._hooks and not self._ended and self._rings
                    and now - self._last_ring > self.ring_timeout):
                logger.info("%s: the call was not answered; leaving voice receive", self.key)
                self._abort(now)
        elif self.mode is Mode.ABORTING and now > self._deadline:
            raise ModemError(f"{self.key}: the modem did not end voice receive (DLE !) within "
                             f"{self.command_timeout:g} s")

    # --- text ---------------------------------------------------------------------------------

    def _text(self, data: bytes, i: int) -> int:
        n = len(data)
        while i < n:
            byte = data[i]
            i += 1
            if byte in (0x0D, 0x0A):
                if self._line:
                    line = self._line.decode("ascii", "replace").strip()
                    self._line.clear()
                    self._on_line(line)
                    if self.mode is Mode.STREAMING:
                        # CONNECT<CR><LF>: the LF still belongs to the text.
                        self._skip_lf = byte == 0x0D
                        return i
            elif len(self._line) < MAX_LINE:
                self._line.append(byte)
        return i

    def _on_line(self, line: str) -> None:
        if not line:
            return
        upper = line.upper()
        if upper.startswith("AT"):
            return  # our own command, echoed
        if self.mode is Mode.SETUP:
            if upper in _FINAL_OK:
                self._final = "OK"
            elif upper in _FINAL_ERROR or upper.startswith("+CME ERROR"):
                self._final = line
            elif upper == "RING" or _CALLER_ID_LINE.match(line):
                self._early.append(line)  # a call began while the modem was being set up
            else:
                self._answer.append(line)
            return
        now = self.clock()
        cid = _CALLER_ID_LINE.match(line)
        if cid:
            self._cid[cid.group(1).upper()] = cid.group(2).strip()
            self._cid_at = now
            if all(f in self._cid for f in CALLER_ID_FIELDS):
                self._caller_id_done()
            return
        if self._cid:
            self._caller_id_done()
        if upper == "RING" or upper.startswith("RING "):
            self._rings += 1
            self._last_ring = now
            self.timeline.event(LineEvent(0, LineEventKind.RING))
            if self.mode is Mode.IDLE and (not self.caller_id or self._rings >= 2):
                self._enter_receive(now)
        elif self.mode is Mode.ENTERING and upper == "CONNECT":
            self._stream_started()
        elif self.mode is Mode.ENTERING and (upper in _FINAL_ERROR
                                              or upper.startswith("+CME ERROR")):
            logger.warning("%s: the modem answered %s to AT+VRX; this call is not recorded",
                           self.key, line)
            self.mode = Mode.IDLE
            self._rings = 0
        elif upper not in _FINAL_OK:
            logger.debug("%s: modem says %r", self.key, line)

    def _caller_id_done(self) -> None:
        fields, self._cid = self._cid, {}
        self.timeline.event(LineEvent(0, LineEventKind.CALLER_ID, fields))
        if self.mode is Mode.IDLE:
            now = self.clock()
            self._rings = max(self._rings, 1)  # caller ID only comes with a ringing line
            self._last_ring = now  # the no-answer time counts from here
            self._enter_receive(now)

    def _enter_receive(self, now: float) -> None:
        self.mode = Mode.ENTERING
        self._deadline = now + self.command_timeout
        self._write(b"AT+VRX\r")

    def _stream_started(self) -> None:
        self.mode = Mode.STREAMING
        self._voice.start()
        self._ended = False
        self._hooks = set()
        if self._resume_off_hook:
            self._resume_off_hook = False
            self._hooks.add("resumed")
            self.timeline.event(LineEvent(0, LineEventKind.OFF_HOOK, {"source": "resumed"}))

    # --- the voice stream --------------------------------------------------------------------

    def _stream(self, data: bytes, i: int) -> int:
        if self._skip_lf:
            self._skip_lf = False
            if data[i] == 0x0A:
                i += 1
        i, ended = self._voice.feed(data, i)
        if ended:
            self._stream_ended()
        return i

    def _code(self, code: int) -> None:
        now = self.clock()
        if code in _HOOK:
            source, off = _HOOK[code]
            self._hook(source, off, now)
        elif code in _EVENTS:
            kind, data = _EVENTS[code]
            if kind is LineEventKind.RING:
                self._rings += 1
                self._last_ring = now
            self.timeline.event(LineEvent(0, kind, data))
            if kind in _HANG_UP:
                self._hang_up(now)
        elif code == ord("o"):
            logger.warning("%s: the modem's receive buffer overran; some audio was lost",
                           self.key)
        else:
            logger.debug("%s: DLE %r ignored", self.key, chr(code))

    def _hook(self, source: str, off: bool, now: float) -> None:
        was_off = bool(self._hooks)
        if off:
            self._hooks.add(source)
        else:
            self._hooks.discard(source)
            self._hooks.discard("resumed")  # whoever it was has hung up
        if off and not was_off:
            self.timeline.event(LineEvent(0, LineEventKind.OFF_HOOK, {"source": source}))
        elif not off and was_off and not self._hooks:
            self.timeline.event(LineEvent(0, LineEventKind.ON_HOOK, {"source": source}))
            self._hang_up(now)
        elif was_off:
            logger.info("%s: %s %s while the line is in use", self.key, source,
                        "picked up" if off else "hung up")
        else:
            logger.debug("%s: %s hung up; the call had already ended", self.key, source)

    def _hang_up(self, now: float) -> None:
        self._ended = True
        self._hooks.clear()
        self._abort(now)

    def _abort(self, now: float) -> None:
        if self.mode is Mode.STREAMING:
            self.mode = Mode.ABORTING
            self._deadline = now + self.command_timeout
            self._write(RECEIVE_ABORT)

    def _complex_event(self, packet: bytes) -> None:
        fields: dict[str, str] = {}
        for raw in re.split(rb"[\r\n]+", packet):
            match = _CALLER_ID_LINE.match(raw.decode("ascii", "replace").strip())
            if match:
                fields[match.group(1).upper()] = match.group(2).strip()
        if fields:
            self.timeline.event(LineEvent(0, LineEventKind.CALLER_ID, fields))
        else:
            logger.debug("%s: complex event %r ignored", self.key, packet)

    def _stream_ended(self) -> None:
        self.timeline.event(LineEvent(0, LineEventKind.END_OF_STREAM))
        still_off_hook = bool(self._hooks) and not self._ended
        self._hooks = set()
        self._rings = 0
        self._cid = {}
        self.mode = Mode.IDLE
        if still_off_hook:
            # The modem ended the stream by itself (an inactivity timer) during a call.
            logger.info("%s: voice receive ended during a call; restarting it", self.key)
            self._resume_off_hook = True
            self._enter_receive(self.clock())


__all__ = [
    "CALLER_ID_FIELDS",
    "CALLER_ID_SETTLE_SECONDS",
    "RECEIVE_ABORT",
    "TICK_SECONDS",
    "Mode",
    "ModemError",
    "Stopped",
    "V253Protocol",
]
