"""What the driver contract suite needs from each driver's test set-up (its harness)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from recorder.drivers.base import Driver, DriverState
from recorder.drivers.lineevents import LineEvent


@dataclass
class Harness:
    """A driver ready to start, and how to take its device away and give it back.

    ``lose``/``restore`` are None for drivers with no device (synthetic, file): the device-loss
    tests skip them, saying so.
    """

    driver: Driver
    lose: Callable[[], None] | None = None
    restore: Callable[[], None] | None = None
    close: Callable[[], None] = field(default=lambda: None)


class RecordingSink:
    """A DriverSink that keeps everything it is given, and from which threads."""

    def __init__(self) -> None:
        self.blocks: list[np.ndarray] = []
        self.lost: list[int] = []
        self.events: list[LineEvent] = []
        self.states: list[tuple[DriverState, str]] = []
        self.threads: set[int] = set()
        self.changed = threading.Condition()

    def audio(self, block: np.ndarray, lost_frames: int = 0) -> None:
        with self.changed:
            self.blocks.append(block.copy())
            self.lost.append(lost_frames)
            self.threads.add(threading.get_ident())
            self.changed.notify_all()

    def line(self, event: LineEvent) -> None:
        with self.changed:
            self.events.append(event)
            self.changed.notify_all()

    def state(self, state: DriverState, detail: str = "") -> None:
        with self.changed:
            self.states.append((state, detail))
            self.changed.notify_all()

    def frames(self) -> int:
        with self.changed:
            return sum(b.shape[0] for b in self.blocks)

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.changed:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.changed.wait(left)
            return True

    def last_state(self) -> DriverState | None:
        return self.states[-1][0] if self.states else None
