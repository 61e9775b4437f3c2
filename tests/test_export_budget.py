"""The export work area's rules, without threads or a recorder: what each export may take
(its estimate never falls short of what it writes), the budget and concurrency it is admitted
under, and the disk guard's claims that keep the live recordings' room (docs/api-notes.md,
Export budget; docs/retention.md)."""

from __future__ import annotations

import io
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile

from recorder.archive import workspace
from recorder.archive.export import (
    combined_bytes,
    export_bytes,
    export_combined,
    export_recording,
    export_sealed,
    export_zip,
    zip_bytes,
)
from recorder.archive.workspace import ExportWorkspace
from recorder.codecs.formats import encoded_size, open_writer
from recorder.errors import ResultError
from recorder.recording.diskspace import MIB, DiskGuard
from recorder.resultcodes import ResultCode
from recorder.store.records import RecordingRow


class Disk:
    """A free-space reading the test sets."""

    def __init__(self, free: int) -> None:
        self.free = free

    def __call__(self, path: Path) -> int:
        return self.free


def guard(tmp_path: Path, free: int, floor_mb: int = 0, rate: float = 0.0) -> DiskGuard:
    disk = DiskGuard(tmp_path / "recordings", floor_mb, usage=Disk(free), resume_seconds=120)
    disk.count_live(lambda: rate)
    return disk


# --- the disk guard's claims ------------------------------------------------------------------


