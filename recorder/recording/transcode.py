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

Encoding writes beside the live recordings, on their disk: before each file the pool claims
the most its result can take from the disk guard (``room``). If that would leave less free
than the floor and the room the recordings in progress need, the file is deferred: it stays a
playable WAV and is tried again every ``DEFER_RETRY_SECONDS`` (``retry_deferred``), or at the
next start. The live recordings always win.

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
from contextlib import nullcontext
from pathlib import Path
from typing import Any, BinaryIO, Protocol, cast

from recorder.codecs.convert import convert
from recorder.codecs.formats import encoded_size, get_format, rewritten_start
from recorder.codecs.stored import is_encrypted
from recorder.codecs.wav import read_wav_info
from recorder.crypt.access import start_sealed
from recorder.crypt.keyring import KeyRing
from recorder.crypt.keys import MasterKey, key_path
from recorder.durable import fsync_directory
from recorder.errors import CodecError
from recorder.recording.paths import sha256_file

logger = logging.getLogger(__name__)

Done = Callable[[Path, Path, int, str], None]

PART_SUFFIX = ".part"
SOURCE_SUFFIX = ".wav"
DEFAULT_WORKERS = 2
DEFER_RETRY_SECONDS = 10.0  # how often files deferred for lack of room are tried again


class Room(Protocol):
    """Where an encoding claims its bytes before it writes (the disk guard)."""

    def claim(self, nbytes: int, what: str) -> str | None:
        """None if ``nbytes`` are now claimed; else why they cannot be, in words."""

    def release(self, nbytes: int) -> None: ...


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
                   options: Mapping[str, Any] | None = None, *,
                   keys: KeyRing | None = None) -> Path:
    """Convert ``wav`` to ``fmt`` in place by the four steps above; returns the new file.

    With ``keys`` that seal (storage.encrypt), or a ``wav`` that is encrypted, the new file is
    encrypted as it is written, under a file key of its own beside it (``.part.key`` until the
    rename), never in clear on disk; ``done`` then finds that key beside the new file.
    Raises CodecError (or OSError) with the WAV untouched; a ``done`` that raises leaves the
    WAV in place too (with the finished file beside it, to be done again by ``recover``).
    """
    final = target_path(wav, fmt)
    if final == wav:
        raise CodecError(f"{fmt} files end in .wav too: record them as {fmt} directly")
    sealed = keys is not None and (keys.seals or is_encrypted(wav))
    # The key the new file's key is wrapped by is held until its row keeps it (a rotation's
    # reload waits for that: recorder/crypt/keyring.py).
    with keys.sealing() if sealed and keys is not None else nullcontext() as master:
        return _transcode(wav, final, fmt, done, options=options, master=master)


def _transcode(wav: Path, final: Path, fmt: str, done: Done | None, *,
               options: Mapping[str, Any] | None, master: MasterKey | None) -> Path:
    part = part_path(final)
    try:
        raw = open(part, "wb", buffering=0)  # noqa: SIM115 - handed to the writer, which closes it
        if master is None:
            out: BinaryIO = _SyncedFile(raw)
        else:
            info = read_wav_info(wav)
            out = cast(BinaryIO, start_sealed(
                part, raw, master, prologue=rewritten_start(fmt, info.sample_rate,
                                                             info.channels)))
        convert(wav, out, fmt, source_format="wav", **dict(options or {}))
        if master is not None:
            with part.open("rb") as written:  # the sealed file closed itself: now durable
                os.fsync(written.fileno())
            # Its key first: a crash between the two leaves the WAV, done again from scratch.
            key_path(part).replace(key_path(final))
        part.replace(final)
        fsync_directory(final.parent)
    except BaseException:
        part.unlink(missing_ok=True)
        key_path(part).unlink(missing_ok=True)
        raise
    size, digest = final.stat().st_size, sha256_file(final)
    if done is not None:
        done(wav, final, size, digest)
    wav.unlink(missing_ok=True)
    key_path(wav).unlink(missing_ok=True)  # an encrypted WAV's key, once the WAV is gone
    fsync_directory(final.parent)
    logger.info("%s → %s (%d bytes)", wav.name, final.name, size)
    return final


