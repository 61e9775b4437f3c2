"""What the browser is given to play, and files made for download in another format.

A browser plays PCM WAV and MP3; a recording stored otherwise (VOX, G.711 WAV) is played from a
rendition: the recording converted to PCM WAV by the export code (``recorder.archive.export``),
kept in ``data_dir/tmp/portal`` for its Range requests (seeks), the least recently used removed
beyond ``KEEP``, all of them at the portal's start. One side of a stereo recording is a
rendition too. A download in another format (CAV included) and an e-mail's attachment are made
there and removed once sent. Those made from an encrypted recording are encrypted work files
(docs/encryption.md, "Work files"), decrypted as they are sent.

Every one of them is admitted by the export work area first (``recorder.archive.workspace``,
as the API's exports are): its bytes are reserved in ``api.export_max_bytes`` while the file
exists, claimed from the disk guard while it is written (the live recordings' room comes
first), and it counts among ``api.export_concurrency`` while it is made. A rendition that does
not fit makes room by removing the least recently played ones first; what still does not fit is
refused (``ResultError``: 2, no room; 47, busy) before anything is written.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import threading
from pathlib import Path

import numpy as np

from recorder.archive.export import (
    EXPORT_FORMATS,
    export_bytes,
    export_recording,
    extension,
    sealed_bytes,
    work_file,
)
from recorder.archive.workspace import Export, ExportWorkspace
from recorder.codecs.convert import iter_audio, probe
from recorder.codecs.formats import open_writer
from recorder.errors import ResultError
from recorder.store.records import RecordingRow

logger = logging.getLogger(__name__)

NATIVE = {"wav": "audio/wav", "mp3": "audio/mpeg"}  # stored formats a browser plays as they are
KEEP = 16  # renditions kept for seeking
DOWNLOAD_FORMATS = EXPORT_FORMATS  # every export format, CAV included (docs/cav.md)
# E-mail: the export formats but CAV (the portal's e-mail form asks no password for one).
MAIL_FORMATS = tuple(f for f in EXPORT_FORMATS if f != "cav")
SIDES = ("left", "right")  # a stereo recording's sides, as its file's channels 0 and 1
_WAV_HEADER = 1024  # a PCM WAV's header, with room to spare


class Renditions:
    """Renditions and download files in one directory, made on the caller's (worker) thread,
    each admitted by ``workspace`` (an unlimited one if none is given)."""

    def __init__(self, directory: Path, keep: int = KEEP,
                 workspace: ExportWorkspace | None = None) -> None:
        self.directory = directory
        self.keep = keep
        self.workspace = workspace if workspace is not None else ExportWorkspace(directory)
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
                with self._admitted(f"playing recording {row.ident}",
                                    export_bytes(row, "wav")) as made:
                    export_recording(row, "wav", path)
                    made.hand_over(path)
                self._trim()
        return path, "audio/wav"

    def side(self, row: RecordingRow, stored: Path, side: str) -> Path:
        """One side of a stereo recording (``left`` or ``right``) as a mono PCM WAV;
        ValueError if the recording is not stereo."""
        played, content_type = self.playable(row, stored)
        fmt = "mp3" if content_type == "audio/mpeg" else "wav"
        mark = (row.audio_hash or str(row.audio_size or 0))[:16]
        path = self.directory / f"play-{row.ident}-{mark}-{side}.wav"
        with self._lock:
            if path.exists():
                os.utime(path)
                return path
            info = probe(played, fmt)
            if info.channels != 2:
                raise ValueError("the recording is not stereo")
            column = SIDES.index(side)
            part = path.with_name(path.name + ".part")
            with self._admitted(f"one side of recording {row.ident}",
                                sealed_bytes(info.frames * 2 + _WAV_HEADER)) as made:
                try:
                    _, blocks = iter_audio(played, fmt)
                    # An encrypted recording's side is an encrypted work file.
                    writer = open_writer("wav", work_file(part, [stored]), info.sample_rate, 1)
                    for block in blocks:
                        writer.write(np.ascontiguousarray(block[:, column]))
                    writer.close()
                    part.replace(path)
                except BaseException:
                    part.unlink(missing_ok=True)
                    raise
                made.hand_over(path)
            self._trim()
        return path

    def download(self, row: RecordingRow, fmt: str, *, password: str | None = None) -> Path:
        """The recording converted to ``fmt`` in a file of its own (a CAV encrypted with
        ``password`` if one is given); the caller removes it, and its bytes stay reserved in
        the work area until then."""
        path = self.directory / f"download-{secrets.token_hex(8)}.{extension(fmt)}"
        estimate = export_bytes(row, fmt)
        with self._lock:  # (only while renditions may be removed to make room)
            admitted = self._admitted(f"recording {row.ident} as {fmt}", estimate)
        with admitted as made:
            export_recording(row, fmt, path, password=password)
            made.hand_over(path)
        return path

    def _admitted(self, what: str, estimate: int) -> Export:
        """A place in the work area for ``estimate`` bytes; renditions kept for seeking are
        removed, least recently played first, while that makes room. Under ``_lock``."""
        while True:
            try:
                return self.workspace.admit(what, estimate)
            except ResultError:
                # Too many being made at once is not a matter of room: nothing to remove.
                busy = self.workspace.running >= self.workspace.concurrency
                if busy or not self._drop_oldest():
                    raise

    def _drop_oldest(self) -> bool:
        plays = sorted(self.directory.glob("play-*"), key=_mtime)
        for old in plays:
            with contextlib.suppress(OSError):
                old.unlink()
                logger.info("portal: removed the rendition %s to make room", old.name)
                return True
        return False

    def _trim(self) -> None:
        plays = sorted(self.directory.glob("play-*"), key=_mtime)
        for old in plays[:-self.keep]:
            with contextlib.suppress(OSError):
                old.unlink()


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
