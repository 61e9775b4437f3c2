"""A V.253 voice modem on a pty, for tests: answers AT commands and plays scripted calls.

The modem's side is the pty master; the driver opens the slave through a symlink in a temp
directory (``emulator.port``), so ``lose()`` can make the port vanish (the master closes, the
link goes) and ``restore()`` bring it back on a new pty under the same path, like a USB modem
unplugged and plugged in again.

Commands: ``AT``, ``ATZ``, ``ATE0``/``ATE1``, ``AT+FCLASS=0|8``, ``AT+FCLASS?``, ``AT+VSM=?``,
``AT+VSM=<n>,8000``, ``AT+VLS=<n>``, ``AT+VCID=0|1``, ``AT+VRX`` (``CONNECT``, then the voice
stream), and in the stream ``DLE !`` or ``DLE ^`` (abort: ``DLE ETX``, then ``OK``). Anything
else answers ERROR, unless ``answers`` says otherwise (a reply, or None for no reply at all).
Echo is on after ATZ, as on a real modem.

A call is a script of steps run in order by the player thread: ``Ring`` (a RING line in command
mode, ``DLE R`` in the stream), ``CallerId`` (formatted caller ID lines), ``Pause`` (silence in
the stream, or just time), ``WaitForStream``, ``Event`` (a DLE code at that point of the stream),
``Audio`` (int16 samples, encoded as the selected AT+VSM method, DLE-shielded), ``EndStream``
(``DLE ETX`` + ``OK``). The stream is paced in real time, 8000 samples a second in 20 ms
chunks, and silence fills it whenever the script has nothing to say.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
import time
import tty
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile

from recorder.drivers.registry import create_driver
from recorder.drivers.settings import VoiceModemBoardConfig
from tests.helpers.contract import Harness

logger = logging.getLogger(__name__)

RATE = 8000
CHUNK = 160  # samples per write: 20 ms
DLE = 0x10
ETX = 0x03
WRITE_STALL_SECONDS = 1.0  # a pty nobody reads fills up; the modem then drops what it sends

DEFAULT_VSM: tuple[str, ...] = (
    '0,"SIGNED PCM",8,0,8000,0,0',
    '1,"UNSIGNED PCM",8,0,8000,0,0',
    '2,"SIGNED PCM",16,0,8000,0,0',
    '4,"G711U",8,0,(7200,8000),0,0',
    '5,"G711A",8,0,8000,0,0',
    '129,"IMA ADPCM",4,0,8000,0,0',
)


def ulaw_encode(samples: np.ndarray) -> bytes:
    """G.711 mu-law as the reference encoder (Sun's g711.c) does it: on the 14-bit sample."""
    x = samples.astype(np.int32) >> 2
    negative = x < 0
    magnitude = np.minimum(np.where(negative, -x, x), 8159) + 33
    segment = np.floor(np.log2(magnitude)).astype(np.int32) - 5
    code = np.where(segment >= 8, 0x7F,
                    (np.minimum(segment, 7) << 4) | ((magnitude >> (np.minimum(segment, 7) + 1))
                                                     & 0x0F))
    return (code ^ np.where(negative, 0x7F, 0xFF)).astype(np.uint8).tobytes()


def _signed8(samples: np.ndarray) -> bytes:
    return (samples.astype(np.int16) >> 8).astype(np.int8).tobytes()


def _unsigned8(samples: np.ndarray) -> bytes:
    return ((samples.astype(np.int16) >> 8) + 128).astype(np.uint8).tobytes()


def _signed16(samples: np.ndarray) -> bytes:
    return samples.astype("<i2").tobytes()


ENCODERS: dict[int, Callable[[np.ndarray], bytes]] = {
    0: _signed8, 1: _unsigned8, 2: _signed16, 4: ulaw_encode,
}


def shield(data: bytes) -> bytes:
    """DLE shielding: a 0x10 data byte travels as DLE DLE."""
    return data.replace(b"\x10", b"\x10\x10")


def read_wav(path: str | Path) -> np.ndarray:
    data, rate = soundfile.read(str(path), dtype="int16", always_2d=True)
    assert rate == RATE, f"{path}: {rate} Hz, the modem plays {RATE} Hz"
    return np.asarray(data[:, 0], dtype=np.int16)


# --- the script ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Ring:
    """RING in command mode, DLE R in the stream."""


@dataclass(frozen=True)
class CallerId:
    """Formatted caller ID lines (command mode) or a DLE X ... DLE . packet (stream)."""

    date: str = "0321"
    time: str = "1405"
    number: str = "6145551212"
    name: str = "DOE JOHN"

    def lines(self) -> list[str]:
        return [f"DATE = {self.date}", f"TIME = {self.time}", f"NMBR = {self.number}",
                f"NAME = {self.name}"]


@dataclass(frozen=True)
class Pause:
    seconds: float


@dataclass(frozen=True)
class WaitForStream:
    """Wait until the driver has started voice receive."""

    timeout: float = 10.0


@dataclass(frozen=True)
class Event:
    code: bytes  # one byte, sent as DLE code


@dataclass(frozen=True, eq=False)
class Audio:
    samples: np.ndarray

    @classmethod
    def from_wav(cls, path: str | Path) -> Audio:
        return cls(read_wav(path))


@dataclass(frozen=True)
class EndStream:
    """The modem ends voice receive on its own: DLE ETX, then OK."""


Step = Ring | CallerId | Pause | WaitForStream | Event | Audio | EndStream


def incoming_call(speech: np.ndarray, caller: CallerId | None = None, *,
                  ring_gap: float = 0.3, answer_after: float = 0.4,
                  hang_up: Sequence[bytes] = (b"l", b"h"), tail: float = 0.3) -> list[Step]:
    """A call as a line sees it: ring, caller ID, ring in the stream, off-hook, the speech,
    the hang-up codes with ``tail`` of silence between them, the end of the stream."""
    steps: list[Step] = [Ring(), Pause(ring_gap)]
    if caller is not None:
        steps.append(caller)
    else:
        steps += [Ring()]
    steps += [WaitForStream(), Pause(answer_after / 2), Ring(), Pause(answer_after / 2),
              Event(b"H"), Audio(speech)]
    for i, code in enumerate(hang_up):
        if i:
            steps.append(Pause(tail))
        steps.append(Event(code))
    steps += [Pause(tail), EndStream()]
    return steps


# --- one pty -------------------------------------------------------------------------------


class _Pty:
    """One pty pair and the reader thread answering what the driver sends on it."""

    def __init__(self, modem: ModemEmulator) -> None:
        self.modem = modem
        self.master, self.slave = os.openpty()
        # Raw both ways: no echo, no CR/LF translation, every byte as it is.
        tty.setraw(self.master)
        tty.setraw(self.slave)
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self.slave)
        self.lock = threading.Lock()  # one writer at a time; guards the stream state
        self.closed = False
        self.echo = True
        self.voice = False
        self.method: int | None = None
        self.streaming = False
        self.origin = 0.0
        self.sent = 0  # samples streamed since CONNECT
        self._line = bytearray()
        self._dle = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read_loop, name="modem-emulator",
                                        daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        with self.lock:
            self.closed = True
            self.streaming = False
            os.close(self.master)
            os.close(self.slave)

    # --- writing (under the lock) ---------------------------------------------------------

    def _write_locked(self, data: bytes) -> None:
        if self.closed:
            return
        deadline = time.monotonic() + WRITE_STALL_SECONDS
        view = memoryview(data)
        while view:
            try:
                n = os.write(self.master, view)
                view = view[n:]
            except BlockingIOError:
                left = deadline - time.monotonic()
                if left <= 0 or self._stop.is_set():
                    return  # nobody reads: drop it, as a modem's buffer would overflow
                select.select([], [self.master], [], min(left, 0.05))
            except OSError:
                return

    def write(self, data: bytes) -> None:
        with self.lock:
            self._write_locked(data)

    def reply(self, *lines: str) -> None:
        self.write(b"".join(b"\r\n" + line.encode() + b"\r\n" for line in lines))

    def stream(self, samples: np.ndarray) -> bool:
        """Send samples (and count them) if the stream is still on; False if it is not."""
        with self.lock:
            if not self.streaming or self.method is None:
                return False
            self._write_locked(shield(ENCODERS[self.method](samples)))
            self.sent += samples.shape[0]
            return True

    def stream_code(self, code: bytes) -> bool:
        with self.lock:
            if not self.streaming:
                return False
            self._write_locked(bytes([DLE]) + code)
            return True

    def end_stream(self) -> bool:
        with self.lock:
            if not self.streaming:
                return False
            self.streaming = False
            self._write_locked(bytes([DLE, ETX]) + b"\r\nOK\r\n")
        return True

    # --- reading --------------------------------------------------------------------------

    def _read_loop(self) -> None:
        try:
            while not self._stop.is_set():
                ready, _, _ = select.select([self.master], [], [], 0.05)
                if not ready:
                    continue
                try:
                    data = os.read(self.master, 4096)
                except BlockingIOError:
                    continue
                except OSError:
                    return  # the pty is going away
                for byte in data:
                    self._byte(byte)
        except Exception:
            logger.exception("modem emulator: reader failed")

    def _byte(self, byte: int) -> None:
        if self.streaming:
            if self._dle:
                self._dle = False
                if byte in (ord("!"), ord("^")):
                    self.modem.commands.append(f"DLE {chr(byte)}")
                    self.end_stream()
            elif byte == DLE:
                self._dle = True
            return
        if byte in (0x0D, 0x0A):
            if self._line:
                raw = self._line.decode("ascii", "replace")
                self._line.clear()
                at = raw.upper().find("AT")
                if at >= 0:  # a modem skips whatever came before "AT"
                    if self.echo:
                        self.write(raw[at:].encode() + b"\r")
                    self._command(raw[at:].strip().upper().replace(" ", ""))
        elif len(self._line) < 1024:
            self._line.append(byte)

    def _command(self, cmd: str) -> None:
        modem = self.modem
        modem.commands.append(cmd)
        if cmd in modem.answers:
            answer = modem.answers[cmd]
            if answer is not None:
                self.reply(answer)
            return
        ok = "OK"
        if cmd == "AT":
            pass
        elif cmd in ("ATE0", "ATE1"):
            self.echo = cmd == "ATE1"
        elif cmd == "ATZ":
            self.echo, self.voice, self.method = True, False, None
        elif cmd in ("AT+FCLASS=8", "AT+FCLASS=0"):
            self.voice = cmd.endswith("8")
        elif cmd == "AT+FCLASS?":
            self.reply("8" if self.voice else "0", ok)
            return
        elif cmd == "AT+VSM=?" and self.voice:
            self.reply(*modem.vsm, ok)
            return
        elif cmd.startswith("AT+VSM=") and self.voice:
            method, _, rate = cmd[7:].partition(",")
            if not method.isdigit() or int(method) not in ENCODERS or rate not in ("", "8000"):
                ok = "ERROR"
            else:
                self.method = int(method)
        elif (cmd.startswith("AT+VLS=") and self.voice and cmd[7:].isdigit()) or \
                cmd in ("AT+VCID=0", "AT+VCID=1") or cmd in modem.accept:
            pass
        elif cmd == "AT+VRX" and self.voice and self.method is not None:
            with self.lock:
                self._write_locked(b"\r\nCONNECT\r\n")
                self.streaming, self.origin, self.sent, self._dle = True, time.monotonic(), 0, False
            modem.stream_changed()
            return
        else:
            ok = "ERROR"
        self.reply(ok)


