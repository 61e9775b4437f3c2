"""A full disk and power loss: files cut short stay valid, new recordings wait, recording resumes.

The disk is filled for real: as root, the recordings directory is a small tmpfs mounted for the
test (the data directory with the database stays on the ordinary disk) and a filler file takes
most of it. Where mounting is not permitted, the fault is injected at the writer's boundary
instead: the recording files are real files whose writes fail with ENOSPC once a byte budget is
spent (each test records which path ran as the ``disk`` user property, and says it on stdout).
Set RECORDER_TEST_NO_MOUNT=1 to force the injected path. The small disk is
``tests/helpers/smalldisk.py``'s.
"""

from __future__ import annotations

import errno
import itertools
import os
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt
import pytest
import soundfile

from recorder.codecs import g711, vox
from recorder.codecs.formats import open_writer
from recorder.codecs.wav import read_wav_info
from recorder.recording import files
from recorder.recording.session import SYNC_SECONDS
from tests.helpers.api import result_code
from tests.helpers.audio import ffmpeg_decode, sox_info
from tests.helpers.exports import dominant_hz, tone
from tests.helpers.recorders import IN_PROCESS_AND_RECORDERD, Running
from tests.helpers.smalldisk import (
    KIB,
    RATE,
    Events,
    SmallDisk,
    check_file,
    inject,
    rows,
    small_disk,
)
from tests.helpers.waiting import wait_for

# --- the codecs close valid after ENOSPC -------------------------------------------------------


