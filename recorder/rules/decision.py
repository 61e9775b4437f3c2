"""Whether a call is recorded, and why: a pure function of the call, the policy and what is
already being recorded.

``decide`` applies these rules in this order; the first that refuses the call decides, and its
reason is the manual's result code:

1. The device is tapped by no channel: API_DEVICE_INVALID.
2. Free disk space is below the floor (the scheduler measures it and passes ``disk_ok``):
   API_ERROR_OUT_OF_DISK_SPACE.
3. A blocked filter is about the call: API_ERROR_BLOCKED_RECORDING_FILTER. Blocked filters win
   over schedules.
4. Schedules. None configured: every call is recorded. Otherwise the first rule (in config
   order) that is about the call decides: a ``record = false`` rule refuses it, a rule with
   ``sample_percent`` below 100 records only the calls whose hashed ``call_key`` falls inside
   the percentage, and a call no rule is about is refused. All three answer
   API_DID_NOT_MATCH_A_SCHEDULE, the detail saying which.
5. Capacity. Fewer recordings in progress than the capacity: recorded. At (or above) it: the
   lowest-priority recording in progress (the most recently started among equals) is preempted
   if its priority is strictly lower than the call's; otherwise API_ERROR_NO_FREE_CHANNELS.
   Preempting swaps one recording for another, so it never raises the count.

A recorded call's PRIORITY, MAXRECORDTIME, MAXRECORDSILENCE, KEEPDAYS and ARCHIVEACTION are the
request's when it sent them, else the deciding schedule's, else the policy's default.

No I/O, clocks or threads here: every rule is tested with plain tables (tests/test_decision.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from recorder.config.recording import RecordingConfig
from recorder.resultcodes import ResultCode
from recorder.rules.schedules import BlockedFilter, Schedule, sampled_in

if TYPE_CHECKING:
    from recorder.calls.requests import CallStart

PRIORITY_MIN = 0
PRIORITY_MAX = 100


@dataclass(frozen=True)
class CallFacts:
    """What ``decide`` knows about a call that is starting."""

    device_id: str
    channel_id: int | None  # None: no channel taps the device
    # The call's API fields by the manual's names: ANI, DNIS, GROUP, GATE, CALLDIRECTION,
    # SYS_USER, CRM_USER, DEVICEALIAS, STATIONNAME, USER1..15.
    meta: Mapping[str, str] = field(default_factory=dict)
    agent: str = ""  # the user name of the agent on the call, "" if unknown
    at: datetime = field(default_factory=datetime.now)  # local wall-clock start, for windows
    call_key: str = ""  # a stable id of the call (GLOBALCALLID); sampling hashes it
    priority: int | None = None  # PRIORITY from the request (0-100), None: not sent
    max_record_time: int | None = None  # seconds, from the request
    max_record_silence: int | None = None  # seconds, from the request
    keep_days: int | None = None
    archive_action: int | None = None

    @classmethod
    def of(cls, start: CallStart, device_id: str, channel_id: int | None, *,
           agent: str = "", at: datetime | None = None, call_key: str = "") -> CallFacts:
        """The facts of a CALLSTART resolved to ``device_id`` and ``channel_id``."""
        return cls(device_id=device_id, channel_id=channel_id, meta=dict(start.meta),
                   agent=agent, at=at if at is not None else datetime.now(),
                   call_key=call_key, priority=start.priority,
                   max_record_time=start.max_record_time,
                   max_record_silence=start.max_record_silence, keep_days=start.keep_days,
                   archive_action=start.archive_action)

    @property
    def sampling_key(self) -> str:
        # Without a call id, the device and start time still name this one call, so sampling
        # stays deterministic rather than treating every such call alike.
        return self.call_key or f"{self.device_id}@{self.at.isoformat()}"


@dataclass(frozen=True)
class ActiveRecording:
    """One recording in progress, for capacity and preemption."""

    key: str  # opaque here: the scheduler's handle (GLOBALCALLID)
    priority: int
    start_time: float


@dataclass(frozen=True)
class Decision:
    """``record`` or not, the manual's code for why, and the terms the call is recorded on."""

    record: bool
    reason: ResultCode  # API_RECORDING_STARTED when recorded
    detail: str  # for the log and DEVICESTATUS; names the rule that decided
    priority: int = 50
    max_record_time: int = 0  # seconds, 0 = no limit
    max_record_silence: int = 0  # seconds, 0 = off
    keep_days: int | None = None
    archive_action: int | None = None
    schedule: str = ""  # the schedule that decided; "" when none did
    preempt: str | None = None  # ActiveRecording.key to stop to make room


