"""The media thread of a siprec board, ``siprec-media-<key>``: every stream's RTP socket, and
one ``(frames, channels)`` block to the board's sink every 20 ms.

The board has two channels per session slot: slot ``n`` is channels ``2n`` (the recorded
device's party) and ``2n + 1`` (the other parties). The SIP thread's listener (the driver)
hands each session here and waits for the answer (``start_session``, ``update_session``,
``end_session``; each runs on this thread, which owns every socket, so a port the UAS frees
is closed before anyone can take it again). A session that none of the board's devices is
in gets no slot: its streams are read and discarded.

Each pass waits in ``select`` on the streams' sockets (non-blocking, bound to their RTP port on
``rtp_host``, and the RTCP port above it, drained) and a wake-up pipe until the next block is
due, paced on the monotonic clock as ``PacedDriver`` is (a thread that falls more than
``MAX_CATCH_UP_SECONDS`` behind starts afresh and reports the skipped frames as lost). A block
holds each stream's audio at its place (``mediastream``), several streams of one side added up,
silence on idle slots; the losses of single streams go to the sink's ``channel_lost`` first.

A session's line events (``SESSION_START`` on its first channel, ...) are given to the sink
from this thread at the board position they belong to: the audio reaches the board
``delay`` after it arrives, so a session's start, pause and resume are placed ``delay`` after
they happen, and its end once its last audio is in the ring; its slot is free after that.
A session none of whose unpaused streams has sent for ``media_timeout_seconds`` is ended
with a BYE (``end_call``, never waiting for the SIP thread).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import itertools
import logging
import queue
import socket
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np

from recorder.drivers.base import MAX_CATCH_UP_SECONDS, ChannelLoss, DriverSink, DriverState
from recorder.drivers.lineevents import LineEvent, LineEventKind
from recorder.drivers.siprec.config import SiprecBoardConfig
from recorder.drivers.siprec.events import (
    CapacityExceeded,
    DialogId,
    RecordingSession,
    SessionChange,
)
from recorder.drivers.siprec.lanes import BATCH, Lanes
from recorder.drivers.siprec.mediasockets import StreamSockets
from recorder.drivers.siprec.mediastream import RtcpPort, StreamMedia
from recorder.drivers.siprec.mixing import Taken, place
from recorder.drivers.siprec.parties import CallParties, call_parties, channel_plan
from recorder.drivers.siprec.poller import Poller
from recorder.drivers.siprec.slots import (
    SessionMedia,
    event_data,
    log_counts,
    same_media,
)
from recorder.worker import Worker

logger = logging.getLogger(__name__)

T = TypeVar("T")
BLOCK_MS = 20
DEFAULT_DELAY_SECONDS = 0.1  # the jitter (and reordering) a stream may have
COMMAND_TIMEOUT = 5.0
GATHER_SECONDS = 0.002  # see _gather
MAX_PASSES = 64  # passes over the ready sockets before a block: a datagram each, at most
DRAIN_SECONDS = 0.01  # and no pass begun after this long (see _drain)
RECV_BYTES = 4096
RETRY_AFTER_SECONDS = 5  # no slot free: the sessions ending now free theirs within a second
WAKE = object()  # the poller's tag of the wake-up pipe


class MediaEngine(StreamSockets, Worker):
    """The media side of one siprec board; see the module docstring."""

    def __init__(self, key: str, config: SiprecBoardConfig, *,
                 delay_seconds: float = DEFAULT_DELAY_SECONDS,
                 end_call: Callable[[str], None] = lambda call_id: None,
                 clock: Callable[[], float] = time.monotonic, express: bool = True) -> None:
        super().__init__(f"siprec-media-{key}")
        self.key = key
        self.config = config
        self.rate = config.sample_rate
        self.channels = config.channels
        self.block = max(1, self.rate * BLOCK_MS // 1000)
        self.delay = round(delay_seconds * self.rate)
        self.end_call = end_call
        self.realtime = True
        self._clock = clock
        self._networks = config.networks()
        self._sink: DriverSink | None = None
        self._report_losses: Callable[[Sequence[ChannelLoss]], None] | None = None
        self._commands: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._poller = Poller()
        self._poller.register(self._wake_r, WAKE)
        # A lane per stream of a full board's two-party calls; more streams take the
        # ordinary way (all of them with ``express`` False: tests compare the two).
        self._lanes = Lanes(2 * config.max_sessions if express else 0, self.delay, self.block)
        self._sessions: dict[DialogId, SessionMedia] = {}
        self._ending: list[SessionMedia] = []  # over, their last audio still to be written
        self._free: deque[int] = deque(range(config.max_sessions))
        self._keys = itertools.count(1)
        self.position = 0  # board position after the last block delivered
        self._last_tick = clock()
        self.stats = {"blocks": 0, "lost_frames": 0, "bind_failures": 0}

    # --- the listener's calls (SIP thread): run here, waited for -------------------------

    def start_session(self, session: RecordingSession) -> None:
        """Take a new session (raises CapacityExceeded: no slot, or a port cannot be bound)."""
        parties = call_parties(session, self.config.devices)
        self._run(lambda: self._start(session, parties))

    def update_session(self, session: RecordingSession, change: SessionChange) -> None:
        self._run(lambda: self._update(session, change))

    def end_session(self, session: RecordingSession) -> None:
        self._run(lambda: self._end(session.dialog))

    def _run(self, command: Callable[[], T]) -> T:
        if not self.alive:
            # Not running (tests drive it by hand, or it is stopping): run it here.
            return command()
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(command())
            except BaseException as exc:
                future.set_exception(exc)

        self._commands.put(run)
        with contextlib.suppress(OSError):  # the pipe is full: the thread is awake already
            self._wake_w.send(b"\0")
        try:
            return future.result(COMMAND_TIMEOUT)
        except concurrent.futures.TimeoutError:
            raise CapacityExceeded("the media thread does not answer", RETRY_AFTER_SECONDS
                                   ) from None

    # --- sessions (media thread) ----------------------------------------------------------

    def _start(self, session: RecordingSession, parties: CallParties) -> None:
        slot: int | None = None
        if parties.device is not None:
            if not self._free:
                raise CapacityExceeded(f"all {self.config.max_sessions} session slots are in "
                                       "use", RETRY_AFTER_SECONDS)
            slot = self._free.popleft()
        key = str(next(self._keys))
        media = SessionMedia(key, session.call_id, slot, parties,
                             event_data(key, slot, session, parties))
        try:
            self._attach_streams(media, session.streams, parties.first, parties.second, ())
        except OSError as exc:
            for stream in media.all_streams():
                self._close(stream)
            if slot is not None:
                self._free.appendleft(slot)
            raise CapacityExceeded(f"cannot bind an RTP port: {exc}", RETRY_AFTER_SECONDS
                                   ) from exc
        self._sessions[session.dialog] = media
        media.paused = session.paused
        if slot is None:
            logger.info("%s: session %s records none of this board's devices (parties %s); "
                        "answered, its media discarded", self.key, session.call_id,
                        ", ".join(filter(None, (parties.ani, parties.dnis))) or "unknown")
            return
        self._schedule(media, LineEventKind.SESSION_START)
        if media.paused:
            self._schedule(media, LineEventKind.SESSION_PAUSE)
        logger.info("%s: session %s records %s on channels %d-%d", self.key, session.call_id,
                    parties.device, 2 * slot + 1, 2 * slot + 2)

    def _update(self, session: RecordingSession, change: SessionChange) -> None:
        media = self._sessions.get(session.dialog)
        if media is None:
            return
        if change.streams or change.paused or change.resumed:
            first, second = channel_plan(session, media.parties.device_aor)
            kept = {i: s for i, s in media.streams.items()
                    if (m := next((n for n in session.streams if n.index == i), None))
                    is not None and same_media(s.stream, m)}
            self._attach_streams(media, session.streams, first, second, tuple(kept),
                                 strict=False)
        if media.slot is None:
            return
        if change.metadata:
            parties = call_parties(session, self.config.devices)
            media.parties = CallParties(media.parties.device, media.parties.device_aor,
                                        parties.ani, parties.dnis, media.parties.direction,
                                        media.parties.first, media.parties.second)
            media.data = event_data(media.key, media.slot, session, media.parties)
            self._schedule(media, LineEventKind.SESSION_UPDATE)
        if session.paused != media.paused:
            media.paused = session.paused
            self._schedule(media, LineEventKind.SESSION_PAUSE if media.paused
                           else LineEventKind.SESSION_RESUME)

    def _end(self, dialog: DialogId) -> None:
        media = self._sessions.pop(dialog, None)
        if media is None:
            return
        ends = [self._position_now() + self.delay]
        for stream in media.all_streams():
            self._close(stream)
            end = stream.finish()
            if end is not None:
                ends.append(end)
            log_counts(self.key, media, stream)
        if media.slot is None:
            return
        media.end = max(ends)
        self._ending.append(media)

    def _schedule(self, media: SessionMedia, kind: LineEventKind) -> None:
        assert media.slot is not None
        due = self._position_now() + self.delay
        media.events.append((due, LineEvent(2 * media.slot, kind, dict(media.data))))

    def _position_now(self) -> int:
        """The board position the present moment will be written at."""
        return self.position + max(0, round((self._clock() - self._last_tick) * self.rate))

    # --- the thread -----------------------------------------------------------------------

    def attach(self, sink: DriverSink) -> None:
        """Where blocks, line events and losses go; before ``start``."""
        self._sink = sink
        self._report_losses = getattr(sink, "channel_lost", None)

    def run(self) -> None:
        sink = self._sink
        assert sink is not None
        period = self.block / self.rate
        origin = self._last_tick = self._clock()
        sent = 0
        lost = 0
        sink.state(DriverState.RUNNING)
        try:
            while not self.stopping:
                now = self._clock()
                due = origin + (sent + 1) * period
                if self.realtime and now < due:
                    if self._poll(due - now):
                        self._gather(due)
                    continue
                if self.realtime and now - due > MAX_CATCH_UP_SECONDS:
                    logger.warning("%s: the media thread fell %.1f s behind real time; resuming "
                                   "from now", self.key, now - due)
                    lost += round((now - due) * self.rate)
                    origin, sent = now - period, 0
                    self._discard_waiting()
                self._drain()
                self._commands_now()  # at least once a block, whatever the selector said
                self.tick(sink, lost)
                if self.realtime:
                    # The time the board position now stands for, not the time of this tick:
                    # behind real time (catching up), an arrival's position must still be
                    # where real time puts it, or the streams anchored meanwhile stay late.
                    self._last_tick = origin + (sent + 1) * period
                self.heartbeat = self._clock()
                lost = 0
                sent += 1
        except Exception as exc:
            # A bug, not a network problem: say so loudly, and show the channels in Error.
            logger.exception("%s: the media thread failed; this board records no more audio",
                             self.key)
            sink.state(DriverState.ERROR, f"media thread failed: {exc}")
            return
        finally:
            self._shutdown()
        sink.state(DriverState.STOPPED)

    def _discard_waiting(self) -> None:
        """After a fall behind real time: what waits in the streams' sockets came for time
        now written as silence (most of it); read one by one it would keep the thread behind
        for good, each packet late and each block silence put in, so it is dropped unread and
        counted (``StreamCounts.unread``), and the streams go on from the packets that come
        next."""
        for tag in list(self._poller.tags.values()):
            if isinstance(tag, StreamMedia):
                tag.discard_waiting()

    def _gather(self, due: float) -> None:
        """After a wake-up that read something, let the next datagrams gather for up to
        ``GATHER_SECONDS`` (never past the next block) before looking again: one wake-up then
        reads many, where waking for each would cost more than reading it. The price: a
        datagram's arrival is taken up to that much late, a small part of the playout delay
        (``DEFAULT_DELAY_SECONDS``) that only shifts a stream's anchor by as much."""
        wait = min(GATHER_SECONDS, due - self._clock())
        if wait > 0:
            time.sleep(wait)

    def _drain(self) -> None:
        """Read everything that has come (before a block is made): passes until nothing is
        left, a bounded number, and none begun after ``DRAIN_SECONDS``. Behind real time the
        sockets hold more than a block's packets, and more come while a pass reads: a block
        made now, with the rest read at the next, keeps the thread from falling further
        behind while it reads (the packets wait in the sockets' buffers)."""
        stop = self._clock() + DRAIN_SECONDS
        for _ in range(MAX_PASSES):
            if not self._poll(0) or self._clock() >= stop:
                return

    def _poll(self, timeout: float) -> bool:
        """Read a datagram from each socket that has one, and run the listener's commands,
        waiting up to ``timeout`` s for something to come; whether anything had.

        One datagram per socket per pass, not until it would block: the selector is level-
        triggered, so a socket with more is ready again at the next pass, and the read that
        would only find nothing (an exception in Python) is not paid for every packet."""
        ready = self._poller.poll(timeout)
        if not ready:
            return False
        # One arrival time for everything this wake-up found: it all came before it.
        arrival = self._clock()
        position = self.position + max(0, round((arrival - self._last_tick) * self.rate))
        commands = False
        tags, delay, lanes = self._poller.tags, self.delay, self._lanes
        # A lane's datagram is read into the lanes' buffer and handled with the others at the
        # flush (lanes module); this loop is all the Python most packets cost.
        rows, batch, lengths = lanes.rows, lanes.batch_lanes, lanes.batch_lengths
        for fd, _ in ready:
            tag = tags.get(fd)
            if tag.__class__ is StreamMedia:
                assert isinstance(tag, StreamMedia)
                sock = tag.sock
                if sock is None:
                    continue
                lane = tag.lane
                if lane < 0:
                    self._read(tag, arrival, position)
                    continue
                row = rows[len(batch)]
                try:
                    size, source = sock.recvfrom_into(row)
                except OSError:
                    continue  # as in _read
                if source != tag.source:
                    tag.receive(row[:size].tobytes(), source, arrival, position, delay)
                    continue
                batch.append(lane)
                lengths.append(size)
                if len(batch) == BATCH:
                    lanes.flush(arrival, position, delay)
            elif tag is WAKE:
                commands = True
            elif isinstance(tag, RtcpPort):
                tag.stream.drain_rtcp()
        lanes.flush(arrival, position, delay)
        if commands:
            self._commands_now()
        return True

    def _commands_now(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except OSError:
            pass
        while True:
            try:
                command = self._commands.get_nowait()
            except queue.Empty:
                return
            command()

    def _read(self, stream: StreamMedia, arrival: float, position: int) -> None:
        sock = stream.sock
        if sock is None:
            return
        try:
            data, source = sock.recvfrom(RECV_BYTES)
        except OSError:
            # Nothing after all, or an ICMP error for a datagram of ours (ECONNREFUSED...):
            # nothing to read either way; what else is queued is read at the next pass.
            return
        stream.receive(data, source, arrival, position, self.delay)

    def tick(self, sink: DriverSink, lost: int = 0) -> None:
        """One block: the line events due, the streams' audio, the sessions that are over."""
        start = self.position + lost
        end = start + self.block
        block = np.zeros((self.block, self.channels), dtype=np.int16)
        lanes = self._lanes
        for stream in lanes.take(block, start):
            lanes.leave(stream)  # a block its lane cannot fill: the ordinary way tells why
        losses: list[ChannelLoss] = []
        taken: list[Taken] = []
        # One pass over the sessions (this runs 50 times a second for each of them): the line
        # events due (given before the block), the streams not in a lane.
        for media in (*self._sessions.values(), *self._ending) if self._ending else \
                self._sessions.values():
            events = media.events
            while events and events[0][0] < end:
                sink.line(events.pop(0)[1])
            if media.slot is None:
                continue
            for stream in media.streams.values():
                if stream.lane < 0:
                    self._take(stream, start, taken, losses)
                    if stream.solo:
                        lanes.enter(stream)
            if media.retired:
                for stream in media.retired:
                    self._take(stream, start, taken, losses)
                media.retired = [s for s in media.retired if not s.drained]
                if not media.retired:
                    self._mark_solo(media)
        if losses and self._report_losses is not None:
            self._report_losses(losses)
        place(block, taken)
        sink.audio(block, lost)
        self.stats["blocks"] += 1
        self.stats["lost_frames"] += lost
        self.position = end
        self._last_tick = self._clock()
        self._finish_ended(sink)
        self._check_timeouts()

    def _take(self, stream: StreamMedia, start: int,
              taken: list[Taken], losses: list[ChannelLoss]) -> None:
        channel = stream.channel
        if channel is None:
            return
        samples, lost = stream.take(start, self.block)
        if lost:
            losses += [(channel, a, n) for a, n in lost]
        if samples is not None:
            taken.append((channel, samples, stream))

    def _finish_ended(self, sink: DriverSink) -> None:
        done = [m for m in self._ending if m.end is not None and self.position >= m.end]
        for media in done:
            self._ending.remove(media)
            for _, event in media.events:  # a pause or update still waiting: its time passed
                sink.line(event)
            assert media.slot is not None
            sink.line(LineEvent(2 * media.slot, LineEventKind.SESSION_END, dict(media.data)))
            self._free.append(media.slot)
            logger.info("%s: session %s over; channels %d-%d free", self.key, media.call_id,
                        2 * media.slot + 1, 2 * media.slot + 2)

    def _check_timeouts(self) -> None:
        if self.stats["blocks"] % 25:
            return  # twice a second is plenty for a timeout counted in seconds
        now = self._clock()
        limit = self.config.media_timeout_seconds
        self._lanes.sync_arrivals()
        for media in self._sessions.values():
            live = [s.last_packet for s in media.streams.values() if not s.paused]
            if media.timing_out or not live or now - max(live) < limit:
                continue
            media.timing_out = True
            logger.warning("%s: session %s sent no RTP for %.0f s; ending it", self.key,
                           media.call_id, now - max(live))
            self.end_call(media.call_id)

    def _shutdown(self) -> None:
        lanes = self._lanes.stats
        logger.info("%s: media thread stops: %d blocks, %d frames skipped; express lane: %d "
                    "packets, %d stream-blocks, %d entries, %d exits", self.key,
                    self.stats["blocks"], self.stats["lost_frames"], lanes["packets"],
                    lanes["blocks"], lanes["entered"], lanes["left"])
        for media in (*self._sessions.values(), *self._ending):
            for stream in media.all_streams():
                self._close(stream)
        self._sessions.clear()
        self._ending.clear()
        self._poller.close()
        self._wake_r.close()
        self._wake_w.close()

