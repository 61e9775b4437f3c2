"""Blackouts: ranges of a call's audio that must be digital silence in every file of the call.

A call's ``Blackouts`` are sample ranges on its channel's timeline (absolute positions, as the
ring counts them), the last one possibly still open. Sessions zero those ranges as they write
(``zero_ranges``); audio that had already reached a file when a blackout reaching back in time
arrived is silenced in the file itself (``silence_file``): in place for PCM and G.711 WAV, by
decoding and re-encoding for MP3 and VOX.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from recorder.codecs import open_writer, read_audio
from recorder.codecs.wav import WAVE_FORMAT_ALAW, WAVE_FORMAT_MULAW, WAVE_FORMAT_PCM, read_wav_info
from recorder.errors import CodecError

logger = logging.getLogger(__name__)

Range = tuple[int, int]  # [start, end) in absolute sample positions

OPEN = 2**62  # the end of a blackout that has not been stopped yet

# Next to a live MP3 or VOX file whose written audio a blackout covers until the file is closed
# and re-encoded: what to silence, so a crash before then cannot leave the audio in the file.
PENDING_SUFFIX = ".blackout.json"


class BlackoutStateError(Exception):
    """A BLACKOUTSTART while one runs, or a BLACKOUTSTOP with none running."""


class Blackouts:
    """A call's blacked-out ranges; thread-safe (the API adds, the writer reads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ranges: list[list[int]] = []  # [start, end]; end OPEN while running

    @property
    def active(self) -> bool:
        with self._lock:
            return bool(self._ranges) and self._ranges[-1][1] == OPEN

    def start(self, position: int) -> None:
        with self._lock:
            if self._ranges and self._ranges[-1][1] == OPEN:
                raise BlackoutStateError("a blackout is already running")
            self._ranges.append([max(0, position), OPEN])

    def stop(self, position: int) -> Range:
        """End the running blackout at ``position``, never before its start (the manual)."""
        with self._lock:
            if not self._ranges or self._ranges[-1][1] != OPEN:
                raise BlackoutStateError("no blackout is running")
            current = self._ranges[-1]
            current[1] = max(current[0], position)
            return current[0], current[1]

    def ranges(self) -> list[Range]:
        with self._lock:
            return [(a, b) for a, b in self._ranges if b > a]


def overlapping(ranges: Sequence[Range], start: int, end: int) -> list[Range]:
    """The parts of ``ranges`` inside [start, end)."""
    return [(max(a, start), min(b, end)) for a, b in ranges if a < end and b > start]


def zero_ranges(samples: npt.NDArray[np.int16], first: int, ranges: Sequence[Range]) -> None:
    """Silence, in place, the frames of ``samples`` (frame 0 at position ``first``) in ranges."""
    for a, b in overlapping(ranges, first, first + len(samples)):
        samples[a - first:b - first] = 0


def silence_file(path: Path, fmt: str, ranges: Sequence[Range], *, options: dict[str, object]
                 | None = None) -> None:
    """Make ``ranges`` (frame offsets from the file's first frame) digital silence in ``path``.

    WAV files are patched in place. Other formats are decoded, silenced and re-encoded to a
    temporary file that replaces the original atomically.
    """
    ranges = [(max(0, a), b) for a, b in ranges if b > max(0, a)]
    if not ranges:
        return
    if path.suffix.lower() == ".wav":
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
        writer = open_writer(fmt, part.open("wb"), rate, samples.shape[1], **opts)
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
