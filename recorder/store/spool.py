"""The database-outage spool: recording goes on while the store cannot be written.

``SpoolingStore`` wraps the recordings' part of the real store (``SqliteStore``) and delegates
every call to it; the directory (``DirectoryStore``) is not its business. The writes that
recording makes (a row started, finished, updated by CALLUPDATE, pointed at its
after-call file) are the exception: when the database refuses one (locked by another process,
made read-only, its disk full, a disk error; later a server that is down), it is appended
instead to a local spool file, one JSON line per change with a sequence number, fsynced before
the call returns. From then on every such write goes straight to the spool, behind the ones
already there (so their order holds and a slow lock stalls no call start), until a background
thread has written them all into the database, in order, every ``storage.spool_retry_seconds``.
The spool file is then truncated.

The spool file usually shares its disk with the database, so a full disk refuses both. A row
started or finished (what a recording's start and its completion write) is then *held* in
memory, in order, behind the changes already waiting (``SpoolFile``), and the call returns as if
spooled: ``held`` counts them. They reach the file, or the database, as soon as either has room
(every retry), and a clean stop tries both once more. Until ``held`` is 0 the completion worker
keeps the recordings' crash-journal entries open, so a crash (or a stop while the disk is still
full) loses no row: the next start completes them from the journal and their files. An update
(CALLUPDATE) or a file change (after-call encoding) that cannot reach the disk is refused
(StoreError) instead, as the journal does not cover it: the client is answered 23, the
transcoder keeps its WAV for the next start.

The spool holds no SQL: it replays through the same ``Store`` methods. The file itself (its
lock, its lines, what a damaged one means, the held changes) is ``recorder.store.spoolfile``'s.

RECORDIDs: a recording started while the database is away still needs its RECORDID at once (the
API answers with it, events carry it, CALLUPDATE names it). The spool keeps the highest RECORDID
known (read at open, raised by every insert) and hands out the next ones itself; the replay
stores each row under the RECORDID it was given. That is safe because one process at a time
owns the spool (an exclusive ``flock`` on the spool file; recorderd also holds the data
directory's lock), and while changes wait in the spool nothing else that takes a RECORDID
(CHATSTART) is let through. A database several recorder servers share (PostgreSQL) gives the
spool a block of RECORDIDs from its sequence while it is up, and the spool hands those out
first (``spoolids``): no two servers give the same.

Replay is idempotent, so a crash in the middle of one loses and duplicates nothing when the
next start replays the whole spool again: an insert whose RECORDID already holds the same
recording (device, call instance, start time) is skipped; finishing, updating and pointing a
row at a file set the same values again. Were the RECORDID taken by another recording (only
something writing the database behind the recorder's back could do that), the row is stored
under a new RECORDID and the spool's later changes follow it; an error is logged.

While changes wait in the spool, reads of recordings (CALLLIST, EXPORT, ...) and the other
writes that touch recordings (chat sessions, retention) raise ``StoreError`` ("database
unavailable: N changes waiting in the spool"), so the API answers 23 rather than a list that
misses calls. Directory reads and writes do not pass through here: they go to the database as
they always do and fail, or not, with it. A non-empty spool left by an earlier run is replayed
by ``open()``, before start-up recovery lists the recordings a crash interrupted. A database
that cannot be opened at all at start (missing and not creatable, or locked while its schema
needs an upgrade) is a ``StoreError`` from ``open()``: recorderd does not start, saying why,
and systemd restarts it.

A second process opening the same data directory (``recorderctl calls --offline`` while
recorderd runs) cannot take the spool's lock: it never replays nor spools, and its reads of
recordings fail while the spool file is not empty.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar

from recorder.errors import StoreError
from recorder.store.recordings import RecordingStore
from recorder.store.records import (
    ChatStart,
    FinishedRecording,
    NewRecording,
    RecordingRow,
    RecordingUpdate,
)
from recorder.store.spoolfile import (
    OP_FINISH,
    OP_INSERT,
    OP_REPLACE_FILE,
    OP_UPDATE,
    SpoolEntry,
    SpoolFile,
)
from recorder.store.spoolids import IdReserve
from recorder.store.spoolreads import CurrentReads
from recorder.worker import PeriodicWorker

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

JOIN_TIMEOUT = 10.0


def _plain(obj: Any) -> dict[str, Any]:
    """A frozen dataclass's fields as JSON-able values (its metadata mapping as a dict)."""
    return {f.name: (dict(v) if isinstance(v := getattr(obj, f.name), Mapping) else v)
            for f in fields(obj)}


def _same_recording(row: RecordingRow, rec: NewRecording) -> bool:
    """Whether ``row`` is ``rec`` stored (what a later change cannot have altered)."""
    return (row.device_id, row.call_instance, row.start_time) == (
        rec.device_id, rec.call_instance, rec.start_time)


