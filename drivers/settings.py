"""The settings of the capture drivers that have no package of their own (siprec's are in
``recorder.drivers.siprec.config``): what a ``[[boards]]`` table may say, and its checks.

They live apart from the drivers so that loading a configuration (recorderd, every
``recorderctl`` command, ``--check-config``) imports neither numpy nor a driver's libraries
(soundfile, PortAudio, pyserial): ``recorder.drivers.registry`` names each driver's module and
imports it only when a board opens.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from recorder.config.boards import BoardCommon, one_channel_per_device
from recorder.config.setting import setting


@dataclass(frozen=True, kw_only=True)
class SyntheticBoardConfig(BoardCommon):
    """The built-in demo board: speech-like talk spurts and pauses on every channel."""

    driver: str = setting("synthetic", "board driver")
    channels: int = setting(0, "number of channels; defaults to the number of devices",
                            min=0, max=65536)
    sample_rate: int = setting(8000, "samples per second", min=8000, max=48000)
    block_ms: int = setting(20, "length of one capture block", min=5, max=200)
    seed: int = setting(0, "random seed of the generated speech", min=0, max=2**31 - 1)
    realtime: bool = setting(True, "false: generate as fast as the capture core takes it "
                             "(benchmarks)")

    def checked(self, where: str, problems: list[str]) -> SyntheticBoardConfig:
        return one_channel_per_device(self, where, problems)


@dataclass(frozen=True, kw_only=True)
class FileBoardConfig(BoardCommon):
    """Replays one audio file per channel, looped, paced in real time."""

    driver: str = setting("file", "board driver")
    files: tuple[Path, ...] = setting(doc="one audio file per channel (WAV, FLAC, ...)",
                                      example=("/srv/test-lines/a.wav",))
    block_ms: int = setting(20, "length of one capture block", min=5, max=200)
    loop: bool = setting(True, "start the files again at their end; false: silence after")
    realtime: bool = setting(True, "false: replay as fast as the capture core takes it")

    def checked(self, where: str, problems: list[str]) -> FileBoardConfig:
        if len(self.files) != len(self.devices):
            problems.append(f"{where}.devices: {len(self.devices)} device(s) for "
                            f"{len(self.files)} file(s); list one DEVICEID per file")
        for i, path in enumerate(self.files):
            if not path.is_file():
                problems.append(f"{where}.files[{i}]: no such file: {path}")
        return self


@dataclass(frozen=True, kw_only=True)
class SoundDeviceBoardConfig(BoardCommon):
    """A sound card (any PortAudio input device): input channel N taps devices[N-1]."""

    driver: str = setting("sounddevice", "board driver")
    device: str = setting("", "PortAudio input device: its index, or part of its name; "
                          "empty for the default input")
    channels: int = setting(0, "input channels to open; defaults to the number of devices",
                            min=0, max=256)
    sample_rate: int = setting(8000, "samples per second", min=8000, max=192000)
    block_ms: int = setting(20, "length of one capture block", min=5, max=200)
    reopen_max_seconds: float = setting(
        30.0, "a lost device is reopened with back-off up to this interval", min=0.1,
        max=3600.0)

    def checked(self, where: str, problems: list[str]) -> SoundDeviceBoardConfig:
        return one_channel_per_device(self, where, problems)


@dataclass(frozen=True, kw_only=True)
class VoiceModemBoardConfig(BoardCommon):
    """An ITU-T V.253 voice modem on a serial port, tapping one line."""

    driver: str = setting("voicemodem", "board driver")
    port: str = setting(doc="serial port of the modem, e.g. /dev/ttyACM0", example="/dev/ttyACM0")
    baudrate: int = setting(115200, "serial speed", min=1200, max=4000000)
    encoding: str = setting("ulaw", "audio format asked with AT+VSM, at 8 kHz: ulaw (G.711 "
                            "mu-law) or linear (PCM); the method number is found with AT+VSM=?",
                            choices=("ulaw", "linear"))
    line_select: int = setting(
        1, "analogue source selected with AT+VLS: the telephone line, 1 on most modems "
        "(AT+VLS=? lists a modem's choices; prefer one that listens without seizing the line)",
        min=0, max=255)
    init: tuple[str, ...] = setting((), "extra AT commands sent after the standard set-up",
                                    factory=None)
    caller_id: bool = setting(True, "ask for caller ID (AT+VCID=1) and report it as ANI")
    block_ms: int = setting(20, "length of one capture block", min=5, max=200)
    command_timeout_seconds: float = setting(
        3.0, "how long the modem may take to answer one AT command", min=0.1, max=60.0)
    ring_timeout_seconds: float = setting(
        8.0, "a call that rang is given up this long after its last ring if the line has not "
        "gone off-hook (longer than the pause between two rings)", min=1.0, max=120.0)
    reopen_max_seconds: float = setting(
        30.0, "a vanished port is reopened with back-off up to this interval", min=0.1,
        max=3600.0)

    @property
    def channels(self) -> int:
        return 1

    def checked(self, where: str, problems: list[str]) -> VoiceModemBoardConfig:
        if len(self.devices) > 1:
            problems.append(f"{where}.devices: a voice modem taps one line; list one "
                            f"DEVICEID, not {len(self.devices)}")
        return self
