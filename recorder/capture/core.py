"""The capture core: drivers write into per-channel rings; everything else reads from them.

The driver's thread only copies its block into the board's ring (and counts what was lost).
Everything slower happens elsewhere and reads the rings by absolute sample position: the
monitor thread measures levels 50 times a second, the writer loop moves audio to files, so a
stalled disk or a busy database can never stall capture.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from recorder.capture.channels import ChannelState, ChannelStatus
from recorder.capture.clock import BoardClock
from recorder.capture.levels import LevelMeter
from recorder.capture.ring import BoardRing, ReadResult
from recorder.drivers.base import Block, ChannelLoss, Driver, DriverState
from recorder.drivers.lineevents import LineEvent, LineEventKind, StampedEvent
from recorder.worker import PeriodicWorker

logger = logging.getLogger(__name__)

MONITOR_INTERVAL = 0.02
DEFAULT_SILENCE_DBFS = -45.0
# Gaps a board remembers by position. A lapped reader further behind than this many gaps
# counts the older ones as overruns in the channel's figures (its row still counts each once).
MAX_GAP_RANGES = 64
# Losses of one channel a board remembers (a SIPREC stream's missing packets). A recording
# reads them every pump of the writer loop, far more often than a channel loses this many.
MAX_CHANNEL_LOSSES = 64


def gap_frames_in(ranges: Sequence[tuple[int, int]], start: int, end: int) -> int:
    """How many of positions [start, end) fall in ``ranges`` (disjoint, oldest first)."""
    total = 0
    for a, b in reversed(ranges):
        if b <= start:
            break  # the rest are older still: a reader near the present stops at once
        total += max(0, min(b, end) - max(a, start))
    return total


@dataclass(frozen=True)
class ChannelLevels:
    """One channel's newest 20 ms window and its counters, as diagnostics show them."""

    peak_dbfs: float
    rms_dbfs: float
    silent: bool
    gaps: int
    gap_frames: int
    overruns: int
    overrun_frames: int


