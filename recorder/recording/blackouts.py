"""A call's blackouts as the threads share them, and silencing them in files already written.

``Blackouts`` holds one call's ranges (``recorder.rules.blackout`` says what they mean): the API
opens and closes them, the sessions read them as they write. Audio that had already reached a
file when a blackout reaching back in time arrived is silenced in the file itself
(``silence_file``): in place for PCM and G.711 WAV, by decoding and re-encoding for MP3 and VOX
(and for an encrypted file of any format, re-encoded sealed under its own key).
A live MP3 or VOX keeps what it must silence in a pending file beside it until its close, so a
crash cannot leave that audio in the file (``write_pending``, ``apply_pending``).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO, cast

from recorder.codecs.convert import read_audio
from recorder.codecs.formats import open_writer, rewritten_start
from recorder.codecs.stored import is_encrypted
from recorder.codecs.wav import (
    G711_HEADER_BYTES,
    HEADER_BYTES,
    WAVE_FORMAT_ALAW,
    WAVE_FORMAT_MULAW,
    WAVE_FORMAT_PCM,
    read_wav_info,
)
from recorder.crypt.access import installed_keys, reseal_as
from recorder.errors import CodecError
from recorder.rules.blackout import OPEN, Range, running, started, stopped, zero_ranges

logger = logging.getLogger(__name__)

# Next to a live MP3 or VOX file whose written audio a blackout covers until the file is closed
# and re-encoded: what to silence, so a crash before then cannot leave the audio in the file.
PENDING_SUFFIX = ".blackout.json"


class Blackouts:
    """A call's blacked-out ranges; thread-safe (the API adds, the writer reads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ranges: list[list[int]] = []  # [start, end]; end OPEN while running

    @property
    def active(self) -> bool:
        with self._lock:
            return running(self._ranges)

    @property
    def never(self) -> bool:
        """No blackout was ever started: the writer skips the ranges (and their lock) then.
        Read without the lock: a blackout started just after is silenced in the file by the
        session's ``blackout_reached_back``, as one started just after ``ranges()`` was read
        always was."""
        return not self._ranges

    def start(self, position: int) -> None:
        with self._lock:
            started(self._ranges, position)

    def stop(self, position: int) -> Range:
        """End the running blackout at ``position``, never before its start (the manual)."""
        with self._lock:
            return stopped(self._ranges, position)

    def ranges(self) -> list[Range]:
        with self._lock:
            return [(a, b) for a, b in self._ranges if b > a]


def in_file(ranges: Sequence[Range], start: int) -> list[tuple[int, int | None]]:
    """A call's blackout ranges (absolute positions) as frames of a file beginning at
    ``start``; a running one's end is None (it lasts to wherever the file ends)."""
    return [(max(0, a - start), None if b == OPEN else b - start)
            for a, b in ranges if b > start]


def file_seconds(ranges: Sequence[tuple[int, int | None]], frames: int,
                 sample_rate: int) -> tuple[tuple[float, float], ...]:
    """File-frame ranges (``in_file``'s) as (start, end) seconds within a file of ``frames``:
    what the store keeps of a complete recording's blackouts (to the millisecond)."""
    found = []
    for a, b in ranges:
        end = frames if b is None else min(b, frames)
        if end > a:
            found.append((round(a / sample_rate, 3), round(end / sample_rate, 3)))
    return tuple(found)


def silence_file(path: Path, fmt: str, ranges: Sequence[Range], *, options: dict[str, object]
                 | None = None) -> None:
    """Make ``ranges`` (frame offsets from the file's first frame) digital silence in ``path``.

    WAV files are patched in place. Other formats are decoded, silenced and re-encoded to a
    temporary file that replaces the original atomically.
    """
    ranges = [(max(0, a), b) for a, b in ranges if b > max(0, a)]
    if not ranges:
        return
    encrypted = is_encrypted(path)
    if path.suffix.lower() == ".wav" and not encrypted:
        _patch_wav(path, ranges)
        return
    opts = dict(options or {})
    vox_rate = opts.get("rate") if fmt == "vox" else None
    audio, rate = read_audio(path, fmt, **({"vox_rate": vox_rate} if isinstance(vox_rate, int)
                                            else {}))
    samples = audio.reshape(len(audio), -1) if audio.ndim == 1 else audio
    zero_ranges(samples, 0, ranges)
    part = path.with_name(path.name + ".blackout")
    try:
        file: BinaryIO = part.open("wb")
        if encrypted:
            # Sealed as it is written, under the recording's own key and file id: the rename
            # below replaces it whole, and the key beside it and in its row stay true.
            file = cast(BinaryIO, reseal_as(path, file, installed_keys(),
                                            prologue=rewritten_start(fmt, rate,
                                                                     samples.shape[1])))
        writer = open_writer(fmt, file, rate, samples.shape[1], **opts)
        writer.write(samples if samples.shape[1] > 1 else samples[:, 0])
        writer.close()  # it owns the file and closes it
        with part.open("rb") as f:
            os.fsync(f.fileno())
        part.replace(path)
    except BaseException:
        part.unlink(missing_ok=True)
        raise