class SpoolingStore(CurrentReads):
    """A ``RecordingStore`` whose writes wait in a local spool while the database is away."""

    def __init__(self, inner: RecordingStore, spool_path: Path, retry_seconds: float = 2.0) -> None:
        self._inner = inner
        self._spool = SpoolFile(spool_path)
        self._retry = retry_seconds
        self._pending: deque[SpoolEntry] = deque()
        self._lock = threading.Lock()  # the spool, _highest and the write path's order
        self._replay_lock = threading.Lock()  # one replay at a time
        self._next_seq = 1
        self._highest = 0  # highest RECORDID known to be taken
        self._remap: dict[int, int] = {}  # RECORDIDs another recording had taken (see above)
        self._spooling_since: float | None = None
        self._errors = 0
        self._replayer: _Replayer | None = None
        self._reserve = IdReserve()  # RECORDIDs for the spool to give (spoolids)
        self.backend = inner.backend

    # --- lifecycle -----------------------------------------------------------------------------

    def open(self) -> None:
        entries = self._spool.open()
        try:
            self._inner.open()
            if self._spool.owned:
                self._highest = self._inner.max_recording_id()
                self._reserve.top_up(self._inner)
        except BaseException:
            self._inner.close()
            self._spool.close()
            raise
        if not self._spool.owned:
            logger.info("store: the spool %s belongs to another process (recorderd); "
                        "this one neither replays nor spools", self._spool.path)
            return
        self._pending.extend(entries)
        for entry in entries:
            self._next_seq = max(self._next_seq, entry.seq + 1)
            if entry.op == OP_INSERT:
                self._highest = max(self._highest, int(entry.args["ident"]))
        if entries:
            logger.warning("store: %d change(s) from an earlier run wait in the spool %s; "
                           "writing them into the database", len(entries), self._spool.path)
            self._spooling_since = time.monotonic()
            self.replay()
        self._replayer = _Replayer(self, self._retry)
        self._replayer.start()

    def close(self) -> None:
        if self._replayer is not None:
            self._replayer.stop()
            if not self._replayer.join(JOIN_TIMEOUT):
                logger.error("store: the spool's replay did not stop within %.0f s",
                             JOIN_TIMEOUT)
            self._replayer = None
        if self._pending and self._spool.owned:
            self.replay()  # a last chance, so a clean stop leaves the database complete
            if self._spool.held:
                logger.warning("store: %d change(s) could be written neither into the database "
                               "nor into the spool %s (no room): the next start completes "
                               "their recordings from the crash journal", self._spool.held,
                               self._spool.path)
            elif self._pending:
                logger.warning("store: %d change(s) stay in the spool %s for the next start",
                               len(self._pending), self._spool.path)
        self._spool.close()
        self._inner.close()

    # --- the spool -----------------------------------------------------------------------------

    @property
    def spooled(self) -> int:
        if self._spool.owned:
            return len(self._pending)
        return 0

    @property
    def held(self) -> int:
        """Changes accepted but kept in memory only: neither the database nor the spool file
        had room for them (0: every accepted change is on disk)."""
        if self._spool.owned:
            return self._spool.held
        return 0

    def top_up_reserve(self) -> None:
        """Reserve RECORDIDs for the next outage while the database is up (the replayer's)."""
        self._reserve.try_top_up(self._inner)

    @property
    def spool_path(self) -> Path:
        return self._spool.path

    def replay(self, limit: int | None = None) -> bool:
        """Write the waiting changes into the database, in order (at most ``limit`` of them);
        True once none wait.

        Stops at the first change the database refuses, leaving it and those after it; changes
        held in memory are then written into the spool file, if it has room now.
        """
        if self._replay(limit):
            return True
        with self._lock:
            if self._spool.held:
                self._spool.write_held()
        return False

    def _replay(self, limit: int | None) -> bool:
        with self._replay_lock:
            done = 0
            while True:
                with self._lock:
                    if not self._pending:
                        return True
                    if limit is not None and done >= limit:
                        return False
                    entry = self._pending[0]
                try:
                    self._apply(entry)
                except (KeyError, TypeError, ValueError) as exc:
                    # Not a change this recorder wrote: someone has to look at the file.
                    self._errors += 1
                    logger.error("store: spool %s: change %d (%s) cannot be replayed (%r); "
                                 "it and the %d after it wait", self._spool.path, entry.seq,
                                 entry.op, exc, len(self._pending) - 1)
                    return False
                except StoreError as exc:
                    logger.debug("store: the database still refuses changes: %s", exc)
                    if done:
                        logger.info("store: %d change(s) replayed, %d still wait in the spool",
                                    done, len(self._pending))
                    return False
                done += 1
                with self._lock:
                    self._pending.popleft()
                    if not self._pending:
                        # Under the lock that writes take: no change can slip in between the
                        # last one replayed and the spool emptied.
                        try:
                            self._spool.clear()
                        except OSError:
                            logger.exception("store: cannot empty the spool %s; its changes "
                                             "will be replayed again (harmlessly)",
                                             self._spool.path)
                        self._remap.clear()
                        since = self._spooling_since
                        self._spooling_since = None
                        away = f" after {time.monotonic() - since:.1f} s" if since else ""
                        logger.info("store: the database is back%s: %d change(s) replayed "
                                    "from the spool", away, done)
                        return True

    def _apply(self, entry: SpoolEntry) -> None:
        args = entry.args
        if entry.op == OP_INSERT:
            self._replay_insert(int(args["ident"]), _new_recording(args["rec"]))
        elif entry.op == OP_FINISH:
            ident = int(args["ident"])
            done = dict(args["done"])  # JSON has lists where the row has tuples
            done["blackouts"] = tuple((float(a), float(b)) for a, b in done.get("blackouts", ()))
            self._inner.finish_recording(self._remap.get(ident, ident),
                                         FinishedRecording(**done))
        elif entry.op == OP_UPDATE:
            ident = int(args["ident"])
            update = args["update"]
            if not self._inner.update_recording(self._remap.get(ident, ident), RecordingUpdate(
                    meta=dict(update["meta"]), keep_days=update["keep_days"],
                    archive_action=update["archive_action"])):
                logger.warning("store: spooled update of RECORDID %d: no such recording", ident)
        elif entry.op == OP_REPLACE_FILE:
            found = self._inner.replace_recording_file(
                args["old"], args["new"], args["media_format"], int(args["audio_size"]),
                args["audio_hash"], file_key=str(args.get("file_key", "")))
            if not found:
                logger.warning("store: spooled file change %s -> %s: no recording has either",
                               args["old"], args["new"])

    def _replay_insert(self, ident: int, rec: NewRecording) -> None:
        existing = self._inner.get_recording(ident)
        if existing is None:
            self._inner.insert_recording(rec, ident)
            return
        if _same_recording(existing, rec):
            return  # already in: a replay that a crash cut short
        # Only something writing the database behind the recorder's back gets here.
        same_file = self._inner.find_recording("filename", rec.filename) if rec.filename else None
        if same_file is not None and _same_recording(same_file, rec):
            stored = same_file.ident
        else:
            stored = self._inner.insert_recording(rec)
        self._remap[ident] = stored
        logger.error("store: RECORDID %d was taken by another recording while the database was "
                     "away; %s (%s) is stored as RECORDID %d", ident, rec.filename,
                     rec.device_id, stored)

    def _refuse(self) -> StoreError:
        self._errors += 1
        if self._spool.owned:
            waiting = f"{len(self._pending)} change(s) waiting in the spool"
        else:
            waiting = f"changes waiting in the running recorder's spool {self._spool.path}"
        return StoreError(f"database unavailable: {waiting}")

    def _check_current(self) -> None:
        """StoreError while the database lacks changes that wait in the spool."""
        waiting = bool(self._pending) if self._spool.owned else not self._spool.is_empty()
        if waiting:
            raise self._refuse()

    def _append(self, op: str, args: dict[str, Any], *, may_hold: bool = False) -> None:
        """Spool a change (under ``_lock``); ``may_hold``: in memory if the file has no room."""
        entry = SpoolEntry(self._next_seq, op, args)
        try:
            self._spool.append(entry, may_hold=may_hold)
        except StoreError:
            self._errors += 1
            raise
        self._next_seq += 1
        self._pending.append(entry)

    def _start_spooling(self, what: str, exc: StoreError) -> None:
        self._spooling_since = time.monotonic()
        logger.warning("store: the database cannot be written (%s): recording goes on and "
                       "its rows wait in the spool %s, retried every %g s", exc,
                       self._spool.path, self._retry)
        logger.debug("store: first spooled change: %s", what)

    def _write(self, what: str, op: str, args: dict[str, Any], direct: Callable[[], _T],
               spooled: _T, *, may_hold: bool = False) -> _T:
        """``direct()`` when nothing waits and the database takes it; else spool the change
        (``may_hold``: in memory if the spool file has no room) and return ``spooled``."""
        if not self._spool.owned:
            self._check_current()
            return direct()
        with self._lock:
            if not self._pending:
                try:
                    return direct()
                except StoreError as exc:
                    self._start_spooling(what, exc)
            self._append(op, args, may_hold=may_hold)
            return spooled

    # --- the recording writes that are spooled -------------------------------------------------

    def insert_recording(self, rec: NewRecording, ident: int | None = None) -> int:
        if not self._spool.owned:
            self._check_current()
            return self._inner.insert_recording(rec, ident)
        with self._lock:
            if not self._pending:
                try:
                    stored = self._inner.insert_recording(rec, ident)
                    self._highest = max(self._highest, stored)
                    return stored
                except StoreError as exc:
                    self._start_spooling(f"insert recording {rec.filename}", exc)
            return self._spool_insert(rec, ident)

    @property
    def batches_atomically(self) -> bool:
        return self._inner.batches_atomically

    def insert_recordings(self, recs: Sequence[NewRecording]) -> list[int]:
        if not self._spool.owned:
            self._check_current()
            return self._inner.insert_recordings(recs)
        with self._lock:
            if not self._pending:
                try:
                    stored = self._inner.insert_recordings(recs)  # all or none
                    self._highest = max(self._highest, *stored)
                    return stored
                except StoreError as exc:
                    self._start_spooling(f"insert {len(recs)} recordings", exc)
            return [self._spool_insert(rec, None) for rec in recs]

    def _spool_insert(self, rec: NewRecording, ident: int | None) -> int:
        """Under ``_lock``: the row in the spool, under ``ident`` or the next RECORDID."""
        if ident is not None and any(e.op == OP_INSERT and int(e.args["ident"]) == ident
                                     for e in self._pending):
            return ident  # recovery storing a row the spool already holds: once is enough
        given = ident if ident is not None else self._reserve.take(self._highest)
        # May be held: the crash journal has the row (recovery inserts it under ``given``).
        self._append(OP_INSERT, {"ident": given, "rec": _plain(rec)}, may_hold=True)
        self._highest = max(self._highest, given)
        return given

    def finish_recording(self, ident: int, done: FinishedRecording) -> None:
        # May be held: the completion worker keeps the journal entry until it is on disk.
        self._write(f"finish recording {ident}", OP_FINISH,
                    {"ident": ident, "done": _plain(done)},
                    lambda: self._inner.finish_recording(ident, done), None, may_hold=True)

    def finish_recordings(self, done: Sequence[tuple[int, FinishedRecording]]) -> None:
        if not self._spool.owned:
            self._check_current()
            self._inner.finish_recordings(done)
            return
        with self._lock:
            if not self._pending:
                try:
                    self._inner.finish_recordings(done)  # all or none
                    return
                except StoreError as exc:
                    self._start_spooling(f"finish {len(done)} recordings", exc)
            for ident, finished in done:
                self._append(OP_FINISH, {"ident": ident, "done": _plain(finished)},
                             may_hold=True)

    def update_recording(self, ident: int, update: RecordingUpdate) -> bool:
        # Spooled, the row cannot be looked at: any RECORDID handed out counts as existing.
        return self._write(f"update recording {ident}", OP_UPDATE,
                           {"ident": ident, "update": _plain(update)},
                           lambda: self._inner.update_recording(ident, update),
                           0 < ident <= self._highest)

    def replace_recording_file(self, old: str, new: str, media_format: str, audio_size: int,
                               audio_hash: str, *, file_key: str = "") -> bool:
        return self._write(f"replace the file {old}", OP_REPLACE_FILE,
                           {"old": old, "new": new, "media_format": media_format,
                            "audio_size": audio_size, "audio_hash": audio_hash,
                            "file_key": file_key},
                           lambda: self._inner.replace_recording_file(
                               old, new, media_format, audio_size, audio_hash,
                               file_key=file_key), True)

    # --- reads of recordings, and writes that must wait for the spool (spoolreads) ----------

    def max_recording_id(self) -> int:
        if self._spool.owned and self._pending:
            return self._highest  # it counts the RECORDIDs the spool has handed out
        return max(self._highest, self._current(self._inner.max_recording_id))


    def start_chat(self, chat: ChatStart) -> tuple[int, int | None]:
        # It takes a RECORDID: not while the spool may have handed out the next ones.
        with self._lock:
            found = self._current(lambda: self._inner.start_chat(chat))
            self._highest = max(self._highest, found[0])
        return found


    # --- diagnostics ---------------------------------------------------------------------------

    @property
    def location(self) -> str:
        return self._inner.location

    @property
    def errors(self) -> int:
        return self._inner.errors + self._errors


class _Replayer(PeriodicWorker):
    """Writes the spool into the database every ``storage.spool_retry_seconds`` while it holds
    changes."""

    def __init__(self, store: SpoolingStore, interval: float) -> None:
        super().__init__("store-spool", interval)
        self._store = store

    def turn(self) -> None:
        if self._store.spooled:
            self._store.replay()
        else:
            self._store.top_up_reserve()


def _new_recording(doc: Mapping[str, Any]) -> NewRecording:
    return NewRecording(**{**doc, "meta": dict(doc["meta"])})


__all__ = ["SpoolEntry", "SpoolFile", "SpoolingStore"]
