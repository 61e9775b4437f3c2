"""Retention: how long a recording is kept, and when the daily purge runs, as pure functions.

A recording is kept for a number of days from its start, taken from the first of

1. its own KEEPDAYS, when above 0 (0 and -1 mean "not set": the manual's events send -1, and a
   CTI link that fills every number with 0 must neither make its calls immortal nor delete them);
2. its ARCHIVEACTION (above 0) in ``[[retention.archive_actions]]``: ``keep_days`` (0 = forever)
   or ``purge = true`` (due as soon as the recording is complete). An id the table does not
   list falls through to 3, and is logged once;
3. ``retention.default_keep_days`` (0 = forever).

``recorder.archive.retention`` is the job that applies it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo

from recorder.config.recording import RetentionConfig
from recorder.config.values import parse_clock
from recorder.store.records import DAY_SECONDS, STATUS_COMPLETE, ExpiryRule, RecordingRow

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetentionPolicy:
    """The site's retention settings, in days: None = kept forever, 0 = due once complete."""

    default_keep_days: int | None = None
    archive_keep_days: Mapping[int, int | None] = field(default_factory=dict)
    archive_names: Mapping[int, str] = field(default_factory=dict)
    _unknown_logged: set[int] = field(default_factory=set, init=False, compare=False,
                                      repr=False)

    @classmethod
    def from_config(cls, config: RetentionConfig) -> RetentionPolicy:
        return cls(
            default_keep_days=config.default_keep_days or None,
            archive_keep_days={a.id: 0 if a.purge else (a.keep_days or None)
                               for a in config.archive_actions},
            archive_names={a.id: a.name for a in config.archive_actions},
        )

    @property
    def rule(self) -> ExpiryRule:
        """The same rule in the store's terms, to find due recordings in bulk."""
        return ExpiryRule(self.default_keep_days, dict(self.archive_keep_days))

    def note_unknown(self, archive_action: int) -> None:
        # Without a lock: two threads meeting the same new id at once may both log it.
        if archive_action in self._unknown_logged:
            return
        self._unknown_logged.add(archive_action)
        logger.warning("ARCHIVEACTION %d is not in retention.archive_actions; its recordings "
                       "are kept by retention.default_keep_days", archive_action)


def kept_for(keep_days: int | None, archive_action: int | None,
              policy: RetentionPolicy) -> tuple[int | None, str]:
    """How many days a recording is kept (None = forever) and which setting says so."""
    if keep_days is not None and keep_days > 0:
        return keep_days, f"KEEPDAYS {keep_days}"
    if archive_action is not None and archive_action > 0:
        if archive_action in policy.archive_keep_days:
            days = policy.archive_keep_days[archive_action]
            name = policy.archive_names.get(archive_action)
            label = f"ARCHIVEACTION {archive_action}" + (f" ({name})" if name else "")
            if days == 0:
                return 0, f"{label}: purge when complete"
            return days, f"{label}: " + ("forever" if days is None else f"{days} days")
        policy.note_unknown(archive_action)
    days = policy.default_keep_days
    return days, "retention.default_keep_days " + ("forever" if days is None else str(days))


def expiry(row_start_time: float, keep_days: int | None, archive_action: int | None,
           policy: RetentionPolicy) -> float | None:
    """Unix time a recording that started at ``row_start_time`` expires; None = never."""
    days, _ = kept_for(keep_days, archive_action, policy)
    return None if days is None else row_start_time + days * DAY_SECONDS


def due_for_purge(row: RecordingRow, now: float, policy: RetentionPolicy) -> bool:
    """True if ``row`` is complete, not yet purged and expired at ``now``."""
    if row.status != STATUS_COMPLETE or row.purged_time is not None:
        return False
    until = expiry(row.start_time, row.keep_days, row.archive_action, policy)
    return until is not None and until <= now


def next_run(now: float, purge_time: str, tz: tzinfo | None = None) -> float:
    """The first moment after ``now`` whose wall-clock time (local, or in ``tz``) is
    ``purge_time`` ("HH:MM"). Days are calendar days, so the job keeps its hour across DST."""
    minutes = parse_clock(purge_time)
    today = datetime.fromtimestamp(now, tz).replace(hour=minutes // 60, minute=minutes % 60,
                                                    second=0, microsecond=0)
    at = today.timestamp()
    if at <= now:
        at = (today + timedelta(days=1)).timestamp()
    return at