_SILENCE_BYTE = {WAVE_FORMAT_MULAW: b"\xff", WAVE_FORMAT_ALAW: b"\xd5"}


def _patch_wav(path: Path, ranges: Sequence[Range]) -> None:
    info = read_wav_info(path)
    if info.format_tag not in (WAVE_FORMAT_PCM, *_SILENCE_BYTE):
        raise CodecError(f"{path}: cannot silence WAV format {info.format_tag}")
    fill = b"\x00\x00" if info.format_tag == WAVE_FORMAT_PCM else _SILENCE_BYTE[info.format_tag]
    frame_bytes = info.block_align
    with path.open("r+b") as f:
        for a, b in ranges:
            end = min(b, info.frames)
            if end <= a:
                continue
            f.seek(info.data_offset + a * frame_bytes)
            f.write(fill * (info.channels * (end - a)))
        f.flush()
        os.fsync(f.fileno())


# A live WAV's silence and where its samples start, by stored format.
_WAV_SILENCE = {"wav": (b"\x00\x00", HEADER_BYTES), "wav-ulaw": (b"\xff", G711_HEADER_BYTES),
                "wav-alaw": (b"\xd5", G711_HEADER_BYTES)}


def silence_sealed_wav(sealed: BinaryIO, fmt: str, ranges: Sequence[Range], *, channels: int,
                       frames: int) -> None:
    """Silence ``ranges`` (file frames) of a live encrypted WAV through its writer's file
    (``recorder.crypt.writer.SealedWriter``): each chunk touched is resealed with the silence in
    it, under a new nonce, and the file made durable. The write position is left at the end,
    where the writer goes on appending."""
    if fmt not in _WAV_SILENCE:
        raise CodecError(f"cannot silence an encrypted {fmt} file")
    fill, data_offset = _WAV_SILENCE[fmt]
    frame_bytes = len(fill) * channels
    for a, b in ranges:
        end = min(b, frames)
        if end <= max(0, a):
            continue
        sealed.seek(data_offset + max(0, a) * frame_bytes)
        sealed.write(fill * (channels * (end - max(0, a))))
    sealed.seek(0, 2)
    fsync = getattr(sealed, "fsync", None)
    if callable(fsync):
        fsync()


def pending_path(path: Path) -> Path:
    return path.with_name(path.name + PENDING_SUFFIX)


def write_pending(path: Path, fmt: str, ranges: Sequence[Range],
                  options: Mapping[str, Any] | None = None) -> None:
    """Record durably that ``ranges`` (file frames) of ``path`` must become silence."""
    pending = pending_path(path)
    part = pending.with_name(pending.name + ".part")
    document = {"format": fmt, "options": dict(options or {}),
                "ranges": [[a, b] for a, b in ranges]}
    with part.open("w", encoding="utf-8") as f:
        json.dump(document, f)
        f.flush()
        os.fsync(f.fileno())
    part.replace(pending)


def apply_pending(path: Path) -> bool:
    """Silence what a crash left pending for ``path`` (recovery); True if there was any."""
    pending = pending_path(path)
    try:
        document = json.loads(pending.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return False
    except (OSError, ValueError) as exc:
        raise CodecError(f"{pending}: cannot read the pending blackout: {exc}") from exc
    ranges = [(int(a), int(b)) for a, b in document["ranges"]]
    silence_file(path, str(document["format"]), ranges, options=dict(document["options"]))
    pending.unlink()
    return True
