"""The call model on a hand-fed capture core: limits, preemption, filters, the free-space floor,
partial recordings, agents found by their names and the events of each, checked in the files'
samples and the rows. Blackouts have their own file (test_call_blackouts.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

import recorder.calls.watch as watch_module
from recorder.calls.requests import CallError, CallStart, DeviceQuery
from recorder.resultcodes import ResultCode
from recorder.store.directory import UserFields
from tests.helpers.calls import (
    DEV,
    RATE,
    feed_level,
    feed_seconds,
    frames,
    make_bench,
    policy,
    start,
)


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
