"""Opening and closing a recording's file, from plain values (never from the call table).

``RecordingFiles.open`` makes the file under its unique name, the writer of the stored format,
the session that copies the channel's ring into it, the row in the store and the entry in the
crash journal, then hands the session to the writer loop: once it returns, a crash can no
longer lose the recording. ``RecordingFiles.close`` ends the session at a sample position:
at once when that audio is already out of the commit delay, else the writer loop closes it
later; either way the closed file goes to the completion worker (``recorder.recording.
completion``), which completes the row, ends the journal entry and sends the events.
"""

from __future__ import annotations

import errno
import logging
import time
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, cast

from recorder.capture.channels import Phase
from recorder.capture.core import Channel
from recorder.codecs.formats import (
    AudioWriter,
    file_extension,
    open_writer,
    rewritten_start,
    steady_bytes_per_second,
)
from recorder.crypt.access import start_sealed
from recorder.crypt.keyring import KeyRing
from recorder.crypt.keys import MasterKey, key_path
from recorder.crypt.sealed import chunk_size_for
from recorder.errors import StoreError
from recorder.events.types import Event
from recorder.recording.blackouts import Blackouts, in_file
from recorder.recording.completion import Closing, Completion
from recorder.recording.groupcommit import GroupCommit
from recorder.recording.journal import Journal
from recorder.recording.paths import create_unique, recording_path
from recorder.recording.session import SYNC_SECONDS, RecordingSession
from recorder.recording.stats import RecordingStats
from recorder.recording.writer import WriterLoop
from recorder.resultcodes import ResultCode
from recorder.store.recordings import RecordingStore
from recorder.store.records import NewRecording

logger = logging.getLogger(__name__)

# How long a caller that closes a recording itself (a CALLSTOP) waits for its completion (row,
# journal, events) before it answers anyway; the completion goes on regardless.
COMPLETION_WAIT_SECONDS = 30.0


@dataclass(frozen=True)
class StoredFormat:
    """What recordings are stored as (storage.format) and when they are encoded."""

    format: str = "wav"
    after_call: bool = False  # record PCM WAV, transcode when the call ends
    options: Mapping[str, Any] = field(default_factory=dict)  # the format's writer options

    @property
    def recorded_as(self) -> str:
        """The format written while the call is recorded."""
        return "wav" if self.after_call else self.format


@dataclass(eq=False)
class OpenRecording:
    """A recording as opened: its session (the file), its row and its journal entry.

    ``record_id`` is set once: by ``open`` when the store took the row, else by the completion
    worker, which stores the row when the recording ends.
    """

    session: RecordingSession
    row: NewRecording
    record_id: int | None
    journal_key: int | None

    @property
    def filename(self) -> str:
        return str(self.session.path)


def encrypted_file(path: Path, file: BinaryIO, master: MasterKey, *, fmt: str, rate: int,
                   sides: int, options: Mapping[str, Any]) -> BinaryIO:
    """``file`` (new, empty, at ``path``) as the encrypted file a ``fmt`` writer records into;
    its wrapped key beside it first.

    Its prologue is what the format rewrites at every sync (a WAV's header, an MP3's tag
    frame), sealed apart; its chunks are as long as a sync's bytes (or a whole number of
    syncs'), so a sync seals whole chunks and no partly filled tail (docs/encryption.md)."""
    per_second = steady_bytes_per_second(fmt, rate, sides, **options)
    per_sync = round(per_second * SYNC_SECONDS) if per_second else None
    sealed = start_sealed(path, file, master, prologue=rewritten_start(fmt, rate, sides),
                          chunk_size=chunk_size_for(per_sync))
    return cast(BinaryIO, sealed)


class OpenFailed(Exception):
    """No file could be made for the recording; ``code`` is the result the API answers."""

    def __init__(self, code: ResultCode, detail: str) -> None:
        super().__init__(detail)
        self.code = code


