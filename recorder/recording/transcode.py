"""After-call transcoding: a finished crash-safe PCM WAV becomes the stored format, atomically.

Calls are recorded into PCM WAV (whose header is kept valid while recording) and handed to a
``Transcoder`` when they end. A bounded pool of worker threads converts each one (lameenc
releases the GIL, so MP3 work runs on every core) and replaces it without a moment where the
recording has no playable file:

1. encode into ``<name>.<ext>.part`` in the same directory, ``fsync`` it;
2. rename it to ``<name>.<ext>`` and ``fsync`` the directory: the new file now exists for good;
3. call ``done(source_wav, result, size, sha256)`` so the caller points its row at the result;
4. only then delete the WAV (and ``fsync`` the directory again).

A crash at any point leaves the WAV, the finished file, or both. ``recover(directory)``, called
at start-up before recording resumes, removes leftover ``.part`` files and queues every WAV
again; a WAV whose finished file already exists is done again (its ``done`` may not have run),
which replaces that file atomically and calls ``done`` again, so ``done`` must be idempotent.
Stopping does not wait for the queue: what was not converted is still a WAV, and ``recover``
picks it up at the next start.

Targets whose extension is also ``.wav`` (G.711) are refused: they would replace their source
under the same name, and the crash windows above could not be told apart. G.711 is cheap and as
crash-safe as PCM, so such recordings are written in G.711 while they are recorded.
"""

from __future__ import annotations

import io
import logging
import os
import queue
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from recorder.codecs.convert import convert
from recorder.codecs.formats import get_format
from recorder.durable import fsync_directory
from recorder.errors import CodecError
from recorder.recording.paths import sha256_file

logger = logging.getLogger(__name__)

Done = Callable[[Path, Path, int, str], None]

PART_SUFFIX = ".part"
SOURCE_SUFFIX = ".wav"
DEFAULT_WORKERS = 2


class _SyncedFile(io.BufferedWriter):
    """A file whose ``close()`` first pushes its data to the disk (writers close their file)."""

    def close(self) -> None:
        if not self.closed:
            try:
                self.flush()
                os.fsync(self.fileno())
            finally:
                super().close()


def target_path(wav: Path, fmt: str) -> Path:
    """Where the transcoded copy of ``wav`` goes: same directory and name, the format's suffix."""
    return wav.with_suffix("." + get_format(fmt).extension)


def part_path(final: Path) -> Path:
    return final.with_name(final.name + PART_SUFFIX)


def transcode_file(wav: Path, fmt: str, done: Done | None = None,
                   options: Mapping[str, Any] | None = None) -> Path:
    """Convert ``wav`` to ``fmt`` in place by the four steps above; returns the new file.

    Raises CodecError (or OSError) with the WAV untouched; a ``done`` that raises leaves the
    WAV in place too (with the finished file beside it, to be done again by ``recover``).
    """
    final = target_path(wav, fmt)
    if final == wav:
        raise CodecError(f"{fmt} files end in .wav too: record them as {fmt} directly")
    part = part_path(final)
    try:
        raw = open(part, "wb", buffering=0)  # noqa: SIM115 - handed to the writer, which closes it
        convert(wav, _SyncedFile(raw), fmt, source_format="wav", **dict(options or {}))
        part.replace(final)
        fsync_directory(final.parent)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    size, digest = final.stat().st_size, sha256_file(final)
    if done is not None:
        done(wav, final, size, digest)
    wav.unlink(missing_ok=True)
    fsync_directory(final.parent)
    logger.info("%s → %s (%d bytes)", wav.name, final.name, size)
    return final


def find_unfinished(directory: Path, fmt: str) -> list[Path]:
    """Clean up after a crash: remove ``.part`` files; every WAV left, oldest first."""
    extension = "." + get_format(fmt).extension
    for part in sorted(directory.rglob("*" + extension + PART_SUFFIX)):
        logger.warning("removing %s, left by a transcoding that did not finish", part)
        part.unlink(missing_ok=True)
    wavs = [p for p in directory.rglob("*" + SOURCE_SUFFIX) if p.is_file()]
    for wav in wavs:
        if wav.with_suffix(extension).exists():
            logger.warning("%s was transcoded but not yet removed: doing it again", wav)
    return sorted(wavs, key=lambda p: (p.stat().st_mtime, str(p)))


class Transcoder:
    """A bounded pool of threads converting finished WAVs to ``fmt``; see the module docstring."""

    def __init__(self, fmt: str, done: Done, workers: int = DEFAULT_WORKERS,
                 options: Mapping[str, Any] | None = None) -> None:
        spec = get_format(fmt)
        if spec.extension == SOURCE_SUFFIX[1:]:
            raise CodecError(f"cannot transcode WAV recordings to {fmt} after the call")
        if workers < 1:
            raise ValueError("a transcoder needs at least one worker")
        self.format = fmt
        self.extension = spec.extension
        self._done = done
        self._options = dict(options or {})
        self._queue: queue.Queue[Path | None] = queue.Queue()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._wanted: set[Path] = set()  # queued or being converted
        self._stopping = False
        self.failed = 0
        self.converted = 0
        self._threads = [threading.Thread(target=self._run, name=f"transcode-{i}", daemon=True)
                         for i in range(workers)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def submit(self, wav: Path) -> bool:
        """Queue ``wav``; False if it is already queued or being converted, or if stopping."""
        with self._lock:
            if self._stopping or wav in self._wanted:
                return False
            self._wanted.add(wav)
        self._queue.put(wav)
        return True

    def recover(self, directory: Path) -> list[Path]:
        """After a crash or restart: clean ``directory`` up and queue what it still needs."""
        wavs = find_unfinished(directory, self.format)
        queued = [wav for wav in wavs if self.submit(wav)]
        if queued:
            logger.info("transcoding %d recordings left from before the start", len(queued))
        return queued

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._wanted)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until nothing is queued or being converted."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._wanted, timeout)

    def stop(self) -> None:
        """Finish the files being converted; leave the queued ones (they stay WAVs)."""
        with self._lock:
            self._stopping = True
        for _ in self._threads:
            self._queue.put(None)

    def join(self, timeout: float | None = None) -> bool:
        for thread in self._threads:
            if thread.ident is not None:
                thread.join(timeout)
        return not any(t.is_alive() for t in self._threads)

    def _run(self) -> None:
        while True:
            wav = self._queue.get()
            if wav is None:
                return
            with self._lock:
                skip = self._stopping
            try:
                if not skip:
                    self._one(wav)
            finally:
                with self._idle:
                    self._wanted.discard(wav)
                    self._idle.notify_all()

    def _one(self, wav: Path) -> None:
        if not wav.exists():
            logger.warning("%s vanished before it could be transcoded", wav)
            return
        try:
            transcode_file(wav, self.format, self._done, self._options)
            self.converted += 1
        except Exception:
            self.failed += 1
            logger.exception("transcoding %s to %s failed; the WAV stays", wav, self.format)
