"""The limits watch: the loop that ends recordings at their limits and after a full disk, and
brings back the recording of a call a full disk cut once there is room again.

Every ``LIMIT_INTERVAL`` it

- ends each recording that has reached its MAXRECORDTIME or MAXRECORDSILENCE
  (``recorder.rules.limits`` decides; the file ends at the exact sample the limit was reached,
  however late the check runs);
- ends each recording a full disk stopped writing (stop reason ``truncated``);
- once a second, when the disk guard has room again, starts a new recording (as RECORDSTART
  would) for each call still up whose recording a full disk cut, and records each call still
  up that was refused because the disk was full (or below the floor) when it started.

It changes recordings only through the scheduler's ``end_recording``, ``continue_recording``
and ``record_after_disk_full``, which take the locks in their documented order.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recorder.calls.model import LiveCall, Recording, refused_for_disk
from recorder.calls.table import CallTable
from recorder.capture.core import CaptureCore
from recorder.rules.limits import Limits, Side, limit_reached
from recorder.store.records import STOP_MAXRECORDTIME, STOP_TRUNCATED
from recorder.worker import PeriodicWorker

if TYPE_CHECKING:
    from recorder.calls.scheduler import Scheduler

logger = logging.getLogger(__name__)

# How often recordings are checked against their MAXRECORDTIME and MAXRECORDSILENCE.
LIMIT_INTERVAL = 0.1
# After a full disk, how often the disk guard is asked whether there is room again.
ROOM_CHECK_SECONDS = 1.0


class LimitsWatch(PeriodicWorker):
    """Ends recordings at their limits or a full disk; resumes them when there is room."""

    def __init__(self, scheduler: Scheduler, table: CallTable, capture: CaptureCore, *,
                 disk_ok: Callable[[], bool] | None = None,
                 disk_full: Callable[[Path, float], None] | None = None,
                 interval: float = LIMIT_INTERVAL) -> None:
        super().__init__("limits-watch", interval)
        self._scheduler = scheduler
        self._table = table
        self._capture = capture
        self._disk_ok = disk_ok or (lambda: True)
        # A file was cut short by a full disk: (its path, its bytes a second) to the disk guard.
        self._disk_full = disk_full or (lambda path, rate: None)
        self._next_room_check = 0.0  # time.monotonic()

    def turn(self) -> None:
        try:
            self.enforce_limits()
        finally:
            # The disk must be seen to whatever happened to the limits.
            self.end_truncated()
            self.resume_after_disk_full()

    def enforce_limits(self) -> None:
        """End every recording that has reached its MAXRECORDTIME or MAXRECORDSILENCE."""
        activity: dict[int, Any] = {}  # one reading of each board's meters per pass
        for call in self._table.snapshot():
            for recording in call.recordings():
                if not recording.active:
                    continue
                ended = self._limit_reached(call, recording, activity)
                if ended is not None:
                    reason, end = ended
                    self._scheduler.end_recording(call, recording, reason, end)

    def _limit_reached(self, call: LiveCall, recording: Recording,
                       activity: dict[int, Any]) -> tuple[str, int] | None:
        session = recording.session
        channel = session.channel
        sides: list[Side] = []
        if recording.max_record_silence > 0:
            for tap in session.channels:
                board = tap.board
                if id(board) not in activity:
                    activity[id(board)] = board.activity()
                analyzed, silent, _, silence_since = activity[id(board)]
                sides.append(Side(bool(silent[tap.index]), int(silence_since[tap.index]),
                                  int(analyzed)))
        ended = limit_reached(session.start, channel.position, channel.sample_rate,
                              Limits(recording.max_record_time, recording.max_record_silence),
                              sides)
        if ended is not None:
            seconds = (recording.max_record_time if ended[0] == STOP_MAXRECORDTIME
                       else recording.max_record_silence)
            logger.info("%s: %s of %d s reached", call.device_id, ended[0].upper(), seconds)
        return ended

    def end_truncated(self) -> None:
        """End every recording a full disk stopped writing."""
        for call in self._table.snapshot():
            for recording in call.recordings():
                if recording.active and recording.session.out_of_space:
                    # Refuse new recordings at once, before the file is even closed.
                    session = recording.session
                    self._disk_full(session.path, session.bytes_per_second)
                    channel = call.taps[0] if call.taps else None
                    end = channel.position if channel is not None else 0
                    self._scheduler.end_recording(call, recording, STOP_TRUNCATED, end)

    def resume_after_disk_full(self) -> None:
        """Once a second: when the disk guard has room again, every call still up whose
        recording a full disk cut gets a new one, and every call still up that a full disk
        kept from being recorded is recorded from then on."""
        now = time.monotonic()
        if now < self._next_room_check:
            return
        self._next_room_check = now + ROOM_CHECK_SECONDS
        calls = self._table.snapshot()
        cut = [call for call in calls if cut_by_full_disk(call)]
        refused = [call for call in calls if refused_for_disk(call)]
        if (cut or refused) and self._disk_ok():
            for call in cut:
                self._scheduler.continue_recording(call)
            for call in refused:
                self._scheduler.record_after_disk_full(call)


def cut_by_full_disk(call: LiveCall) -> bool:
    """The call is up, records nothing, and its newest recording was cut by a full disk."""
    recordings = call.recordings()
    if call.stop_time is not None or not recordings or any(r.active for r in recordings):
        return False
    newest = call.partials[-1] if call.partials else call.main
    return newest is not None and newest.ending and newest.session.out_of_space
