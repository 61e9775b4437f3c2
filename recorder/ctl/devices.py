"""``recorderctl devices``: the sound devices and serial ports this machine offers, and the
serial ports the configuration names. Local: no service needed."""

from __future__ import annotations

import argparse
import os
import stat
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from recorder.config.loader import load_config
from recorder.config.model import resolve_config_path
from recorder.ctl.common import EXIT_OK, SubParsers, command, print_json, print_table
from recorder.drivers.settings import VoiceModemBoardConfig
from recorder.errors import ConfigError

EPILOG = """Lists PortAudio's input devices (what a `driver = "sounddevice"` board's `device`
names: an index or part of a name) and the serial ports pyserial finds (what a
`driver = "voicemodem"` board's `port` names), then each serial port the configuration
(--config, else the one recorderd reads) names, and whether it exists. Pseudo-terminals and
other ports pyserial does not enumerate appear only there. No recorder needs to be running.

exit status:
  0  the listing ran (also when PortAudio cannot start: that is said, serial ports still listed)
  2  usage error"""


@dataclass(frozen=True)
class SoundDevice:
    index: int
    name: str
    host_api: str
    max_input_channels: int
    default_samplerate: float


@dataclass(frozen=True)
class SerialPort:
    device: str
    description: str
    hwid: str


@dataclass(frozen=True)
class ConfiguredPort:
    board: str
    port: str
    present: bool
    detail: str


def register(commands: SubParsers[argparse.ArgumentParser]) -> None:
    parser = command(commands, "devices", "list sound input devices and serial ports", EPILOG,
                     run)
    parser.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS,
                        help="also check the serial ports this configuration names")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def sound_devices() -> tuple[list[SoundDevice], str]:
    """PortAudio's input devices, and "" or why PortAudio could not list them."""
    try:
        import sounddevice  # noqa: PLC0415 - PortAudio is loaded only for this command
    except OSError as exc:  # no libportaudio: sounddevice raises OSError at import
        return [], f"PortAudio cannot be loaded ({exc}); install libportaudio2"
    except ImportError as exc:
        return [], f"the Python package sounddevice is missing ({exc})"
    try:
        apis = [str(api["name"]) for api in sounddevice.query_hostapis()]
        found = sounddevice.query_devices()
    except sounddevice.PortAudioError as exc:
        return [], f"PortAudio cannot list devices ({exc})"
    devices = [
        SoundDevice(index=int(d["index"]), name=str(d["name"]),
                    host_api=apis[d["hostapi"]] if 0 <= d["hostapi"] < len(apis) else "?",
                    max_input_channels=int(d["max_input_channels"]),
                    default_samplerate=float(d["default_samplerate"]))
        for d in found if d["max_input_channels"] > 0]
    return devices, ""


def serial_ports() -> list[SerialPort]:
    from serial.tools import list_ports  # noqa: PLC0415

    return [SerialPort(p.device, p.description or "", p.hwid or "")
            for p in sorted(list_ports.comports(include_links=True), key=lambda p: p.device)]


def configured_ports(source: Path | None) -> tuple[list[ConfiguredPort], str]:
    """The voicemodem boards' ports in the configuration, each checked; and a note if the
    configuration cannot be read."""
    try:
        config = load_config(source)
    except ConfigError as exc:
        return [], f"{source}: {exc.problems[0]}"
    ports = []
    for i, board in enumerate(config.boards):
        if isinstance(board, VoiceModemBoardConfig):
            present, detail = _check_port(board.port)
            ports.append(ConfiguredPort(f"boards[{i}]", board.port, present, detail))
    return ports, ""


def _check_port(port: str) -> tuple[bool, str]:
    try:
        mode = os.stat(port).st_mode
    except OSError as exc:
        return False, f"missing: {exc.strerror or exc}"
    if not stat.S_ISCHR(mode):
        return False, "not a character device"
    if not os.access(port, os.R_OK | os.W_OK):
        return True, "present, but this user may not open it (group dialout?)"
    return True, "present"


def run(args: argparse.Namespace) -> int:
    sound, sound_problem = sound_devices()
    serial = serial_ports()
    source = resolve_config_path(args.config)
    configured, config_problem = configured_ports(source)
    if args.json:
        doc: dict[str, Any] = {
            "portaudio": {"ok": not sound_problem, "error": sound_problem or None,
                          "input_devices": [asdict(d) for d in sound]},
            "serial_ports": [asdict(p) for p in serial],
            "configured_serial_ports": [asdict(p) for p in configured],
            "config": str(source) if source else None,
        }
        if config_problem:
            doc["config_error"] = config_problem
        print_json(doc)
        return EXIT_OK
    print("PortAudio input devices:")
    if sound_problem:
        print(f"  {sound_problem}")
    elif not sound:
        print("  none (no sound card, or the sound server is not running)")
    else:
        print_table(["  INDEX", "NAME", "HOST API", "INPUTS", "DEFAULT RATE"],
                    [[f"  {d.index}", d.name, d.host_api, str(d.max_input_channels),
                      f"{d.default_samplerate:g}"] for d in sound], right={0, 3, 4})
    print("serial ports:")
    if not serial:
        print("  none found")
    else:
        print_table(["  DEVICE", "DESCRIPTION", "HWID"],
                    [[f"  {p.device}", p.description, p.hwid] for p in serial])
    if config_problem:
        print(f"recorderctl devices: cannot read the configuration: {config_problem}",
              file=sys.stderr)
    elif configured:
        print(f"serial ports in {source}:")
        print_table(["  BOARD", "PORT", "STATE"],
                    [[f"  {p.board}", p.port, p.detail] for p in configured])
    return EXIT_OK
