"""Export: a stored recording, whatever its stored format, as the format a client asks for.

``wav``, ``wav-ulaw``, ``wav-alaw``, ``mp3`` and ``vox`` are converted from the stored file;
``cav`` wraps the stored file as it is with the recording's metadata (encrypted when a password is
given, see docs/cav.md). The result is written next to its final name and renamed into place, so
a reader never sees half an export. An unknown format is a CodecError naming the known ones.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from recorder.codecs import FORMATS, convert, get_format
from recorder.codecs.cav import write_cav
from recorder.errors import CodecError
from recorder.store import RecordingRow

EXPORT_FORMATS = ("wav", "wav-ulaw", "wav-alaw", "mp3", "vox", "cav")


def recording_metadata(row: RecordingRow) -> dict[str, object]:
    """What a CAV carries about its recording: the row's identity, times and call metadata."""
    return {
        "RECORDID": row.ident,
        "DEVICEID": row.device_id,
        "CALLINSTANCE": row.call_instance,
        "CHANNEL": row.channel if row.channel is not None else "",
        "STARTTIME": row.start_time,
        "STOPTIME": row.stop_time if row.stop_time is not None else "",
        "DURATION": row.duration if row.duration is not None else "",
        "MEDIAFORMAT": row.media_format,
        "STOPREASON": row.stop_reason or "",
        **{name: value for name, value in row.meta.items() if value},
    }


def export_recording(row: RecordingRow, fmt: str, out: Path, *, password: str | None = None,
                     options: Mapping[str, Any] | None = None) -> Path:
    """Write recording ``row`` to ``out`` as ``fmt``; returns ``out``."""
    if fmt not in EXPORT_FORMATS:
        raise CodecError(f"cannot export as {fmt!r} (formats: {', '.join(EXPORT_FORMATS)})")
    source = Path(row.filename)
    if not source.is_file():
        raise CodecError(f"recording {row.ident} has no file ({source} is missing)")
    part = out.with_name(out.name + ".part")
    try:
        if fmt == "cav":
            with part.open("wb") as f:
                write_cav(f, source, recording_metadata(row), password=password)
                f.flush()
                os.fsync(f.fileno())
        else:
            spec = get_format(fmt)
            chosen = {k: v for k, v in (options or {}).items() if k in spec.options}
            stored = row.media_format if row.media_format in FORMATS else None
            # A recording still waiting for after-call encoding is a WAV whatever its row says.
            if source.suffix.lower() == ".wav" and stored not in ("wav", "wav-ulaw", "wav-alaw"):
                stored = None
            convert(source, part.open("wb"), fmt, source_format=stored, **chosen)
        part.replace(out)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return out
