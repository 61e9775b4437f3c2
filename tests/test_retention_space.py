"""The free-space floor: new calls refused below ``retention.min_free_mb``, recording resumed
above the resume threshold, and ``delete_oldest_when_full`` making room, oldest first."""

from __future__ import annotations

import logging
import shutil
import threading
import time
from pathlib import Path

import pytest

from recorder.archive.retention import RetentionJob
from recorder.config.loader import config_from_dict
from recorder.recording.diskspace import MIB, DiskGuard, free_space, resume_threshold
from recorder.store.sqlite import SqliteStore
from tests.helpers.retention import DAY, NOW, POLICY, add, job_for, recording_path, store, write
from tests.helpers.smalldisk import small_disk

__all__ = ["store"]  # the fixture, used by name


class FakeDisk:
    """A file system of ``capacity`` bytes holding whatever files are under ``root``."""

    def __init__(self, root: Path, capacity: int) -> None:
        self.root = root
        self.capacity = capacity
        self.reads = 0
        self.threads: set[str] = set()

    def __call__(self, path: Path) -> int:
        self.reads += 1
        self.threads.add(threading.current_thread().name)
        used = sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file())
        return self.capacity - used


def test_the_floor_refuses_below_min_free_and_caches_the_reading(tmp_path: Path) -> None:
    root = tmp_path / "recordings"
    disk = FakeDisk(root, capacity=10 * MIB)
    clock = [100.0]
    guard = DiskGuard(root, min_free_mb=4, usage=disk, clock=lambda: clock[0])
    assert guard.ok()
    assert guard.free_bytes() == 10 * MIB
    assert disk.reads == 1  # both answered from one reading
    write(root / "big.wav", 7 * MIB)
    assert guard.ok()  # still the reading of less than a second ago
    clock[0] += 1.0
    assert not guard.ok()
    assert guard.free_bytes() == 3 * MIB
    assert guard.short_of_space.is_set()
    assert guard.explain() == (f"free space on {root} (3 MB) is below retention.min_free_mb "
                               "(4 MB)")
    (root / "big.wav").unlink()
    assert guard.ok(fresh=True)  # fresh: not from the cache


def test_a_floor_of_zero_is_off_and_an_unreadable_disk_does_not_stop_recording(
        tmp_path: Path) -> None:
    def broken(path: Path) -> int:
        raise PermissionError(13, "Permission denied", str(path))

    assert DiskGuard(tmp_path, min_free_mb=0, usage=broken).ok()
    guard = DiskGuard(tmp_path, min_free_mb=500, usage=broken)
    assert guard.ok()
    with pytest.raises(PermissionError, match="Permission denied"):
        guard.free_bytes()


