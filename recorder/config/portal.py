"""The settings of [portal]: the web portal's listener, its sessions and its sign-in limits
(docs/portal.md)."""

from __future__ import annotations

from dataclasses import dataclass

from recorder.config.setting import setting


@dataclass(frozen=True, kw_only=True)
class PortalConfig:
    # Off unless asked for: a new listener on a port many machines already use must not stop
    # the embedded defaults from starting, nor appear on an upgrade (docs/portal.md).
    enabled: bool = setting(False, "serve the web portal (its own listener, apart from the "
                            "WebAPI)")
    host: str = setting("127.0.0.1", "address the portal listens on")
    port: int = setting(8080, "portal port (HTTPS when tls_cert and tls_key are set); 0 picks "
                        "a free port", min=0, max=65535)
    tls_cert: str = setting("", "PEM certificate (with its chain): the portal is then served "
                            "over HTTPS only; empty: plain HTTP")
    tls_key: str = setting("", "PEM private key of tls_cert (unencrypted)")
    allow: tuple[str, ...] = setting(
        ("0.0.0.0/0", "::/0"), "addresses or networks (CIDR, IPv4 or IPv6) allowed to reach "
        "the portal; others are answered 403 (default: everyone, as it has sign-in)")
    max_clients: int = setting(64, "portal requests in progress at once (pages, media); the "
                               "next is answered 503", min=1, max=65536)
    workers: int = setting(4, "threads the portal reads the database and checks passwords on",
                           min=1, max=256)
    session_idle_seconds: float = setting(
        1800.0, "a portal session not used for this long ends (sign in again)", min=30.0,
        max=604800.0)
    session_max_seconds: float = setting(
        43200.0, "a portal session ends this long after its sign-in, used or not", min=60.0,
        max=2592000.0)
    max_failed_signins: int = setting(
        5, "failed sign-ins in a row after which a user name is locked out", min=1, max=1000)
    lockout_seconds: float = setting(
        900.0, "how long a locked-out user name is refused, even with the right password",
        min=1.0, max=604800.0)
    signin_attempts_per_minute: int = setting(
        20, "sign-in attempts one client address may make a minute; beyond it HTTP 429",
        min=1, max=100000)
