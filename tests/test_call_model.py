"""The call model on a hand-fed capture core: limits, preemption, filters, blackouts, partial
recordings and the events of each, checked in the files' samples and the rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

import recorder.calls.watch as watch_module
from recorder.calls.requests import CallError, CallStart, DeviceQuery
from recorder.codecs.convert import read_audio
from recorder.config.loader import config_from_dict
from recorder.events.types import CollectedEvents
from recorder.recording.files import StoredFormat
from recorder.resultcodes import ResultCode
from recorder.rules.blackout import BlackoutStateError, overlapping, started, stopped, zero_ranges
from recorder.rules.decision import Policy
from recorder.store.directory import UserFields
from tests.helpers.calls import BLOCK, Bench

RATE = 8000
DEV = DeviceQuery(device_id="1001")


def policy(**recording: object) -> Policy:
    config = config_from_dict({"recording": recording})
    return Policy.from_config(config.recording, channels=2)


def make_bench(tmp_path: Path, **kwargs: object) -> tuple[Bench, CollectedEvents]:
    events = CollectedEvents()
    return Bench(tmp_path, events=events, **kwargs), events


def feed_seconds(bench: Bench, seconds: float) -> None:
    bench.feed(round(seconds * RATE / BLOCK))
    bench.capture.measure()


def feed_level(bench: Bench, seconds: float, amplitude: int) -> None:
    """Blocks of a 400 Hz tone at ``amplitude`` (0: digital silence) on every channel."""
    for _ in range(round(seconds * RATE / BLOCK)):
        start = sum(len(b) for b in bench.captured)
        t = np.arange(start, start + BLOCK) / RATE
        tone = (amplitude * np.sin(2 * np.pi * 400 * t)).astype(np.int16)
        block = np.repeat(tone[:, None], len(bench.capture.boards[0].devices), axis=1)
        bench.capture.boards[0].on_block(block)
        bench.captured.append(block)
        bench.now += BLOCK / RATE
    bench.capture.measure()


def start(bench: Bench, device: str = "1001", instance: str = "", **kw: object) -> None:
    bench.scheduler.call_start(CallStart(device=DeviceQuery(device_id=device),
                                         instance=instance, **kw))  # type: ignore[arg-type]


def frames(path: str | Path) -> np.ndarray:
    data, _ = soundfile.read(str(path), dtype="int16", always_2d=True)
    return data[:, 0]


def test_maxrecordtime_ends_the_file_at_exactly_that_length(tmp_path: Path) -> None:
    bench, events = make_bench(tmp_path)
    start(bench, max_record_time=2)
    feed_seconds(bench, 3.1)
    # The writer loop moves the audio to the file before the (late) check ends the recording.
    next(iter(bench.writer._sessions)).pump()
    bench.watch.enforce_limits()
    [row] = bench.rows()
    assert row.stop_reason == "maxrecordtime"
    assert soundfile.info(row.filename).frames == 2 * RATE
    assert np.array_equal(frames(row.filename), bench.audio(0, 0, 2 * RATE))
    stopped = [e for e in events.events if e.event_type == "RECORDINGSTOPPED"]
    assert [e.get("ERRORREASON") for e in stopped] == ["MAXRECORDTIME"]
    # The call itself goes on until its CALLSTOP, which now has nothing left to record.
    status = bench.scheduler.status.device_status(DEV)[0].current
    assert status is not None
    assert status.stop_time is None
    assert not status.recording
    bench.stop()
    assert events.types("1001")[-1] == "CALLSTOP"
    assert len(bench.rows()) == 1


def test_the_configured_maxrecordtime_applies_when_the_call_sends_none(tmp_path: Path) -> None:
    bench, _ = make_bench(tmp_path, policy=policy(max_record_time_seconds=1))
    start(bench)
    feed_seconds(bench, 1.5)
    bench.watch.enforce_limits()
    assert soundfile.info(bench.rows()[0].filename).frames == RATE


def test_maxrecordsilence_ends_the_recording_after_that_much_silence(tmp_path: Path) -> None:
    bench, events = make_bench(tmp_path)
    start(bench, max_record_silence=2)
    feed_level(bench, 1.0, 12000)
    feed_level(bench, 1.5, 0)
    bench.watch.enforce_limits()
    assert bench.rows()[0].status == "recording"  # 1.5 s of silence is not 2
    feed_level(bench, 1.0, 0)
    bench.watch.enforce_limits()
    [row] = bench.rows()
    assert row.stop_reason == "maxrecordsilence"
    # Ends 2 s into the silence (to the level meter's 20 ms window).
    assert soundfile.info(row.filename).frames == pytest.approx(3 * RATE, abs=RATE // 50)
    assert events.events[-2].get("ERRORREASON") == "MAXRECORDSILENCE"


def test_speech_resets_the_silence_count(tmp_path: Path) -> None:
    bench, _ = make_bench(tmp_path)
    start(bench, max_record_silence=2)
    for _ in range(3):
        feed_level(bench, 1.5, 0)
        bench.watch.enforce_limits()
        feed_level(bench, 0.2, 12000)
        bench.watch.enforce_limits()
    assert bench.rows()[0].status == "recording"


def test_a_higher_priority_call_preempts_the_lowest_at_the_limit(tmp_path: Path) -> None:
    bench, events = make_bench(tmp_path, policy=policy(max_concurrent=1))
    start(bench, "1001", priority=10)
    feed_seconds(bench, 0.5)
    start(bench, "1002", priority=90)
    feed_seconds(bench, 0.5)
    low, high = sorted(bench.rows(), key=lambda r: r.device_id)
    assert low.stop_reason == "preempted"
    assert low.status == "complete"
    assert high.status == "recording"
    assert "PREEMPTED" in [e.get("ERRORREASON") for e in events.events
                           if e.event_type == "RECORDINGSTOPPED"]


def test_a_lower_priority_call_at_the_limit_is_not_recorded(tmp_path: Path) -> None:
    bench, events = make_bench(tmp_path, policy=policy(max_concurrent=1))
    start(bench, "1001", priority=90)
    start(bench, "1002", priority=10)
    assert [r.device_id for r in bench.rows()] == ["1001"]
    status = bench.scheduler.status.device_status(DeviceQuery(device_id="1002"))[0].current
    assert status is not None
    assert status.decision is not None
    assert status.decision.reason is ResultCode.API_ERROR_NO_FREE_CHANNELS
    refused = [e for e in events.events if e.device_id == "1002"
               and e.event_type == "RECORDINGSTARTED"]
    assert [e.get("ERRORREASON") for e in refused] == ["API_ERROR_NO_FREE_CHANNELS"]


def test_a_blocked_ani_is_not_recorded(tmp_path: Path) -> None:
    bench, _ = make_bench(tmp_path, policy=policy(blocked=[{"name": "hr", "ani": ["555*"]}]))
    start(bench, "1001", meta={"ANI": "5551234"})
    start(bench, "1002", meta={"ANI": "6145551212"})
    assert [r.device_id for r in bench.rows()] == ["1002"]
    status = bench.scheduler.status.device_status(DEV)[0].current
    assert status is not None
    assert status.decision is not None
    assert status.decision.reason is ResultCode.API_ERROR_BLOCKED_RECORDING_FILTER


def test_below_the_free_space_floor_new_calls_are_refused_and_running_ones_finish(
        tmp_path: Path) -> None:
    room = [True]
    bench, _ = make_bench(tmp_path, disk_ok=lambda: room[0])
    start(bench, "1001")
    room[0] = False
    start(bench, "1002")
    feed_seconds(bench, 0.5)
    bench.stop("1001")
    [row] = bench.rows()
    assert row.device_id == "1001"
    assert row.status == "complete"
    status = bench.scheduler.status.device_status(DeviceQuery(device_id="1002"))[0].current
    assert status is not None
    assert status.decision is not None
    assert status.decision.reason is ResultCode.API_ERROR_OUT_OF_DISK_SPACE


def test_a_call_refused_for_disk_space_is_recorded_once_there_is_room(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(watch_module, "ROOM_CHECK_SECONDS", 0.0)
    room = [False]
    bench, events = make_bench(tmp_path, disk_ok=lambda: room[0])
    feed_seconds(bench, 1.0)
    start(bench, "1001", meta={"ANI": "100"})  # at 1 s
    feed_seconds(bench, 2.0)
    bench.watch.resume_after_disk_full()  # still no room
    assert bench.rows() == []
    room[0] = True
    resumed_at = bench.now
    bench.watch.resume_after_disk_full()  # at 3 s
    status = bench.scheduler.status.device_status(DEV)[0].current
    assert status is not None
    assert status.recording
    assert status.decision is not None
    assert status.decision.reason is ResultCode.API_RECORDING_STARTED
    feed_seconds(bench, 1.0)
    bench.stop("1001")
    [row] = bench.rows()
    assert (row.status, row.stop_reason, row.meta["ANI"]) == ("complete", "callstop", "100")
    assert row.start_time == resumed_at
    # The file from the moment there was room; the two seconds before it are lost audio.
    assert np.array_equal(frames(row.filename), bench.audio(0, 3 * RATE, 4 * RATE))
    assert row.lost_samples == 2 * RATE
    started = [e.get("ERRORREASON") for e in events.events
               if e.event_type == "RECORDINGSTARTED"]
    assert started == ["API_ERROR_OUT_OF_DISK_SPACE", "NONE"]
    assert events.types("1001")[-2:] == ["RECORDINGSTOPPED", "RECORDINGUPDATE"]


def test_a_call_refused_for_disk_space_is_decided_again_when_there_is_room(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The full disk was the first reason found, not the only one: its filters and the capacity
    still apply. A call that ended meanwhile is not recorded at all."""
    monkeypatch.setattr(watch_module, "ROOM_CHECK_SECONDS", 0.0)
    room = [False]
    bench, events = make_bench(tmp_path, disk_ok=lambda: room[0],
                               policy=policy(blocked=[{"name": "no", "ani": ["555"]}]))
    start(bench, "1001", meta={"ANI": "555"})
    start(bench, "1002")
    bench.stop("1002")
    feed_seconds(bench, 0.5)
    room[0] = True
    bench.watch.resume_after_disk_full()
    feed_seconds(bench, 0.5)
    assert bench.rows() == []
    status = bench.scheduler.status.device_status(DEV)[0].current
    assert status is not None
    assert status.decision is not None
    assert status.decision.reason is ResultCode.API_ERROR_BLOCKED_RECORDING_FILTER
    assert [e.get("ERRORREASON") for e in events.events
            if e.event_type == "RECORDINGSTARTED" and e.device_id == "1001"] == [
        "API_ERROR_OUT_OF_DISK_SPACE", "API_ERROR_BLOCKED_RECORDING_FILTER"]
    bench.watch.resume_after_disk_full()  # decided once: no more events
    assert events.types("1001").count("RECORDINGSTARTED") == 2
    bench.stop("1001")


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


