"""The database-outage spool's file: the changes waiting for the database, one JSON line each.

``SpoolFile`` owns what the spool keeps on disk and the rules for reading it back; the file's
mechanics (appending, syncing, cutting) are ``recorder.durable.JsonLinesFile``'s, and what the
changes do to the database is ``recorder.store.spool``'s.

- One process at a time owns the file: an exclusive ``flock``, taken at open without waiting.
  ``owned`` says whether this one does; only the owner appends, cuts or replays.
- Every change is fsynced before its call returns; a change that could not be written whole is
  taken back, so nothing replays that its caller was told had failed.
- A change the file cannot take (its disk is full, like the database's) may be *held*: kept in
  memory, in order, behind any held before, and written into the file by a later append or
  ``write_held`` once there is room. Only changes whose recordings the crash journal still
  covers are held (a row started or finished; ``recorder.store.spool`` decides): a crash loses
  the held ones, and start-up recovery completes those rows from the journal instead.
- At open, a last line without its line end that cannot be read is a write a crash cut short
  before its call returned: it is dropped (and cut off, by the owner). Any other line that cannot
  be read stops the start with a ``StoreError``: it holds recording rows not yet in the
  database, and the file is left as it is for whoever repairs it.
"""

from __future__ import annotations

import fcntl
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recorder.durable import JsonLinesFile
from recorder.errors import StoreError

logger = logging.getLogger(__name__)

OP_INSERT = "insert"
OP_FINISH = "finish"
OP_UPDATE = "update"
OP_REPLACE_FILE = "replace_file"
_OPS = frozenset({OP_INSERT, OP_FINISH, OP_UPDATE, OP_REPLACE_FILE})


@dataclass(frozen=True)
class SpoolEntry:
    """One change waiting for the database: a ``Store`` write and its arguments (JSON-able)."""

    seq: int
    op: str
    args: Mapping[str, Any]

    def doc(self) -> dict[str, Any]:
        """The entry as its line in the file holds it."""
        return {"seq": self.seq, "op": self.op, **self.args}


class SpoolFile:
    """The spool's durable part: JSON lines appended and fsynced, read back at open.

    Owned by one process at a time (an exclusive ``flock``); ``owned`` says whether this one.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.owned = False
        self._file = JsonLinesFile(path, ascii_only=False)
        # Changes the file could not take, oldest first; always after every change in the file.
        self._held: list[SpoolEntry] = []

    @property
    def held(self) -> int:
        """Changes kept in memory only, waiting for room in the file (0: all are on disk)."""
        return len(self._held)

    def open(self) -> list[SpoolEntry]:
        """Open (creating) the file, try to own it; the entries it holds, in order."""
        try:
            self._file.open()
            try:
                fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                self.owned = True
            except BlockingIOError:
                self.owned = False
            data = self._file.read()
        except OSError as exc:
            self.close()
            raise StoreError(f"cannot open the spool {self.path}: {exc.strerror or exc}"
                             ) from exc
        try:
            return self._parse(data)
        except BaseException:
            self.close()
            raise

    def _parse(self, data: bytes) -> list[SpoolEntry]:
        entries: list[SpoolEntry] = []
        for line in JsonLinesFile.lines(data):
            try:
                doc = json.loads(line.text)
                seq, op = int(doc.pop("seq")), str(doc.pop("op"))
                if op not in _OPS:
                    raise ValueError(f"unknown change {op!r}")
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                if line.last and not line.ended:
                    # A write cut short by a crash before its call returned, so nobody was
                    # told it was kept.
                    logger.warning("spool %s: dropping an unfinished last line", self.path)
                    if self.owned:
                        self._file.truncate(data.rfind(b"\n") + 1)
                    break
                raise StoreError(f"spool {self.path} line {line.number} cannot be read ({exc}); "
                                 "it holds recording rows not yet in the database: "
                                 "repair or move it aside, then start again") from exc
            entries.append(SpoolEntry(seq, op, doc))
        return entries

    def append(self, entry: SpoolEntry, *, may_hold: bool = False) -> bool:
        """Write ``entry`` and fsync it, behind any held changes; True once it is on disk.

        If the file cannot take it and ``may_hold``, the entry is held (False); else StoreError,
        leaving the file as it was and keeping nothing.
        """
        assert self.owned
        if self._held and not self.write_held():
            if not may_hold:
                raise StoreError(f"cannot write the spool {self.path}: {len(self._held)} "
                                 "change(s) before this one wait for room in it")
            self._held.append(entry)
            return False
        try:
            self._write(entry)
            return True
        except StoreError as exc:
            if not may_hold:
                raise
            logger.warning("%s; the change waits in memory, and the changes after it, until "
                           "there is room (the crash journal keeps their recordings)", exc)
            self._held.append(entry)
            return False

    def write_held(self) -> bool:
        """Write the held changes into the file, oldest first, while it takes them; True once
        none is held."""
        while self._held:
            try:
                self._write(self._held[0])
            except StoreError:
                return False
            self._held.pop(0)
            if not self._held:
                logger.info("spool %s: the changes held in memory are on disk now", self.path)
        return True

    def _write(self, entry: SpoolEntry) -> None:
        """Write ``entry`` and fsync it; StoreError, leaving the file as it was, if it fails."""
        before = self._file.size
        try:
            self._file.append(entry.doc())
            self._file.sync()
        except OSError as exc:
            # A change half-written would replay although its caller was told it failed.
            try:
                self._file.truncate(before)
            except OSError:
                logger.exception("spool %s: cannot take back a failed write", self.path)
            raise StoreError(f"cannot write the spool {self.path}: {exc.strerror or exc}"
                             ) from exc

    def clear(self) -> None:
        """Every entry is in the database: empty the file, durably (and forget the held)."""
        self._held.clear()
        self._file.truncate(0)

    def is_empty(self) -> bool:
        """Whether the file holds nothing (what a process not owning it can tell)."""
        try:
            return self.path.stat().st_size == 0
        except FileNotFoundError:
            return True

    def close(self) -> None:
        self._file.close()  # drops the flock
        self.owned = False


__all__ = ["OP_FINISH", "OP_INSERT", "OP_REPLACE_FILE", "OP_UPDATE", "SpoolEntry", "SpoolFile"]
