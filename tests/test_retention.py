"""Retention's rule and its configuration: which recordings are due and when the daily purge
runs (pure functions, tables of cases), and the [retention] table. The store, the purge job, the
free-space floor and ``recorderctl purge`` have files of their own (test_retention_*.py)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from recorder.config.loader import config_from_dict, load_config
from recorder.config.printing import to_toml
from recorder.errors import ConfigError
from recorder.rules.retention import RetentionPolicy, due_for_purge, expiry, kept_for, next_run
from recorder.store.records import RecordingRow
from tests.helpers.retention import BERLIN, DAY, NOW, POLICY, at

# --- the rule --------------------------------------------------------------------------------

@pytest.mark.parametrize(("keep_days", "archive_action", "policy", "expected_days"), [
    # The recording's own KEEPDAYS wins over everything.
    (30, 7, POLICY, 30),
    (30, 8, POLICY, 30),
    (1, None, POLICY, 1),
    # KEEPDAYS 0 and -1 (the manual's "not set") fall through to the archive action...
    (0, 7, POLICY, 7),
    (-1, 7, POLICY, 7),
    (None, 8, POLICY, 0),  # purge = true: due as soon as complete
    (None, 9, POLICY, None),  # keep_days = 0 in the table: forever
    # ...and ARCHIVEACTION -1, 0 or unknown to the default.
    (-1, -1, POLICY, 90),
    (None, 0, POLICY, 90),
    (None, 12345, POLICY, 90),
    # An archive action of a single day is a day, not "purge when complete".
    (None, 1, RetentionPolicy(archive_keep_days={1: 1}), 1),
    (None, None, POLICY, 90),
    # default_keep_days 0 in the config: forever.
    (None, None, RetentionPolicy(), None),
    (None, 12345, RetentionPolicy(), None),
    (5, None, RetentionPolicy(), 5),
])
def test_expiry_takes_keepdays_then_archive_action_then_default(
        keep_days: int | None, archive_action: int | None, policy: RetentionPolicy,
        expected_days: int | None) -> None:
    until = expiry(NOW, keep_days, archive_action, policy)
    assert until == (None if expected_days is None else NOW + expected_days * DAY)


def test_an_unknown_archive_action_is_logged_once_per_id(
        caplog: pytest.LogCaptureFixture) -> None:
    policy = RetentionPolicy(default_keep_days=3)
    with caplog.at_level(logging.WARNING, logger="recorder.archive.retention"):
        for _ in range(3):
            expiry(NOW, None, 41, policy)
        expiry(NOW, None, 42, policy)
        # 0 and -1 are "not set", not an id the table is missing: nothing to warn about.
        expiry(NOW, None, 0, policy)
        expiry(NOW, None, -1, policy)
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 2
    assert "ARCHIVEACTION 41" in warned[0]
    assert "ARCHIVEACTION 42" in warned[1]


# What `recorderctl purge` prints beside each recording it purges (or would): the setting that
# decided its expiry.
@pytest.mark.parametrize(("keep_days", "archive_action", "policy", "expected"), [
    (30, 7, POLICY, (30, "KEEPDAYS 30")),
    (None, 7, POLICY, (7, "ARCHIVEACTION 7 (week): 7 days")),
    (None, 8, POLICY, (0, "ARCHIVEACTION 8: purge when complete")),
    (None, 9, POLICY, (None, "ARCHIVEACTION 9: forever")),
    (None, None, POLICY, (90, "retention.default_keep_days 90")),
    (None, None, RetentionPolicy(), (None, "retention.default_keep_days forever")),
])
def test_each_expiry_names_the_setting_that_decided_it(
        keep_days: int | None, archive_action: int | None, policy: RetentionPolicy,
        expected: tuple[int | None, str]) -> None:
    assert kept_for(keep_days, archive_action, policy) == expected


def row(*, ident: int = 1, start: float = NOW - 100 * DAY, status: str = "complete",
        purged: float | None = None, keep_days: int | None = None,
        archive: int | None = None) -> RecordingRow:
    return RecordingRow(
        ident=ident, device_id="1001", call_instance="", channel=1, filename="/r/a.wav",
        media_format="wav", sample_rate=8000, recording_time=int(start), start_time=start,
        stop_time=start + 60, duration=60.0, audio_size=1, audio_hash="", status=status,
        stop_reason="callstop", lost_samples=0, core_ident=1, meta={}, priority=None,
        keep_days=keep_days, archive_action=archive, cti_initiated="", agent_initiated="",
        purged_time=purged)


def test_only_complete_unpurged_expired_recordings_are_due() -> None:
    assert due_for_purge(row(), NOW, POLICY)
    assert not due_for_purge(row(status="recording"), NOW, POLICY)
    # Any status but complete, whatever it sorts as (a status added later must not be purged).
    assert not due_for_purge(row(status="aborted"), NOW, POLICY)
    assert not due_for_purge(row(purged=NOW - 1), NOW, POLICY)
    assert not due_for_purge(row(archive=9), NOW, POLICY)
    # Exactly at its expiry it is due; a second earlier it is not.
    start = NOW - 90 * DAY
    assert due_for_purge(row(start=start), NOW, POLICY)
    assert not due_for_purge(row(start=start + 1), NOW, POLICY)


@pytest.mark.parametrize(("now", "purge_time", "expected"), [
    ("2025-06-10 02:59:00", "03:00", "2025-06-10 03:00:00"),
    ("2025-06-10 03:00:00", "03:00", "2025-06-11 03:00:00"),  # just run: tomorrow
    ("2025-06-10 23:30:00", "03:00", "2025-06-11 03:00:00"),  # across midnight
    ("2025-12-31 23:59:59", "00:00", "2026-01-01 00:00:00"),  # and the year
    ("2025-06-10 00:00:00", "00:00", "2025-06-11 00:00:00"),
    ("2025-06-10 12:00:00", "23:59", "2025-06-10 23:59:00"),
    # The night clocks go forward (02:00 -> 03:00 CEST) the job still runs at 03:00 local.
    ("2025-03-29 04:00:00", "03:00", "2025-03-30 03:00:00"),
    # And the night they go back.
    ("2025-10-25 04:00:00", "03:00", "2025-10-26 03:00:00"),
])
def test_the_daily_purge_runs_next_at_purge_time(now: str, purge_time: str,
                                                 expected: str) -> None:
    assert next_run(at(now), purge_time, BERLIN) == at(expected)


def test_across_a_dst_change_the_wait_is_23_or_25_hours() -> None:
    assert next_run(at("2025-03-29 03:00:00"), "03:00", BERLIN) - at("2025-03-29 03:00:00") \
        == 23 * 3600
    assert next_run(at("2025-10-25 03:00:00"), "03:00", BERLIN) - at("2025-10-25 03:00:00") \
        == 25 * 3600


# --- configuration ---------------------------------------------------------------------------

def test_retention_config_has_safe_defaults_and_loads_archive_actions() -> None:
    default = config_from_dict({}).retention
    assert (default.default_keep_days, default.purge_time, default.min_free_mb,
            default.delete_oldest_when_full, default.archive_actions) == (0, "03:00", 500,
                                                                          False, ())
    config = config_from_dict({"retention": {
        "default_keep_days": 90, "purge_time": "01:30", "min_free_mb": 0,
        "archive_actions": [{"id": 7, "keep_days": 7, "name": "week"},
                            {"id": 8, "purge": True}, {"id": 9}]}})
    policy = RetentionPolicy.from_config(config.retention)
    assert policy.archive_keep_days == {7: 7, 8: 0, 9: None}
    assert policy.default_keep_days == 90
    assert RetentionPolicy.from_config(default).default_keep_days is None  # 0 = forever


def test_retention_config_mistakes_name_their_key() -> None:
    with pytest.raises(ConfigError) as err:
        config_from_dict({"retention": {
            "purge_time": "3 am", "min_free_mb": -1, "delete_oldest": True,
            "archive_actions": [{"id": 7, "keep_days": 7, "purge": True},
                                {"id": 7, "keep_days": 1}, {"keep_days": 2},
                                {"id": 0, "keep_days": 2}]}})
    problems = err.value.problems
    assert "retention.delete_oldest: unknown key (did you mean 'delete_oldest_when_full'?)" \
        in problems
    assert any(p.startswith("retention.min_free_mb: -1 is out of range") for p in problems)
    assert "retention.archive_actions[2].id: required" in problems
    assert any(p.startswith("retention.archive_actions[3].id: 0 is out of range")
               for p in problems)
    # Checks across keys run once every key of the section has loaded.
    with pytest.raises(ConfigError) as err:
        config_from_dict({"retention": {
            "purge_time": "3 am",
            "archive_actions": [{"id": 7, "keep_days": 7, "purge": True},
                                {"id": 7, "keep_days": 1}]}})
    assert err.value.problems == [
        "retention.purge_time: '3 am' is not a time (HH:MM, 00:00 to 23:59)",
        "retention.archive_actions[0].purge: give keep_days or purge = true, not both",
        "retention.archive_actions[1].id: 7 is already the id of retention.archive_actions[0]",
    ]


def test_printed_retention_config_reads_back(tmp_path: Path) -> None:
    config = config_from_dict({"retention": {
        "default_keep_days": 30, "delete_oldest_when_full": True,
        "archive_actions": [{"id": 7, "keep_days": 7, "name": 'the "week"'},
                            {"id": 8, "purge": True}]}})
    printed = tmp_path / "printed.toml"
    printed.write_text(to_toml(config))
    assert load_config(printed).retention == config.retention
