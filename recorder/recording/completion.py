"""Completion: what happens once a recording's file is closed, by one worker from one queue.

Whoever closes a file (an API worker at a CALLSTOP, the writer loop after the commit delay, the
limits watch) hands it over as a ``Closing``; the completion worker then, in order:

1. takes the stop reason as final, unless a full disk cut the file short (``truncated``, and the
   disk guard is told how fast the file was growing);
2. completes the row (stores it first if the store could not take it at the start) and ends the
   recording's crash-journal entry: at once if the row is on disk, in the database or its
   spool, else (a full disk held it in memory, ``RecordingStore.held``) once the store has put
   every held change on disk, so a crash meanwhile still finds the recording in the journal;
3. publishes RECORDINGSTOPPED (and RECORDINGUPDATE once the row is stored) with the RECORDID;
4. hands the file to after-call encoding when the stored format is encoded after the call;
5. sets ``done``.

So the writer loop never touches the database, the journal or the events, and a closing's
steps never run on two threads at once (as in Oreka's tape processor chain). ``stop()``
finishes every closing already queued before the thread ends.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from recorder.calllog import call_log
from recorder.codecs.buffered import out_of_space
from recorder.crypt.access import current_wrapped
from recorder.errors import StoreError
from recorder.events.types import Event, EventSink, NoEvents
from recorder.recording.blackouts import file_seconds, in_file
from recorder.recording.journal import Journal
from recorder.recording.session import SessionResult
from recorder.recording.stats import RecordingStats
from recorder.store.recordings import RecordingStore
from recorder.store.records import STOP_TRUNCATED, FinishedRecording
from recorder.worker import Worker

if TYPE_CHECKING:
    from recorder.recording.files import OpenRecording

logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 1.0
# The most closings completed together (their rows in one transaction).
MAX_BATCH = 256
ERROR_TRUNCATED = "TRUNCATED"


class AfterCall(Protocol):
    """Where finished PCM WAV recordings go to become the stored format (recorder.recording.
    aftercall)."""

    def submit(self, wav: Path) -> None: ...


@dataclass(eq=False)
class Closing:
    """One recording on its way out: its file (closed once ``result`` is set) and what its
    completion needs. Made by ``RecordingFiles.close``."""

    opened: OpenRecording
    reason: str  # why it ended, as its row keeps it
    error_reason: str  # ERRORREASON of its RECORDINGSTOPPED ("NONE" for a normal end)
    stop_time: float  # unix time
    stopped: Event  # RECORDINGSTOPPED; RECORDID and (after a full disk) ERRORREASON filled in
    update: Event | None  # RECORDINGUPDATE once the row is complete
    after_call: bool  # the file goes on to after-call encoding
    label: str  # names it in the log: the device, " (RECORDSTART)" for a partial one
    result: SessionResult | None = None  # the closed file
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def final_reason(self) -> str:
        """The stop reason kept in its row: ``truncated`` for a file a full disk cut short,
        whatever ended it."""
        return STOP_TRUNCATED if self.opened.session.out_of_space else self.reason


class Completion(Worker):
    """The completion worker: one thread finishing each ``Closing`` in the order handed over."""

    def __init__(self, store: RecordingStore, *, journal: Journal | None = None,
                 events: EventSink | None = None, after_call: AfterCall | None = None,
                 stats: RecordingStats | None = None,
                 disk_full: Callable[[Path, float], None] | None = None) -> None:
        super().__init__("completion")
        self._store = store
        self._journal = journal
        self._events: EventSink = events or NoEvents()
        self._after_call = after_call
        self.stats = stats or RecordingStats()
        # A file was cut short by a full disk: (its path, its bytes a second) to the disk guard.
        self._disk_full = disk_full or (lambda path, rate: None)
        self._queue: queue.SimpleQueue[Closing | None] = queue.SimpleQueue()
        # Taken to queue a closing and to close the queue, so that none is put after the
        # thread's last look at the queue; and for the list below.
        self._lock = threading.Lock()
        self._closed = False
        # Journal entries of completed rows the store holds in memory only: (key, file name),
        # ended once it has them on disk.
        self._unsaved: list[tuple[int, str]] = []

    def submit(self, closing: Closing) -> None:
        """Queue a closed file; never blocks. Before ``start`` (and once the thread is ending)
        the closing is completed on the caller's thread, so none is ever left undone."""
        with self._lock:
            if self._thread is not None and not self._closed:
                self._queue.put(closing)
                return
        self._complete(closing)

    def stop(self) -> None:
        """Finish what is queued, then end the thread."""
        super().stop()
        self._queue.put(None)

    def run(self) -> None:
        while True:
            # Waking at least every HEARTBEAT_SECONDS while idle, so a heartbeat that stops
            # moving means a completion is stuck (a database that does not answer).
            self.heartbeat = time.monotonic()
            self._end_saved()
            try:
                closing = self._queue.get(timeout=HEARTBEAT_SECONDS)
            except queue.Empty:
                continue
            if closing is None:
                if self.stopping:
                    break
                continue
            # Everything else already queued goes with it: their rows in one transaction (one
            # sync), so closings arriving together (CALLSTOPs on many lines) share it.
            batch, stop = [closing], False
            while len(batch) < MAX_BATCH:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
            self._complete_all(batch)
            if stop and self.stopping:
                break
        with self._lock:
            self._closed = True
        # Closings queued behind the stop are still completed; none can be queued now.
        while True:
            try:
                closing = self._queue.get_nowait()
            except queue.Empty:
                break
            if closing is not None:
                self._complete(closing)
        self._end_saved()

    def _complete(self, closing: Closing) -> None:
        self._complete_all([closing])

    def _complete_all(self, closings: list[Closing]) -> None:
        """Complete ``closings``, in order, their rows written together where the store can."""
        finished: list[tuple[Closing, FinishedRecording]] = []
        for closing in closings:
            try:
                finished.append((closing, self._finished(closing)))
            except Exception:
                logger.exception("completing %s failed", closing.opened.filename)
                closing.done.set()
        for (closing, _), saved in zip(finished, self._save(finished), strict=True):
            try:
                self._conclude(closing, saved)
            except Exception:
                logger.exception("completing %s failed", closing.opened.filename)
            finally:
                closing.done.set()

    def _finished(self, closing: Closing) -> FinishedRecording:
        """The row's completion: what the closed file holds, and how it ended."""
        opened, result = closing.opened, closing.result
        assert result is not None, "a closing is handed over once its file is closed"
        session = opened.session
        reason = closing.final_reason
        if reason == STOP_TRUNCATED:
            # Refuse new recordings until there is room for this many seconds of them.
            self._disk_full(session.path, session.bytes_per_second)
        return FinishedRecording(
            stop_time=closing.stop_time, duration=result.duration, audio_size=result.size,
            audio_hash=result.sha256, stop_reason=reason, lost_samples=result.lost_samples,
            blackouts=() if session.blackouts.never else file_seconds(
                in_file(session.blackouts.ranges(), session.start), result.frames,
                result.sample_rate))

    def _save(self, finished: list[tuple[Closing, FinishedRecording]]) -> list[bool]:
        """Complete the rows, and end the journal entries of those saved: in one transaction
        when there are several and the store writes a batch all or none (group commit), else
        (or when that fails) one by one. Whether each was saved."""
        if len(finished) > 1 and self._store.batches_atomically:
            try:
                for closing, _ in finished:
                    self._insert_if_missing(closing.opened)
                self._store.finish_recordings(
                    [(closing.opened.record_id, done) for closing, done in finished
                     if closing.opened.record_id is not None])
            except StoreError as exc:
                logger.debug("completing %d rows together failed (%s); one by one",
                             len(finished), exc)
            else:
                for closing, _ in finished:
                    self._journal_end(closing.opened)
                return [True] * len(finished)
        return [self._save_one(closing, done) for closing, done in finished]

    def _save_one(self, closing: Closing, done: FinishedRecording) -> bool:
        opened = closing.opened
        try:
            self._insert_if_missing(opened)
            assert opened.record_id is not None
            self._store.finish_recording(opened.record_id, done)
        except StoreError:
            # Start-up completes the row from the file and transcodes it then.
            logger.exception("recording %s is complete but its row could not be written",
                             opened.filename)
            return False
        self._journal_end(opened)
        return True

    def _insert_if_missing(self, opened: OpenRecording) -> None:
        """The row, if the store could not take it when the recording started."""
        if opened.record_id is None:
            # Its wrapped key as beside the file now: a key rotation may have re-wrapped it
            # since the recording started (recorder/crypt/keyring.py).
            opened.row = replace(opened.row, file_key=current_wrapped(
                opened.session.path, opened.row.file_key))
            opened.record_id = self._store.insert_recording(opened.row)

    def _conclude(self, closing: Closing, saved: bool) -> None:
        """After its row: the events, after-call encoding and the call log's line."""
        opened, result = closing.opened, closing.result
        assert result is not None
        session = opened.session
        reason = closing.final_reason
        error_reason = ERROR_TRUNCATED if reason == STOP_TRUNCATED else closing.error_reason
        self.stats.count("completed")
        record_id = str(opened.record_id) if opened.record_id else ""
        self._publish(closing.stopped.with_values(RECORDID=record_id,
                                                  ERRORREASON=error_reason))
        if saved:
            if closing.update is not None:
                self._publish(closing.update.with_values(RECORDID=record_id))
            if self._after_call is not None and closing.after_call and not session.failed:
                self._after_call.submit(result.path)
        call_log.info("recorded %s on channel %d to %s: %.2f s, %d bytes, %s (RECORDID %s)",
                      closing.label, session.channel.id, result.path, result.duration,
                      result.size, reason, opened.record_id)

    def _journal_end(self, opened: OpenRecording) -> None:
        key = opened.journal_key
        if self._journal is None or key is None:
            return
        opened.journal_key = None
        if self._store.held:
            # The row is complete in memory only (a full disk): the journal entry is what
            # completes it if the process dies before the store has it on disk.
            with self._lock:
                self._unsaved.append((key, opened.filename))
            return
        self._end_entry(key, opened.filename)

    def _end_saved(self) -> None:
        """End the journal entries of rows the store held in memory, once it has them on
        disk."""
        with self._lock:
            if not self._unsaved or self._store.held:
                return
            saved, self._unsaved = self._unsaved, []
        for key, filename in saved:
            self._end_entry(key, filename)

    def _end_entry(self, key: int, filename: str) -> None:
        assert self._journal is not None
        try:
            self._journal.end(key)
        except OSError as exc:
            # Harmless: the next start finds the row complete and leaves it.
            if out_of_space(exc):
                logger.warning("%s: cannot end its crash journal entry: %s", filename, exc)
            else:
                logger.exception("%s: cannot end its crash journal entry", filename)

    def _publish(self, event: Event) -> None:
        try:
            self._events.publish(event)
        except Exception:
            logger.exception("publishing %s failed", event.event_type)
