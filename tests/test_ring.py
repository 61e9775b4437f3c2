"""Per-channel rings: samples come back exactly, by absolute position; losses are reported."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recorder.capture.ring import BoardRing, ReadResult


def block(start: int, frames: int, channels: int) -> np.ndarray:
    """Frames whose value encodes (absolute index, channel), so any mix-up shows."""
    idx = np.arange(start, start + frames)[:, None]
    return ((idx * 8 + np.arange(channels)) % 30000).astype(np.int16)


def test_each_channel_reads_back_its_own_samples() -> None:
    ring = BoardRing(channels=3, capacity=100)
    ring.write(block(0, 40, 3))
    ring.write(block(40, 30, 3))
    assert ring.write_pos == 70
    for ch in range(3):
        got = ring.read(ch, 10, 70)
        assert got.lost == 0
        np.testing.assert_array_equal(got.samples, block(0, 70, 3)[10:70, ch])


def test_reads_across_the_wrap_point() -> None:
    ring = BoardRing(channels=2, capacity=50)
    for n in range(0, 180, 30):
        ring.write(block(n, 30, 2))
    got = ring.read(1, 140, 180)
    assert got.lost == 0
    np.testing.assert_array_equal(got.samples, block(140, 40, 2)[:, 1])


def test_samples_older_than_the_ring_are_reported_lost_and_zeroed() -> None:
    ring = BoardRing(channels=1, capacity=50)
    ring.write(block(0, 120, 1))
    got = ring.read(0, 40, 120)
    assert got.lost == 30  # 40..69 were overwritten
    assert not got.samples[:30].any()
    np.testing.assert_array_equal(got.samples[30:], block(70, 50, 1)[:, 0])


def test_a_block_longer_than_the_ring_keeps_its_newest_samples() -> None:
    ring = BoardRing(channels=2, capacity=16)
    ring.write(block(0, 100, 2))
    assert ring.write_pos == 100
    got = ring.read(0, 84, 100)
    np.testing.assert_array_equal(got.samples, block(84, 16, 2)[:, 0])


def test_bad_shapes_and_future_reads_are_refused() -> None:
    ring = BoardRing(channels=2, capacity=16)
    with pytest.raises(ValueError, match="expected"):
        ring.write(np.zeros((4, 3), np.int16))
    with pytest.raises(ValueError, match="only 0 samples"):
        ring.read(0, 0, 1)
    with pytest.raises(ValueError, match="no channels 1 to 2"):
        ring.read_adjacent(1, 2, 0, 0)


@settings(max_examples=200, deadline=None)
@given(capacity=st.integers(1, 64), channels=st.integers(1, 4),
       blocks=st.lists(st.integers(0, 100), min_size=1, max_size=20),
       window=st.tuples(st.integers(0, 2000), st.integers(0, 2000)))
def test_matches_a_model_that_keeps_everything(capacity: int, channels: int,
                                               blocks: list[int],
                                               window: tuple[int, int]) -> None:
    ring = BoardRing(channels, capacity)
    pos = 0
    for frames in blocks:
        ring.write(block(pos, frames, channels))
        pos += frames
    everything = block(0, pos, channels)
    start, end = sorted(w % (pos + 1) for w in window)
    expected_lost = max(0, min(end, pos - capacity) - start)
    for ch in range(channels):
        got = ring.read(ch, start, end)
        assert got.lost == expected_lost
        assert len(got.samples) == end - start
        np.testing.assert_array_equal(got.samples[expected_lost:],
                                      everything[start + expected_lost:end, ch])
        assert not got.samples[:expected_lost].any()
    # Adjacent channels read together (a SIPREC call's two parties) are the same samples.
    for first in range(channels):
        for count in range(1, channels - first + 1):
            both = ring.read_adjacent(first, count, start, end)
            assert both.lost == expected_lost
            assert both.samples.shape == (end - start, count)
            np.testing.assert_array_equal(both.samples[expected_lost:],
                                          everything[start + expected_lost:end,
                                                     first:first + count])
            assert not both.samples[:expected_lost].any()


def test_a_reader_lapped_while_the_writer_is_still_copying_counts_the_samples_lost() -> None:
    """The interleaving a preempted driver thread can produce, replayed step by step."""
    ring = BoardRing(channels=1, capacity=100)
    ring.write(block(0, 100, 1))
    reads: list[ReadResult] = []
    # The next write copies samples 100..119 over the slots of 0..19; read 0..49 just as the
    # copy begins, before write_pos moves.
    ring._data = _InterruptedArray(ring._data, lambda: reads.append(ring.read(0, 0, 50)))
    ring.write(block(100, 20, 1))
    (got,) = reads
    assert got.lost == 20
    assert not got.samples[:20].any()
    np.testing.assert_array_equal(got.samples[20:], block(20, 30, 1)[:, 0])


class _InterruptedArray:
    """A ring's array that runs ``interrupt`` once, when the writer starts copying into it."""

    def __init__(self, array: np.ndarray, interrupt: Callable[[], object]) -> None:
        self.array = array
        self.interrupt: Callable[[], object] | None = interrupt

    def __getitem__(self, key: Any) -> np.ndarray:
        return self.array[key]  # type: ignore[no-any-return]

    def __setitem__(self, key: Any, value: np.ndarray) -> None:
        interrupt, self.interrupt = self.interrupt, None
        if interrupt is not None:
            interrupt()
        self.array[key] = value
