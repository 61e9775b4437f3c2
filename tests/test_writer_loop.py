"""The writer loop's cadence: each recording pumped once a period, a share of them per turn,
and every file still handed to the OS at each half second of its audio."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from recorder.capture.core import CaptureBoard, CaptureCore
from recorder.codecs.formats import open_writer
from recorder.drivers.registry import create_driver
from recorder.drivers.settings import SyntheticBoardConfig
from recorder.recording.completion import Completion
from recorder.recording.session import SYNC_SECONDS, RecordingSession
from recorder.recording.writer import WriterLoop

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
