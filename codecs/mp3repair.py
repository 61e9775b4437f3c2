"""Repair of a live MP3 a crash cut short: whole frames kept, the Info tag made to count them.

The MP3 writer (codecs/mp3.py) rewrites its Info tag at every sync, so a killed process leaves
a file whose tag counts the frames of its last sync, possibly followed by more frames and a
frame cut off mid-write. Decoders that trust the tag would stop at the last sync; some choke on
the cut frame. The repair keeps every whole frame, drops the cut one, and writes the tag the
writer would have written for them (no re-encoding: the audio stays bit for bit).
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import BinaryIO

from recorder.codecs.mp3 import Mp3Writer
from recorder.errors import CodecError


def _frame_bytes(writer: Mp3Writer, header: int) -> int | None:
    """The length of the frame ``header`` starts, or None if it is not one of this stream's."""
    layout = writer._layout
    if header >> 21 != 0x7FF or ((header >> 19) & 3) != layout.version:
        return None
    if ((header >> 17) & 3) != 1 or ((header >> 10) & 3) != layout.rate_index:
        return None  # not Layer III, or another rate: not a frame of this stream
    index = (header >> 12) & 15
    if not 0 < index < len(layout.bitrates):
        return None
    return layout.frame_bytes(layout.bitrates[index], writer.sample_rate, (header >> 9) & 1)


def plan_mp3_repair(data: BinaryIO, size: int, sample_rate: int, channels: int, *,
                    bitrate: int | None = None, quality: int | None = None
                    ) -> tuple[int, bytes, int]:
    """For an MP3 of ``size`` bytes read from ``data`` (written by Mp3Writer with these
    settings): (the bytes its whole frames end at, the tag counting them, those frames)."""
    kwargs = {"quality": quality} if quality is not None else {}
    # A writer with the recording's settings, never written to: its layout reads the frame
    # headers, and its tag is the one the recording's writer would have written.
    writer = Mp3Writer(io.BytesIO(), sample_rate, channels, bitrate, **kwargs)
    tag_bytes = writer._tag_bytes
    data.seek(0)
    if size < tag_bytes or data.read(2) != writer._tag(0, 0, 0)[:2]:
        raise CodecError("does not start with this recorder's MP3 tag frame")
    pos, frames = tag_bytes, 0
    while pos + 4 <= size:
        data.seek(pos)
        length = _frame_bytes(writer, int.from_bytes(data.read(4), "big"))
        if length is None or pos + length > size:
            break
        pos += length
        frames += 1
    # Padding 0: how many samples the last frames were padded with is lost with the process,
    # so the file plays every whole frame (a few ms more than was captured, never less).
    return pos, writer._tag(frames, pos, 0), frames


def repair_mp3(path: Path, sample_rate: int, channels: int, bitrate: int | None = None,
               quality: int | None = None) -> int:
    """Make ``path`` (written by Mp3Writer with these settings) end on a whole frame with a
    tag counting every frame; returns the number of audio frames kept."""
    with path.open("r+b") as f:
        size = f.seek(0, 2)
        try:
            end, tag, frames = plan_mp3_repair(f, size, sample_rate, channels,
                                               bitrate=bitrate, quality=quality)
        except CodecError as exc:
            raise CodecError(f"{path}: {exc}") from exc
        f.seek(0)
        f.write(tag)
        f.truncate(end)
        f.flush()
        os.fsync(f.fileno())
    return frames


__all__ = ["plan_mp3_repair", "repair_mp3"]