def test_recordstart_makes_a_partial_recording_with_its_own_file_and_row(
        tmp_path: Path) -> None:
    bench, events = make_bench(tmp_path)
    start(bench, meta={"ANI": "100"})
    feed_seconds(bench, 1.0)
    bench.scheduler.record_start(CallStart(device=DEV, meta={"USER1": "partial"}))
    feed_seconds(bench, 1.5)
    bench.scheduler.record_stop(DEV, None)
    with pytest.raises(CallError) as nothing:
        bench.scheduler.record_stop(DEV, None)
    assert nothing.value.code is ResultCode.API_DEVICE_NOT_RECORDING
    feed_seconds(bench, 0.5)
    bench.stop()
    main, partial = sorted(bench.rows(), key=lambda r: r.ident)
    assert (partial.meta["USER1"], partial.meta["ANI"], partial.stop_reason) == (
        "partial", "100", "recordstop")
    assert main.filename != partial.filename
    assert np.array_equal(frames(partial.filename), bench.audio(0, RATE, int(2.5 * RATE)))
    assert np.array_equal(frames(main.filename), bench.audio(0, 0, 3 * RATE))
    assert events.types().count("RECORDINGSTARTED") == 2


def test_a_partial_recording_ends_with_its_call(tmp_path: Path) -> None:
    bench, _ = make_bench(tmp_path)
    start(bench)
    bench.scheduler.record_start(CallStart(device=DEV))
    feed_seconds(bench, 0.5)
    bench.stop()
    assert sorted(r.stop_reason for r in bench.rows()) == ["callended", "callstop"]
    assert all(r.status == "complete" for r in bench.rows())


