"""Typed, validated configuration: TOML file on top of embedded defaults.

Every key has a type, a default (or is required), a range or a set of values, and a description.
Loading reports every problem at once, each naming its key (``boards[1].files[0]: ...``), so a
field engineer fixes a file in one pass. Relative paths are relative to the config file.
"""

from __future__ import annotations

import difflib
import math
import os
import tomllib
import types
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import MISSING, Field, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

from recorder.errors import ConfigError
from recorder.schedules import DAY_NAMES, parse_clock, parse_day, parse_direction

DEFAULT_CONFIG_PATH = Path("/etc/recorder/recorder.toml")
CONFIG_ENV = "RECORDER_CONFIG"
DEVICEID_MAX_LEN = 64  # the manual's DEVICEID is char(64)


def default_data_dir() -> Path:
    """Where recordings and the database live when the config does not say.

    systemd's StateDirectory= wins (it exports STATE_DIRECTORY); root gets the FHS location; an
    ordinary user trying the demo gets a directory of their own instead of a permission error.
    """
    state_dirs = os.environ.get("STATE_DIRECTORY", "")
    if state_dirs:
        return Path(state_dirs.split(":")[0])
    if os.geteuid() == 0:
        return Path("/var/lib/recorder")
    xdg = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(xdg) / "recorder"


def setting(
    default: Any = MISSING,
    doc: str = "",
    *,
    factory: Callable[[], Any] | None = None,
    min: float | None = None,
    max: float | None = None,
    choices: tuple[str, ...] | None = None,
    secret: bool = False,
) -> Any:
    """Declare one config key: its default (none = required), range or choices, and meaning.

    A ``secret`` key's value is masked when the effective config is printed.
    """
    meta = {"doc": doc, "min": min, "max": max, "choices": choices, "secret": secret}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    if default is MISSING:
        return field(metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True, kw_only=True)
class CoreConfig:
    ident: int = setting(1, "COREIDENT reported in results and events", min=1, max=2147483647)


STORED_FORMATS = ("wav", "wav-ulaw", "wav-alaw", "mp3", "vox")


@dataclass(frozen=True, kw_only=True)
class StorageConfig:
    data_dir: Path = setting(
        doc="recordings/ and the SQLite database live here; created if missing",
        factory=default_data_dir,
    )

    stereo: bool = setting(
        True, "a device tapped by two channels (its two directions) is recorded as one stereo "
        "file, one party per side; false: the two are mixed into one mono file")
    format: str = setting(
        "wav", "stored format: wav (PCM), wav-ulaw, wav-alaw (G.711), mp3, vox (OKI ADPCM)",
        choices=STORED_FORMATS)
    encode: str = setting(
        "live", "live: encode while recording; after-call: record crash-safe PCM WAV, then "
        "transcode it when the call ends (mp3 and vox only)", choices=("live", "after-call"))
    mp3_bitrate: int = setting(
        0, "MP3 kbit/s; 0 picks 16 per channel, plenty for 8 kHz telephone speech",
        min=0, max=320)
    mp3_quality: int = setting(5, "LAME quality, 0 (best, slowest) to 9 (fastest)", min=0,
                               max=9)
    vox_rate: int = setting(8000, "VOX sample rate: 8000 (the recording's) or 6000",
                            min=6000, max=8000)
    transcode_workers: int = setting(
        2, "threads transcoding recordings after their call (encode = after-call)", min=1,
        max=64)
    fsync_interval_seconds: float = setting(
        5.0, "each open recording is fsynced (put on the disk, so a power loss cannot take "
        "it) at most this often, and when it closes; 0: never, the OS writes files back in "
        "its own time (about 30 s on Linux) at no cost to the writer loop", min=0.0,
        max=3600.0)
    disk_full_resume_seconds: float = setting(
        120.0, "after a write failed for lack of space (recordings cut short, truncated), new "
        "recordings wait until the free space holds this many seconds of what the cut "
        "recordings write (and retention.min_free_mb); 0: as soon as any space is back",
        min=0.0, max=86400.0)
    spool_retry_seconds: float = setting(
        2.0, "while the database cannot be written, recording rows wait in a spool file in "
        "data_dir; how often the spool tries to write them in", min=0.1, max=600.0)

    @property
    def recordings_dir(self) -> Path:
        return self.data_dir / "recordings"

    @property
    def database_path(self) -> Path:
        return self.data_dir / "recorder.sqlite3"

    @property
    def spool_path(self) -> Path:
        return self.data_dir / "store-spool.jsonl"


