"""Capture drivers, keyed by the ``driver`` name a ``[[boards]]`` table gives.

Each driver's module holds the driver and its settings schema (a ``BoardCommon`` subclass), so
adding a driver is one module and one line here. A module is imported only when a board (or a
configuration being checked) names it, so a site without sound cards or serial ports never
loads (or needs) their libraries.
"""

from __future__ import annotations

import importlib
from typing import Protocol

from recorder.config.boards import BoardCommon
from recorder.drivers.base import Driver

# driver name -> (module, driver class, settings class)
DRIVERS: dict[str, tuple[str, str, str]] = {
    "synthetic": ("recorder.drivers.synthetic", "SyntheticDriver", "SyntheticBoardConfig"),
    "file": ("recorder.drivers.file", "FileDriver", "FileBoardConfig"),
    "sounddevice": ("recorder.drivers.sounddevice", "SoundDeviceDriver",
                    "SoundDeviceBoardConfig"),
    "voicemodem": ("recorder.drivers.voicemodem", "VoiceModemDriver", "VoiceModemBoardConfig"),
    "siprec": ("recorder.drivers.siprec.driver", "SiprecDriver", "SiprecBoardConfig"),
}


class DriverFactory(Protocol):
    def __call__(self, key: str, config: BoardCommon, /) -> Driver: ...


def board_schema(driver: str) -> type[BoardCommon] | None:
    """The settings class of the driver named ``driver``; None if there is no such driver."""
    entry = DRIVERS.get(driver)
    if entry is None:
        return None
    schema: type[BoardCommon] = getattr(importlib.import_module(entry[0]), entry[2])
    return schema


def create_driver(key: str, board: BoardCommon) -> Driver:
    """Build the driver a board's config asks for; raises DriverError if its device is unusable."""
    module_name, class_name, _ = DRIVERS[board.driver]
    factory: DriverFactory = getattr(importlib.import_module(module_name), class_name)
    return factory(key, board)
