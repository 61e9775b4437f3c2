"""The recording decision, as tables: each rule, the order between them, and the call's terms.

Policies are built the way the recorder builds them: a ``[recording]`` table through the config
loader, then ``Policy.from_config``.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime
from typing import Any

import pytest

from recorder.calls.requests import CallStart, DeviceQuery
from recorder.config.loader import config_from_dict
from recorder.resultcodes import ResultCode
from recorder.rules.decision import ActiveRecording, CallFacts, Decision, Policy, decide

R = ResultCode
MON_10 = datetime(2026, 11, 23, 10, 0)  # a Monday


def policy(channels: int = 4, **recording: Any) -> Policy:
    config = config_from_dict({"recording": recording})
    return Policy.from_config(config.recording, channels=channels)


def facts(**overrides: Any) -> CallFacts:
    values: dict[str, Any] = {"device_id": "1001", "channel_id": 1, "meta": {},
                              "at": MON_10, "call_key": "call-1"}
    values.update(overrides)
    return CallFacts(**values)


def active(*priorities: int) -> list[ActiveRecording]:
    """Recordings in progress with these priorities, started at 100, 200, ... seconds."""
    return [ActiveRecording(f"rec-{i}", p, 100.0 * (i + 1)) for i, p in enumerate(priorities)]


def at(day: int, clock: str) -> datetime:
    """A time on the week of MON_10: day 0 is Monday."""
    hour, minute = clock.split(":")
    return datetime(2026, 11, 23 + day, int(hour), int(minute))


BLOCK_800 = {"name": "toll-free", "ani": ["800*"]}
RECORD_ALL = {"name": "all"}

# (id, [recording] table, call facts, active recordings, disk_ok, (reason, detail))
ORDER: list[tuple[str, dict[str, Any], dict[str, Any], list[ActiveRecording], bool,
                  tuple[ResultCode, str]]] = [
    ("untapped beats everything",
     {"max_concurrent": 1, "blocked": [BLOCK_800]},
     {"device_id": "9999", "channel_id": None, "meta": {"ANI": "8005551212"}}, active(90), False,
     (R.API_DEVICE_INVALID, "device 9999 is not tapped by any channel")),
    ("disk beats blocked filters",
     {"blocked": [BLOCK_800]}, {"meta": {"ANI": "8005551212"}}, [], False,
     (R.API_ERROR_OUT_OF_DISK_SPACE, "free disk space is below the floor")),
    ("disk refuses even with room",
     {}, {}, [], False, (R.API_ERROR_OUT_OF_DISK_SPACE, "below the floor")),
    ("blocked beats a schedule that records the call",
     {"blocked": [BLOCK_800], "schedules": [{"name": "everything", "ani": ["*"]}]},
     {"meta": {"ANI": "8005551212"}}, [], True,
     (R.API_ERROR_BLOCKED_RECORDING_FILTER, "blocked by filter 'toll-free'")),
    ("blocked beats capacity",
     {"max_concurrent": 1, "blocked": [BLOCK_800]}, {"meta": {"ANI": "8005551212"}},
     active(90), True, (R.API_ERROR_BLOCKED_RECORDING_FILTER, "toll-free")),
    ("schedule beats capacity",
     {"max_concurrent": 1, "schedules": [{"name": "ohio", "ani": ["614*"]}]},
     {"meta": {"ANI": "2125551212"}}, active(90), True,
     (R.API_DID_NOT_MATCH_A_SCHEDULE, "no schedule is about this call (1 configured)")),
    ("an unblocked call under a schedule is recorded",
     {"blocked": [BLOCK_800], "schedules": [{"name": "ohio", "ani": ["614*"]}]},
     {"meta": {"ANI": "6145551212"}}, [], True,
     (R.API_RECORDING_STARTED, "device 1001 is recorded on channel 1 by schedule 'ohio'")),
    ("no schedules: every call is recorded",
     {}, {"meta": {"ANI": "2125551212"}}, [], True,
     (R.API_RECORDING_STARTED, "device 1001 is recorded on channel 1")),
]


@pytest.mark.parametrize(("recording", "call", "running", "disk_ok", "expected"),
                         [row[1:] for row in ORDER], ids=[row[0] for row in ORDER])
def test_the_first_rule_that_refuses_decides(recording: dict[str, Any], call: dict[str, Any],
                                             running: list[ActiveRecording], disk_ok: bool,
                                             expected: tuple[ResultCode, str]) -> None:
    reason, detail = expected
    decision = decide(facts(**call), policy(**recording), running, disk_ok=disk_ok)
    assert (decision.record, decision.reason) == (reason is R.API_RECORDING_STARTED, reason)
    assert detail in decision.detail
    assert decision.preempt is None


# (id, schedules, call facts, schedule that records it, or None: not recorded + detail)
SCHEDULES: list[tuple[str, list[dict[str, Any]], dict[str, Any], str | None, str]] = [
    ("ani prefix", [{"name": "ohio", "ani": ["614*"]}],
     {"meta": {"ANI": "6145551212"}}, "ohio", ""),
    ("ani prefix, other number", [{"name": "ohio", "ani": ["614*"]}],
     {"meta": {"ANI": "7145551212"}}, None, "no schedule is about this call"),
    ("a pattern matches the whole value", [{"name": "ohio", "ani": ["614"]}],
     {"meta": {"ANI": "6145551212"}}, None, "no schedule"),
    ("no ani sent", [{"name": "ohio", "ani": ["614*"]}], {}, None, "no schedule"),
    ("any of the patterns", [{"name": "two", "dnis": ["100?", "2[0-4]*"]}],
     {"meta": {"DNIS": "2301"}}, "two", ""),
    ("character set excludes", [{"name": "two", "dnis": ["2[0-4]*"]}],
     {"meta": {"DNIS": "2501"}}, None, "no schedule"),
    ("groups ignore case", [{"name": "sales", "groups": ["sales*"]}],
     {"meta": {"GROUP": "Sales East"}}, "sales", ""),
    ("gates ignore case", [{"name": "g", "gates": ["VIP"]}],
     {"meta": {"GATE": "vip"}}, "g", ""),
    ("agents ignore case", [{"name": "new", "agents": ["j*"]}], {"agent": "John"}, "new", ""),
    ("unknown agent", [{"name": "new", "agents": ["j*"]}], {"agent": ""}, None, "no schedule"),
    ("devices keep case", [{"name": "sip", "devices": ["SIP/*"]}],
     {"device_id": "sip/alice"}, None, "no schedule"),
    ("devices", [{"name": "first", "devices": ["100[12]"]}], {"device_id": "1002"}, "first", ""),
    ("direction inbound", [{"name": "in", "directions": ["I"]}],
     {"meta": {"CALLDIRECTION": "I"}}, "in", ""),
    ("direction outbound refused", [{"name": "in", "directions": ["I"]}],
     {"meta": {"CALLDIRECTION": "O"}}, None, "no schedule"),
    ("direction not sent is ?", [{"name": "unknown", "directions": ["?"]}], {}, "unknown", ""),
    ("direction sent as ?", [{"name": "unknown", "directions": ["?"]}],
     {"meta": {"CALLDIRECTION": "?"}}, "unknown", ""),
    ("every field of a rule must match",
     [{"name": "both", "ani": ["614*"], "directions": ["O"]}],
     {"meta": {"ANI": "6145551212", "CALLDIRECTION": "I"}}, None, "no schedule"),
    ("first rule in config order decides",
     [{"name": "skip-ohio", "record": False, "ani": ["614*"]}, {"name": "all"}],
     {"meta": {"ANI": "6145551212"}}, None, "schedule 'skip-ohio' says do not record"),
    ("a later rule catches the rest",
     [{"name": "skip-ohio", "record": False, "ani": ["614*"]}, {"name": "all"}],
     {"meta": {"ANI": "2125551212"}}, "all", ""),
    ("an earlier catch-all shadows a later refusal",
     [{"name": "all"}, {"name": "skip-ohio", "record": False, "ani": ["614*"]}],
     {"meta": {"ANI": "6145551212"}}, "all", ""),
    ("sample 0 records nothing", [{"name": "none", "sample_percent": 0}], {}, None,
     "sampled out by schedule 'none' (0% of its calls are recorded)"),
]


@pytest.mark.parametrize(("schedules", "call", "recorded_by", "detail"),
                         [row[1:] for row in SCHEDULES], ids=[row[0] for row in SCHEDULES])
def test_schedules(schedules: list[dict[str, Any]], call: dict[str, Any],
                   recorded_by: str | None, detail: str) -> None:
    decision = decide(facts(**call), policy(schedules=schedules), [])
    if recorded_by is None:
        assert (decision.record, decision.reason) == (False, R.API_DID_NOT_MATCH_A_SCHEDULE)
        assert detail in decision.detail
    else:
        assert (decision.record, decision.reason) == (True, R.API_RECORDING_STARTED)
        assert decision.schedule == recorded_by
        assert f"by schedule {recorded_by!r}" in decision.detail


OFFICE = {"name": "office", "days": ["mon", "tue", "wed", "thu", "fri"],
          "start": "08:00", "end": "18:00"}
FRIDAY_NIGHT = {"name": "friday-night", "days": ["fri"], "start": "22:00", "end": "06:00"}
NIGHTS = {"name": "nights", "start": "22:00", "end": "06:00"}
WEEKEND = {"name": "weekend", "days": ["Saturday", "SUN"]}

# (id, schedule, when the call starts, recorded)
WINDOWS: list[tuple[str, dict[str, Any], datetime, bool]] = [
    ("office opens at 08:00", OFFICE, at(0, "08:00"), True),
    ("before the office opens", OFFICE, at(0, "07:59"), False),
    ("last minute of the office", OFFICE, at(4, "17:59"), True),
    ("end is excluded", OFFICE, at(0, "18:00"), False),
    ("office closed on saturday", OFFICE, at(5, "10:00"), False),
    ("friday night starts friday", FRIDAY_NIGHT, at(4, "23:00"), True),
    ("friday night goes on into saturday", FRIDAY_NIGHT, at(5, "03:00"), True),
    ("friday early morning belongs to thursday night", FRIDAY_NIGHT, at(4, "03:00"), False),
    ("friday night ends saturday 06:00", FRIDAY_NIGHT, at(5, "06:00"), False),
    ("saturday night is not friday night", FRIDAY_NIGHT, at(5, "22:30"), False),
    ("sunday night into monday", {**FRIDAY_NIGHT, "days": ["sun"]}, at(0, "00:30"), True),
    ("every night, before midnight", NIGHTS, at(1, "22:00"), True),
    ("every night, after midnight", NIGHTS, at(1, "05:59"), True),
    ("every night, not at noon", NIGHTS, at(1, "12:00"), False),
    ("until midnight", {"name": "evening", "start": "18:00", "end": "00:00"}, at(2, "23:59"),
     True),
    ("until midnight, not after", {"name": "evening", "start": "18:00", "end": "00:00"},
     at(3, "00:00"), False),
    ("all day on the days given", WEEKEND, at(6, "00:00"), True),
    ("all day, the day before", WEEKEND, at(4, "23:59"), False),
]


@pytest.mark.parametrize(("schedule", "when", "recorded"), [row[1:] for row in WINDOWS],
                         ids=[row[0] for row in WINDOWS])
def test_day_and_time_windows(schedule: dict[str, Any], when: datetime, recorded: bool) -> None:
    decision = decide(facts(at=when), policy(schedules=[schedule]), [])
    assert decision.record is recorded
    assert decision.reason is (R.API_RECORDING_STARTED if recorded
                               else R.API_DID_NOT_MATCH_A_SCHEDULE)


# (id, blocked filters, call facts, blocked by)
BLOCKED: list[tuple[str, list[dict[str, Any]], dict[str, Any], str | None]] = [
    ("ani list", [BLOCK_800], {"meta": {"ANI": "8005551212"}}, "toll-free"),
    ("another ani", [BLOCK_800], {"meta": {"ANI": "6145551212"}}, None),
    ("no caller id", [{"name": "anonymous", "ani": [""]}], {}, "anonymous"),
    ("caller id sent", [{"name": "anonymous", "ani": [""]}],
     {"meta": {"ANI": "6145551212"}}, None),
    ("all fields of one filter must match",
     [{"name": "outbound-800", "ani": ["800*"], "directions": ["O"]}],
     {"meta": {"ANI": "8005551212", "CALLDIRECTION": "I"}}, None),
    ("all fields of one filter match",
     [{"name": "outbound-800", "ani": ["800*"], "directions": ["O"]}],
     {"meta": {"ANI": "8005551212", "CALLDIRECTION": "O"}}, "outbound-800"),
    ("any filter blocks",
     [BLOCK_800, {"name": "hr", "groups": ["HR"]}], {"meta": {"GROUP": "hr"}}, "hr"),
    ("agents", [{"name": "ceo", "agents": ["boss"]}], {"agent": "Boss"}, "ceo"),
    ("dnis and devices", [{"name": "lab", "devices": ["9*"], "dnis": ["555"]}],
     {"device_id": "9001", "meta": {"DNIS": "555"}}, "lab"),
]


@pytest.mark.parametrize(("blocked", "call", "blocked_by"), [row[1:] for row in BLOCKED],
                         ids=[row[0] for row in BLOCKED])
def test_blocked_filters(blocked: list[dict[str, Any]], call: dict[str, Any],
                         blocked_by: str | None) -> None:
    decision = decide(facts(**call), policy(blocked=blocked), [])
    if blocked_by is None:
        assert (decision.record, decision.reason) == (True, R.API_RECORDING_STARTED)
    else:
        assert (decision.record, decision.reason) == (
            False, R.API_ERROR_BLOCKED_RECORDING_FILTER)
        assert decision.detail == f"blocked by filter {blocked_by!r}"


SCHEDULE_TERMS = {"name": "terms", "priority": 70, "max_record_time_seconds": 600,
                  "max_record_silence_seconds": 30, "keep_days": 90, "archive_action": 2}
POLICY_TERMS = {"default_priority": 40, "max_record_time_seconds": 3600,
                "max_record_silence_seconds": 120}

# (id, [recording] table, request's values, expected Decision fields)
TERMS: list[tuple[str, dict[str, Any], dict[str, Any], dict[str, Any]]] = [
    ("request wins over schedule", {**POLICY_TERMS, "schedules": [SCHEDULE_TERMS]},
     {"priority": 90, "max_record_time": 30, "max_record_silence": 5, "keep_days": 7,
      "archive_action": 1},
     {"priority": 90, "max_record_time": 30, "max_record_silence": 5, "keep_days": 7,
      "archive_action": 1, "schedule": "terms"}),
    ("schedule wins over policy", {**POLICY_TERMS, "schedules": [SCHEDULE_TERMS]}, {},
     {"priority": 70, "max_record_time": 600, "max_record_silence": 30, "keep_days": 90,
      "archive_action": 2, "schedule": "terms"}),
    ("policy when the schedule sets nothing", {**POLICY_TERMS, "schedules": [RECORD_ALL]}, {},
     {"priority": 40, "max_record_time": 3600, "max_record_silence": 120, "keep_days": None,
      "archive_action": None, "schedule": "all"}),
    ("policy when there are no schedules", POLICY_TERMS, {"priority": 0},
     {"priority": 0, "max_record_time": 3600, "max_record_silence": 120, "schedule": ""}),
    ("built-in defaults", {}, {},
     {"priority": 50, "max_record_time": 0, "max_record_silence": 0, "keep_days": None,
      "archive_action": None}),
    ("a request's 0 means no limit, not 'not sent'",
     {**POLICY_TERMS, "schedules": [SCHEDULE_TERMS]}, {"max_record_time": 0,
                                                       "max_record_silence": 0},
     {"max_record_time": 0, "max_record_silence": 0}),
    ("a schedule's 0 means no limit", {**POLICY_TERMS, "schedules": [
        {"name": "long", "max_record_time_seconds": 0}]}, {}, {"max_record_time": 0}),
    ("out-of-range request values are clamped", {}, {"priority": 250, "max_record_time": -5},
     {"priority": 100, "max_record_time": 0}),
    ("negative request values are clamped to 0", {},
     {"priority": -5, "max_record_silence": -5}, {"priority": 0, "max_record_silence": 0}),
]


@pytest.mark.parametrize(("recording", "request_values", "expected"),
                         [row[1:] for row in TERMS], ids=[row[0] for row in TERMS])
def test_terms_flow_from_request_then_schedule_then_policy(
        recording: dict[str, Any], request_values: dict[str, Any],
        expected: dict[str, Any]) -> None:
    decision = decide(facts(**request_values), policy(**recording), [])
    assert decision.record
    assert {name: getattr(decision, name) for name in expected} == expected


def test_a_refused_call_still_shows_its_terms() -> None:
    decision = decide(facts(channel_id=None, priority=80), policy(**POLICY_TERMS), [])
    assert (decision.reason, decision.priority, decision.max_record_time) == (
        R.API_DEVICE_INVALID, 80, 3600)


# (id, max_concurrent, call's priority, active priorities, reason, preempted key)
CAPACITY: list[tuple[str, int, int | None, list[ActiveRecording], ResultCode, str | None]] = [
    ("room left", 2, None, active(90), R.API_RECORDING_STARTED, None),
    ("full, nothing lower", 2, None, active(90, 50), R.API_ERROR_NO_FREE_CHANNELS, None),
    ("full, the lowest is preempted", 3, 50, active(30, 10, 20), R.API_RECORDING_STARTED,
     "rec-1"),
    ("an equal priority is never preempted", 2, 50, active(50, 50),
     R.API_ERROR_NO_FREE_CHANNELS, None),
    ("priority 90 preempts priority 10", 1, 90, active(10), R.API_RECORDING_STARTED, "rec-0"),
    ("priority 0 preempts nothing", 1, 0, active(0), R.API_ERROR_NO_FREE_CHANNELS, None),
    ("among equals the newest is preempted", 3, 60, active(10, 10, 40),
     R.API_RECORDING_STARTED, "rec-1"),
    ("0 means one per channel: room", 0, None, active(50, 50, 50),
     R.API_RECORDING_STARTED, None),
    ("0 means one per channel: full", 0, None, active(50, 50, 50, 50),
     R.API_ERROR_NO_FREE_CHANNELS, None),
    ("above the limit (lowered by a reload) a swap is still allowed", 1, 90, active(10, 20),
     R.API_RECORDING_STARTED, "rec-0"),
]


@pytest.mark.parametrize(("max_concurrent", "priority", "running", "reason", "preempt"),
                         [row[1:] for row in CAPACITY], ids=[row[0] for row in CAPACITY])
def test_capacity_and_preemption(max_concurrent: int, priority: int | None,
                                 running: list[ActiveRecording], reason: ResultCode,
                                 preempt: str | None) -> None:
    decision = decide(facts(priority=priority), policy(channels=4, max_concurrent=max_concurrent),
                      running)
    assert (decision.reason, decision.preempt) == (reason, preempt)
    assert decision.record is (reason is R.API_RECORDING_STARTED)
    if preempt is not None:
        victim = next(r for r in running if r.key == preempt)
        assert f"preempting {preempt} (priority {victim.priority} <" in decision.detail


def test_the_schedules_priority_is_what_preemption_compares() -> None:
    rules = policy(max_concurrent=1, default_priority=50, schedules=[
        {"name": "vip", "groups": ["vip"], "priority": 80}, RECORD_ALL])
    running = active(60)
    vip = decide(facts(meta={"GROUP": "VIP"}), rules, running)
    other = decide(facts(meta={"GROUP": "retail"}), rules, running)
    assert (vip.record, vip.preempt, vip.priority) == (True, "rec-0", 80)
    assert (other.reason, other.preempt, other.priority) == (
        R.API_ERROR_NO_FREE_CHANNELS, None, 50)
    assert "1 recording(s) in progress at the limit of 1, none below priority 50" in other.detail


def test_sampling_is_deterministic_per_call() -> None:
    rules = policy(schedules=[{"name": "qa", "sample_percent": 50}])
    for key in ("a", "b", "c", "GCID-0001", "GCID-0002"):
        first = decide(facts(call_key=key), rules, [])
        assert all(decide(facts(call_key=key), rules, []) == first for _ in range(3))


def test_sampling_records_roughly_the_percentage() -> None:
    rules = policy(schedules=[{"name": "qa", "sample_percent": 30}])
    decisions = [decide(facts(call_key=f"GCID-{i}"), rules, []) for i in range(10_000)]
    recorded = sum(d.record for d in decisions)
    assert 2800 <= recorded <= 3200
    refused = next(d for d in decisions if not d.record)
    assert refused.reason is R.API_DID_NOT_MATCH_A_SCHEDULE
    assert refused.detail == "sampled out by schedule 'qa' (30% of its calls are recorded)"
    assert refused.schedule == "qa"


def test_a_call_is_sampled_the_same_way_after_a_restart() -> None:
    # Python salts hash() per process; a call's sampling must not change with it.
    code = ("from recorder.rules.schedules import sample_bucket; "
            "print([sample_bucket(f'GCID-{i}') for i in range(20)])")
    runs = {subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                           text=True, env={"PYTHONHASHSEED": seed}).stdout
            for seed in ("1", "2")}
    assert len(runs) == 1


def test_sampling_without_a_call_key_still_differs_per_call() -> None:
    rules = policy(schedules=[{"name": "qa", "sample_percent": 50}])
    calls = [facts(call_key="", at=datetime(2026, 11, 23, 9, 0, s)) for s in range(40)]
    outcomes = {decide(call, rules, []).record for call in calls}
    assert outcomes == {True, False}


def test_facts_of_a_callstart() -> None:
    start = CallStart(device=DeviceQuery(device_id="1001"), meta={"ANI": "6145551212"},
                      priority=90, max_record_time=2, keep_days=3)
    call = CallFacts.of(start, "1001", 1, agent="jdoe", at=MON_10, call_key="GCID-7")
    decision = decide(call, policy(schedules=[{"name": "ohio", "ani": ["614*"]}]), [])
    assert (decision.record, decision.priority, decision.max_record_time,
            decision.keep_days) == (True, 90, 2, 3)
    assert (call.agent, call.call_key, call.at) == ("jdoe", "GCID-7", MON_10)


def test_a_policy_without_capacity_has_no_limit() -> None:
    # Policy() is also the scheduler's policy when it is given none: no limit of any kind.
    unlimited = decide(facts(), Policy(), active(*[50] * 1000))
    assert (unlimited.record, unlimited.preempt, unlimited.priority) == (True, None, 50)
    assert (unlimited.max_record_time, unlimited.max_record_silence) == (0, 0)


def test_a_refusal_the_scheduler_makes_itself_carries_the_default_terms() -> None:
    # recorder/calls/scheduler.py refuses a call whose start failed with
    # Decision(False, code, message): priority 50 and no limits, like a call that sent none.
    refused = Decision(False, R.API_DEVICE_INVALID, "device 1001 failed to start")
    assert (refused.priority, refused.max_record_time, refused.max_record_silence,
            refused.keep_days, refused.archive_action, refused.schedule, refused.preempt) == (
        50, 0, 0, None, None, "", None)
