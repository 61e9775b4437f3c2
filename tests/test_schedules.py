"""The [recording] configuration: good files load, every mistake names its key, and the
documented example decides the way docs/scheduling.md says it does."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from recorder.config.loader import config_from_dict, load_config
from recorder.config.printing import to_toml
from recorder.config.recording import BlockedFilterConfig, RecordingConfig, ScheduleConfig
from recorder.errors import ConfigError
from recorder.resultcodes import ResultCode
from recorder.rules.decision import ActiveRecording, CallFacts, Policy, decide
from recorder.rules.schedules import CallMatch, Window, sampled_in

REPO = Path(__file__).resolve().parent.parent
SYNTH = {"driver": "synthetic", "devices": ["1001", "1002"]}


def test_a_good_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "recorder.toml"
    path.write_text("""
[recording]
default_priority = 40
max_concurrent = 8
max_record_time_seconds = 3600
max_record_silence_seconds = 60

[[recording.blocked]]
name = "toll-free"
ani = ["800*"]
directions = ["i", "?"]

[[recording.schedules]]
name = "office"
days = ["Mon", "tuesday", "FRI"]
start = "08:00"
end = "18:00"
groups = ["sales*"]
priority = 70
keep_days = 90
archive_action = 2
max_record_time_seconds = 600
max_record_silence_seconds = 0
sample_percent = 12.5

