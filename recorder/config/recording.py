"""The settings of [recording] (which calls are recorded) and [retention] (how long they are
kept)."""

from __future__ import annotations

from dataclasses import dataclass

from recorder.config.setting import INT32_MAX, setting

# --- [recording]: which calls are recorded (recorder.rules.decision, .schedules) --------------



@dataclass(frozen=True, kw_only=True)
class CallMatchConfig:
    """Which calls a schedule or blocked filter is about: every key given must match.

    Patterns are shell wildcards matching the whole value ("614*": starts with 614).
    """

    devices: tuple[str, ...] = setting((), "DEVICEID patterns (case-sensitive); empty = any")
    groups: tuple[str, ...] = setting((), "GROUP patterns (case-insensitive); empty = any")
    gates: tuple[str, ...] = setting((), "GATE patterns (case-insensitive); empty = any")
    ani: tuple[str, ...] = setting((), "ANI patterns (case-sensitive); \"\" = no caller ID; "
                                   "empty = any")
    dnis: tuple[str, ...] = setting((), "DNIS patterns (case-sensitive); empty = any")
    agents: tuple[str, ...] = setting(
        (), "patterns for the user name of the agent on the call (case-insensitive); empty = any")
    directions: tuple[str, ...] = setting(
        (), "CALLDIRECTION values: I, O, ? (unknown or not sent); empty = any")


@dataclass(frozen=True, kw_only=True)
class ScheduleConfig(CallMatchConfig):
    """One recording rule; the first rule (in file order) that is about a call decides."""

    name: str = setting(doc="names the rule in the log and DEVICESTATUS; unique",
                        example="office hours")
    record: bool = setting(True, "false: the calls this rule is about are not recorded")
    days: tuple[str, ...] = setting(
        (), "mon .. sun; empty = every day (a window crossing midnight belongs to the day it "
        "opens on)")
    start: str = setting("", "HH:MM the window opens; start and end empty = all day")
    end: str = setting("", "HH:MM the window closes (excluded); before start = crosses midnight")
    sample_percent: float = setting(
        100.0, "share of the rule's calls that are recorded, picked by a hash of GLOBALCALLID",
        min=0.0, max=100.0)
    priority: int = setting(
        -1, "PRIORITY of calls that send none; -1 = recording.default_priority", min=-1, max=100)
    keep_days: int = setting(-1, "KEEPDAYS of calls that send none; -1 = not set", min=-1,
                             max=INT32_MAX)
    archive_action: int = setting(-1, "ARCHIVEACTION of calls that send none; -1 = not set",
                                  min=-1, max=INT32_MAX)
    max_record_time_seconds: int = setting(
        -1, "MAXRECORDTIME of calls that send none, 0 = no limit; -1 = "
        "recording.max_record_time_seconds", min=-1, max=INT32_MAX)
    max_record_silence_seconds: int = setting(
        -1, "MAXRECORDSILENCE of calls that send none, 0 = off; -1 = "
        "recording.max_record_silence_seconds", min=-1, max=INT32_MAX)


@dataclass(frozen=True, kw_only=True)
class BlockedFilterConfig(CallMatchConfig):
    """Calls never recorded, whatever the schedules say (at least one key must be given)."""

    name: str = setting(doc="names the filter in the log and DEVICESTATUS; unique",
                        example="toll-free")


@dataclass(frozen=True, kw_only=True)
class RecordingConfig:
    default_priority: int = setting(50, "PRIORITY of a call neither its request nor its "
                                    "schedule gives one", min=0, max=100)
    max_concurrent: int = setting(
        0, "most recordings at once (licence or channel pool); 0 = one per channel",
        min=0, max=100000)
    max_record_time_seconds: int = setting(
        0, "MAXRECORDTIME of calls that send none and whose schedule sets none; 0 = no limit",
        min=0, max=INT32_MAX)
    max_record_silence_seconds: int = setting(
        0, "MAXRECORDSILENCE of calls that send none and whose schedule sets none; 0 = off",
        min=0, max=INT32_MAX)
    # The default is recorder.calls.devices.DEFAULT_MAX_TRACKED_DEVICES (not imported: config stays
    # free of the call model); tests/test_devices.py checks the two agree.
    max_tracked_devices: int = setting(
        10_000, "devices no channel taps that are remembered from their calls (DEVICESTATUS, "
        "DEVICELIST, lookups by DEVICEALIAS...); beyond it the least recently used one without "
        "an open call is forgotten", min=1, max=10_000_000)
    schedules: tuple[ScheduleConfig, ...] = setting(
        (), "recording rules, first match decides; none = record every call")
    blocked: tuple[BlockedFilterConfig, ...] = setting(
        (), "filters of calls never recorded; they win over schedules")


# --- [retention]: when recordings are purged, the free-space floor (recorder.rules.retention) -


@dataclass(frozen=True, kw_only=True)
class ArchiveActionConfig:
    """An ARCHIVEACTION id a client may send, and how long its recordings are kept."""

    id: int = setting(doc="the ARCHIVEACTION number clients send; unique", min=1,
                      max=2**63 - 1, example=1)
    name: str = setting("", "what the site calls it (log and documentation only)")
    keep_days: int = setting(0, "days its recordings are kept from their start; 0 = forever",
                             min=0, max=INT32_MAX)
    purge: bool = setting(False, "purge its recordings as soon as they are complete (then "
                          "keep_days must be 0)")


@dataclass(frozen=True, kw_only=True)
class RetentionConfig:
    default_keep_days: int = setting(
        0, "days a recording with neither KEEPDAYS nor a known ARCHIVEACTION is kept from its "
        "start; 0 = forever", min=0, max=INT32_MAX)
    purge_time: str = setting("03:00", "HH:MM (local time) the daily purge runs")
    min_free_mb: int = setting(
        500, "new recordings are refused (API_ERROR_OUT_OF_DISK_SPACE) while the recordings' "
        "file system has less free space than this, in MB of 2^20 bytes; 0 = off",
        min=0, max=1 << 40)
    delete_oldest_when_full: bool = setting(
        False, "below min_free_mb, purge the oldest complete recordings, expired or not, until "
        "there is room again; false: never delete a recording before it expires")
    archive_actions: tuple[ArchiveActionConfig, ...] = setting(
        (), "ARCHIVEACTION ids and how long their recordings are kept")
    audit_keep_days: int = setting(
        400, "days the audit trail's entries are kept; the daily purge removes older ones "
        "(never a younger one), keeping the chain verifiable; 0 = forever", min=0,
        max=INT32_MAX)