def test_a_call_recorded_only_by_recordstart_is_shown_as_recording(tmp_path: Path) -> None:
    """ISRECORDING says whether any recording of the call runs, not only its main one."""
    bench, _ = make_bench(tmp_path, policy=policy(blocked=[{"name": "no", "ani": ["555"]}]))
    start(bench, meta={"ANI": "555"})
    (status,) = bench.scheduler.status.device_status(DEV)
    assert status.current is not None
    assert not status.current.recording
    partial = bench.scheduler.record_start(CallStart(device=DEV))
    feed_seconds(bench, 0.5)
    (status,) = bench.scheduler.status.device_status(DEV)
    assert status.current is not None
    assert (status.current.recording, status.current.filename) == (True, partial.filename)
    bench.scheduler.record_stop(DEV, None)
    (status,) = bench.scheduler.status.device_status(DEV)
    assert status.current is not None
    assert (status.current.recording, status.current.filename) == (False, "")
    bench.stop()


def test_recordstart_needs_a_call(tmp_path: Path) -> None:
    bench, _ = make_bench(tmp_path)
    with pytest.raises(CallError) as no_call:
        bench.scheduler.record_start(CallStart(device=DEV))
    assert no_call.value.code is ResultCode.API_DEVICE_NOT_IN_CALL


