"""Export: a stored recording, whatever its stored format, as the format a client asks for.

``wav``, ``wav-ulaw``, ``wav-alaw``, ``mp3`` and ``vox`` are converted from the stored file;
``cav`` wraps the stored file as it is with the recording's metadata (encrypted when a password is
given, see docs/cav.md). The result is written next to its final name and renamed into place, so
a reader never sees half an export. An unknown format is a CodecError naming the known ones.

``export_combined`` plays several recordings one after the other into one file (COMBINEDEXPORT,
COMBINEDEMAIL), bringing them to one rate and channel count first; ``export_zip`` puts the
single exports of several recordings in one ZIP file (MULTIEXPORT, EMAIL of several IDENTs).
Both stream: no recording is ever held in memory whole.

``export_bytes``, ``combined_bytes`` and ``zip_bytes`` say, from the stored files' headers and
before anything is written, at most how much of the disk each export takes while it is made
(its scratch files included): the work area's budget reserves that much (docs/api-notes.md).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt

from recorder.archive.cav import SEGMENT_BYTES, TAG_BYTES, write_cav
from recorder.codecs.buffered import fsync_file
from recorder.codecs.convert import AudioInfo, convert, iter_audio, probe
from recorder.codecs.formats import FORMATS, encoded_size, get_format, open_writer
from recorder.codecs.resample import Resampler
from recorder.codecs.stored import is_encrypted, open_stored
from recorder.crypt.access import sealed_if_encrypted
from recorder.crypt.sealed import DEFAULT_CHUNK, HEADER_BYTES, OVERHEAD
from recorder.errors import CodecError
from recorder.store.records import RecordingRow

EXPORT_FORMATS = ("wav", "wav-ulaw", "wav-alaw", "mp3", "vox", "cav")
# What an HTTP response or a mail attachment of each format says it is. VOX has no media type
# of its own, and CAV is ours (docs/cav.md): both are opaque bytes to anything but a reader of
# the format.
MEDIA_TYPES: dict[str, str] = {
    "wav": "audio/wav", "wav-ulaw": "audio/wav", "wav-alaw": "audio/wav", "mp3": "audio/mpeg",
    "vox": "application/octet-stream", "cav": "application/octet-stream",
    "zip": "application/zip",
}
# Formats whose bytes still shrink in a ZIP (PCM and G.711 do; MP3, ADPCM and CAV hardly).
_DEFLATE = frozenset({"wav", "wav-ulaw", "wav-alaw"})
_VOX_RATES = (6000, 8000)


def extension(fmt: str) -> str:
    """The file extension of an export in ``fmt`` ("wav" for the G.711 WAVs too)."""
    return "cav" if fmt == "cav" else get_format(fmt).extension


def export_name(row: RecordingRow, fmt: str) -> str:
    """A download name for ``row`` in ``fmt``: RECORDID and the stored file's name, e.g.
    ``42-1001-09-50-08.mp3``, holding only characters every file system and browser takes."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(row.filename).stem).strip("._") or "recording"
    return f"{row.ident}-{stem[:80]}.{extension(fmt)}"


def _source(row: RecordingRow) -> tuple[Path, str | None, int]:
    """The stored file of ``row``, its format (None: tell from the file) and, for VOX, rate."""
    source = Path(row.filename)
    if not row.filename or not source.is_file():
        raise CodecError(f"recording {row.ident} has no file ({source} is missing)")
    stored = row.media_format if row.media_format in FORMATS else None
    # A recording still waiting for after-call encoding is a WAV whatever its row says.
    if source.suffix.lower() == ".wav" and stored not in ("wav", "wav-ulaw", "wav-alaw"):
        stored = None
    return source, stored, _vox_rate(row, source)