class RecordingFiles:
    """Opens recordings' files and closes them; thread-safe (it keeps no state of its own)."""

    def __init__(self, *, recordings_dir: Path, store: RecordingStore, writer: WriterLoop,
                 completion: Completion, stored: StoredFormat | None = None,
                 stereo: bool = True, commit_delay_seconds: float = 0.0,
                 journal: Journal | None = None, stats: RecordingStats | None = None,
                 disk_full: Callable[[Path, float], None] | None = None,
                 keys: KeyRing | None = None) -> None:
        self._recordings_dir = recordings_dir
        self._store = store
        self._writer = writer
        self._completion = completion
        self.stored = stored or StoredFormat()
        self._stereo = stereo
        self._commit_delay_seconds = commit_delay_seconds
        self._journal = journal
        self.stats = stats or RecordingStats()
        # A file could not be made for lack of space: (its path, 0) to the disk guard.
        self._disk_full = disk_full or (lambda path, rate: None)
        # storage.encrypt: every file is written encrypted under a key of its own, wrapped by
        # the ring's current master key (docs/encryption.md).
        self._keys = keys if keys is not None and keys.seals else None
        # Concurrent starts share one transaction for their rows (one sync), where the store
        # writes a batch all or none; each start still waits for its row to be on disk.
        self._inserts: GroupCommit[NewRecording, int] | None = (
            GroupCommit(store.insert_recordings) if store.batches_atomically else None)

    def open(self, taps: tuple[Channel, ...], position: int, *, started: float,
             row: NewRecording, blackouts: Blackouts, max_time: int = 0,
             label: str = "", lost_before: int = 0) -> OpenRecording:
        """Record ``taps`` (one channel, or a device's two directions) from ``position``.

        ``started`` names the file (unix time); ``row`` is the call's part of the row (this
        fills in the file, format, rate and channel); ``lost_before``: samples of the call lost
        before ``position`` (counted in the row's lost samples). Raises ``OpenFailed`` when the
        file cannot be made.
        """
        for tap in taps:
            tap.status.enter(Phase.PREPARING)
        try:
            opened = self._open(taps, position, started=started, row=row, blackouts=blackouts,
                                max_time=max_time, label=label, lost_before=lost_before)
        finally:
            for tap in taps:
                tap.status.leave(Phase.PREPARING)
        for tap in taps:
            tap.status.enter(Phase.RECORDING)
        return opened

    def _open(self, taps: tuple[Channel, ...], position: int, *, started: float,
              row: NewRecording, blackouts: Blackouts, max_time: int,
              label: str, lost_before: int) -> OpenRecording:
        channel = taps[0]
        sides = 2 if len(taps) == 2 and self._stereo else 1
        fmt = self.stored.recorded_as
        options = {} if self.stored.after_call else dict(self.stored.options)
        wanted = recording_path(self._recordings_dir, row.device_id,
                                datetime.fromtimestamp(started), file_extension(fmt))
        # The key the file's key is wrapped by is held until the row keeps it too: a key
        # rotation's reload waits for that (recorder/crypt/keyring.py).
        with self._keys.sealing() if self._keys is not None else nullcontext() as master:
            try:
                path, file = create_unique(wanted)
                try:
                    if master is not None:
                        file = encrypted_file(path, file, master, fmt=fmt, sides=sides,
                                              rate=channel.sample_rate, options=options)
                    writer = open_writer(fmt, file, channel.sample_rate, sides, **options)
                except Exception:
                    file.close()
                    path.unlink(missing_ok=True)  # nothing of the call is in it yet
                    key_path(path).unlink(missing_ok=True)
                    raise
            except Exception as exc:
                raise self._not_opened(exc, wanted, label or row.device_id) from exc
            return self._opened(taps, position, path, file, writer, row=row,
                                blackouts=blackouts, max_time=max_time, label=label,
                                lost_before=lost_before, fmt=fmt, sides=sides,
                                options=options)

    def _not_opened(self, exc: Exception, wanted: Path, label: str) -> OpenFailed:
        # The writer's header write wraps its OSError in a CodecError.
        cause = exc if isinstance(exc, OSError) else exc.__cause__
        no_space = isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT)
        if no_space:
            self._disk_full(wanted, 0.0)  # refuse the next ones until there is room
        logger.error("%s not recorded: cannot create %s", label, wanted, exc_info=exc)
        return OpenFailed(ResultCode.API_ERROR_OUT_OF_DISK_SPACE if no_space
                          else ResultCode.API_ERROR_NO_DEFAULT_RECORDING_PATH,
                          f"cannot create {wanted}: {exc}")

    def _opened(self, taps: tuple[Channel, ...], position: int, path: Path, file: BinaryIO,
                writer: AudioWriter, *, row: NewRecording, blackouts: Blackouts,
                max_time: int, label: str, lost_before: int, fmt: str, sides: int,
                options: dict[str, Any]) -> OpenRecording:
        """The session, the row and the journal entry of the file just made."""
        channel = taps[0]
        delay = round(self._commit_delay_seconds * channel.sample_rate)
        session = RecordingSession(taps, writer, path, position, delay, blackouts=blackouts,
                                   fmt=fmt, options=options, written=self._writer.bytes_written,
                                   lost_before=max(0, lost_before),
                                   sealed=file if self._keys is not None else None)
        if max_time:
            session.stop_at = position + max_time * channel.sample_rate
        row = replace(row, channel=channel.id, filename=str(path),
                      media_format=self.stored.format, sample_rate=channel.sample_rate,
                      file_key=str(getattr(file, "wrapped_key", "")))
        record_id = None
        try:
            record_id = (self._store.insert_recording(row) if self._inserts is None
                         else self._inserts.submit(row))
        except StoreError:
            # The audio matters more than the row: keep recording; the row is written when the
            # recording completes (or, after a crash, from the journal).
            logger.exception("%s: recording to %s without a row for now", label, path)
        opened = OpenRecording(session, row, record_id, None)
        # In the journal, on disk, before the first sample and before the request that
        # started it is answered: a crash from here on cannot lose the recording.
        opened.journal_key = self._journal_begin(opened, fmt, sides, options)
        self._writer.add(session)
        self.stats.count("started")
        # At DEBUG: the call log has one line per call, at its end (recorder/calllog.py);
        # calls being recorded are in `recorderctl calls` and /status.
        logger.debug("recording %s on channel %d to %s (RECORDID %s)", label or row.device_id,
                    channel.id, path, record_id)
        return opened

    def _journal_begin(self, opened: OpenRecording, fmt: str, sides: int,
                       options: dict[str, Any]) -> int | None:
        if self._journal is None:
            return None
        session = opened.session
        try:
            return self._journal.begin(
                path=session.path, fmt=fmt, sample_rate=session.channel.sample_rate,
                channels=sides, row=opened.row, record_id=opened.record_id, options=options)
        except OSError:
            # Recording it matters more than the promise of recovering it after a crash.
            logger.exception("%s: not in the crash journal; recording anyway", session.path)
            return None

    def note_blackouts(self, opened: OpenRecording) -> None:
        """The recording's blackouts changed: noted in its journal entry, so a crash before
        its row is complete still keeps them with the row (recovery)."""
        key = opened.journal_key
        if self._journal is None or key is None or opened.session.closed:
            return
        session = opened.session
        try:
            self._journal.note_blackouts(key, in_file(session.blackouts.ranges(), session.start))
        except OSError:
            # The blackout itself holds (the audio is silenced); only a crash's row would
            # lack the marks.
            logger.exception("%s: cannot note its blackouts in the crash journal", session.path)

    def close(self, opened: OpenRecording, end: int, *, reason: str, error_reason: str,
              stop_time: float | None, stopped: Event, update: Event | None,
              label: str = "") -> Closing:
        """End the recording at sample ``end``: the file is closed at once, or by the writer
        loop once ``end`` is out of the commit delay; then the completion worker completes it.

        ``stopped`` and ``update`` are its RECORDINGSTOPPED and RECORDINGUPDATE, whose RECORDID
        (and ERRORREASON, for a file a full disk cut short) the worker fills in. Returns the
        ``Closing``, whose ``done`` is set once the worker has finished with it.
        """
        session = opened.session
        closing = Closing(
            opened=opened, reason=reason, error_reason=error_reason,
            stop_time=stop_time if stop_time is not None else time.time(), stopped=stopped,
            update=update, after_call=self.stored.after_call and self.stored.format != "wav",
            label=label or opened.row.device_id)
        statuses = [tap.status for tap in session.channels]
        if session.ready_to_finish(end):
            self._writer.discard(session)
            for status in statuses:
                status.leave(Phase.RECORDING)
            closing.result = session.finish(end)
            self._completion.submit(closing)
            return closing
        # The last audio is still inside the commit delay: the writer closes the file once it
        # has passed, and hands it to the completion worker then.
        for status in statuses:
            status.move(Phase.RECORDING, Phase.FINISHING)
        self._writer.finish_later(session, end, closing)
        return closing


def wait_completed(closings: list[Closing], timeout: float = COMPLETION_WAIT_SECONDS) -> None:
    """Wait until the completion worker has finished with each of ``closings`` (those closed
    at once; one the writer loop still holds is not waited for)."""
    deadline = time.monotonic() + timeout
    for closing in closings:
        if closing.result is None:
            continue
        if not closing.done.wait(max(0.0, deadline - time.monotonic())):
            logger.warning("%s: its completion is taking longer than %.0f s; answering without "
                           "it", closing.opened.filename, timeout)
            return
