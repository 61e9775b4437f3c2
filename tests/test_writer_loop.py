"""The writer loop's cadence: each recording pumped once a period, a share of them per turn,
and every file still handed to the OS at each half second of its audio."""

from __future__ import annotations

import os
import struct
import threading
from pathlib import Path

import numpy as np
import pytest

from recorder.capture.core import CaptureBoard, CaptureCore
from recorder.codecs.formats import open_writer
from recorder.drivers.registry import create_driver
from recorder.drivers.settings import SyntheticBoardConfig
from recorder.recording.completion import Completion
from recorder.recording.session import SYNC_SECONDS, RecordingSession
from recorder.recording.writer import WriterLoop
from tests.helpers.waiting import wait_for

RATE = 8000


def core(channels: int) -> CaptureCore:
    devices = tuple(str(100 + i) for i in range(channels))
    driver = create_driver("boards[0]", SyntheticBoardConfig(devices=devices, channels=channels))
    return CaptureCore([CaptureBoard(driver, devices, 10.0)])


def open_pairs(capture: CaptureCore, loop: WriterLoop, tmp_path: Path) -> list[RecordingSession]:
    sessions = []
    channels = capture.channels
    for n in range(len(channels) // 2):
        path = tmp_path / f"{n}.wav"
        session = RecordingSession((channels[2 * n], channels[2 * n + 1]),
                                   open_writer("wav", path.open("xb"), RATE, 2), path, 0)
        loop.add(session)
        sessions.append(session)
    return sessions


def header_frames(path: Path) -> int:
    """Stereo PCM frames the WAV header on disk counts (what a killed process leaves)."""
    data_bytes = struct.unpack("<I", path.read_bytes()[40:44])[0]
    return int(data_bytes) // 4


def test_each_turn_pumps_a_share_and_each_recording_is_pumped_once_a_period(
        tmp_path: Path) -> None:
    capture = core(16)
    loop = WriterLoop(Completion(None), interval=0.05, period=0.2)  # type: ignore[arg-type]
    sessions = open_pairs(capture, loop, tmp_path)
    board = capture.boards[0]
    board.audio(np.ones((RATE // 20, 16), np.int16))
    pumped: list[int] = []
    for _ in range(4):
        loop.turn()
        pumped.append(sum(s.writer.frames > 0 for s in sessions))
    assert pumped == [2, 4, 6, 8]
    loop.discard(sessions[0])
    assert sessions[0] not in loop._sessions
    for session in sessions:
        session.finish(board.ring.write_pos)


def test_long_pieces_are_still_synced_at_every_half_second_of_audio(tmp_path: Path) -> None:
    capture = core(2)
    loop = WriterLoop(Completion(None), interval=0.05, period=0.05)  # type: ignore[arg-type]
    (session,) = open_pairs(capture, loop, tmp_path)
    board = capture.boards[0]
    sync = round(SYNC_SECONDS * RATE)
    seen = []
    for _ in range(8):
        board.audio(np.ones((1700, 2), np.int16))  # 212.5 ms pieces: syncs fall inside them
        loop.turn()
        seen.append(header_frames(session.path))
    written = [1700 * n for n in range(1, 9)]
    assert seen == [w - w % sync for w in written]
    assert session.finish(board.ring.write_pos).frames == 8 * 1700


def test_a_stuck_fsync_does_not_hold_up_the_writing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A disk slow to fsync (seconds on a busy one) must not stop the audio of any recording
    reaching its file: the fsync is the syncer's, never the writer's."""
    capture = core(2)
    loop = WriterLoop(Completion(None), interval=0.01, period=0.01,  # type: ignore[arg-type]
                      fsync_interval=0.01)
    (session,) = open_pairs(capture, loop, tmp_path)
    board = capture.boards[0]
    stuck, release = threading.Event(), threading.Event()
    fsynced: list[int] = []
    real = os.fsync

    def slow_fsync(fd: int) -> None:
        stuck.set()
        release.wait(60)
        fsynced.append(os.fstat(fd).st_size)
        real(fd)

    monkeypatch.setattr(os, "fsync", slow_fsync)
    loop.start()
    try:
        board.audio(np.ones((RATE // 10, 2), np.int16))
        wait_for(stuck.is_set, what="an fsync under way")
        written = session.writer.frames
        board.audio(np.ones((RATE, 2), np.int16))
        # A second of audio reaches the file while the fsync still waits for the disk.
        wait_for(lambda: header_frames(session.path) >= written + RATE // 2,
                 what=lambda: f"the file growing past {written} frames during the fsync "
                 f"(it holds {header_frames(session.path)})")
        assert not fsynced
    finally:
        release.set()
        loop.stop()
        assert loop.join(10)
    assert fsynced  # the fsync did go on, off the writing path
    assert session.finish(board.ring.write_pos).frames == RATE // 10 + RATE


def test_recordings_are_shared_out_over_the_writer_threads_by_channel(tmp_path: Path) -> None:
    """With two writer threads each recording is written by one of them, always the same,
    both are used, and one thread held up (a file it cannot write) holds up only its own
    share: the other's recordings go on reaching their files."""
    capture = core(16)
    loop = WriterLoop(Completion(None), interval=0.01, period=0.02,  # type: ignore[arg-type]
                      threads=2)
    sessions = open_pairs(capture, loop, tmp_path)
    board = capture.boards[0]
    writers: dict[str, set[str]] = {str(s.path): set() for s in sessions}

    def watched(session: RecordingSession) -> None:
        write = session.writer.write

        def write_and_say(samples: np.ndarray) -> None:
            writers[str(session.path)].add(threading.current_thread().name)
            write(samples)

        session.writer.write = write_and_say  # type: ignore[method-assign]

    for session in sessions:
        watched(session)
    loop.start()
    try:
        for _ in range(4):
            board.audio(np.ones((RATE // 4, 16), np.int16))
            wait_for(lambda: all(s.writer.frames >= board.ring.write_pos for s in sessions))
        assert all(len(names) == 1 for names in writers.values()), writers
        assert set().union(*writers.values()) == {"writer-0", "writer-1"}
        held = sessions[0]
        (its_thread,) = writers[str(held.path)]
        others = [s for s in sessions if writers[str(s.path)] != {its_thread}]
        assert len(others) == len(sessions) // 2
        with held.open_and_held():
            board.audio(np.ones((RATE, 16), np.int16))
            wait_for(lambda: all(s.writer.frames >= board.ring.write_pos for s in others),
                     what="the other thread's recordings written while one file is held")
    finally:
        loop.stop()
        assert loop.join(10)
    for session in sessions:
        assert session.finish(board.ring.write_pos).frames == board.ring.write_pos
