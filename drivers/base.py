"""The driver interface: a capture board delivering int16 ``(frames, channels)`` blocks.

A driver owns its device and one thread (or a library's callback thread). It reports three
things to the board's ``DriverSink``, always from that thread:

- ``audio(block, lost_frames)``: the next block, and how many frames the device lost just before
  it (an input overflow, a serial port that had to be reopened). Lost frames are written into
  the ring as silence, so sample positions keep matching the clock, and they are counted.
- ``line(event)``: a line event of one channel (ring, caller ID, off-hook, on-hook, ...). The
  sink stamps it with the board's current sample position, so a driver that reports events in
  stream order (a voice modem's DLE codes between audio bytes) gets them at the exact sample.
- ``state(state, detail)``: the device is running, lost (ERROR) or being reopened (RESETTING).

A board whose channels carry independent streams (SIPREC: one party of one call per channel)
loses audio per channel, not per board. Its driver writes the silence into the block itself
and says where with ``channel_lost(losses)``, a method of the sink beside the three above
(``ChannelLossSink``; the capture core's board has it): each ``(channel, start, frames)`` is a
stretch of absolute positions of one channel that hold silence for lost input. It is called
before the block holding those positions is delivered, or later, when the loss is only found
out afterwards (the packet after an outage tells how many were missing); the recordings of the
channel count it either way.

The audio path must stay cheap: the sink only copies into the ring buffer.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

from recorder.drivers.lineevents import LineEvent

logger = logging.getLogger(__name__)

Block = npt.NDArray[np.int16]
# (0-based channel of the board, first absolute position, frames): silence for lost input.
ChannelLoss = tuple[int, int, int]

# A paced driver that falls this far behind wall-clock time (a stalled VM, a suspended laptop)
# starts afresh instead of bursting out the backlog; what it skipped is reported as lost.
MAX_CATCH_UP_SECONDS = 1.0


class DriverState(enum.Enum):
    STARTING = "starting"
    RUNNING = "running"
    ERROR = "error"  # the device is gone or failing; the driver keeps trying to reopen it
    RESETTING = "resetting"  # the device is being reopened or reinitialised
    STOPPED = "stopped"


class DriverSink(Protocol):
    """Where a driver delivers what it captures; see the module docstring."""

    def audio(self, block: Block, lost_frames: int = 0) -> None: ...

    def line(self, event: LineEvent) -> None: ...

    def state(self, state: DriverState, detail: str = "") -> None: ...


class ChannelLossSink(DriverSink, Protocol):
    """A sink that also counts audio lost on single channels (see the module docstring)."""

    def channel_lost(self, losses: Sequence[ChannelLoss]) -> None: ...


class Driver(ABC):
    """A capture board. ``start`` begins delivering to the sink from the driver's thread."""

    def __init__(self, key: str, channels: int, sample_rate: int) -> None:
        self.key = key  # config key of the board, e.g. "boards[1]", for messages
        self.channels = channels
        self.sample_rate = sample_rate
        # False for benchmarks and soak tests: deliver as fast as the sink takes it.
        self.realtime = True
        # True for a driver that paces itself against the system clock and reports every
        # stretch it skips as lost frames (the demo and file boards; SIPREC, whose RTP waits in
        # its sockets while the media thread catches up): its lateness is its own to settle,
        # and the board clock must not fill it with silence a second time (recordings would
        # outlast the call, or hold silence where the audio came late but whole).
        self.reports_lost_time = False

    @abstractmethod
    def start(self, sink: DriverSink) -> None:
        """Start capturing; the sink is called from the driver's own thread."""

    @abstractmethod
    def stop(self) -> None:
        """Ask the driver to stop; returns at once."""

    @abstractmethod
    def join(self, timeout: float | None = None) -> bool:
        """Wait until the driver's threads have ended; True if they have."""


class ThreadedDriver(Driver):
    """A driver run by one thread of its own (``driver-<key>``) until ``stop``.

    The thread runs ``_run(sink)``; it must return soon after ``self._stop`` is set, having
    released its device (and ended any thread of a library it started).
    """

    def __init__(self, key: str, channels: int, sample_rate: int) -> None:
        super().__init__(key, channels, sample_rate)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @abstractmethod
    def _run(self, sink: DriverSink) -> None:
        """Capture until ``self._stop`` is set."""

    def start(self, sink: DriverSink) -> None:
        if self._thread is not None:
            raise RuntimeError(f"{self.key}: driver already started")
        self._thread = threading.Thread(
            target=self._main, args=(sink,), name=f"driver-{self.key}", daemon=True
        )
        self._thread.start()

    def _main(self, sink: DriverSink) -> None:
        try:
            self._run(sink)
        except Exception as exc:
            # A bug, not a device problem (those are the driver's to retry): say so loudly and
            # show the channels in Error rather than dying silently.
            logger.exception("%s: capture thread failed; this board delivers no more audio",
                             self.key)
            sink.state(DriverState.ERROR, f"capture thread failed: {exc}")
            return
        sink.state(DriverState.STOPPED)

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float | None = None) -> bool:
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()


class PacedDriver(ThreadedDriver):
    """A driver that computes its audio and releases it block by block (in real time)."""

    def __init__(self, key: str, channels: int, sample_rate: int, block_ms: int,
                 realtime: bool = True) -> None:
        super().__init__(key, channels, sample_rate)
        self.realtime = realtime
        self.reports_lost_time = True  # _run skips what it cannot catch up and says how much
        self.block_frames = max(1, sample_rate * block_ms // 1000)

    @abstractmethod
    def next_block(self, frames: int) -> Block:
        """The next ``(frames, channels)`` block of audio."""

    def _run(self, sink: DriverSink) -> None:
        period = self.block_frames / self.sample_rate
        origin = time.monotonic()
        sent = 0
        lost = 0
        sink.state(DriverState.RUNNING)
        while not self._stop.is_set():
            if self.realtime:
                due = origin + sent * period
                delay = due - time.monotonic()
                if delay > 0:
                    if self._stop.wait(delay):
                        break
                elif -delay > MAX_CATCH_UP_SECONDS:
                    logger.warning("%s: fell %.1f s behind real time; resuming from now",
                                   self.key, -delay)
                    lost += round(-delay * self.sample_rate)
                    origin, sent = time.monotonic(), 0
                    continue
            sink.audio(self.next_block(self.block_frames), lost)
            lost = 0
            sent += 1


__all__ = ["Block", "ChannelLoss", "ChannelLossSink", "Driver", "DriverSink", "DriverState",
           "PacedDriver", "ThreadedDriver"]
