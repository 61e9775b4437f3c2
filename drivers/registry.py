"""Capture drivers, keyed by the ``driver`` name a ``[[boards]]`` table gives.

Each driver is named here by module and class, with its settings schema (a ``BoardCommon``
subclass), so adding a driver is a module, its settings and one line here. The settings live
apart from the driver (``recorder.drivers.settings``, or the driver package's ``config``) and
are all a configuration needs: loading one (recorderd, every ``recorderctl`` command) imports no
driver, numpy or device library. A driver's module is imported only when a board opens, so a
site without sound cards or serial ports never loads (or needs) their libraries.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Protocol

from recorder.config.boards import BoardCommon

if TYPE_CHECKING:
    from recorder.drivers.base import Driver

SETTINGS = "recorder.drivers.settings"

# driver name -> (driver's module, driver class, settings' module, settings class)
DRIVERS: dict[str, tuple[str, str, str, str]] = {
    "synthetic": ("recorder.drivers.synthetic", "SyntheticDriver", SETTINGS,
                  "SyntheticBoardConfig"),
    "file": ("recorder.drivers.file", "FileDriver", SETTINGS, "FileBoardConfig"),
    "sounddevice": ("recorder.drivers.sounddevice", "SoundDeviceDriver", SETTINGS,
                    "SoundDeviceBoardConfig"),
    "voicemodem": ("recorder.drivers.voicemodem", "VoiceModemDriver", SETTINGS,
                   "VoiceModemBoardConfig"),
    "siprec": ("recorder.drivers.siprec.driver", "SiprecDriver",
               "recorder.drivers.siprec.config", "SiprecBoardConfig"),
}


class DriverFactory(Protocol):
    def __call__(self, key: str, config: BoardCommon, /) -> Driver: ...


def board_schema(driver: str) -> type[BoardCommon] | None:
    """The settings class of the driver named ``driver``; None if there is no such driver."""
    entry = DRIVERS.get(driver)
    if entry is None:
        return None
    schema: type[BoardCommon] = getattr(importlib.import_module(entry[2]), entry[3])
    return schema


def create_driver(key: str, board: BoardCommon) -> Driver:
    """Build the driver a board's config asks for; raises DriverError if its device is unusable."""
    module_name, class_name, _, _ = DRIVERS[board.driver]
    factory: DriverFactory = getattr(importlib.import_module(module_name), class_name)
    return factory(key, board)