@dataclass(frozen=True, kw_only=True)
class CaptureConfig:
    lookback_seconds: float = setting(
        10.0, "audio kept per channel in its ring buffer", min=1.0, max=3600.0
    )
    preroll_seconds: float = setting(
        0.5, "audio from before a recording's start that it includes (covers CTI latency)",
        min=0.0, max=600.0)
    commit_delay_seconds: float = setting(
        0.0, "audio reaches the file this long after capture, so it can still be changed",
        min=0.0, max=600.0)
    board_start_seconds: float = setting(
        15.0, "at start, how long recorderd waits for every board to run before it reports "
        "itself ready (to systemd) anyway, naming the boards that do not", min=0.0, max=600.0)


@dataclass(frozen=True, kw_only=True)
class ApiConfig:
    host: str = setting("127.0.0.1", "address the socket API and the WebAPI listen on")
    socket_port: int = setting(5620, "XML socket API port; 0 picks a free port", min=0, max=65535)
    web_port: int = setting(2012, "WebAPI (HTTP) port; 0 picks a free port", min=0, max=65535)
    max_message_bytes: int = setting(
        1 << 20, "longest socket API message or WebAPI form body; longer ones get code 16 "
        "(the socket connection is closed)", min=1024, max=64 << 20
    )
    calllist_max_rows: int = setting(
        10000, "most rows one CALLLIST returns (CALLCOUNT cannot exceed it)", min=1, max=1_000_000
    )
    workers: int = setting(8, "threads that execute API requests", min=1, max=256)
    message_timeout_seconds: float = setting(
        5.0, "a socket message left incomplete this long is answered with code 16",
        min=0.1, max=600.0,
    )
    message_deadline_seconds: float = setting(
        30.0, "a socket message still arriving this long after its first byte (a slow "
        "sender) is answered with code 16 and the connection closed", min=0.1, max=3600.0)
    idle_timeout_seconds: float = setting(
        3600.0, "a socket connection that sends no message for this long is closed; event "
        "subscribers never are; 0: never", min=0.0, max=604800.0)
    max_clients: int = setting(
        256, "socket connections and WebAPI event streams open at once; the next gets code "
        "48 and is closed", min=1, max=65536)
    command_queue_size: int = setting(
        64, "requests waiting for a free API worker; beyond it a request is answered 47 at "
        "once", min=0, max=100_000)
    tls_port: int = setting(
        2013, "WebAPI over HTTPS port, served when tls_cert and tls_key are set; 0 picks a "
        "free port", min=0, max=65535)
    tls_cert: str = setting("", "PEM certificate (with its chain) for HTTPS; empty: no HTTPS")
    tls_key: str = setting("", "PEM private key of tls_cert (unencrypted)")
    event_queue_size: int = setting(
        1000, "events waiting for one event subscriber; a subscriber that falls this far "
        "behind is disconnected", min=1, max=1_000_000)


SMTP_SECURITY = ("none", "starttls", "tls")
# The port each SMTP security mode is usually served on, used when smtp.port is 0.
SMTP_DEFAULT_PORTS = {"none": 25, "starttls": 587, "tls": 465}


@dataclass(frozen=True, kw_only=True)
class SmtpConfig:
    host: str = setting("", "SMTP server EMAIL and COMBINEDEMAIL send through; empty: e-mail "
                        "is not configured (those requests answer 31)")
    port: int = setting(0, "SMTP port; 0: 25, 587 or 465 according to security", min=0,
                        max=65535)
    security: str = setting("none", "none (plain SMTP), starttls (upgrade with STARTTLS) or "
                            "tls (TLS from the first byte); certificates are verified",
                            choices=SMTP_SECURITY)
    username: str = setting("", "login name; empty: send without logging in")
    password: str = setting("", "password of username", secret=True)
    sender: str = setting("", "From address of EMAIL; empty: recorder@<this host's name>")
    timeout_seconds: float = setting(30.0, "how long the SMTP server may take to answer",
                                     min=1.0, max=600.0)

    @property
    def configured(self) -> bool:
        return bool(self.host)

    @property
    def effective_port(self) -> int:
        return self.port or SMTP_DEFAULT_PORTS[self.security]


@dataclass(frozen=True, kw_only=True)
class LogConfig:
    level: str = setting(
        "INFO", "log level", choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
    )