# --- the modem -----------------------------------------------------------------------------


@dataclass(eq=False)
class ModemEmulator:
    """A voice modem on a pty under a stable path; see the module docstring."""

    directory: Path
    vsm: Sequence[str] = DEFAULT_VSM
    # Command (upper case, no spaces) -> the reply it gets instead (None: no reply at all).
    answers: dict[str, str | None] = field(default_factory=dict)
    accept: Iterable[str] = ()  # further commands answered OK
    commands: list[str] = field(default_factory=list)  # every command received, in order
    errors: list[str] = field(default_factory=list)  # what went wrong playing the script
    skipped: list[str] = field(default_factory=list)  # stream steps after the stream ended

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.accept = frozenset(self.accept)
        self.port = str(self.directory / "ttyV253")
        self._pty: _Pty | None = None
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._player: threading.Thread | None = None
        self._done = threading.Event()

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> ModemEmulator:
        self.restore()
        return self

    def restore(self) -> None:
        """(Re)appear under the same path, on a new pty."""
        pty = _Pty(self)
        tmp = self.port + ".new"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        os.symlink(pty.path, tmp)
        os.replace(tmp, self.port)
        with self._changed:
            self._pty = pty
            self._changed.notify_all()

    def lose(self) -> None:
        """Vanish: the pty closes (reads on the driver's side fail) and the path goes."""
        with self._changed:
            pty, self._pty = self._pty, None
            self._changed.notify_all()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.port)
        if pty is not None:
            pty.close()

    def close(self) -> None:
        self._stop.set()
        if self._player is not None:
            self._player.join(10)
        self.lose()

    def __enter__(self) -> ModemEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- state for tests ------------------------------------------------------------------

    @property
    def streaming(self) -> bool:
        pty = self._pty
        return pty is not None and pty.streaming

    def stream_changed(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def wait_streaming(self, timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self.streaming, timeout)

    def wait_done(self, timeout: float) -> bool:
        """Wait until the script has been played to its end."""
        return self._done.wait(timeout)

    # --- the player -----------------------------------------------------------------------

    def play(self, steps: Sequence[Step]) -> None:
        """Play a script on the player thread; one script per emulator."""
        assert self._player is None, "one script per emulator"
        self._player = threading.Thread(target=self._play, args=(list(steps),),
                                        name="modem-emulator-player", daemon=True)
        self._player.start()

    def _play(self, steps: list[Step]) -> None:
        try:
            for step in steps:
                if self._stop.is_set():
                    return
                self._step(step)
        except Exception as exc:
            logger.exception("modem emulator: the script failed")
            self.errors.append(f"script failed: {exc}")
        finally:
            self._done.set()
        # The line goes on after the script: keep the stream going while it is on.
        while not self._stop.is_set():
            self._pause(0.1)

    def _step(self, step: Step) -> None:
        pty = self._pty
        if isinstance(step, Pause):
            self._pause(step.seconds)
        elif isinstance(step, WaitForStream):
            if not self.wait_streaming(step.timeout):
                self.errors.append(f"the driver did not start voice receive within "
                                   f"{step.timeout} s")
        elif pty is None:
            self.skipped.append(f"{step}: the modem is unplugged")
        elif isinstance(step, Ring):
            if not pty.stream_code(b"R"):
                pty.reply("RING")
        elif isinstance(step, CallerId):
            if pty.streaming:
                packet = "\r\n".join(step.lines()).encode()
                pty.stream_code(b"X" + shield(packet) + bytes([DLE]) + b".")
            else:
                pty.reply(*step.lines())
        elif isinstance(step, Event):
            if not pty.stream_code(step.code):
                self.skipped.append(f"DLE {step.code!r}: not streaming")
        elif isinstance(step, Audio):
            self._stream(pty, step.samples)
        elif isinstance(step, EndStream) and not pty.end_stream():
            self.skipped.append("EndStream: not streaming")

    def _stream(self, pty: _Pty, samples: np.ndarray) -> None:
        """Stream samples paced by the stream clock: each chunk once its last sample is due."""
        i = 0
        while i < samples.shape[0] and not self._stop.is_set():
            n = min(CHUNK, samples.shape[0] - i)
            due = pty.origin + (pty.sent + n) / RATE
            delay = due - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                return
            if not pty.stream(samples[i:i + n]):
                self.skipped.append(f"audio after {i} of {samples.shape[0]} samples: "
                                    "the stream ended")
                return
            i += n

    def _pause(self, seconds: float) -> None:
        """Time passes: silence in the stream if it is on."""
        deadline = time.monotonic() + seconds
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= deadline:
                return
            pty = self._pty
            if pty is not None and pty.streaming:
                # Only what is due by the deadline, so the next step starts on time.
                due = min(round((deadline - pty.origin) * RATE) - pty.sent, CHUNK)
                if due > 0:
                    self._stream(pty, np.zeros(due, dtype=np.int16))
                    continue
            self._stop.wait(min(0.01, deadline - now))


# --- the driver contract suite's harness -----------------------------------------------------


def voicemodem(tmp_path: Path) -> Iterator[Harness]:
    """An idle line on an emulated modem; losing the device unplugs the emulated modem."""
    emulator = ModemEmulator(tmp_path / "modem").start()
    try:
        driver = create_driver("boards[0]", VoiceModemBoardConfig(
            port=emulator.port, devices=("4001",), reopen_max_seconds=1.0))
        yield Harness(driver, lose=emulator.lose, restore=emulator.restore,
                      close=emulator.close)
    finally:
        emulator.close()


__all__ = ["DEFAULT_VSM", "Audio", "CallerId", "EndStream", "Event", "ModemEmulator", "Pause",
           "Ring", "Step", "WaitForStream", "incoming_call", "read_wav", "shield",
           "ulaw_encode", "voicemodem"]
