"""Capture drivers, keyed by the ``driver`` name a ``[[boards]]`` table gives."""

from __future__ import annotations

import importlib
from typing import Protocol

from recorder.config import BoardConfig
from recorder.drivers.base import (
    Block,
    Driver,
    DriverSink,
    DriverState,
    LineEvent,
    LineEventKind,
)

# Each driver's module is imported only when a board uses it, so a site without sound cards or
# serial ports never loads (or needs) their libraries.
DRIVERS: dict[str, str] = {
    "synthetic": "recorder.drivers.synthetic:SyntheticDriver",
    "file": "recorder.drivers.file:FileDriver",
    "sounddevice": "recorder.drivers.sounddevice:SoundDeviceDriver",
    "voicemodem": "recorder.drivers.voicemodem:VoiceModemDriver",
}


class DriverFactory(Protocol):
    def __call__(self, key: str, config: BoardConfig, /) -> Driver: ...


def create_driver(key: str, board: BoardConfig) -> Driver:
    """Build the driver a board's config asks for; raises DriverError if its device is unusable."""
    module_name, _, class_name = DRIVERS[board.driver].partition(":")
    factory: DriverFactory = getattr(importlib.import_module(module_name), class_name)
    return factory(key, board)


__all__ = ["DRIVERS", "Block", "Driver", "DriverSink", "DriverState", "LineEvent", "LineEventKind",
           "create_driver"]
