"""The retention job: purges the recordings ``recorder.rules.retention`` says are due.

Purging deletes the recording's file, and what after-call encoding may have left beside it,
then marks its row (``purged_time``): the row stays, CALLLIST still lists it, FILENAME and all.
Only complete rows are purged: never one being recorded, nor one a crash left "recording"
(start-up recovery completes those first), nor one still waiting for after-call transcoding.

``RetentionJob`` runs the purge daily at ``retention.purge_time`` and on demand (``run_now``),
and, when ``retention.delete_oldest_when_full`` allows it, purges the oldest recordings, expired
or not, while the disk is below the free-space floor (``recorder.recording.diskspace``).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, tzinfo
from pathlib import Path

from recorder.config.model import Config
from recorder.config.values import parse_clock
from recorder.recording.diskspace import DiskGuard
from recorder.recording.transcode import PART_SUFFIX, SOURCE_SUFFIX
from recorder.rules.retention import RetentionPolicy, due_for_purge, expiry, kept_for, next_run
from recorder.store.evidence import EvidenceStore
from recorder.store.recordings import RecordingStore
from recorder.store.records import DAY_SECONDS, RecordingRow, ScanCursor
from recorder.worker import Worker

logger = logging.getLogger(__name__)

BATCH_SIZE = 500
POLL_SECONDS = 1.0
DISK_CHECK_SECONDS = 30.0
# Empty day and device directories are removed behind purged files, but not recent ones: a new
# recording may be about to be created in them (paths.create_unique makes the directory, then
# the file).
PRUNE_AFTER_SECONDS = 2 * DAY_SECONDS
# Formats whose files end in .wav: a .wav row of any other format still awaits transcoding.
_WAV_FORMATS = frozenset({"wav", "wav-ulaw", "wav-alaw"})

Progress = Callable[[int, int], None]


def awaiting_transcode(row: RecordingRow) -> bool:
    """Still the PCM WAV that after-call encoding will replace (so not complete on disk)."""
    return row.filename.lower().endswith(SOURCE_SUFFIX) and row.media_format not in _WAV_FORMATS


KEY_SUFFIX = ".key"  # recorder/crypt/keys.py


def leftovers(filename: Path) -> list[Path]:
    """Files beside a recording's file that go with it: what after-call encoding may have left
    (the WAV it was made from, after a crash between the two steps, and a half-written copy),
    and an encrypted recording's wrapped key (deleted after the file: without it no copy of the
    file, in a backup or elsewhere, can be opened again)."""
    twins = [filename.with_name(filename.name + PART_SUFFIX)]
    if filename.suffix.lower() != SOURCE_SUFFIX:
        twins.append(filename.with_suffix(SOURCE_SUFFIX))
    twins.append(filename.with_name(filename.name + KEY_SUFFIX))
    return twins


PURGED = "purged"
WOULD_PURGE = "would purge"
MISSING = "missing"  # marked purged; its file was already gone
FAILED = "failed"
DEFERRED = "deferred"  # awaiting after-call transcoding; a later run purges it
RACED = "raced"  # purged or changed by someone else meanwhile


@dataclass(frozen=True)
class PurgeOutcome:
    """What happened to one recording."""

    ident: int
    filename: str
    start_time: float
    result: str  # one of the constants above
    bytes: int
    detail: str  # why it was due, or what went wrong


@dataclass
class PurgeReport:
    """The counts of one purge run."""

    dry_run: bool = False
    examined: int = 0
    purged: int = 0  # rows marked purged (with MISSING ones); in a dry run, would be
    bytes_freed: int = 0
    failures: int = 0  # files that could not be deleted: their rows stay unpurged
    missing: int = 0
    deferred: int = 0
    interrupted: bool = False  # stop() came before the end
    audit_purged: int = 0  # audit entries older than retention.audit_keep_days removed


Outcomes = Callable[[PurgeOutcome], None]


class RetentionJob(Worker):
    """Purges expired recordings daily at ``purge_time`` and on demand; makes room below the
    free-space floor when allowed. One thread; ``start()``, ``stop()``, ``join()``."""

    def __init__(self, store: RecordingStore, policy: RetentionPolicy, recordings_dir: Path, *,
                 purge_time: str = "03:00", guard: DiskGuard | None = None,
                 delete_oldest_when_full: bool = False,
                 clock: Callable[[], float] = time.time, tz: tzinfo | None = None,
                 batch_size: int = BATCH_SIZE, poll_seconds: float = POLL_SECONDS,
                 disk_check_seconds: float = DISK_CHECK_SECONDS,
                 audit: EvidenceStore | None = None, audit_keep_days: int = 400) -> None:
        parse_clock(purge_time)  # a bad time fails here, not at 3 a.m.
        super().__init__("retention")
        self._store = store
        self.policy = policy
        self._recordings_dir = recordings_dir
        self._purge_time = purge_time
        self._guard = guard
        self._delete_oldest = delete_oldest_when_full and guard is not None
        self._clock = clock
        self._tz = tz
        self._batch_size = batch_size
        self._poll_seconds = poll_seconds
        self._disk_check_seconds = disk_check_seconds
        self._run_lock = threading.Lock()  # one purge at a time, whoever asks
        self._audit = audit
        self.audit_keep_days = audit_keep_days

    @classmethod
    def from_config(cls, store: RecordingStore, config: Config,
                    guard: DiskGuard | None = None, *,
                    clock: Callable[[], float] = time.time, tz: tzinfo | None = None,
                    poll_seconds: float = POLL_SECONDS,
                    audit: EvidenceStore | None = None) -> RetentionJob:
        """The job a configuration asks for; ``clock``, ``tz`` and ``poll_seconds`` let a test
        put the job built from a site's settings at any hour of the night."""
        retention = config.retention
        return cls(store, RetentionPolicy.from_config(retention), config.storage.recordings_dir,
                   purge_time=retention.purge_time, guard=guard,
                   delete_oldest_when_full=retention.delete_oldest_when_full, clock=clock,
                   tz=tz, poll_seconds=poll_seconds, audit=audit,
                   audit_keep_days=retention.audit_keep_days)

    # --- the loop ----------------------------------------------------------------------------

    def run(self) -> None:
        due = next_run(self._clock(), self._purge_time, self._tz)
        logger.info("retention: daily purge at %s, next %s", self._purge_time,
                    datetime.fromtimestamp(due, self._tz).isoformat(timespec="minutes"))
        disk_check = time.monotonic()
        while not self._stop.wait(self._poll_seconds):
            self.heartbeat = time.monotonic()
            guard = self._guard
            if self._delete_oldest and guard is not None and (
                    guard.short_of_space.is_set() or time.monotonic() >= disk_check):
                self._room(guard)
                # Every call refused meanwhile raises the flag again; after an attempt, only
                # the periodic check tries again, so a disk that cannot be freed (nothing left
                # to purge, a store that is away) is not hammered every second.
                guard.short_of_space.clear()
                disk_check = time.monotonic() + self._disk_check_seconds
            now = self._clock()
            if now >= due:
                # The next run is fixed first, so a run that fails is retried tomorrow rather
                # than every second.
                due = next_run(now, self._purge_time, self._tz)
                try:
                    report = self.run_now()
                    logger.info("retention: daily purge: %s", summary(report))
                except Exception:
                    logger.exception("retention: the daily purge failed")

    def _room(self, guard: DiskGuard) -> None:
        try:
            if not guard.ok(fresh=True):
                self.make_room()
        except Exception:
            logger.exception("retention: making room on the disk failed")

    # --- purging ---------------------------------------------------------------------------

    def run_now(self, progress: Progress | None = None, *, dry_run: bool = False,
                on_outcome: Outcomes | None = None) -> PurgeReport:
        """Purge every recording due now (or, with ``dry_run``, only say which); thread-safe.

        ``progress(done, total)`` follows the run. Raises StoreError if the store fails (what
        was purged until then stays purged)."""
        with self._run_lock:
            now = self._clock()
            rule = self.policy.rule
            report = PurgeReport(dry_run=dry_run)
            if self._audit is not None and self.audit_keep_days and not dry_run:
                # Only entries older than audit_keep_days, and only a run of the oldest: the
                # store keeps the last one's hash as the anchor the chain goes on from.
                report.audit_purged = self._audit.purge_audit(
                    now - self.audit_keep_days * DAY_SECONDS)
            total = self._store.count_expired(now, rule) if progress is not None else 0
            after: ScanCursor | None = None
            while batch := self._store.expired_recordings(now, rule, self._batch_size, after):
                after = (batch[-1].start_time, batch[-1].ident)
                for row in batch:
                    if self._stop.is_set():
                        report.interrupted = True
                        logger.info("retention: purge stopped after %d recording(s)",
                                    report.examined)
                        return report
                    report.examined += 1
                    # The store found it with the same rule; asking the rule itself again
                    # means no query can ever delete what the rule would keep.
                    if due_for_purge(row, now, self.policy):
                        _, why = kept_for(row.keep_days, row.archive_action, self.policy)
                        self._purge(row, report, why, dry_run, on_outcome)
                    if progress is not None:
                        progress(report.examined, max(total, report.examined))
            return report

    def make_room(self) -> PurgeReport:
        """Purge the oldest complete recordings, expired or not, until the disk is above the
        floor again. Only with ``delete_oldest_when_full``; run it on the job's thread."""
        report = PurgeReport()
        guard = self._guard
        if not self._delete_oldest or guard is None:
            return report
        with self._run_lock:
            for row in self._oldest(report):
                if guard.ok(fresh=True):
                    break
                report.examined += 1
                until = expiry(row.start_time, row.keep_days, row.archive_action, self.policy)
                logger.warning(
                    "retention: DISK FULL: purging RECORDID %d (%s, started %s), %s, to make "
                    "room", row.ident, row.filename,
                    datetime.fromtimestamp(row.start_time).isoformat(timespec="seconds"),
                    "expired" if until is not None and until <= self._clock()
                    else "NOT EXPIRED")
                self._purge(row, report, "disk below retention.min_free_mb", False, None)
            else:
                if not guard.ok(fresh=True) and not report.interrupted:
                    logger.error("retention: the disk is still below retention.min_free_mb "
                                 "and no recording is left to purge")
            if report.examined:
                logger.warning("retention: made room: %s", summary(report))
        return report

    def _oldest(self, report: PurgeReport) -> Iterator[RecordingRow]:
        """Every complete, unpurged recording with a file, oldest first, until stop()."""
        after: ScanCursor | None = None
        while batch := self._store.oldest_unpurged(self._batch_size, after):
            after = (batch[-1].start_time, batch[-1].ident)
            for row in batch:
                if self._stop.is_set():
                    report.interrupted = True
                    return
                yield row

    def _purge(self, row: RecordingRow, report: PurgeReport, why: str, dry_run: bool,
               on_outcome: Outcomes | None) -> None:
        def done(result: str, size: int, detail: str) -> None:
            if on_outcome is not None:
                on_outcome(PurgeOutcome(row.ident, row.filename, row.start_time, result, size,
                                        detail))

        if awaiting_transcode(row):
            report.deferred += 1
            logger.info("retention: RECORDID %d is due (%s) but still awaits after-call "
                        "encoding; purging it later", row.ident, why)
            done(DEFERRED, 0, "awaiting after-call encoding")
            return
        path = Path(row.filename) if row.filename else None
        if path is not None and not _inside(path, self._recordings_dir):
            report.failures += 1
            logger.error("retention: not deleting %s (RECORDID %d): outside the recordings "
                         "directory %s", path, row.ident, self._recordings_dir)
            done(FAILED, 0, f"outside the recordings directory {self._recordings_dir}")
            return
        freed, missing = 0, path is None
        if path is not None:
            try:
                freed, missing = _delete(path, dry_run)
            except OSError as exc:
                report.failures += 1
                logger.error("retention: cannot delete %s (RECORDID %d): %s; kept", path,
                             row.ident, exc)
                done(FAILED, 0, str(exc))
                return
        if dry_run:
            report.purged += 1
            report.bytes_freed += freed
            done(WOULD_PURGE, freed, why + ("; file already gone" if missing else ""))
            return
        if not self._store.mark_purged(row.ident, self._clock()):
            logger.info("retention: RECORDID %d was purged or changed meanwhile", row.ident)
            report.bytes_freed += freed
            done(RACED, freed, "purged or changed meanwhile")
            return
        report.purged += 1
        report.bytes_freed += freed
        if missing and path is not None:
            report.missing += 1
            logger.warning("retention: RECORDID %d (%s): its file was already gone; marked "
                           "purged", row.ident, path)
            done(MISSING, freed, why + "; file already gone")
        else:
            logger.info("retention: purged RECORDID %d (%s, %d bytes; %s)", row.ident,
                        path or "no file", freed, why)
            done(PURGED, freed, why)
        if path is not None and row.start_time < self._clock() - PRUNE_AFTER_SECONDS:
            _prune(path.parent, self._recordings_dir)


