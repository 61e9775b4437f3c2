"""The audit trail's interface: who did what, when, from which address. Append-only: the store
offers no way to change or remove an entry (but for purging the oldest, ``EvidenceStore``), and
the database refuses it too; each entry holds the hash of the one before (docs/storage.md)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

# What the portal, the WebAPI's exports and recorderctl write (docs/portal.md, "Audit").
AUDIT_SIGNIN = "signin"
AUDIT_SIGNIN_FAILED = "signin-failed"
AUDIT_SIGNOUT = "signout"
AUDIT_SEARCH = "search"
AUDIT_PLAY = "play"
AUDIT_DOWNLOAD = "download"
AUDIT_DELETE = "delete"
AUDIT_PASSWORD = "password"  # a user changed their own password
AUDIT_BOOKMARK = "bookmark"
AUDIT_USER = "user"  # a user added, deleted or given roles (the portal's administration)
AUDIT_ROLE = "role"  # a role added or its permissions changed
AUDIT_GROUP = "group"  # a group added, its members or the roles it narrows changed
AUDIT_EXPORT = "export"  # the WebAPI's media functions, recorderctl export --offline
AUDIT_EMAIL = "email"  # EMAIL and COMBINEDEMAIL, over either API, and the portal's e-mail
AUDIT_API_CHANGE = "api-change"  # the APIs' administration (IMPORTUSER, MODIFY*, ...)
AUDIT_TOKEN = "token"  # an API token made or revoked (recorderctl token)
AUDIT_LISTEN = "listen"  # a call in progress listened to live in the portal
AUDIT_BLACKOUT = "blackout"  # a blackout started or stopped in the portal
AUDIT_STATION = "station"  # a workstation's device mapped or unmapped in the portal


@dataclass(frozen=True)
class AuditEntry:
    """One audited action. ``user_id`` None: nobody signed in (a failed sign-in)."""

    time: float  # unix seconds
    user_id: int | None
    username: str
    action: str
    target: str = ""  # what it was done to: a RECORDID, a user name
    detail: str = ""  # what else there is to say (a search's filters, why it was refused)
    address: str = ""  # the client's address
    entry_id: int = 0  # given by the store


@dataclass(frozen=True)
class AuditQuery:
    """Entries matching every field given, newest first, at most ``limit``."""

    username: str | None = None  # compared without case
    action: str | None = None
    since: float | None = None
    until: float | None = None
    limit: int = 1000


class AuditStore(ABC):
    @abstractmethod
    def append_audit(self, entry: AuditEntry) -> int:
        """Write the entry; returns its id once it is committed."""

    def enqueue_audit(self, entry: AuditEntry) -> None:
        """Write the entry soon, without waiting for it (``auditqueue``: a batch writer that
        keeps it in the crash journal meanwhile); here, at once."""
        self.append_audit(entry)

    @abstractmethod
    def list_audit(self, query: AuditQuery) -> list[AuditEntry]: ...

    @abstractmethod
    def add_head_sink(self, sink: Callable[[int, str], None]) -> None:
        """Also tell ``sink(entry_id, entry_hash)`` the head of the chain after each entry
        (recorderd: its crash journal)."""
