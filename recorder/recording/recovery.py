"""Start-up after a crash: recordings a killed process left open become complete ones.

The crash journal (recorder/recording/journal.py) lists every recording that was open, with its file
and everything its row needs, durable before the first sample was written. Before anything records,
each one is repaired and completed:

- its file is made to play: a WAV header made to count every whole frame on disk (including
  those written after the last sync), a live MP3 cut back to whole frames with its tag counting
  them (codecs/mp3repair.py); a VOX file is a plain stream and needs nothing. A blackout still
  waiting to be silenced in a live MP3 or VOX file is silenced. (An after-call encode the crash
  interrupted is redone by the after-call encoder, which finds the WAV still there.)
- its row is completed with what the file holds, stop reason ``recovered``; a row that never
  reached the database (it was away, and the spool lost too) is inserted from the journal.
- a RECORDINGSTOPPED with ERRORREASON RECOVERED is made for it, which the service publishes to
  the subscribers that connect after the start (recorder/events/bus.py ``hold``).

Rows still marked in progress that the journal does not know (written by a version without the
journal) are completed from their files the same way. Nothing on disk is thrown away, and at
most the audio handed to the OS in the last moments before the crash is missing (the session
hands it over every half second; see recorder/recording/session.py).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO

from recorder.codecs.convert import DEFAULT_VOX_RATE, probe
from recorder.codecs.mp3repair import plan_mp3_repair, repair_mp3
from recorder.codecs.wav import read_wav_info, wav_header
from recorder.crypt.access import (
    current_wrapped,
    installed_keys,
    is_encrypted,
    repair_sealed,
    restore_key,
)
from recorder.crypt.keys import CryptKeyError, MasterKey, key_path
from recorder.errors import CodecError, StoreError
from recorder.events.rows import recovered_event
from recorder.events.types import Event
from recorder.recording.blackouts import apply_pending, file_seconds
from recorder.recording.journal import Journal, JournalContents, JournalEntry, read_journal
from recorder.recording.paths import sha256_file
from recorder.store.filekeys import FileKeyStore
from recorder.store.recordings import RecordingStore
from recorder.store.records import STOP_RECOVERED, FinishedRecording, NewRecording, RecordingRow

logger = logging.getLogger(__name__)

STATUS_COMPLETE = "complete"


class KeyNeeded(CodecError):
    """An encrypted recording cannot be repaired without its key (or with another one): its
    entry stays in the journal, its file untouched, until a start that has the key."""


def repair_wav(path: Path, keys: Sequence[MasterKey] | None = None) -> None:
    """Make a crashed WAV's header count every whole frame in the file; drop a partial frame.

    An encrypted one keeps its chunks up to the first that does not authenticate (the tail a
    crash may have torn) and gets a header counting them (docs/encryption.md)."""
    if is_encrypted(path):
        def plan(size: int, plain: BinaryIO) -> tuple[int, bytes | None]:
            info = read_wav_info(path, plain)
            data = max(0, size - info.data_offset)
            data -= data % info.block_align
            return info.data_offset + data, wav_header(info.sample_rate, info.channels, data,
                                                       info.format_tag)

        kept = _repair_sealed(path, keys, plan)
        logger.info("%s: encrypted, %d bytes kept", path, kept)
        return
    info = read_wav_info(path)
    header = wav_header(info.sample_rate, info.channels, info.data_bytes, info.format_tag)
    if len(header) != info.data_offset:
        raise CodecError(f"{path}: header of {info.data_offset} bytes is not one of ours")
    with path.open("r+b") as f:
        f.write(header)
        f.truncate(info.data_offset + info.data_bytes)
        f.flush()
        os.fsync(f.fileno())


def _repair_sealed(path: Path, keys: Sequence[MasterKey] | None,
                   plan: Callable[[int, BinaryIO], tuple[int, bytes | None]] | None) -> int:
    try:
        return repair_sealed(path, installed_keys() if keys is None else keys, plan)
    except CryptKeyError as exc:
        raise KeyNeeded(str(exc)) from exc


def repair_file(path: Path, fmt: str, sample_rate: int, channels: int,
                options: Mapping[str, Any]) -> None:
    """Make a crashed recording of ``fmt`` play (see the module docstring); encrypted or not."""
    if fmt.startswith("wav"):
        repair_wav(path)
    elif fmt == "mp3":
        if not is_encrypted(path):
            repair_mp3(path, sample_rate, channels, options.get("bitrate"),
                       options.get("quality"))
            return

        def plan(size: int, plain: BinaryIO) -> tuple[int, bytes | None]:
            end, tag, _ = plan_mp3_repair(plain, size, sample_rate, channels,
                                          bitrate=options.get("bitrate"),
                                          quality=options.get("quality"))
            return end, tag

        _repair_sealed(path, None, plan)
    elif is_encrypted(path):
        _repair_sealed(path, None, None)  # VOX: every whole chunk is whole samples


def restore_missing_key(path: Path, row_keys: Sequence[str]) -> None:
    """An encrypted recording whose wrapped key beside it was lost gets it back from its row
    (docs/encryption.md, "A lost key file"); one that cannot be is left to KeyNeeded.

    ``row_keys``: the keys the row may hold, first the database's (a rotation since the
    crash re-wrapped it), then the journal's copy (the row as it was when the recording
    began, wrapped by the master key of then)."""
    candidates = [k for k in dict.fromkeys(row_keys) if k]
    if not candidates or not is_encrypted(path):
        return
    try:
        read = key_path(path).read_text(encoding="utf-8")
    except OSError:
        read = ""
    if read in candidates:
        return
    failures: list[str] = []
    for row_key in candidates:
        try:
            logger.warning("%s", restore_key(path, row_key, installed_keys()))
            return
        except CryptKeyError as exc:
            failures.append(str(exc))
    logger.error("%s: its key cannot be restored from its row: %s", path, "; ".join(failures))


def _stored_key(file_keys: FileKeyStore | None, record_id: int | None) -> str:
    """The wrapped key recording ``record_id``'s row holds now ("": none, or unreadable)."""
    if file_keys is None or record_id is None:
        return ""
    try:
        return file_keys.file_key(record_id)
    except StoreError as exc:
        logger.warning("RECORDID %d: cannot read its wrapped key (%s)", record_id, exc)
        return ""