def tone_samples(hz: float, seconds: float, channels: int = 1) -> npt.NDArray[np.int16]:
    t = np.arange(round(RATE * seconds)) / RATE
    mono = np.rint(8000 * np.sin(2 * np.pi * hz * t)).astype(np.int16)
    if channels == 1:
        return mono
    return np.stack([mono // (c + 1) for c in range(channels)], axis=1)


def write_until_full(writer: Any, samples: npt.NDArray[np.int16]) -> OSError:
    """Feed 50 ms blocks, syncing every half second, until the disk refuses."""
    for n, at in enumerate(range(0, len(samples), 400)):
        try:
            writer.write(samples[at:at + 400])
            if n % 10 == 9:
                writer.sync()
        except OSError as exc:
            return exc
    raise AssertionError("the disk never filled")


CASES = [  # format, channels, room left (bytes), seconds of tone offered
    ("wav", 1, 40 * KIB, 10.0),
    ("wav", 3, 40 * KIB, 5.0),  # 6-byte frames: the disk stops inside one
    ("wav-ulaw", 1, 40 * KIB, 10.0),
    ("mp3", 1, 24 * KIB, 30.0),
    ("vox", 1, 24 * KIB, 20.0),
]


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}-{c[1]}ch" for c in CASES])
def test_a_writer_cut_short_by_a_full_disk_closes_a_valid_file(
        tmp_path: Path, disk_path: Callable[[SmallDisk], None],
        case: tuple[str, int, int, float]) -> None:
    fmt, channels, leave, seconds = case
    samples = tone_samples(440, seconds, channels)
    ext = "wav" if fmt.startswith("wav") else fmt
    with small_disk(tmp_path / "fs", 256 * KIB) as disk:
        disk_path(disk)
        disk.fill(leave)
        path = disk.root / f"cut.{ext}"
        file = disk.open(path)
        writer = open_writer(fmt, file, RATE, channels)
        failure = write_until_full(writer, samples)
        assert failure.errno == errno.ENOSPC
        # The failure is named again by sync, and once more by close, after the cut.
        writer.write(samples[:400])  # dropped: nothing more goes to the file
        with pytest.raises(OSError, match="No space") as raised:
            writer.sync()
        assert raised.value.errno == errno.ENOSPC
        before = os.fstat(file.fileno()).st_size
        with pytest.raises(OSError, match="No space") as closing:
            writer.close()
        assert closing.value.errno == errno.ENOSPC
        size = path.stat().st_size
        frames = writer.frames
        assert 0 < frames < len(samples)
        assert writer.data_bytes <= size <= before

        if fmt.startswith("wav"):
            info = read_wav_info(path)
            header = 44 if fmt == "wav" else 58
            block = channels * (2 if fmt == "wav" else 1)
            # Whole frames only (a partly written one is cut off), and the header counts
            # exactly what is in the file: no bytes beyond it, none missing.
            assert size == header + (before - header) // block * block
            assert (info.frames, info.data_bytes, info.data_offset) == (
                frames, frames * block, header)
            assert int.from_bytes(path.read_bytes()[header - 4:header], "little") == \
                frames * block
            assert float(sox_info(path)["-D"]) == pytest.approx(frames / RATE, abs=1e-4)
            got, rate = soundfile.read(path, dtype="int16", always_2d=True)
            assert (rate, got.shape) == (RATE, (frames, channels))
            expected = samples[:frames].reshape(frames, channels)
            if fmt == "wav-ulaw":
                expected = g711.decode(g711.encode(expected, "ulaw"), "ulaw")
            np.testing.assert_array_equal(got, expected)
        elif fmt == "mp3":
            # Whole 144-byte frames after the Info tag, and the tag says how many: libsndfile
            # and ffmpeg both decode exactly the samples the writer reports.
            assert soundfile.info(str(path)).frames == frames
            decoded = ffmpeg_decode(path)
            assert len(decoded) == frames
            assert dominant_hz(decoded[1000:], RATE) == pytest.approx(440, abs=5)
            head = int.from_bytes(path.read_bytes()[:4], "big")
            kbps = (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)[
                (head >> 12) & 15]
            tag = 72000 * kbps // RATE  # the Info frame (MPEG-2.5 Layer III, unpadded)
            assert (size - tag) % 144 == 0  # then whole 16 kbit/s frames, none cut off
        else:
            # Every byte is two samples: the file is the encoding of the tone's first ones.
            assert frames == 2 * size
            assert path.read_bytes() == vox.encode(samples[:frames])
            out = tmp_path / "vox.wav"
            subprocess.run(["sox", "-t", "vox", "-r", str(RATE), str(path), "-b", "16",
                            str(out)], check=True)
            assert soundfile.info(str(out)).frames == frames


def test_closing_after_a_full_disk_writes_nothing_past_the_cut(
        tmp_path: Path, disk_path: Callable[[SmallDisk], None]) -> None:
    """Freed room (the cut, another file deleted) must not let held-back bytes land later."""
    with small_disk(tmp_path / "fs", 256 * KIB) as disk:
        disk_path(disk)
        disk.fill(20 * KIB)
        path = disk.root / "held.wav"
        writer = open_writer("wav", disk.open(path), RATE)
        write_until_full(writer, tone_samples(1000, 10.0))
        disk.free_up()  # room again before the close
        with pytest.raises(OSError, match="No space"):
            writer.close()
        info = read_wav_info(path)
        assert path.stat().st_size == 44 + info.data_bytes == 44 + 2 * writer.frames


# --- a recorder on a full disk -----------------------------------------------------------------


@pytest.mark.slow
@IN_PROCESS_AND_RECORDERD
def test_a_full_disk_truncates_refuses_and_resumes_by_itself(
        tmp_path: Path, start_recorder: Callable[..., Running], request: pytest.FixtureRequest,
        monkeypatch: pytest.MonkeyPatch, disk_path: Callable[[SmallDisk], None]) -> None:
    data = tmp_path / "data"
    lines = tmp_path / "lines"
    lines.mkdir()
    hz = {"2001": 440.0, "2002": 1000.0, "2003": 660.0}
    sources = {d: soundfile.read(tone(lines / f"{d}.wav", f), dtype="int16")[0]
               for d, f in hz.items()}
    with small_disk(data / "recordings", 6 << 20) as disk:
        disk_path(disk)
        if disk.mode == "injected" and request.node.callspec.params["start_recorder"] != \
                "in-process":
            pytest.skip("without a tmpfs the fault is injected in-process only")
        # Two calls write 32 kB/s: about three seconds of room, then the disk is full.
        disk.fill(96 * KIB)
        running = start_recorder(
            boards=[{"driver": "file", "devices": list(hz), "files": [
                str(lines / f"{d}.wav") for d in hz]}],
            retention={"min_free_mb": 0})
        if disk.mode == "injected":
            inject(running, disk, monkeypatch)
        events = Events(running)
        try:
            conn = running.connect()
            for device in ("2001", "2002"):
                assert result_code(conn.request("CALLSTART", 1, DEVICEID=device)) == 20

            # Both recordings end by themselves when the disk fills, as truncated.
            def cut() -> list[sqlite3.Row]:
                found = [r for r in rows(data) if r["stop_reason"] == "truncated"]
                return found if len(found) == 2 else []
            truncated = wait_for(cut, 20.0, what=lambda: [dict(r) for r in rows(data)])
            for row in truncated:
                assert row["status"] == "complete"
                assert row["duration"] > 1.0
                check_file(row, sources[row["device_id"]], hz[row["device_id"]])
            for device in ("2001", "2002"):
                events.until(("RECORDINGSTOPPED", device, "TRUNCATED"))
            assert running.status()["disk"]["full"] is True
            assert running.status()["disk"]["ok"] is False
            assert running.metric("recorder_disk_full") == 1
            assert running.metric("recorder_recordings_truncated_total") == 2

            # While it is full nothing new is recorded: a new call is tracked (API_OK, as
            # every CALLSTART) but refused with code 2's reason; RECORDSTART answers 2.
            assert result_code(conn.request("CALLSTART", 2, DEVICEID="2003")) == 20
            events.until(("RECORDINGSTARTED", "2003", "API_ERROR_OUT_OF_DISK_SPACE"))
            state = conn.request("DEVICESTATUS", 3, DEVICEID="2003")
            assert state.findtext("DEVICES/DEVICE/RECORDING/ISRECORDING") == "N"
            assert state.findtext("DEVICES/DEVICE/RECORDING/ERRORREASON") == \
                "API_ERROR_OUT_OF_DISK_SPACE"
            assert result_code(conn.request("RECORDSTART", 4, DEVICEID="2001")) == 2
            assert result_code(conn.request("CALLSTOP", 5, DEVICEID="2003")) == 20
            time.sleep(1.5)  # still full: the calls that are up stay waiting
            assert len(rows(data)) == 2

            if running.recorder is not None:
                # The disk fills again just as the first continuation's file is made: that
                # call waits for room once more instead of losing the rest of its audio.
                refills = [OSError(errno.ENOSPC, "No space left on device")]
                create = files.create_unique

                def refill_once(path: Path) -> tuple[Path, BinaryIO]:
                    if refills:
                        raise refills.pop()
                    return create(path)

                monkeypatch.setattr(files, "create_unique", refill_once)

            # Room again: within a few seconds the calls still up continue by themselves...
            disk.free_up()
            freed = time.monotonic()
            wait_for(lambda: all(len(rows(data, d)) == 2 for d in ("2001", "2002")), 6.0,
                     what=lambda: [dict(r) for r in rows(data)])
            assert time.monotonic() - freed < 6.0
            for device in ("2001", "2002"):
                events.until(("RECORDINGSTARTED", device, "NONE"))
            # ...and a new call is recorded again.
            assert result_code(conn.request("CALLSTART", 6, DEVICEID="2003")) == 20
            state = conn.request("DEVICESTATUS", 7, DEVICEID="2003")
            assert state.findtext("DEVICES/DEVICE/RECORDING/ISRECORDING") == "Y"
            assert running.status()["disk"]["full"] is False
            assert running.metric("recorder_disk_full") == 0
            for device in ("2001", "2002"):
                running.wait_recorded(device, 1.5)
            for device in ("2001", "2002", "2003"):
                assert result_code(conn.request("CALLSTOP", 8, DEVICEID=device)) == 20
            conn.close()

            for device in ("2001", "2002"):
                first, continued = rows(data, device)
                assert (first["stop_reason"], continued["stop_reason"]) == (
                    "truncated", "callended")
                assert continued["start_time"] >= first["stop_time"]
                assert continued["globalid"] == first["globalid"]  # the same call
                assert continued["duration"] >= 1.4
                check_file(continued, sources[device], hz[device])
            (new,) = rows(data, "2003")
            assert new["stop_reason"] == "callstop"
            check_file(new, sources["2003"], hz["2003"])
        finally:
            events.close()
            if running.recorder is not None:
                running.recorder.stop()  # before the file system goes away


# --- the kill -9 and power-loss bounds ---------------------------------------------------------


@pytest.mark.slow
def test_audio_reaches_the_os_at_least_every_half_second(
        start_recorder: Callable[..., Running], monkeypatch: pytest.MonkeyPatch) -> None:
    running = start_recorder()
    recorder = running.recorder
    assert recorder is not None
    writer = recorder.writer
    assert writer is not None
    assert result_code(running.request("CALLSTART", 1, DEVICEID="1001")) == 20
    session = wait_for(lambda: next(iter(writer._sessions), None), what="the call's session")
    assert session is not None
    # Counted in samples after each of the writer loop's rounds, not against the wall clock:
    # how late a loaded machine runs the loop is not the file's buffering.
    lags: list[int] = []
    pump = session.pump

    def pump_and_look(sync: bool = True) -> None:
        pump(sync)
        # What another process (or the disk after a kill -9) sees of the file, against the
        # audio the writer has taken for it, with no pump in between.
        with session.open_and_held():
            lags.append(session.writer.frames - (session.path.stat().st_size - 44) // 2)

    monkeypatch.setattr(session, "pump", pump_and_look)
    wait_for(lambda: session.writer.frames >= 3 * RATE, 30,
             what=lambda: f"3 s of the call written ({session.writer.frames} frames)")
    assert result_code(running.request("CALLSTOP", 2, DEVICEID="1001")) == 20
    assert len(lags) >= 2, lags
    # Never more than half a second held back from the OS: a kill -9 costs at most that plus
    # what the loop had not taken from the ring yet, never a second.
    assert max(lags) < SYNC_SECONDS * RATE, max(lags)
    assert min(lags) >= 0


def count_fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[float, str, int]]:
    """Every os.fsync of a recording file: (monotonic time, path, size then); the real fsync
    still runs."""
    calls: list[tuple[float, str, int]] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        path = os.readlink(f"/proc/self/fd/{fd}")
        if path.endswith(".wav"):
            calls.append((time.monotonic(), path, os.fstat(fd).st_size))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return calls


@pytest.mark.slow
def test_files_are_fsynced_at_the_interval_and_at_close(
        start_recorder: Callable[..., Running], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    calls = count_fsyncs(monkeypatch)
    running = start_recorder(storage={"data_dir": str(tmp_path / "data"),
                                      "fsync_interval_seconds": 0.3})
    assert result_code(running.request("CALLSTART", 1, DEVICEID="1001")) == 20
    # Five of them while the call is up, as soon as they come: 1.5 s at the interval, and ten
    # times that for a loaded machine's writer loop (an interval ten times too long fails).
    wait_for(lambda: len(calls) >= 5, 15.0, what=lambda: f"five fsyncs (so far {calls})")
    assert result_code(running.request("CALLSTOP", 2, DEVICEID="1001")) == 20
    (row,) = rows(running.data_dir)
    mine = [c for c in calls if c[1] == row["filename"]]
    assert {c[1] for c in calls} == {row["filename"]}
    # Never two closer than the interval but the last, which is the close's: the file as it
    # finally is.
    assert len(mine) >= 6, mine
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(mine[:-1])]
    assert min(gaps) >= 0.3 - 0.01, gaps
    assert mine[-1][2] == Path(row["filename"]).stat().st_size


@pytest.mark.slow
def test_an_fsync_interval_of_zero_leaves_it_to_the_os(
        start_recorder: Callable[..., Running], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    calls = count_fsyncs(monkeypatch)
    running = start_recorder(storage={"data_dir": str(tmp_path / "data"),
                                      "fsync_interval_seconds": 0})
    assert result_code(running.request("CALLSTART", 1, DEVICEID="1001")) == 20
    running.wait_recorded("1001", 1.5)
    assert result_code(running.request("CALLSTOP", 2, DEVICEID="1001")) == 20
    (row,) = rows(running.data_dir)
    assert row["duration"] > 1.0
    assert calls == []
