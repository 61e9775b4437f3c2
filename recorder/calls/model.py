"""The live call model: a call from CALLSTART to CALLSTOP, and each file recorded of it.

The scheduler owns these objects and changes them under its locks (docs/architecture.md says
which); the API's status requests, the events and the triggers read them.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from recorder.capture.core import Channel
from recorder.recording.blackouts import Blackouts
from recorder.recording.files import OpenRecording
from recorder.recording.session import RecordingSession
from recorder.resultcodes import ResultCode
from recorder.rules.decision import CallFacts, Decision
from recorder.store.records import STOP_TRUNCATED, NewRecording


@dataclass(eq=False)
class Recording:
    """One file of a call: its main recording, or a partial one (RECORDSTART)."""

    file: OpenRecording  # its session, row and journal entry
    partial: bool = False
    meta: dict[str, str] = field(default_factory=dict)  # a partial's own metadata
    max_record_time: int = 0  # seconds; 0: no limit
    max_record_silence: int = 0  # seconds; 0: off
    ending: bool = False  # being (or already) ended
    reason: str = ""  # why it was ended, once it has been

    @property
    def session(self) -> RecordingSession:
        return self.file.session

    @property
    def record_id(self) -> int | None:
        return self.file.record_id

    @property
    def filename(self) -> str:
        return self.file.filename

    @property
    def stop_reason(self) -> str:
        """Why it ended: ``truncated`` for a file a full disk cut short, whatever ended it."""
        if self.ending and self.session.out_of_space:
            return STOP_TRUNCATED
        return self.reason

    @property
    def active(self) -> bool:
        return not self.ending and not self.session.closed


@dataclass(eq=False)
class LiveCall:
    """One call instance on a device, from CALLSTART until CALLSTOP."""

    device_id: str
    instance: str
    meta: dict[str, str]
    start_time: float
    priority: int | None = None
    max_record_time: int | None = None
    max_record_silence: int | None = None
    keep_days: int | None = None
    archive_action: int | None = None
    cti_initiated: str = ""
    agent_initiated: str = ""
    stop_time: float | None = None
    decision: Decision | None = None
    # What the decision was made on (the CALLSTART's facts), to decide again when a call refused
    # for lack of disk space can be recorded after all.
    facts: CallFacts | None = None
    # The decision was to record, but the file could not be made (``decision`` then says why):
    # the CALLSTART is answered with that error rather than API_OK.
    open_failed: bool = False
    # The sample its recording begins at (its start, pre-roll included): a recording that
    # begins later counts the audio from here to its own start as lost.
    start_position: int = 0
    channel: int | None = None
    # The channels it is recorded from (its device's, or a SIPREC session's two parties), as
    # they were when it started.
    taps: tuple[Channel, ...] = ()
    # A SIPREC session's key: the session's BYE ends the call, not a CALLSTOP; the CTI's own
    # CALLINSTANCEs of it, which find it as its own does (docs/siprec.md).
    siprec: str = ""
    aliases: set[str] = field(default_factory=set)
    global_id: str = ""  # GLOBALCALLID: unique across restarts and cores
    agent_id: str = ""  # AGENTID of the agent whose phone the device is ("" unknown)
    main: Recording | None = None
    partials: list[Recording] = field(default_factory=list)  # RECORDSTART, oldest first
    blackouts: Blackouts = field(default_factory=Blackouts)
    # Held while the call's recordings are being started or ended, so a CALLSTOP that arrives
    # while the file is still being created waits for it instead of missing it.
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def session(self) -> RecordingSession | None:
        return self.main.session if self.main is not None else None

    @property
    def stop_reason(self) -> str:
        """Why its main recording ended, once it has."""
        return self.main.stop_reason if self.main is not None else ""

    @property
    def record_id(self) -> int | None:
        return self.main.record_id if self.main is not None else None

    @property
    def filename(self) -> str:
        return self.main.filename if self.main is not None else ""

    @property
    def ending(self) -> bool:
        """Its main recording is being (or has been) ended."""
        return self.main is not None and self.main.ending

    @property
    def recording(self) -> bool:
        return self.main is not None and not self.main.session.closed

    @property
    def paused(self) -> bool:
        """A blackout is running: the recording goes on, as silence."""
        return self.blackouts.active

    def recordings(self) -> list[Recording]:
        return ([self.main] if self.main is not None else []) + list(self.partials)

    def new_row(self, meta: dict[str, str], started: float, core_ident: int) -> NewRecording:
        """The call's part of a new recording's row (the files fill in the file's part)."""
        return NewRecording(
            device_id=self.device_id, call_instance=self.instance, channel=self.channel,
            filename="", media_format="", sample_rate=0, start_time=started,
            core_ident=core_ident, meta=meta, priority=self.priority,
            keep_days=self.keep_days, archive_action=self.archive_action,
            cti_initiated=self.cti_initiated, agent_initiated=self.agent_initiated,
            global_id=self.global_id)


def refused_for_disk(call: LiveCall) -> bool:
    """The call is up on a tapped device and has no main recording because the disk was full
    or below the floor (decided so, or its file could not be made for lack of space)."""
    decision = call.decision
    return (call.stop_time is None and call.main is None and call.channel is not None
            and decision is not None and not decision.record
            and decision.reason is ResultCode.API_ERROR_OUT_OF_DISK_SPACE)
