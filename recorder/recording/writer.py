"""The writer loop: one thread that moves captured audio from the rings into open recordings.

It also finishes recordings whose call has ended but whose last audio is still inside the commit
delay (capture.commit_delay_seconds): each is closed once its channel has captured past the end
plus the delay, then handed to the completion worker (row, journal, events: never here). On
shutdown it keeps going until every such recording has its audio (the capture core is still
running then) or the delay has run out.

It also owns when files reach the disk (storage.fsync_interval_seconds): every session it pumps
is fsynced at most that often, here rather than anywhere near the audio callbacks, and at close.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from recorder.capture.channels import Phase
from recorder.codecs.buffered import out_of_space
from recorder.codecs.voxwriter import VoxWriter, encode_pending
from recorder.recording.completion import Closing, Completion
from recorder.recording.session import ByteCounter, RecordingSession
from recorder.worker import PeriodicWorker

logger = logging.getLogger(__name__)

# How often the loop turns: endings inside their commit delay are closed this promptly. The
# rings hold seconds of audio, so how often audio moves only sets how much is written at a time,
# not whether anything can be lost.
PUMP_INTERVAL = 0.05
# How often each recording is pumped: a share of them at each turn, each every this many
# seconds, rather than all of them at every turn. A pump costs the same Python work (its lock,
# the ring read, the blackout and loss checks, the writer call) for 50 ms of audio as for
# 200 ms, and that work, not the samples, was most of the loop's CPU at hundreds of
# recordings. The file is still handed to the OS at every half second of audio (the session
# splits a piece there), so a killed process loses at most that plus one period.
PUMP_PERIOD = 0.2
DRAIN_MARGIN_SECONDS = 1.0

@dataclass(eq=False)
class _Ending:
    session: RecordingSession
    end: int
    closing: Closing


class WriterLoop(PeriodicWorker):
    """Turns every PUMP_INTERVAL seconds and pumps each registered session every PUMP_PERIOD
    seconds (VOX sessions at every turn)."""

    def __init__(self, completion: Completion, interval: float = PUMP_INTERVAL, *,
                 fsync_interval: float = 0.0, period: float = PUMP_PERIOD,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__("writer", interval)
        # What the fsync cadence is measured on (a benchmark drives it by hand).
        self._clock = clock
        # Seconds between fsyncs of each open file (0: none, the OS writes files back itself).
        self.fsync_interval = fsync_interval
        self._completion = completion  # where the files closed here go
        self._sessions: set[RecordingSession] = set()
        # Each session's turn: session slot k is pumped at the turns where turn % len(slots)
        # is k. A file is fsynced only when pumped, so a shorter fsync interval shortens the
        # period too. VOX sessions are pumped at every turn instead: their batch encoding
        # costs numpy calls per sample whatever the number of files, so it is cheapest with
        # every VOX file in every pass.
        if 0 < fsync_interval < period:
            period = fsync_interval
        self._slots: list[set[RecordingSession]] = [
            set() for _ in range(max(1, round(period / interval)))]
        self._every_turn: set[RecordingSession] = set()
        self._turns = 0
        self._endings: list[_Ending] = []
        self._lock = threading.Lock()
        # Bytes every session has written into its file (sessions report to it), for metrics.
        self.bytes_written = ByteCounter()

    def add(self, session: RecordingSession) -> None:
        session.fsync_interval = self.fsync_interval  # also decides the fsync at its close
        with self._lock:
            if session in self._sessions:
                return
            self._sessions.add(session)
            if isinstance(session.writer, VoxWriter):
                self._every_turn.add(session)
            else:
                # The least taken slot, so every turn pumps about as many files.
                min(self._slots, key=len).add(session)

    def discard(self, session: RecordingSession) -> None:
        with self._lock:
            self._forget(session)

    def _forget(self, session: RecordingSession) -> None:
        """Take ``session`` out of the pumped ones (under the lock)."""
        if session not in self._sessions:
            return
        self._sessions.discard(session)
        self._every_turn.discard(session)
        for slot in self._slots:
            slot.discard(session)

    def finish_later(self, session: RecordingSession, end: int, closing: Closing) -> None:
        """Close ``session`` at ``end`` once its commit delay has passed, then hand ``closing``
        to the completion worker."""
        with self._lock:
            self._forget(session)
            self._endings.append(_Ending(session, end, closing))

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._endings)

    def bytes_per_second(self) -> float:
        """What every recording still being written writes a second, all together: the room
        the disk guard keeps for them grows with it (DiskGuard.count_live)."""
        with self._lock:
            sessions = [*self._sessions, *(ending.session for ending in self._endings)]
        return sum(session.bytes_per_second for session in sessions)

    def join(self, timeout: float | None = None) -> bool:
        if self._thread is None:
            self._finish_endings(force=True)  # never started: nothing else will
            return True
        return super().join(timeout)

    def turn(self) -> None:
        self._pump()

    def finish(self) -> None:
        # Recordings still inside their commit delay get their last audio, which the capture
        # core (stopped after us) is still delivering; then whatever is there.
        longest = max((e.session.delay_frames / e.session.channel.sample_rate
                       for e in self._snapshot_endings()), default=0.0)
        deadline = time.monotonic() + longest + DRAIN_MARGIN_SECONDS
        while self._snapshot_endings() and time.monotonic() < deadline:
            self._finish_endings(force=False)
            time.sleep(self.interval)
        self._finish_endings(force=True)

    def _snapshot_endings(self) -> list[_Ending]:
        with self._lock:
            return list(self._endings)

    def _pump(self) -> None:
        with self._lock:
            self._turns += 1
            sessions = list(self._slots[self._turns % len(self._slots)])
            vox_sessions = list(self._every_turn)
        now = self._clock() if self.fsync_interval > 0 else None
        for session in sessions:
            try:
                # Written, synced and fsynced as due in one hold of its lock.
                session.pump(now=now)
            except Exception:
                logger.exception("writer: pumping %s failed", session.path)
        if vox_sessions:
            self._pump_vox(vox_sessions, now)
        self._finish_endings(force=False)

    def _pump_vox(self, sessions: list[RecordingSession], now: float | None) -> None:
        """Pump every VOX session, encode them in one pass, then sync and fsync each."""
        for session in sessions:
            try:
                session.pump(sync=False)
            except Exception:
                logger.exception("writer: pumping %s failed", session.path)
        # ADPCM is sequential in time, so VOX is encoded across all sessions at once (one
        # numpy pass steps every channel) rather than file by file at each sync.
        # Each session held for the pass: a call ending meanwhile would close its file
        # between the pass taking that file's samples and writing them (they would be
        # lost, and the pass would stop halfway for the others). Only this thread ever
        # holds more than one session's lock, so the order cannot deadlock.
        with contextlib.ExitStack() as held:
            vox = [w for s in sessions
                   if held.enter_context(s.open_and_held())
                   and isinstance(w := s.writer, VoxWriter)]
            try:
                encode_pending(vox)
            except OSError as exc:
                if not out_of_space(exc):
                    logger.exception("writer: writing VOX failed")
                # Else the full disk's file raises it again at its sync, which ends it.
            except Exception:
                logger.exception("writer: encoding VOX failed; each file encodes at its "
                                 "sync")
        for session in sessions:
            try:
                session.sync_if_due()
            except Exception:
                logger.exception("writer: syncing %s failed", session.path)
        if now is not None:
            for session in sessions:
                try:
                    session.fsync_if_due(now)
                except Exception:
                    logger.exception("writer: fsyncing %s failed", session.path)

    def _finish_endings(self, force: bool) -> None:
        for ending in self._snapshot_endings():
            session = ending.session
            if not force and not session.ready_to_finish(ending.end):
                try:
                    session.pump()
                except Exception:
                    logger.exception("writer: pumping %s failed", session.path)
                continue
            with self._lock:
                self._endings.remove(ending)
            try:
                ending.closing.result = session.finish(ending.end)
            except Exception:
                logger.exception("writer: finishing %s failed", session.path)
                continue
            finally:
                for tap in session.channels:
                    tap.status.leave(Phase.FINISHING)
            self._completion.submit(ending.closing)