@dataclass
class Recovered:
    """One recording recovery completed (or would, or could not)."""

    record_id: int | None
    device_id: str
    start_time: float
    filename: str
    result: str  # "completed", "would complete", "failed"
    duration: float | None = None
    stop_reason: str | None = None
    event: Event | None = field(default=None, repr=False)


@dataclass(frozen=True)
class _FileState:
    duration: float
    size: int
    digest: str


def recover(store: RecordingStore, journal: Journal, contents: JournalContents, *,
            dry_run: bool = False, file_keys: FileKeyStore | None = None) -> list[Recovered]:
    """Repair and complete every recording ``contents`` (what ``journal.open()`` returned)
    left open, then every row still in progress the journal does not know of.

    ``file_keys``: where the rows' wrapped keys are read, to restore a lost key beside an
    encrypted file (else only the journal's copy, which a rotation does not re-wrap).

    Completed entries leave the journal (rewritten at the end); ``dry_run`` changes nothing."""
    done: list[Recovered] = []
    seen: set[int] = set()
    for key, entry in sorted(contents.open.items()):
        if entry.record_id is not None:
            seen.add(entry.record_id)
        if dry_run:
            done.append(Recovered(entry.record_id, entry.row.device_id, entry.row.start_time,
                                  entry.path, "would complete"))
            continue
        outcome = _recover_entry(store, entry, file_keys)
        # A failed one stays in the journal for the next start; so does one whose row the
        # store holds in memory only (a full disk), until a start finds it on disk.
        if outcome.result != "failed" and not store.held:
            journal.forget(key)
        if outcome.result != "done":
            done.append(outcome)
    try:
        rows = [row for row in store.interrupted_recordings() if row.ident not in seen]
    except StoreError as exc:
        # Expected while the database is away; the journal's entries are done regardless.
        logger.warning("cannot list the rows a crash left in progress (%s); the next start "
                       "tries again", exc)
        rows = []
    for row in rows:
        if dry_run:
            done.append(Recovered(row.ident, row.device_id, row.start_time, row.filename,
                                  "would complete"))
        else:
            done.append(_recover_row(store, row, file_keys))
    if not dry_run:
        try:
            journal.rewrite()
        except OSError as exc:
            # A full disk: the old file stays, whole; what it still lists is complete already
            # and left alone by the next start.
            logger.warning("cannot rewrite the crash journal %s (%s); the next start reads the "
                           "recordings just completed again and leaves them", journal.path, exc)
    if any(r.result == "completed" for r in done):
        logger.warning("%d recording(s) were interrupted by a crash or power loss and have been "
                       "completed from their files", len(done))
    return done


