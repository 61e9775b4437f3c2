"""Portal sessions: the signing key, signed session cookies, CSRF tokens, and the sessions
themselves (in memory, so a restart signs everyone out).

A cookie holds a random session id and an HMAC-SHA256 of it under the portal's key; a cookie
made with another key (another appliance, an old key, a forgery) fails the compare and is
refused. The session itself (user, sign-in time, last use, CSRF token) stays on the server, so
signing out, the idle and absolute expiry, and a deleted user end it for certain.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
import stat
import threading
from dataclasses import dataclass
from pathlib import Path

from recorder.durable import fsync_directory, give_to_directory_owner
from recorder.errors import StartupError

logger = logging.getLogger(__name__)

KEY_FILE = "portal-key"
KEY_BYTES = 32
SESSION_COOKIE = "portal_session"
# Before sign-in: binds the sign-in form's CSRF token to this browser.
PRESESSION_COOKIE = "portal_signin"
# Sessions kept at most; beyond it the least recently used is ended (a flood of sign-ins
# cannot grow memory without bound).
MAX_SESSIONS = 10000


def load_key(data_dir: Path) -> bytes:
    """The portal's signing key from ``data_dir/portal-key``, made (mode 0600) on first start.

    A key file others may read is refused: whoever reads it can forge any session."""
    path = data_dir / KEY_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        return _read_key(path)
    except OSError as exc:
        raise StartupError(f"storage.data_dir: cannot create the portal key {path}: "
                           f"{exc.strerror or exc}") from exc
    try:
        give_to_directory_owner(fd, data_dir)
        os.write(fd, secrets.token_bytes(KEY_BYTES).hex().encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_directory(data_dir)
    logger.info("portal: made a new signing key in %s", path)
    return _read_key(path)


def _read_key(path: Path) -> bytes:
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise StartupError(f"storage.data_dir: cannot read the portal key {path}: "
                           f"{getattr(exc, 'strerror', None) or exc}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise StartupError(f"storage.data_dir: the portal key {path} may be read by others "
                           f"(mode {stat.S_IMODE(mode):04o}); chmod 600 it")
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) < KEY_BYTES:
        raise StartupError(f"storage.data_dir: the portal key {path} is not a key; remove it "
                           "to make a new one (everyone is signed out)")
    return key


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


class Signer:
    """Signs and checks short tokens with the portal's key."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def mac(self, purpose: str, value: str) -> str:
        # The purpose keeps a token made for one use (a CSRF token) from passing as another
        # (a session cookie).
        return _b64(hmac.new(self._key, f"{purpose}\0{value}".encode(), hashlib.sha256)
                    .digest())

    def sign(self, purpose: str, value: str) -> str:
        return f"{value}.{self.mac(purpose, value)}"

    def unsign(self, purpose: str, token: str) -> str | None:
        """The value of a token ``sign`` made with this key for ``purpose``; None otherwise."""
        value, dot, mac = token.rpartition(".")
        if not dot or not value:
            return None
        return value if hmac.compare_digest(mac, self.mac(purpose, value)) else None

    def matches(self, purpose: str, value: str, token: str) -> bool:
        return hmac.compare_digest(token.encode(), self.mac(purpose, value).encode())


@dataclass
class Session:
    """One signed-in browser."""

    session_id: str
    user_id: int
    username: str
    started: float  # time.time() of the sign-in
    last_used: float
    csrf: str
    # The user's password hash when they signed in: a changed password ends the session.
    password_mark: str


class Sessions:
    """The live sessions, their expiry, and the cookies that name them; thread-safe."""

    def __init__(self, signer: Signer, idle_seconds: float, max_seconds: float) -> None:
        self.signer = signer
        self.idle_seconds = idle_seconds
        self.max_seconds = max_seconds
        self._lock = threading.Lock()
        self._sessions: dict[str, Session] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def start(self, user_id: int, username: str, password_mark: str, now: float
              ) -> tuple[Session, str]:
        """A new session and the cookie value that names it."""
        session = Session(secrets.token_urlsafe(32), user_id, username, now, now,
                          secrets.token_urlsafe(32), password_mark)
        with self._lock:
            if len(self._sessions) >= MAX_SESSIONS:
                oldest = min(self._sessions.values(), key=lambda s: s.last_used)
                del self._sessions[oldest.session_id]
            self._sessions[session.session_id] = session
        return session, self.signer.sign("session", session.session_id)

    def find(self, cookie: str, now: float) -> Session | None:
        """The live session a cookie names, its last use moved to ``now``; None for a cookie
        not signed with this key, a session unknown or expired (which is then ended)."""
        session_id = self.signer.unsign("session", cookie)
        if session_id is None:
            return None
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return None
            if (now - session.last_used > self.idle_seconds
                    or now - session.started > self.max_seconds):
                del self._sessions[session_id]
                return None
            session.last_used = now
            return session

    def end(self, session_id: str) -> None:
        with self._lock:
            self._sessions.pop(session_id, None)

    def end_user(self, user_id: int) -> None:
        """End every session of the user (deleted, password changed)."""
        with self._lock:
            for key in [k for k, s in self._sessions.items() if s.user_id == user_id]:
                del self._sessions[key]

    def presession(self) -> tuple[str, str]:
        """Before sign-in: (cookie value, the sign-in form's CSRF token bound to it)."""
        nonce = secrets.token_urlsafe(24)
        return self.signer.sign("presession", nonce), self.signer.mac("signin-csrf", nonce)

    def signin_token_ok(self, cookie: str, token: str) -> bool:
        """Whether a sign-in form's CSRF token belongs to the browser's pre-session cookie."""
        nonce = self.signer.unsign("presession", cookie)
        return nonce is not None and self.signer.matches("signin-csrf", nonce, token)


def password_mark(password_hash: str) -> str:
    """A short fingerprint of a password hash, so a session can tell the password changed
    without keeping the hash itself."""
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]