def find_unfinished(directory: Path, fmt: str) -> list[Path]:
    """Clean up after a crash: remove ``.part`` files; every WAV left, oldest first."""
    extension = "." + get_format(fmt).extension
    for part in sorted(directory.rglob("*" + extension + PART_SUFFIX)):
        logger.warning("removing %s, left by a transcoding that did not finish", part)
        part.unlink(missing_ok=True)
        key_path(part).unlink(missing_ok=True)  # an encrypted one's key
    wavs = [p for p in directory.rglob("*" + SOURCE_SUFFIX) if p.is_file()]
    for wav in wavs:
        if wav.with_suffix(extension).exists():
            logger.warning("%s was transcoded but not yet removed: doing it again", wav)
    return sorted(wavs, key=lambda p: (p.stat().st_mtime, str(p)))


class Transcoder:
    """A bounded pool of threads converting finished WAVs to ``fmt``; see the module docstring."""

    def __init__(self, fmt: str, done: Done, workers: int = DEFAULT_WORKERS,
                 options: Mapping[str, Any] | None = None, *, room: Room | None = None,
                 retry_seconds: float = DEFER_RETRY_SECONDS, keys: KeyRing | None = None
                 ) -> None:
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
        self._room = room
        self._keys = keys  # storage.key_file's: the results are encrypted (transcode_file)
        self._retry_seconds = retry_seconds
        self._deferred: dict[Path, str] = {}  # waiting for room, and why
        self._told: set[Path] = set()  # deferred files the log has named (once each)
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
            if self._stopping or wav in self._wanted or wav in self._deferred:
                return False
            self._wanted.add(wav)
        self._queue.put(wav)
        return True

    def retry_deferred(self) -> int:
        """Queue again every file deferred for lack of room; returns how many."""
        with self._lock:
            if self._stopping:
                return 0
            again = list(self._deferred)
            self._deferred.clear()
            self._wanted.update(again)
        for wav in again:
            self._queue.put(wav)
        return len(again)

    @property
    def deferred(self) -> int:
        """Files waiting as WAV until there is room to encode them."""
        with self._lock:
            return len(self._deferred)

    def recover(self, directory: Path) -> list[Path]:
        """After a crash or restart: clean ``directory`` up and queue what it still needs."""
        wavs = find_unfinished(directory, self.format)
        queued = [wav for wav in wavs if self.submit(wav)]
        if queued:
            logger.info("transcoding %d recordings left from before the start", len(queued))
        return queued

    @property
    def pending(self) -> int:
        """Files queued, being converted or deferred."""
        with self._lock:
            return len(self._wanted) + len(self._deferred)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until nothing is queued or being converted (deferred files wait for room)."""
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
            with self._lock:
                waiting = bool(self._deferred)
            try:
                # While files wait for room, a worker wakes now and then to try them again.
                wav = self._queue.get(timeout=self._retry_seconds if waiting else None)
            except queue.Empty:
                self.retry_deferred()
                continue
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
        claimed = 0
        if self._room is not None:
            claimed = self._estimate(wav)
            why = self._room.claim(claimed, f"encoding {wav.name} to {self.format}")
            if why is not None:
                self._defer(wav, why)
                return
            with self._lock:
                waited = wav in self._told
                self._told.discard(wav)
            if waited:
                logger.info("after-call: there is room again to encode %s", wav.name)
        try:
            transcode_file(wav, self.format, self._done, self._options, keys=self._keys)
            self.converted += 1
        except Exception:
            self.failed += 1
            logger.exception("transcoding %s to %s failed; the WAV stays", wav, self.format)
        finally:
            if self._room is not None:
                self._room.release(claimed)

    def _estimate(self, wav: Path) -> int:
        """The most the encoded file can take (its WAV's size if the header is unreadable:
        MP3 and VOX are smaller than the PCM they come from)."""
        try:
            info = read_wav_info(wav)
            return encoded_size(self.format, info.frames, info.sample_rate, info.channels,
                                **self._options)
        except (CodecError, OSError):
            return wav.stat().st_size if wav.exists() else 0

    def _defer(self, wav: Path, why: str) -> None:
        """Keep ``wav`` as it is until there is room (the live recordings come first)."""
        with self._lock:
            if self._stopping:
                return  # the next start finds it
            self._deferred[wav] = why
            told = wav in self._told
            self._told.add(wav)
        # Once per file: it is tried again every few seconds for as long as the disk is short.
        if not told:
            logger.warning("after-call encoding waits for room: %s; %s stays a WAV for now "
                           "(tried again every %.0f s)", why, wav.name, self._retry_seconds)
