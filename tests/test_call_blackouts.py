"""Blackouts in the call model on a hand-fed capture core: BLACKOUTSTART and BLACKOUTSTOP
silence exactly their samples in the file (WAV, and live MP3 or VOX re-encoded), whatever the
blocks, reaching back or from the first sample; their ranges are kept with the row, an agent's
blackout covers the calls that start during it, and a crash does not undo one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recorder.calls.requests import CallError
from recorder.codecs.convert import read_audio
from recorder.recording.files import StoredFormat
from recorder.resultcodes import ResultCode
from recorder.rules.blackout import BlackoutStateError, overlapping, started, stopped, zero_ranges
from recorder.store.directory import UserFields
from tests.helpers.calls import (
    BLOCK,
    DEV,
    RATE,
    feed_level,
    feed_seconds,
    frames,
    make_bench,
    start,
)
from tests.helpers.waiting import wait_for


@pytest.mark.parametrize("delay", [0.0, 3.0], ids=["standard", "real-time"])
@pytest.mark.slow
def test_a_blackout_reaching_back_silences_exactly_its_range(tmp_path: Path,
                                                             delay: float) -> None:
    bench, events = make_bench(tmp_path, delay=delay)
    bench.writer.start()
    try:
        start(bench)
        feed_seconds(bench, 5.0)
        bench.scheduler.blackouts.start(DEV, None, -2)  # from 3.0 s
        feed_seconds(bench, 1.0)
        bench.scheduler.blackouts.stop(DEV, None, 0)  # to 6.0 s
        feed_seconds(bench, 1.0)
        # The bench feeds faster than real time and its ring holds 10 s: before the last
        # seconds go in, let the writer thread (which a loaded machine may not have run yet)
        # take what it may, or the ring laps audio it never read.
        session = next(iter(bench.writer._sessions))
        wait_for(lambda: session.writer.frames >= (7 - delay) * RATE - BLOCK, 30,
                 what=lambda: f"the writer to reach {7 - delay} s ({session.writer.frames})")
        path = Path(bench.rows()[0].filename)
        if delay == 0:
            # Standard mode: what was already on disk was silenced in the file at once.
            on_disk, _ = read_audio(path)
            assert not on_disk[3 * RATE:min(len(on_disk), 6 * RATE)].any()
        bench.stop()
        feed_seconds(bench, delay + 0.1)
    finally:
        bench.writer.stop()
        bench.writer.join(5)
    recorded = frames(path)
    captured = bench.audio(0, 0, 7 * RATE)
    assert len(recorded) == 7 * RATE
    assert not recorded[3 * RATE:6 * RATE].any()
    assert np.array_equal(recorded[:3 * RATE], captured[:3 * RATE])
    assert np.array_equal(recorded[6 * RATE:], captured[6 * RATE:])
    assert events.types("1001") == ["CALLSTART", "RECORDINGSTARTED", "RECORDINGPAUSED",
                                    "RECORDINGRESUMED", "CALLSTOP", "RECORDINGSTOPPED",
                                    "RECORDINGUPDATE"]


@pytest.mark.parametrize(("fmt", "options"), [("mp3", {"bitrate": 32}), ("vox", {"rate": 8000})])
def test_a_blackout_in_a_live_mp3_or_vox_is_silence_after_re_encoding(
        tmp_path: Path, fmt: str, options: dict[str, int]) -> None:
    bench, _ = make_bench(tmp_path, stored=StoredFormat(fmt, options=options))
    start(bench)
    session = next(iter(bench.writer._sessions))
    feed_level(bench, 3.0, 12000)
    session.pump()  # 3 s are in the file when the blackout reaches back into them
    bench.scheduler.blackouts.start(DEV, None, -2)  # 1.0 s
    feed_level(bench, 1.0, 12000)
    bench.scheduler.blackouts.stop(DEV, None, 0)  # 4.0 s
    feed_level(bench, 1.0, 12000)
    bench.stop()
    row = bench.rows()[0]
    assert row.filename.endswith("." + fmt)
    assert not Path(row.filename + ".blackout.json").exists()
    decoded, _ = read_audio(Path(row.filename), fmt)
    mono = decoded[:, 0].astype(np.float64)
    rms = lambda a: float(np.sqrt(np.mean(a ** 2)))  # noqa: E731
    assert rms(mono[int(1.1 * RATE):int(3.9 * RATE)]) < 30
    assert rms(mono[int(0.2 * RATE):int(0.9 * RATE)]) > 5000
    assert rms(mono[int(4.1 * RATE):int(4.9 * RATE)]) > 5000


def test_a_blackoutstop_before_its_start_is_clamped_to_the_start(tmp_path: Path) -> None:
    bench, _ = make_bench(tmp_path)
    start(bench)
    feed_seconds(bench, 2.0)
    bench.scheduler.blackouts.start(DEV, None, 0)
    feed_seconds(bench, 0.5)
    bench.scheduler.blackouts.stop(DEV, None, -60)
    feed_seconds(bench, 0.5)
    bench.stop()
    recorded = frames(bench.rows()[0].filename)
    assert np.array_equal(recorded, bench.audio(0, 0, 3 * RATE))  # nothing silenced


def test_blackout_state_errors(tmp_path: Path) -> None:
    bench, _ = make_bench(tmp_path)
    with pytest.raises(CallError) as no_call:
        bench.scheduler.blackouts.start(DEV, None, 0)
    assert no_call.value.code is ResultCode.API_DEVICE_NOT_IN_CALL
    start(bench)
    with pytest.raises(CallError) as none_running:
        bench.scheduler.blackouts.stop(DEV, None, 0)
    assert none_running.value.code is ResultCode.API_BLACKOUT_INVALID_STATE
    bench.scheduler.blackouts.start(DEV, None, 0)
    with pytest.raises(CallError) as twice:
        bench.scheduler.blackouts.start(DEV, None, 0)
    assert twice.value.code is ResultCode.API_BLACKOUT_INVALID_STATE


def test_a_second_blackout_in_a_call_silences_only_its_own_range(tmp_path: Path) -> None:
    bench, events = make_bench(tmp_path)
    start(bench)
    for _ in range(2):  # 1 s of audio, then 1 s blacked out, twice
        feed_seconds(bench, 1.0)
        bench.scheduler.blackouts.start(DEV, None, 0)
        feed_seconds(bench, 1.0)
        bench.scheduler.blackouts.stop(DEV, None, 0)
    feed_seconds(bench, 1.0)
    bench.stop()
    recorded = frames(bench.rows()[0].filename)
    captured = bench.audio(0, 0, 5 * RATE)
    assert len(recorded) == 5 * RATE
    for second, blacked_out in enumerate([False, True, False, True, False]):
        part = slice(second * RATE, (second + 1) * RATE)
        if blacked_out:
            assert not recorded[part].any(), second
        else:
            assert np.array_equal(recorded[part], captured[part]), second
    assert events.types("1001").count("RECORDINGRESUMED") == 2


def test_a_blackout_from_the_first_sample_silences_it(tmp_path: Path) -> None:
    bench, _ = make_bench(tmp_path)
    start(bench)
    bench.scheduler.blackouts.start(DEV, None, 0)  # before any audio: at sample 0
    feed_seconds(bench, 1.0)
    bench.scheduler.blackouts.stop(DEV, None, 0)
    feed_seconds(bench, 1.0)
    bench.stop()
    recorded = frames(bench.rows()[0].filename)
    assert bench.audio(0, 0, 1).all()  # the first sample captured is not silence itself
    assert not recorded[:RATE].any()
    assert np.array_equal(recorded[RATE:], bench.audio(0, RATE, 2 * RATE))


def test_audio_written_while_a_blackout_runs_is_silence_on_disk(tmp_path: Path) -> None:
    """A crash during the blackout must not leave its audio in the file: the writer silences
    it before it writes, not only when BLACKOUTSTOP comes."""
    bench, _ = make_bench(tmp_path)
    start(bench)
    session = next(iter(bench.writer._sessions))
    feed_seconds(bench, 1.0)
    bench.scheduler.blackouts.start(DEV, None, 0)
    feed_seconds(bench, 2.0)
    session.pump()
    session.writer.sync()
    on_disk, _ = read_audio(session.path)
    assert len(on_disk) == 3 * RATE
    assert np.array_equal(on_disk[:RATE, 0], bench.audio(0, 0, RATE))
    assert not on_disk[RATE:, 0].any()
    bench.scheduler.blackouts.stop(DEV, None, 0)
    bench.stop()


def test_a_blackout_silences_exactly_its_samples_wherever_a_block_starts() -> None:
    block = np.full((100, 2), 7, dtype=np.int16)  # frame 0 at position 7990
    zero_ranges(block, 7990, [(8010, 8020), (9000, 9100), (7000, 7990)])
    assert not block[20:30].any()
    assert (block[:20] == 7).all()
    assert (block[30:] == 7).all()
    # Only the parts inside the block count: a range ending where it starts, or starting
    # where it ends, has none (and a session with none leaves its file alone).
    assert overlapping([(0, 100), (200, 300)], 100, 200) == []
    assert overlapping([(0, 50), (250, 300)], 100, 200) == []
    assert overlapping([(50, 150), (190, 250)], 100, 200) == [(100, 150), (190, 200)]


def test_blackoutstop_reports_the_range_it_closed() -> None:
    ranges: list[list[int]] = []
    started(ranges, 800)
    assert stopped(ranges, 2400) == (800, 2400)
    started(ranges, 3000)
    assert stopped(ranges, 100) == (3000, 3000)  # never before its start
    with pytest.raises(BlackoutStateError):
        stopped(ranges, 4000)


def test_an_agent_blackout_covers_calls_that_start_during_it(tmp_path: Path) -> None:
    bench, events = make_bench(tmp_path)
    agent = bench.store.add_user(UserFields(username="jsmith", sys_user="JSMITH",
                                            first_name="J", last_name="Smith"), now=0)
    bench.store.assign_phone(agent, "1001", now=0)
    devices = bench.scheduler.lookup.agent_devices("JSMITH", None)
    assert devices == ["1001"]
    start(bench, instance="a")
    feed_seconds(bench, 1.0)
    bench.scheduler.blackouts.agent_start(devices, 0)
    feed_seconds(bench, 1.0)
    start(bench, instance="b")  # starts blacked out
    feed_seconds(bench, 1.0)
    bench.scheduler.blackouts.agent_stop(devices, 0)
    feed_seconds(bench, 1.0)
    bench.stop(instance="a")
    bench.stop(instance="b")
    first, second = sorted(bench.rows(), key=lambda r: r.call_instance)
    a, b = frames(first.filename), frames(second.filename)
    captured = bench.audio(0, 0, 4 * RATE)
    assert np.array_equal(a[:RATE], captured[:RATE])
    assert not a[RATE:3 * RATE].any()
    assert np.array_equal(a[3 * RATE:], captured[3 * RATE:])
    assert not b[:RATE].any()
    assert np.array_equal(b[RATE:], captured[3 * RATE:])
    with_agent = [e for e in events.events if "AGENTID" in dict(e.data)]
    assert with_agent
    assert all(e.get("AGENTID") == str(agent) for e in with_agent)
    with pytest.raises(CallError) as stopped:
        bench.scheduler.blackouts.agent_stop(devices, 0)
    assert stopped.value.code is ResultCode.API_BLACKOUT_INVALID_STATE


def test_a_crash_before_a_live_mp3_closes_still_silences_its_blackout(tmp_path: Path) -> None:
    bench, _ = make_bench(tmp_path, stored=StoredFormat("mp3", options={"bitrate": 32}))
    start(bench)
    session = next(iter(bench.writer._sessions))
    feed_level(bench, 3.0, 12000)
    session.pump()  # the writer loop's work: 3 s are in the file when the blackout comes
    bench.scheduler.blackouts.start(DEV, None, -2)  # from 1.0 s
    feed_level(bench, 1.0, 12000)
    bench.scheduler.blackouts.stop(DEV, None, 0)  # to 4.0 s
    feed_level(bench, 2.0, 12000)
    session.pump()
    session.writer.sync()
    path = session.path
    pending = path.with_name(path.name + ".blackout.json")
    assert pending.exists()
    # The process dies here; the next start completes the recording from its file.
    from recorder.recording.journal import Journal  # noqa: PLC0415
    from recorder.recording.recovery import complete_interrupted  # noqa: PLC0415

    [row] = complete_interrupted(bench.store, Journal(tmp_path / "journal"))
    assert row.filename == str(path)
    assert not pending.exists()
    decoded, _ = read_audio(path)
    mono = decoded[:, 0].astype(np.float64)
    assert float(np.sqrt(np.mean(mono[int(1.1 * RATE):int(3.9 * RATE)] ** 2))) < 30
    assert float(np.sqrt(np.mean(mono[int(4.1 * RATE):int(4.9 * RATE)] ** 2))) > 5000
