"""Date and time as the manual's examples print them: ``2/1/2011 11:49:32 AM`` (local time)."""

from __future__ import annotations

from datetime import datetime


def manual_datetime(timestamp: float | None) -> str:
    """``M/D/YYYY h:mm:ss AM`` in the recorder's local time; "" for no time."""
    if timestamp is None:
        return ""
    t = datetime.fromtimestamp(timestamp)
    hour = t.hour % 12 or 12
    return f"{t.month}/{t.day}/{t.year} {hour}:{t:%M:%S} {'AM' if t.hour < 12 else 'PM'}"
