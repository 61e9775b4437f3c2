"""A siprec board's media thread that runs late loses nothing while it catches up: its RTP
waits in the sockets, so the capture core's board clock, which writes a sound card's late
blocks as lost input (silence), must leave a siprec board's late blocks alone. The same late
blocks from a synthetic (sound-card-like) board are written as a gap, as before."""

from __future__ import annotations

import numpy as np

from recorder.capture.core import CaptureBoard
from recorder.drivers.base import Driver
from recorder.drivers.registry import create_driver
from recorder.drivers.settings import SyntheticBoardConfig
from recorder.drivers.siprec.config import SiprecBoardConfig
from recorder.drivers.siprec.driver import SiprecDriver

RATE = 8000
BLOCK = 160


def late_blocks(driver: Driver) -> CaptureBoard:
    """2 s on time, then 1.5 s in which the blocks come 0.6 s late, then caught up."""
    now = [500.0]
    board = CaptureBoard(driver, [""] * driver.channels, 10.0, clock=lambda: now[0])
    block = np.ones((BLOCK, driver.channels), np.int16)
    for _ in range(100):
        now[0] += BLOCK / RATE
        board.audio(block)
    now[0] += 0.6
    for _ in range(75):
        now[0] += BLOCK / RATE
        board.audio(block)
    for _ in range(30 + 75):  # the 0.6 s owed, delivered at once, then on time again
        board.audio(block)
        if _ >= 30:
            now[0] += BLOCK / RATE
    return board


def test_a_late_siprec_board_is_caught_up_not_written_as_lost_input() -> None:
    siprec = SiprecDriver("boards[0]", SiprecBoardConfig(sip_port=0, max_sessions=1))
    try:
        board = late_blocks(siprec)
    finally:
        siprec.media._shutdown()
    assert board.levels(0).gap_frames == 0
    assert board.ring.write_pos == (100 + 75 + 105) * BLOCK
    # The same late blocks from a board standing for a sound card, whose driver cannot know
    # every loss: the board clock writes their lateness as silence.
    card = create_driver("boards[1]", SyntheticBoardConfig(
        devices=("1", "2"), channels=2, realtime=True))
    card.reports_lost_time = False
    assert late_blocks(card).levels(0).gap_frames > 0.25 * RATE
