"""Which keys a SIGHUP takes up, and which changed ones only a restart can apply.

SIGHUP applies the recording policy (schedules, blocked filters, priorities and limits) and
the terminology without dropping a call. Everything else (ports, boards, storage, ...) keeps
the value recorderd started with; an engineer who edited one and sent SIGHUP must be told,
not left to find out that nothing happened.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from recorder.config.model import Config

# Dotted keys SIGHUP applies (recorder.app.Recorder.reload; log.calls the daemon's _reload).
RELOADED: frozenset[str] = frozenset({
    "recording.schedules", "recording.blocked", "recording.default_priority",
    "recording.max_record_time_seconds", "recording.max_record_silence_seconds",
    "recording.max_concurrent", "terminology", "log.calls",
})


def changed_keys(old: Any, new: Any, prefix: str = "") -> list[str]:
    """The dotted keys whose values differ between two configs (or parts of them), in the
    order of the schema; a list that changed length, or a board whose driver changed, is
    named whole."""
    if dataclasses.is_dataclass(old) and type(old) is type(new):
        found: list[str] = []
        for item in dataclasses.fields(old):
            key = f"{prefix}.{item.name}" if prefix else item.name
            found += changed_keys(getattr(old, item.name), getattr(new, item.name), key)
        return found
    if (isinstance(old, tuple) and isinstance(new, tuple) and len(old) == len(new)
            and old and all(dataclasses.is_dataclass(o) for o in old)):
        found = []
        for index, (before, after) in enumerate(zip(old, new, strict=True)):
            found += changed_keys(before, after, f"{prefix}[{index}]")
        return found
    return [] if old == new else [prefix]


def needs_restart(old: Config, new: Config) -> list[str]:
    """The changed keys SIGHUP does not apply."""
    return [key for key in changed_keys(old, new)
            if not any(key == kept or key.startswith(f"{kept}.") or key.startswith(f"{kept}[")
                       for kept in RELOADED)]
