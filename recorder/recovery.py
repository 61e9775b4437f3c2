"""Start-up after a crash: recordings a killed process left half-written become complete ones.

A recording in progress when the process died has a row still marked in progress and a file
that plays up to its last sync (the WAV header is brought up to date every second; MP3 and VOX
files are plain streams). Before anything records, each such file is repaired where it needs to
be (a WAV header is made to count every whole frame on disk, including those written after the
last sync), a blackout still waiting to be silenced in a live MP3 or VOX file is silenced, and
its row completed with what the file holds, stop reason ``interrupted``. Nothing on disk is
thrown away.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from recorder.blackout import apply_pending
from recorder.codecs import probe
from recorder.codecs.wav import read_wav_info, wav_header
from recorder.errors import CodecError, StoreError
from recorder.paths import sha256_file
from recorder.store import FinishedRecording, RecordingRow, Store

logger = logging.getLogger(__name__)

STOP_INTERRUPTED = "interrupted"


def repair_wav(path: Path) -> None:
    """Make a crashed WAV's header count every whole frame in the file; drop a partial frame."""
    info = read_wav_info(path)
    header = wav_header(info.sample_rate, info.channels, info.data_bytes, info.format_tag)
    if len(header) != info.data_offset:
        raise CodecError(f"{path}: header of {info.data_offset} bytes is not one of ours")
    with path.open("r+b") as f:
        f.write(header)
        f.truncate(info.data_offset + info.data_bytes)
        f.flush()
        os.fsync(f.fileno())



def complete_interrupted(store: Store, dry_run: bool = False) -> list[RecordingRow]:
    """Repair and complete every recording a crash left in progress; returns their rows.

    ``dry_run`` only returns the rows, changing neither files nor rows.
    """
    try:
        rows = store.interrupted_recordings()
    except StoreError:
        logger.exception("cannot list recordings interrupted by a crash; they stay as they are")
        return []
    if dry_run:
        return rows
    for row in rows:
        _complete(store, row)
    if rows:
        logger.warning("%d recording(s) were interrupted by a crash or power loss and have been "
                       "completed from their files", len(rows))
    return rows


def _complete(store: Store, row: RecordingRow) -> None:
    path = Path(row.filename)
    duration, size, digest, stop_time = 0.0, 0, "", row.start_time
    try:
        if path.suffix.lower() == ".wav":
            repair_wav(path)
        if row.filename and apply_pending(path):
            logger.info("RECORDID %d: a blackout the crash interrupted is now silence in %s",
                        row.ident, path)
        info = probe(path)
        duration = info.duration
        size, digest = path.stat().st_size, sha256_file(path)
        stop_time = max(row.start_time, path.stat().st_mtime)
    except (OSError, CodecError):
        logger.exception("RECORDID %d: %s cannot be read back; its row is completed empty",
                         row.ident, path)
    try:
        store.finish_recording(row.ident, FinishedRecording(
            stop_time=stop_time, duration=duration, audio_size=size, audio_hash=digest,
            stop_reason=STOP_INTERRUPTED, lost_samples=0))
    except StoreError:
        logger.exception("RECORDID %d: cannot complete its row", row.ident)
        return
    logger.info("RECORDID %d (%s): %.2f s recovered from %s", row.ident, row.device_id,
                duration, path)
