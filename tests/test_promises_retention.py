"""docs/retention.md, Purging: which empty directories a purge removes. The rule is the
recording's age, not the directory's: behind a purged recording that started more than two days
ago its device and day directories go if that left them empty; a younger one (an archive action
with ``purge = true``) leaves them, as a new recording may be about to be made there; and empty
directories no purge emptied are left alone."""

from __future__ import annotations

import os
from pathlib import Path

from recorder.store.sqlite import SqliteStore
from tests.helpers.retention import DAY, NOW, add, job_for, store, write

__all__ = ["store"]  # the fixture, used by name

PURGE_AT_ONCE = 8  # tests/helpers/retention.py POLICY: archive action 8 is purge = true


def test_a_purge_removes_the_directories_it_emptied_behind_recordings_over_two_days_old(
        store: SqliteStore, tmp_path: Path) -> None:
    root = tmp_path / "data" / "recordings"
    old = write(root / "20250101" / "1001" / "old.wav", 1)
    young = write(root / "20250105" / "1002" / "young.wav", 1)
    untouched = root / "20240101" / "1003"  # empty for long, but no purge emptied it
    untouched.mkdir(parents=True)
    os.utime(untouched, (NOW - 100 * DAY, NOW - 100 * DAY))
    add(store, old, NOW - 2 * DAY - 60, archive=PURGE_AT_ONCE)
    add(store, young, NOW - 2 * DAY + 60, archive=PURGE_AT_ONCE)
    report = job_for(store, root).run_now()
    assert report.purged == 2
    assert not old.exists()
    assert not young.exists()
    assert not (root / "20250101").exists()  # device, then day directory
    assert (root / "20250105" / "1002").is_dir()  # the recording was under two days old
    assert untouched.is_dir()
    assert root.is_dir()