class CaptureBoard:
    """One driver, the ring its channels are written into, and what is known about them.

    It is the driver's sink: ``audio``, ``line`` and ``state`` run on the driver's thread.
    """

    def __init__(self, driver: Driver, devices: Sequence[str], lookback_seconds: float,
                 silence_threshold_dbfs: float = DEFAULT_SILENCE_DBFS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if len(devices) != driver.channels:
            raise ValueError(f"{driver.key}: {len(devices)} devices for {driver.channels} "
                             "channels")
        self.driver = driver
        self.devices = tuple(devices)
        capacity = max(1, math.ceil(lookback_seconds * driver.sample_rate))
        self.ring = BoardRing(driver.channels, capacity)
        self.clock = BoardClock(driver.sample_rate)
        self.meter = LevelMeter(driver.channels, driver.sample_rate, silence_threshold_dbfs)
        self.meter_lock = threading.Lock()
        self.statuses = [ChannelStatus() for _ in devices]
        self.events: queue.SimpleQueue[StampedEvent] = queue.SimpleQueue()
        self.first_channel_id = 1  # set by the core
        self.driver_state = DriverState.STARTING
        self.driver_detail = ""  # why the driver is in ERROR or RESETTING
        c = driver.channels
        self.gaps = np.zeros(c, dtype=np.int64)
        self.gap_frames = np.zeros(c, dtype=np.int64)
        self.overruns = np.zeros(c, dtype=np.int64)
        self.overrun_frames = np.zeros(c, dtype=np.int64)
        # The newest MAX_GAP_RANGES stretches [start, end) written as silence for lost input,
        # oldest first: a recording reading across one counts it as lost audio of its call,
        # and a reader the ring lapped does not count it again as an overrun. Kept by count,
        # not by what the ring still holds, since a lapped reader may be any distance behind.
        # Replaced whole by the driver thread (one reference store), so readers need no lock.
        self._gap_ranges: tuple[tuple[int, int], ...] = ()
        # Each channel's own losses, newest MAX_CHANNEL_LOSSES: (serial, start, end), serials
        # growing across the board, so a reader asks for what is new since the last it saw.
        # Each channel's tuple is replaced whole by the driver thread, as the gaps are.
        self._channel_losses: list[tuple[tuple[int, int, int], ...]] = [()] * c
        self._loss_serial = 0
        self._monotonic = clock

    @property
    def key(self) -> str:
        return self.driver.key

    # --- the driver's sink (driver thread) ---------------------------------------------------

    def audio(self, block: Block, lost_frames: int = 0) -> None:
        if lost_frames > 0:
            self._gap(lost_frames, "reported by the driver")
        self.ring.write(block)
        if self.driver.realtime:
            missing = self.clock.observe(self.ring.write_pos, self._monotonic())
            if missing and not self.driver.reports_lost_time:
                self._gap(missing, "found by the board clock")

    on_block = audio  # the name tests feeding blocks by hand use

    def channel_lost(self, losses: Sequence[ChannelLoss]) -> None:
        """Stretches of single channels written as silence for lost input (drivers/base.py)."""
        for index, start, frames in losses:
            if frames <= 0 or not 0 <= index < self.driver.channels:
                continue
            self._loss_serial += 1
            kept = self._channel_losses[index][1 - MAX_CHANNEL_LOSSES:]
            self._channel_losses[index] = (*kept, (self._loss_serial, start, start + frames))
            self.gaps[index] += 1
            self.gap_frames[index] += frames

    def line(self, event: LineEvent) -> None:
        if not 0 <= event.channel < self.driver.channels:
            logger.error("%s: line event for channel %d of %d ignored", self.key,
                         event.channel + 1, self.driver.channels)
            return
        status = self.statuses[event.channel]
        if event.kind is LineEventKind.OFF_HOOK:
            status.set_hook(True)
        elif event.kind in (LineEventKind.ON_HOOK, LineEventKind.LOOP_DROP):
            status.set_hook(False)
        self.events.put(StampedEvent(self.first_channel_id + event.channel, event,
                                     self.ring.write_pos, time.time()))

    def state(self, state: DriverState, detail: str = "") -> None:
        self.driver_state = state
        self.driver_detail = detail
        fault = {DriverState.ERROR: ChannelState.ERROR,
                 DriverState.RESETTING: ChannelState.RESETTING}.get(state)
        for status in self.statuses:
            status.set_fault(fault, detail)
        if state is DriverState.ERROR:
            logger.error("%s: device error: %s", self.key, detail or "no detail")
        elif state is DriverState.RESETTING:
            logger.warning("%s: reopening the device: %s", self.key, detail or "no detail")

    def _gap(self, frames: int, how: str) -> None:
        # Silence keeps every later sample at the position its capture time says.
        # Published before the silence is: a reader that finds the new positions readable
        # must also find them counted.
        start = self.ring.write_pos
        self._gap_ranges = (*self._gap_ranges[1 - MAX_GAP_RANGES:], (start, start + frames))
        self.ring.write_silence(frames)
        self.gaps += 1
        self.gap_frames += frames
        logger.warning("%s: %d frames (%.3f s) of input lost, %s; written as silence",
                       self.key, frames, frames / self.driver.sample_rate, how)

    # --- readers (any thread) ----------------------------------------------------------------

    def measure(self) -> None:
        """Run the level meter over every whole window captured since the last call."""
        with self.meter_lock:
            meter = self.meter
            end = self.ring.write_pos
            start = max(meter.analyzed, self.ring.oldest)
            end -= (end - start) % meter.window
            if end <= start:
                return
            # A meter a whole look-back behind (a stalled machine) resumes at the oldest audio
            # still held; the windows it skipped were never measured, and runs restart there.
            got = self.ring.frames(start, end)
            meter.feed(got.frames, got.start)

    def gap_frames_in(self, start: int, end: int) -> int:
        """How many of positions [start, end) were written as silence for lost input (a gap
        the driver reported or the board clock found); 0 almost always."""
        return gap_frames_in(self._gap_ranges, start, end)

    def channel_losses(self, index: int, after: int = 0) -> tuple[tuple[int, int, int], ...]:
        """Channel ``index``'s own losses with a serial above ``after``: (serial, start, end),
        oldest first; empty almost always."""
        found = self._channel_losses[index]
        if not found or found[-1][0] <= after:
            return ()
        return tuple(loss for loss in found if loss[0] > after)

    def read_adjacent(self, first: int, count: int, start: int, end: int) -> ReadResult:
        """Channels ``first`` to ``first + count - 1``, positions [start, end), as ``(frames,
        count)`` in one copy; what the ring lapped is counted as each channel's overrun, as
        ``Channel.read`` counts it."""
        got = self.ring.read_adjacent(first, count, start, end)
        if got.lost:
            for index in range(first, first + count):
                self.count_overrun(index, start, got.lost)
        return got

    def count_overrun(self, index: int, start: int, frames: int) -> None:
        """A reader found ``frames`` of channel ``index`` from ``start`` overwritten before it
        read them. Positions that were a gap are counted as the gap already, not again."""
        overwritten = frames - self.gap_frames_in(start, start + frames)
        if overwritten > 0:
            self.overruns[index] += 1
            self.overrun_frames[index] += overwritten

    def levels(self, index: int) -> ChannelLevels:
        with self.meter_lock:
            m = self.meter
            return ChannelLevels(
                peak_dbfs=float(m.peak_dbfs[index]), rms_dbfs=float(m.rms_dbfs[index]),
                silent=bool(m.silent[index]), gaps=int(self.gaps[index]),
                gap_frames=int(self.gap_frames[index]), overruns=int(self.overruns[index]),
                overrun_frames=int(self.overrun_frames[index]))

    def activity(self) -> tuple[int, npt.NDArray[np.bool_], npt.NDArray[np.int64],
                                npt.NDArray[np.int64]]:
        """(measured up to, silent, speech_since, silence_since) of every channel, consistent."""
        with self.meter_lock:
            m = self.meter
            return m.analyzed, m.silent.copy(), m.speech_since.copy(), m.silence_since.copy()


@dataclass(eq=False)
class Channel:
    """One tapped line: channel ``id`` (1-based, across all boards) records ``device_id``.

    A channel of a board whose channels are bound to calls as they come (a SIPREC session's
    party) has the device of its current call, "" while it has none (``CaptureCore.bind``);
    every other field never changes.
    """

    id: int
    device_id: str
    board: CaptureBoard
    index: int  # 0-based channel of the board
    trigger: str = "api"

    @property
    def sample_rate(self) -> int:
        return self.board.driver.sample_rate

    @property
    def position(self) -> int:
        """Absolute index of the next sample this channel will capture."""
        return self.board.ring.write_pos

    @property
    def oldest(self) -> int:
        """The oldest position a recording starting now can still include."""
        ring = self.board.ring
        if ring.write_pos <= ring.capacity:
            return 0  # nothing overwritten yet
        # 100 ms of margin: the driver may be about to overwrite the very oldest.
        return ring.oldest + self.board.meter.window * 5

    @property
    def status(self) -> ChannelStatus:
        return self.board.statuses[self.index]

    def read(self, start: int, end: int) -> ReadResult:
        got = self.board.ring.read(self.index, start, end)
        if got.lost:
            self.board.count_overrun(self.index, start, got.lost)
        return got

    def levels(self) -> ChannelLevels:
        return self.board.levels(self.index)


class CaptureCore:
    """All boards of the recorder, the channel each device is tapped by, and the level monitor."""

    def __init__(self, boards: Sequence[CaptureBoard],
                 triggers: Sequence[Sequence[str]] | None = None) -> None:
        self.boards = list(boards)
        self.channels: list[Channel] = []
        # A device is tapped by one channel, or by two (its two directions) on one board.
        self._by_device: dict[str, list[Channel]] = {}
        # Devices bound to channels for the length of a call (SIPREC sessions), each binding
        # a tuple of channels, oldest first; changed under _bind_lock (a leaf lock).
        self._bound: dict[str, list[tuple[Channel, ...]]] = {}
        self._bind_lock = threading.Lock()
        for b, board in enumerate(self.boards):
            board.first_channel_id = len(self.channels) + 1
            for index, device in enumerate(board.devices):
                trigger = triggers[b][index] if triggers else "api"
                channel = Channel(len(self.channels) + 1, device, board, index, trigger)
                self.channels.append(channel)
                if device:  # "": a channel bound to calls as they come
                    self._by_device.setdefault(device, []).append(channel)
        self.monitor = LevelMonitor(self)

    @property
    def heartbeat(self) -> float:
        """time.monotonic() of the level monitor's last turn (Recorder.health watches it)."""
        return self.monitor.heartbeat

    @property
    def monitor_alive(self) -> bool:
        """The level monitor's thread is running."""
        return self.monitor.alive

    @classmethod
    def simple(cls, boards: Sequence[tuple[Driver, Sequence[str]]],
               lookback_seconds: float) -> CaptureCore:
        """A core of boards with default silence thresholds and every channel on ``api``."""
        return cls([CaptureBoard(d, devices, lookback_seconds) for d, devices in boards])

    def channel_for_device(self, device_id: str) -> Channel | None:
        """The (first) channel tapping ``device_id``."""
        taps = self.channels_for_device(device_id)
        return taps[0] if taps else None

    def channels_for_device(self, device_id: str) -> tuple[Channel, ...]:
        """Every channel tapping ``device_id``: none, one, or its two directions; for a device
        that only calls bind, the channels of its newest call."""
        taps = self._by_device.get(device_id)
        if taps:
            return tuple(taps)
        bound = self._bound.get(device_id)
        return bound[-1] if bound else ()

    def bind(self, device_id: str, channels: Sequence[Channel]) -> None:
        """``channels`` record a call of ``device_id`` until ``unbind`` (a SIPREC session's
        two parties); a device may have several such calls at once."""
        with self._bind_lock:
            for channel in channels:
                channel.device_id = device_id
            self._bound.setdefault(device_id, []).append(tuple(channels))

    def unbind(self, device_id: str, channels: Sequence[Channel]) -> None:
        """The call ``bind`` bound to ``channels`` is over; they record nothing now."""
        wanted = tuple(channels)
        with self._bind_lock:
            bound = self._bound.get(device_id, [])
            if wanted in bound:
                bound.remove(wanted)
            if not bound:
                self._bound.pop(device_id, None)
            for channel in wanted:
                if channel.device_id == device_id:
                    channel.device_id = ""

    def channel(self, channel_id: int) -> Channel | None:
        return self.channels[channel_id - 1] if 0 < channel_id <= len(self.channels) else None

    def events(self) -> list[StampedEvent]:
        """Every line event since the last call, in order per board."""
        out: list[StampedEvent] = []
        for board in self.boards:
            while True:
                try:
                    out.append(board.events.get_nowait())
                except queue.Empty:
                    break
        return out

    def measure(self) -> None:
        for board in self.boards:
            board.measure()

    def start(self) -> None:
        started: list[CaptureBoard] = []
        try:
            for board in self.boards:
                board.driver.start(board)
                started.append(board)
                logger.info("%s: %d channel(s) at %d Hz (%s)", board.key, board.driver.channels,
                            board.driver.sample_rate, type(board.driver).__name__)
        except Exception:
            for board in reversed(started):
                board.driver.stop()
            raise
        self.monitor.start()

    def wait_running(self, timeout: float, poll: float = 0.02) -> list[CaptureBoard]:
        """Wait up to ``timeout`` s for every board's driver to run; the boards that do not.

        Drivers open their devices on their own threads (a modem's set-up takes a while), so
        ``start`` returning does not mean capture has begun.
        """
        deadline = time.monotonic() + timeout
        while True:
            waiting = [b for b in self.boards if b.driver_state is not DriverState.RUNNING]
            if not waiting or time.monotonic() >= deadline or self.monitor.stopping:
                return waiting
            time.sleep(poll)

    def stop(self) -> None:
        self.monitor.stop()
        for board in reversed(self.boards):
            board.driver.stop()

    def join(self, timeout: float | None = None) -> bool:
        drivers = all(board.driver.join(timeout) for board in reversed(self.boards))
        return self.monitor.join(timeout) and drivers


class LevelMonitor(PeriodicWorker):
    """Measures every board's levels every MONITOR_INTERVAL, so meters, CHANNELS and the
    silence limits stay current even when no trigger asks."""

    def __init__(self, core: CaptureCore) -> None:
        super().__init__("capture-monitor", MONITOR_INTERVAL)
        self._core = core

    def turn(self) -> None:
        self._core.measure()
