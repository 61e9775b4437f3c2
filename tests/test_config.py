"""The typed configuration: the issue's keys work as written; every mistake names its key."""

from __future__ import annotations

import wave
from pathlib import Path
from typing import Any

import pytest

from recorder.config.loader import config_from_dict, load_config
from recorder.config.model import embedded_config, resolve_config_path
from recorder.config.printing import to_toml
from recorder.config.sections import default_data_dir
from recorder.drivers.settings import FileBoardConfig, SyntheticBoardConfig
from recorder.errors import ConfigError


def make_wav(path: Path, rate: int = 8000, frames: int = 800) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\x01\x00" * frames)
    return path


def test_the_issue_example_loads_as_written(tmp_path: Path) -> None:
    wav = make_wav(tmp_path / "a.wav")
    path = tmp_path / "recorder.toml"
    path.write_text(f"""
[storage]
data_dir = "/var/lib/recorder"   # recordings/ and the SQLite database live here

[api]
host = "127.0.0.1"
socket_port = 5620               # XML socket API (and later the event interface)
web_port = 2012                  # WebAPI over HTTP

[[boards]]
driver = "synthetic"             # built-in demo board
channels = 4
sample_rate = 8000
devices = ["1001", "1002", "1003", "1004"]

[[boards]]
driver = "file"
files = ["{wav}"]
devices = ["2001"]
""")
    config = load_config(path)
    assert config.storage.data_dir == Path("/var/lib/recorder")
    assert config.storage.database_path == Path("/var/lib/recorder/recorder.sqlite3")
    assert (config.api.host, config.api.socket_port, config.api.web_port) == (
        "127.0.0.1", 5620, 2012)
    synthetic, replay = config.boards
    assert isinstance(synthetic, SyntheticBoardConfig)
    assert (synthetic.channels, synthetic.sample_rate) == (4, 8000)
    assert synthetic.devices == ("1001", "1002", "1003", "1004")
    assert isinstance(replay, FileBoardConfig)
    assert replay.files == (wav,)
    assert replay.devices == ("2001",)


def test_embedded_defaults_are_the_demo_board_on_the_manual_ports() -> None:
    config = embedded_config()
    assert (config.api.host, config.api.socket_port, config.api.web_port) == (
        "127.0.0.1", 5620, 2012)
    (board,) = config.boards
    assert isinstance(board, SyntheticBoardConfig)
    assert board.devices == ("1001", "1002", "1003", "1004")
    assert board.channels == 4


def test_exports_default_to_four_at_once_and_one_gibibyte() -> None:
    config = embedded_config()
    assert (config.api.export_concurrency, config.api.export_max_bytes) == (4, 1 << 30)


def test_printable_unicode_is_not_a_control_character() -> None:
    config = config_from_dict({"boards": [{"driver": "synthetic",
                                           "devices": ["1001\u00a0A", "Zo\u00eb\u200d"]}]})
    assert config.boards[0].devices == ("1001\u00a0A", "Zo\u00eb\u200d")


def test_channels_default_to_the_number_of_devices() -> None:
    config = config_from_dict({"boards": [{"driver": "synthetic", "devices": ["7", "8"]}]})
    assert config.boards[0].channels == 2  # type: ignore[union-attr]


def test_relative_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    make_wav(tmp_path / "line.wav")
    config = config_from_dict(
        {"storage": {"data_dir": "data"},
         "boards": [{"driver": "file", "files": ["line.wav"], "devices": ["1"]}]},
        base_dir=tmp_path)
    assert config.storage.data_dir == tmp_path / "data"
    assert config.boards[0].files == (tmp_path / "line.wav",)  # type: ignore[union-attr]


SYNTH = {"driver": "synthetic", "devices": ["1001"]}

