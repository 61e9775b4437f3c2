"""What the retention tests share: a store on a real SQLite file, recordings of every kind
retention must tell apart, files for them, and a purge job whose clock stands at NOW."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from recorder.archive.retention import RetentionJob
from recorder.recording.diskspace import DiskGuard
from recorder.rules.retention import RetentionPolicy
from recorder.store.records import DAY_SECONDS, FinishedRecording, NewRecording
from recorder.store.sqlite import SqliteStore

DAY = DAY_SECONDS
NOW = 1_750_000_000.0

# Archive actions as a site would configure them: 7 keeps a week, 8 purges at once, 9 forever.
POLICY = RetentionPolicy(default_keep_days=90, archive_keep_days={7: 7, 8: 0, 9: None},
                         archive_names={7: "week"})
BERLIN = ZoneInfo("Europe/Berlin")


def at(text: str) -> float:
    """A time of day in Berlin (a zone with DST), as a timestamp."""
    return datetime.fromisoformat(text).replace(tzinfo=BERLIN).timestamp()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(tmp_path / "data" / "recorder.sqlite3")
    s.open()
    yield s
    s.close()


def add(store: SqliteStore, filename: Path | str, start: float, *, complete: bool = True,
        keep_days: int | None = None, archive: int | None = None, media_format: str = "wav",
        size: int | None = None) -> int:
    ident = store.insert_recording(NewRecording(
        device_id="1001", call_instance="", channel=1, filename=str(filename),
        media_format=media_format, sample_rate=8000, start_time=start, core_ident=1,
        keep_days=keep_days, archive_action=archive))
    if complete:
        store.finish_recording(ident, FinishedRecording(
            stop_time=start + 60, duration=60.0, audio_size=size or 0, audio_hash="00",
            stop_reason="callstop"))
    return ident


def mix(store: SqliteStore, root: Path, now: float = NOW) -> dict[str, int]:
    """One recording of each kind retention must tell apart, by what is expected of it."""
    rows = {
        "expired by default": add(store, root / "a.wav", now - 91 * DAY),
        "default, not yet": add(store, root / "b.wav", now - 89 * DAY),
        "in progress, old": add(store, root / "c.wav", now - 400 * DAY, complete=False),
        "own keepdays expired": add(store, root / "d.wav", now - 31 * DAY, keep_days=30),
        "own keepdays not yet": add(store, root / "e.wav", now - 200 * DAY, keep_days=365),
        "keepdays beats purge": add(store, root / "f.wav", now - 2 * DAY, keep_days=10,
                                    archive=8),
        "archive purge": add(store, root / "g.wav", now - 60, archive=8),
        "archive week expired": add(store, root / "h.wav", now - 8 * DAY, archive=7),
        "archive week not yet": add(store, root / "i.wav", now - 6 * DAY, archive=7),
        "archive forever": add(store, root / "j.wav", now - 1000 * DAY, archive=9),
        "unknown archive, default": add(store, root / "k.wav", now - 95 * DAY, archive=555),
        "unknown archive, not yet": add(store, root / "l.wav", now - 5 * DAY, archive=555),
        "manual's -1 -1": add(store, root / "m.wav", now - 120 * DAY, keep_days=-1,
                              archive=-1),
        "already purged": add(store, root / "n.wav", now - 500 * DAY),
    }
    assert store.mark_purged(rows["already purged"], now - 100 * DAY)
    return rows


EXPIRED = {"expired by default", "own keepdays expired", "archive purge",
           "archive week expired", "unknown archive, default", "manual's -1 -1"}


def write(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x01" * size)
    return path


def recording_path(root: Path, name: str) -> Path:
    return root / "20250101" / "1001" / name


def job_for(store: SqliteStore, root: Path, guard: DiskGuard | None = None,
            delete_oldest_when_full: bool = False) -> RetentionJob:
    """A job whose clock stands at NOW, in small batches so that batching is exercised."""
    return RetentionJob(store, POLICY, root, clock=lambda: NOW, batch_size=2, guard=guard,
                        delete_oldest_when_full=delete_oldest_when_full)
