"""Schedules and blocked filters: which calls a rule is about, as pure functions.

A rule names the calls it is about with patterns on the call's fields (DEVICEID, GROUP, GATE,
ANI, DNIS, the agent's user name), a set of CALLDIRECTION values, and, for schedules, days of
the week, a time window and a sampling percentage. Every field a rule gives must match; a field
it leaves empty matches any call. ``recorder.rules.decision`` applies the rules in order.

Patterns are shell-style wildcards (``fnmatch``): ``*`` any run of characters, ``?`` one,
``[0-4]`` one of a set. They match the whole value, so ``614*`` is "starts with 614". DEVICEID,
ANI and DNIS are identifiers and numbers and match case-sensitively; GROUP, GATE and agent
names are names people type in different cases and match case-insensitively. A pattern ``""``
matches a call that did not send the field (a blocked filter ``ani = [""]`` refuses calls
without caller ID).
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from recorder.config.values import UNKNOWN_DIRECTION, parse_clock, parse_day, parse_direction

if TYPE_CHECKING:
    from recorder.config.recording import BlockedFilterConfig, CallMatchConfig, ScheduleConfig

# Sampling resolution: a call falls in one of this many buckets, so 0.01 % steps are exact.
SAMPLE_BUCKETS = 10_000
# The config's "not set" for optional integers (TOML has no null).
UNSET = -1


def call_direction(meta: Mapping[str, str]) -> str:
    """The call's CALLDIRECTION as a rule sees it: I, O, or ? when unknown or not sent."""
    value = meta.get("CALLDIRECTION", "").strip().upper()
    return value if value in ("I", "O") else UNKNOWN_DIRECTION


def sample_bucket(key: str) -> int:
    """The call's sampling bucket, 0 .. SAMPLE_BUCKETS - 1: the same key, the same bucket.

    A cryptographic hash, not ``hash()``: Python salts ``hash`` per process, and a call must be
    sampled the same way after a restart or on another recorder.
    """
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") % SAMPLE_BUCKETS


def sampled_in(key: str, percent: float) -> bool:
    """Whether the call ``key`` is among the ``percent`` % of calls a sampling rule records."""
    if percent >= 100:
        return True
    if percent <= 0:
        return False
    return sample_bucket(key) < round(percent * SAMPLE_BUCKETS / 100)


Patterns = tuple[re.Pattern[str], ...]


def compile_patterns(patterns: Iterable[str], *, ignore_case: bool) -> Patterns:
    """Shell-style wildcard patterns, compiled once so a call start only runs regexes."""
    flags = re.IGNORECASE if ignore_case else 0
    return tuple(re.compile(fnmatch.translate(p), flags) for p in patterns)


def _any_match(patterns: Patterns, value: str) -> bool:
    # No patterns: the rule does not care about this field.
    return not patterns or any(p.match(value) for p in patterns)


@dataclass(frozen=True)
class CallMatch:
    """The call fields a rule is about; every non-empty field must match, empty ones match all."""

    devices: Patterns = ()
    groups: Patterns = ()
    gates: Patterns = ()
    ani: Patterns = ()
    dnis: Patterns = ()
    agents: Patterns = ()
    directions: frozenset[str] = frozenset()

    @classmethod
    def build(cls, *, devices: Iterable[str] = (), groups: Iterable[str] = (),
              gates: Iterable[str] = (), ani: Iterable[str] = (), dnis: Iterable[str] = (),
              agents: Iterable[str] = (), directions: Iterable[str] = ()) -> CallMatch:
        """A match from pattern strings; ValueError for a direction other than I, O or ?."""
        return cls(
            devices=compile_patterns(devices, ignore_case=False),
            groups=compile_patterns(groups, ignore_case=True),
            gates=compile_patterns(gates, ignore_case=True),
            ani=compile_patterns(ani, ignore_case=False),
            dnis=compile_patterns(dnis, ignore_case=False),
            agents=compile_patterns(agents, ignore_case=True),
            directions=frozenset(parse_direction(d) for d in directions),
        )

    @classmethod
    def from_config(cls, config: CallMatchConfig) -> CallMatch:
        return cls.build(devices=config.devices, groups=config.groups, gates=config.gates,
                         ani=config.ani, dnis=config.dnis, agents=config.agents,
                         directions=config.directions)

    def matches(self, device_id: str, meta: Mapping[str, str], agent: str) -> bool:
        """Whether a call on ``device_id`` with API fields ``meta`` and ``agent`` matches."""
        return (
            _any_match(self.devices, device_id)
            and _any_match(self.groups, meta.get("GROUP", ""))
            and _any_match(self.gates, meta.get("GATE", ""))
            and _any_match(self.ani, meta.get("ANI", ""))
            and _any_match(self.dnis, meta.get("DNIS", ""))
            and _any_match(self.agents, agent)
            and (not self.directions or call_direction(meta) in self.directions)
        )


