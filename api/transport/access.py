"""Who may reach the APIs (docs/security.md): the addresses of ``api.allow`` (and the CTI links
of ``api.cti_addresses``), and, with ``api.require_auth``, which user a request acts as: HTTP
Basic or a bearer token on the WebAPI, a client certificate on the socket API over TLS. What
each request needs of that user is the one table of ``recorder.rules.access``; this module
finds the user, asks the rule, and answers a refusal in the manual's result format (code 44,
API_COMMAND_NOT_ALLOWED). It also writes each request's client and user to the log, and the
media and changes to the audit trail.

Everything that reads the database or checks a password runs on an API worker, never on the
event loop.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import cache

from recorder.api.portal.throttle import SignInThrottle
from recorder.api.request import ApiResult
from recorder.api.transport.basiccache import CheckedPasswords
from recorder.calllog import REQUEST_LOG_NAME
from recorder.config.sections import ApiConfig
from recorder.resultcodes import ResultCode
from recorder.rules.access import (
    REQUEST_PERMISSIONS,
    Principal,
    api_requirement,
    refusal,
    socket_needs_identity,
)
from recorder.rules.addresses import Networks
from recorder.store.audit import AUDIT_API_CHANGE, AUDIT_EMAIL, AUDIT_EXPORT, AuditEntry
from recorder.store.directory import UserQuery
from recorder.store.factory import Store
from recorder.store.passwords import hash_password, verify_password

logger = logging.getLogger(__name__)

# One line per request (who, from where, what): its own logger, so a site can turn it down
# ([log] level) or route it apart without losing the recorder's other messages.
REQUEST_LOG = logging.getLogger(REQUEST_LOG_NAME)

# A refused address is logged at most this often, with how many were refused meanwhile: a port
# scan or a misconfigured client must not flood the log.
REFUSED_LOG_INTERVAL = 10.0
MAX_USERNAME = 255
MAX_PASSWORD = 1024
NOT_ALLOWED = ResultCode.API_COMMAND_NOT_ALLOWED
MEDIA_TYPES = frozenset({"EXPORT", "COMBINEDEXPORT", "COMBINEEXPORT", "MULTIEXPORT"})
EMAIL_TYPES = frozenset({"EMAIL", "COMBINEDEMAIL"})
# Changes the audit trail records, whoever makes them: the administration, and CALLUPDATE of a
# stored recording's ARCHIVEACTION.
CHANGE_TYPES = frozenset(REQUEST_PERMISSIONS) - MEDIA_TYPES - EMAIL_TYPES
_RESULTCODE = re.compile(rb"<RESULTCODE>(\d+)</RESULTCODE>")


@cache
def _decoy_hash() -> str:
    # An unknown user name is checked against this, so it costs the same scrypt as a known
    # one and the answer's timing does not tell which names exist.
    return hash_password("not a password anyone has")


def archive_change(request_type: str, params: Mapping[str, str]) -> bool:
    """A CALLUPDATE that sets ARCHIVEACTION of a stored recording (by RECORDID, or the
    device's last one with UPDATE_IF_NOT_RECORDING=Y). ``params`` by upper-case name."""
    if request_type != "CALLUPDATE" or not params.get("ARCHIVEACTION", "").strip():
        return False
    return bool(params.get("RECORDID", "").strip()) or (
        params.get("UPDATE_IF_NOT_RECORDING", "").strip().upper() == "Y")


@dataclass(frozen=True)
class Denied:
    """A request refused for who sent it: the HTTP status (401: who are you, 403: not you)
    and the RESULTMSG."""

    status: int
    message: str

    def result(self) -> ApiResult:
        return ApiResult(NOT_ALLOWED, self.message)


CREDENTIALS_REQUIRED = Denied(401, "credentials required: HTTP Basic (user:password) or "
                                   "Authorization: Bearer <token> (recorderctl token add)")


class AddressRefusals:
    """Logs refused addresses as one warning per REFUSED_LOG_INTERVAL at most."""

    def __init__(self, what: str, key: str) -> None:
        self._what = what
        self._key = key
        self._lock = threading.Lock()
        self._count = 0
        self._logged = -REFUSED_LOG_INTERVAL

    def note(self, address: str) -> None:
        now = time.monotonic()
        with self._lock:
            self._count += 1
            if now - self._logged < REFUSED_LOG_INTERVAL:
                return
            count, self._count, self._logged = self._count, 0, now
        logger.warning("%s: refused %s, not in %s (%d refused in the last %.0f s at most)",
                       self._what, address or "a client", self._key, count,
                       REFUSED_LOG_INTERVAL)


class ApiAccess:
    """The APIs' admission (``admits``) and, with ``require_auth``, their users."""

    def __init__(self, config: ApiConfig, store: Store | None) -> None:
        self.allowed = Networks(config.allow) | Networks(config.cti_addresses)
        self.require_auth = config.require_auth
        self._store = store
        self._cert_users = {name.strip(): user.strip() for name, _, user in
                            (entry.partition("=") for entry in config.socket_tls_users)}
        # Password guessing: a user name is refused for a while after failures in a row, the
        # portal's rule (its own counts: the portal keeps its sign-ins apart).
        self._throttle = SignInThrottle(1, config.max_failed_auth, config.auth_lockout_seconds)
        # Basic passwords that checked, for api.basic_auth_cache_seconds (basiccache).
        self.checked = CheckedPasswords(config.basic_auth_cache_seconds)
        self.socket_refusals = AddressRefusals("socket API", "api.allow")
        self.web_refusals = AddressRefusals("WebAPI", "api.allow")

    def admits(self, address: str) -> bool:
        return address in self.allowed

    def admits_socket(self, address: str) -> bool:
        """``admits`` for the socket API, a refusal noted in its rate-limited log line."""
        if address in self.allowed:
            return True
        self.socket_refusals.note(address)
        return False

    # --- who a request acts as (on a worker) ---------------------------------------------------

    def _principal(self, user_id: int, username: str) -> Principal:
        assert self._store is not None
        return Principal(user_id, username, self._store.directory.user_permissions(user_id))

    def _user(self, username: str) -> tuple[int, str] | None:
        assert self._store is not None
        found = self._store.directory.find_users(UserQuery(username=username))
        return (found[0].user_id, found[0].username) if len(found) == 1 else None

    def authenticate(self, authorization: str) -> Principal | Denied:
        """The user an HTTP Authorization header names (Basic or Bearer), or why not (401)."""
        if self._store is None:
            return Denied(401, "this recorder has no user directory to check credentials in")
        scheme, _, value = authorization.strip().partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer" and value:
            user_id = self._store.tokens.token_user(value) if self._store.tokens else None
            if user_id is None:
                return Denied(401, "the bearer token is unknown or revoked")
            user = self._store.directory.get_user(user_id)
            if user is None:
                return Denied(401, "the bearer token's user no longer exists")
            return self._principal(user_id, user.username)
        if scheme.lower() == "basic" and value:
            try:
                username, sep, password = base64.b64decode(value, validate=True).decode(
                    "utf-8").partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return Denied(401, "the Basic credentials are not base64 of user:password")
            if not sep or not username or len(username) > MAX_USERNAME \
                    or len(password) > MAX_PASSWORD:
                return Denied(401, "wrong user name or password")
            now = time.monotonic()
            locked = self._throttle.locked(username, now)
            if locked:
                return Denied(401, f"too many wrong passwords: {username} is refused for "
                                   f"about {max(1, round(locked / 60))} minute(s)")
            found = self._user(username)
            stored = self._store.directory.password_hash(found[0]) if found else None
            if found is not None and stored is not None and self.checked.holds(
                    username, password, found[0], stored):
                ok = True  # checked a moment ago against this very hash: no scrypt again
            else:
                ok = verify_password(password, stored or _decoy_hash())
                if ok and found is not None and stored is not None:
                    self.checked.remember(username, password, found[0], stored)
            if found is None or stored is None or not ok:
                if self._throttle.failed(username, now):
                    logger.warning("WebAPI: %r locked out for %.0f s after %d wrong passwords",
                                   username, self._throttle.lockout_seconds,
                                   self._throttle.max_failures)
                return Denied(401, "wrong user name or password")
            self._throttle.succeeded(username)
            return self._principal(*found)
        return CREDENTIALS_REQUIRED

    def certificate_user(self, common_name: str) -> Principal | Denied:
        """The user a verified client certificate acts as: the one socket_tls_users maps its
        subject CN to, else the user of that name."""
        if self._store is None:
            return Denied(403, "this recorder has no user directory")
        username = self._cert_users.get(common_name, common_name)
        found = self._user(username) if username else None
        if found is None:
            return Denied(403, f"the client certificate (CN {common_name!r}) is mapped to no "
                               f"user (api.socket_tls_users, or a user named {username!r})")
        return self._principal(*found)

    # --- what it may do ------------------------------------------------------------------------

    @staticmethod
    def permits(principal: Principal, request_type: str, params: Mapping[str, str]
                ) -> Denied | None:
        """None if the user may make the request; else why not (403)."""
        requirement = api_requirement(request_type, archive_change(request_type, params))
        why = refusal(principal.granted, requirement)
        if why is None:
            return None
        return Denied(403, f"{request_type or 'the request'} is not allowed for user "
                           f"{principal.username}: {why}")

    def socket_check(self, identity: str | None, request_type: str,
                     params: Mapping[str, str]) -> tuple[Principal | None, Denied | None]:
        """A socket API request's user and, with require_auth, why it is refused if it is
        administration (or EMAIL) without a certificate mapped to a user allowed it. The user
        is looked up only when the check or the audit trail needs it: call control, at a CTI
        link's rate, costs no database read."""
        needed = self.require_auth and socket_needs_identity(
            request_type, archive_change(request_type, params))
        if identity is None or not (needed or self.audited(request_type, params)):
            if needed:
                return None, Denied(403, f"{request_type} needs a user: connect to the socket "
                                         "API over TLS (api.socket_tls_port) with a client "
                                         "certificate mapped to a user whose role allows it")
            return None, None
        found = self.certificate_user(identity)
        if isinstance(found, Denied):
            return None, found if needed else None
        return found, self.permits(found, request_type, params) if needed else None

    def checked_in_memory(self, identity: str | None, request_type: str,
                          params: Mapping[str, str]) -> bool:
        """Whether ``socket_check`` of this request reads no user from the database and
        ``audit_request`` writes nothing: what a request answered on the event loop needs."""
        if self.audited(request_type, params):
            return False
        needed = self.require_auth and socket_needs_identity(
            request_type, archive_change(request_type, params))
        return identity is None or not needed

    @staticmethod
    def audited(request_type: str, params: Mapping[str, str]) -> bool:
        """Whether the request goes in the audit trail (media, e-mail, a change)."""
        return (request_type in MEDIA_TYPES or request_type in EMAIL_TYPES
                or request_type in CHANGE_TYPES or archive_change(request_type, params))

    # --- what is written down ------------------------------------------------------------------

    def audit(self, principal: Principal | None, entry: AuditEntry) -> None:
        """Append ``entry`` under the user (if any); one that cannot be written is logged (the
        request has been answered)."""
        if self._store is None or self._store.audit is None:
            return
        if principal is not None:
            entry = replace(entry, user_id=principal.user_id, username=principal.username)
        try:
            self._store.audit.append_audit(entry)
        except Exception:
            logger.exception("cannot write the audit entry of %s from %s", entry.target,
                             entry.address)

    def audit_request(self, principal: Principal | None, address: str, *, via: str,
                      request_type: str, params: Mapping[str, str], answer: bytes) -> None:
        """The audit entry of a change, an e-mail or an export not sent (answered, refused or
        failed alike), with its RESULTCODE; nothing for other requests. (An export that is
        sent has its own entry, naming the file: ``audit_export``.)"""
        if not self.audited(request_type, params):
            return
        action = (AUDIT_EXPORT if request_type in MEDIA_TYPES
                  else AUDIT_EMAIL if request_type in EMAIL_TYPES else AUDIT_API_CHANGE)
        found = _RESULTCODE.search(answer)
        code = found.group(1).decode() if found else "?"
        target = next((f"{name}={params[name]}" for name in (
            "RECORDID", "IDENT", "USERNAME", "USERID", "ROLENAME", "GROUPNAME", "PHONEID",
            "STATIONNAME", "UNIQUEID") if params.get(name)), "")
        self.audit(principal, AuditEntry(
            time=time.time(), user_id=None, username="", action=action, target=target[:255],
            detail=f"{via} {request_type} -> {code}", address=address))


def certificate_name(peercert: object) -> str | None:
    """The subject CN of a verified client certificate (``getpeercert()``); None without one."""
    if not isinstance(peercert, dict):
        return None
    for rdn in peercert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName" and isinstance(value, str) and value:
                return value
    return None


def log_request(via: str, peer: str, principal: Principal | None, request_type: str,
                request_id: str | None) -> None:
    """The request log's line: which client (and user) sent what."""
    REQUEST_LOG.info("%s %s%s: %s %s", via, peer,
                     f" user {principal.username}" if principal else "",
                     request_type[:64] or "(no TYPE)", (request_id or "")[:64])