def test_an_unreadable_disk_is_logged_once_each_time_it_becomes_unreadable(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Not once per call start: a site taking calls all day would drown its log."""
    readable = [False]

    def flaky(path: Path) -> int:
        if not readable[0]:
            raise OSError(5, "Input/output error")
        return 900 * MIB

    guard = DiskGuard(tmp_path, min_free_mb=500, usage=flaky, cache_seconds=0.0)

    def logged() -> int:
        return sum("cannot read the free space" in r.getMessage() for r in caplog.records)

    with caplog.at_level(logging.ERROR, logger="recorder.recording.diskspace"):
        assert all(guard.ok() for _ in range(3))
        assert logged() == 1
        readable[0] = True
        assert guard.ok()
        readable[0] = False
        assert all(guard.ok() for _ in range(3))
        assert logged() == 2  # unreadable again after a good reading: said again
        # With no floor the disk is not even read: nothing to log, however broken it is.
        assert DiskGuard(tmp_path, min_free_mb=0, usage=flaky).ok()
        assert logged() == 2


def test_the_log_says_how_many_mb_are_free_when_the_floor_is_crossed(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "recordings"
    disk = FakeDisk(root, capacity=10 * MIB)
    guard = DiskGuard(root, min_free_mb=4, usage=disk, cache_seconds=0.0)
    with caplog.at_level(logging.WARNING, logger="recorder.recording.diskspace"):
        write(root / "big.wav", 7 * MIB)
        assert not guard.ok()
        (root / "big.wav").unlink()
        assert guard.ok()
    assert [r.getMessage() for r in caplog.records] == [
        f"only 3 MB free on {root}, below retention.min_free_mb 4: new recordings are refused",
        f"10 MB free on {root} again: new recordings are accepted"]


def test_the_guard_takes_its_floor_and_resume_time_from_the_configuration(
        tmp_path: Path) -> None:
    config = config_from_dict({"storage": {"data_dir": str(tmp_path / "data"),
                                           "disk_full_resume_seconds": 30},
                               "retention": {"min_free_mb": 7}})
    guard = DiskGuard.from_config(config)
    assert guard.recordings_dir == tmp_path / "data" / "recordings"
    assert guard.floor_bytes == 7 * MIB
    guard.disk_full(tmp_path / "cut.wav", 1000.0)  # 30 s of 1000 B/s, under the floor
    assert guard.resume_bytes == 7 * MIB
    guard.disk_full(tmp_path / "cut2.wav", 1_000_000.0)
    assert guard.resume_bytes == 30 * 1_001_000  # 30 s, not the default 120


def test_a_reading_is_kept_for_a_second_whenever_it_was_taken(tmp_path: Path) -> None:
    root = tmp_path / "recordings"
    disk = FakeDisk(root, capacity=10 * MIB)
    clock = [100.0]
    guard = DiskGuard(root, min_free_mb=4, usage=disk, clock=lambda: clock[0])
    assert guard.ok()
    write(root / "big.wav", 7 * MIB)
    clock[0] = 200.5  # 100.5 s later: read again
    assert not guard.ok()


def test_a_file_a_full_disk_kept_from_being_made_needs_any_room_at_all(tmp_path: Path) -> None:
    guard = DiskGuard(tmp_path, min_free_mb=0, usage=lambda path: 0, size=lambda path: 8 * MIB)
    guard.disk_full(tmp_path / "never.wav", 0.0)  # nothing written: 0 B/s
    assert guard.resume_bytes == 1


def test_the_first_cut_caps_the_threshold_by_the_volume_and_is_logged_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """One call cut on a 2 MiB volume: two minutes of it (1.92 MB) is capped at half the
    volume from the first cut on; the journal says so once, not at every cut."""
    guard = DiskGuard(tmp_path, min_free_mb=0, usage=lambda path: 0,
                      size=lambda path: 2 * MIB)
    with caplog.at_level(logging.WARNING, logger="recorder.recording.diskspace"):
        guard.disk_full(tmp_path / "a.wav", 16000.0)
        assert guard.resume_bytes == MIB
        assert [r.getMessage() for r in caplog.records] == [
            f"the disk holding {tmp_path} is full: recordings in progress are cut short "
            "(truncated) and new ones refused until 1.0 MB are free"]
        guard.disk_full(tmp_path / "b.wav", 16000.0)
        assert len(caplog.records) == 1


def test_recording_resumes_with_exactly_the_threshold_free(tmp_path: Path) -> None:
    space = [0]
    guard = DiskGuard(tmp_path, min_free_mb=0, usage=lambda path: space[0],
                      size=lambda path: 64 * MIB, cache_seconds=0.0)
    guard.disk_full(tmp_path / "cut.wav", 16000.0)
    space[0] = guard.resume_bytes - 1
    assert not guard.ok()
    space[0] = guard.resume_bytes
    assert guard.ok()


def test_each_recording_a_full_disk_cuts_is_counted_once(tmp_path: Path) -> None:
    """The count /metrics and the status report give as truncated: one per file cut, however
    many of its writes failed."""
    guard = DiskGuard(tmp_path, min_free_mb=0, usage=lambda path: 0,
                      size=lambda path: 8 * MIB)
    guard.disk_full(tmp_path / "a.wav", 16000.0)
    guard.disk_full(tmp_path / "a.wav", 16000.0)
    guard.disk_full(tmp_path / "b.wav", 16000.0)
    assert guard.truncated == 2


def test_the_real_floor_reads_the_file_system(tmp_path: Path) -> None:
    root = tmp_path / "not" / "yet" / "recordings"  # before the first recording makes it
    real = shutil.disk_usage(tmp_path).free
    assert abs(free_space(root) - real) < 64 * MIB
    assert abs(DiskGuard(root, min_free_mb=1).free_bytes() - real) < 64 * MIB
    assert DiskGuard(root, min_free_mb=1).ok()
    everything = (shutil.disk_usage(tmp_path).total // MIB) + 1
    assert not DiskGuard(root, min_free_mb=everything).ok()


def test_after_a_full_disk_a_small_volume_resumes_at_half_its_size(tmp_path: Path) -> None:
    """Six 8 kHz calls cut on an 8 MiB volume: two minutes of their writing (11.5 MB) is more
    than the volume holds, so the threshold is capped at half the volume (4 MiB), and recording
    resumes once that much is free."""
    with small_disk(tmp_path / "fs", 8 * MIB) as disk:
        if disk.mode != "tmpfs":
            pytest.skip("needs the right to mount a tmpfs")
        guard = DiskGuard(disk.root, min_free_mb=0, cache_seconds=0.0)
        disk.fill(64 << 10)
        for n in range(6):
            guard.disk_full(disk.root / f"{n}.wav", 16000.0)
        assert guard.resume_bytes == 4 * MIB
        assert not guard.ok()
        disk.free_up()  # 97% of the volume free
        assert guard.ok()
        assert not guard.full


@pytest.mark.parametrize(("floor", "rates", "volume", "expected"), [
    (0, [16000.0] * 2, 16 * MIB, 3_840_000),  # two minutes of two calls: under half the volume
    (0, [16000.0] * 2, 6 * MIB, 3 * MIB),  # the same on 6 MiB: half of it
    (0, [16000.0] * 6, 8 * MIB, 4 * MIB),  # 11.5 MB of six calls: capped at half of 8 MiB
    (0, [16000.0] * 6, None, 11_520_000),  # the volume's size unknown: no cap
    (5 * MIB, [16000.0] * 6, 8 * MIB, 5 * MIB),  # the floor is the site's own rule: never capped
    (0, [], 8 * MIB, 1),  # a file that could not even be made (0 B/s): any room at all
])
def test_the_resume_threshold(floor: int, rates: list[float], volume: int | None,
                              expected: int) -> None:
    assert resume_threshold(floor, 120.0, rates, volume) == expected


def full_disk(store: SqliteStore, tmp_path: Path) -> tuple[Path, list[Path], list[int], int]:
    root = tmp_path / "data" / "recordings"
    # Four 3 MiB recordings, none expired (kept forever), oldest first; one still recording.
    files = [write(recording_path(root, f"{i}.wav"), 3 * MIB) for i in range(4)]
    idents = [add(store, f, NOW - (10 - i) * DAY, archive=9) for i, f in enumerate(files)]
    running = add(store, write(root / "live.wav", 1 * MIB), NOW - 20 * DAY, complete=False)
    return root, files, idents, running


def test_delete_oldest_when_full_purges_oldest_first_only_until_above_the_floor(
        store: SqliteStore, tmp_path: Path) -> None:
    root, files, idents, running = full_disk(store, tmp_path)
    # 13 MiB used of 16: 3 free, floor 8. Two recordings free 6 -> 9 MiB free: enough.
    disk = FakeDisk(root, capacity=16 * MIB)
    guard = DiskGuard(root, min_free_mb=8, usage=disk)
    job = job_for(store, root, guard=guard, delete_oldest_when_full=True)
    report = job.make_room()
    assert [f.exists() for f in files] == [False, False, True, True]
    assert (report.purged, report.bytes_freed) == (2, 6 * MIB)
    assert [store.get_recording(i).purged_time for i in idents] == [  # type: ignore[union-attr]
        NOW, NOW, None, None]
    live = store.get_recording(running)
    assert live is not None
    assert live.purged_time is None
    assert (root / "live.wav").exists()
    assert guard.ok()


def test_without_the_option_unexpired_recordings_are_never_deleted_to_make_room(
        store: SqliteStore, tmp_path: Path) -> None:
    root, files, _, _ = full_disk(store, tmp_path)
    guard = DiskGuard(root, min_free_mb=8, usage=FakeDisk(root, capacity=16 * MIB))
    job = job_for(store, root, guard=guard)
    assert not guard.ok()
    assert job.make_room().purged == 0
    assert job.run_now().purged == 0
    assert all(f.exists() for f in files)


def test_the_job_thread_makes_room_not_the_callers(store: SqliteStore,
                                                   tmp_path: Path) -> None:
    root, files, _, _ = full_disk(store, tmp_path)
    disk = FakeDisk(root, capacity=24 * MIB)  # 13 MiB used: 11 free, above the floor
    guard = DiskGuard(root, min_free_mb=8, usage=disk)
    job = RetentionJob(store, POLICY, root, guard=guard, delete_oldest_when_full=True,
                       clock=lambda: NOW, poll_seconds=0.01, disk_check_seconds=3600)
    job.start()
    try:
        time.sleep(0.1)  # the job's first look at the disk
        write(root / "new.wav", 6 * MIB)  # then a 6 MiB call: 5 free, 3 short
        disk.threads.clear()
        assert not guard.ok(fresh=True)  # the scheduler's question, on a call start
        assert all(f.exists() for f in files)  # answered at once; nothing deleted here
        deadline = time.monotonic() + 5
        while not guard.ok(fresh=True) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [f.exists() for f in files] == [False, True, True, True]
        assert "retention" in disk.threads
    finally:
        job.stop()
        assert job.join(timeout=2)