TRIGGERS = ("api", "vox", "line", "always")


@dataclass(frozen=True, kw_only=True)
class BoardCommon:
    """Keys every board has, whatever its driver."""

    devices: tuple[str, ...] = setting(doc="DEVICEID tapped by channel 1..N")
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


@dataclass(frozen=True, kw_only=True)
class FileBoardConfig(BoardCommon):
    """Replays one audio file per channel, looped, paced in real time."""

    driver: str = setting("file", "board driver")
    files: tuple[Path, ...] = setting(doc="one audio file per channel (WAV, FLAC, ...)")
    block_ms: int = setting(20, "length of one capture block", min=5, max=200)
    loop: bool = setting(True, "start the files again at their end; false: silence after")
    realtime: bool = setting(True, "false: replay as fast as the capture core takes it")


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


@dataclass(frozen=True, kw_only=True)
class VoiceModemBoardConfig(BoardCommon):
    """An ITU-T V.253 voice modem on a serial port, tapping one line."""

    driver: str = setting("voicemodem", "board driver")
    port: str = setting(doc="serial port of the modem, e.g. /dev/ttyACM0")
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


BoardConfig = (SyntheticBoardConfig | FileBoardConfig | SoundDeviceBoardConfig
               | VoiceModemBoardConfig)
BOARD_TYPES: dict[str, type[BoardConfig]] = {
    "synthetic": SyntheticBoardConfig,
    "file": FileBoardConfig,
    "sounddevice": SoundDeviceBoardConfig,
    "voicemodem": VoiceModemBoardConfig,
}


# --- [recording]: which calls are recorded (recorder.decision, recorder.schedules) ----------

_INT32_MAX = 2147483647  # the manual's integers are signed 32-bit


@dataclass(frozen=True, kw_only=True)
class CallMatchConfig:
    """Which calls a schedule or blocked filter is about: every key given must match.

    Patterns are shell wildcards matching the whole value ("614*": starts with 614).
    """

    devices: tuple[str, ...] = setting((), "DEVICEID patterns (case-sensitive); empty = any")
    groups: tuple[str, ...] = setting((), "GROUP patterns (case-insensitive); empty = any")
    gates: tuple[str, ...] = setting((), "GATE patterns (case-insensitive); empty = any")
    ani: tuple[str, ...] = setting((), "ANI patterns (case-sensitive); \"\" = no caller ID; "
                                   "empty = any")
    dnis: tuple[str, ...] = setting((), "DNIS patterns (case-sensitive); empty = any")
    agents: tuple[str, ...] = setting(
        (), "patterns for the user name of the agent on the call (case-insensitive); empty = any")
    directions: tuple[str, ...] = setting(
        (), "CALLDIRECTION values: I, O, ? (unknown or not sent); empty = any")


@dataclass(frozen=True, kw_only=True)
class ScheduleConfig(CallMatchConfig):
    """One recording rule; the first rule (in file order) that is about a call decides."""

    name: str = setting(doc="names the rule in the log and DEVICESTATUS; unique")
    record: bool = setting(True, "false: the calls this rule is about are not recorded")
    days: tuple[str, ...] = setting(
        (), "mon .. sun; empty = every day (a window crossing midnight belongs to the day it "
        "opens on)")
    start: str = setting("", "HH:MM the window opens; start and end empty = all day")
    end: str = setting("", "HH:MM the window closes (excluded); before start = crosses midnight")
    sample_percent: float = setting(
        100.0, "share of the rule's calls that are recorded, picked by a hash of GLOBALCALLID",
        min=0.0, max=100.0)
    priority: int = setting(
        -1, "PRIORITY of calls that send none; -1 = recording.default_priority", min=-1, max=100)
    keep_days: int = setting(-1, "KEEPDAYS of calls that send none; -1 = not set", min=-1,
                             max=_INT32_MAX)
    archive_action: int = setting(-1, "ARCHIVEACTION of calls that send none; -1 = not set",
                                  min=-1, max=_INT32_MAX)
    max_record_time_seconds: int = setting(
        -1, "MAXRECORDTIME of calls that send none, 0 = no limit; -1 = "
        "recording.max_record_time_seconds", min=-1, max=_INT32_MAX)
    max_record_silence_seconds: int = setting(
        -1, "MAXRECORDSILENCE of calls that send none, 0 = off; -1 = "
        "recording.max_record_silence_seconds", min=-1, max=_INT32_MAX)


