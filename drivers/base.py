"""The driver interface: a capture board delivering int16 ``(frames, channels)`` blocks."""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

logger = logging.getLogger(__name__)

Block = npt.NDArray[np.int16]
BlockSink = Callable[[Block], None]

# A paced driver that falls this far behind wall-clock time (a stalled VM, a suspended laptop)
# starts afresh instead of bursting out the backlog.
MAX_CATCH_UP_SECONDS = 1.0


class Driver(ABC):
    """A capture board. ``start`` begins delivering blocks to the sink from the driver's thread."""

    def __init__(self, key: str, channels: int, sample_rate: int) -> None:
        self.key = key  # config key of the board, e.g. "boards[1]", for messages
        self.channels = channels
        self.sample_rate = sample_rate

    @abstractmethod
    def start(self, sink: BlockSink) -> None:
        """Start capturing; ``sink`` is called with each block, from the driver's own thread."""

    @abstractmethod
    def stop(self) -> None:
        """Ask the driver to stop; returns at once."""

    @abstractmethod
    def join(self, timeout: float | None = None) -> bool:
        """Wait until the driver's thread has ended; True if it has."""


class PacedDriver(Driver):
    """A driver that computes its audio and releases it block by block in real time."""

    def __init__(self, key: str, channels: int, sample_rate: int, block_ms: int) -> None:
        super().__init__(key, channels, sample_rate)
        self.block_frames = max(1, sample_rate * block_ms // 1000)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @abstractmethod
    def next_block(self, frames: int) -> Block:
        """The next ``(frames, channels)`` block of audio."""

    def start(self, sink: BlockSink) -> None:
        if self._thread is not None:
            raise RuntimeError(f"{self.key}: driver already started")
        self._thread = threading.Thread(
            target=self._run, args=(sink,), name=f"driver-{self.key}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float | None = None) -> bool:
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self, sink: BlockSink) -> None:
        period = self.block_frames / self.sample_rate
        origin = time.monotonic()
        sent = 0
        try:
            while not self._stop.is_set():
                due = origin + sent * period
                delay = due - time.monotonic()
                if delay > 0:
                    if self._stop.wait(delay):
                        break
                elif -delay > MAX_CATCH_UP_SECONDS:
                    logger.warning("%s: fell %.1f s behind real time; resuming from now",
                                   self.key, -delay)
                    origin, sent = time.monotonic(), 0
                    continue
                sink(self.next_block(self.block_frames))
                sent += 1
        except Exception:
            logger.exception("%s: capture thread failed; this board delivers no more audio",
                             self.key)
