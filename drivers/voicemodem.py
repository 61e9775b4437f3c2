"""An ITU-T V.253 voice modem on a serial port: the classic single-line call logger.

Set-up, on every open of the port: ``ATZ``, ``AT+FCLASS=8`` (voice), ``AT+VSM=?`` to list the
modem's compression methods, ``AT+VSM=<n>,8000`` with the method whose name matches
``encoding`` (mu-law: ULAW, U-LAW, MU-LAW, G711U, G.711U, U-LOG; linear: SIGNED PCM, UNSIGNED
PCM, LINEAR, 8- or 16-bit; the numbers differ between chip makers, so they are looked up rather
than fixed), ``AT+VLS=<line_select>``, ``AT+VCID=1`` (when ``caller_id``), then the board's
``init`` commands. Every command must answer OK within ``command_timeout_seconds``; an ERROR
or silence is a DriverError naming the command. Echoed commands (E1, the default after ATZ) are
ignored. The set-up runs once in the constructor too, so a wrong port or a modem that is not a
voice modem stops the recorder from starting (and fails ``--check-config``).

The conversation itself (how a call is followed, the DLE event codes) is in
``recorder.drivers.v253``; decoding the voice stream and pacing it, in
``recorder.drivers.v253stream``.

A port that vanishes is reported as ERROR and reopened with exponential back-off up to
``reopen_max_seconds`` (RESETTING while it is set up again, RUNNING after); the first block
after coming back carries the time away as lost frames.

The port is served in the shape of pyserial's ``serial.threaded``: a ``Protocol``
(``connection_made``, ``data_received``, ``connection_lost``) fed by a reader loop that writes
under a lock. The loop is written here rather than taken from ``ReaderThread`` because one
ReaderThread serves one open port and ends at its first error (reopening would take a new thread
per attempt), it blocks in ``read`` with nothing to wake it (silence must be paced while the
modem says nothing, and command time-outs must be noticed), and the set-up dialogue has to run
on the same port before reading for the protocol begins.
"""

from __future__ import annotations

import logging
import threading
import time

import serial

from recorder.drivers.base import Block, DriverSink, DriverState, ThreadedDriver
from recorder.drivers.lineevents import LineEvent
from recorder.drivers.settings import VoiceModemBoardConfig
from recorder.drivers.v253 import (
    RECEIVE_ABORT,
    TICK_SECONDS,
    Mode,
    ModemError,
    Stopped,
    V253Protocol,
)
from recorder.drivers.v253stream import (
    SAMPLE_RATE,
    AudioFormat,
    Timeline,
    choose_format,
    parse_vsm_list,
)
from recorder.errors import DriverError

logger = logging.getLogger(__name__)

FIRST_BACKOFF_SECONDS = 0.5
SETTLE_SECONDS = 0.1  # for a modem to end a voice receive left running before set-up


# --- the driver ---------------------------------------------------------------------------------


