"""What the call-handling core is asked: start, stop or update a call on a device.

The API layer turns requests into these objects after validating them; CTI links and line or
voice triggers will produce the same objects, so the scheduler sees one kind of call.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from recorder.errors import ResultError


class CallError(ResultError):
    """A call request the core cannot carry out (unknown device, no call, ...)."""


class WouldBlock(Exception):
    """Raised by a request asked to run without blocking (``inline``, on the API's event loop)
    that would have to wait for a disk, the database or another thread's lock: nothing of it
    has been done, so the caller runs it again where waiting is allowed (an API worker)."""


@dataclass(frozen=True)
class DeviceQuery:
    """How a request names its device: by DEVICEID, or looked up by one of the others."""

    device_id: str | None = None
    alias: str | None = None
    sys_user: str | None = None
    crm_user: str | None = None
    station: str | None = None
    call_id: str | None = None

    def __bool__(self) -> bool:
        return any((self.device_id, self.alias, self.sys_user, self.crm_user, self.station,
                    self.call_id))


@dataclass(frozen=True)
class CallStart:
    """A call began on a device (CALLSTART)."""

    device: DeviceQuery
    instance: str = ""
    meta: Mapping[str, str] = field(default_factory=dict)  # METADATA_FIELDS name -> value
    priority: int | None = None
    max_record_time: int | None = None
    max_record_silence: int | None = None
    keep_days: int | None = None
    archive_action: int | None = None
    cti_initiated: str = ""  # "Y", "N" or "" (not said)
    agent_initiated: str = ""
    # Where on the channel the call began (a trigger knows the sample its speech or off-hook
    # was at); None: where the channel is when the scheduler receives it.
    position: int | None = None
    trigger: str = "api"  # what produced the call: api, vox, line, always, siprec
    # A SIPREC session's call (recorder.calls.sessions): its key on the board, the channels
    # recording it (ids; its two parties), and the SRC's id for the call (GLOBALCALLID; ""
    # for one of the recorder's). It begins exactly at ``position``, without pre-roll: its
    # channels carried another call just before.
    siprec: str = ""
    channels: tuple[int, ...] = ()
    global_id: str = ""


@dataclass(frozen=True)
class CallUpdate:
    """New metadata for a call in progress or a stored recording (CALLUPDATE)."""

    meta: Mapping[str, str] = field(default_factory=dict)
    keep_days: int | None = None
    archive_action: int | None = None
