"""The directory part of the store's interface: users and their phones, workstations, groups,
roles and permissions, screen-capture (chat) sessions and the agents' window reports.

Backend-neutral like ``base``: callers speak in the manual's terms, never SQL. Names (user,
group, role, station, computer) are compared without regard to case, as the Windows and
directory systems they come from do; identifiers (phone and device IDs) exactly.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from recorder.errors import RecorderError

USER_ACTIVE = "A"
USER_INACTIVE = "I"


class DirectoryConflict(RecorderError):
    """A directory change refused because it would clash with what is stored; nothing changed."""


class UserExists(DirectoryConflict):
    """ADD or MODIFY would give two live users the same name, or the same USERNAME."""

    def __init__(self, user_id: int, message: str) -> None:
        super().__init__(message)
        self.user_id = user_id


class PhoneInUse(DirectoryConflict):
    """The phone is already assigned to another live user."""

    def __init__(self, phone_id: str, user_id: int) -> None:
        super().__init__(f"phone {phone_id} is assigned to agent {user_id}")
        self.phone_id = phone_id
        self.user_id = user_id


@dataclass(frozen=True)
class UserFields:
    """What IMPORTUSER sets. None means "not sent": a default on ADD, unchanged on MODIFY."""

    username: str | None = None
    employee_id: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    status: str | None = None  # USER_ACTIVE (flagged as an agent) or USER_INACTIVE
    sys_user: str | None = None
    domain: str | None = None
    email: str | None = None
    crm_user: str | None = None
    site_id: int | None = None
    password_hash: str | None = None  # never the password itself
    allow_self_record: str | None = None  # "Y" / "N"
    allow_self_download: str | None = None
    add_time: float | None = None  # unix seconds; ADD defaults it to now
    mod_time: float | None = None  # unix seconds; ADD and MODIFY default it to now
    phones: tuple[str, ...] | None = None  # the user's phones, replacing any they had


@dataclass(frozen=True)
class UserRow:
    """One user as stored. Deleted users keep their row, so old recordings still name them."""

    user_id: int
    username: str
    employee_id: str
    first_name: str
    last_name: str
    status: str
    deleted: bool
    add_time: float
    mod_time: float | None
    sys_user: str
    domain: str
    email: str
    crm_user: str
    site_id: int | None
    has_password: bool
    allow_self_record: str
    allow_self_download: str
    phones: tuple[str, ...]  # in the order they were assigned

    @property
    def agent(self) -> bool:
        """The manual's AGENT flag: IMPORTUSER's STATUS A sets it, I clears it."""
        return self.status == USER_ACTIVE and not self.deleted


@dataclass(frozen=True)
class UserQuery:
    """Live users matching every field given (AND); None fields are not compared."""

    user_id: int | None = None
    username: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    sys_user: str | None = None
    crm_user: str | None = None
    employee_id: str | None = None
    phone_id: str | None = None

    def __bool__(self) -> bool:
        return any(v is not None for v in (
            self.user_id, self.username, self.first_name, self.last_name, self.sys_user,
            self.crm_user, self.employee_id, self.phone_id))


@dataclass(frozen=True)
class StationRow:
    """A workstation-to-device mapping (IMPORTWORKSTATION, STATIONS)."""

    station_name: str
    device_id: str
    location_id: int


@dataclass(frozen=True)
class GroupRow:
    """An inContact group and its members."""

    group_id: int
    group_name: str
    user_ids: tuple[int, ...] = ()
    device_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class RoleRow:
    """A role with everything assigned to it."""

    role_id: int
    role_name: str
    description: str
    permissions: frozenset[str] = frozenset()
    group_ids: tuple[int, ...] = ()
    user_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class AgentWindow:
    """What a desktop agent last reported about the window in front of its user."""

    computer_name: str
    user_name: str
    domain: str
    ip_address: str
    status: str
    application_title: str
    last_update: float  # unix seconds the report arrived


class DirectoryStore(ABC):
    """Users, phones, stations, groups, roles and agent windows."""

    def directory_version(self, *, wait: bool = True) -> tuple[int, int] | None:
        """A value that changes whenever users, their roles, roles' permissions or groups
        change, by anyone (what a cache of who may do what is checked against); None: not
        kept (or, without ``wait``, not to be had at once)."""
        return None

    # --- users and phones ----------------------------------------------------------------------

    @abstractmethod
    def add_user(self, fields: UserFields, *, now: float, allow_duplicate_name: bool = False
                 ) -> int:
        """Add a user; returns its USERID. Raises UserExists or PhoneInUse, changing nothing."""

    @abstractmethod
    def modify_user(self, user_id: int, fields: UserFields, *, now: float) -> bool:
        """Change the fields given; False if there is no live user ``user_id``.

        Raises UserExists or PhoneInUse, changing nothing.
        """

    @abstractmethod
    def delete_user(self, user_id: int, *, now: float) -> bool:
        """Flag the user deleted and free its phones, keeping the row; False if not live."""

    @abstractmethod
    def get_user(self, user_id: int) -> UserRow | None:
        """The user, deleted or not."""

    @abstractmethod
    def find_users(self, query: UserQuery) -> list[UserRow]:
        """Live users matching ``query``, by USERID."""

    @abstractmethod
    def list_users(self) -> list[UserRow]:
        """Every live user, by USERID."""

    @abstractmethod
    def password_hash(self, user_id: int) -> str | None:
        """The live user's stored password hash (``recorder.store.passwords``); None if the
        user is deleted, unknown, or has no password. Only sign-in reads it."""

    @abstractmethod
    def user_permissions(self, user_id: int) -> frozenset[str]:
        """Every permission the user's roles grant (MODIFYUSERROLE, MODIFYROLEPERMISSION)."""

    @abstractmethod
    def assign_phone(self, user_id: int, phone_id: str, *, now: float) -> bool:
        """Give the phone to the user; False if it already had it. Raises PhoneInUse."""

    @abstractmethod
    def unassign_phone(self, user_id: int, phone_id: str) -> bool:
        """Take the phone from the user; False if it did not have it. Raises PhoneInUse if
        another user has it."""

    # --- workstations --------------------------------------------------------------------------

    @abstractmethod
    def replace_station(self, station: StationRow) -> StationRow:
        """Delete the mappings holding its DEVICEID or STATIONNAME, then store it; returns the
        mapping as stored."""

    @abstractmethod
    def list_stations(self) -> list[StationRow]:
        """Every workstation mapping, by station name."""

    @abstractmethod
    def delete_station(self, station_name: str) -> StationRow | None:
        """Remove the mapping of ``station_name`` (compared without case); the mapping it
        was, or None if there was none."""

    # --- groups --------------------------------------------------------------------------------

    @abstractmethod
    def add_group(self, name: str) -> tuple[GroupRow, bool]:
        """The group named ``name``, created if missing; True if it was created."""

    @abstractmethod
    def find_group(self, *, group_id: int | None = None, name: str | None = None
                   ) -> GroupRow | None:
        """The group by name if given, else by id."""

    @abstractmethod
    def list_groups(self) -> list[GroupRow]:
        """Every group, by GROUPID, with its members."""

    @abstractmethod
    def set_group_member(self, group_id: int, user_id: int, device_id: str | None,
                         member: bool) -> bool:
        """Add (or remove) the user, and the device if given, to (from) the group; True if
        anything changed."""

    # --- roles and permissions -----------------------------------------------------------------

    @abstractmethod
    def add_role(self, name: str, description: str) -> RoleRow | None:
        """Create a role; None (nothing changed) if one with that name exists."""

    @abstractmethod
    def find_role(self, *, role_id: int | None = None, name: str | None = None
                  ) -> RoleRow | None:
        """The role by id if given, else by name."""

    @abstractmethod
    def modify_role(self, role_id: int, description: str) -> bool: ...

    @abstractmethod
    def delete_role(self, role_id: int) -> bool:
        """Remove the role and every assignment of it."""

    @abstractmethod
    def list_roles(self) -> list[RoleRow]:
        """Every role, by ROLEID, with its permissions, groups and users."""

    @abstractmethod
    def user_roles(self, user_id: int) -> list[RoleRow]:
        """Every role assigned to the user, with its permissions and groups."""

    @abstractmethod
    def set_role_group(self, role_id: int, group_id: int, member: bool) -> bool:
        """Assign (or unassign) the group to the role; True if anything changed."""

    @abstractmethod
    def set_user_role(self, user_id: int, role_id: int, member: bool) -> bool:
        """Assign (or unassign) the role to the user; True if anything changed."""

    @abstractmethod
    def set_role_permission(self, role_id: int, permission: str, granted: bool) -> bool:
        """Grant (or revoke) a permission by its API name; True if anything changed."""

    # --- agent windows -------------------------------------------------------------------------

    @abstractmethod
    def report_agent_window(self, window: AgentWindow) -> None:
        """Keep the newest report per computer and user."""

    @abstractmethod
    def latest_agent_window(self, *, computer_name: str | None = None,
                            user_name: str | None = None) -> AgentWindow | None:
        """The newest report from the computer or for the user (either may match)."""