class VoiceModemDriver(ThreadedDriver):
    """A V.253 voice modem tapping one line; see the module docstring."""

    def __init__(self, key: str, config: VoiceModemBoardConfig) -> None:
        super().__init__(key, 1, SAMPLE_RATE)
        self.config = config
        self.block_frames = max(1, SAMPLE_RATE * config.block_ms // 1000)
        self.format: AudioFormat | None = None
        # Open the port and run the set-up once now, so a wrong port or a modem that is not
        # a voice modem stops the recorder from starting (and fails --check-config).
        port = self._open()
        try:
            self._set_up(port, self._protocol(Timeline(_NullSink(), SAMPLE_RATE,
                                                       self.block_frames)))
        except (serial.SerialException, OSError) as exc:
            raise DriverError(f"{key}: {config.port}: {exc}") from exc
        finally:
            port.close()

    # --- the reader thread (ThreadedDriver's) -------------------------------------------------

    def _protocol(self, timeline: Timeline) -> V253Protocol:
        config = self.config
        return V253Protocol(self.key, timeline, caller_id=config.caller_id,
                            command_timeout=config.command_timeout_seconds,
                            ring_timeout=config.ring_timeout_seconds)

    def _run(self, sink: DriverSink) -> None:
        timeline = Timeline(sink, SAMPLE_RATE, self.block_frames)
        backoff = FIRST_BACKOFF_SECONDS
        attempt = 0
        sink.state(DriverState.STARTING)
        while not self._stop.is_set():
            if attempt:
                sink.state(DriverState.RESETTING,
                           f"reopening {self.config.port} (attempt {attempt})")
            attempt += 1
            protocol = self._protocol(timeline)
            try:
                port = self._open()
            except DriverError as exc:
                sink.state(DriverState.ERROR, str(exc))
            else:
                try:
                    self._serve(port, protocol, timeline, sink)
                    break  # only returns once stopped
                except Stopped:
                    break
                except (DriverError, serial.SerialException, OSError) as exc:
                    protocol.connection_lost(exc)
                    sink.state(DriverState.ERROR, str(exc))
                    if protocol.mode is not Mode.SETUP:
                        backoff = FIRST_BACKOFF_SECONDS  # it had been running: start over
                finally:
                    port.close()
            if self._stop.wait(backoff):
                break
            backoff = min(backoff * 2, self.config.reopen_max_seconds)

    def _serve(self, port: serial.Serial, protocol: V253Protocol, timeline: Timeline,
               sink: DriverSink) -> None:
        """Set the modem up, then follow calls until stopped; raises when the port fails."""
        self._set_up(port, protocol)
        protocol.start_following()
        timeline.resume(time.monotonic())
        sink.state(DriverState.RUNNING)
        while not self._stop.is_set():
            self._pump(port, protocol)
            protocol.tick(time.monotonic())
        protocol.close_stream()
        timeline.flush()

    def _open(self) -> serial.Serial:
        try:
            return serial.Serial(self.config.port, self.config.baudrate, timeout=TICK_SECONDS,
                                 write_timeout=self.config.command_timeout_seconds,
                                 exclusive=True)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise DriverError(f"{self.key}.port: cannot open {self.config.port}: {exc}") from exc

    @staticmethod
    def _pump(port: serial.Serial, protocol: V253Protocol) -> None:
        data = port.read(port.in_waiting or 1)
        if data:
            protocol.data_received(data)

    def _set_up(self, port: serial.Serial, protocol: V253Protocol) -> None:
        config = self.config
        transport = _Transport(port)
        protocol.connection_made(transport)
        # A modem left in voice receive (the port lost mid-call while DTR stayed up) would take
        # ATZ for voice data: end any receive first (in command mode the two bytes are noise
        # before "AT", which modems skip), then drop whatever the modem said meanwhile.
        transport.write(RECEIVE_ABORT)
        if self._stop.wait(SETTLE_SECONDS):
            raise Stopped
        port.reset_input_buffer()
        self._command(port, protocol, "ATZ")
        self._command(port, protocol, "AT+FCLASS=8")
        listed = self._command(port, protocol, "AT+VSM=?")
        chosen = choose_format(parse_vsm_list(listed), config.encoding)
        if chosen is None:
            raise ModemError(f"{self.key}: {config.port}: the modem offers no {config.encoding} "
                             f"method at {SAMPLE_RATE} Hz (AT+VSM=? listed: "
                             f"{'; '.join(listed) or 'nothing'})")
        self._command(port, protocol, f"AT+VSM={chosen.method},{SAMPLE_RATE}")
        if self.format != chosen:
            logger.info("%s: voice format %d %r (%s, %d bit)", self.key, chosen.method,
                        chosen.name, chosen.kind, chosen.bits)
        self.format = protocol.format = chosen
        self._command(port, protocol, f"AT+VLS={config.line_select}")
        if config.caller_id:
            self._command(port, protocol, "AT+VCID=1")
        for command in config.init:
            self._command(port, protocol, command)

    def _command(self, port: serial.Serial, protocol: V253Protocol, command: str) -> list[str]:
        """Send one command and wait for its final result; returns the other lines."""
        protocol.send_command(command)
        deadline = time.monotonic() + self.config.command_timeout_seconds
        while not self._stop.is_set():
            self._pump(port, protocol)
            final, lines = protocol.result()
            if final == "OK":
                return lines
            if final is not None:
                raise ModemError(f"{self.key}: {self.config.port}: the modem answered {final} "
                                 f"to {command}")
            if time.monotonic() > deadline:
                raise ModemError(f"{self.key}: {self.config.port}: no answer to {command} "
                                 f"within {self.config.command_timeout_seconds:g} s")
        raise Stopped


class _Transport:
    """What the protocol writes through: the port, one whole command or code at a time."""

    def __init__(self, port: serial.Serial) -> None:
        self._port = port
        self._lock = threading.Lock()

    def write(self, data: bytes) -> None:
        with self._lock:
            self._port.write(data)


class _NullSink:
    """The set-up probe's sink: nothing is delivered before the driver starts."""

    def audio(self, block: Block, lost_frames: int = 0) -> None:
        pass

    def line(self, event: LineEvent) -> None:
        pass

    def state(self, state: DriverState, detail: str = "") -> None:
        pass


__all__ = ["VoiceModemDriver"]
