"""A board's clock: positions to time, and audio that went missing without the driver saying."""

from __future__ import annotations

import time

import numpy as np
import pytest

from recorder.capture.clock import MAX_SLEW, BoardClock
from recorder.capture.core import CaptureBoard
from recorder.drivers.base import Block, PacedDriver

RATE = 8000
BLOCK = 160  # 20 ms


def run(clock: BoardClock, arrivals: list[float], start_end: int = BLOCK) -> list[int]:
    """Feed blocks arriving at ``arrivals``; returns what observe() found missing each time."""
    end, found = start_end, []
    for t in arrivals:
        missing = clock.observe(end, t)
        found.append(missing)
        end += BLOCK + missing
    return found


def steady(seconds: float, start: float = 100.0, jitter: float = 0.0) -> list[float]:
    n = round(seconds * RATE / BLOCK)
    return [start + (i + 1) * BLOCK / RATE + (jitter if i % 7 == 3 else 0.0) for i in range(n)]


def test_positions_map_to_the_time_they_were_captured() -> None:
    clock = BoardClock(RATE)
    clock.observe(BLOCK, 100.02)
    assert clock.time_of(0) == pytest.approx(100.0)
    assert clock.time_of(8000) == pytest.approx(101.0)
    assert clock.position_at(100.5) == 4000


@pytest.mark.parametrize(("name", "arrivals", "lost"), [
    ("on time", steady(3), 0),
    ("jitter of 200 ms comes back", steady(3, jitter=0.2), 0),
    ("early blocks re-anchor", [t - 0.05 * (i > 50) for i, t in enumerate(steady(3))], 0),
])
def test_no_loss_is_invented(name: str, arrivals: list[float], lost: int) -> None:
    assert sum(run(BoardClock(RATE), arrivals)) == lost


def test_a_second_of_missing_audio_is_found_and_sized() -> None:
    before = steady(2)
    # The device stalls: from here every block arrives 1 s later than its position says.
    after = [t + 1.0 for t in steady(3, start=before[-1])]
    found = run(BoardClock(RATE), before + after)
    assert sum(found) == pytest.approx(RATE, abs=BLOCK)
    assert sum(1 for f in found if f) == 1


def test_a_slow_device_clock_is_followed_not_reported() -> None:
    # 500 ppm slow for ten minutes builds up 0.3 s of lateness: drift, not a loss.
    n = round(600 * RATE / BLOCK)
    arrivals = [100.0 + (i + 1) * BLOCK / RATE * 1.0005 for i in range(n)]
    assert sum(run(BoardClock(RATE), arrivals)) == 0
    assert MAX_SLEW > 0.0005


class _SlowBoard(PacedDriver):
    """A computed board that can only make 0.75 s of audio a second: an overloaded source."""

    def __init__(self) -> None:
        super().__init__("boards[1]", 1, 8000, 20)

    def next_block(self, frames: int) -> Block:
        time.sleep(frames / self.sample_rate / 0.75)
        return np.zeros((frames, 1), dtype=np.int16)


@pytest.mark.slow
def test_a_source_running_late_has_its_gap_filled_once_not_twice() -> None:
    # The driver skips what it cannot make and says so (lost frames); the board clock must not
    # fill the same lateness with silence again, or the recording outlasts the wall clock.
    driver = _SlowBoard()
    board = CaptureBoard(driver, ["1001"], lookback_seconds=10.0)
    began = time.monotonic()
    driver.start(board)
    try:
        time.sleep(6.0)
    finally:
        driver.stop()
        driver.join(5.0)
    elapsed = time.monotonic() - began
    recorded = board.ring.write_pos / driver.sample_rate
    assert board.gaps[0] >= 1  # the loss was seen and counted ...
    # ... once: the timeline is the wall clock's, give or take the block being made at the stop.
    assert recorded <= elapsed + 0.1, (recorded, elapsed, int(board.gap_frames[0]))