def _recover_entry(store: RecordingStore, entry: JournalEntry,
                   file_keys: FileKeyStore | None = None) -> Recovered:
    """Complete one journal entry: "completed", "done" (its row already was), or "failed"
    (the store refused; the entry stays in the journal)."""
    row = entry.row
    record_id = entry.record_id
    stored = None
    if record_id is not None:
        try:
            stored = store.get_recording(record_id)
        except StoreError:
            stored = None  # unreadable now (e.g. its insert waits in the spool): complete it
        if stored is not None and stored.status == STATUS_COMPLETE:
            # Its row was completed and only the journal's end line was lost.
            return Recovered(record_id, row.device_id, row.start_time, entry.path, "done",
                             stored.duration, stored.stop_reason)
    try:
        state = _repair(Path(entry.path), entry.fmt, entry.sample_rate, entry.channels,
                        options=entry.options, record_id=record_id,
                        row_keys=(_stored_key(file_keys, record_id), row.file_key))
    except KeyNeeded as exc:
        logger.error("RECORDID %s (%s): %s; it stays to be recovered by a start with the key",
                     record_id, entry.path, exc)
        return Recovered(record_id, row.device_id, row.start_time, entry.path, "failed")
    try:
        if stored is None:
            # Never stored, or its RECORDID was handed out while the database and the spool
            # had no room and the insert held in memory died with the process: stored under
            # that RECORDID (a spooled insert of the same recording is not stored twice).
            # The key beside the file now: a rotation may have re-wrapped it meanwhile.
            row = replace(row, file_key=current_wrapped(Path(entry.path), row.file_key))
            record_id = store.insert_recording(row, record_id)
        assert record_id is not None
        store.finish_recording(record_id, _finished(
            row.start_time, state,
            file_seconds(entry.blackouts, round(state.duration * entry.sample_rate),
                         entry.sample_rate)))
    except StoreError:
        logger.exception("RECORDID %s (%s): cannot complete its row; the journal keeps it for "
                         "the next start", record_id, entry.path)
        return Recovered(record_id, row.device_id, row.start_time, entry.path, "failed")
    return _completed(record_id, row, entry.path, state)


