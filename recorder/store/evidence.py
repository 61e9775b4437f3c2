"""Evidence that nothing was changed: the seal of a recording's row, the audit trail's hash
chain, and the checks ``recorderctl verify`` and ``recorderctl audit verify`` make.

Pure: the canonical serialisations, their SHA-256, and the chain check over plain values. The
SQL is ``sqlite_evidence``'s; the formats are defined in docs/storage.md ("Evidence that nothing
was changed"), which must say exactly what these functions do.
"""

from __future__ import annotations

import hashlib
import hmac
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


def _row_document(values: Sequence[object], marks: Sequence[Mark]) -> bytes:
    ordered = sorted((float(a), float(b)) for a, b in marks)
    return _canonical([ROW_SEAL_TAG, _pairs(values), [[a, b] for a, b in ordered]])


def _row_document_v1(values: Sequence[object]) -> bytes:
    return _canonical([ROW_SEAL_TAG_V1, _pairs(values)])


def row_seal(values: Sequence[object], marks: Sequence[Mark] = ()) -> str:
    """The seal of a row whose ``ROW_SEAL_COLUMNS`` hold ``values`` (as SQLite returns them:
    int, float, str or None) and whose blackouts are ``marks``: SHA-256, hex, of
    ``["recorder-row/2", [[column, value], ...], [[start, end], ...]]``, the marks in order
    of start, then end (reals, as the table holds them)."""
    return hashlib.sha256(_row_document(values, marks)).hexdigest()


# --- keyed: with the seal key (storage.seal_key_file, recorder/store/sealkey.py) -------------
# The same documents, HMAC-SHA256 under the key instead of SHA-256, the hex digest after this
# prefix, which is how a seal or an entry's hash says which kind it is: an unkeyed one is 64 hex
# digits alone, so rows and entries sealed before the key keep checking as they were.
KEYED_PREFIX = "hmac-sha256:"


def is_keyed(seal: str | None) -> bool:
    """Whether ``seal`` (a row's seal, an entry's hash) was made with the seal key."""
    return bool(seal) and str(seal).startswith(KEYED_PREFIX)


def keyed_row_seal(values: Sequence[object], key: bytes, marks: Sequence[Mark] = ()) -> str:
    """``row_seal``'s document, HMAC-SHA256 under ``key``: ``"hmac-sha256:" + hex``."""
    return KEYED_PREFIX + hmac.new(key, _row_document(values, marks),
                                   hashlib.sha256).hexdigest()


def row_seal_v1(values: Sequence[object], key: bytes | None = None) -> str:
    """The seal schemas 7 to 10 wrote (``["recorder-row/1", [[column, value], ...]]``, keyed
    with ``key`` if given): the upgrade to 11 checks each row against it before sealing the
    row again with its marks."""
    document = _row_document_v1(values)
    if key is None:
        return hashlib.sha256(document).hexdigest()
    return KEYED_PREFIX + hmac.new(key, document, hashlib.sha256).hexdigest()


def keyed_audit_hash(entry_id: int, time: float, user_id: int | None, *, key: bytes,
                     username: str, action: str, target: str, detail: str, address: str,
                     prev_hash: str) -> str:
    """``audit_hash``'s document, HMAC-SHA256 under ``key``: ``"hmac-sha256:" + hex``."""
    doc = _audit_document(entry_id, time, user_id, username=username, action=action,
                          target=target, detail=detail, address=address, prev_hash=prev_hash)
    return KEYED_PREFIX + hmac.new(key, doc, hashlib.sha256).hexdigest()


def seal_of_kind(stored: str | None, values: Sequence[object], key: bytes | None,
                 marks: Sequence[Mark] = ()) -> str | None:
    """The seal ``values`` (and ``marks``) have now, of the kind ``stored`` is; None for a
    keyed one without ``key`` (it cannot be computed)."""
    if is_keyed(stored):
        return None if key is None else keyed_row_seal(values, key, marks)
    return row_seal(values, marks)


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

    def computed_hash(self, key: bytes | None = None) -> str | None:
        """The hash its fields give, of the kind its ``entry_hash`` is (keyed: with ``key``;
        None without one)."""
        fields = {"username": self.username, "action": self.action, "target": self.target,
                  "detail": self.detail, "address": self.address,
                  "prev_hash": self.prev_hash or ""}
        if is_keyed(self.entry_hash):
            return None if key is None else keyed_audit_hash(
                self.entry_id, self.time, self.user_id, key=key, **fields)
        return audit_hash(self.entry_id, self.time, self.user_id, **fields)


