"""Checking the stored recordings against the evidence kept at their close (docs/storage.md):
each file's SHA-256 against its row's AUDIO_HASH, each row against its seal, and every file in
the recordings directory against the rows. ``recorderctl verify`` prints what this finds.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from recorder.codecs.stored import is_encrypted
from recorder.crypt.access import verify_sealed
from recorder.crypt.keys import KEY_SUFFIX, CryptKeyError, MasterKey
from recorder.crypt.sealed import SealedError
from recorder.recording.blackouts import PENDING_SUFFIX
from recorder.recording.paths import sha256_file
from recorder.recording.transcode import PART_SUFFIX, SOURCE_SUFFIX
from recorder.store.evidence import EvidenceStore, SealedRow, is_keyed
from recorder.store.records import STATUS_COMPLETE

logger = logging.getLogger(__name__)

# What a finding is about.
DIFFERS = "differs"  # the file's bytes are not those hashed at its close
MISSING = "missing"  # the row names a file that is not there (and was not purged)
ROW_CHANGED = "row changed"  # the row's sealed fields are not those it was sealed with
SEAL_MISSING = "seal missing"  # a row sealed when complete has no seal now
NO_ROW = "no row"  # a file in the recordings directory that no row names
NOT_HASHED = "not hashed"  # recorded before verification existed (not a failure)
NO_FILE_HASH = "no file hash"  # its file could not be read back at close (not a failure)
NOT_AUTHENTIC = "does not authenticate"  # an encrypted file's chunk altered, or the file cut
KEY_MISSING = "key missing"  # an encrypted file's wrapped key beside it is missing or wrong
NOT_AUTHENTICATED = "not authenticated"  # encrypted, and no master key given (not a failure)
# Once the evidence is sealed with the seal key, a plain seal is one made without the key.
UNKEYED = "sealed without the key"
NOT_KEYED_YET = "nothing keyed"  # a seal key given, but nothing was sealed with it

# Files a recording may have beside it for a while: a half-written copy (after-call encoding,
# a blackout re-encode) and a blackout waiting to be silenced at its close; and for good, an
# encrypted one's wrapped key.
_COMPANION_SUFFIXES = (PART_SUFFIX, ".blackout", PENDING_SUFFIX, KEY_SUFFIX)


@dataclass(frozen=True)
class Finding:
    kind: str
    message: str
    ident: int | None = None  # the RECORDID, when it is about a row
    path: str = ""
    failed: bool = True  # False: said, but nothing was shown to be changed


@dataclass
class VerifyReport:
    checked: int = 0  # rows looked at
    good: int = 0  # files whose bytes and rows whose fields are as sealed
    in_progress: int = 0  # rows still being recorded (nothing to check yet)
    purged: int = 0  # rows whose files retention purged
    no_file: int = 0  # complete rows without a file (screen sessions)
    files_scanned: int = 0  # files in the recordings directory looked at for a row
    findings: list[Finding] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(f.failed for f in self.findings)


def verify_recordings(evidence: EvidenceStore, recordings_dir: Path,
                      since: float | None = None, key: bytes | None = None, *,
                      keys: Sequence[MasterKey] = ()) -> VerifyReport:
    """Check every recording started at or after ``since`` (all: None), and every file in
    ``recordings_dir`` (changed at or after ``since``) for a row. ``key``: the seal key,
    which the seals made with it need, and with which every seal must be made once the
    evidence is keyed. An encrypted recording's every chunk is authenticated too, with
    ``keys``, the master keys (none: noted as not authenticated)."""
    report = VerifyReport()
    sealed_from = evidence.sealed_from()
    keyed = evidence.seal_state().keyed
    if key is not None and not keyed:
        report.findings.append(Finding(NOT_KEYED_YET, (
            "the seal key is set but nothing in this data directory was sealed with it: "
            "recorderd has not started with storage.seal_key_file yet, or everything sealed "
            "with it was removed or re-sealed without it")))
    for row in evidence.sealed_rows(since, key):
        report.checked += 1
        _check_row(row, sealed_from, report, keyed, keys)
    known = {os.path.realpath(name) for name in evidence.recording_filenames()}
    for path in _files(recordings_dir):
        try:
            if since is not None and path.stat().st_mtime < since:
                continue
        except OSError:
            continue  # gone meanwhile (retention, after-call encoding)
        report.files_scanned += 1
        real = os.path.realpath(path)
        if real in known or _companion_of(real, known):
            continue
        report.findings.append(Finding(NO_ROW, f"{path}: no row names this file", path=str(path)))
    return report


def _check_row(row: SealedRow, sealed_from: int, report: VerifyReport, keyed: bool,
               keys: Sequence[MasterKey]) -> None:
    rid = f"RECORDID {row.ident}"
    if row.status != STATUS_COMPLETE:
        report.in_progress += 1
        return
    if row.row_hash is None:
        if row.ident < sealed_from:
            report.findings.append(Finding(
                NOT_HASHED, f"{rid}: not hashed: recorded before verification existed",
                row.ident, row.filename, failed=False))
        else:
            report.findings.append(Finding(
                SEAL_MISSING, f"{rid}: its row has no seal (it had one when it was complete)",
                row.ident, row.filename))
        return
    good = True
    if keyed and not is_keyed(row.row_hash):
        good = False
        report.findings.append(Finding(
            UNKEYED, f"{rid}: sealed without the seal key, which sealed this data directory's "
            "rows by then (re-sealed by someone without the key)", row.ident, row.filename))
    if row.seal is None:
        good = False
        report.findings.append(Finding(
            ROW_CHANGED, f"{rid}: sealed with the seal key, not checked without it",
            row.ident, row.filename, failed=False))
    elif row.row_hash != row.seal:
        good = False
        report.findings.append(Finding(
            ROW_CHANGED, f"{rid}: its row was changed after it was sealed (duration, times, "
            "file, caller, blackout marks or another sealed field)", row.ident, row.filename))
    if row.purged_time is not None:
        report.purged += 1
        return
    if not row.filename:
        report.no_file += 1
        return
    path = Path(row.filename)
    if is_encrypted(path) and not _authentic(path, rid, row.ident, keys, report):
        good = False
    if not row.audio_hash:
        report.findings.append(Finding(
            NO_FILE_HASH, f"{rid}: no file hash: {path} could not be read back when it "
            "closed", row.ident, row.filename, failed=False))
        return
    try:
        digest = sha256_file(path)
    except FileNotFoundError:
        report.findings.append(Finding(MISSING, f"{rid}: {path} is missing", row.ident,
                                       row.filename))
        return
    except OSError as exc:
        report.findings.append(Finding(MISSING, f"{rid}: {path} cannot be read: {exc}",
                                       row.ident, row.filename))
        return
    if digest != row.audio_hash:
        report.findings.append(Finding(
            DIFFERS, f"{rid}: {path} differs from the file stored at its close (SHA-256 "
            f"{digest}, the row keeps {row.audio_hash})", row.ident, row.filename))
        return
    if good:
        report.good += 1


def _authentic(path: Path, rid: str, ident: int, keys: Sequence[MasterKey],
               report: VerifyReport) -> bool:
    """Whether every chunk of the encrypted recording ``path`` authenticates under the key
    beside it (and it ends with its last chunk); a finding says what does not."""
    if not keys:
        report.findings.append(Finding(
            NOT_AUTHENTICATED, f"{rid}: {path} is encrypted and no master key was given "
            "(storage.key_file, or --key-file): its chunks were not authenticated", ident,
            str(path), failed=False))
        return True
    try:
        verify_sealed(path, keys)
    except SealedError as exc:
        report.findings.append(Finding(NOT_AUTHENTIC, f"{rid}: {exc}", ident, str(path)))
        return False
    except CryptKeyError as exc:
        report.findings.append(Finding(
            KEY_MISSING, f"{rid}: {exc} (`recorderctl key restore` puts back the copy its row "
            "keeps)", ident, str(path)))
        return False
    except OSError:
        return True  # unreadable: the hash check says so
    return True


def _files(root: Path) -> Iterator[Path]:
    for directory, _, names in os.walk(root):
        for name in sorted(names):
            yield Path(directory) / name


def _companion_of(path: str, known: set[str]) -> bool:
    """A file a known recording has beside it for a while: one of ``_COMPANION_SUFFIXES``
    after its name, or its after-call encoding (the row names the WAV until it is done)."""
    for suffix in _COMPANION_SUFFIXES:
        if path.endswith(suffix):
            path = path[:-len(suffix)]
            break
    return path in known or str(Path(path).with_suffix(SOURCE_SUFFIX)) in known


__all__ = ["DIFFERS", "KEY_MISSING", "MISSING", "NOT_AUTHENTIC", "NOT_AUTHENTICATED",
           "NOT_HASHED", "NOT_KEYED_YET", "NO_FILE_HASH", "NO_ROW", "ROW_CHANGED",
           "SEAL_MISSING", "UNKEYED", "Finding", "VerifyReport", "verify_recordings"]