BAD_CONFIGS: list[tuple[str, dict[str, Any], str]] = [
    ("unknown section", {"storag": {}}, "storag: unknown key (did you mean 'storage'?)"),
    ("unknown key", {"api": {"socket_prt": 1}},
     "api.socket_prt: unknown key (did you mean 'socket_port'?)"),
    ("unknown key, no hint", {"api": {"zzz": 1}}, "api.zzz: unknown key"),
    ("string for int", {"api": {"socket_port": "5620"}},
     "api.socket_port: expected an integer, got a string '5620'"),
    ("bool for int", {"api": {"web_port": True}},
     "api.web_port: expected an integer, got a boolean True"),
    ("float for int", {"api": {"web_port": 20.5}},
     "api.web_port: expected an integer, got a float 20.5"),
    ("port out of range", {"api": {"socket_port": 70000}},
     "api.socket_port: 70000 is out of range [0, 65535]"),
    ("negative port", {"api": {"web_port": -1}}, "api.web_port: -1 is out of range [0, 65535]"),
    ("same ports", {"api": {"socket_port": 9000, "web_port": 9000}},
     "api.web_port: 9000 is also api.socket_port"),
    ("table expected", {"api": 5}, "api: expected a table, got an integer"),
    ("export budget below 1 MiB", {"api": {"export_max_bytes": 1000}},
     "api.export_max_bytes: 1000 is out of range [1048576, 1125899906842624]"),
    ("no export at all", {"api": {"export_concurrency": 0}},
     "api.export_concurrency: 0 is out of range [1, 256]"),
    ("export budget as text", {"api": {"export_max_bytes": "1G"}},
     "api.export_max_bytes: expected an integer, got a string '1G'"),
    ("empty data_dir", {"storage": {"data_dir": ""}}, "storage.data_dir: must not be empty"),
    ("log level", {"log": {"level": "chatty"}},
     "log.level: 'chatty' is not one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
    ("not a number", {"capture": {"lookback_seconds": float("nan")}},
     "capture.lookback_seconds: nan is not a finite number"),
    ("infinite", {"api": {"message_timeout_seconds": float("inf")}},
     "api.message_timeout_seconds: inf is not a finite number"),
    ("control character in a device", {"boards": [{"driver": "synthetic",
                                                    "devices": ["1001", "x\u0007y"]}]},
     "boards[0].devices[1]: contains control characters: 'x\\x07y'"),
    ("newline in a path", {"storage": {"data_dir": "/var/lib/a\nb"}},
     "storage.data_dir: contains control characters: '/var/lib/a\\nb'"),
    ("lookback too short", {"capture": {"lookback_seconds": 0.5}},
     "capture.lookback_seconds: 0.5 is out of range [1.0, 3600.0]"),
    ("boards not an array", {"boards": {"driver": "synthetic"}},
     "boards: expected an array, got a table"),
    ("board without driver", {"boards": [{"devices": ["1"]}]},
     "boards[0].driver: required (one of: file, siprec, sounddevice, synthetic, voicemodem)"),
    ("unknown driver", {"boards": [{"driver": "dialogic", "devices": ["1"]}]},
     "boards[0].driver: unknown driver 'dialogic' "
     "(one of: file, siprec, sounddevice, synthetic, voicemodem)"),
    ("devices missing", {"boards": [{"driver": "synthetic"}]}, "boards[0].devices: required"),
    ("device not a string", {"boards": [{"driver": "synthetic", "devices": [1001]}]},
     "boards[0].devices[0]: expected a string, got an integer 1001"),
    ("too few devices", {"boards": [{"driver": "synthetic", "channels": 4,
                                     "devices": ["1", "2"]}]},
     "boards[0].devices: 2 device(s) for 4 channel(s); list one DEVICEID per channel"),
    ("no channels", {"boards": [{"driver": "synthetic", "devices": []}]},
     "boards[0].devices: a board needs at least one channel"),
    ("sample rate too low", {"boards": [{**SYNTH, "sample_rate": 4000}]},
     "boards[0].sample_rate: 4000 is out of range [8000, 48000]"),
    ("blank device", {"boards": [{"driver": "synthetic", "devices": [" "]}]},
     "boards[0].devices[0]: ' ' is not a DEVICEID (blank or padded)"),
    ("device too long", {"boards": [{"driver": "synthetic", "devices": ["9" * 65]}]},
     "boards[0].devices[0]: longer than 64 characters"),
    ("device tapped twice", {"boards": [SYNTH, SYNTH]},
     "boards[1].devices[0]: device 1001 is already tapped by boards[0] channel 1 (both "
     "directions of a device must be on one board)"),
    ("device tapped three times", {"boards": [{"driver": "synthetic",
                                               "devices": ["7", "7", "7"]}]},
     "boards[0].devices[2]: device 7 is already tapped by boards[0] channel 1 and boards[0] "
     "channel 2 (a device has two directions at most)"),
    ("missing file", {"boards": [{"driver": "file", "files": ["/nonexistent/a.wav"],
                                  "devices": ["1"]}]},
     "boards[0].files[0]: no such file: /nonexistent/a.wav"),
    ("file/device mismatch", {"boards": [{"driver": "file", "files": [], "devices": ["1"]}]},
     "boards[0].devices: 1 device(s) for 0 file(s); list one DEVICEID per file"),
    ("synthetic key on file board", {"boards": [{"driver": "file", "files": [],
                                                 "devices": [], "seed": 3}]},
     "boards[0].seed: unknown key"),
    ("database-password-in-url", {"storage": {"database": "postgresql://rec:pw@db/rec"}},
     "storage.database: holds a password: put it in storage.database_password_file instead"),
    ("database-password-in-keywords",
     {"storage": {"database": "host=db dbname=rec password=pw"}},
     "storage.database: holds a password: put it in storage.database_password_file instead"),
    ("database-not-postgresql", {"storage": {"database": "mysql://rec@db/rec"}},
     "storage.database: mysql:// is not a PostgreSQL URL (postgresql://...)"),
    ("database-no-name", {"storage": {"database": "postgresql://rec@db:5432"}},
     "storage.database: names no database (postgresql://USER@HOST:PORT/DBNAME, or dbname=...)"),
    ("database-password-alone", {"storage": {"database_password_file": "/etc/pw"}},
     "storage.database_password_file: set without storage.database (a PostgreSQL database)"),
]


@pytest.mark.parametrize(("doc", "message"), [(d, m) for _, d, m in BAD_CONFIGS],
                         ids=[name for name, _, _ in BAD_CONFIGS])
def test_a_mistake_is_reported_naming_its_key(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        config_from_dict(doc)
    assert message in err.value.problems


def test_a_postgresql_database_is_taken_as_a_url_or_key_value_string(tmp_path: Path) -> None:
    for database in ("postgresql://recorder@db.example:5432/recorder",
                     "host=db.example port=5432 dbname=recorder user=recorder"):
        storage = config_from_dict({"storage": {"database": database,
                                                "database_password_file": "pgpass"}},
                                   base_dir=tmp_path).storage
        assert storage.postgresql
        assert storage.database == database
        # Relative to the configuration file's directory, as the key files.
        assert storage.database_password_file == str(tmp_path / "pgpass")
    assert not config_from_dict({}).storage.postgresql


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as err:
        config_from_dict({"api": {"socket_port": "x", "web_port": 99999, "hots": "a"},
                          "boards": [{"driver": "nope"}]})
    keys = sorted(p.split(":")[0] for p in err.value.problems)
    assert keys == ["api.hots", "api.socket_port", "api.web_port", "boards[0].driver"]


def test_a_broken_section_does_not_hide_the_problems_of_another() -> None:
    with pytest.raises(ConfigError) as err:
        config_from_dict({"api": {"socket_port": "x"},
                          "boards": [{"driver": "file", "files": ["/no/a.wav"], "devices": ["1"]},
                                     {"driver": "synthetic", "devices": ["1"]}]})
    assert err.value.problems == [
        "api.socket_port: expected an integer, got a string 'x'",
        "boards[0].files[0]: no such file: /no/a.wav",
        "boards[1].devices[0]: device 1 is already tapped by boards[0] channel 1 (both "
        "directions of a device must be on one board)",
    ]


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "absent.toml")
    assert "absent.toml: cannot read" in str(err.value)
    broken = tmp_path / "broken.toml"
    broken.write_text("[api\nsocket_port = 1\n")
    with pytest.raises(ConfigError) as err:
        load_config(broken)
    assert "broken.toml: not valid TOML" in str(err.value)


def test_printed_config_reads_back_to_the_same_config(tmp_path: Path) -> None:
    make_wav(tmp_path / "a.wav")
    config = config_from_dict({
        "core": {"ident": 7},
        "storage": {"data_dir": str(tmp_path / 'with "quotes" and \\ backslash')},
        "api": {"socket_port": 0},
        "boards": [SYNTH, {"driver": "file", "files": [str(tmp_path / "a.wav")],
                           "devices": ["2"]}],
    })
    printed = tmp_path / "printed.toml"
    printed.write_text(to_toml(config))
    assert load_config(printed) == config


def test_config_file_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECORDER_CONFIG", str(tmp_path / "env.toml"))
    assert resolve_config_path("/explicit.toml") == Path("/explicit.toml")
    assert resolve_config_path(None) == tmp_path / "env.toml"


def test_data_dir_defaults_to_systemds_state_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/recorder:/var/lib/other")
    assert default_data_dir() == Path("/var/lib/recorder")
    assert config_from_dict({}).storage.data_dir == Path("/var/lib/recorder")


def test_a_device_may_be_tapped_by_its_two_directions_on_one_board() -> None:
    config = config_from_dict({"storage": {"stereo": False}, "boards": [
        {"driver": "synthetic", "devices": ["1001", "1001", "1002"]}]})
    assert config.boards[0].devices == ("1001", "1001", "1002")
    assert config.storage.stereo is False
