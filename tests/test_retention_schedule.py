"""The daily purge runs at the site's ``retention.purge_time``: the job built from a configuration
as recorderd builds it (``RetentionJob.from_config``), on a real SQLite store and real files,
its clock injected and moved across the night. A job that ignored the setting would purge at
the default 03:00; these tests hold it to 01:30."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from recorder.archive.retention import RetentionJob
from recorder.config.loader import config_from_dict
from recorder.config.model import Config
from recorder.store.records import FinishedRecording, NewRecording
from recorder.store.sqlite import SqliteStore

BERLIN = ZoneInfo("Europe/Berlin")
POLL = 0.01
# The loop reads its clock once a poll (and a purge a few times more): after this many reads at
# a new time the job has looked at that time and finished any purge it started, however slowly
# a loaded machine ran it. Counting reads rather than sleeping keeps the test off the wall clock.
READS = 20
PATIENCE = 10.0  # only a job that hangs takes this long


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=BERLIN).timestamp()


class Clock:
    """The job's injected clock: stands at a moment of the night, counts its readers."""

    def __init__(self, when: str) -> None:
        self.now = at(when)
        self.reads = 0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            self.reads += 1
            return self.now

    def set(self, when: str) -> None:
        """Move to ``when`` and wait until the job has read it READS times."""
        with self._lock:
            self.now = at(when)
            target = self.reads + READS
        deadline = time.monotonic() + PATIENCE
        while self.reads < target:
            assert time.monotonic() < deadline, "the retention job stopped reading its clock"
            time.sleep(POLL)


class Night:
    """A site's recorder: its configuration, its store and one long-expired recording."""

    def __init__(self, tmp_path: Path, retention: dict[str, object]) -> None:
        # 90 days kept (the default keeps everything forever, so nothing would be due).
        self.config: Config = config_from_dict({
            "storage": {"data_dir": str(tmp_path / "data")},
            "retention": {"default_keep_days": 90, **retention}})
        self.store = SqliteStore(self.config.storage.data_dir / "recorder.sqlite3")
        self.store.open()
        self.file = self.config.storage.recordings_dir / "20250101" / "1001" / "1001-09-00-00.wav"
        self.file.parent.mkdir(parents=True)
        self.file.write_bytes(b"\x01" * 100)
        start = at("2025-01-01 09:00:00")  # 160 days before the night: the 90 days are past
        ident = self.store.insert_recording(NewRecording(
            device_id="1001", call_instance="", channel=1, filename=str(self.file),
            media_format="wav", sample_rate=8000, start_time=start, core_ident=1))
        self.store.finish_recording(ident, FinishedRecording(
            stop_time=start + 60, duration=60.0, audio_size=100, audio_hash="00",
            stop_reason="callstop"))
        self.ident = ident

    def purged_row(self) -> bool:
        row = self.store.get_recording(self.ident)
        assert row is not None
        return row.purged_time is not None

    def close(self) -> None:
        self.store.close()


@pytest.fixture
def night(tmp_path: Path) -> Iterator[Callable[[dict[str, object]], Night]]:
    made: list[Night] = []

    def make(retention: dict[str, object]) -> Night:
        made.append(Night(tmp_path / str(len(made)), retention))
        return made[-1]

    yield make
    for each in made:
        each.close()


def started(site: Night, clock: Clock) -> RetentionJob:
    """The job recorderd would build from the site's configuration, on ``clock``."""
    job = RetentionJob.from_config(site.store, site.config, clock=clock, tz=BERLIN,
                                   poll_seconds=POLL)
    job.start()
    return job


def stop(job: RetentionJob) -> None:
    job.stop()
    assert job.join(timeout=PATIENCE)


def test_a_site_purge_time_of_0130_purges_at_0130(night: Callable[[dict[str, object]], Night],
                                                  ) -> None:
    site = night({"purge_time": "01:30"})
    clock = Clock("2025-06-10 01:29:58")
    job = started(site, clock)
    try:
        clock.set("2025-06-10 01:29:59")
        assert site.file.exists()  # not yet half past one
        clock.set("2025-06-10 01:30:00")
        assert not site.file.exists(), "not purged at the site's 01:30"
    finally:
        stop(job)
    assert site.purged_row()


@pytest.mark.slow
def test_a_site_purge_time_of_0130_does_not_purge_at_the_default_0300(
        night: Callable[[dict[str, object]], Night]) -> None:
    """Started after 01:30, the job waits for tomorrow's 01:30; 03:00 passes without a purge."""
    site = night({"purge_time": "01:30"})
    clock = Clock("2025-06-10 01:31:00")
    job = started(site, clock)
    try:
        for when in ("2025-06-10 02:59:59", "2025-06-10 03:00:00", "2025-06-10 03:00:01",
                     "2025-06-11 01:29:59"):
            clock.set(when)
            assert site.file.exists(), when
        clock.set("2025-06-11 01:30:00")
        assert not site.file.exists(), "not purged at the next night's 01:30"
    finally:
        stop(job)


def test_without_a_purge_time_the_purge_is_at_0300(
        night: Callable[[dict[str, object]], Night]) -> None:
    site = night({})
    clock = Clock("2025-06-10 01:29:00")
    job = started(site, clock)
    try:
        for when in ("2025-06-10 01:30:00", "2025-06-10 02:59:59"):
            clock.set(when)
            assert site.file.exists(), when
        clock.set("2025-06-10 03:00:00")
        assert not site.file.exists()
    finally:
        stop(job)
