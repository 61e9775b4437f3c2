"""Evidence that nothing was changed: the seal of a recording's row, the audit trail's hash
chain, and the checks ``recorderctl verify`` and ``recorderctl audit verify`` make.

Pure: the canonical serialisations, their SHA-256, and the chain check over plain values. The
SQL is ``sqlite_evidence``'s; the formats are defined in docs/storage.md ("Evidence that nothing
was changed"), which must say exactly what these functions do.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

# The columns of ``recordings`` a row's seal covers, in the order they are serialised. Every
# column of schema 6 but ``listenedto`` (set on each play) and ``locked`` (set by integrations
# with plain SQL, as the manual's LOCKED is): neither says anything about the call or its file.
# Written out, not taken from the schema: a seal made today must still check tomorrow.
ROW_SEAL_COLUMNS: tuple[str, ...] = (
    "ident", "agent_id", "ani", "archive_action_id", "audio_hash", "audio_size",
    "calldirection", "callid", "channel", "device_alias", "device_id", "dnis", "duration",
    "filename", "filename_video", "gate", "globalid", "keepdays", "medialabel", "overridden",
    "priority", "qa_forms", "qa_group_id", "qa_poss_score", "qa_score", "recording_time",
    "recording_type", "screen_capture", "sgroup",
    *(f"user{i}" for i in range(1, 16)),
    "video_hash", "video_size", "wrap_duration", "call_instance", "sys_user", "crm_user",
    "station", "cti_initiated", "agent_initiated", "media_format", "sample_rate", "start_time",
    "stop_time", "status", "stop_reason", "lost_samples", "core_ident", "purged_time",
)
ROW_SEAL_TAG = "recorder-row/2"  # since schema 11: the row's blackout marks too
ROW_SEAL_TAG_V1 = "recorder-row/1"  # schema 7 to 10: the columns only
AUDIT_TAG = "recorder-audit/1"
# The previous hash of the first entry ever written.
GENESIS = "0" * 64


def _canonical(doc: object) -> bytes:
    # Floats as Python's repr (the shortest text that reads back as the same double), no
    # spaces, text as UTF-8 rather than \u escapes; NaN is refused (JSON has none).
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"),
                      allow_nan=False).encode("utf-8")


Mark = tuple[float, float]  # a blackout mark: seconds from the file's start, start and end


def _pairs(values: Sequence[object]) -> list[list[object]]:
    if len(values) != len(ROW_SEAL_COLUMNS):
        raise ValueError(f"{len(values)} values for {len(ROW_SEAL_COLUMNS)} sealed columns")
    return [[column, value] for column, value in zip(ROW_SEAL_COLUMNS, values, strict=True)]


def row_seal(values: Sequence[object], marks: Sequence[Mark] = ()) -> str:
    """The seal of a row whose ``ROW_SEAL_COLUMNS`` hold ``values`` (as SQLite returns them:
    int, float, str or None) and whose blackouts are ``marks``: SHA-256, hex, of
    ``["recorder-row/2", [[column, value], ...], [[start, end], ...]]``, the marks in order
    of start, then end (reals, as the table holds them)."""
    ordered = sorted((float(a), float(b)) for a, b in marks)
    return hashlib.sha256(_canonical(
        [ROW_SEAL_TAG, _pairs(values), [[a, b] for a, b in ordered]])).hexdigest()


def row_seal_v1(values: Sequence[object]) -> str:
    """The seal schemas 7 to 10 wrote (``["recorder-row/1", [[column, value], ...]]``): the
    upgrade to 11 checks each row against it before sealing the row again with its marks."""
    return hashlib.sha256(_canonical([ROW_SEAL_TAG_V1, _pairs(values)])).hexdigest()


@dataclass(frozen=True)
class ChainedEntry:
    """An audit entry as the chain sees it: its fields, the hash it names as the previous
    entry's, and its own."""

    entry_id: int
    time: float
    user_id: int | None
    username: str
    action: str
    target: str
    detail: str
    address: str
    prev_hash: str | None
    entry_hash: str | None

    def computed_hash(self) -> str:
        return audit_hash(self.entry_id, self.time, self.user_id, username=self.username,
                          action=self.action, target=self.target, detail=self.detail,
                          address=self.address, prev_hash=self.prev_hash or "")


def audit_hash(entry_id: int, time: float, user_id: int | None, *, username: str,
               action: str, target: str, detail: str, address: str, prev_hash: str) -> str:
    """SHA-256, hex, of ``["recorder-audit/1", entry_id, time, user_id, username, action,
    target, detail, address, prev_hash]`` (time always a float, user_id an int or null)."""
    doc = [AUDIT_TAG, int(entry_id), float(time), None if user_id is None else int(user_id),
           str(username), str(action), str(target), str(detail), str(address), str(prev_hash)]
    return hashlib.sha256(_canonical(doc)).hexdigest()


@dataclass(frozen=True)
class AuditHead:
    """The newest entry as recorded somewhere outside the table (``source``)."""

    source: str  # "audit-head file", "crash journal"
    entry_id: int
    entry_hash: str


@dataclass(frozen=True)
class AuditAnchor:
    """The last entry a purge removed: the chain goes on from its hash."""

    entry_id: int
    entry_hash: str


@dataclass(frozen=True)
class AuditFinding:
    """One thing wrong with the chain; ``entry_id`` the entry it shows at (0: none)."""

    entry_id: int
    message: str
    failed: bool = True  # False: worth saying, but nothing was shown to be changed


