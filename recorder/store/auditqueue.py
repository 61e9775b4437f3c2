"""The audit trail's writer in recorderd: requests hand it their entries and one thread
(``audit-writer``) appends them in batches, one transaction and one head (file and crash
journal) per batch, so a page never waits behind the chain's fsyncs (docs/storage.md, "The
audit trail: a hash chain"; docs/security.md, "What is written down").

- An entry keeps the time, user and address of its request (``AuditEntry`` is made there);
  only its ``entry_id`` and hashes are given at commit, in the order entries were queued, so
  the chain stays one line without gaps.
- Before ``enqueue_audit`` returns, the entry is written to the crash journal (handed to the
  OS, not fsynced: a killed process keeps it). The batch's head line in the journal names the
  last queued entry committed (``through``); the next start writes those after it that the
  table does not hold yet (``replay_pending``).
- ``append_audit`` queues the entry and waits for its commit: what hands out audio, sends
  mail, deletes or changes something waits so, and is on disk before it acts. Many of them
  at once share one commit. ``enqueue_audit`` does not wait (a search): the writer then
  lingers up to ``LINGER_SECONDS`` for more entries to share the commit, unless someone waits.
- ``stop`` writes every entry still queued before the thread ends (a clean stop loses none);
  one the database refuses stays in the journal for the next start.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from recorder.errors import StoreError
from recorder.store.audit import AuditEntry, AuditQuery, AuditStore
from recorder.worker import Worker

logger = logging.getLogger(__name__)

MAX_BATCH = 256  # entries in one transaction (a burst waits for the next)
RETRY_SECONDS = 1.0  # after the database refused a batch
WAIT_SECONDS = 10.0
# How long entries nobody waits for (a search's) may wait for others to share their commit.
LINGER_SECONDS = 0.05  # the longest a caller waits for its commit before going on without it


class BatchTrail(Protocol):
    """The trail the writer appends to (``SqliteAudit``)."""

    def append_batch(self, entries: Sequence[AuditEntry]) -> list[tuple[int, str]]: ...

    def audit_after(self, entry_id: int) -> list[AuditEntry]: ...


class PendingLog(Protocol):
    """Where queued entries wait, durable against a killed process (the crash journal)."""

    def note_audit_pending(self, entry: Mapping[str, Any]) -> int: ...

    def note_audit_head(self, entry_id: int, entry_hash: str,
                        through: int | None = None) -> None: ...


def entry_fields(entry: AuditEntry) -> dict[str, Any]:
    """What the journal keeps of a queued entry: everything but the id the chain gives it."""
    return {"time": entry.time, "user_id": entry.user_id, "username": entry.username,
            "action": entry.action, "target": entry.target, "detail": entry.detail,
            "address": entry.address}


def entry_from(fields: Mapping[str, Any]) -> AuditEntry:
    user_id = fields.get("user_id")
    return AuditEntry(time=float(fields["time"]), user_id=None if user_id is None
                      else int(user_id), username=str(fields["username"]),
                      action=str(fields["action"]), target=str(fields.get("target", "")),
                      detail=str(fields.get("detail", "")),
                      address=str(fields.get("address", "")))


def _key(entry: AuditEntry) -> tuple[Any, ...]:
    return (float(entry.time), entry.user_id, entry.username, entry.action, entry.target,
            entry.detail, entry.address)


def unwritten(pending: Sequence[AuditEntry], written: Sequence[AuditEntry]
              ) -> list[AuditEntry]:
    """The ``pending`` entries (queued, in order) that ``written`` (the table's entries after
    the journal's last head) does not hold: a crash between a batch's commit and its head line
    leaves those of that batch in both. Compared by every field the request gave them (the
    time to the microsecond among them), each written entry matching one queued entry."""
    left: dict[tuple[Any, ...], int] = {}
    for entry in written:
        left[_key(entry)] = left.get(_key(entry), 0) + 1
    missing = []
    for entry in pending:
        key = _key(entry)
        if left.get(key, 0) > 0:
            left[key] -= 1
        else:
            missing.append(entry)
    return missing


def replay_pending(trail: BatchTrail, log: PendingLog, pending: Mapping[int, Mapping[str, Any]],
                   head: tuple[int, str] | None) -> int:
    """At start, before anything is audited: append the entries a killed process queued
    (``pending``, what the journal holds after its last ``through``) that the table lacks;
    how many. ``head`` is the journal's newest head: entries after it may be some of them."""
    if not pending:
        return 0
    queued = [entry_from(pending[seq]) for seq in sorted(pending)]
    missing = unwritten(queued, trail.audit_after(head[0] if head else 0))
    written = trail.append_batch(missing) if missing else []
    entry_id, entry_hash = written[-1] if written else head or (0, "")
    log.note_audit_head(entry_id, entry_hash, through=max(pending))
    if missing:
        logger.warning("audit: %d entr%s queued before the last stop (a crash) written now",
                       len(missing), "y" if len(missing) == 1 else "ies")
    return len(missing)


class AuditQueue(Worker, AuditStore):
    """The trail as recorderd's requests see it; see the module docstring. Before ``start``
    and after ``stop`` a caller writes the queue itself."""

    def __init__(self, trail: BatchTrail, reader: AuditStore, log: PendingLog | None = None,
                 *, max_batch: int = MAX_BATCH, linger: float = LINGER_SECONDS) -> None:
        super().__init__("audit-writer")
        self._trail = trail
        self._reader = reader  # list_audit, head sinks
        self._log = log
        self._max_batch = max_batch
        self._linger = linger
        self._cond = threading.Condition()
        self._write_lock = threading.Lock()  # one batch at a time, in queue order
        self._queue: list[tuple[int, AuditEntry, int | None]] = []  # (ticket, entry, seq)
        self._tickets = 0
        self._committed = 0  # every ticket up to this one is in the table
        self._ids: dict[int, int] = {}  # ticket -> entry_id, for the callers who wait
        self._waited: set[int] = set()
        self._error: BaseException | None = None  # of the last batch, if it failed
        self._lingering = False  # the writer waits for more entries to share a commit
        self.batches = 0  # committed (the tests and the benchmark count them)

    # --- the requests' side --------------------------------------------------------------

    def enqueue_audit(self, entry: AuditEntry) -> None:
        self._enqueue(entry, wait=False)
        if not self.alive:
            self._drain()

    def append_audit(self, entry: AuditEntry) -> int:
        """Queue ``entry`` and wait for its commit (shared with the others queued meanwhile);
        its id. StoreError if the database refused it: it stays queued (and journaled) and is
        written when the database takes it, or at the next start."""
        return self._wait(self._enqueue(entry, wait=True))

    def flush(self, timeout: float = WAIT_SECONDS) -> bool:
        """Wait until everything queued so far is committed; False if it was not in time."""
        with self._cond:
            ticket = self._tickets
        try:
            self._wait(ticket, timeout)
        except StoreError:
            return False
        return True

    def list_audit(self, query: AuditQuery) -> list[AuditEntry]:
        # What a user just did is on the audit page they open next.
        self.flush()
        return self._reader.list_audit(query)

    def add_head_sink(self, sink: Callable[[int, str], None]) -> None:
        self._reader.add_head_sink(sink)

    def requeue(self, pending: Mapping[int, Mapping[str, Any]]) -> None:
        """Queue entries the journal already holds (numbered ``seq``), before any new one."""
        with self._cond:
            for seq in sorted(pending):
                self._tickets += 1
                self._queue.append((self._tickets, entry_from(pending[seq]), seq))

    @property
    def waiting(self) -> int:
        with self._cond:
            return len(self._queue)

    def _enqueue(self, entry: AuditEntry, *, wait: bool) -> int:
        seq = None
        if self._log is not None:
            try:
                seq = self._log.note_audit_pending(entry_fields(entry))
            except OSError:
                # The journal cannot be written (a full disk): the entry is still queued and
                # committed like any other; only a crash before then would lose it.
                logger.exception("audit: cannot journal the %s entry", entry.action)
        with self._cond:
            self._tickets += 1
            ticket = self._tickets
            self._queue.append((ticket, entry, seq))
            if wait:
                self._waited.add(ticket)
            # A writer lingering for company need not wake for one more entry nobody waits
            # for (each wake-up would take the interpreter from the request).
            if wait or not self._lingering or len(self._queue) >= self._max_batch:
                self._cond.notify_all()
        return ticket

    def _wait(self, ticket: int, timeout: float = WAIT_SECONDS) -> int:
        ends = time.monotonic() + timeout
        while True:
            if not self.alive:
                self._drain()  # nobody else will
            with self._cond:
                if self._committed >= ticket:
                    return self._ids.pop(ticket, 0)
                left = ends - time.monotonic()
                if left <= 0 or (self._error is not None and not self.alive):
                    self._waited.discard(ticket)
                    self._ids.pop(ticket, None)
                    error = self._error
                    break
                self._cond.wait(min(left, RETRY_SECONDS))
        raise StoreError("the audit entry is queued but not yet written"
                         f"{f' ({error})' if error else ''}; it is kept and written later")

    # --- the writer ----------------------------------------------------------------------

    def stop(self) -> None:
        super().stop()
        with self._cond:
            self._cond.notify_all()

    def run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self.stopping:
                    self._cond.wait(RETRY_SECONDS)
                    self.heartbeat = time.monotonic()
                if not self._queue:
                    return  # stopping, and nothing left
                # Nobody waits for these (searches): a moment for more to join them, so a
                # busy portal commits a batch now and then rather than after every page.
                ends = time.monotonic() + self._linger
                self._lingering = True
                while (not self._waited and not self.stopping
                       and len(self._queue) < self._max_batch
                       and (left := ends - time.monotonic()) > 0):
                    self._cond.wait(left)
                self._lingering = False
            if not self._drain():
                if self.stopping:
                    left = self.waiting
                    logger.error("audit: %d entr%s could not be written before the stop; the "
                                 "crash journal keeps them for the next start", left,
                                 "y" if left == 1 else "ies")
                    return
                self._stop.wait(RETRY_SECONDS)
            self.heartbeat = time.monotonic()

    def _drain(self) -> bool:
        """Write the oldest batch queued, if any; False if the database refused it."""
        with self._write_lock:
            with self._cond:
                batch = self._queue[:self._max_batch]
            if not batch:
                return True
            try:
                ids = self._trail.append_batch([entry for _, entry, _ in batch])
            except Exception as exc:
                logger.error("audit: cannot write %d entr%s (kept, tried again): %s",
                             len(batch), "y" if len(batch) == 1 else "ies", exc)
                with self._cond:
                    self._error = exc
                    self._cond.notify_all()
                return False
            seqs = [seq for _, _, seq in batch if seq is not None]
            if self._log is not None:
                try:
                    self._log.note_audit_head(*ids[-1], through=max(seqs) if seqs else None)
                except Exception:
                    logger.exception("audit: cannot note the head in the crash journal")
            with self._cond:
                del self._queue[:len(batch)]
                for (ticket, _, _), (entry_id, _) in zip(batch, ids, strict=True):
                    if ticket in self._waited:
                        self._waited.discard(ticket)
                        self._ids[ticket] = entry_id
                self._committed = batch[-1][0]
                self._error = None
                self.batches += 1
                self._cond.notify_all()
            return True


__all__ = ["AuditQueue", "PendingLog", "entry_fields", "entry_from", "replay_pending",
           "unwritten"]