[[recording.schedules]]
name = "rest"
record = false
""")
    recording = load_config(path).recording
    assert (recording.default_priority, recording.max_concurrent,
            recording.max_record_time_seconds, recording.max_record_silence_seconds) == (
        40, 8, 3600, 60)
    (blocked,) = recording.blocked
    assert (blocked.name, blocked.ani, blocked.directions) == ("toll-free", ("800*",),
                                                                ("I", "?"))
    office, rest = recording.schedules
    # Day names and directions are stored in one spelling, whatever the file used.
    assert office.days == ("mon", "tue", "fri")
    assert (office.start, office.end, office.groups, office.sample_percent) == (
        "08:00", "18:00", ("sales*",), 12.5)
    assert (office.priority, office.keep_days, office.archive_action,
            office.max_record_time_seconds, office.max_record_silence_seconds) == (
        70, 90, 2, 600, 0)
    assert (rest.name, rest.record, rest.priority, rest.keep_days) == ("rest", False, -1, -1)


def test_defaults_record_every_call_on_one_recording_per_channel() -> None:
    recording = config_from_dict({}).recording
    assert recording == RecordingConfig()
    assert (recording.default_priority, recording.max_concurrent, recording.schedules,
            recording.blocked) == (50, 0, (), ())
    rules = Policy.from_config(recording, channels=2)
    assert rules.capacity == 2
    call = CallFacts("1001", 1, {}, call_key="x")
    running = [ActiveRecording("a", 50, 1.0)]
    assert decide(call, rules, running).record
    assert not decide(call, rules, [*running, ActiveRecording("b", 50, 2.0)]).record


def S(**keys: Any) -> dict[str, Any]:
    """A [recording] table with one schedule holding ``keys`` (named "s" unless given)."""
    return {"schedules": [{"name": "s", **keys}]}


BAD: list[tuple[str, dict[str, Any], str]] = [
    ("hour 25", S(start="25:00", end="26:00"),
     "recording.schedules[0].start: '25:00' is not a time (HH:MM, 00:00 to 23:59)"),
    ("one-digit hour", S(start="8:00", end="18:00"),
     "recording.schedules[0].start: '8:00' is not a time (HH:MM, 00:00 to 23:59)"),
    ("minute 60", S(start="08:00", end="17:60"),
     "recording.schedules[0].end: '17:60' is not a time (HH:MM, 00:00 to 23:59)"),
    ("24:00", S(start="08:00", end="24:00"),
     "recording.schedules[0].end: '24:00' is not a time (HH:MM, 00:00 to 23:59)"),
    ("start without end", S(start="08:00"),
     "recording.schedules[0].end: required with start (leave both empty for all day)"),
    ("end without start", S(end="08:00"),
     "recording.schedules[0].start: required with end (leave both empty for all day)"),
    ("empty window", S(start="08:00", end="08:00"),
     "recording.schedules[0].end: equals start (leave both empty for all day)"),
    ("unknown day", S(days=["mon", "funday"]),
     "recording.schedules[0].days[1]: 'funday' is not a day "
     "(mon, tue, wed, thu, fri, sat, sun)"),
    ("day not a string", S(days=[1]),
     "recording.schedules[0].days[0]: expected a string, got an integer 1"),
    ("bad direction", S(directions=["inbound"]),
     "recording.schedules[0].directions[0]: 'inbound' is not a call direction (I, O, ?)"),
    ("sample over 100", S(sample_percent=150),
     "recording.schedules[0].sample_percent: 150.0 is out of range [0.0, 100.0]"),
    ("negative sample", S(sample_percent=-1),
     "recording.schedules[0].sample_percent: -1.0 is out of range [0.0, 100.0]"),
    ("schedule priority 101", S(priority=101),
     "recording.schedules[0].priority: 101 is out of range [-1, 100]"),
    ("keep_days below -1", S(keep_days=-2),
     "recording.schedules[0].keep_days: -2 is out of range [-1, 2147483647]"),
    ("record not a boolean", S(record="no"),
     "recording.schedules[0].record: expected true or false, got a string 'no'"),
    ("ani as a number", S(ani=[614]),
     "recording.schedules[0].ani[0]: expected a string, got an integer 614"),
    ("ani not an array", S(ani="614*"),
     "recording.schedules[0].ani: expected an array, got a string"),
    ("typo in a schedule key", S(dnsi=["1"]),
     "recording.schedules[0].dnsi: unknown key (did you mean 'dnis'?)"),
    ("schedule without a name", {"schedules": [{"ani": ["1"]}]},
     "recording.schedules[0].name: required"),
    ("blank name", S(name="  "), "recording.schedules[0].name: must not be blank"),
    ("duplicate schedule names", {"schedules": [
        {"name": "day"}, {"name": "night"}, {"name": "Day"}]},
     "recording.schedules[2].name: 'Day' is already the name of recording.schedules[0]"),
    ("duplicate filter names", {"blocked": [
        {"name": "x", "ani": ["1"]}, {"name": "x", "dnis": ["2"]}]},
     "recording.blocked[1].name: 'x' is already the name of recording.blocked[0]"),
    ("a filter naming nothing", {"blocked": [{"name": "oops"}]},
     "recording.blocked[0]: gives none of devices, groups, gates, ani, dnis, agents, "
     "directions, so it would block every call"),
    ("filter direction", {"blocked": [{"name": "x", "directions": ["X"]}]},
     "recording.blocked[0].directions[0]: 'X' is not a call direction (I, O, ?)"),
    ("filter without a name", {"blocked": [{"ani": ["1"]}]},
     "recording.blocked[0].name: required"),
    ("schedule key on a filter", {"blocked": [{"name": "x", "ani": ["1"], "days": ["mon"]}]},
     "recording.blocked[0].days: unknown key"),
    ("schedules as a table", {"schedules": {"name": "s"}},
     "recording.schedules: expected an array, got a table"),
    ("default priority", {"default_priority": 101},
     "recording.default_priority: 101 is out of range [0, 100]"),
    ("negative capacity", {"max_concurrent": -1},
     "recording.max_concurrent: -1 is out of range [0, 100000]"),
    ("negative max time", {"max_record_time_seconds": -1},
     "recording.max_record_time_seconds: -1 is out of range [0, 2147483647]"),
    ("typo in the section", {"max_concurent": 3},
     "recording.max_concurent: unknown key (did you mean 'max_concurrent'?)"),
]


@pytest.mark.parametrize(("recording", "message"), [row[1:] for row in BAD],
                         ids=[row[0] for row in BAD])
def test_a_mistake_names_its_key(recording: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        config_from_dict({"recording": recording})
    assert message in err.value.problems


def test_every_mistake_in_every_rule_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as err:
        config_from_dict({"recording": {"schedules": [
            {"name": "a", "start": "7", "end": "9:00", "days": ["xx"]},
            {"name": "b", "directions": ["Q"]},
        ], "blocked": [{"name": "c"}]}})
    assert sorted(p.split(":")[0] for p in err.value.problems) == [
        "recording.blocked[0]",
        "recording.schedules[0].days[0]",
        "recording.schedules[0].end",
        "recording.schedules[0].start",
        "recording.schedules[1].directions[0]",
    ]


def test_printed_config_with_rules_reads_back_to_the_same_config(tmp_path: Path) -> None:
    config = config_from_dict({"boards": [SYNTH], "recording": {
        "max_concurrent": 3,
        "blocked": [{"name": 'say "no"', "ani": ["800*", ""]}],
        "schedules": [{"name": "office", "days": ["mon"], "start": "08:00", "end": "18:00",
                       "sample_percent": 12.5, "priority": 70},
                      {"name": "rest", "record": False}]}})
    printed = tmp_path / "printed.toml"
    printed.write_text(to_toml(config))
    assert load_config(printed) == config


def test_a_rule_built_by_hand_is_checked_too() -> None:
    # Policy.from_config on a config that skipped the loader still refuses a bad window.
    bad = RecordingConfig(schedules=(ScheduleConfig(name="x", start="8", end="09:00"),))
    with pytest.raises(ValueError, match="'8' is not a time"):
        Policy.from_config(bad, channels=1)
    odd = RecordingConfig(blocked=(BlockedFilterConfig(name="x", directions=("sideways",)),))
    with pytest.raises(ValueError, match="'sideways' is not a call direction"):
        Policy.from_config(odd, channels=1)
    # Half a window, either half, and an empty one (at any time of day, not only midnight).
    for start, end, message in (("", "06:00", "go together"), ("22:00", "", "go together"),
                                ("09:00", "09:00", "are equal")):
        half = RecordingConfig(schedules=(ScheduleConfig(name="x", start=start, end=end),))
        with pytest.raises(ValueError, match=message):
            Policy.from_config(half, channels=1)


@pytest.mark.parametrize(("percent", "expected"), [(0, 0), (0.01, 20), (100, 200_000)])
def test_sampling_edges(percent: float, expected: int) -> None:
    # 10,000 buckets: 0.01 % is one bucket, so the smallest share still records some calls.
    recorded = sum(sampled_in(f"GCID-{i}", percent) for i in range(200_000))
    assert recorded == pytest.approx(expected, rel=0.35, abs=0)


def _bucket(key: str) -> int:
    # A second copy of the rule, on purpose: the first 8 bytes of the SHA-256 of the call's
    # GLOBALCALLID, big-endian, modulo 10,000.
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % 10_000


def test_which_calls_are_sampled_is_the_same_on_every_recorder() -> None:
    # Recorders of different versions at one site must agree on every call: p % records the
    # buckets below 100 p, here at the edge of each share (the last bucket in, the first out).
    keys: dict[int, str] = {}
    for i in range(100_000):
        keys.setdefault(_bucket(f"GCID-{i}"), f"GCID-{i}")
    # 0.57: 0.57 * 10,000 is 5699.999... in floating point; the share must still round to 57.
    for percent in (0.01, 0.57, 12.5, 50, 99.5, 99.99):
        edge = round(percent * 100)
        assert sampled_in(keys[edge - 1], percent), percent
        assert not sampled_in(keys[edge], percent), percent
    for i in range(2000):
        key = f"GCID-{i}"
        assert sampled_in(key, 50) is (_bucket(key) < 5000), key
    assert all(sampled_in(key, 100) for key in keys.values())


def test_ani_and_dnis_match_case_sensitively_names_do_not() -> None:
    # As docs/scheduling.md says: identifiers and numbers; names (groups, gates, agents) do not.
    for field, meta in (("ani", {"ANI": "ANONYMOUS"}), ("dnis", {"DNIS": "ANONYMOUS"})):
        match = CallMatch.build(**{field: ["Anonymous"]})
        assert not match.matches("1001", meta, "")
        assert match.matches("1001", {key: "Anonymous" for key in meta}, "")
    assert CallMatch.build(groups=["Sales"]).matches("1001", {"GROUP": "SALES"}, "")


@pytest.mark.parametrize(("days", "start", "end", "when", "inside"), [
    ((), "", "", datetime(2026, 11, 29, 23, 59), True),
    (("sun",), "23:00", "01:00", datetime(2026, 11, 30, 0, 59), True),  # Sunday night, Monday
    (("sun",), "23:00", "01:00", datetime(2026, 11, 30, 1, 0), False),
    (("mon",), "23:00", "01:00", datetime(2026, 11, 30, 0, 30), False),  # that is Sunday's
    (("mon",), "00:00", "01:00", datetime(2026, 11, 30, 0, 0, 59), True),
    # Minutes count, not only hours: the window ends at 17:30 sharp.
    ((), "09:00", "17:30", datetime(2026, 11, 30, 17, 29), True),
    ((), "09:00", "17:30", datetime(2026, 11, 30, 17, 30), False),
    ((), "09:00", "17:30", datetime(2026, 11, 30, 18, 0), False),
])
def test_window(days: tuple[str, ...], start: str, end: str, when: datetime,
                inside: bool) -> None:
    assert Window.build(days, start, end).contains(when) is inside


def _documented_example() -> str:
    text = (REPO / "docs" / "scheduling.md").read_text(encoding="utf-8")
    found = re.search(r"```toml\n(.*?)```", text, re.DOTALL)
    assert found is not None
    return found[1]


def test_the_documented_example_decides_as_documented(tmp_path: Path) -> None:
    path = tmp_path / "recorder.toml"
    path.write_text(_documented_example())
    rules = Policy.from_config(load_config(path).recording, channels=4)
    assert rules.capacity == 30

    def decision(ani: str, when: datetime, key: str = "GCID-1", **meta: str) -> Any:
        call = CallFacts("1001", 1, {"ANI": ani, "CALLDIRECTION": "I", **meta}, at=when,
                         call_key=key)
        return decide(call, rules, [])

    tuesday_10 = datetime(2026, 11, 24, 10, 0)
    office = decision("6145551212", tuesday_10)
    assert (office.record, office.schedule, office.priority, office.max_record_time) == (
        True, "office", 50, 7200)
    assert decision("8005551212", tuesday_10).detail == "blocked by filter 'toll-free'"
    assert decision("6145551212", tuesday_10, GROUP="hr").detail == "blocked by filter 'hr'"
    vip = decision("6145551212", datetime(2026, 11, 28, 12, 0), GATE="vip-gold")
    assert (vip.record, vip.schedule, vip.priority, vip.keep_days) == (True, "vip", 90, 365)
    saturday_3 = [decision("6145551212", datetime(2026, 11, 28, 3, 0), key=f"GCID-{i}")
                  for i in range(400)]
    assert {d.schedule for d in saturday_3} == {"night-qa"}
    assert 60 <= sum(d.record for d in saturday_3) <= 140
    weekend = decision("6145551212", datetime(2026, 11, 28, 12, 0))
    assert (weekend.record, weekend.reason, weekend.schedule) == (
        False, ResultCode.API_DID_NOT_MATCH_A_SCHEDULE, "weekend")


def test_the_example_config_file_loads() -> None:
    config = load_config(REPO / "examples" / "recorder.toml")
    assert config.recording == RecordingConfig()
