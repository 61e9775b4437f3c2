"""The media thread's streams and their sockets: opening a session's streams (and reusing
those a re-offer keeps), retiring and closing them, and which of them may take the express
lane. A part of ``MediaEngine`` (media.py), kept apart for length; it runs on the media
thread, which owns every socket.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Sequence

from recorder.drivers.siprec.config import IpNetwork, SiprecBoardConfig
from recorder.drivers.siprec.events import AnsweredStream
from recorder.drivers.siprec.lanes import Lanes
from recorder.drivers.siprec.mediastream import RtcpPort, StreamMedia, bind_pair
from recorder.drivers.siprec.poller import Poller
from recorder.drivers.siprec.slots import SessionMedia, family, ip_address

logger = logging.getLogger(__name__)


class StreamSockets:
    """``MediaEngine``'s stream handling (module docstring); the engine sets these."""

    key: str
    config: SiprecBoardConfig
    rate: int
    stats: dict[str, int]
    _clock: Callable[[], float]
    _poller: Poller
    _lanes: Lanes
    _networks: list[IpNetwork]

    def _attach_streams(self, media: SessionMedia, streams: Sequence[AnsweredStream],
                        first: tuple[int, ...], second: tuple[int, ...],
                        kept: tuple[int, ...], *, strict: bool = True) -> None:
        """Make ``media``'s streams ``streams``: those in ``kept`` stay (their direction and
        side brought up to date), the others are opened; any left over are retired. A port
        that cannot be bound raises OSError when ``strict`` (a new session: refused), else
        its stream is left out and counted (an update cannot be refused any more)."""
        self._lanes.leave_all(media.all_streams())
        old = media.streams
        media.streams = {}
        now = self._clock()
        for answered in streams:
            channel = None
            if media.slot is not None:
                channel = (2 * media.slot if answered.index in first else
                           2 * media.slot + 1 if answered.index in second else None)
            stream = old.pop(answered.index, None) if answered.index in kept else None
            if stream is not None:
                if stream.paused and not answered.paused:
                    stream.last_packet = now  # the media timeout starts over at a resume
                stream.stream, stream.channel = answered, channel
            else:
                previous = old.pop(answered.index, None)
                sock = rtcp = None
                if previous is not None and previous.port == answered.port:
                    # Same port, new codec or key: the sockets stay, the buffer is new.
                    sock, rtcp = previous.sock, previous.rtcp
                    previous.sock = previous.rtcp = None
                    self._retire(media, previous, unregister=(sock, rtcp))
                if sock is None:
                    try:
                        sock, rtcp = bind_pair(family(self.config.rtp_address),
                                               self.config.rtp_address, answered.port)
                    except OSError as exc:
                        if strict:
                            raise
                        self.stats["bind_failures"] += 1
                        logger.error("%s: session %s: RTP port %d cannot be bound (%s); its "
                                     "stream is not recorded", self.key, media.call_id,
                                     answered.port, exc)
                        continue
                stream = StreamMedia(answered, sock, channel, self.rate,
                                     allowed=self._allowed, now=now, rtcp=rtcp)
                self._poller.register(sock, stream)
                if rtcp is not None:
                    self._poller.register(rtcp, RtcpPort(stream))
            media.streams[answered.index] = stream
        for stream in old.values():
            self._retire(media, stream)
        self._mark_solo(media)

    @staticmethod
    def _mark_solo(media: SessionMedia) -> None:
        """Which streams are alone on their channel (only those may take the express lane:
        a channel's streams are added up the ordinary way)."""
        channels = [s.channel for s in media.all_streams()]
        for stream in media.streams.values():
            stream.solo = stream.channel is not None and channels.count(stream.channel) == 1
        for stream in media.retired:
            stream.solo = False

    def _retire(self, media: SessionMedia, stream: StreamMedia,
                unregister: Sequence[socket.socket | None] = ()) -> None:
        for sock in unregister:
            if sock is not None:
                self._poller.unregister(sock)
        self._close(stream)
        stream.finish()
        if media.slot is not None and not stream.drained:
            media.retired.append(stream)

    def _close(self, stream: StreamMedia) -> None:
        self._lanes.leave(stream)
        for sock in (stream.sock, stream.rtcp):
            if sock is not None:
                self._poller.unregister(sock)
        stream.close()

    def _allowed(self, host: str) -> bool:
        try:
            address = ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self._networks)

