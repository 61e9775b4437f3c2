"""The capture board as a driver's sink: gaps, overruns, line events and device faults."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from recorder.capture.channels import ChannelState
from recorder.capture.core import MAX_GAP_RANGES, CaptureBoard, CaptureCore, gap_frames_in
from recorder.codecs.formats import open_writer
from recorder.drivers.base import DriverState
from recorder.drivers.lineevents import LineEvent, LineEventKind
from recorder.drivers.registry import create_driver
from recorder.drivers.settings import SyntheticBoardConfig
from recorder.recording.session import RecordingSession

RATE = 8000
BLOCK = 160


class FakeTime:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


def board(realtime: bool = False, clock: FakeTime | None = None,
          lookback: float = 10.0) -> CaptureBoard:
    driver = create_driver("boards[0]", SyntheticBoardConfig(devices=("1", "2"), channels=2,
                                                             realtime=realtime))
    if clock is None:
        return CaptureBoard(driver, ("1", "2"), lookback)
    return CaptureBoard(driver, ("1", "2"), lookback, clock=clock)


def ones(frames: int = BLOCK) -> np.ndarray:
    return np.ones((frames, 2), np.int16)


def test_frames_the_driver_lost_become_silence_and_are_counted() -> None:
    b = board()
    b.audio(ones())
    b.audio(ones(), lost_frames=400)
    assert b.ring.write_pos == 2 * BLOCK + 400
    got = b.ring.read(1, 0, b.ring.write_pos).samples
    assert (got[:BLOCK] == 1).all()
    assert (got[BLOCK:BLOCK + 400] == 0).all()
    assert (got[BLOCK + 400:] == 1).all()
    levels = b.levels(0)
    assert (levels.gaps, levels.gap_frames) == (1, 400)
    assert b.levels(1).gap_frames == 400


def test_the_board_clock_finds_a_stall_the_driver_did_not_report() -> None:
    t = FakeTime()
    b = board(realtime=True, clock=t)
    # Standing in for a device's driver (a sound card, a modem), which cannot know every loss;
    # the demo board itself reports what it skips, and the clock then leaves it alone.
    b.driver.reports_lost_time = False
    for _ in range(100):  # 2 s on time
        t.now += BLOCK / RATE
        b.audio(ones())
    t.now += 1.5  # the device stalls 1.5 s and its driver says nothing
    for _ in range(150):
        t.now += BLOCK / RATE
        b.audio(ones())
    levels = b.levels(0)
    assert levels.gaps == 1
    assert levels.gap_frames == pytest.approx(1.5 * RATE, abs=BLOCK)
    # The timeline is whole again: the newest sample's position says when it was captured.
    assert b.clock.time_of(b.ring.write_pos) == pytest.approx(t.now, abs=0.05)


def test_a_board_that_reports_its_own_losses_gets_no_second_gap_from_the_clock() -> None:
    t = FakeTime()
    b = board(realtime=True, clock=t)
    for _ in range(100):
        t.now += BLOCK / RATE
        b.audio(ones())
    t.now += 0.6  # the demo board runs 0.6 s late: it catches up, or reports what it skips
    for _ in range(150):
        t.now += BLOCK / RATE
        b.audio(ones())
    assert (b.levels(0).gaps, b.ring.write_pos) == (0, 250 * BLOCK)


def test_a_reader_lapped_by_the_ring_counts_an_overrun_on_its_channel() -> None:
    b = board(lookback=1.0)
    core = CaptureCore([b])
    for _ in range(100):  # 2 s through a 1 s ring
        b.audio(ones())
    got = core.channels[1].read(0, 2 * RATE)
    assert got.lost == RATE
    assert (core.channels[1].levels().overruns, core.channels[1].levels().overrun_frames) == \
        (1, RATE)
    assert core.channels[0].levels().overruns == 0


@pytest.mark.parametrize(("start", "end", "expected"), [
    (0, 50, 0),         # before any gap
    (100, 200, 50),     # the first gap's second half
    (60, 70, 10),       # inside a gap
    (0, 10_000, 150),   # across both
    (100, 320, 70),     # from inside the first into the second
    (400, 1000, 0),     # after both
    (200, 300, 0),      # between them
], ids=["before", "tail", "inside", "across", "from-inside", "after", "between"])
def test_the_gap_frames_of_a_stretch_of_positions(start: int, end: int, expected: int) -> None:
    assert gap_frames_in(((50, 150), (300, 350)), start, end) == expected


def test_a_board_remembers_its_newest_gaps_by_position() -> None:
    b = board()
    for _ in range(MAX_GAP_RANGES + 2):
        b.audio(ones(10), lost_frames=5)
    # Each turn: 5 frames of silence, then 10 of audio.
    assert b.gap_frames_in(0, b.ring.write_pos) == 5 * MAX_GAP_RANGES
    assert b.gap_frames_in(b.ring.write_pos - 15, b.ring.write_pos) == 5
    assert b.levels(0).gap_frames == 5 * (MAX_GAP_RANGES + 2)


def test_a_reader_lapped_across_a_gap_counts_as_overrun_only_the_audio_it_missed() -> None:
    b = board(lookback=1.0)  # a ring of RATE frames
    core = CaptureCore([b])
    b.audio(ones(RATE // 2))
    b.audio(ones(RATE // 2), lost_frames=RATE + RATE // 4)  # a stall longer than the ring
    got = core.channels[0].read(0, b.ring.write_pos)
    levels = core.channels[0].levels()
    # The reader lost everything before the ring's oldest position: half a second of audio
    # it never read (an overrun), then the gap's first three quarters of a second.
    assert got.lost == RATE // 2 + 3 * RATE // 4
    assert (levels.overruns, levels.overrun_frames) == (1, RATE // 2)
    assert levels.gap_frames == RATE + RATE // 4
    # Every position counted once, as one or the other.
    assert levels.overrun_frames + levels.gap_frames == 2 * RATE + RATE // 4 - RATE // 2


def _session(b: CaptureBoard, tmp_path: Path) -> RecordingSession:
    core = CaptureCore([b])
    path = tmp_path / "call.wav"
    writer = open_writer("wav", path.open("xb"), RATE, 1)
    return RecordingSession(core.channels[0], writer, path, b.ring.write_pos)


@pytest.mark.parametrize("lookback", [10.0, 1.0], ids=["within-the-ring", "ring-lapped"])
def test_a_gap_a_recording_reads_is_lost_audio_of_its_row_counted_once(
        tmp_path: Path, lookback: float) -> None:
    b = board(lookback=lookback)
    session = _session(b, tmp_path)
    b.audio(ones(RATE // 2))
    session.pump()
    gap = 3 * RATE // 2  # longer than the 1 s ring: the writer is lapped too
    b.audio(ones(RATE // 2), lost_frames=gap)  # a stalled process: the writer did not run
    b.audio(ones(RATE // 2))
    session.pump()
    result = session.finish(b.ring.write_pos)
    levels = b.levels(0)
    assert levels.gap_frames == gap
    # The file keeps the timeline: the stall is silence at its place, at its length.
    audio, _ = soundfile.read(result.path, dtype="int16")
    assert len(audio) == RATE // 2 + gap + RATE
    assert (audio[:RATE // 2] == 1).all()
    assert (audio[RATE // 2:RATE // 2 + gap] == 0).all()
    assert (audio[-RATE // 2:] == 1).all()
    # The row counts every silent position as lost, once, and agrees with the channel's
    # figures (and so with /metrics, CHANNELS and recorderctl channels, which show them).
    assert result.lost_samples == gap
    assert levels.overrun_frames == 0
    assert result.lost_samples == levels.gap_frames + levels.overrun_frames


def test_a_recording_lapped_before_a_gap_counts_the_missed_audio_and_the_gap_once(
        tmp_path: Path) -> None:
    b = board(lookback=1.0)
    session = _session(b, tmp_path)
    b.audio(ones(RATE // 4))  # never read before the ring laps it
    b.audio(ones(RATE // 2), lost_frames=3 * RATE // 2)
    session.pump()
    result = session.finish(b.ring.write_pos)
    levels = b.levels(0)
    assert (levels.gap_frames, levels.overrun_frames) == (3 * RATE // 2, RATE // 4)
    assert result.lost_samples == levels.gap_frames + levels.overrun_frames
    audio, _ = soundfile.read(result.path, dtype="int16")
    assert (audio[:-RATE // 2] == 0).all()
    assert (audio[-RATE // 2:] == 1).all()


def test_a_channels_own_losses_count_in_its_recordings_once_even_when_found_late(
        tmp_path: Path) -> None:
    b = board()
    core = CaptureCore([b])
    path = tmp_path / "both.wav"
    # A recording of both channels (a SIPREC call's two parties) and one of channel 2 alone.
    both = RecordingSession(core.channels, open_writer("wav", path.open("xb"), RATE, 2), path, 0)
    other = tmp_path / "two.wav"
    second = RecordingSession(core.channels[1], open_writer("wav", other.open("xb"), RATE, 1),
                              other, 0)
    b.channel_lost([(0, 100, 60)])  # in the block about to come
    b.audio(ones(RATE // 4))
    both.pump()
    second.pump()
    b.channel_lost([(0, 500, 40), (1, 1000, 20)])  # found after it was written and read
    b.channel_lost([(1, RATE // 4, 30)])  # reaching into the next block
    b.audio(ones(RATE // 4))
    assert both.finish(b.ring.write_pos).lost_samples == 60 + 40 + 20 + 30
    assert second.finish(b.ring.write_pos).lost_samples == 20 + 30
    assert (b.levels(0).gaps, b.levels(0).gap_frames) == (2, 100)
    assert (b.levels(1).gaps, b.levels(1).gap_frames) == (2, 50)


@pytest.mark.parametrize("order", [(0, 1), (1, 0)], ids=["in-order", "swapped"])
@pytest.mark.parametrize("stereo", [True, False], ids=["stereo", "mono"])
def test_a_calls_adjacent_channels_read_together_write_what_each_alone_would(
        tmp_path: Path, order: tuple[int, int], stereo: bool) -> None:
    """The writer reads a SIPREC call's two adjacent channels in one copy: the file is the
    same as from the channels read one by one, left and right in the recording's order, the
    mono mix clipped, and a lapped ring counted on both channels."""
    b = board(lookback=1.0)
    core = CaptureCore([b])
    taps = [core.channels[i] for i in order]
    path = tmp_path / "call.wav"
    session = RecordingSession(taps, open_writer("wav", path.open("xb"), RATE, 1 + stereo),
                               path, 0)
    rng = np.random.default_rng(7)
    audio = rng.integers(-32768, 32767, size=(3 * RATE, 2), dtype=np.int16)
    b.audio(audio[:RATE // 2])
    session.pump()
    b.audio(audio[RATE // 2:])  # 2.5 s more: the 1 s ring laps the writer
    result = session.finish(b.ring.write_pos)
    lost = 3 * RATE // 2
    assert result.lost_samples == lost
    assert [b.levels(i).overrun_frames for i in (0, 1)] == [lost, lost]
    expected = audio[:, list(order)].copy()
    expected[RATE // 2:RATE // 2 + lost] = 0
    if not stereo:
        expected = np.clip(expected[:, 0].astype(np.int32) + expected[:, 1], -32768,
                           32767).astype(np.int16)
    written, _ = soundfile.read(path, dtype="int16")
    np.testing.assert_array_equal(written, expected)


def test_channels_bound_to_calls_as_they_come() -> None:
    driver = create_driver("boards[0]", SyntheticBoardConfig(devices=("a", "b", "c", "d"),
                                                             channels=4))
    core = CaptureCore([CaptureBoard(driver, ("", "", "", ""), 10.0)])
    first, second = core.channels[:2], core.channels[2:]
    assert core.channels_for_device("1001") == ()
    core.bind("1001", first)
    core.bind("1001", second)  # a second call of the device at once
    assert [c.device_id for c in core.channels] == ["1001"] * 4
    assert core.channels_for_device("1001") == tuple(second)
    core.unbind("1001", second)
    assert core.channels_for_device("1001") == tuple(first)
    assert [c.device_id for c in core.channels] == ["1001", "1001", "", ""]
    core.unbind("1001", first)
    assert core.channel_for_device("1001") is None


def test_line_events_are_stamped_with_the_sample_they_happened_at() -> None:
    b = board()
    core = CaptureCore([CaptureBoard(create_driver("boards[0]", SyntheticBoardConfig(
        devices=("9",), channels=1)), ("9",), 10.0), b])
    b.audio(ones(300))
    b.line(LineEvent(1, LineEventKind.OFF_HOOK))
    b.audio(ones(100))
    b.line(LineEvent(1, LineEventKind.ON_HOOK))
    b.line(LineEvent(7, LineEventKind.RING))  # no such channel: ignored
    events = core.events()
    assert [(e.channel, e.event.kind, e.position) for e in events] == [
        (3, LineEventKind.OFF_HOOK, 300), (3, LineEventKind.ON_HOOK, 400)]
    assert core.events() == []


def test_hook_events_and_device_faults_show_in_the_channel_state() -> None:
    b = board()
    core = CaptureCore([b])
    b.line(LineEvent(0, LineEventKind.OFF_HOOK))
    assert core.channels[0].status.snapshot().state is ChannelState.OFF_HOOK
    assert core.channels[1].status.snapshot().state is ChannelState.ON_HOOK
    b.state(DriverState.ERROR, "USB device unplugged")
    snap = core.channels[1].status.snapshot()
    assert (snap.state, snap.detail) == (ChannelState.ERROR, "USB device unplugged")
    b.state(DriverState.RESETTING, "reopening")
    assert core.channels[0].status.snapshot().state is ChannelState.RESETTING
    b.state(DriverState.RUNNING)
    assert core.channels[0].status.snapshot().state is ChannelState.OFF_HOOK
    b.line(LineEvent(0, LineEventKind.LOOP_DROP))
    assert core.channels[0].status.snapshot().state is ChannelState.ON_HOOK


def test_the_meter_measures_what_was_captured() -> None:
    b = board()
    loud = np.full((BLOCK * 3, 2), 0, np.int16)
    loud[:, 0] = 10000
    b.audio(loud)
    b.measure()
    assert b.levels(0).rms_dbfs == pytest.approx(20 * np.log10(10000 / 32768), abs=0.01)
    assert not b.levels(0).silent
    assert b.levels(1).silent
    assert b.meter.analyzed == BLOCK * 3
