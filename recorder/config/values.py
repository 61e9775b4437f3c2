"""Parsers of setting values that have a syntax of their own: times, days, call directions,
e-mail addresses. Pure functions raising ValueError (or returning the problem), shared by the
loader's checks and by the code that uses the values.
"""

from __future__ import annotations

import re

DEVICEID_MAX_LEN = 64  # the manual's DEVICEID is char(64)

# datetime.weekday() numbers index this tuple.
DAY_NAMES: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
# The manual's CALLDIRECTION values; "?" also stands for a call that did not say.
DIRECTIONS: tuple[str, ...] = ("I", "O", "?")
UNKNOWN_DIRECTION = "?"

_CLOCK = re.compile(r"([0-9]{2}):([0-9]{2})")


def parse_clock(text: str) -> int:
    """Minutes after midnight of an ``HH:MM`` time (00:00 to 23:59); ValueError otherwise."""
    found = _CLOCK.fullmatch(text)
    if found is None or int(found[1]) > 23 or int(found[2]) > 59:
        raise ValueError(f"{text!r} is not a time (HH:MM, 00:00 to 23:59)")
    return int(found[1]) * 60 + int(found[2])


def parse_day(name: str) -> int:
    """The weekday number (Monday 0) of ``mon`` .. ``sun`` or a full day name, in any case."""
    lowered = name.strip().lower()
    for names in (DAY_NAMES, _FULL_DAY_NAMES):
        if lowered in names:
            return names.index(lowered)
    raise ValueError(f"{name!r} is not a day ({', '.join(DAY_NAMES)})")


def parse_direction(value: str) -> str:
    """A CALLDIRECTION value of a rule, upper case; ValueError unless I, O or ?."""
    upper = value.strip().upper()
    if upper not in DIRECTIONS:
        raise ValueError(f"{value!r} is not a call direction ({', '.join(DIRECTIONS)})")
    return upper


# An address as people type them: dot-atom local part, host name labels. Quoted local parts,
# IP literals and comments are valid RFC 5322 but no mail system a recorder sends to needs them,
# and refusing them keeps header injection out by construction.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_ADDRESS = re.compile(rf"(?P<local>{_ATOM}(?:\.{_ATOM})*)@(?P<domain>{_LABEL}(?:\.{_LABEL})*)")
MAX_ADDRESS = 254  # RFC 5321's limit on a path, less the angle brackets
MAX_LOCAL = 64


def address_problem(address: str) -> str | None:
    """Why ``address`` is not an e-mail address we send to, or None if it is one."""
    if not address:
        return "an e-mail address is required"
    if len(address) > MAX_ADDRESS:
        return f"{address[:40]!r}... is longer than {MAX_ADDRESS} characters"
    found = _ADDRESS.fullmatch(address)
    if found is None:
        return f"{address!r} is not an e-mail address (name@example.com)"
    if len(found["local"]) > MAX_LOCAL:
        return f"{address!r}: the part before @ is longer than {MAX_LOCAL} characters"
    return None