def _audit_document(entry_id: int, time: float, user_id: int | None, *, username: str,
                    action: str, target: str, detail: str, address: str,
                    prev_hash: str) -> bytes:
    doc = [AUDIT_TAG, int(entry_id), float(time), None if user_id is None else int(user_id),
           str(username), str(action), str(target), str(detail), str(address), str(prev_hash)]
    return _canonical(doc)


def audit_hash(entry_id: int, time: float, user_id: int | None, *, username: str,
               action: str, target: str, detail: str, address: str, prev_hash: str) -> str:
    """SHA-256, hex, of ``["recorder-audit/1", entry_id, time, user_id, username, action,
    target, detail, address, prev_hash]`` (time always a float, user_id an int or null)."""
    return hashlib.sha256(_audit_document(
        entry_id, time, user_id, username=username, action=action, target=target,
        detail=detail, address=address, prev_hash=prev_hash)).hexdigest()


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
                head_file_required: bool, key: bytes | None = None) -> list[AuditFinding]:
    """Everything wrong with ``trail`` given the ``heads`` kept outside the database, the
    first bad entry first. ``head_file_required``: entries were written, so the audit-head
    file must exist (it is written with every entry). ``key``: the seal key, which entries
    made with it need to be checked, and without which none may follow them."""
    findings: list[AuditFinding] = []
    anchor = trail.anchor
    findings += _check_keyed(trail, key)
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
            computed = entry.computed_hash(key)
            if computed is not None and computed != entry.entry_hash:
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


def _check_keyed(trail: AuditTrailState, key: bytes | None) -> list[AuditFinding]:
    """The seal key's rules: once an entry is keyed every later one is (an unkeyed one after
    it was re-hashed by someone without the key), and with the key set something must be
    keyed (else everything made with it was removed, or re-hashed without it)."""
    keyed_since = 0 if trail.anchor is not None and is_keyed(trail.anchor.entry_hash) else None
    findings: list[AuditFinding] = []
    for entry in trail.entries:
        if is_keyed(entry.entry_hash):
            if keyed_since is None:
                keyed_since = entry.entry_id
        elif keyed_since is not None and entry.entry_hash is not None:
            since = f"entry {keyed_since}" if keyed_since else "the purge anchor"
            findings.append(AuditFinding(entry.entry_id, (
                f"entry {entry.entry_id}: hashed without the seal key, which the trail has "
                f"used since {since} (re-hashed by someone without the key)")))
    if key is not None and keyed_since is None and (trail.entries or trail.anchor):
        findings.append(AuditFinding(0, (
            "the seal key is set but no entry was sealed with it: recorderd has not started "
            "with storage.seal_key_file yet, or every entry made with it was removed or "
            "re-hashed without it")))
    if key is None and keyed_since is not None:
        findings.append(AuditFinding(keyed_since or 1, (
            "entries sealed with the seal key: only their links were checked, not their "
            "contents (no key given)"), failed=False))
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
    seal: str | None  # the seal its columns give now, of row_hash's kind (None: keyed, no key)


@dataclass(frozen=True)
class SealState:
    """Whether the evidence is sealed with a seal key: some audit entry (or the purge anchor)
    is. ``key_id`` and ``since_entry``: the key the entry that took it into use names, and
    that entry (else the first keyed one), while they are in the trail."""

    keyed: bool
    key_id: str | None = None
    since_entry: int | None = None


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
    def sealed_rows(self, since: float | None = None, key: bytes | None = None
                    ) -> Iterator[SealedRow]:
        """Every recording's row (started at or after ``since``), by RECORDID; keyed seals
        are computed with ``key``."""

    @abstractmethod
    def seal_state(self) -> SealState:
        """Whether the evidence is sealed with a seal key, since when, which."""

    @abstractmethod
    def recording_filenames(self) -> set[str]:
        """Every file any row names."""

    @abstractmethod
    def audit_trail(self) -> AuditTrailState: ...

    @abstractmethod
    def purge_audit(self, before: float) -> int:
        """Remove the oldest entries, all written before ``before`` (never a newer one, nor
        one after a newer one), keeping the anchor; how many went."""
