"""Who may do what: the one permission check of the portal (and of the API, when it checks).

Permissions are MODIFYROLEPERMISSION's names (``recorder.api.protocol.permissions``); a user has
the union of their roles'. A requirement is a tuple of clauses, each met by any one of its
permissions, all of them needed: downloading needs (VIEWOWNRECORDS or ALLOWVIEWALLRECORDS) and
ALLOWEXPORTDOWNLOAD. Which recordings a user sees is a scope: all (ALLOWVIEWALLRECORDS), those
whose agent at call time is the user (VIEWOWNRECORDS), or none. Groups narrow ALLOWVIEWALLRECORDS
(MODIFYGROUPPERMISSION puts agents and devices in groups, MODIFYROLEGROUPPERMISSION gives
groups to roles): a role granting it with groups sees the recordings of those groups' devices
and agents; a role granting it with no group sees all. Pure functions of plain values.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from enum import Enum

from recorder.store.records import DAY_SECONDS, STATUS_RECORDING, RecordingRow

VIEW_OWN = "VIEWOWNRECORDS"
VIEW_ALL = "ALLOWVIEWALLRECORDS"

# Each clause is met by any one of its permissions; a requirement needs all its clauses.
Clause = frozenset[str]
Requirement = tuple[Clause, ...]

SIGNED_IN: Requirement = ()  # any signed-in user, whatever their permissions
VIEW: Clause = frozenset({VIEW_OWN, VIEW_ALL})


def needs(*clauses: str | Collection[str]) -> Requirement:
    """A requirement from clauses, each a permission name or a collection of alternatives."""
    return tuple(frozenset({c}) if isinstance(c, str) else frozenset(c) for c in clauses)


def permits(granted: Collection[str], requirement: Requirement) -> bool:
    """Whether permissions ``granted`` meet every clause of ``requirement``."""
    return all(not clause.isdisjoint(granted) for clause in requirement)


def missing(granted: Collection[str], requirement: Requirement) -> list[Clause]:
    """The clauses of ``requirement`` that ``granted`` does not meet (for the 403 page)."""
    return [clause for clause in requirement if clause.isdisjoint(granted)]


class Scope(Enum):
    """Which recordings a user may see."""

    NONE = "none"
    OWN = "own"  # those whose agent when they were recorded is the user
    ALL = "all"


def record_scope(granted: Collection[str]) -> Scope:
    if VIEW_ALL in granted:
        return Scope.ALL
    if VIEW_OWN in granted:
        return Scope.OWN
    return Scope.NONE


@dataclass(frozen=True)
class Within:
    """The groups ALLOWVIEWALLRECORDS is narrowed to: their devices and their agents."""

    devices: frozenset[str] = frozenset()
    agents: frozenset[int] = frozenset()

    def holds(self, row: RecordingRow) -> bool:
        return row.device_id in self.devices or (
            row.agent_id is not None and row.agent_id in self.agents)


def view_groups(roles: Iterable[tuple[Collection[str], Collection[int]]]
                ) -> frozenset[int] | None:
    """The groups the user's ALLOWVIEWALLRECORDS is narrowed to, from each role's
    (permissions, groups); None when it is not narrowed (a role grants it with no group)."""
    groups: set[int] = set()
    for permissions, role_groups in roles:
        if VIEW_ALL in permissions:
            if not role_groups:
                return None
            groups.update(role_groups)
    return frozenset(groups)


def may_see(granted: Collection[str], user_id: int, row: RecordingRow,
            within: Within | None = None) -> bool:
    """Whether the user may see the recording: all of them (or all of their groups'), or those
    whose agent is them.

    The row's agent is the one fixed when it was recorded (the phone's owner then), so a phone
    handed to someone else later does not hand them its history."""
    if VIEW_ALL in granted and (within is None or within.holds(row)):
        return True
    return VIEW_OWN in granted and row.agent_id == user_id


def agent_filter(granted: Collection[str], user_id: int, wanted: int | None
                 ) -> tuple[bool, int | None]:
    """A search's agent filter within the user's scope: (anything to search, agent_id).

    Scope ALL keeps the agent asked for; OWN narrows to the user (and finds nothing if another
    agent was asked for); NONE finds nothing."""
    scope = record_scope(granted)
    if scope is Scope.ALL:
        return True, wanted
    if scope is Scope.OWN and wanted in (None, user_id):
        return True, user_id
    return False, None


def deletion_refused(row: RecordingRow, now: float) -> str | None:
    """Why the recording may not be deleted now, or None if it may.

    Not while it records, not when locked, not while its own KEEPDAYS holds it (a CTI that set
    KEEPDAYS asked for the call to be kept that long)."""
    if row.status == STATUS_RECORDING:
        return "it is still recording"
    if row.locked:
        return "it is locked"
    if row.keep_days is not None and row.keep_days > 0:
        until = row.start_time + row.keep_days * DAY_SECONDS
        if now < until:
            return f"its KEEPDAYS ({row.keep_days}) holds it"
    return None


def bookmark_refused(user_id: int, granted: Collection[str], author_id: int) -> str | None:
    """Why a user may not edit or remove a bookmark's comment, or None: only its author,
    while they hold ALLOWCOMMENT, changes what they wrote (someone else's words are theirs to
    answer with a bookmark of their own)."""
    if "ALLOWCOMMENT" not in granted:
        return "bookmarks need ALLOWCOMMENT"
    if user_id != author_id:
        return "only its author changes a bookmark"
    return None


def ungrantable(granted: Collection[str], wanted: Collection[str]) -> frozenset[str]:
    """Of the permissions ``wanted`` (in a role being changed, or the roles of a user being
    assigned), those the administrator does not hold: nobody hands out more than they have."""
    return frozenset(wanted) - frozenset(granted)


@dataclass(frozen=True)
class Principal:
    """A signed-in user as the checks see them: who, and what they may do."""

    user_id: int
    username: str
    granted: frozenset[str]
    within: Within | None = None  # the groups ALLOWVIEWALLRECORDS is narrowed to, if any

    def permits(self, requirement: Requirement) -> bool:
        return permits(self.granted, requirement)

    def may_see(self, row: RecordingRow) -> bool:
        return may_see(self.granted, self.user_id, row, self.within)

    def visible(self) -> tuple[tuple[str, ...] | None, tuple[int, ...]]:
        """A search's limit to the user's groups, as the store's RecordingQuery takes it
        (within_devices, within_agents): None when the user sees all; their own calls count
        when VIEWOWNRECORDS is theirs too."""
        if self.within is None or record_scope(self.granted) is not Scope.ALL:
            return None, ()
        agents = set(self.within.agents)
        if VIEW_OWN in self.granted:
            agents.add(self.user_id)
        return tuple(sorted(self.within.devices)), tuple(sorted(agents))


# --- the APIs (api.require_auth; docs/security.md) ---------------------------------------------

API_AUTH = "ALLOWAPIAUTH"

# What each request type needs beyond ALLOWAPIAUTH, in one table a test can walk: the media
# functions their permission of MODIFYROLEPERMISSION's table, the administration that of the
# portal's page for the same thing. A type not listed needs ALLOWAPIAUTH alone.
REQUEST_PERMISSIONS: dict[str, Requirement] = {
    **dict.fromkeys(("EXPORT", "COMBINEDEXPORT", "COMBINEEXPORT", "MULTIEXPORT"),
                    needs("ALLOWEXPORTDOWNLOAD")),
    **dict.fromkeys(("EMAIL", "COMBINEDEMAIL"), needs("ALLOWEXPORTEMAIL")),
    **dict.fromkeys(("IMPORTUSER", "IMPORTAGENTPHONE", "MODIFYROLE", "MODIFYROLEPERMISSION",
                     "MODIFYUSERROLE"), needs("ALLOWAGENTADMIN")),
    **dict.fromkeys(("ADDGROUP", "MODIFYGROUPPERMISSION", "MODIFYROLEGROUPPERMISSION"),
                    needs("ALLOWGROUPADMIN")),
    "IMPORTWORKSTATION": needs("ALLOWSYSTEMCONFIG"),
}
# CALLUPDATE is call control, open to the CTI links, except when it sets ARCHIVEACTION: that
# changes a stored recording's fate (its retention), which is the archive's administration.
ARCHIVE_UPDATE: Requirement = needs("ALLOWARCHIVEADMIN")


def api_requirement(request_type: str, archive_action: bool = False) -> Requirement:
    """What a request needs of an authenticated user: ALLOWAPIAUTH and what
    REQUEST_PERMISSIONS (or a CALLUPDATE with ARCHIVEACTION of a stored recording) adds."""
    extra = REQUEST_PERMISSIONS.get(request_type, ())
    if request_type == "CALLUPDATE" and archive_action:
        extra = ARCHIVE_UPDATE
    return (*needs(API_AUTH), *extra)


def socket_needs_identity(request_type: str, archive_action: bool = False) -> bool:
    """Whether a socket API request is administration or sends recordings away (EMAIL), which
    (with require_auth) needs a client certificate mapped to a user; call control and the rest
    stay open to the allowed addresses, as the manual's XML has no place for credentials. (The
    export functions answer 15 on the socket whoever asks.)"""
    if request_type == "CALLUPDATE":
        return archive_action
    return request_type in REQUEST_PERMISSIONS and request_type not in (
        "EXPORT", "COMBINEDEXPORT", "COMBINEEXPORT", "MULTIEXPORT")


def refusal(granted: Collection[str], requirement: Requirement) -> str | None:
    """Why a user holding ``granted`` may not make a request needing ``requirement`` (the
    RESULTMSG), or None if they may."""
    lacking = missing(granted, requirement)
    if not lacking:
        return None
    names = " and ".join(" or ".join(sorted(clause)) for clause in lacking)
    return f"the user's roles lack {names}"