def test_a_reloaded_policy_applies_to_new_calls_only(tmp_path: Path) -> None:
    bench, _ = make_bench(tmp_path)
    start(bench, "1001", meta={"ANI": "555"})
    bench.scheduler.set_policy(policy(blocked=[{"name": "x", "ani": ["555"]}]))
    start(bench, "1002", meta={"ANI": "555"})
    feed_seconds(bench, 0.2)
    assert [r.device_id for r in bench.rows()] == ["1001"]
    assert bench.rows()[0].status == "recording"


def test_sys_user_and_crm_user_find_the_agents_phone(tmp_path: Path) -> None:
    bench, _ = make_bench(tmp_path)
    agent = bench.store.add_user(UserFields(username="ann", sys_user="ANN", crm_user="crm-ann",
                                            first_name="Ann", last_name="Lee"), now=0)
    bench.store.assign_phone(agent, "1002", now=0)
    bench.scheduler.call_start(CallStart(device=DeviceQuery(crm_user="crm-ann")))
    feed_seconds(bench, 0.2)
    bench.scheduler.call_stop(DeviceQuery(sys_user="ANN"), None)
    [row] = bench.rows()
    assert row.device_id == "1002"
    assert row.status == "complete"
    with pytest.raises(CallError) as unknown:
        bench.scheduler.call_start(CallStart(device=DeviceQuery(sys_user="NOBODY")))
    assert unknown.value.code is ResultCode.API_DEVICE_INVALID


def test_events_carry_the_manuals_module_and_fields(tmp_path: Path) -> None:
    bench, events = make_bench(tmp_path)
    start(bench, meta={"ANI": "6145551212", "USER1": "Gold"}, keep_days=30)
    feed_seconds(bench, 0.2)
    bench.stop()
    by_type = {e.event_type: e for e in events.events}
    assert {t: e.module for t, e in by_type.items()} == {
        "CALLSTART": "Api", "RECORDINGSTARTED": "Api", "CALLSTOP": "Api",
        "RECORDINGSTOPPED": "", "RECORDINGUPDATE": ""}
    assert all(e.event_class == ("CALL" if t.startswith("CALL") else "RECORD")
               for t, e in by_type.items())
    started = by_type["RECORDINGSTARTED"]
    assert (started.get("ANI"), started.get("USER1"), started.get("KEEPDAYS"),
            started.get("ARCHIVEACTION"), started.get("ERRORREASON"), started.get("CHANNEL")) == (
        "6145551212", "Gold", "30", "-1", "NONE", "1")
    row = bench.rows()[0]
    update = by_type["RECORDINGUPDATE"]
    assert (update.get("RECORDID"), update.get("FILENAME")) == (str(row.ident), row.filename)
    assert len({e.get("GLOBALCALLID") for e in events.events}) == 1
    assert len(by_type["CALLSTART"].get("GLOBALCALLID")) == 15


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


def test_rows_keep_the_calls_globalcallid(tmp_path: Path) -> None:
    bench, events = make_bench(tmp_path)
    start(bench)
    bench.scheduler.record_start(CallStart(device=DEV))
    feed_seconds(bench, 0.2)
    bench.stop()
    global_id = events.events[0].get("GLOBALCALLID")
    assert [r.global_id for r in bench.rows()] == [global_id, global_id]
    found = bench.store.find_recording("globalid", global_id)
    assert found is not None
    assert found.global_id == global_id


def test_finding_a_recording_by_callid_or_globalid_uses_an_index(tmp_path: Path) -> None:
    bench, events = make_bench(tmp_path)
    start(bench, meta={"CALLID": "cti-42"})
    bench.stop()
    conn = bench.store._conn
    assert conn is not None
    global_id = events.events[0].get("GLOBALCALLID")
    for column, value in (("callid", "cti-42"), ("globalid", global_id)):
        plan = " ".join(str(r) for r in conn.execute(
            f"EXPLAIN QUERY PLAN SELECT ident FROM recordings r WHERE r.{column} = ?",
            (value,)).fetchall())
        assert f"recordings_by_{column}" in plan
        found = bench.store.find_recording(column, value)
        assert found is not None


def test_shutdown_ends_each_call_with_its_events(tmp_path: Path) -> None:
    bench, events = make_bench(tmp_path)
    start(bench)
    feed_seconds(bench, 0.3)
    bench.scheduler.stop()
    assert events.types("1001") == ["CALLSTART", "RECORDINGSTARTED", "CALLSTOP",
                                    "RECORDINGSTOPPED", "RECORDINGUPDATE"]
    assert events.events[3].get("ERRORREASON") == "SHUTDOWN"
    [row] = bench.rows()
    assert (row.status, row.stop_reason) == ("complete", "shutdown")
