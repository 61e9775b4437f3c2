"""Every field of every data-type table in the manual, sent at its limit and one beyond.

The tables below are typed in from the manual (wfo-api-manual-16.2.txt, "Data Type Values"),
not taken from ``recorder/api/protocol/fields.py``: they are a deliberate second copy, the
oracle the recorder's own table is checked against. Do not replace them with imports of the
product's table, nor merge the two: a test that reads its expected values from the code under
test can never fail.

Where the manual gives no limit (TBD, NA, a field its tables leave out) or contradicts itself,
the value is the recorder's written choice in docs/api-notes.md ("Limits per function"), marked
CHOICE; where a type is wider than the recorder takes (a signed number that cannot be negative)
the lower end is the documented choice too.

What is checked is what an integrator sees: a value at the limit is taken whole, a value one
beyond is refused with 16 API_INVALID_MESSAGE_FORMAT and a message that starts with the
field's name (docs/api-notes.md, "Results").
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from recorder.api.protocol.params import Params
from recorder.api.request import RequestError
from recorder.resultcodes import ResultCode

INT32_MIN, INT32_MAX = -2147483648, 2147483647  # "integer (signed 32-bit)"
INT64_MAX = 9223372036854775807  # "bigint(8)"


@dataclass(frozen=True)
class Text:
    """char(n) / varchar(n): n characters taken, n + 1 refused."""
    length: int


@dataclass(frozen=True)
class Choice:
    """char(1) ('Y','N') and the like: each value taken (any case), another refused."""
    values: tuple[str, ...]


@dataclass(frozen=True)
class Number:
    """An integer field: both ends taken, one beyond either refused."""
    low: int
    high: int


YN = Choice(("Y", "N"))
ID = Number(0, INT32_MAX)  # integer (signed 32-bit); CHOICE: an id is never negative


def users(first: int, last: int, length: int) -> dict[str, Text]:
    return {f"USER{i}": Text(length) for i in range(first, last + 1)}


# "Call Handling Data Types", Functions: CALLSTART, CALLSTOP, CALLUPDATE, RECORDSTART,
# RECORDSTOP.
CALL_HANDLING: dict[str, Text | Choice | Number] = {
    "DEVICEID": Text(64),
    "CALLINSTANCE": Text(64),  # TBD (spelt CALLINSTANTNCE there); CHOICE: DEVICEID's 64
    "DEVICEALIAS": Text(15),
    "GROUP": Text(20),
    "GATE": Text(20),
    "ANI": Text(20),
    "DNIS": Text(20),
    **users(1, 3, 20),
    **users(4, 8, 255),
    **users(9, 15, 50),
    "CALLID": Text(16),
    # integer (signed 32-bit), but the glossary: "A number from 0-100".
    "PRIORITY": Number(0, 100),
    "CALLDIRECTION": Choice(("I", "O", "?")),
    # integer (signed 32-bit); CHOICE: "a time in seconds" is never negative.
    "MAXRECORDSILENCE": Number(0, INT32_MAX),
    "MAXRECORDTIME": Number(0, INT32_MAX),
    "AGENTINITIATED": YN,
    "CTIINITIATED": YN,
    "STATIONNAME": Text(50),
    "UPDATE_IF_NOT_RECORDING": YN,
    # bigint(8); CHOICE: from -1, the manual's examples' "not set".
    "ARCHIVEACTION": Number(-1, INT64_MAX),
    "SYS_USER": Text(30),
    "CRM_USER": Text(30),
    "KEEP_DAYS": Number(-1, INT32_MAX),  # TBD; CHOICE: -1 (the examples') to a 32-bit count
    # CALLUPDATE - Post-Recording's; in no table. CHOICE: a recording's IDENT, from 1, 64-bit.
    "RECORDID": Number(1, INT64_MAX),
}

# "Status Data Types", Functions: DEVICELIST, DEVICESTATUS, DEVICERECORDINGSTATUS. ISTRUNK,
# ISRECORDING and FILENAME are in the table too, but are what the answer holds, not parameters.
STATUS: dict[str, Text | Choice | Number] = {
    "DEVICEID": Text(64),
    "DEVICEALIAS": Text(15),
    "SYS_USER": Text(30),
    "CALLDISCRIMINATOR": Text(64),
    "CRM_USER": Text(30),
    "GROUP": Text(20),
    "GATE": Text(20),
    "ANI": Text(20),
    "DNIS": Text(20),
    **users(1, 3, 20),
    **users(4, 8, 255),
    **users(9, 15, 50),
    "CALLDIRECTION": Choice(("I", "O", "?")),
    "STATION": Text(128),
    "CALLID": Text(30),
}

# "Function: CALLLIST".
CALLLIST: dict[str, Text | Choice | Number] = {
    "DEVICEID": Text(64),
    "CRM_USER": Text(30),
    "SYS_USER": Text(30),
    "DEVICEALIAS": Text(15),
    "GROUP": Text(20),
    "GATE": Text(20),
    "ANI": Text(20),
    "DNIS": Text(20),
    "CALLCOUNT": Number(1, INT32_MAX),  # NA; CHOICE: "must be 1 or more"
    # bigint(8); CHOICE: UNIX times, never before 1970.
    "CALLDATESTART": Number(0, INT64_MAX),
    "CALLDATEEND": Number(0, INT64_MAX),
    **users(1, 3, 20),
    **users(4, 8, 255),
    **users(9, 15, 50),
}

# "Recording Control Data Types", Function: CHATSTART, CHATSTOP, CHATUPDATE.
CHAT: dict[str, Text | Choice | Number] = {
    "SESSIONID": Text(255),
    "AGENTID": ID,  # "AGENTID (USERID)"
    "USERID": ID,
    "KEYVALUE": Text(255),
    "DEVICEALIAS": Text(15),
    "GROUP": Text(20),
    "GATE": Text(20),
    "ANI": Text(20),
    "DNIS": Text(20),
    **users(1, 3, 20),
    **users(4, 8, 255),
    **users(9, 15, 50),
    "CALLDIRECTION": Choice(("I", "O", "?")),
    "CALLID": Text(16),
}

# "Function: BLACKOUTSTART, BLACKOUTSTOP" (the AGENT... forms take the same fields).
BLACKOUT: dict[str, Text | Choice | Number] = {
    "DEVICEID": Text(64),
    "DEVICEALIAS": Text(100),
    "CRM_USER": Text(50),
    "SYS_USER": Text(255),
    # Not in the table; the glossary: "a positive or negative integer". CHOICE: signed 32-bit.
    "TIMEOFFSET": Number(INT32_MIN, INT32_MAX),
}

# "Import Data Types", Function: IMPORTUSER, IMPORTAGENTPHONE, IMPORTWORKSTATION.
IMPORT: dict[str, Text | Choice | Number] = {
    "AGENTID": ID,
    "FIRSTNAME": Text(20),
    "LASTNAME": Text(30),
    "SYS_USER": Text(255),
    "DOMAIN": Text(30),
    "EMAIL": Text(255),
    "EMPLOYEEID": Text(20),
    "ALLOWSELFRECORD": YN,
    "ALLOWSELFDOWNLOAD": YN,
    "ALLOWDUPLICATE": YN,
    "STATUS": Choice(("A", "I")),
    "PHONEID": Text(10),
    "DEVICEID": Text(15),
    "STATIONNAME": Text(50),
    "LOCATIONID": ID,
    # Not in the table. CHOICE: USERID as AGENTID; USERNAME 255, CRM_USER 30, PASSWORD 1024.
    "USERID": ID,
    "USERNAME": Text(255),
    "CRM_USER": Text(30),
    "PASSWORD": Text(1024),
}

# "User, Group and Role Data Types", Function: ADDGROUP, MODIFYGROUPPERMISSION (and
# MODIFYUSERGROUPPERMISSION, a function the manual describes nowhere else). The table's
# USERNAME char(16) is left out: neither group function reads a USERNAME.
GROUPS: dict[str, Text | Choice | Number] = {
    "GROUPNAME": Text(255),
    "GROUPID": ID,
    "DEVICEID": Text(64),
    "PHONEID": Text(10),
    "FIRSTNAME": Text(20),
    "LASTNAME": Text(30),
    "AGENTID": ID,
    "USERID": ID,  # not in the table; CHOICE: AGENTID's other name
}

# The role functions have no table. CHOICE: the group table's fields, and for the rest the
# widths docs/api-notes.md gives.
ROLES: dict[str, Text | Choice | Number] = {
    **GROUPS,
    "ROLEID": ID,
    "ROLENAME": Text(255),
    "DESCRIPTION": Text(1024),
    "PERMISSIONNAME": Text(64),
    "USERNAME": Text(255),
    "SYS_USER": Text(255),
    "SYSTEMUSERNAME": Text(255),
}

# "Function: EMAIL, COMBINEDEMAIL".
EMAIL: dict[str, Text | Choice | Number] = {
    "UNIQUEFIELD": Text(255),
    "UNIQUEID": Text(255),
    "TOADDRESS": Text(255),
    "TONAME": Text(255),
    "FROMADDRESS": Text(255),
    "FROMNAME": Text(255),
    "MEDIA_FORMAT": Text(3),
    "IDENT": Text(255),
}

# "Function: AGENTWINDOW".
AGENTWINDOW: dict[str, Text | Choice | Number] = {
    name: Text(255) for name in ("COMPUTERNAME", "USERNAME", "DOMAIN", "IPADDRESS", "STATUS",
                                 "APPLICATIONTITLE", "LASTUPDATE")
}

TABLES: dict[str, dict[str, Text | Choice | Number]] = {
    **dict.fromkeys(("CALLSTART", "CALLSTOP", "CALLUPDATE", "RECORDSTART", "RECORDSTOP"),
                    CALL_HANDLING),
    **dict.fromkeys(("DEVICELIST", "DEVICESTATUS", "DEVICERECORDINGSTATUS"), STATUS),
    "CALLLIST": CALLLIST,
    **dict.fromkeys(("CHATSTART", "CHATSTOP", "CHATUPDATE"), CHAT),
    **dict.fromkeys(("BLACKOUTSTART", "BLACKOUTSTOP", "AGENTBLACKOUTSTART",
                     "AGENTBLACKOUTSTOP"), BLACKOUT),
    **dict.fromkeys(("IMPORTUSER", "IMPORTAGENTPHONE", "IMPORTWORKSTATION"), IMPORT),
    **dict.fromkeys(("ADDGROUP", "MODIFYGROUPPERMISSION"), GROUPS),
    **dict.fromkeys(("MODIFYROLE", "MODIFYROLEGROUPPERMISSION", "MODIFYUSERROLE",
                     "MODIFYROLEPERMISSION"), ROLES),
    **dict.fromkeys(("EMAIL", "COMBINEDEMAIL"), EMAIL),
    "AGENTWINDOW": AGENTWINDOW,
}


def outcome(function: str, name: str, value: str, *, number: bool) -> str:
    """What the recorder makes of ``value`` in parameter ``name`` of a ``function`` request:
    "taken as X" or "refused: message" (16 and the field's name first, or a wrong answer)."""
    params = Params({name: value}, function)
    try:
        got = params.integer(name) if number else params.text(name)
    except RequestError as exc:
        if exc.code is not ResultCode.API_INVALID_MESSAGE_FORMAT \
                or not exc.message.startswith(name):
            return f"refused wrongly: {exc.code.name} {exc.message!r}"
        return f"refused: {exc.message}"
    return f"taken as {got!r}"


def mismatches(function: str, name: str, limit: Text | Choice | Number) -> list[str]:
    """How ``function``'s ``name`` differs from the manual at and beyond ``limit``."""
    taken: list[tuple[str, object]] = []  # (value sent, what it must come back as)
    refused: list[str] = []
    if isinstance(limit, Text):
        taken.append(("x" * limit.length, "x" * limit.length))
        refused.append("x" * (limit.length + 1))
    elif isinstance(limit, Choice):
        taken += [(value, value) for value in limit.values]
        taken += [(value.lower(), value) for value in limit.values if value.isalpha()]
        refused.append("Z")
    else:
        taken += [(str(limit.low), limit.low), (str(limit.high), limit.high)]
        refused += [str(limit.low - 1), str(limit.high + 1)]
    number = isinstance(limit, Number)
    wrong = []
    for value, expected in taken:
        got = outcome(function, name, value, number=number)
        if got != f"taken as {expected!r}":
            wrong.append(f"{function} {name}={value[:20]!r}: {got}, not taken")
    for value in refused:
        got = outcome(function, name, value, number=number)
        if not got.startswith("refused: "):
            wrong.append(f"{function} {name}={value[:20]!r}: {got}, not refused by name")
    return wrong


@pytest.mark.parametrize("function", sorted(TABLES))
def test_each_field_is_taken_at_the_manuals_limit_and_refused_beyond(function: str) -> None:
    wrong = [problem for name, limit in TABLES[function].items()
             for problem in mismatches(function, name, limit)]
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("function", sorted(TABLES))
def test_the_manuals_other_spellings_are_held_to_the_same_limits(function: str) -> None:
    """KEEPDAYS (the call table's spelling) and the user functions' USER_ID, FIRST_NAME,
    LAST_NAME, EMPLOYEE_ID and SYS_DOMAIN are the fields above under another name."""
    table = TABLES[function]
    for alias, name in (("KEEPDAYS", "KEEP_DAYS"), ("USER_ID", "USERID"),
                        ("FIRST_NAME", "FIRSTNAME"), ("LAST_NAME", "LASTNAME"),
                        ("EMPLOYEE_ID", "EMPLOYEEID"), ("SYS_DOMAIN", "DOMAIN")):
        limit = table.get(name)
        if isinstance(limit, Text):
            params = Params({alias: "x" * (limit.length + 1)}, function)
            with pytest.raises(RequestError, match=f"^{name} is {limit.length + 1} characters"):
                params.text(name)
        elif isinstance(limit, Number):
            params = Params({alias: str(limit.high + 1)}, function)
            with pytest.raises(RequestError, match=f"^{name} must be between"):
                params.integer(name)
