"""Who a session's user is and what they may do, read from the directory and kept while the
directory does not change.

Every request needs the user's roles, permissions and groups (a revoked permission takes effect
at the next request), which is four or five queries. They are kept per user with the
directory's version (``DirectoryStore.directory_version``: every write to users, roles,
permissions or groups through the store, and every commit by another connection, such as
``recorderctl user`` or a ``sqlite3`` shell, changes it): a request whose version differs from
the kept one reads them afresh, so nothing is ever served from permissions that have changed.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from recorder.api.portal.sessions import Session, password_mark
from recorder.rules.access import Principal, Within, view_groups
from recorder.store.directory import DirectoryStore

KEEP = 1024  # users kept (the least recently seen dropped beyond)

Version = tuple[int, int]


@dataclass(frozen=True)
class Access:
    """A user as the directory held them at ``version``; ``mark`` None: deleted, gone or
    without a password (no session of theirs is valid)."""

    version: Version
    mark: str | None
    granted: frozenset[str] = frozenset()
    within: Within | None = None

    def principal(self, session: Session) -> Principal | None:
        """The session's principal, unless its user is gone or changed their password."""
        if self.mark is None or self.mark != session.password_mark:
            return None
        return Principal(session.user_id, session.username, self.granted, self.within)


def read_access(directory: DirectoryStore, user_id: int, version: Version | None) -> Access:
    """What the directory holds of ``user_id`` now (``version`` read before it)."""
    user = directory.get_user(user_id)
    stored = directory.password_hash(user_id)
    if user is None or user.deleted or stored is None:
        return Access(version or (-1, -1), None)
    roles = directory.user_roles(user_id)
    granted = frozenset(p for role in roles for p in role.permissions)
    groups = view_groups((role.permissions, role.group_ids) for role in roles)
    within = None
    if groups is not None:
        found = [g for gid in sorted(groups)
                 if (g := directory.find_group(group_id=gid)) is not None]
        within = Within(frozenset(d for g in found for d in g.device_ids),
                        frozenset(u for g in found for u in g.user_ids))
    return Access(version or (-1, -1), password_mark(stored), granted, within)


class AccessCache:
    """Each user's ``Access`` with the version it was read at; thread-safe."""

    def __init__(self, keep: int = KEEP) -> None:
        self._keep = keep
        self._lock = threading.Lock()
        self._users: OrderedDict[int, Access] = OrderedDict()
        self.reads = 0  # times the directory was read (the tests count them)

    def get(self, user_id: int, version: Version | None) -> Access | None:
        """The kept access if the directory is still at ``version``; None otherwise."""
        if version is None:
            return None
        with self._lock:
            access = self._users.get(user_id)
            if access is None or access.version != version:
                return None
            self._users.move_to_end(user_id)
            return access

    def load(self, directory: DirectoryStore, user_id: int) -> Access:
        """Read ``user_id``'s access (on a worker) and keep it, if the directory keeps a
        version; the version is read first, so a change meanwhile makes it stale, never
        the other way round."""
        version = directory.directory_version()
        access = read_access(directory, user_id, version)
        with self._lock:
            self.reads += 1
            if version is not None:
                self._users[user_id] = access
                self._users.move_to_end(user_id)
                while len(self._users) > self._keep:
                    self._users.popitem(last=False)
        return access
