"""The writer loop: the threads that move captured audio from the rings into open recordings.

The open recordings are sharded over ``threads`` writer threads (storage.writer_threads;
``recording/writershard.py``) by channel: a channel's recordings always go to the same shard,
the first time to the one with the fewest channels. VOX recordings all go to the first shard,
whose one batch pass encodes them together. Each shard pumps its sessions and closes
its endings on its own thread, so the per-recording work runs on several cores where it
releases the GIL (lameenc, large numpy calls, the writes).

It also finishes recordings whose call has ended but whose last audio is still inside the commit
delay (capture.commit_delay_seconds): each is closed once its channel has captured past the end
plus the delay, then handed to the completion worker (row, journal, events: never here). On
shutdown every shard keeps going until each such recording of its own has its audio (the
capture core is still running then) or the delay has run out, the shards side by side.

When files reach the disk (storage.fsync_interval_seconds) is the syncer's business
(``recording/syncer.py``), a thread of its own that the loop starts and stops with itself: the
writing never waits for the disk. A file closed here is still fsynced at its close.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

from recorder.codecs.voxwriter import VoxWriter
from recorder.recording.completion import Closing, Completion
from recorder.recording.session import ByteCounter, RecordingSession
from recorder.recording.syncer import Syncer
from recorder.recording.writershard import Ending, WriterShard

# How often each shard turns: endings inside their commit delay are closed this promptly. The
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
# The default number of writer threads (storage.writer_threads = 0): one a core, at most this.
MOST_DEFAULT_THREADS = 4


def default_threads() -> int:
    """One writer thread a core this process may use, at most MOST_DEFAULT_THREADS."""
    return max(1, min(MOST_DEFAULT_THREADS, len(os.sched_getaffinity(0))))


class WriterLoop:
    """``threads`` writer shards turning every PUMP_INTERVAL seconds, each recording pumped
    every PUMP_PERIOD seconds (VOX at every turn) by the shard of its channel."""

    def __init__(self, completion: Completion, interval: float = PUMP_INTERVAL, *,
                 fsync_interval: float = 0.0, period: float = PUMP_PERIOD,
                 clock: Callable[[], float] = time.monotonic, threads: int = 1) -> None:
        self.interval = interval
        # Seconds between fsyncs of each open file (0: none, the OS writes files back itself).
        self.fsync_interval = fsync_interval
        # The thread that fsyncs them (none without fsyncs); ``clock`` is what its cadence is
        # measured on (a benchmark drives it by hand, turning ``syncer`` itself).
        self.syncer = (Syncer(self._open_sessions, fsync_interval, clock=clock)
                       if fsync_interval > 0 else None)
        # One lock for the lists of every shard (a leaf lock, held for microseconds).
        self._lock = threading.Lock()
        count = max(1, threads)
        self.shards = [WriterShard("writer" if count == 1 else f"writer-{i}", completion,
                                   interval, period, self._lock) for i in range(count)]
        self._sessions: set[RecordingSession] = set()
        self._owner: dict[RecordingSession, WriterShard] = {}
        # Each channel's shard, kept for the loop's life (a stable subset of the channels),
        # and how many channels each shard was given.
        self._channel_shard: dict[tuple[int, int], WriterShard] = {}
        self._given = dict.fromkeys(self.shards, 0)
        # Bytes every session has written into its file (sessions report to it), for metrics.
        self.bytes_written = ByteCounter()

    def _shard_of(self, session: RecordingSession) -> WriterShard:
        """The shard of ``session``'s first channel (under the lock)."""
        channel = session.channel
        key = (id(channel.board), channel.index)
        shard = self._channel_shard.get(key)
        if shard is None:
            shard = min(self.shards, key=self._given.__getitem__)
            self._channel_shard[key] = shard
            self._given[shard] += 1
        return shard

    def add(self, session: RecordingSession) -> None:
        session.fsync_interval = self.fsync_interval  # also decides the fsync at its close
        with self._lock:
            if session in self._sessions:
                return
            # Every VOX recording on the first shard: its batch encoding costs numpy calls per
            # sample whatever the number of files (recording/writershard.py), so each shard
            # with VOX files would pay that again (measured: twice the CPU at 16 channels on
            # two shards).
            shard = self._owner[session] = (self.shards[0]
                                            if isinstance(session.writer, VoxWriter)
                                            else self._shard_of(session))
            self._sessions.add(session)
            shard.add(session)

    def discard(self, session: RecordingSession) -> None:
        with self._lock:
            self._forget(session)

    def _forget(self, session: RecordingSession) -> WriterShard:
        """Take ``session`` out of the pumped ones (under the lock); its shard."""
        shard = self._owner.pop(session, None)
        if shard is None:
            return self._shard_of(session)
        self._sessions.discard(session)
        shard.forget(session)
        return shard

    def finish_later(self, session: RecordingSession, end: int, closing: Closing) -> None:
        """Close ``session`` at ``end`` once its commit delay has passed, then hand ``closing``
        to the completion worker (by its shard's thread)."""
        with self._lock:
            self._forget(session).endings.append(Ending(session, end, closing))

    @property
    def pending(self) -> int:
        with self._lock:
            return sum(len(shard.endings) for shard in self.shards)

    def bytes_per_second(self) -> float:
        """What every recording still being written writes a second, all together: the room
        the disk guard keeps for them grows with it (DiskGuard.count_live)."""
        return sum(session.bytes_per_second for session in self._open_sessions())

    def _open_sessions(self) -> list[RecordingSession]:
        """Every file open here, those waiting for their commit delay too (the syncer's)."""
        with self._lock:
            return [*self._sessions,
                    *(ending.session for shard in self.shards for ending in shard.endings)]

    # --- the threads -------------------------------------------------------------------------

    @property
    def heartbeat(self) -> float:
        """The last turn of the shard that turned least recently (what health watches)."""
        return min(shard.heartbeat for shard in self.shards)

    @property
    def alive(self) -> bool:
        return all(shard.alive for shard in self.shards)

    def start(self) -> None:
        for shard in self.shards:
            shard.start()
        if self.syncer is not None:
            self.syncer.start()

    def stop(self) -> None:
        """Ask every shard to end (each first closes its endings) and the syncer."""
        for shard in self.shards:
            shard.stop()
        if self.syncer is not None:
            self.syncer.stop()

    def join(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` seconds in all for every thread; True once all have ended."""
        deadline = None if timeout is None else time.monotonic() + timeout
        done = True
        for shard in self.shards:
            if not shard.started:
                shard.finish_endings(force=True)  # never started: nothing else will
                continue
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            done = shard.join(left) and done
        if self.syncer is not None:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            done = self.syncer.join(left) and done
        return done

    def turn(self) -> None:
        """One turn of every shard, one after the other, on the caller's thread (tests and
        benchmarks turn the loop by hand)."""
        for shard in self.shards:
            shard.turn()