def _vox_rate(row: RecordingRow, source: Path) -> int:
    """The rate of a stored VOX file, which does not say it: 8000 or 6000 (storage.vox_rate),
    whichever its size over the recording's duration is nearer (two samples a byte)."""
    if source.suffix.lower() != ".vox" or not row.duration:
        return row.sample_rate if row.sample_rate in _VOX_RATES else 8000
    with open_stored(source) as plain:  # an encrypted one's plain size
        measured = 2 * plain.seek(0, 2) / row.duration
    return min(_VOX_RATES, key=lambda rate: abs(rate - measured))


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
                     options: Mapping[str, Any] | None = None, in_clear: bool = False) -> Path:
    """Write recording ``row`` to ``out`` as ``fmt``; returns ``out``. An encrypted recording's
    export is an encrypted work file (``work_file``) unless ``in_clear``: a copy the caller
    takes away as it is (``recorderctl export --offline``)."""
    if fmt not in EXPORT_FORMATS:
        raise CodecError(f"cannot export as {fmt!r} (formats: {', '.join(EXPORT_FORMATS)})")
    source, stored, vox_rate = _source(row)
    part = out.with_name(out.name + ".part")
    try:
        made_from = [] if in_clear else [source]
        if fmt == "cav":
            with work_file(part, made_from) as f:
                write_cav(f, source, recording_metadata(row), password=password)
                fsync_file(f)
        elif stored == fmt and not options:
            # Already in that format: the stored bytes, not a decode and re-encode (which would
            # cost a lossy format a generation and every Range request a transcode); those of
            # an encrypted recording decrypted (storage.encrypt) into an encrypted work file.
            if is_encrypted(source):
                _copy_plain(source, part, made_from)
            else:
                _link_or_copy(source, part)
        else:
            spec = get_format(fmt)
            chosen = {k: v for k, v in (options or {}).items() if k in spec.options}
            convert(source, work_file(part, made_from), fmt, source_format=stored,
                    vox_rate=vox_rate, **chosen)
        part.replace(out)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return out