def test_a_claim_leaves_the_floor_and_two_minutes_of_the_live_recordings(tmp_path: Path) -> None:
    # Two 8 kHz PCM calls write 32000 bytes a second: 120 s of it is kept for them.
    disk = guard(tmp_path, free=10 * MIB, floor_mb=2, rate=32000.0)
    assert disk.live_room_bytes() == 3_840_000
    assert disk.kept_free_bytes() == 2 * MIB + 3_840_000
    spare = 10 * MIB - disk.kept_free_bytes()
    assert disk.claim(spare + 1, "an export") is not None
    assert disk.claim(spare // 2, "an export") is None
    assert disk.claimed_bytes == spare // 2
    # Claimed but not yet written counts as taken: a second claim sees the first.
    why = disk.claim(spare // 2 + 1, "COMBINEDEXPORT of 200 recordings as WAV")
    assert why is not None
    assert why.startswith("COMBINEDEXPORT of 200 recordings as WAV needs about")
    assert "retention.min_free_mb 2" in why
    assert "120 s of the recordings in progress" in why
    disk.release(spare // 2)
    assert disk.claimed_bytes == 0
    assert disk.claim(spare, "an export") is None


def test_the_room_kept_for_live_recordings_is_at_most_half_the_volume(tmp_path: Path) -> None:
    # 64 calls write 1 MB a second: two minutes of that is far more than an 8 MiB volume holds.
    disk = DiskGuard(tmp_path / "recordings", 0, usage=Disk(7 * MIB), resume_seconds=120,
                     size=lambda path: 8 * MIB)
    disk.count_live(lambda: 64 * 16000.0)
    assert disk.live_room_bytes() == 4 * MIB
    assert disk.claim(3 * MIB - 1, "an export") is None
    assert disk.claim(2, "an export") is not None


def test_after_a_full_disk_a_claim_leaves_the_resume_threshold(tmp_path: Path) -> None:
    disk = guard(tmp_path, free=5 * MIB)
    assert disk.claim(4 * MIB, "an export") is None
    disk.release(4 * MIB)
    disk.disk_full(tmp_path / "recordings" / "cut.wav", 16000.0)  # 1.92 MB to resume
    assert disk.claim(4 * MIB, "an export") is not None
    assert disk.claim(3 * MIB, "an export") is None


def test_a_refusal_gives_its_sizes_in_kb_or_mb(tmp_path: Path) -> None:
    disk = guard(tmp_path, free=512 * 1024)
    why = disk.claim(600 * 1024, "an export")
    assert why is not None
    assert why.startswith("an export needs about 600 kB; the recordings' disk has 512 kB free")
    why = guard(tmp_path, free=900).claim(1000, "an export")  # rounded, not cut, to kB
    assert why is not None
    assert why.startswith("an export needs about 1 kB; the recordings' disk has 1 kB free")
    why = guard(tmp_path, free=5 * MIB + MIB // 2).claim(6 * MIB, "an export")
    assert why is not None
    assert why.startswith("an export needs about 6.0 MB; the recordings' disk has 5.5 MB free")


def test_a_claim_reads_the_free_space_afresh(tmp_path: Path) -> None:
    """Not the reading a call start took less than a second ago: the disk may have filled
    since, and an export must not take the recordings' room on the strength of it."""
    space = Disk(10 * MIB)
    disk = DiskGuard(tmp_path / "recordings", 1, usage=space, clock=lambda: 100.0)
    assert disk.ok()  # a call start reads 10 MiB free
    space.free = 3 * MIB
    assert disk.claim(2 * MIB + MIB // 2, "an export") is not None


def test_a_refusal_says_what_the_kept_room_is_made_of(tmp_path: Path) -> None:
    disk = guard(tmp_path, free=10 * MIB, floor_mb=2, rate=32000.0)
    why = disk.claim(8 * MIB, "an export")
    assert why is not None
    assert why.endswith("are kept for the recordings (retention.min_free_mb 2, 120 s of the "
                        "recordings in progress)")


def test_with_others_claiming_more_than_is_free_a_refusal_says_0_free(tmp_path: Path) -> None:
    space = Disk(10 * MIB)
    disk = DiskGuard(tmp_path / "recordings", 0, usage=space)
    assert disk.claim(4 * MIB, "an export") is None
    space.free = 3 * MIB  # something else filled the disk meanwhile
    why = disk.claim(MIB, "an export")
    assert why is not None
    assert "the recordings' disk has 0 kB free" in why


def test_with_no_recording_in_progress_only_the_floor_is_kept(tmp_path: Path) -> None:
    assert guard(tmp_path, free=10 * MIB, floor_mb=2, rate=0.0).kept_free_bytes() == 2 * MIB
    assert DiskGuard(tmp_path, 2, usage=Disk(10 * MIB)).kept_free_bytes() == 2 * MIB


def test_a_volume_whose_size_cannot_be_read_keeps_the_room_uncapped(tmp_path: Path) -> None:
    def unreadable(path: Path) -> int:
        raise OSError(5, "Input/output error")

    disk = DiskGuard(tmp_path, 0, usage=Disk(10 * MIB), size=unreadable)
    disk.count_live(lambda: 32000.0)
    assert disk.live_room_bytes() == 3_840_000
    assert disk.claim(MIB, "an export") is None
    # Nor does it stop a full disk from being taken in: its threshold is as configured.
    full = DiskGuard(tmp_path, 0, usage=Disk(0), size=unreadable)
    full.disk_full(tmp_path / "cut.wav", 16000.0)
    assert full.resume_bytes == 1_920_000


def test_claims_add_up(tmp_path: Path) -> None:
    """What others claimed is theirs: two exports of 4 MiB fit on 10 MiB free, a third not."""
    disk = guard(tmp_path, free=10 * MIB)
    assert disk.claim(4 * MIB, "an export") is None
    assert disk.claim(4 * MIB, "an export") is None
    why = disk.claim(4 * MIB, "an export")
    assert why is not None
    assert "has 2.0 MB free" in why
    assert disk.claimed_bytes == 8 * MIB
    disk.release(4 * MIB)
    assert disk.claimed_bytes == 4 * MIB


def test_giving_back_more_than_was_claimed_makes_no_room(tmp_path: Path) -> None:
    """A release repeated on an error path must not leave less claimed than nothing, which
    the next claim would take as room on the disk."""
    disk = guard(tmp_path, free=5 * MIB)
    assert disk.claim(MIB, "an export") is None
    disk.release(MIB)
    disk.release(MIB)
    assert disk.claimed_bytes == 0
    assert disk.claim(5 * MIB + 1, "an export") is not None


def test_a_claim_is_refused_when_the_free_space_cannot_be_read(tmp_path: Path) -> None:
    def unreadable(path: Path) -> int:
        raise OSError(5, "Input/output error")

    disk = DiskGuard(tmp_path, 0, usage=unreadable)
    why = disk.claim(1, "an export")
    assert why is not None
    assert why.startswith(f"the free space on {tmp_path} cannot be read (Input/output error)")


# --- the work area's budget and concurrency ----------------------------------------------------


def refusal(call: Any) -> ResultError:
    with pytest.raises(ResultError) as raised:
        call()
    return raised.value


def test_too_many_exports_at_once_are_answered_47(tmp_path: Path) -> None:
    area = ExportWorkspace(tmp_path, max_bytes=10 * MIB, concurrency=2)
    first, second = area.admit("A", 1000), area.admit("B", 1000)
    error = refusal(lambda: area.admit("C", 1000))
    assert error.code == ResultCode.API_COMMAND_QUEUE_FULL
    assert "api.export_concurrency" in error.message
    with first:
        pass
    with area.admit("C", 1000), second:
        assert area.running == 2
    assert (area.running, area.reserved_bytes) == (0, 0)


def test_the_byte_budget(tmp_path: Path) -> None:
    area = ExportWorkspace(tmp_path, max_bytes=10 * MIB, concurrency=8)
    # Bigger than the whole budget: it never fits, 2.
    error = refusal(lambda: area.admit("COMBINEDEXPORT of 200 recordings as WAV", 11 * MIB))
    assert error.code == ResultCode.API_ERROR_OUT_OF_DISK_SPACE
    assert "api.export_max_bytes" in error.message
    assert error.message.startswith("COMBINEDEXPORT of 200 recordings as WAV needs about 11.0")
    # Fits once the others are done: 47.
    held = area.admit("A", 6 * MIB)
    error = refusal(lambda: area.admit("B", 5 * MIB))
    assert error.code == ResultCode.API_COMMAND_QUEUE_FULL
    assert "try again" in error.message
    with held:
        pass
    with area.admit("B", 5 * MIB):
        assert area.reserved_bytes == 5 * MIB
    assert area.refused == 2


def test_a_file_handed_over_stays_reserved_until_the_transport_deletes_it(
        tmp_path: Path) -> None:
    area = ExportWorkspace(tmp_path, max_bytes=10 * MIB, concurrency=1)
    sent = tmp_path / "export-1.wav"
    with area.admit("A", 8 * MIB) as export:
        sent.write_bytes(bytes(3 * MIB))  # smaller than its estimate
        export.hand_over(sent)
    # The place is free again; the bytes are the file's own until it is gone.
    assert (area.running, area.reserved_bytes) == (0, 3 * MIB)
    assert refusal(lambda: area.admit("B", 8 * MIB)).code == ResultCode.API_COMMAND_QUEUE_FULL
    sent.unlink()  # sent (or failed): the transport deletes it
    assert area.reserved_bytes == 0
    with area.admit("B", 8 * MIB):
        pass


def test_a_failed_export_gives_everything_back(tmp_path: Path) -> None:
    disk = guard(tmp_path, free=100 * MIB)
    area = ExportWorkspace(tmp_path, max_bytes=10 * MIB, concurrency=1, guard=disk)
    made = tmp_path / "export-2.wav"

    def export_meeting_a_full_disk() -> None:
        with area.admit("A", 8 * MIB) as export:
            assert disk.claimed_bytes == 8 * MIB
            made.write_bytes(b"x")
            export.hand_over(made)
            raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        export_meeting_a_full_disk()
    assert (area.running, area.reserved_bytes, disk.claimed_bytes) == (0, 0, 0)


def test_on_the_recordings_disk_an_export_never_takes_their_room(tmp_path: Path) -> None:
    (tmp_path / "recordings").mkdir()
    disk = guard(tmp_path, free=12 * MIB, floor_mb=2, rate=32000.0)  # 5.7 MB kept
    area = ExportWorkspace(tmp_path / "tmp", max_bytes=100 * MIB, concurrency=8, guard=disk)
    with area.admit("A", 4 * MIB):
        assert disk.claimed_bytes == 4 * MIB
        error = refusal(lambda: area.admit("EXPORT of recording 7 as WAV", 4 * MIB))
        assert error.code == ResultCode.API_ERROR_OUT_OF_DISK_SPACE
        assert "live recordings come first" in error.message
        assert "EXPORT of recording 7 as WAV needs about 4.0 MB" in error.message
    # Once A is written (or given up), only what is on the disk counts: the reading.
    assert (disk.claimed_bytes, area.running) == (0, 0)
    with area.admit("B", 6 * MIB):
        pass


def test_a_work_area_on_a_disk_of_its_own_needs_only_room_there(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "recordings").mkdir()
    (tmp_path / "tmp").mkdir()
    disk = guard(tmp_path, free=0, floor_mb=2)  # the recordings' disk is full
    monkeypatch.setattr(workspace, "_device", lambda path: hash(path.name))
    monkeypatch.setattr(shutil, "disk_usage",
                        lambda path: type("Usage", (), {"free": 5 * MIB})())
    area = ExportWorkspace(tmp_path / "tmp", max_bytes=100 * MIB, concurrency=8, guard=disk)
    with area.admit("A", 3 * MIB):
        error = refusal(lambda: area.admit("B", 3 * MIB))
        assert error.code == ResultCode.API_ERROR_OUT_OF_DISK_SPACE
        assert "the work area" in error.message
    assert disk.claimed_bytes == 0


# --- estimates never fall short ----------------------------------------------------------------


class _Sized(io.BytesIO):
    def close(self) -> None:
        self.size = len(self.getvalue())
        super().close()


@pytest.mark.parametrize("fmt", ["wav", "wav-ulaw", "wav-alaw", "mp3", "vox"])
@pytest.mark.parametrize(("rate", "channels"), [(8000, 1), (8000, 2), (16000, 1)])
@pytest.mark.parametrize("seconds", [0.0, 0.01, 1.0, 7.3])
def test_encoded_size_is_a_close_upper_bound(fmt: str, rate: int, channels: int,
                                             seconds: float) -> None:
    frames = round(rate * seconds)
    mono = np.rint(8000 * np.sin(np.arange(frames) / 7)).astype(np.int16)
    samples = mono if channels == 1 else np.stack([mono, mono // 2], axis=1)
    for options in ({}, {"bitrate": 32} if fmt == "mp3" else {"rate": 6000}
                    if fmt == "vox" and rate == 8000 else {}):
        out = _Sized()
        writer = open_writer(fmt, out, rate, channels, **options)
        writer.write(samples)
        writer.close()
        bound = encoded_size(fmt, frames, rate, channels, **options)
        assert out.size <= bound <= math.ceil(out.size * 1.05) + 9000, (options, out.size)


def row_of(path: Path, ident: int, fmt: str = "wav") -> RecordingRow:
    info = soundfile.info(str(path))
    return RecordingRow(
        ident=ident, device_id="1001", call_instance="", channel=1, filename=str(path),
        media_format=fmt, sample_rate=info.samplerate, recording_time=1_700_000_000,
        start_time=1_700_000_000.0, stop_time=1_700_000_000.0 + info.duration,
        duration=info.duration, audio_size=path.stat().st_size, audio_hash="",
        status="complete", stop_reason="callstop", lost_samples=0, core_ident=1,
        meta={"ANI": "6145551212"}, priority=None, keep_days=None, archive_action=None,
        cti_initiated="", agent_initiated="")


def recordings(tmp_path: Path) -> list[RecordingRow]:
    """An 8 kHz mono, a 16 kHz stereo and an 8 kHz mono call, stored as WAV."""
    made = []
    for n, (rate, channels, seconds) in enumerate([(8000, 1, 1.3), (16000, 2, 0.7),
                                                   (8000, 1, 2.1)], start=1):
        t = np.arange(round(rate * seconds)) / rate
        tone = np.rint(6000 * np.sin(2 * np.pi * 330 * n * t)).astype(np.int16)
        path = tmp_path / f"call{n}.wav"
        soundfile.write(path, tone if channels == 1 else np.stack([tone, tone], axis=1), rate,
                        subtype="PCM_16")
        made.append(row_of(path, n))
    return made


@pytest.mark.parametrize("fmt", ["wav", "wav-ulaw", "mp3", "vox"])
def test_the_export_estimates_cover_what_is_written(tmp_path: Path, fmt: str) -> None:
    rows = recordings(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    out = export_recording(rows[1], fmt, work / "one")
    assert out.stat().st_size <= export_bytes(rows[1], fmt)
    out = export_combined([rows[0], rows[1], rows[0], rows[2]], fmt, work / "combined")
    assert out.stat().st_size <= combined_bytes([rows[0], rows[1], rows[0], rows[2]], fmt)
    out = export_zip(rows, fmt, work / "all.zip", work)
    # The ZIP and, while the biggest entry is added, its scratch file.
    biggest = max(export_recording(row, fmt, work / f"single{row.ident}").stat().st_size
                  for row in rows)
    assert out.stat().st_size + biggest <= zip_bytes(rows, fmt)


def test_the_sealed_and_cav_estimates_cover_what_is_written(tmp_path: Path) -> None:
    (row, *_) = recordings(tmp_path)
    out = export_recording(row, "cav", tmp_path / "plain.cav")
    assert out.stat().st_size <= export_bytes(row, "cav")
    sealed = export_sealed(row, "mp3", tmp_path / "sealed.cav", "secret", tmp_path)
    mp3 = export_recording(row, "mp3", tmp_path / "scratch.mp3")
    assert sealed.stat().st_size + mp3.stat().st_size <= export_bytes(row, "mp3", sealed=True)
