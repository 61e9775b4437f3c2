"""The voicemodem driver's harness for the driver contract suite: a V.253 emulator on a pty."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from recorder.drivers.registry import create_driver
from recorder.drivers.voicemodem import VoiceModemBoardConfig
from tests.contract import Harness
from tests.modem_emulator import ModemEmulator


def voicemodem(tmp_path: Path) -> Iterator[Harness]:
    """An idle line on an emulated modem; losing the device unplugs the emulated modem."""
    emulator = ModemEmulator(tmp_path / "modem").start()
    try:
        driver = create_driver("boards[0]", VoiceModemBoardConfig(
            port=emulator.port, devices=("4001",), reopen_max_seconds=1.0))
        yield Harness(driver, lose=emulator.lose, restore=emulator.restore,
                      close=emulator.close)
    finally:
        emulator.close()