def _link_or_copy(source: Path, target: Path) -> None:
    """``target`` with ``source``'s bytes: a hard link when both are on one file system (the
    recording is never written to again once complete), else a copy."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def work_file(path: Path, sources: Sequence[Path]) -> BinaryIO:
    """``path`` opened for an export of ``sources``: encrypted as it is written when one of
    them is an encrypted recording (docs/encryption.md, "Work files"), so no export, e-mail
    attachment or rendition puts their audio on disk in clear; readers open it through
    ``recorder.codecs.stored``, as they open the recordings."""
    return sealed_if_encrypted(path.open("wb"), sources)


def _copy_plain(source: Path, target: Path, made_from: Sequence[Path]) -> None:
    """``target`` (a work file made from ``made_from``: encrypted if it is) with the plain
    bytes of the encrypted recording ``source``, every chunk authenticated on the way
    (CodecError, and no ``target``, if one does not)."""
    with open_stored(source) as plain, work_file(target, made_from) as out:
        shutil.copyfileobj(plain, out, 1 << 20)
        fsync_file(out)


def export_sealed(row: RecordingRow, fmt: str, out: Path, password: str, work_dir: Path, *,
                  options: Mapping[str, Any] | None = None) -> Path:
    """An encrypted CAV of ``row`` whose audio is in ``fmt`` (EXPORT with ENCRYPT=Y and an audio
    MEDIA_FORMAT: the manual's example asks for an encrypted MP3, and CAV is how the recorder
    encrypts). ``fmt`` "cav" is the stored file as it is, as ``export_recording`` does."""
    if fmt == "cav":
        return export_recording(row, "cav", out, password=password)
    with _scratch(work_dir, extension(fmt)) as audio:
        converted = export_recording(row, fmt, audio, options=options)
        part = out.with_name(out.name + ".part")
        try:
            # Encrypted by its password already; sealed on disk too when the recording is.
            with work_file(part, [Path(row.filename)]) as f:
                write_cav(f, converted, recording_metadata(row), audio_format=fmt,
                          password=password)
            part.replace(out)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
    return out


def export_combined(rows: Sequence[RecordingRow], fmt: str, out: Path, *,
                    options: Mapping[str, Any] | None = None) -> Path:
    """``rows`` played one after the other, in order, as one ``fmt`` file at ``out``.

    Recordings of different rates or channel counts are brought to the highest of each (a mono
    recording among stereo ones is heard on both sides), so nothing is lost in the joining.
    """
    if fmt not in EXPORT_FORMATS or fmt == "cav":
        audio = [f for f in EXPORT_FORMATS if f != "cav"]
        raise CodecError(f"cannot combine into {fmt!r} (formats: {', '.join(audio)}; a CAV "
                         "holds one recording)")
    if not rows:
        raise CodecError("no recordings to combine")
    sources = [_source(row) for row in rows]
    infos = [iter_audio(path, stored, vox_rate)[0] for path, stored, vox_rate in sources]
    rate = max(info.sample_rate for info in infos)
    channels = max(info.channels for info in infos)
    spec = get_format(fmt)
    chosen = {k: v for k, v in (options or {}).items() if k in spec.options}
    part = out.with_name(out.name + ".part")
    try:
        writer = open_writer(fmt, work_file(part, [path for path, _, _ in sources]), rate,
                             channels, **chosen)
        try:
            for path, stored, vox_rate in sources:
                info, blocks = iter_audio(path, stored, vox_rate)
                for block in _conform(blocks, info.sample_rate, info.channels, rate, channels):
                    writer.write(block if channels > 1 else block[:, 0])
        finally:
            writer.close()
        part.replace(out)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return out


def _conform(blocks: Iterator[npt.NDArray[np.int16]], in_rate: int, in_channels: int,
             rate: int, channels: int) -> Iterator[npt.NDArray[np.int16]]:
    """``blocks`` (frames, in_channels) at ``rate`` with ``channels`` channels."""
    resamplers = ([Resampler(in_rate, rate) for _ in range(in_channels)]
                  if in_rate != rate else None)

    def widen(block: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
        if in_channels == channels:
            return block
        # Only ever mono among stereo: the one channel on every side.
        return np.repeat(block[:, :1], channels, axis=1)

    for block in blocks:
        out = block if resamplers is None else np.stack(
            [r.process(block[:, c]) for c, r in enumerate(resamplers)], axis=1)
        if len(out):
            yield widen(out)
    if resamplers is not None:
        tail = np.stack([r.flush() for r in resamplers], axis=1)
        if len(tail):
            yield widen(tail)


def export_zip(rows: Sequence[RecordingRow], fmt: str, out: Path, work_dir: Path, *,
               options: Mapping[str, Any] | None = None) -> Path:
    """A ZIP at ``out`` holding each of ``rows`` exported as ``fmt`` (named by
    ``export_name``; a recording listed twice is stored once)."""
    if fmt not in EXPORT_FORMATS:
        raise CodecError(f"cannot export as {fmt!r} (formats: {', '.join(EXPORT_FORMATS)})")
    part = out.with_name(out.name + ".part")
    seen: set[int] = set()
    compression = zipfile.ZIP_DEFLATED if fmt in _DEFLATE else zipfile.ZIP_STORED
    try:
        with work_file(part, [Path(row.filename) for row in rows]) as into, \
                zipfile.ZipFile(into, "w", compression=compression) as archive:
            for row in rows:
                if row.ident in seen:
                    continue
                seen.add(row.ident)
                with _scratch(work_dir, extension(fmt)) as single:
                    export_recording(row, fmt, single, options=options)
                    # Through the opener: a single export of an encrypted recording is sealed.
                    with open_stored(single) as made, \
                            archive.open(export_name(row, fmt), "w") as entry:
                        shutil.copyfileobj(made, entry, 1 << 20)
        part.replace(out)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return out


@contextlib.contextmanager
def _scratch(directory: Path, suffix: str) -> Iterator[Path]:
    """A temporary file name in ``directory``, removed (with its ``.part``) on exit."""
    fd, name = tempfile.mkstemp(prefix="export-", suffix=f".{suffix}", dir=directory)
    os.close(fd)
    path = Path(name)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)
        path.with_name(path.name + ".part").unlink(missing_ok=True)


# --- how much of the disk an export takes ------------------------------------------------------

# A CAV's header, metadata and length fields; a ZIP's entry headers and directory, per entry.
_CAV_OVERHEAD = 64 * 1024
_ZIP_ENTRY_OVERHEAD = 256
# A combined export's resamplers may give a few frames more than the exact ratio.
_RESAMPLER_SLACK_FRAMES = 1024


def _probed(row: RecordingRow, cache: dict[Path, AudioInfo]) -> tuple[Path, str | None,
                                                                      AudioInfo]:
    """``row``'s stored file, its format, and what it holds (read once per file)."""
    source, stored, vox_rate = _source(row)
    if source not in cache:
        cache[source] = probe(source, stored, vox_rate)
    return source, stored, cache[source]


