"""What every ``[[boards]]`` table has, whatever its driver; each driver adds its own keys.

A driver's settings are declared next to its code (``recorder.drivers.synthetic`` has
``SyntheticBoardConfig``, ...), as a subclass of ``BoardCommon`` with its own checks
(``checked``); the loader finds it by the table's ``driver`` name through
``recorder.drivers.registry``, importing only that driver.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar, Protocol, TypeVar

from recorder.config.setting import setting

TRIGGERS = ("api", "vox", "line", "always")


@dataclass(frozen=True, kw_only=True)
class BoardCommon:
    """Keys every board has, whatever its driver; a driver's schema subclasses it."""

    # False for a board whose channels are bound to calls as they come (SIPREC): its
    # ``devices`` then name the devices it may record, not one per channel, and may be empty.
    devices_are_channels: ClassVar[bool] = True

    driver: str = setting(doc="board driver: the module in recorder.drivers that runs it")
    devices: tuple[str, ...] = setting(doc="DEVICEID tapped by channel 1..N",
                                       example=("1001", "1002", "1003", "1004"))
    silence_threshold_dbfs: float = setting(
        -45.0, "a 20 ms window quieter than this (RMS) is silence; louder is speech for vox",
        min=-120.0, max=0.0)
    trigger: str = setting(
        "api", "what starts and stops recordings on the board's channels: api (CTI and the "
        "API), vox (voice activity), line (the board's off-hook/on-hook), always",
        choices=TRIGGERS)
    triggers: tuple[str, ...] = setting(
        (), "per-channel override of trigger, one entry per channel")
    vox_start_seconds: float = setting(
        0.2, "vox: speech this long starts a recording", min=0.02, max=10.0)
    vox_hold_seconds: float = setting(
        2.0, "vox: silence this long stops it", min=0.1, max=600.0)

    def channel_trigger(self, index: int) -> str:
        return self.triggers[index] if self.triggers else self.trigger

    def checked(self, where: str, problems: list[str]) -> BoardCommon:
        """The board after its driver's own checks across its keys (problems appended, each
        naming its key under ``where``); the keys every board has are checked by the loader."""
        return self

    def host_warnings(self, where: str) -> list[str]:
        """What is allowed but risky on this host (``--check-config`` prints each, naming its
        key under ``where``); never a reason to refuse the configuration."""
        return []

    def listen_ports(self, where: str) -> list[tuple[str, str, int, bool]]:
        """The ports the board's driver listens on, as (key under ``where``, host, port,
        UDP?), for ``--check-config`` to warn about the busy ones; most boards have none."""
        return []


class _Counted(Protocol):
    @property
    def channels(self) -> int: ...

    @property
    def devices(self) -> tuple[str, ...]: ...


_C = TypeVar("_C", bound=_Counted)


def one_channel_per_device(board: _C, where: str, problems: list[str]) -> _C:
    """For a board whose ``channels`` may be left 0: one channel per DEVICEID; any other count
    must match the devices listed."""
    if board.channels == 0:
        return replace(board, channels=len(board.devices))  # type: ignore[type-var]
    if board.channels != len(board.devices):
        problems.append(f"{where}.devices: {len(board.devices)} device(s) for "
                        f"{board.channels} channel(s); list one DEVICEID per channel")
    return board