@dataclass(frozen=True)
class Policy:
    """The recording rules in force, built from ``[recording]`` and the boards."""

    schedules: tuple[Schedule, ...] = ()
    blocked: tuple[BlockedFilter, ...] = ()
    default_priority: int = 50
    max_record_time: int = 0  # seconds, 0 = no limit
    max_record_silence: int = 0  # seconds, 0 = off
    capacity: int | None = None  # most concurrent recordings; None: no limit

    @classmethod
    def from_config(cls, config: RecordingConfig, channels: int) -> Policy:
        """The policy of ``config``; capacity is max_concurrent, or ``channels`` when 0.

        ValueError if a rule is invalid, which a config from ``load_config`` never is.
        """
        return cls(
            schedules=tuple(Schedule.from_config(s) for s in config.schedules),
            blocked=tuple(BlockedFilter.from_config(b) for b in config.blocked),
            default_priority=config.default_priority,
            max_record_time=config.max_record_time_seconds,
            max_record_silence=config.max_record_silence_seconds,
            capacity=config.max_concurrent or channels,
        )


def _first(*values: int | None) -> int | None:
    return next((v for v in values if v is not None), None)


def _refusal_or_grant(call: CallFacts, policy: Policy, schedule: Schedule | None, *,
                      reason: ResultCode, detail: str, preempt: str | None = None) -> Decision:
    """A decision carrying the call's effective terms: request, else schedule, else policy."""
    rule = schedule or Schedule(name="")
    priority = _first(call.priority, rule.priority, policy.default_priority)
    max_time = _first(call.max_record_time, rule.max_record_time, policy.max_record_time)
    max_silence = _first(call.max_record_silence, rule.max_record_silence,
                         policy.max_record_silence)
    return Decision(
        record=reason is ResultCode.API_RECORDING_STARTED, reason=reason, detail=detail,
        # The API checks its parameters; the clamps keep a caller that did not from turning
        # a typo into a preemption or a negative timer.
        priority=min(max(priority or 0, PRIORITY_MIN), PRIORITY_MAX),
        max_record_time=max(max_time or 0, 0), max_record_silence=max(max_silence or 0, 0),
        keep_days=_first(call.keep_days, rule.keep_days),
        archive_action=_first(call.archive_action, rule.archive_action),
        schedule=rule.name, preempt=preempt)


def _schedule_refusal(call: CallFacts, policy: Policy) -> tuple[Schedule | None, str | None]:
    """The deciding schedule (None when none are configured) and why it refuses, if it does."""
    if not policy.schedules:
        return None, None
    for schedule in policy.schedules:
        if schedule.applies(call.device_id, call.meta, call.agent, call.at):
            break
    else:
        count = len(policy.schedules)
        return None, f"no schedule is about this call ({count} configured)"
    if not schedule.record:
        return schedule, f"schedule {schedule.name!r} says do not record"
    if not sampled_in(call.sampling_key, schedule.sample_percent):
        return schedule, (f"sampled out by schedule {schedule.name!r} "
                          f"({schedule.sample_percent:g}% of its calls are recorded)")
    return schedule, None


def _lowest(active: Sequence[ActiveRecording]) -> ActiveRecording | None:
    # Among equal priorities the newest goes first: it has the least recorded to lose.
    return min(active, key=lambda r: (r.priority, -r.start_time), default=None)


def decide(call: CallFacts, policy: Policy, active: Sequence[ActiveRecording], *,
           disk_ok: bool = True) -> Decision:
    """Decide about ``call`` under ``policy`` with ``active`` recordings in progress."""
    if call.channel_id is None:
        return _refusal_or_grant(call, policy, None, reason=ResultCode.API_DEVICE_INVALID,
                                 detail=f"device {call.device_id} is not tapped by any channel")
    if not disk_ok:
        return _refusal_or_grant(
            call, policy, None, reason=ResultCode.API_ERROR_OUT_OF_DISK_SPACE,
            detail="free disk space is below the floor; new recordings are refused")
    for blocked in policy.blocked:
        if blocked.match.matches(call.device_id, call.meta, call.agent):
            return _refusal_or_grant(call, policy, None,
                                     reason=ResultCode.API_ERROR_BLOCKED_RECORDING_FILTER,
                                     detail=f"blocked by filter {blocked.name!r}")
    schedule, refusal = _schedule_refusal(call, policy)
    if refusal is not None:
        return _refusal_or_grant(call, policy, schedule,
                                 reason=ResultCode.API_DID_NOT_MATCH_A_SCHEDULE, detail=refusal)
    where = f"device {call.device_id} is recorded on channel {call.channel_id}"
    if schedule is not None:
        where += f" by schedule {schedule.name!r}"
    granted = _refusal_or_grant(call, policy, schedule,
                                reason=ResultCode.API_RECORDING_STARTED, detail=where)
    if policy.capacity is None or len(active) < policy.capacity:
        return granted
    victim = _lowest(active)
    if victim is not None and victim.priority < granted.priority:
        return _refusal_or_grant(
            call, policy, schedule, reason=ResultCode.API_RECORDING_STARTED,
            detail=f"{where}, preempting {victim.key} (priority {victim.priority} < "
                   f"{granted.priority})",
            preempt=victim.key)
    floor = f"none below priority {granted.priority}" if active else "none to preempt"
    return _refusal_or_grant(
        call, policy, schedule, reason=ResultCode.API_ERROR_NO_FREE_CHANNELS,
        detail=f"{len(active)} recording(s) in progress at the limit of {policy.capacity}, "
               f"{floor}")
