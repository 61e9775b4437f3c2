"""The whole configuration, the embedded defaults, and which file is read."""

from __future__ import annotations

import os
import types
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from recorder.config.boards import BoardCommon
from recorder.config.portal import PortalConfig
from recorder.config.recording import RecordingConfig, RetentionConfig
from recorder.config.sections import (
    ApiConfig,
    CaptureConfig,
    CoreConfig,
    LogConfig,
    SmtpConfig,
    StorageConfig,
)
from recorder.config.setting import setting
from recorder.drivers.settings import SyntheticBoardConfig

DEFAULT_CONFIG_PATH = Path("/etc/recorder/recorder.toml")
CONFIG_ENV = "RECORDER_CONFIG"

# FETCHTERMINOLOGY's answer unless [terminology] says otherwise: the manual's example settings.
DEFAULT_TERMINOLOGY: Mapping[str, str] = types.MappingProxyType({
    "agent": "Agent",
    "ani": "CallerID ANI",
    "callcopygroup": "CallCopy group",
    "devicealias": "Agent Number",
    "deviceid": "Voice Port",
    "dnis": "Number Called DNIS",
    "gate": "ACD Gate",
    "group": "Group",
    "user1": "Account Number",
    "user2": "CSN",
})
TERMINOLOGY_MAX_LEN = 255  # the manual's NAME and VALUE are varchar(255)


def _default_terminology() -> dict[str, str]:
    return dict(DEFAULT_TERMINOLOGY)


def _demo_boards() -> tuple[BoardCommon, ...]:
    return (SyntheticBoardConfig(devices=("1001", "1002", "1003", "1004"), channels=4),)


@dataclass(frozen=True, kw_only=True)
class Config:
    core: CoreConfig = setting(factory=CoreConfig)
    storage: StorageConfig = setting(factory=StorageConfig)
    capture: CaptureConfig = setting(factory=CaptureConfig)
    api: ApiConfig = setting(factory=ApiConfig)
    smtp: SmtpConfig = setting(factory=SmtpConfig)
    log: LogConfig = setting(factory=LogConfig)
    recording: RecordingConfig = setting(factory=RecordingConfig)
    retention: RetentionConfig = setting(factory=RetentionConfig)
    portal: PortalConfig = setting(factory=PortalConfig)
    boards: tuple[BoardCommon, ...] = setting(
        doc="capture boards, in channel order", factory=tuple
    )
    terminology: dict[str, str] = setting(
        doc="FETCHTERMINOLOGY's names and what this site calls them; a file's entries replace "
            "or add to the manual's defaults", factory=_default_terminology)


def embedded_config() -> Config:
    """The configuration used when there is no file: everything default plus the demo board."""
    return Config(boards=_demo_boards())


def resolve_config_path(explicit: str | None) -> Path | None:
    """The file to load: --config, else $RECORDER_CONFIG, else recorder.toml in systemd's
    ConfigurationDirectory= ($CONFIGURATION_DIRECTORY), else /etc/recorder/recorder.toml, when
    present; None means the embedded defaults."""
    if explicit:
        return Path(explicit)
    env = os.environ.get(CONFIG_ENV)
    if env:
        return Path(env)
    config_dirs = os.environ.get("CONFIGURATION_DIRECTORY", "")
    if config_dirs:
        candidate = Path(config_dirs.split(":")[0]) / DEFAULT_CONFIG_PATH.name
        if candidate.is_file():
            return candidate
    if DEFAULT_CONFIG_PATH.is_file():
        return DEFAULT_CONFIG_PATH
    return None