def _recover_row(store: RecordingStore, row: RecordingRow,
                 file_keys: FileKeyStore | None = None) -> Recovered:
    path = Path(row.filename)
    try:
        state = _repair(path, format_of_row(path, row.media_format), row.sample_rate, 1,
                        options={}, record_id=row.ident,
                        row_keys=(_stored_key(file_keys, row.ident),))
    except KeyNeeded as exc:
        logger.error("RECORDID %d (%s): %s; it stays in progress until a start with the key",
                     row.ident, path, exc)
        return Recovered(row.ident, row.device_id, row.start_time, row.filename, "failed")
    try:
        store.finish_recording(row.ident, _finished(row.start_time, state))
    except StoreError:
        logger.exception("RECORDID %d: cannot complete its row", row.ident)
        return Recovered(row.ident, row.device_id, row.start_time, row.filename, "failed")
    new = NewRecording(
        device_id=row.device_id, call_instance=row.call_instance, channel=row.channel,
        filename=row.filename, media_format=row.media_format, sample_rate=row.sample_rate,
        start_time=row.start_time, core_ident=row.core_ident, meta=row.meta,
        keep_days=row.keep_days, archive_action=row.archive_action, global_id=row.global_id)
    return _completed(row.ident, new, row.filename, state)


def _completed(record_id: int, row: NewRecording, path: str, state: _FileState) -> Recovered:
    logger.info("RECORDID %d (%s): %.2f s recovered from %s", record_id, row.device_id,
                state.duration, path)
    return Recovered(record_id, row.device_id, row.start_time, path, "completed",
                     state.duration, STOP_RECOVERED, recovered_event(row, record_id))


def _finished(start_time: float, state: _FileState,
              blackouts: tuple[tuple[float, float], ...] = ()) -> FinishedRecording:
    return FinishedRecording(stop_time=start_time + state.duration, duration=state.duration,
                             audio_size=state.size, audio_hash=state.digest,
                             stop_reason=STOP_RECOVERED, lost_samples=0, blackouts=blackouts)


def format_of_row(path: Path, media_format: str) -> str:
    """The format a row's file was written in, for a row the journal does not know: by the
    file's extension (an after-call row names its WAV while its media format is already the
    encoded one), else by the row's media format. Never by the file's first bytes: a VOX file
    is headerless ADPCM, and one whose first bytes happen to be ``FF Ex`` looks like MP3."""
    by_extension = {".wav": "wav", ".mp3": "mp3", ".vox": "vox"}
    return by_extension.get(path.suffix.lower(), media_format)


def _repair(path: Path, fmt: str, sample_rate: int, channels: int, *,
            options: Mapping[str, Any], record_id: int | None,
            row_keys: Sequence[str] = ()) -> _FileState:
    """Make the file (written as ``fmt``) play and measure it; an unreadable file is logged
    and counts as empty (its row is still completed: the call happened, and the row says what
    is left of it)."""
    try:
        restore_missing_key(path, row_keys)
        repair_file(path, fmt, sample_rate, channels, options)
        if apply_pending(path):
            logger.info("RECORDID %s: a blackout the crash interrupted is now silence in %s",
                        record_id, path)
        # A VOX file is at its writer's rate option, else the channel's (VoxWriter's rule).
        vox_rate = int(options.get("rate") or sample_rate or DEFAULT_VOX_RATE)
        # The format as it was written, never guessed from the file's content (see above).
        info = probe(path, "wav" if fmt.startswith("wav") else fmt, vox_rate=vox_rate)
        return _FileState(info.duration, path.stat().st_size, sha256_file(path))
    except KeyNeeded:
        raise
    except (OSError, CodecError):
        logger.exception("RECORDID %s: %s (%s) cannot be read back; its row is completed empty",
                         record_id, path, fmt)
        return _FileState(0.0, 0, "")


def complete_interrupted(store: RecordingStore, journal: Journal, dry_run: bool = False,
                         file_keys: FileKeyStore | None = None) -> list[Recovered]:
    """Open ``journal``, recover what it and the store hold, and return what was done
    (``dry_run``: only read the journal, and list)."""
    if dry_run:
        return recover(store, journal, read_journal(journal.path), dry_run=True)
    return recover(store, journal, journal.open(), dry_run=False, file_keys=file_keys)


__all__ = ["KeyNeeded", "Recovered", "complete_interrupted", "format_of_row", "recover",
           "repair_file", "repair_wav", "restore_missing_key"]
