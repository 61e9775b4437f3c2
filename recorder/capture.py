"""The capture core: drivers write into per-channel rings; recording sessions read from them.

The driver's thread only copies its block into the board's ring. Everything slow (files, the
database, the network) happens elsewhere and reads the rings by absolute sample position, so a
stalled disk can never stall capture.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

from recorder.drivers import Block, Driver
from recorder.ring import BoardRing, ReadResult

logger = logging.getLogger(__name__)


class CaptureBoard:
    """One driver and the ring its channels are written into."""

    def __init__(self, driver: Driver, lookback_seconds: float) -> None:
        self.driver = driver
        capacity = max(1, math.ceil(lookback_seconds * driver.sample_rate))
        self.ring = BoardRing(driver.channels, capacity)

    @property
    def key(self) -> str:
        return self.driver.key

    def on_block(self, block: Block) -> None:
        """Sink of the driver's blocks; runs on the driver's thread, so it only copies."""
        self.ring.write(block)


@dataclass(frozen=True)
class Channel:
    """One tapped line: channel ``id`` (1-based, across all boards) records ``device_id``."""

    id: int
    device_id: str
    board: CaptureBoard
    index: int  # 0-based channel of the board

    @property
    def sample_rate(self) -> int:
        return self.board.driver.sample_rate

    @property
    def position(self) -> int:
        """Absolute index of the next sample this channel will capture."""
        return self.board.ring.write_pos

    def read(self, start: int, end: int) -> ReadResult:
        return self.board.ring.read(self.index, start, end)


class CaptureCore:
    """All boards of the recorder and the channel each device is tapped by."""

    def __init__(self, boards: Sequence[tuple[Driver, Sequence[str]]],
                 lookback_seconds: float) -> None:
        self.boards: list[CaptureBoard] = []
        self.channels: list[Channel] = []
        self._by_device: dict[str, Channel] = {}
        for driver, devices in boards:
            board = CaptureBoard(driver, lookback_seconds)
            self.boards.append(board)
            for index, device in enumerate(devices):
                channel = Channel(len(self.channels) + 1, device, board, index)
                self.channels.append(channel)
                self._by_device[device] = channel

    def channel_for_device(self, device_id: str) -> Channel | None:
        return self._by_device.get(device_id)

    def start(self) -> None:
        started: list[CaptureBoard] = []
        try:
            for board in self.boards:
                board.driver.start(board.on_block)
                started.append(board)
                logger.info("%s: %d channel(s) at %d Hz (%s)", board.key, board.driver.channels,
                            board.driver.sample_rate, type(board.driver).__name__)
        except Exception:
            for board in reversed(started):
                board.driver.stop()
            raise

    def stop(self) -> None:
        for board in reversed(self.boards):
            board.driver.stop()

    def join(self, timeout: float | None = None) -> bool:
        return all(board.driver.join(timeout) for board in reversed(self.boards))
