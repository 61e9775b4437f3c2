"""One writer thread: pumps its share of the open recordings and closes its endings.

The writer loop (``recording/writer.py``) shards the recordings over several of these by
channel: each owns a stable subset (a channel's recordings always go to the same shard), so
per-recording work runs on several threads at once. That pays where the work releases the
GIL: lameenc's encode calls, large numpy calls, the writes to the files. Files a shard closes
go to the one completion queue like any other (no callback crosses threads).

Every shard shares the writer loop's lock (a leaf lock, held only to look at or change the
lists): holding it stops every shard's next turn.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import dataclass

from recorder.capture.channels import Phase
from recorder.codecs.buffered import out_of_space
from recorder.codecs.voxwriter import VoxWriter, encode_pending
from recorder.recording.completion import Closing, Completion
from recorder.recording.session import RecordingSession
from recorder.worker import PeriodicWorker

logger = logging.getLogger(__name__)

DRAIN_MARGIN_SECONDS = 1.0


@dataclass(eq=False)
class Ending:
    session: RecordingSession
    end: int
    closing: Closing


class WriterShard(PeriodicWorker):
    """Turns every ``interval`` seconds and pumps each of its sessions every ``period`` seconds
    (VOX sessions at every turn); its lists are guarded by ``lock``, the writer loop's."""

    def __init__(self, name: str, completion: Completion, interval: float, period: float,
                 lock: threading.Lock) -> None:
        super().__init__(name, interval)
        self._completion = completion  # where the files closed here go
        self._lock = lock
        # Each session's turn: session slot k is pumped at the turns where turn % len(slots)
        # is k. VOX sessions are pumped at every turn instead: their batch encoding costs
        # numpy calls per sample whatever the number of files, so it is cheapest with every
        # VOX file in every pass.
        self._slots: list[set[RecordingSession]] = [
            set() for _ in range(max(1, round(period / interval)))]
        self._every_turn: set[RecordingSession] = set()
        self._turns = 0
        self.endings: list[Ending] = []

    # --- under the writer loop's lock ------------------------------------------------------

    def add(self, session: RecordingSession) -> None:
        if isinstance(session.writer, VoxWriter):
            self._every_turn.add(session)
        else:
            # The least taken slot, so every turn pumps about as many files.
            min(self._slots, key=len).add(session)

    def forget(self, session: RecordingSession) -> None:
        self._every_turn.discard(session)
        for slot in self._slots:
            slot.discard(session)

    @property
    def started(self) -> bool:
        return self._thread is not None

    # --- on the shard's thread --------------------------------------------------------------

    def turn(self) -> None:
        self._pump()

    def finish(self) -> None:
        # Recordings still inside their commit delay get their last audio, which the capture
        # core (stopped after us) is still delivering; then whatever is there.
        longest = max((e.session.delay_frames / e.session.channel.sample_rate
                       for e in self._snapshot_endings()), default=0.0)
        deadline = time.monotonic() + longest + DRAIN_MARGIN_SECONDS
        while self._snapshot_endings() and time.monotonic() < deadline:
            self.finish_endings(force=False)
            time.sleep(self.interval)
        self.finish_endings(force=True)

    def _snapshot_endings(self) -> list[Ending]:
        with self._lock:
            return list(self.endings)

    def _pump(self) -> None:
        with self._lock:
            self._turns += 1
            sessions = list(self._slots[self._turns % len(self._slots)])
            vox_sessions = list(self._every_turn)
        for session in sessions:
            try:
                session.pump()  # written and synced as due in one hold of its lock
            except Exception:
                logger.exception("%s: pumping %s failed", self.name, session.path)
        if vox_sessions:
            self._pump_vox(vox_sessions)
        self.finish_endings(force=False)

    def _pump_vox(self, sessions: list[RecordingSession]) -> None:
        """Pump every VOX session, encode them in one pass, then sync each."""
        for session in sessions:
            try:
                session.pump(sync=False)
            except Exception:
                logger.exception("%s: pumping %s failed", self.name, session.path)
        # ADPCM is sequential in time, so VOX is encoded across all sessions at once (one
        # numpy pass steps every channel) rather than file by file at each sync.
        # Each session held for the pass: a call ending meanwhile would close its file
        # between the pass taking that file's samples and writing them (they would be
        # lost, and the pass would stop halfway for the others). Only a shard's thread
        # ever holds more than one session's lock, and only of its own sessions, which no
        # other shard has, so the order cannot deadlock.
        with contextlib.ExitStack() as held:
            vox = [w for s in sessions
                   if held.enter_context(s.open_and_held())
                   and isinstance(w := s.writer, VoxWriter)]
            try:
                encode_pending(vox)
            except OSError as exc:
                if not out_of_space(exc):
                    logger.exception("%s: writing VOX failed", self.name)
                # Else the full disk's file raises it again at its sync, which ends it.
            except Exception:
                logger.exception("%s: encoding VOX failed; each file encodes at its "
                                 "sync", self.name)
        for session in sessions:
            try:
                session.sync_if_due()
            except Exception:
                logger.exception("%s: syncing %s failed", self.name, session.path)

    def finish_endings(self, force: bool) -> None:
        for ending in self._snapshot_endings():
            session = ending.session
            if not force and not session.ready_to_finish(ending.end):
                try:
                    session.pump()
                except Exception:
                    logger.exception("%s: pumping %s failed", self.name, session.path)
                continue
            with self._lock:
                self.endings.remove(ending)
            try:
                ending.closing.result = session.finish(ending.end)
            except Exception:
                logger.exception("%s: finishing %s failed", self.name, session.path)
                continue
            finally:
                for tap in session.channels:
                    tap.status.leave(Phase.FINISHING)
            self._completion.submit(ending.closing)