@dataclass(frozen=True, kw_only=True)
class BlockedFilterConfig(CallMatchConfig):
    """Calls never recorded, whatever the schedules say (at least one key must be given)."""

    name: str = setting(doc="names the filter in the log and DEVICESTATUS; unique")


@dataclass(frozen=True, kw_only=True)
class RecordingConfig:
    default_priority: int = setting(50, "PRIORITY of a call neither its request nor its "
                                    "schedule gives one", min=0, max=100)
    max_concurrent: int = setting(
        0, "most recordings at once (licence or channel pool); 0 = one per channel",
        min=0, max=100000)
    max_record_time_seconds: int = setting(
        0, "MAXRECORDTIME of calls that send none and whose schedule sets none; 0 = no limit",
        min=0, max=_INT32_MAX)
    max_record_silence_seconds: int = setting(
        0, "MAXRECORDSILENCE of calls that send none and whose schedule sets none; 0 = off",
        min=0, max=_INT32_MAX)
    # The default is recorder.devices.DEFAULT_MAX_TRACKED_DEVICES (not imported: config stays
    # free of the call model); tests/test_devices.py checks the two agree.
    max_tracked_devices: int = setting(
        10_000, "devices no channel taps that are remembered from their calls (DEVICESTATUS, "
        "DEVICELIST, lookups by DEVICEALIAS...); beyond it the least recently used one without "
        "an open call is forgotten", min=1, max=10_000_000)
    schedules: tuple[ScheduleConfig, ...] = setting(
        (), "recording rules, first match decides; none = record every call")
    blocked: tuple[BlockedFilterConfig, ...] = setting(
        (), "filters of calls never recorded; they win over schedules")


# --- [retention]: when recordings are purged, and the free-space floor (recorder.retention) --


@dataclass(frozen=True, kw_only=True)
class ArchiveActionConfig:
    """An ARCHIVEACTION id a client may send, and how long its recordings are kept."""

    id: int = setting(doc="the ARCHIVEACTION number clients send; unique", min=1,
                      max=2**63 - 1)
    name: str = setting("", "what the site calls it (log and documentation only)")
    keep_days: int = setting(0, "days its recordings are kept from their start; 0 = forever",
                             min=0, max=_INT32_MAX)
    purge: bool = setting(False, "purge its recordings as soon as they are complete (then "
                          "keep_days must be 0)")


@dataclass(frozen=True, kw_only=True)
class RetentionConfig:
    default_keep_days: int = setting(
        0, "days a recording with neither KEEPDAYS nor a known ARCHIVEACTION is kept from its "
        "start; 0 = forever", min=0, max=_INT32_MAX)
    purge_time: str = setting("03:00", "HH:MM (local time) the daily purge runs")
    min_free_mb: int = setting(
        500, "new recordings are refused (API_ERROR_OUT_OF_DISK_SPACE) while the recordings' "
        "file system has less free space than this, in MB of 2^20 bytes; 0 = off",
        min=0, max=1 << 40)
    delete_oldest_when_full: bool = setting(
        False, "below min_free_mb, purge the oldest complete recordings, expired or not, until "
        "there is room again; false: never delete a recording before it expires")
    archive_actions: tuple[ArchiveActionConfig, ...] = setting(
        (), "ARCHIVEACTION ids and how long their recordings are kept")


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


def _demo_boards() -> tuple[BoardConfig, ...]:
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
    boards: tuple[BoardConfig, ...] = setting(
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


def load_config(path: Path | None) -> Config:
    """Load and validate ``path``, or return the embedded defaults when it is None."""
    if path is None:
        return embedded_config()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not UTF-8 text: {exc.reason}"]) from exc
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}"]) from exc
    return config_from_dict(raw, base_dir=path.parent)


def config_from_dict(raw: Mapping[str, Any], *, base_dir: Path | None = None) -> Config:
    """Validate a parsed TOML document; raises ConfigError listing every problem."""
    problems: list[str] = []
    config: Config | None = _Loader(problems, base_dir or Path.cwd()).table(Config, raw, "")
    if problems or config is None:
        raise ConfigError(problems)
    return config


# --- loading -------------------------------------------------------------------------------

_INVALID = object()


