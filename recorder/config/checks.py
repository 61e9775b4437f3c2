"""The checks across keys: what no single setting's type or range can say (a board's devices
and channels agree, two rules do not share a name, HTTPS has both its files, ...)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from recorder.config.boards import TRIGGERS, BoardCommon
from recorder.config.portal import PortalConfig
from recorder.config.recording import (
    BlockedFilterConfig,
    RecordingConfig,
    RetentionConfig,
    ScheduleConfig,
)
from recorder.config.sections import ApiConfig, CaptureConfig, SmtpConfig, StorageConfig
from recorder.config.values import (
    DAY_NAMES,
    DEVICEID_MAX_LEN,
    address_problem,
    parse_clock,
    parse_day,
    parse_direction,
)
from recorder.rules.addresses import network_problem


class CrossChecks:
    """The checks of each table, run as soon as it has loaded (``checks()`` says which table
    gets which), so a mistake in one section never hides the mistakes in another. Problems are
    appended to ``problems``, each naming its key."""

    def __init__(self, problems: list[str], base_dir: Path) -> None:
        self.problems = problems
        self.base_dir = base_dir
        self.tapped: dict[str, list[str]] = {}  # DEVICEID -> the board channels that tap it
        # DEVICEID -> the board that records its calls on channels bound as they come (SIPREC)
        self.bound: dict[str, str] = {}

    def checks(self) -> dict[type[Any], Callable[[Any, str], Any]]:
        """The check of each table type; a board's is found by its base class."""
        return {
            ApiConfig: self.check_api,
            PortalConfig: self.check_portal,
            SmtpConfig: self.check_smtp,
            CaptureConfig: self.check_capture,
            StorageConfig: self.check_storage,
            RecordingConfig: self.check_recording,
            ScheduleConfig: self.check_schedule,
            BlockedFilterConfig: self.check_blocked,
            RetentionConfig: self.check_retention,
            BoardCommon: self.check_board,
        }

    def check_board(self, board: BoardCommon, where: str) -> BoardCommon:
        board = board.checked(where, self.problems)  # the driver's own keys first
        if not board.devices_are_channels:
            self.check_bound_devices(board, where)
            return board
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
            elif device in self.bound:
                self.problems.append(f"{key}: device {device} is recorded by the calls of "
                                     f"{self.bound[device]}; a device is tapped by one board")
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

    def check_bound_devices(self, board: BoardCommon, where: str) -> None:
        """The devices a board records on channels bound to calls as they come: DEVICEIDs,
        each once, tapped by no other board."""
        for c, device in enumerate(board.devices):
            key = f"{where}.devices[{c}]"
            if not device.strip() or device != device.strip():
                self.problems.append(f"{key}: {device!r} is not a DEVICEID (blank or padded)")
            elif len(device) > DEVICEID_MAX_LEN:
                self.problems.append(f"{key}: longer than {DEVICEID_MAX_LEN} characters")
            elif device in self.tapped:
                taps = " and ".join(self.tapped[device])
                self.problems.append(f"{key}: device {device} is already tapped by {taps}; a "
                                     "device is tapped by one board")
            elif device in self.bound:
                other = self.bound[device]
                self.problems.append(f"{key}: device {device} is " + (
                    "listed twice" if other == where else f"already recorded by {other}"))
            else:
                self.bound[device] = where

    def check_storage(self, storage: StorageConfig, where: str) -> StorageConfig:
        if storage.vox_rate not in (6000, 8000):
            self.problems.append(f"{where}.vox_rate: {storage.vox_rate} is not 6000 or 8000")
        if storage.encode == "after-call" and storage.format in ("wav-ulaw", "wav-alaw"):
            self.problems.append(
                f"{where}.encode: {storage.format} is as crash-safe as PCM and cheap to write; "
                "record it live (encode = \"live\")")
        storage = self._check_database(storage, where)
        if storage.seal_key_file:
            # As key_file: loaded by recorderd (and recorderctl) when used, never here.
            seal = Path(storage.seal_key_file).expanduser()
            storage = replace(storage, seal_key_file=str(
                seal if seal.is_absolute() else self.base_dir / seal))
        if not storage.key_file:
            if storage.encrypt:
                self.problems.append(f"{where}.key_file: required with {where}.encrypt (make "
                                     "a key with `recorderctl key init`)")
            return storage
        # Whether the file can be the key is recorderd's to check when it starts (and
        # --check-config's): under systemd it exists only while the service runs
        # (LoadCredential=), and recorderctl's offline commands load this file too.
        path = Path(storage.key_file).expanduser()
        path = path if path.is_absolute() else self.base_dir / path
        return replace(storage, key_file=str(path))

    def _check_database(self, storage: StorageConfig, where: str) -> StorageConfig:
        if storage.database_password_file:
            secret = Path(storage.database_password_file).expanduser()
            storage = replace(storage, database_password_file=str(
                secret if secret.is_absolute() else self.base_dir / secret))
        if not storage.database:
            if storage.database_password_file:
                self.problems.append(f"{where}.database_password_file: set without "
                                     f"{where}.database (a PostgreSQL database)")
            return storage
        problem = database_problem(storage.database)
        if problem:
            self.problems.append(f"{where}.database: {problem}")
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
        self.check_networks(api.cti_addresses, f"{where}.cti_addresses")
        self.check_networks(api.allow, f"{where}.allow")
        api = self.check_socket_tls(api, where)
        if api.cti_addresses:
            for name in ("max_clients", "max_http_connections"):
                if api.cti_reserved_clients >= getattr(api, name):
                    self.problems.append(
                        f"{where}.cti_reserved_clients: {api.cti_reserved_clients} would leave "
                        f"no place of {where}.{name} ({getattr(api, name)}) to other clients")
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

    def check_networks(self, addresses: tuple[str, ...], key: str) -> None:
        for n, address in enumerate(addresses):
            problem = network_problem(address)
            if problem is not None:
                self.problems.append(f"{key}[{n}]: {problem}")

    def check_socket_tls(self, api: ApiConfig, where: str) -> ApiConfig:
        """The socket API over TLS: it needs the certificate, and its port its own; a client
        CA file exists; each certificate user is COMMONNAME=USERNAME."""
        for n, entry in enumerate(api.socket_tls_users):
            name, sep, user = entry.partition("=")
            if not sep or not name.strip() or not user.strip():
                self.problems.append(f"{where}.socket_tls_users[{n}]: {entry!r} is not "
                                     "COMMONNAME=USERNAME")
        if not api.socket_tls:
            if api.socket_tls_client_ca:
                self.problems.append(f"{where}.socket_tls_client_ca: needs {where}.socket_tls "
                                     "= true")
            return api
        if not api.tls_cert:
            self.problems.append(f"{where}.socket_tls: needs {where}.tls_cert and "
                                 f"{where}.tls_key (the server's certificate)")
        ports = {"socket_port": api.socket_port, "web_port": api.web_port}
        if api.tls_cert:
            ports["tls_port"] = api.tls_port
        for name, port in ports.items():
            if api.socket_tls_port and api.socket_tls_port == port:
                self.problems.append(f"{where}.socket_tls_port: {port} is also {where}.{name}")
        if api.socket_tls_client_ca:
            ca = self.existing_file(api.socket_tls_client_ca, f"{where}.socket_tls_client_ca")
            api = replace(api, socket_tls_client_ca=ca)
        return api

    def check_portal(self, portal: PortalConfig, where: str) -> PortalConfig:
        self.check_networks(portal.allow, f"{where}.allow")
        if not portal.host.strip():
            self.problems.append(f"{where}.host: must not be empty")
        if portal.session_idle_seconds > portal.session_max_seconds:
            self.problems.append(
                f"{where}.session_idle_seconds: {portal.session_idle_seconds} is longer than "
                f"{where}.session_max_seconds ({portal.session_max_seconds})")
        if bool(portal.tls_cert) != bool(portal.tls_key):
            given, missing = (("tls_cert", "tls_key") if portal.tls_cert
                              else ("tls_key", "tls_cert"))
            self.problems.append(f"{where}.{missing}: required with {where}.{given} (HTTPS "
                                 "needs both)")
            return portal
        if not portal.tls_cert:
            return portal
        cert, key = (self.existing_file(getattr(portal, name), f"{where}.{name}")
                     for name in ("tls_cert", "tls_key"))
        return replace(portal, tls_cert=cert, tls_key=key)

    def existing_file(self, raw: str, key: str) -> str:
        path = Path(raw).expanduser()
        path = path if path.is_absolute() else self.base_dir / path
        if not path.is_file():
            self.problems.append(f"{key}: no such file: {path}")
        return str(path)

    def check_smtp(self, smtp: SmtpConfig, where: str) -> SmtpConfig:
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




def database_problem(database: str) -> str:
    """What is wrong with ``storage.database`` (a PostgreSQL URL or key/value string), or ""."""
    try:
        from psycopg.conninfo import conninfo_to_dict  # noqa: PLC0415 - an optional extra
    except ImportError:
        return "PostgreSQL needs psycopg: pip install 'recorder[postgresql]'"
    if "://" in database and not database.startswith(("postgresql://", "postgres://")):
        scheme = database.split("://", maxsplit=1)[0]
        return f"{scheme}:// is not a PostgreSQL URL (postgresql://...)"
    try:
        params = conninfo_to_dict(database)
    except Exception as exc:  # psycopg.ProgrammingError: libpq's own words
        return f"not a libpq URL or key/value string: {str(exc).strip()}"
    if "password" in params:
        # The URL is logged and shown (/status, --print-config): the secret goes elsewhere.
        return "holds a password: put it in storage.database_password_file instead"
    if not params.get("dbname"):
        return "names no database (postgresql://USER@HOST:PORT/DBNAME, or dbname=...)"
    return ""
