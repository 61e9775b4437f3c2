"""After-call transcoding: atomic replacement, the callback, recovery after a crash, and a real
``kill -9`` in the middle of a long file, after which every recording still plays."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from recorder.codecs import vox
from recorder.codecs.formats import open_writer
from recorder.errors import CodecError
from recorder.recording.transcode import Transcoder, find_unfinished, transcode_file
from tests.helpers.audio import ffmpeg_decode, make_speech, run, snr_db, write_wav

Call = tuple[Path, Path, int, str]


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> npt.NDArray[np.int16]:
    return make_speech(tmp_path_factory.mktemp("speech"))


class Calls:
    """A thread-safe ``done`` callback that remembers what it was told."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self._lock = threading.Lock()

    def __call__(self, wav: Path, result: Path, size: int, digest: str) -> None:
        with self._lock:
            self.calls.append((wav, result, size, digest))

    def by_result(self) -> dict[Path, Call]:
        return {call[1]: call for call in self.calls}


def check_reported(call: Call) -> None:
    _, result, size, digest = call
    assert result.stat().st_size == size
    assert hashlib.sha256(result.read_bytes()).hexdigest() == digest


def run_pool(root: Path, fmt: str = "mp3", workers: int = 2) -> tuple[Calls, list[Path]]:
    calls = Calls()
    pool = Transcoder(fmt, calls, workers=workers)
    pool.start()
    try:
        queued = pool.recover(root)
        assert pool.wait_idle(120)
    finally:
        pool.stop()
        assert pool.join(30)
    return calls, queued


def test_a_finished_wav_becomes_mp3_and_is_reported(tmp_path: Path,
                                                    speech: npt.NDArray[np.int16]) -> None:
    wav = write_wav(tmp_path / "1001-09-50-08.wav", speech)
    calls = Calls()
    pool = Transcoder("mp3", calls, workers=1)
    pool.start()
    assert pool.submit(wav)
    assert pool.wait_idle(60)
    pool.stop()
    assert pool.join(10)
    mp3 = tmp_path / "1001-09-50-08.mp3"
    assert sorted(p.name for p in tmp_path.iterdir()) == [mp3.name]
    assert [c[:2] for c in calls.calls] == [(wav, mp3)]
    check_reported(calls.calls[0])
    decoded = ffmpeg_decode(mp3)
    assert len(decoded) == len(speech)
    assert snr_db(speech, decoded) > 12


def test_vox_transcoding_matches_sox(tmp_path: Path, speech: npt.NDArray[np.int16]) -> None:
    wav = write_wav(tmp_path / "call.wav", speech)
    expected = run("sox", "-D", wav, "-t", "vox", "-")
    result = transcode_file(wav, "vox")
    assert result.read_bytes() == expected
    assert not wav.exists()


def test_a_crashed_recordings_unsynced_tail_is_kept(tmp_path: Path,
                                                    speech: npt.NDArray[np.int16]) -> None:
    """A WAV left by a crash: its header counts up to the last sync, the file holds more."""
    wav = tmp_path / "crash.wav"
    file = wav.open("xb")
    writer = open_writer("wav", file, 8000)
    writer.write(speech[:16000])
    writer.sync()
    for block in np.array_split(speech[16000:36000], 50):  # 50 ms blocks
        writer.write(block)
    file.close()  # no close() of the writer: the header still says 16000 frames
    # The writer had written out all 2.5 s more (it holds back less than half a second: these
    # are five whole half-seconds).
    result = transcode_file(wav, "vox")
    assert len(vox.decode(result.read_bytes())) == 36000


def test_recover_redoes_what_a_crash_left_half_done(tmp_path: Path,
                                                    speech: npt.NDArray[np.int16]) -> None:
    day = tmp_path / "20261123"
    (day / "1001").mkdir(parents=True)
    (day / "1002").mkdir(parents=True)
    short = speech[:24000]
    # Killed while encoding: the .part is junk, the WAV intact.
    a = write_wav(day / "1001" / "a.wav", short)
    (day / "1001" / "a.mp3.part").write_bytes(b"\xff\xe3 half an mp3")
    # Killed after the rename, before the WAV was deleted: the callback may not have run.
    b = write_wav(day / "1002" / "b.wav", short)
    (day / "1002" / "b.mp3").write_bytes(b"an older, different mp3")
    # Queued, never started.
    c = write_wav(day / "1002" / "c.wav", short)
    # Done before the crash: left alone.
    done = day / "1001" / "d.mp3"
    done.write_bytes(b"finished long ago")

    calls, queued = run_pool(tmp_path)
    assert sorted(queued) == sorted([a, b, c])
    results = calls.by_result()
    assert sorted(results) == sorted(p.with_suffix(".mp3") for p in (a, b, c))
    for call in results.values():
        check_reported(call)
        assert len(ffmpeg_decode(call[1])) == len(short)
    assert done.read_bytes() == b"finished long ago"
    assert not list(tmp_path.rglob("*.wav"))
    assert not list(tmp_path.rglob("*.part"))


