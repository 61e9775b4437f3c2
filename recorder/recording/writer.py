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

# How often captured audio is moved to disk. The rings hold seconds of audio, so this only sets
# how much is written per system call, not whether anything can be lost.
PUMP_INTERVAL = 0.05
DRAIN_MARGIN_SECONDS = 1.0

@dataclass(eq=False)
class _Ending:
    session: RecordingSession
    end: int
    closing: Closing


class WriterLoop(PeriodicWorker):
    """Pumps every registered session every PUMP_INTERVAL seconds."""

    def __init__(self, completion: Completion, interval: float = PUMP_INTERVAL, *,
                 fsync_interval: float = 0.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__("writer", interval)
        # What the fsync cadence is measured on (a benchmark drives it by hand).
        self._clock = clock
        # Seconds between fsyncs of each open file (0: none, the OS writes files back itself).
        self.fsync_interval = fsync_interval
        self._completion = completion  # where the files closed here go
        self._sessions: set[RecordingSession] = set()
        self._endings: list[_Ending] = []
        self._lock = threading.Lock()
        # Bytes every session has written into its file (sessions report to it), for metrics.
        self.bytes_written = ByteCounter()

    def add(self, session: RecordingSession) -> None:
        session.fsync_interval = self.fsync_interval  # also decides the fsync at its close
        with self._lock:
            self._sessions.add(session)

    def discard(self, session: RecordingSession) -> None:
        with self._lock:
            self._sessions.discard(session)

    def finish_later(self, session: RecordingSession, end: int, closing: Closing) -> None:
        """Close ``session`` at ``end`` once its commit delay has passed, then hand ``closing``
        to the completion worker."""
        with self._lock:
            self._sessions.discard(session)
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
            sessions = list(self._sessions)
        for session in sessions:
            try:
                session.pump(sync=False)
            except Exception:
                logger.exception("writer: pumping %s failed", session.path)
        # ADPCM is sequential in time, so VOX is encoded across all sessions at once (one
        # numpy pass steps every channel) rather than file by file at each sync.
        vox_sessions = [s for s in sessions if isinstance(s.writer, VoxWriter)]
        if vox_sessions:
            # Each session held for the pass: a call ending meanwhile would close its file
            # between the pass taking that file's samples and writing them (they would be
            # lost, and the pass would stop halfway for the others). Only this thread ever
            # holds more than one session's lock, so the order cannot deadlock.
            with contextlib.ExitStack() as held:
                vox = [w for s in vox_sessions
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
        if self.fsync_interval > 0:
            now = self._clock()
            for session in sessions:
                try:
                    session.fsync_if_due(now)
                except Exception:
                    logger.exception("writer: fsyncing %s failed", session.path)
        self._finish_endings(force=False)

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