@dataclass(frozen=True)
class Window:
    """Days of the week and a time of day, ``start`` included, ``end`` excluded.

    No times: all day. ``end`` before ``start``: the window crosses midnight and belongs to the
    day it opens on, so Friday 22:00-06:00 includes Saturday 03:00 but not Friday 03:00.
    """

    days: frozenset[int] = frozenset()  # weekday numbers, Monday 0; empty: every day
    start: int | None = None  # minutes after midnight
    end: int | None = None

    @classmethod
    def build(cls, days: Iterable[str] = (), start: str = "", end: str = "") -> Window:
        """A window from config strings; ValueError for a bad day or time, or half a window."""
        if bool(start) != bool(end):
            raise ValueError("start and end go together (leave both empty for all day)")
        first = parse_clock(start) if start else None
        last = parse_clock(end) if end else None
        if first is not None and first == last:
            raise ValueError("start and end are equal (leave both empty for all day)")
        return cls(frozenset(parse_day(d) for d in days), first, last)

    def _on(self, weekday: int) -> bool:
        return not self.days or weekday in self.days

    def contains(self, at: datetime) -> bool:
        """Whether the local wall-clock time ``at`` falls inside the window."""
        weekday = at.weekday()
        if self.start is None or self.end is None:
            return self._on(weekday)
        minute = at.hour * 60 + at.minute
        if self.start < self.end:
            return self.start <= minute < self.end and self._on(weekday)
        if minute >= self.start:
            return self._on(weekday)
        # The early-morning part of a window that opened the evening before.
        return minute < self.end and self._on((weekday - 1) % 7)


@dataclass(frozen=True)
class Schedule:
    """A recording rule: the calls it is about, and what happens to them when it decides.

    The optional values (None: not set) apply to calls whose request does not send them.
    """

    name: str
    record: bool = True  # False: an explicit "do not record" rule
    match: CallMatch = field(default_factory=CallMatch)
    window: Window = field(default_factory=Window)
    sample_percent: float = 100.0
    priority: int | None = None
    keep_days: int | None = None
    archive_action: int | None = None
    max_record_time: int | None = None  # seconds, 0 = no limit
    max_record_silence: int | None = None  # seconds, 0 = off

    @classmethod
    def from_config(cls, config: ScheduleConfig) -> Schedule:
        """The rule of one ``[[recording.schedules]]`` entry; ValueError if it is invalid."""
        return cls(
            name=config.name, record=config.record, match=CallMatch.from_config(config),
            window=Window.build(config.days, config.start, config.end),
            sample_percent=config.sample_percent, priority=_optional(config.priority),
            keep_days=_optional(config.keep_days),
            archive_action=_optional(config.archive_action),
            max_record_time=_optional(config.max_record_time_seconds),
            max_record_silence=_optional(config.max_record_silence_seconds),
        )

    def applies(self, device_id: str, meta: Mapping[str, str], agent: str,
                at: datetime) -> bool:
        """Whether this rule is about the call (sampling aside)."""
        return self.window.contains(at) and self.match.matches(device_id, meta, agent)


@dataclass(frozen=True)
class BlockedFilter:
    """Calls that must never be recorded, whatever the schedules say."""

    name: str
    match: CallMatch

    @classmethod
    def from_config(cls, config: BlockedFilterConfig) -> BlockedFilter:
        return cls(config.name, CallMatch.from_config(config))


def _optional(value: int) -> int | None:
    return None if value == UNSET else value