def _key(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


# TOML's types by the words an error message uses for them; bool before int, as bool is an int.
_TOML_TYPES: tuple[tuple[type, str], ...] = (
    (bool, "a boolean"), (int, "an integer"), (float, "a float"), (str, "a string"),
    (list, "an array"), (dict, "a table"),
)


def _describe(value: Any) -> str:
    return next((name for tp, name in _TOML_TYPES if isinstance(value, tp)),
                type(value).__name__)


class _Loader:
    def __init__(self, problems: list[str], base_dir: Path) -> None:
        self.problems = problems
        self.base_dir = base_dir
        self.tapped: dict[str, list[str]] = {}  # DEVICEID -> the board channels that tap it
        # Checks across the keys of one table, run as soon as that table has loaded, so a
        # mistake in one section never hides the mistakes in another.
        self.checks: dict[type[Any], Callable[[Any, str], Any]] = {
            ApiConfig: self.check_api,
            SmtpConfig: self.check_smtp,
            CaptureConfig: self.check_capture,
            StorageConfig: self.check_storage,
            RecordingConfig: self.check_recording,
            ScheduleConfig: self.check_schedule,
            BlockedFilterConfig: self.check_blocked,
            RetentionConfig: self.check_retention,
            **dict.fromkeys(BOARD_TYPES.values(), self.check_board),
        }

    def table(self, cls: type[Any], raw: Any, where: str) -> Any:
        if not isinstance(raw, dict):
            self.problems.append(f"{where or 'config'}: expected a table, got {_describe(raw)}")
            return None
        hints = get_type_hints(cls)
        known = [f.name for f in fields(cls)]
        for name in raw:
            if name not in known:
                hint = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
                suffix = f" (did you mean '{hint[0]}'?)" if hint else ""
                self.problems.append(f"{_key(where, name)}: unknown key{suffix}")
        values: dict[str, Any] = {}
        complete = True
        for f in fields(cls):
            key = _key(where, f.name)
            if f.name in raw:
                value = self.value(hints[f.name], raw[f.name], key, f)
                if value is _INVALID:
                    complete = False
                else:
                    values[f.name] = value
            elif f.default is MISSING and f.default_factory is MISSING:
                self.problems.append(f"{key}: required")
                complete = False
        if not complete:
            return None
        value = cls(**values)
        check = self.checks.get(cls)
        return check(value, where) if check is not None else value

    def value(self, tp: Any, raw: Any, key: str, f: Field[Any] | None) -> Any:
        meta = f.metadata if f is not None else {}
        origin = get_origin(tp)
        if origin is tuple:
            return self.array(get_args(tp)[0], raw, key)
        if origin is dict:
            default = f.default_factory() if f is not None and callable(f.default_factory) else {}
            return self.names(raw, key, default)
        if origin in (Union, types.UnionType):
            return self.board(raw, key)
        if is_dataclass(tp):
            value = self.table(tp, raw, key)  # type: ignore[arg-type]
            return _INVALID if value is None else value
        return self.scalar(tp, raw, key, meta)

    def array(self, item_tp: Any, raw: Any, key: str) -> Any:
        if not isinstance(raw, list):
            self.problems.append(f"{key}: expected an array, got {_describe(raw)}")
            return _INVALID
        items = [self.value(item_tp, item, f"{key}[{i}]", None) for i, item in enumerate(raw)]
        return _INVALID if any(item is _INVALID for item in items) else tuple(items)

    def names(self, raw: Any, key: str, default: dict[str, str]) -> Any:
        """A free-form table of names to strings, on top of ``default``; names are lower case."""
        if not isinstance(raw, dict):
            self.problems.append(f"{key}: expected a table, got {_describe(raw)}")
            return _INVALID
        merged = dict(default)
        ok = True
        for name, value in raw.items():
            where = f"{key}.{name}"
            problem = None
            if not isinstance(value, str):
                problem = f"expected a string, got {_describe(value)} {value!r}"
            elif not name.strip():
                problem = "a name must not be blank"
            elif any(unicodedata.category(c) == "Cc" for c in name + value):
                problem = "contains control characters"
            elif max(len(name), len(value)) > TERMINOLOGY_MAX_LEN:
                problem = f"names and values are at most {TERMINOLOGY_MAX_LEN} characters"
            if problem is not None:
                self.problems.append(f"{where}: {problem}")
                ok = False
            else:
                merged[name.lower()] = value
        return merged if ok else _INVALID

    def board(self, raw: Any, key: str) -> Any:
        if not isinstance(raw, dict):
            self.problems.append(f"{key}: expected a table, got {_describe(raw)}")
            return _INVALID
        names = ", ".join(sorted(BOARD_TYPES))
        driver = raw.get("driver")
        if driver is None:
            self.problems.append(f"{key}.driver: required (one of: {names})")
            return _INVALID
        cls = BOARD_TYPES.get(driver) if isinstance(driver, str) else None
        if cls is None:
            self.problems.append(f"{key}.driver: unknown driver {driver!r} (one of: {names})")
            return _INVALID
        value = self.table(cls, raw, key)
        return _INVALID if value is None else value

    def scalar(self, tp: Any, raw: Any, key: str, meta: Mapping[str, Any]) -> Any:
        expected = {bool: "true or false", int: "an integer", float: "a number",
                    str: "a string", Path: "a path string"}[tp]
        ok = (
            (tp is bool and isinstance(raw, bool))
            or (tp is int and isinstance(raw, int) and not isinstance(raw, bool))
            or (tp is float and isinstance(raw, int | float) and not isinstance(raw, bool))
            or (tp in (str, Path) and isinstance(raw, str))
        )
        if not ok:
            self.problems.append(f"{key}: expected {expected}, got {_describe(raw)} {raw!r}")
            return _INVALID
        if tp is float:
            raw = float(raw)
            if not math.isfinite(raw):  # TOML has nan and inf; no setting means either
                self.problems.append(f"{key}: {raw!r} is not a finite number")
                return _INVALID
        if isinstance(raw, str) and any(unicodedata.category(c) == "Cc" for c in raw):
            # Settings end up in file names, logs and API answers, none of which can take them.
            self.problems.append(f"{key}: contains control characters: {raw!r}")
            return _INVALID
        low, high, choices = meta.get("min"), meta.get("max"), meta.get("choices")
        if (low is not None and raw < low) or (high is not None and raw > high):
            self.problems.append(f"{key}: {raw!r} is out of range [{low}, {high}]")
            return _INVALID
        if choices is not None:
            match = next((c for c in choices if c.upper() == raw.upper()), None)
            if match is None:
                self.problems.append(f"{key}: {raw!r} is not one of {', '.join(choices)}")
                return _INVALID
            raw = match
        if tp is Path:
            if not raw:
                self.problems.append(f"{key}: must not be empty")
                return _INVALID
            path = Path(raw).expanduser()
            return path if path.is_absolute() else self.base_dir / path
        return raw


# --- checks across keys --------------------------------------------------------------------

    def check_board(self, board: BoardConfig, where: str) -> BoardConfig:
        if isinstance(board, SyntheticBoardConfig | SoundDeviceBoardConfig):
            if board.channels == 0:
                board = replace(board, channels=len(board.devices))
            elif board.channels != len(board.devices):
                self.problems.append(
                    f"{where}.devices: {len(board.devices)} device(s) for {board.channels} "
                    "channel(s); list one DEVICEID per channel"
                )
        elif isinstance(board, FileBoardConfig):
            if len(board.files) != len(board.devices):
                self.problems.append(
                    f"{where}.devices: {len(board.devices)} device(s) for {len(board.files)} "
                    "file(s); list one DEVICEID per file"
                )
            for i, path in enumerate(board.files):
                if not path.is_file():
                    self.problems.append(f"{where}.files[{i}]: no such file: {path}")
        elif len(board.devices) > 1:
            self.problems.append(f"{where}.devices: a voice modem taps one line; list one "
                                 f"DEVICEID, not {len(board.devices)}")
        if not board.devices:
            self.problems.append(f"{where}.devices: a board needs at least one channel")
        if board.triggers:
            if len(board.triggers) != len(board.devices):
                self.problems.append(
                    f"{where}.triggers: {len(board.triggers)} trigger(s) for "
                    f"{len(board.devices)} channel(s); list one per channel or use trigger")
            for i, name in enumerate(board.triggers):
                if name not in TRIGGERS:
                    self.problems.append(f"{where}.triggers[{i}]: {name!r} is not one of "
                                         f"{', '.join(TRIGGERS)}")
        for c, device in enumerate(board.devices):
            key = f"{where}.devices[{c}]"
            if not device.strip() or device != device.strip():
                self.problems.append(f"{key}: {device!r} is not a DEVICEID (blank or padded)")
            elif len(device) > DEVICEID_MAX_LEN:
                self.problems.append(f"{key}: longer than {DEVICEID_MAX_LEN} characters")
            elif device not in self.tapped:
                self.tapped[device] = [f"{where} channel {c + 1}"]
            elif len(self.tapped[device]) == 1 and self.tapped[device][0].startswith(f"{where} "):
                # Its other direction: the two are recorded together (storage.stereo).
                self.tapped[device].append(f"{where} channel {c + 1}")
            else:
                taps = " and ".join(self.tapped[device])
                why = ("a device has two directions at most" if len(self.tapped[device]) == 2
                       else "both directions of a device must be on one board")
                self.problems.append(f"{key}: device {device} is already tapped by {taps} "
                                     f"({why})")
        return board

    def check_storage(self, storage: StorageConfig, where: str) -> StorageConfig:
        if storage.vox_rate not in (6000, 8000):
            self.problems.append(f"{where}.vox_rate: {storage.vox_rate} is not 6000 or 8000")
        if storage.encode == "after-call" and storage.format in ("wav-ulaw", "wav-alaw"):
            self.problems.append(
                f"{where}.encode: {storage.format} is as crash-safe as PCM and cheap to write; "
                "record it live (encode = \"live\")")
        return storage

    def check_capture(self, capture: CaptureConfig, where: str) -> CaptureConfig:
        needed = capture.preroll_seconds + capture.commit_delay_seconds + 1.0
        if needed > capture.lookback_seconds:
            self.problems.append(
                f"{where}.lookback_seconds: {capture.lookback_seconds} s cannot hold "
                f"preroll_seconds + commit_delay_seconds + 1 s of margin ({needed} s)")
        return capture

    def check_api(self, api: ApiConfig, where: str) -> ApiConfig:
        if not api.host.strip():
            self.problems.append(f"{where}.host: must not be empty")
        if api.socket_port and api.socket_port == api.web_port:
            self.problems.append(f"{where}.web_port: {api.web_port} is also {where}.socket_port")
        if bool(api.tls_cert) != bool(api.tls_key):
            given, missing = ("tls_cert", "tls_key") if api.tls_cert else ("tls_key", "tls_cert")
            self.problems.append(f"{where}.{missing}: required with {where}.{given} (HTTPS "
                                 "needs both)")
            return api
        if not api.tls_cert:
            return api
        if api.tls_port and api.tls_port in (api.socket_port, api.web_port):
            other = "socket_port" if api.tls_port == api.socket_port else "web_port"
            self.problems.append(f"{where}.tls_port: {api.tls_port} is also {where}.{other}")
        # Relative to the config file, like every other path.
        cert, key = (self.existing_file(getattr(api, name), f"{where}.{name}")
                     for name in ("tls_cert", "tls_key"))
        return replace(api, tls_cert=cert, tls_key=key)

    def existing_file(self, raw: str, key: str) -> str:
        path = Path(raw).expanduser()
        path = path if path.is_absolute() else self.base_dir / path
        if not path.is_file():
            self.problems.append(f"{key}: no such file: {path}")
        return str(path)

    def check_smtp(self, smtp: SmtpConfig, where: str) -> SmtpConfig:
        from recorder.mailer import address_problem  # noqa: PLC0415 - mailer imports config

        if bool(smtp.username) != bool(smtp.password):
            given, missing = ("username", "password") if smtp.username else ("password",
                                                                               "username")
            self.problems.append(f"{where}.{missing}: required with {where}.{given}")
        if smtp.sender:
            problem = address_problem(smtp.sender)
            if problem is not None:
                self.problems.append(f"{where}.sender: {problem}")
        if smtp.host != smtp.host.strip():
            self.problems.append(f"{where}.host: {smtp.host!r} has spaces around it")
        return smtp

    def check_call_match(self, rule: ScheduleConfig | BlockedFilterConfig,
                         where: str) -> tuple[str, ...]:
        """The rule's directions in upper case, after checking them and its name."""
        if not rule.name.strip():
            self.problems.append(f"{where}.name: must not be blank")
        directions: list[str] = []
        for i, value in enumerate(rule.directions):
            try:
                directions.append(parse_direction(value))
            except ValueError as exc:
                self.problems.append(f"{where}.directions[{i}]: {exc}")
        return tuple(directions)

    def check_schedule(self, schedule: ScheduleConfig, where: str) -> ScheduleConfig:
        directions = self.check_call_match(schedule, where)
        days: list[str] = []
        for i, day in enumerate(schedule.days):
            try:
                days.append(DAY_NAMES[parse_day(day)])
            except ValueError as exc:
                self.problems.append(f"{where}.days[{i}]: {exc}")
        minutes: dict[str, int] = {}
        for name, value in (("start", schedule.start), ("end", schedule.end)):
            try:
                if value:
                    minutes[name] = parse_clock(value)
            except ValueError as exc:
                self.problems.append(f"{where}.{name}: {exc}")
        if bool(schedule.start) != bool(schedule.end):
            given, missing = ("start", "end") if schedule.start else ("end", "start")
            self.problems.append(f"{where}.{missing}: required with {given} (leave both empty "
                                 "for all day)")
        elif len(minutes) == 2 and minutes["start"] == minutes["end"]:
            self.problems.append(f"{where}.end: equals start (leave both empty for all day)")
        return replace(schedule, days=tuple(days), directions=directions)

    def check_blocked(self, blocked: BlockedFilterConfig, where: str) -> BlockedFilterConfig:
        directions = self.check_call_match(blocked, where)
        keys = ("devices", "groups", "gates", "ani", "dnis", "agents", "directions")
        if not any(getattr(blocked, key) for key in keys):
            # Almost certainly a typo'd or forgotten key, and it would stop all recording.
            self.problems.append(f"{where}: gives none of {', '.join(keys)}, so it would block "
                                 "every call")
        return replace(blocked, directions=directions)

    def check_recording(self, recording: RecordingConfig, where: str) -> RecordingConfig:
        # Names identify rules in the log and DEVICESTATUS; two alike would be ambiguous.
        rules: tuple[tuple[str, tuple[ScheduleConfig | BlockedFilterConfig, ...]], ...] = (
            ("schedules", recording.schedules), ("blocked", recording.blocked))
        for key, entries in rules:
            seen: dict[str, int] = {}
            for i, rule in enumerate(entries):
                folded = rule.name.strip().casefold()
                if folded in seen:
                    self.problems.append(
                        f"{where}.{key}[{i}].name: {rule.name!r} is already the name of "
                        f"{where}.{key}[{seen[folded]}]")
                else:
                    seen[folded] = i
        return recording

    def check_retention(self, retention: RetentionConfig, where: str) -> RetentionConfig:
        try:
            parse_clock(retention.purge_time)
        except ValueError as exc:
            self.problems.append(f"{where}.purge_time: {exc}")
        seen: dict[int, int] = {}
        for i, action in enumerate(retention.archive_actions):
            key = f"{where}.archive_actions[{i}]"
            if action.id in seen:
                self.problems.append(f"{key}.id: {action.id} is already the id of "
                                     f"{where}.archive_actions[{seen[action.id]}]")
            else:
                seen[action.id] = i
            if action.purge and action.keep_days:
                self.problems.append(f"{key}.purge: give keep_days or purge = true, not both")
        return retention


# --- printing ------------------------------------------------------------------------------


SECRET_MASK = "********"


def to_toml(config: Config, *, mask_secrets: bool = False) -> str:
    """The effective configuration as TOML that load_config reads back to the same Config.

    ``mask_secrets`` replaces every set secret (passwords) with SECRET_MASK, for printing.
    """

    def shown(table: Any, key: Field[Any]) -> str:
        value = getattr(table, key.name)
        if mask_secrets and key.metadata.get("secret") and value:
            return _toml_value(SECRET_MASK)
        return _toml_value(value)

    lines: list[str] = []
    for f in fields(config):
        value = getattr(config, f.name)
        if f.name == "boards":
            continue
        lines.append(f"[{f.name}]")
        if isinstance(value, dict):
            lines.extend(f"{_toml_value(k)} = {_toml_value(v)}" for k, v in value.items())
            lines.append("")
            continue
        lines.extend(f"{k.name} = {shown(value, k)}" for k in fields(value))
        lines.append("")
    for board in config.boards:
        lines.append("[[boards]]")
        lines.extend(f"{k.name} = {shown(board, k)}" for k in fields(board))
        lines.append("")
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if is_dataclass(value) and not isinstance(value, type):
        # An entry of an array of tables (recording.schedules) as an inline table.
        return "{" + ", ".join(f"{k.name} = {_toml_value(getattr(value, k.name))}"
                               for k in fields(value)) + "}"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'
