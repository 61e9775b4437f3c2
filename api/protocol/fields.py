"""Limits on request parameters, from the manual's "Data Type Values" tables.

A value that breaks its field's limit is refused with code 16 and a message naming the field;
nothing is silently truncated. The tables differ by function (DEVICEID is char(64) for call
handling but char(15) for the import functions, STATUS is A/I for IMPORTUSER but free text for
AGENTWINDOW), so ``FUNCTION_FIELDS`` overrides ``FIELDS`` for the request types it names.
"""

from __future__ import annotations

from dataclasses import dataclass

INT32_MAX = 2147483647
INT64_MAX = 2**63 - 1


@dataclass(frozen=True)
class FieldSpec:
    max_len: int | None = None
    choices: tuple[str, ...] | None = None  # canonical (upper-case) values
    int_range: tuple[int, int] | None = None


YES_NO = FieldSpec(choices=("Y", "N"))
ID32 = FieldSpec(int_range=(0, INT32_MAX))

# The call handling and status tables; also what any function not listed below uses.
FIELDS: dict[str, FieldSpec] = {
    "DEVICEID": FieldSpec(max_len=64),
    "CALLINSTANCE": FieldSpec(max_len=64),
    "DEVICEALIAS": FieldSpec(max_len=15),
    "GROUP": FieldSpec(max_len=20),
    "GATE": FieldSpec(max_len=20),
    "ANI": FieldSpec(max_len=20),
    "DNIS": FieldSpec(max_len=20),
    **{f"USER{i}": FieldSpec(max_len=20) for i in range(1, 4)},
    **{f"USER{i}": FieldSpec(max_len=255) for i in range(4, 9)},
    **{f"USER{i}": FieldSpec(max_len=50) for i in range(9, 16)},
    "CALLID": FieldSpec(max_len=16),
    "PRIORITY": FieldSpec(int_range=(0, 100)),
    "CALLDIRECTION": FieldSpec(choices=("I", "O", "?")),
    "MAXRECORDSILENCE": FieldSpec(int_range=(0, INT32_MAX)),
    "MAXRECORDTIME": FieldSpec(int_range=(0, INT32_MAX)),
    "AGENTINITIATED": YES_NO,
    "CTIINITIATED": YES_NO,
    "UPDATE_IF_NOT_RECORDING": YES_NO,
    "DETAIL": YES_NO,
    "STATIONNAME": FieldSpec(max_len=50),
    "ARCHIVEACTION": FieldSpec(int_range=(-1, INT64_MAX)),
    "KEEP_DAYS": FieldSpec(int_range=(-1, INT32_MAX)),
    "SYS_USER": FieldSpec(max_len=30),
    "CRM_USER": FieldSpec(max_len=30),
    "RECORDID": FieldSpec(int_range=(1, INT64_MAX)),
    "CALLCOUNT": FieldSpec(int_range=(1, INT32_MAX)),
    "CALLDATESTART": FieldSpec(int_range=(0, INT64_MAX)),
    "CALLDATEEND": FieldSpec(int_range=(0, INT64_MAX)),
}

# "Status Data Types" (DEVICELIST, DEVICESTATUS, DEVICERECORDINGSTATUS): the call fields, but
# CALLID is char(30) there.
_STATUS: dict[str, FieldSpec] = {
    "CALLID": FieldSpec(max_len=30),
    "STATION": FieldSpec(max_len=128),
    "CALLDISCRIMINATOR": FieldSpec(max_len=64),
}

# "Function: BLACKOUTSTART, BLACKOUTSTOP" (and the AGENT... forms).
_BLACKOUT: dict[str, FieldSpec] = {
    "DEVICEID": FieldSpec(max_len=64),
    "DEVICEALIAS": FieldSpec(max_len=100),
    "CRM_USER": FieldSpec(max_len=50),
    "SYS_USER": FieldSpec(max_len=255),
    "TIMEOFFSET": FieldSpec(int_range=(-INT32_MAX - 1, INT32_MAX)),
}

# "Function: EMAIL, COMBINEDEMAIL".
_EMAIL: dict[str, FieldSpec] = {
    **{name: FieldSpec(max_len=255) for name in (
        "UNIQUEFIELD", "UNIQUEID", "TOADDRESS", "TONAME", "FROMADDRESS", "FROMNAME", "IDENT")},
    "MEDIA_FORMAT": FieldSpec(max_len=3),
}

