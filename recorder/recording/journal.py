"""The journal of open recordings: what a crash must not make the recorder forget.

Every recording is entered here, and the entry is on disk (fsynced), before its first sample reaches
its file and so before the request that started it is answered. It is ended here once its row is
complete in the store (or in the store's spool). After a crash, the entries left open are exactly
the recordings to repair and complete (recorder/recording/recovery.py), whether or not their row
ever reached the database: an entry carries everything the row needs.

The file is JSON lines, appended with one ``write`` each:

- ``{"op": "open", "key": 7, ...}`` a recording started (see ``JournalEntry``);
- ``{"op": "end", "key": 7}`` its row is complete;
- ``{"op": "blackouts", "key": 7, "ranges": [[8000, 20000], [40000, null]]}`` its blackouts
  as they are now, in file frames (null: still running), for recovery to keep with the row;
- ``{"op": "announce", "type": ..., "fields": {...}}`` a recording ``recorderctl recover``
  completed offline, whose RECORDINGSTOPPED the next start of the service still has to send;
- ``{"op": "audit-head", "entry_id": 12, "entry_hash": "...", "through": 40}`` the audit
  trail's newest entry (one of the two copies of it kept outside the database,
  docs/storage.md) and the last queued entry (``through``) committed with it; a compacted file
  keeps the last one;
- ``{"op": "audit", "seq": 41, "entry": {...}}`` an audit entry queued for the trail's writer
  (``recorder.store.auditqueue``), written (not fsynced) before the action it audits is
  answered, so a killed process loses none: the next start writes those after ``through``
  that the table does not hold yet. A compacted file keeps the ones not yet committed.

A line cut short by the crash is ignored: its fsync never returned, so nothing was acknowledged
on it. The file's mechanics (appending, reading back, compacting atomically) are
``recorder.durable.JsonLinesFile``'s; what the lines mean is this module's. End lines are not
fsynced (a lost one makes recovery look at a row that is already
complete, which it leaves alone). Concurrent starts share one fsync (group commit), so a burst
of CALLSTARTs costs a few syncs, not one each.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from recorder.durable import JsonLinesFile
from recorder.store.records import NewRecording

logger = logging.getLogger(__name__)

JOURNAL_NAME = "open-recordings.journal"
# The file is rewritten with only the open entries once it grows past this (at a few hundred
# bytes per recording, after some thousands of calls).
COMPACT_BYTES = 1 << 20


_ROW_FIELDS = tuple(f.name for f in fields(NewRecording))


@dataclass(frozen=True)
class JournalEntry:
    """One open recording: its file, how it is encoded, and its row."""

    key: int
    path: str
    fmt: str  # the format written during the call (wav, mp3, vox...)
    sample_rate: int
    channels: int
    row: NewRecording
    record_id: int | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    # Its blackouts as file frames (start, end; end None: still running), as last noted.
    blackouts: tuple[tuple[int, int | None], ...] = ()

    def to_json(self) -> dict[str, Any]:
        # By hand, not dataclasses.asdict (which deep-copies every value): this runs in every
        # call start, before the answer.
        row = self.row
        return {"key": self.key, "path": self.path, "fmt": self.fmt,
                "sample_rate": self.sample_rate, "channels": self.channels,
                "row": {**{name: getattr(row, name) for name in _ROW_FIELDS},
                        "meta": dict(row.meta)},
                "record_id": self.record_id, "options": dict(self.options),
                **({"blackouts": [list(r) for r in self.blackouts]} if self.blackouts else {})}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> JournalEntry:
        row = dict(doc["row"])
        row["meta"] = {str(k): str(v) for k, v in dict(row.get("meta") or {}).items()}
        return cls(key=int(doc["key"]), path=str(doc["path"]), fmt=str(doc["fmt"]),
                   sample_rate=int(doc["sample_rate"]), channels=int(doc["channels"]),
                   row=NewRecording(**row),
                   record_id=None if doc.get("record_id") is None else int(doc["record_id"]),
                   options=dict(doc.get("options") or {}),
                   blackouts=_ranges(doc.get("blackouts") or ()))


def _ranges(doc: Any) -> tuple[tuple[int, int | None], ...]:
    return tuple((int(a), None if b is None else int(b)) for a, b in doc)


@dataclass
class JournalContents:
    """What a journal file holds: recordings still open, and events still to announce."""

    open: dict[int, JournalEntry] = field(default_factory=dict)
    announce: list[tuple[str, dict[str, str]]] = field(default_factory=list)  # (type, fields)
    audit_head: tuple[int, str] | None = None  # (entry_id, entry_hash): the newest recorded
    # Audit entries queued and not known to be committed (seq -> the entry's fields), and the
    # last queued entry known to be (``through`` of the newest head).
    audit_pending: dict[int, dict[str, Any]] = field(default_factory=dict)
    audit_through: int = 0

    @property
    def audit_seq(self) -> int:
        """The highest number a queued audit entry was given."""
        return max([self.audit_through, *self.audit_pending])


def read_journal(path: Path) -> JournalContents:
    """The open entries and pending announcements in ``path`` (empty if there is none)."""
    contents = JournalContents()
    for line in JsonLinesFile.lines(JsonLinesFile.read_path(path)):
        try:
            doc = json.loads(line.text)
            op = doc["op"]
            if op == "open":
                entry = JournalEntry.from_json(doc)
                contents.open[entry.key] = entry
            elif op == "end":
                contents.open.pop(int(doc["key"]), None)
            elif op == "blackouts":
                key = int(doc["key"])
                if key in contents.open:
                    contents.open[key] = replace(contents.open[key],
                                                 blackouts=_ranges(doc["ranges"]))
            elif op == "audit-head":
                if int(doc["entry_id"]) > 0:
                    contents.audit_head = (int(doc["entry_id"]), str(doc["entry_hash"]))
                contents.audit_through = max(contents.audit_through, int(doc.get("through", 0)))
            elif op == "audit":
                contents.audit_pending[int(doc["seq"])] = dict(doc["entry"])
            elif op == "announce":
                contents.announce.append((str(doc["type"]), {
                    str(k): str(v) for k, v in doc["fields"].items()}))
        except (ValueError, KeyError, TypeError) as exc:
            # The last line may be cut short by the crash; any other bad line is damage,
            # worth a warning, but the lines around it still count.
            if not line.last or line.text.endswith(b"}"):
                logger.warning("%s line %d unreadable (%s); skipped", path, line.number, exc)
    contents.audit_pending = {seq: entry for seq, entry in contents.audit_pending.items()
                              if seq > contents.audit_through}
    return contents


class Journal:
    """The open-recordings journal in ``directory``; open with ``open()`` (which reads what a
    previous run left), then ``begin``/``end`` from any thread."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / JOURNAL_NAME
        self._file = JsonLinesFile(self.path)
        self._lock = threading.Lock()  # the file and the counters below
        self._sync_lock = threading.Lock()  # one fsync at a time; later callers share it
        self._next_key = 1
        self._open: dict[int, JournalEntry] = {}
        self._written = 0  # lines appended
        self._synced = 0  # lines known to be on disk
        self.syncs = 0  # fsyncs done (group commit makes this less than the lines)
        self._audit_head: tuple[int, str] | None = None
        self._audit_seq = 0  # the last number given to a queued audit entry
        self._audit_through = 0  # the last queued audit entry committed
        self._audit_pending: dict[int, dict[str, Any]] = {}  # queued, not committed

    def open(self) -> JournalContents:
        """Open the file for appending; returns what a previous run left in it (to recover:
        then ``rewrite`` keeps what is still to do)."""
        contents = read_journal(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file.open()
        with self._lock:
            self._open = dict(contents.open)
            self._audit_head = contents.audit_head
            self._audit_through = contents.audit_through
            self._audit_pending = dict(contents.audit_pending)
            self._audit_seq = contents.audit_seq
            self._next_key = max(self._open, default=0) + 1
        return contents

    @property
    def open_count(self) -> int:
        return len(self._open)

    def begin(self, *, path: Path, fmt: str, sample_rate: int, channels: int, row: NewRecording,
              record_id: int | None, options: Mapping[str, Any] | None = None) -> int:
        """Enter an open recording and wait until the entry is on disk; returns its key.

        Raises OSError if it cannot be written: the caller must then not record on the promise
        of a journal it does not have (it logs and records anyway, see the scheduler)."""
        with self._lock:
            key = self._next_key
            self._next_key += 1
            entry = JournalEntry(key=key, path=str(path), fmt=fmt, sample_rate=sample_rate,
                                 channels=channels, row=row, record_id=record_id,
                                 options=dict(options or {}))
            self._append({"op": "open", **entry.to_json()})
            self._open[key] = entry
            ticket = self._written
        self._sync_to(ticket)
        return key

    def end(self, key: int) -> None:
        """The recording's row is complete: recovery no longer needs it."""
        with self._lock:
            if self._open.pop(key, None) is None:
                return
            self._append({"op": "end", "key": key})
            compact = self._file.size > COMPACT_BYTES
        if compact:
            self.rewrite()

    def note_blackouts(self, key: int, ranges: list[tuple[int, int | None]]) -> None:
        """An open recording's blackouts changed (file frames, ``in_file``'s): kept for
        recovery, which stores them with the row it completes. Waits until it is on disk."""
        with self._lock:
            entry = self._open.get(key)
            if entry is None:
                return
            self._open[key] = replace(entry, blackouts=tuple(ranges))
            self._append({"op": "blackouts", "key": key, "ranges": [list(r) for r in ranges]})
            ticket = self._written
        self._sync_to(ticket)

    def forget(self, key: int) -> None:
        """Drop an entry without a line in the file (recovery completed it; ``rewrite`` next)."""
        with self._lock:
            self._open.pop(key, None)

    def announce(self, event_type: str, fields: Mapping[str, str]) -> None:
        """Keep an event for the next start of the service to send (offline recovery)."""
        with self._lock:
            self._append({"op": "announce", "type": event_type, "fields": dict(fields)})
            ticket = self._written
        self._sync_to(ticket)

    def note_audit_pending(self, entry: Mapping[str, Any]) -> int:
        """An audit entry queued for the trail's writer: handed to the OS (a killed process
        keeps it; the next fsync of this file, at the latest the writer's head line, makes it
        durable); its number."""
        with self._lock:
            self._audit_seq += 1
            seq = self._audit_seq
            self._append({"op": "audit", "seq": seq, "entry": dict(entry)})
            self._audit_pending[seq] = dict(entry)
            return seq

    def note_audit_head(self, entry_id: int, entry_hash: str, through: int | None = None
                        ) -> None:
        """The audit trail's newest entry is now ``entry_id``, and the queued entries up to
        ``through`` are committed; on disk before it returns."""
        with self._lock:
            newer_head = self._audit_head is None or self._audit_head[0] < entry_id
            newer_through = through is not None and through > self._audit_through
            if not newer_head and not newer_through:
                return
            if newer_head:
                self._audit_head = (entry_id, entry_hash)
            if newer_through:
                assert through is not None
                self._audit_through = through
                for seq in [seq for seq in self._audit_pending if seq <= through]:
                    del self._audit_pending[seq]
            self._append(self._head_line())
            ticket = self._written
            # A portal's searches add a line each: compacted here too, not only as calls end.
            compact = self._file.size > COMPACT_BYTES
        self._sync_to(ticket)
        if compact:
            self.rewrite()

    def _head_line(self) -> dict[str, Any]:
        """Under ``_lock``: the audit-head line as things are now."""
        head_id, head_hash = self._audit_head or (0, "")
        doc: dict[str, Any] = {"op": "audit-head", "entry_id": head_id, "entry_hash": head_hash}
        if self._audit_through:
            doc["through"] = self._audit_through
        return doc

    def rewrite(self) -> None:
        """Replace the file with the open entries only, atomically (a crash leaves the old
        file or the new one): it drops ended entries and announcements already made."""
        # The sync lock first, as in _sync_to: no fsync may be under way on the old file.
        with self._sync_lock, self._lock:
            docs: list[dict[str, Any]] = [{"op": "open", **e.to_json()}
                                          for e in self._open.values()]
            if self._audit_head is not None or self._audit_through:
                docs.append(self._head_line())
            docs += [{"op": "audit", "seq": seq, "entry": entry}
                     for seq, entry in sorted(self._audit_pending.items())]
            self._file.replace(docs)
            self._synced = self._written

    def close(self) -> None:
        with self._lock:
            if self._file.is_open:
                with contextlib.suppress(OSError):
                    self._file.sync()
                self._file.close()

    def _append(self, doc: Mapping[str, Any]) -> None:
        """Under ``_lock``."""
        self._file.append(doc)
        self._written += 1

    # --- group commit ----------------------------------------------------------------------

    def _sync_to(self, ticket: int) -> None:
        """Return once line ``ticket`` is on disk; one fsync covers every line written
        before it started, so callers arriving meanwhile wait for it instead of syncing."""
        with self._sync_lock:
            if self._synced >= ticket:
                return
            with self._lock:
                upto = self._written
            # Outside _lock, so appends go on meanwhile; the file cannot be replaced under
            # it (rewrite takes _sync_lock first).
            self._file.sync()
            self._synced = max(self._synced, upto)
            self.syncs += 1


__all__ = ["COMPACT_BYTES", "JOURNAL_NAME", "Journal", "JournalContents", "JournalEntry",
           "read_journal"]