def _single_bytes(row: RecordingRow, fmt: str, cache: dict[Path, AudioInfo], *,
                  options: Mapping[str, Any] | None = None) -> int:
    source, stored, info = _probed(row, cache)
    if fmt == "cav":
        size = source.stat().st_size
        return sealed_bytes(size + (size // SEGMENT_BYTES + 1) * TAG_BYTES + _CAV_OVERHEAD)
    if stored == fmt and not options:
        # A hard link takes nothing, but may fall back to a copy: count the copy.
        return sealed_bytes(source.stat().st_size)
    chosen = {k: v for k, v in (options or {}).items() if k in get_format(fmt).options}
    return sealed_bytes(encoded_size(fmt, info.frames, info.sample_rate, info.channels,
                                     **chosen))


def sealed_bytes(size: int) -> int:
    """At most the bytes a work file of ``size`` bytes of audio takes encrypted (``work_file``;
    its header and each chunk's 40 bytes): counted whether or not it is, to never fall short."""
    return size + HEADER_BYTES + (size // DEFAULT_CHUNK + 2) * OVERHEAD


def export_bytes(row: RecordingRow, fmt: str, *, sealed: bool = False,
                 options: Mapping[str, Any] | None = None) -> int:
    """At most the bytes ``export_recording`` (or, ``sealed``, ``export_sealed``) of ``row``
    as ``fmt`` takes. Raises CodecError if the stored file is missing or unreadable."""
    cache: dict[Path, AudioInfo] = {}
    audio = _single_bytes(row, fmt, cache, options=options)
    if not sealed or fmt == "cav":
        return audio
    # The audio in a scratch file, and the CAV made of it beside it.
    return audio + audio + (audio // SEGMENT_BYTES + 1) * TAG_BYTES + _CAV_OVERHEAD


def combined_bytes(rows: Sequence[RecordingRow], fmt: str, *,
                   options: Mapping[str, Any] | None = None) -> int:
    """At most the bytes ``export_combined`` of ``rows`` as ``fmt`` takes."""
    cache: dict[Path, AudioInfo] = {}
    infos = [_probed(row, cache)[2] for row in rows]
    if not infos:
        return 0
    rate = max(info.sample_rate for info in infos)
    channels = max(info.channels for info in infos)
    frames = sum(info.frames if info.sample_rate == rate
                 else -(-info.frames * rate // info.sample_rate) + _RESAMPLER_SLACK_FRAMES
                 for info in infos)
    chosen = {k: v for k, v in (options or {}).items() if k in get_format(fmt).options}
    return sealed_bytes(encoded_size(fmt, frames, rate, channels, **chosen))


def zip_bytes(rows: Sequence[RecordingRow], fmt: str, *,
              options: Mapping[str, Any] | None = None) -> int:
    """At most the bytes ``export_zip`` of ``rows`` as ``fmt`` takes: every single export
    stored (deflating never grows them by more than its block headers), and the scratch file
    of the largest beside the ZIP while it is added."""
    cache: dict[Path, AudioInfo] = {}
    singles = {row.ident: _single_bytes(row, fmt, cache, options=options) for row in rows}
    stored = sum(size + size // 1000 + _ZIP_ENTRY_OVERHEAD for size in singles.values())
    return sealed_bytes(stored) + max(singles.values(), default=0) + _ZIP_ENTRY_OVERHEAD


def clean_work_dir(directory: Path) -> int:
    """Create ``directory`` (where exports are written before they are sent) and remove what a
    stopped or crashed recorder left in it; returns how many files were removed."""
    directory.mkdir(parents=True, exist_ok=True)
    removed = 0
    for leftover in directory.glob("export-*"):
        with contextlib.suppress(OSError):
            leftover.unlink()
            removed += 1
    return removed
