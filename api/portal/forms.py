"""The search form: CALLLIST's filters as the page sends them, read into the store's
``RecordingQuery``, every mistake named by its field. Pure: no request, no database."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from recorder.store.records import USER_FIELDS, RecordingQuery

PAGE_SIZE = 50
MAX_PAGE = 10000  # OFFSET walks the rows it skips: deep pages are refused, not slow
MAX_FIELD = 255  # the longest text filter (the manual's widest metadata fields)

# Form field -> CALLLIST filter name; text fields matched exactly, as CALLLIST does.
TEXT_FILTERS: dict[str, str] = {
    "device": "DEVICEID", "alias": "DEVICEALIAS", "ani": "ANI", "dnis": "DNIS",
    "group": "GROUP", "gate": "GATE", "sys_user": "SYS_USER", "crm_user": "CRM_USER",
    **{name.lower(): name for name in USER_FIELDS},
}
FIELDS = (*TEXT_FILTERS, "from", "to", "tz", "agent", "min_duration", "max_duration",
          "order", "page")

_CLOCK = re.compile(r"(?:(\d+):)?(?:(\d{1,2}):)?(\d{1,2})")


@dataclass
class SearchForm:
    values: dict[str, str]  # what was sent, to show in the form again
    query: RecordingQuery
    agent_id: int | None
    agent_name: str | None  # an agent given by user name, for the caller to look up
    page: int
    problems: list[str] = field(default_factory=list)

    def link(self, page: int) -> dict[str, str]:
        """The query string of another page of the same search."""
        return {**{k: v for k, v in self.values.items() if v and k != "page"},
                "page": str(page)}


def parse_duration(text: str) -> float:
    """Seconds from ``90``, ``1:30`` or ``0:01:30``; ValueError otherwise."""
    found = _CLOCK.fullmatch(text.strip())
    if found is None:
        raise ValueError(text)
    hours, minutes, seconds = found.groups()
    if minutes is None and hours is not None:  # "m:ss"
        hours, minutes = None, hours
    return int(hours or 0) * 3600 + int(minutes or 0) * 60 + int(seconds)


def parse_time(text: str, tz_minutes: int) -> int:
    """Unix seconds of a ``datetime-local`` value (YYYY-MM-DDTHH:MM[:SS]) typed in a browser
    ``tz_minutes`` behind UTC (JavaScript's getTimezoneOffset; 0 without the page's script)."""
    local = dt.datetime.fromisoformat(text.strip())
    if local.tzinfo is not None:
        raise ValueError(text)
    return int((local.replace(tzinfo=dt.UTC) + dt.timedelta(minutes=tz_minutes)).timestamp())


def read_search(raw: Mapping[str, str], page_size: int = PAGE_SIZE) -> SearchForm:
    values = {name: raw.get(name, "").strip()[:MAX_FIELD] for name in FIELDS}
    problems: list[str] = []
    equals = {TEXT_FILTERS[name]: values[name] for name in TEXT_FILTERS if values[name]}
    tz = 0
    if values["tz"]:
        try:
            tz = int(values["tz"])
            if abs(tz) > 24 * 60:
                raise ValueError(tz)
        except ValueError:
            problems.append("tz: not a time-zone offset")
            tz = 0
    bounds: dict[str, int | None] = {"from": None, "to": None}
    for name in bounds:
        if values[name]:
            try:
                bounds[name] = parse_time(values[name], tz)
            except ValueError:
                problems.append(f"{name}: not a date and time (YYYY-MM-DDTHH:MM)")
    durations: dict[str, float | None] = {"min_duration": None, "max_duration": None}
    for name in durations:
        if values[name]:
            try:
                durations[name] = parse_duration(values[name])
            except ValueError:
                problems.append(f"{name}: not a duration (seconds, m:ss or h:mm:ss)")
    agent_id, agent_name = None, None
    if values["agent"]:
        if values["agent"].isascii() and values["agent"].isdigit():
            agent_id = int(values["agent"])
        else:
            agent_name = values["agent"]
    page = 1
    if values["page"]:
        if values["page"].isascii() and values["page"].isdigit() and \
                1 <= int(values["page"]) <= MAX_PAGE:
            page = int(values["page"])
        else:
            problems.append(f"page: not a page number (1 to {MAX_PAGE})")
    if values["order"] not in ("", "newest", "oldest"):
        problems.append("order: newest or oldest")
    start, end = bounds["from"], bounds["to"]
    if start is not None and end is not None and start > end:
        problems.append("from: after to")
    # One row more than a page: whether there is a next page, without counting them all.
    query = RecordingQuery(equals=equals, start=start, end=end, limit=page_size + 1,
                           min_duration=durations["min_duration"],
                           max_duration=durations["max_duration"],
                           offset=(page - 1) * page_size,
                           oldest_first=values["order"] == "oldest")
    return SearchForm(values, query, agent_id, agent_name, page, problems)