def _inside(path: Path, root: Path) -> bool:
    # The directory is resolved, not the file: a symbolic link in the tree is deleted itself,
    # never what it points to, and "../" in a stored name cannot climb out.
    try:
        return path.parent.resolve().is_relative_to(root.resolve())
    except (OSError, RuntimeError):
        return False


def _delete(path: Path, dry_run: bool) -> tuple[int, bool]:
    """Delete ``path`` and its leftovers: (bytes freed, True if ``path`` was already gone).
    Raises OSError (``path`` kept) if it cannot be deleted."""
    freed = 0
    missing = False
    for i, victim in enumerate([path, *leftovers(path)]):
        try:
            size = victim.lstat().st_size
        except FileNotFoundError:
            missing = missing or i == 0
            continue
        if not dry_run:
            victim.unlink(missing_ok=True)
        freed += size
    return freed, missing


def _prune(directory: Path, root: Path) -> None:
    """Remove ``directory`` and its parents up to ``root`` while they are empty."""
    try:
        root = root.resolve()
        current = directory.resolve()
    except OSError:
        return
    while current != root and current.is_relative_to(root):
        try:
            os.rmdir(current)
        except OSError:
            return  # not empty (or gone): nothing more to tidy
        current = current.parent


def summary(report: PurgeReport) -> str:
    """One line for logs and recorderctl."""
    verb = "would purge" if report.dry_run else "purged"
    parts = [f"{verb} {report.purged} of {report.examined} recording(s) examined",
             f"{report.bytes_freed} bytes {'to free' if report.dry_run else 'freed'}"]
    if report.missing:
        parts.append(f"{report.missing} file(s) already gone")
    if report.deferred:
        parts.append(f"{report.deferred} awaiting after-call encoding")
    if report.failures:
        parts.append(f"{report.failures} could not be deleted")
    if report.audit_purged:
        parts.append(f"{report.audit_purged} audit entr{'y' if report.audit_purged == 1 else 'ies'}"
                     " past retention.audit_keep_days removed")
    if report.interrupted:
        parts.append("stopped before the end")
    return ", ".join(parts)
