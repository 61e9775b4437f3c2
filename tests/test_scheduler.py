"""The scheduler with a real capture core, writer, files and SQLite store.

Blocks are pushed into the capture core by the test instead of a driver thread, so the audio
between CALLSTART and CALLSTOP is known to the sample.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile

from recorder.calls.requests import CallError, CallStart, CallUpdate, DeviceQuery
from recorder.capture.core import CaptureCore
from recorder.drivers.registry import create_driver
from recorder.drivers.settings import SyntheticBoardConfig
from recorder.events.types import Event
from recorder.recording.files import StoredFormat
from recorder.resultcodes import ResultCode
from recorder.store.records import RecordingQuery
from recorder.store.sqlite import SqliteStore
from tests.helpers.calls import BLOCK, Bench, make_calls


@pytest.fixture
def bench(tmp_path: Path) -> Iterator[Bench]:
    b = Bench(tmp_path)
    yield b
    b.close()


def test_records_exactly_the_audio_between_start_and_stop(bench: Bench) -> None:
    bench.feed(7)
    bench.start("1002", ANI="6145551212", USER1="Gold Level")
    bench.feed(150)  # 3 s
    bench.stop("1002")
    (row,) = bench.rows()
    data, rate = soundfile.read(row.filename, dtype="int16")
    assert rate == 8000
    np.testing.assert_array_equal(data, bench.audio(1, 7 * BLOCK, 157 * BLOCK))
    assert row.duration == pytest.approx(3.0)
    assert (row.status, row.stop_reason, row.channel) == ("complete", "callstop", 2)
    assert (row.meta["ANI"], row.meta["USER1"], row.core_ident) == ("6145551212", "Gold Level", 3)
    assert row.audio_size == Path(row.filename).stat().st_size
    assert row.audio_hash == hashlib.sha256(Path(row.filename).read_bytes()).hexdigest()
    assert Path(row.filename).parent.name == "1002"
    assert Path(row.filename).name.startswith("1002-")


def test_an_untapped_device_is_tracked_but_not_recorded(bench: Bench) -> None:
    bench.start("9999", ANI="1")
    bench.feed(5)
    (status,) = bench.scheduler.status.device_status(DeviceQuery(device_id="9999"))
    assert status.current is not None
    assert not status.current.recording
    assert status.current.decision is not None
    assert status.current.decision.reason is ResultCode.API_DEVICE_INVALID
    bench.stop("9999")
    assert bench.rows() == []


def test_devices_are_found_by_the_names_their_calls_carry(bench: Bench) -> None:
    bench.start("1001", DEVICEALIAS="DESK1", SYS_USER="jdoe", CRM_USER="JD", STATIONNAME="PC7",
                CALLID="c-1")
    for query in (DeviceQuery(alias="DESK1"), DeviceQuery(sys_user="jdoe"),
                  DeviceQuery(crm_user="JD"), DeviceQuery(station="PC7"),
                  DeviceQuery(call_id="c-1")):
        (status,) = bench.scheduler.status.device_status(query)
        assert status.device_id == "1001"
    bench.feed(10)
    bench.scheduler.call_stop(DeviceQuery(alias="DESK1"), None)
    assert bench.rows()[0].stop_reason == "callstop"
    # After the call the alias still names the device (its last call carried it).
    bench.scheduler.call_start(CallStart(device=DeviceQuery(alias="DESK1")))
    assert bench.scheduler.status.device_status(DeviceQuery(device_id="1001"))[0].current.recording


@pytest.mark.parametrize("query", [DeviceQuery(alias="NOPE"), DeviceQuery(sys_user="x"),
                                   DeviceQuery(crm_user="y"), DeviceQuery(station="z"),
                                   DeviceQuery()])
def test_unknown_names_are_device_invalid(bench: Bench, query: DeviceQuery) -> None:
    with pytest.raises(CallError) as err:
        bench.scheduler.call_start(CallStart(device=query))
    assert err.value.code is ResultCode.API_DEVICE_INVALID


def test_a_new_callstart_on_the_same_instance_ends_the_old_recording(bench: Bench) -> None:
    bench.start("1001", USER1="first")
    bench.feed(20)
    bench.start("1001", USER1="second")
    bench.feed(30)
    bench.stop("1001")
    second, first = bench.rows()
    assert (first.meta["USER1"], first.stop_reason) == ("first", "replaced")
    assert (second.meta["USER1"], second.stop_reason) == ("second", "callstop")
    assert first.duration == pytest.approx(20 * BLOCK / 8000)
    assert second.duration == pytest.approx(30 * BLOCK / 8000)
    assert first.filename != second.filename


def test_call_instances_are_separate_recordings(bench: Bench) -> None:
    bench.start("1001", instance="37")
    bench.feed(10)
    bench.start("1001", instance="38")
    bench.feed(10)
    (status,) = bench.scheduler.status.device_status(DeviceQuery(device_id="1001"))
    assert [c.instance for c in status.open_calls] == ["37", "38"]
    assert status.current is not None
    assert status.current.instance == "38"
    bench.stop("1001", "38")
    (status,) = bench.scheduler.status.device_status(DeviceQuery(device_id="1001"))
    assert status.current is not None
    assert status.current.instance == "37"  # the open call, not the one that just ended
    bench.feed(10)
    bench.stop("1001")  # no instance: the last call on the device that is still open
    rows = {r.call_instance: r for r in bench.rows()}
    assert rows["37"].duration == pytest.approx(30 * BLOCK / 8000)
    assert rows["38"].duration == pytest.approx(10 * BLOCK / 8000)


def test_stopping_a_device_not_in_a_call_is_device_not_in_call(bench: Bench) -> None:
    for instance in (None, "5"):
        with pytest.raises(CallError) as err:
            bench.stop("1001", instance)
        assert err.value.code is ResultCode.API_DEVICE_NOT_IN_CALL
    bench.start("1001", instance="1")
    with pytest.raises(CallError) as err:
        bench.stop("1001", "2")
    assert err.value.code is ResultCode.API_DEVICE_NOT_IN_CALL


def test_callupdate_changes_the_live_call_and_its_row(bench: Bench) -> None:
    bench.start("1001", USER3="")
    assert bench.scheduler.updates.call(DeviceQuery(device_id="1001"), None,
                                       CallUpdate(meta={"USER3": "Follow up on order"},
                                                  keep_days=3650), if_not_recording=False
                                       ) == "call"
    assert bench.rows()[0].meta["USER3"] == "Follow up on order"
    bench.feed(5)
    bench.stop()
    row = bench.rows()[0]
    assert (row.meta["USER3"], row.keep_days) == ("Follow up on order", 3650)


def test_callupdate_after_the_call(bench: Bench) -> None:
    update = CallUpdate(meta={"USER4": "Sales Call"})
    device = DeviceQuery(device_id="1001")
    with pytest.raises(CallError) as err:
        bench.scheduler.updates.call(device, None, update, if_not_recording=True)
    assert err.value.code is ResultCode.API_RECORDID_INVALID
    bench.start()
    bench.feed(3)
    bench.stop()
    with pytest.raises(CallError) as err:
        bench.scheduler.updates.call(device, None, update, if_not_recording=False)
    assert err.value.code is ResultCode.API_DEVICE_NOT_IN_CALL
    assert bench.scheduler.updates.call(device, None, update, if_not_recording=True) == "recording"
    assert bench.rows()[0].meta["USER4"] == "Sales Call"
    bench.scheduler.updates.recording(bench.rows()[0].ident, CallUpdate(meta={"USER5": "x"}))
    assert bench.rows()[0].meta["USER5"] == "x"
    with pytest.raises(CallError) as err:
        bench.scheduler.updates.recording(4242, update)
    assert err.value.code is ResultCode.API_RECORDID_INVALID


def test_shutdown_finishes_every_recording_and_refuses_new_calls(bench: Bench) -> None:
    bench.start("1001")
    bench.start("1002")
    bench.feed(25)
    bench.scheduler.stop()
    rows = bench.rows()
    assert sorted(r.stop_reason for r in rows) == ["shutdown", "shutdown"]
    for row in rows:
        assert row.status == "complete"
        assert soundfile.info(row.filename).frames == 25 * BLOCK
    with pytest.raises(CallError) as err:
        bench.start("1001")
    assert err.value.code is ResultCode.API_ERROR_SCHEDULER_NOT_RUNNING


class _CaptureGoesOn:
    """An event sink whose every CALLSTOP lets 100 ms more audio arrive: a shutdown that takes
    its time over many calls while the boards keep capturing."""

    def __init__(self) -> None:
        self.bench: Bench | None = None

    def publish(self, event: Event) -> None:
        if event.event_type == "CALLSTOP" and self.bench is not None:
            self.bench.feed(5)


def test_a_slow_shutdown_ends_every_recording_at_the_moment_it_began(tmp_path: Path) -> None:
    events = _CaptureGoesOn()
    bench = Bench(tmp_path, devices=("1001", "1002", "1003"), events=events)
    events.bench = bench
    try:
        for device in ("1001", "1002", "1003"):
            bench.start(device)
        bench.feed(25)
        stopped_at = bench.now
        bench.scheduler.stop()
        rows = bench.rows()
        # Each row's stop time is the shutdown's, and each file holds the audio up to that
        # moment and none captured while the shutdown went on (10 blocks for the last call).
        assert [r.stop_reason for r in rows] == ["shutdown"] * 3
        for row in rows:
            assert row.stop_time == pytest.approx(stopped_at)
            assert soundfile.info(row.filename).frames == 25 * BLOCK, row.device_id
    finally:
        bench.close()


def test_recording_goes_on_while_the_store_is_away(bench: Bench) -> None:
    bench.store.close()
    bench.start("1001", ANI="555")
    bench.feed(10)
    bench.store.open()
    bench.stop()
    (row,) = bench.rows()
    assert (row.meta["ANI"], row.status) == ("555", "complete")
    assert row.duration == pytest.approx(10 * BLOCK / 8000)


def test_the_writer_loop_moves_audio_to_disk_while_the_call_goes_on(bench: Bench) -> None:
    bench.writer.start()
    bench.start("1001")
    bench.feed(100)  # 2 s: the writer syncs the header every second of audio
    path = Path(bench.rows()[0].filename)
    deadline = time.monotonic() + 10
    while soundfile.info(path).frames < 8000 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert soundfile.info(path).frames >= 8000  # playable before the call has ended
    bench.stop()
    assert soundfile.info(path).frames == 100 * BLOCK


def test_racing_starts_and_stops_leave_no_recording_unfinished(tmp_path: Path) -> None:
    devices = tuple(str(2000 + i) for i in range(8))
    bench = Bench(tmp_path, devices)

    def calls(device: str) -> None:
        for _ in range(15):
            bench.start(device)
            bench.stop(device)

    bench.race([lambda d=d: calls(d) for d in devices])  # type: ignore[misc]
    assert len(bench.check_files()) == 8 * 15
    bench.close()


def test_a_file_removed_under_a_recording_still_ends_the_call(bench: Bench) -> None:
    bench.start("1001")
    bench.feed(5)
    path = Path(bench.rows()[0].filename)
    path.unlink()  # an operator's mistake, or a failing disk
    bench.stop("1001")  # must not raise
    (row,) = bench.rows()
    assert (row.status, row.audio_size, row.audio_hash) == ("complete", 0, "")
    assert row.duration == pytest.approx(5 * BLOCK / 8000)
    bench.start("1001")  # and the device records again
    bench.feed(5)
    bench.stop("1001")
    assert soundfile.info(bench.rows()[0].filename).frames == 5 * BLOCK


def test_racing_calls_on_one_device_leave_no_recording_unfinished(tmp_path: Path) -> None:
    """Starts, stops and updates on the same device and instance from many threads at once."""
    bench = Bench(tmp_path, ("1001",))
    refused: list[ResultCode] = []

    def calls(n: int) -> None:
        for i in range(20):
            bench.start("1001", USER1=f"{n}-{i}")
            try:
                bench.scheduler.updates.call(DeviceQuery(device_id="1001"), None,
                                            CallUpdate(meta={"USER2": str(n)}), False)
                bench.stop("1001")
            except CallError as exc:  # another thread's stop took this call first
                refused.append(exc.code)

    bench.race([lambda n=n: calls(n) for n in range(6)])  # type: ignore[misc]
    bench.scheduler.stop()  # whatever is still open is finished by the shutdown
    assert set(refused) <= {ResultCode.API_DEVICE_NOT_IN_CALL}
    rows = bench.check_files()
    assert len(rows) == 6 * 20  # every CALLSTART made exactly one recording
    assert {r.stop_reason for r in rows} <= {"callstop", "replaced", "shutdown"}
    bench.close()


# --- pre-roll, commit delay and channel state ------------------------------------------------


def test_a_recording_includes_its_preroll(tmp_path: Path) -> None:
    bench = Bench(tmp_path, preroll=0.5)
    try:
        bench.feed(100)
        bench.start("1001")
        bench.feed(50)
        bench.stop("1001")
        (row,) = bench.rows()
        data, _ = soundfile.read(row.filename, dtype="int16")
        np.testing.assert_array_equal(data, bench.audio(0, 100 * BLOCK - 4000, 150 * BLOCK))
    finally:
        bench.close()


def test_preroll_never_reaches_before_the_board_started(tmp_path: Path) -> None:
    bench = Bench(tmp_path, preroll=0.5)
    try:
        bench.feed(10)
        bench.start("1001")
        bench.feed(10)
        bench.stop("1001")
        (row,) = bench.rows()
        data, _ = soundfile.read(row.filename, dtype="int16")
        np.testing.assert_array_equal(data, bench.audio(0, 0, 20 * BLOCK))
    finally:
        bench.close()


@pytest.mark.slow
def test_preroll_never_reaches_before_what_the_ring_still_holds(tmp_path: Path) -> None:
    bench = Bench(tmp_path, preroll=0.5)
    try:
        bench.feed(700)  # 14 s through a 10 s ring
        # A trigger that says its call began 11 s ago gets what the ring still has.
        bench.scheduler.call_start(CallStart(device=DeviceQuery(device_id="1001"),
                                             position=3 * 8000))
        bench.feed(5)
        bench.stop("1001")
        (row,) = bench.rows()
        assert row.lost_samples == 0
        assert 9.5 < soundfile.info(row.filename).duration <= 10.1
    finally:
        bench.close()


def test_commit_delay_holds_audio_back_and_finishes_the_file_after_it(tmp_path: Path) -> None:
    bench = Bench(tmp_path, delay=1.0)
    bench.writer.start()
    try:
        bench.feed(20)
        bench.start("1001")
        bench.feed(100)  # 2 s
        time.sleep(0.1)
        channel = bench.capture.channels[0]
        written = soundfile.info(bench.scheduler.status.device_status(
            DeviceQuery(device_id="1001"))[0].current.filename).frames  # type: ignore[union-attr]
        assert written <= 1.0 * 8000 + BLOCK, "no more than capture minus the delay on disk"
        bench.stop("1001")
        (row,) = bench.rows()
        assert row.status != "complete", "finished only once the delay has passed"
        assert channel.status.snapshot().state.name == "FINISH_RECORDING"
        bench.feed(52)
        deadline = time.monotonic() + 5
        while bench.rows()[0].status != "complete" and time.monotonic() < deadline:
            time.sleep(0.02)
        (row,) = bench.rows()
        assert row.status == "complete"
        data, _ = soundfile.read(row.filename, dtype="int16")
        np.testing.assert_array_equal(data, bench.audio(0, 20 * BLOCK, 120 * BLOCK))
        assert channel.status.snapshot().state.name == "ON_HOOK"
    finally:
        bench.close()


@pytest.mark.slow
def test_shutdown_inside_the_commit_delay_keeps_what_was_captured(tmp_path: Path) -> None:
    bench = Bench(tmp_path, delay=0.5)
    bench.writer.start()
    bench.start("1001")
    bench.feed(50)
    bench.scheduler.stop()  # the call ends; its last 0.5 s is not on disk yet
    assert bench.writer.pending == 1
    bench.writer.stop()
    assert bench.writer.join(10)
    (row,) = bench.rows()
    assert row.status == "complete"
    data, _ = soundfile.read(row.filename, dtype="int16")
    np.testing.assert_array_equal(data, bench.audio(0, 0, 50 * BLOCK))
    bench.store.close()


def test_channel_state_follows_the_recording(tmp_path: Path) -> None:
    bench = Bench(tmp_path)
    try:
        status = bench.capture.channels[1].status
        assert status.snapshot().state.name == "ON_HOOK"
        bench.feed(2)
        bench.start("1002")
        assert status.snapshot().state.name == "RECORDING"
        assert bench.capture.channels[0].status.snapshot().state.name == "ON_HOOK"
        bench.stop("1002")
        assert status.snapshot().state.name == "ON_HOOK"
        bench.start("9999")  # untapped: no channel changes
        assert {c.status.snapshot().state.name for c in bench.capture.channels} == {"ON_HOOK"}
    finally:
        bench.close()


@pytest.mark.parametrize("stereo", [True, False])
def test_a_device_tapped_in_both_directions_is_one_file(tmp_path: Path, stereo: bool) -> None:
    driver = create_driver("boards[0]", SyntheticBoardConfig(devices=("7", "7"), channels=2))
    capture = CaptureCore.simple([(driver, ("7", "7"))], lookback_seconds=10)
    store = SqliteStore(tmp_path / "db.sqlite3")
    store.open()
    scheduler = make_calls(capture, store, tmp_path / "rec", stereo=stereo).scheduler
    blocks = []
    try:
        scheduler.call_start(CallStart(device=DeviceQuery(device_id="7")))
        assert {c.status.snapshot().state.name for c in capture.channels} == {"RECORDING"}
        for _ in range(25):
            block = driver.next_block(BLOCK)
            capture.boards[0].audio(block)
            blocks.append(block)
        scheduler.call_stop(DeviceQuery(device_id="7"), None)
        (row,) = store.list_recordings(RecordingQuery(limit=10))
        data, _ = soundfile.read(row.filename, dtype="int16", always_2d=True)
        audio = np.concatenate(blocks)
        if stereo:
            np.testing.assert_array_equal(data, audio)  # one party per side
        else:
            mixed = np.clip(audio.astype(np.int32).sum(axis=1), -32768, 32767)
            np.testing.assert_array_equal(data[:, 0], mixed)
            assert data.shape[1] == 1
        assert {c.status.snapshot().state.name for c in capture.channels} == {"ON_HOOK"}
    finally:
        scheduler.stop()
        store.close()


def test_calls_ending_while_the_writer_encodes_vox_lose_no_audio(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The writer encodes every VOX session in one pass; calls ending on other threads at the
    same time must neither lose the audio of that pass nor break it for the other files."""
    devices = tuple(str(3000 + i) for i in range(8))
    bench = Bench(tmp_path, devices, stored=StoredFormat("vox", options={"rate": 8000}))
    caplog.set_level("ERROR")

    def calls(device: str) -> None:
        for _ in range(10):
            bench.start(device)
            time.sleep(0.02)  # long enough for the writer to encode some of it
            bench.stop(device)

    bench.race([lambda d=d: calls(d) for d in devices])  # type: ignore[misc]
    rows = bench.rows()
    bench.close()
    assert not [r.getMessage() for r in caplog.records], caplog.text
    assert len(rows) == 8 * 10
    for row in rows:
        assert row.status == "complete"
        assert row.duration is not None
        frames = round(row.duration * 8000)
        # Two 4-bit codes a byte, an odd last one padded: every frame reached the file.
        assert Path(row.filename).stat().st_size == (frames + 1) // 2, row