@dataclass(frozen=True)
class AuditTrailState:
    """What the database holds of the chain: the purge anchor and every entry, oldest first."""

    anchor: AuditAnchor | None
    entries: list[ChainedEntry]


def check_chain(trail: AuditTrailState, heads: Sequence[AuditHead],
                head_file_required: bool) -> list[AuditFinding]:
    """Everything wrong with ``trail`` given the ``heads`` kept outside the database, the
    first bad entry first. ``head_file_required``: entries were written, so the audit-head
    file must exist (it is written with every entry)."""
    findings: list[AuditFinding] = []
    anchor = trail.anchor
    expected_prev = anchor.entry_hash if anchor is not None else GENESIS
    expected_id = anchor.entry_id + 1 if anchor is not None else None
    by_id: dict[int, ChainedEntry] = {}
    for entry in trail.entries:
        by_id[entry.entry_id] = entry
        if expected_id is not None and entry.entry_id != expected_id:
            findings.append(AuditFinding(entry.entry_id, (
                f"entry {entry.entry_id}: entries {expected_id}-{entry.entry_id - 1} are "
                "missing (deleted)") if entry.entry_id > expected_id else
                f"entry {entry.entry_id}: out of order (expected entry {expected_id})"))
        if entry.entry_hash is None or entry.prev_hash is None:
            findings.append(AuditFinding(entry.entry_id,
                                         f"entry {entry.entry_id}: not chained (no hash)"))
        else:
            if entry.prev_hash != expected_prev:
                findings.append(AuditFinding(entry.entry_id, (
                    f"entry {entry.entry_id}: the entry before it was deleted or changed "
                    "(its previous-entry hash does not match)")))
            if entry.computed_hash() != entry.entry_hash:
                findings.append(AuditFinding(entry.entry_id, (
                    f"entry {entry.entry_id}: edited (its contents do not match its hash)")))
        expected_prev = entry.entry_hash or ""
        expected_id = entry.entry_id + 1
    last_id = trail.entries[-1].entry_id if trail.entries else (
        anchor.entry_id if anchor is not None else 0)
    purged_through = anchor.entry_id if anchor is not None else 0
    if head_file_required and not any(h.source == HEAD_FILE_SOURCE for h in heads):
        findings.append(AuditFinding(0, "the audit-head file is missing: the newest entries "
                                     "cannot be checked against it"))
    for head in heads:
        if head.entry_id > last_id:
            # The first entry missing is the first bad one.
            ends = f"ends at entry {last_id}" if last_id else "is empty"
            findings.append(AuditFinding(last_id + 1, (
                f"the trail {ends} but the {head.source} records entry {head.entry_id}: "
                f"entries {last_id + 1}-{head.entry_id} were removed (tail truncated)")))
        elif head.entry_id in by_id:
            if by_id[head.entry_id].entry_hash != head.entry_hash:
                findings.append(AuditFinding(head.entry_id, (
                    f"entry {head.entry_id}: its hash differs from the one the {head.source} "
                    "records (rewritten)")))
            elif head.source == HEAD_FILE_SOURCE and head.entry_id < last_id:
                findings.append(AuditFinding(head.entry_id + 1, (
                    f"entries {head.entry_id + 1}-{last_id} come after the head the "
                    f"{head.source} records (written just before a crash, or added to the "
                    "table by something else)"), failed=False))
        elif head.entry_id == purged_through and anchor is not None:
            if anchor.entry_hash != head.entry_hash:
                findings.append(AuditFinding(head.entry_id, (
                    f"the purge anchor (entry {head.entry_id}) differs from the hash the "
                    f"{head.source} records")))
        elif head.entry_id > purged_through:
            findings.append(AuditFinding(head.entry_id, (
                f"entry {head.entry_id}, which the {head.source} records, is missing")))
    findings.sort(key=lambda f: (not f.failed, f.entry_id or 1 << 62))
    return findings


HEAD_FILE_SOURCE = "audit-head file"
JOURNAL_SOURCE = "crash journal"


@dataclass(frozen=True)
class SealedRow:
    """What ``recorderctl verify`` needs of one recording's row."""

    ident: int
    filename: str
    status: str
    start_time: float
    purged_time: float | None
    audio_size: int | None
    audio_hash: str | None
    row_hash: str | None
    seal: str  # the seal its sealed columns have now (``row_seal``)


class EvidenceStore(ABC):
    """What the checks read from the database, and the one change they ask of it (purging
    old audit entries)."""

    @property
    @abstractmethod
    def head_path(self) -> Path:
        """The audit-head file: the newest entry, written outside the database."""

    @abstractmethod
    def sealed_from(self) -> int:
        """The first RECORDID sealed when complete: rows before it were recorded before
        verification existed."""

    @abstractmethod
    def sealed_rows(self, since: float | None = None) -> Iterator[SealedRow]:
        """Every recording's row (started at or after ``since``), by RECORDID."""

    @abstractmethod
    def recording_filenames(self) -> set[str]:
        """Every file any row names."""

    @abstractmethod
    def audit_trail(self) -> AuditTrailState: ...

    @abstractmethod
    def purge_audit(self, before: float) -> int:
        """Remove the oldest entries, all written before ``before`` (never a newer one, nor
        one after a newer one), keeping the anchor; how many went."""