# "Import Data Types" (IMPORTUSER, IMPORTAGENTPHONE, IMPORTWORKSTATION). USERNAME, CRM_USER and
# PASSWORD are not in the table: USERNAME gets the 255 of the other user-name fields, CRM_USER
# the 30 it has everywhere else, PASSWORD a bound so hashing it stays cheap (docs/api-notes.md).
_IMPORT: dict[str, FieldSpec] = {
    "AGENTID": ID32,
    "USERID": ID32,
    "FIRSTNAME": FieldSpec(max_len=20),
    "LASTNAME": FieldSpec(max_len=30),
    "SYS_USER": FieldSpec(max_len=255),
    "DOMAIN": FieldSpec(max_len=30),
    "EMAIL": FieldSpec(max_len=255),
    "EMPLOYEEID": FieldSpec(max_len=20),
    "ALLOWSELFRECORD": YES_NO,
    "ALLOWSELFDOWNLOAD": YES_NO,
    "ALLOWDUPLICATE": YES_NO,
    "STATUS": FieldSpec(choices=("A", "I")),
    "PHONEID": FieldSpec(max_len=10),
    "DEVICEID": FieldSpec(max_len=15),
    "STATIONNAME": FieldSpec(max_len=50),
    "LOCATIONID": ID32,
    "USERNAME": FieldSpec(max_len=255),
    "CRM_USER": FieldSpec(max_len=30),
    "PASSWORD": FieldSpec(max_len=1024),
}

# "User, Group and Role Data Types" (ADDGROUP, MODIFYGROUPPERMISSION, ...).
_GROUPS: dict[str, FieldSpec] = {
    "GROUPNAME": FieldSpec(max_len=255),
    "GROUPID": ID32,
    "DEVICEID": FieldSpec(max_len=64),
    "PHONEID": FieldSpec(max_len=10),
    "FIRSTNAME": FieldSpec(max_len=20),
    "LASTNAME": FieldSpec(max_len=30),
    "AGENTID": ID32,
    "USERID": ID32,
}

# The role functions have no table of their own: the group table's names and ids, the import
# table's user fields, and bounds of the recorder's choosing for the role's own text.
_ROLES: dict[str, FieldSpec] = {
    **_GROUPS,
    "ROLEID": ID32,
    "ROLENAME": FieldSpec(max_len=255),
    "DESCRIPTION": FieldSpec(max_len=1024),
    "PERMISSIONNAME": FieldSpec(max_len=64),
    "USERNAME": FieldSpec(max_len=255),
    "SYS_USER": FieldSpec(max_len=255),
    "SYSTEMUSERNAME": FieldSpec(max_len=255),
}

# "Recording Control Data Types" (CHATSTART, CHATSTOP, CHATUPDATE); the call fields as FIELDS.
_CHAT: dict[str, FieldSpec] = {
    "SESSIONID": FieldSpec(max_len=255),
    "AGENTID": ID32,
    "USERID": ID32,
    "KEYVALUE": FieldSpec(max_len=255),
}

# "Function: AGENTWINDOW": every field varchar(255); STATUS is free text here.
_AGENTWINDOW: dict[str, FieldSpec] = {
    name: FieldSpec(max_len=255) for name in (
        "COMPUTERNAME", "USERNAME", "DOMAIN", "IPADDRESS", "STATUS", "APPLICATIONTITLE",
        "LASTUPDATE")
}

FUNCTION_FIELDS: dict[str, dict[str, FieldSpec]] = {
    "DEVICELIST": _STATUS,
    "DEVICESTATUS": _STATUS,
    "DEVICERECORDINGSTATUS": _STATUS,
    "BLACKOUTSTART": _BLACKOUT,
    "BLACKOUTSTOP": _BLACKOUT,
    "AGENTBLACKOUTSTART": _BLACKOUT,
    "AGENTBLACKOUTSTOP": _BLACKOUT,
    "EMAIL": _EMAIL,
    "COMBINEDEMAIL": _EMAIL,
    "IMPORTUSER": _IMPORT,
    "IMPORTAGENTPHONE": _IMPORT,
    "IMPORTWORKSTATION": _IMPORT,
    "ADDGROUP": _GROUPS,
    "MODIFYGROUPPERMISSION": _GROUPS,
    "MODIFYROLE": _ROLES,
    "MODIFYROLEGROUPPERMISSION": _ROLES,
    "MODIFYUSERROLE": _ROLES,
    "MODIFYROLEPERMISSION": _ROLES,
    "CHATSTART": _CHAT,
    "CHATSTOP": _CHAT,
    "CHATUPDATE": _CHAT,
    "AGENTWINDOW": _AGENTWINDOW,
}


def field_spec(request_type: str, name: str) -> FieldSpec | None:
    """The limits on parameter ``name`` of ``request_type``, or None if it has none."""
    specific = FUNCTION_FIELDS.get(request_type)
    if specific is not None and name in specific:
        return specific[name]
    return FIELDS.get(name)


# Other spellings the manual uses for the same parameter: IMPORTUSER's example and LIST write
# USER_ID, EMPLOYEE_ID, FIRST_NAME, LAST_NAME, SITE_ID and SYS_DOMAIN where its parameter list
# writes USERID, EMPLOYEEID, FIRSTNAME, LASTNAME, SITEID and DOMAIN; its group functions write
# GROUPLD for GROUPID.
ALIASES: dict[str, str] = {
    "KEEPDAYS": "KEEP_DAYS",
    "USER_ID": "USERID",
    "EMPLOYEE_ID": "EMPLOYEEID",
    "FIRST_NAME": "FIRSTNAME",
    "LAST_NAME": "LASTNAME",
    "SITE_ID": "SITEID",
    "SYS_DOMAIN": "DOMAIN",
    "GROUPLD": "GROUPID",
}
