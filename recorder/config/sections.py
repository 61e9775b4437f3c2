"""The settings of the service's sections: [core], [storage], [capture], [api], [smtp], [log]."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from recorder.config.setting import setting


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


@dataclass(frozen=True, kw_only=True)
class CoreConfig:
    ident: int = setting(1, "COREIDENT reported in results and events", min=1, max=2147483647)
    bind_retry_seconds: float = setting(
        30.0, "at start, how long recorderd keeps retrying when a port it must listen on "
        "(API, portal, SIP) is held by another program, before it exits 1; 0: no retry",
        min=0.0, max=3600.0)


STORED_FORMATS = ("wav", "wav-ulaw", "wav-alaw", "mp3", "vox")


@dataclass(frozen=True, kw_only=True)
class StorageConfig:
    data_dir: Path = setting(
        doc="recordings/ and the SQLite database live here; created if missing (default: "
        "$STATE_DIRECTORY under systemd, /var/lib/recorder as root, else "
        "~/.local/state/recorder)",
        factory=default_data_dir, example=Path("/var/lib/recorder"),
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
    writer_threads: int = setting(
        0, "threads writing the recordings in progress, each a stable share of the channels "
        "(encoding and file writes run on several cores at once); 0: one a core, at most 4",
        min=0, max=64)
    fsync_interval_seconds: float = setting(
        5.0, "each open recording is fsynced (put on the disk, so a power loss cannot take "
        "it) at most this often, by a thread of its own (the writing never waits for the "
        "disk), and when it closes; 0: never, the OS writes files back in its own time "
        "(about 30 s on Linux)", min=0.0,
        max=3600.0)
    disk_full_resume_seconds: float = setting(
        120.0, "after a write failed for lack of space (recordings cut short, truncated), new "
        "recordings wait until the free space holds this many seconds of what the cut "
        "recordings write, at most half the volume (and retention.min_free_mb); 0: as soon as "
        "any space is back",
        min=0.0, max=86400.0)
    spool_retry_seconds: float = setting(
        2.0, "while the database cannot be written, recording rows wait in a spool file in "
        "data_dir; how often the spool tries to write them in", min=0.1, max=600.0)
    encrypt: bool = setting(
        False, "write every recording encrypted as it is recorded (AES-256-GCM chunks, a key "
        "per file wrapped by key_file's master key; docs/encryption.md); losing key_file is "
        "losing the recordings")
    key_file: str = setting(
        "", "the master key for encrypt: 32 bytes, mode 0600 (make it with `recorderctl key "
        "init`); relative to the configuration file's directory")
    seal_key_file: str = setting(
        "", "the seal key: 32 bytes, mode 0600 (make it with `recorderctl seal-key init`); "
        "when set, rows' seals and the audit chain are HMACs under it, so forging evidence "
        "needs it (docs/storage.md); relative to the configuration file's directory")

    database: str = setting(
        "", "the database of recording rows and the directory: empty for the SQLite file in "
        "data_dir; else PostgreSQL, as a libpq URL (\"postgresql://recorder@db.example:5432/"
        "recorder\") or key/value string (\"host=db.example dbname=recorder user=recorder\"), "
        "without its password (docs/storage.md)")
    database_password_file: str = setting(
        "", "the PostgreSQL password for database: a file holding it (one line; a systemd "
        "credential such as /run/credentials/recorder.service/pgpass works); empty: none, or "
        "libpq's own (~/.pgpass, PGPASSWORD); relative to the configuration file's directory")
    database_pool_size: int = setting(
        8, "PostgreSQL: connections the recorder keeps open to the database at most",
        min=2, max=256)

    @property
    def postgresql(self) -> bool:
        """Whether ``database`` names a PostgreSQL database (else SQLite in data_dir)."""
        return bool(self.database)

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
    # Exports (EXPORT, COMBINEDEXPORT, MULTIEXPORT, the e-mail attachments) in the work area
    # data_dir/tmp; they never take the recordings' room either (retention.min_free_mb).
    export_max_bytes: int = setting(
        1 << 30, "bytes all exports being made or sent may hold in data_dir/tmp at once; each "
        "reserves its estimated size first, and one that does not fit is answered 47 (2 if "
        "it is bigger than the whole budget)", min=1 << 20, max=1 << 50)
    export_concurrency: int = setting(
        4, "exports being made at once (each holds an API worker meanwhile); the next is "
        "answered 47", min=1, max=256)
    workers: int = setting(8, "threads that execute API requests", min=1, max=256)
    message_timeout_seconds: float = setting(
        5.0, "a socket message left incomplete this long is answered with code 16",
        min=0.1, max=600.0,
    )
    message_deadline_seconds: float = setting(
        30.0, "a socket message still arriving this long after its first byte (a slow "
        "sender) is answered with code 16 and the connection closed; also the longest a TLS "
        "handshake on socket_tls_port may take", min=0.1, max=3600.0)
    idle_timeout_seconds: float = setting(
        300.0, "a socket connection that sends no message for this long is closed; event "
        "subscribers and cti_addresses never are; 0: never", min=0.0, max=604800.0)
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
    # Who may reach the APIs (docs/security.md): addresses first, then (require_auth) who.
    allow: tuple[str, ...] = setting(
        ("127.0.0.1/32", "::1/128"), "addresses or networks (CIDR, IPv4 or IPv6) allowed to "
        "use the socket API and the WebAPI (cti_addresses always are); a socket from elsewhere "
        "is closed at once, an HTTP request answered 403")
    require_auth: bool = setting(
        False, "every WebAPI request needs HTTP Basic or a bearer token (recorderctl token) of "
        "a user whose role has ALLOWAPIAUTH, and the socket API's administrative requests a "
        "client certificate mapped to such a user (socket_tls_client_ca)")
    max_failed_auth: int = setting(
        5, "failed HTTP Basic passwords in a row after which a user name is refused by the "
        "WebAPI for auth_lockout_seconds, right password or not", min=1, max=1000)
    auth_lockout_seconds: float = setting(
        900.0, "how long a user name locked out by max_failed_auth is refused", min=1.0,
        max=604800.0)
    basic_auth_cache_seconds: float = setting(
        60.0, "an HTTP Basic user name and password that checked (a scrypt hash, ~60 ms) are "
        "taken as checked for this long by the WebAPI, as long as the user and their stored "
        "password stay the same; wrong passwords are never remembered; 0: every request "
        "checks", min=0.0, max=3600.0)
    socket_tls: bool = setting(
        False, "serve the socket API over TLS too, on socket_tls_port, with tls_cert and tls_key")
    socket_tls_port: int = setting(
        5621, "socket API over TLS port (with socket_tls); 0 picks a free port", min=0,
        max=65535)
    socket_tls_client_ca: str = setting(
        "", "PEM CA certificate(s) that issue the clients' certificates: the socket API over "
        "TLS then requires a client certificate it verifies (mutual TLS); empty: none asked")
    socket_tls_users: tuple[str, ...] = setting(
        (), "which user a client certificate acts as, \"COMMONNAME=USERNAME\" each; a "
        "certificate whose subject CN is not listed acts as the user named by its CN")
    event_queue_size: int = setting(
        1000, "events waiting for one event subscriber; a subscriber that falls this far "
        "behind is disconnected", min=1, max=1_000_000)
    # Fairness between clients (docs/api-notes.md, "Limits"): call control in a lane of its
    # own, the CTI links' allow-list, limits per client address and on HTTP connections.
    call_control_workers: int = setting(
        4, "threads that execute call control (CALLSTART, CALLSTOP, CALLUPDATE, RECORDSTART, "
        "RECORDSTOP, the blackouts) and TEST, apart from the workers of every other request",
        min=1, max=256)
    call_control_queue_size: int = setting(
        64, "call-control requests waiting for a free call-control worker; beyond it one is "
        "answered 47 at once", min=0, max=100_000)
    cti_addresses: tuple[str, ...] = setting(
        (), "addresses or networks (CIDR, e.g. 10.1.2.0/28) of the CTI links: not held to "
        "max_clients_per_address, given the cti_reserved_clients places, never closed for "
        "being idle")
    cti_reserved_clients: int = setting(
        8, "places within max_clients and within max_http_connections that only cti_addresses "
        "may take (none when cti_addresses is empty)", min=0, max=65536)
    max_clients_per_address: int = setting(
        32, "socket connections (and WebAPI event streams) one client address may hold at "
        "once, and as many HTTP connections; the next gets code 48 (cti_addresses excepted)",
        min=1, max=65536)
    max_http_connections: int = setting(
        128, "WebAPI (HTTP and HTTPS) connections open at once, so also requests in progress "
        "(a connection carries one at a time); the next gets code 48 with HTTP 503",
        min=1, max=65536)


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
    calls: bool = setting(
        True, "the call log: one INFO line per call, where it was recorded or why not; false: "
        "none of those lines (a busy site), everything else as log.level says")
    requests: bool = setting(
        True, "the request log: one INFO line per API request (client, user, TYPE, "
        "REQUESTID); false: none of those lines, everything else as log.level says")