def test_a_failing_callback_keeps_the_wav(tmp_path: Path,
                                          speech: npt.NDArray[np.int16]) -> None:
    wav = write_wav(tmp_path / "call.wav", speech[:8000])

    def database_down(*_: object) -> None:
        raise RuntimeError("database is locked")

    pool = Transcoder("mp3", database_down, workers=1)
    pool.start()
    pool.submit(wav)
    assert pool.wait_idle(60)
    pool.stop()
    pool.join(10)
    assert pool.failed == 1
    assert wav.exists()  # the row still points here; the next recover() does it again
    assert wav.with_suffix(".mp3").exists()
    assert find_unfinished(tmp_path, "mp3") == [wav]


def test_submitting_twice_and_refused_targets(tmp_path: Path) -> None:
    with pytest.raises(CodecError, match="wav-ulaw"):
        Transcoder("wav-ulaw", Calls())
    pool = Transcoder("mp3", Calls())  # not started: nothing runs
    assert pool.submit(tmp_path / "x.wav")
    assert not pool.submit(tmp_path / "x.wav")
    assert pool.pending == 1


class Room:
    """The disk guard's claims, as a test sets them: room for ``free`` bytes, or none."""

    def __init__(self, free: int) -> None:
        self.free = free
        self.claimed: list[int] = []
        self.released: list[int] = []

    def claim(self, nbytes: int, what: str) -> str | None:
        if nbytes > self.free:
            return f"{what} needs {nbytes} bytes; {self.free} may be used"
        self.claimed.append(nbytes)
        return None

    def release(self, nbytes: int) -> None:
        self.released.append(nbytes)


def test_without_room_the_wav_waits_and_is_encoded_once_there_is(
        tmp_path: Path, speech: npt.NDArray[np.int16]) -> None:
    wav = write_wav(tmp_path / "call.wav", speech[:16000])  # 2 s: an MP3 of about 4 kB
    before = wav.read_bytes()
    calls, room = Calls(), Room(free=0)
    pool = Transcoder("mp3", calls, workers=1, room=room, retry_seconds=0.05)
    pool.start()
    try:
        assert pool.submit(wav)
        assert pool.wait_idle(60)
        # Deferred: the WAV as it was, nothing written beside it, the call not reported.
        assert (pool.deferred, pool.pending, pool.converted, pool.failed) == (1, 1, 0, 0)
        assert wav.read_bytes() == before
        assert sorted(tmp_path.iterdir()) == [wav]
        assert calls.calls == []
        assert not pool.submit(wav)  # already waiting
        # Room again: a later pass (every retry_seconds) converts it.
        room.free = 1 << 20
        deadline = time.monotonic() + 60
        while pool.converted == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert pool.wait_idle(60)
    finally:
        pool.stop()
        assert pool.join(30)
    assert (pool.deferred, pool.converted) == (0, 1)
    (call,) = calls.calls
    check_reported(call)
    assert not wav.exists()
    # It claimed at least what it wrote, and gave the claim back.
    assert room.claimed == room.released
    assert call[2] <= room.claimed[0]


CHILD = textwrap.dedent("""
    import logging, sys
    from pathlib import Path
    from recorder.recording.transcode import Transcoder

    logging.basicConfig(level=logging.INFO)
    root = Path(sys.argv[1])
    pool = Transcoder("mp3", lambda *call: print(*call, flush=True), workers=1)
    pool.start()
    for name in sys.argv[2:]:
        pool.submit(root / name)
    pool.wait_idle()
""")


@pytest.mark.slow
def test_kill_9_in_the_middle_of_a_long_file_then_recover(
        tmp_path: Path, speech: npt.NDArray[np.int16]) -> None:
    root = tmp_path / "recordings"
    root.mkdir()
    minutes = 15
    long_call = np.tile(speech, int(minutes * 60 * 8000 / len(speech)) + 1)[:minutes * 60 * 8000]
    lengths = {"long.wav": len(long_call), "next.wav": 24000, "last.wav": 16000}
    write_wav(root / "long.wav", long_call)
    write_wav(root / "next.wav", speech[:24000])
    write_wav(root / "last.wav", speech[8000:24000])
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(root), *lengths],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    part = root / "long.mp3.part"
    try:
        deadline = time.monotonic() + 60
        while not (part.exists() and part.stat().st_size > 100_000):
            assert child.poll() is None, child.communicate(timeout=10)
            assert time.monotonic() < deadline, "transcoding never got going"
            time.sleep(0.005)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        if child.poll() is None:
            child.kill()
        _, err = child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL, err.decode(errors="replace")
    assert part.exists()  # killed halfway through, as meant
    assert sorted(p.name for p in root.iterdir()) == sorted([*lengths, part.name])

    calls, queued = run_pool(root)

    assert sorted(p.name for p in queued) == sorted(lengths)
    assert sorted(p.name for p in root.iterdir()) == ["last.mp3", "long.mp3", "next.mp3"]
    results = calls.by_result()
    for name, frames in lengths.items():
        mp3 = root / name.replace(".wav", ".mp3")
        check_reported(results[mp3])
        assert len(ffmpeg_decode(mp3)) == frames, name  # every recording plays, all of it
