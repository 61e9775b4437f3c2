"""What the browser is given to play, and files made for download in another format.

A browser plays PCM WAV and MP3; a recording stored otherwise (VOX, G.711 WAV) is played from a
rendition: the recording converted to PCM WAV by the export code (``recorder.archive.export``),
kept in ``data_dir/tmp/portal`` for its Range requests (seeks), the least recently used removed
beyond ``KEEP``, all of them at the portal's start. A download in another format is made there
too and removed once sent. Those of an encrypted recording, and its sides, are encrypted work
files (docs/encryption.md), decrypted as they are sent.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import threading
from pathlib import Path

import numpy as np

from recorder.archive.export import EXPORT_FORMATS, export_recording, extension, work_file
from recorder.codecs.convert import iter_audio
from recorder.codecs.formats import open_writer
from recorder.store.records import RecordingRow

logger = logging.getLogger(__name__)

NATIVE = {"wav": "audio/wav", "mp3": "audio/mpeg"}  # stored formats a browser plays as they are
KEEP = 16  # renditions kept for seeking
# Download formats offered: the export formats but CAV, whose password the portal does not ask.
DOWNLOAD_FORMATS = tuple(f for f in EXPORT_FORMATS if f != "cav")
SIDES = ("left", "right")  # a stereo recording's sides, as its file's channels 0 and 1


class Renditions:
    """Renditions and download files in one directory, made on the caller's (worker) thread."""

    def __init__(self, directory: Path, keep: int = KEEP) -> None:
        self.directory = directory
        self.keep = keep
        self._lock = threading.Lock()  # two plays of one recording make its rendition once
        directory.mkdir(parents=True, exist_ok=True)
        for leftover in directory.iterdir():
            with contextlib.suppress(OSError):
                leftover.unlink()

    def playable(self, row: RecordingRow, stored: Path) -> tuple[Path, str]:
        """The file to play and its content type: the stored file, or its rendition."""
        if row.media_format in NATIVE:
            return stored, NATIVE[row.media_format]
        # Named by what the file holds, so a file changed since (after-call encoding) gets
        # a rendition of its own.
        mark = (row.audio_hash or str(row.audio_size or 0))[:16]
        path = self.directory / f"play-{row.ident}-{mark}.wav"
        with self._lock:
            if path.exists():
                os.utime(path)
            else:
                export_recording(row, "wav", path)
                self._trim()
        return path, "audio/wav"

    def side(self, row: RecordingRow, stored: Path, side: str) -> Path:
        """One side of a stereo recording (``left`` or ``right``) as a mono PCM WAV;
        ValueError if the recording is not stereo."""
        played, content_type = self.playable(row, stored)
        mark = (row.audio_hash or str(row.audio_size or 0))[:16]
        path = self.directory / f"play-{row.ident}-{mark}-{side}.wav"
        with self._lock:
            if path.exists():
                os.utime(path)
                return path
            info, blocks = iter_audio(played, "mp3" if content_type == "audio/mpeg" else "wav")
            if info.channels != 2:
                raise ValueError("the recording is not stereo")
            column = SIDES.index(side)
            part = path.with_name(path.name + ".part")
            try:
                # An encrypted recording's side is an encrypted work file (docs/encryption.md).
                writer = open_writer("wav", work_file(part, [stored]), info.sample_rate, 1)
                for block in blocks:
                    writer.write(np.ascontiguousarray(block[:, column]))
                writer.close()
                part.replace(path)
            except BaseException:
                part.unlink(missing_ok=True)
                raise
            self._trim()
        return path

    def download(self, row: RecordingRow, fmt: str) -> Path:
        """The recording converted to ``fmt`` in a file of its own; the caller removes it."""
        path = self.directory / f"download-{secrets.token_hex(8)}.{extension(fmt)}"
        return export_recording(row, fmt, path)

    def _trim(self) -> None:
        plays = sorted(self.directory.glob("play-*"), key=lambda p: p.stat().st_mtime)
        for old in plays[:-self.keep]:
            with contextlib.suppress(OSError):
                old.unlink()
