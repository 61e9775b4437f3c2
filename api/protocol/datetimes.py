"""The date and time forms of the directory functions' examples, both ways.

IMPORTUSER's LIST writes ``10/30/2006 4:05:38 PM -05:00`` (local time and its UTC offset);
AGENTWINDOW writes ``Feb  2 2011  4:53PM`` (SQL Server's default form, local time).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

from recorder.api.request import invalid
from recorder.timefmt import manual_datetime

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_US = re.compile(
    r"(?P<mo>\d{1,2})/(?P<d>\d{1,2})/(?P<y>\d{4})"
    r"(?:\s+(?P<h>\d{1,2}):(?P<mi>\d{2})(?::(?P<s>\d{2}))?\s*(?P<ampm>[AaPp][Mm])?)?"
    r"(?:\s*(?P<off>[+-]\d{2}:?\d{2}|Z))?")
_UNIX = re.compile(r"[0-9]{1,12}")


def user_datetime(timestamp: float | None) -> str:
    """``10/30/2006 4:05:38 PM -05:00``; "" for no time."""
    if timestamp is None:
        return ""
    offset = datetime.fromtimestamp(timestamp).astimezone().strftime("%z")
    return f"{manual_datetime(timestamp)} {offset[:3]}:{offset[3:]}"


def window_datetime(timestamp: float) -> str:
    """``Feb  2 2011  4:53PM``."""
    t = datetime.fromtimestamp(timestamp)
    hour = t.hour % 12 or 12
    return (f"{_MONTHS[t.month - 1]} {t.day:>2} {t.year} {hour:>2}:{t.minute:02}"
            f"{'AM' if t.hour < 12 else 'PM'}")


def parse_user_datetime(name: str, text: str) -> float:
    """A time a client sends as ADD_TIME or MOD_TIME, as unix seconds.

    Accepted: the LIST form (``10/30/2006 4:05:38 PM -05:00``, the offset and the time of day
    optional; without an offset it is local time), ISO 8601, and unix seconds.
    """
    if _UNIX.fullmatch(text):
        return float(text)
    when = _parse_us(text)
    if when is None:
        try:
            when = datetime.fromisoformat(text)
        except ValueError:
            when = None
    if when is None:
        raise invalid(f"{name} must be a date and time like 10/30/2006 4:05:38 PM -05:00, "
                      f"not {text[:40]!r}")
    if when.tzinfo is None:
        when = when.astimezone()  # local time, as the answers are written
    return when.timestamp()


def _parse_us(text: str) -> datetime | None:
    m = _US.fullmatch(text.strip())
    if m is None:
        return None
    hour, minute, second = int(m["h"] or 0), int(m["mi"] or 0), int(m["s"] or 0)
    if m["ampm"]:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if m["ampm"].upper() == "PM" else 0)
    tz: timezone | None = None
    if m["off"] and m["off"] != "Z":
        sign = -1 if m["off"][0] == "-" else 1
        digits = m["off"][1:].replace(":", "")
        hours, minutes = int(digits[:2]), int(digits[2:])
        if hours > 23 or minutes > 59:
            return None
        tz = timezone(sign * timedelta(hours=hours, minutes=minutes))
    elif m["off"] == "Z":
        tz = UTC
    try:
        return datetime(int(m["y"]), int(m["mo"]), int(m["d"]), hour, minute, second, tzinfo=tz)
    except ValueError:
        return None
