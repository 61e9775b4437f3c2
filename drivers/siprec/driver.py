"""The ``siprec`` board's driver: a SIPREC recording server (RFC 7866) whose calls' parties are
the board's channels.

It runs two threads: the SIP server (``transport.SipServer``, thread ``siprec-sip-<key>``),
whose listener it is, and the media thread (``media.MediaEngine``, ``siprec-media-<key>``),
which owns the RTP sockets and delivers the board's blocks and line events. The listener's
calls go straight to the media thread and wait for it, so a new session's ports are bound
before its 200 OK leaves and a freed port is closed before the UAS hands it out again.

The board has ``2 * max_sessions`` channels, two per session (docs/siprec.md): the calls layer
(``recorder.calls.sessions``) hears each session as line events on its first channel and
records the pair as one call of the session's device.
"""

from __future__ import annotations

import logging
from typing import Any

from recorder.drivers.base import Driver, DriverSink, DriverState
from recorder.drivers.siprec.config import SiprecBoardConfig
from recorder.drivers.siprec.events import EndReason, RecordingSession, SessionChange
from recorder.drivers.siprec.media import MediaEngine
from recorder.drivers.siprec.transport import SipServer

logger = logging.getLogger(__name__)

__all__ = ["SiprecBoardConfig", "SiprecDriver"]


class SiprecDriver(Driver):
    """A siprec board; ``sip_options`` go to the SIP server (tests shorten its timers)."""

    def __init__(self, key: str, config: SiprecBoardConfig, *,
                 delay_seconds: float | None = None,
                 sip_options: dict[str, Any] | None = None) -> None:
        super().__init__(key, config.channels, config.sample_rate)
        self.config = config
        # RTP waits in the sockets while the media thread catches up (up to a second behind:
        # nothing is lost), and beyond that it reports the time it skips (media.py).
        self.reports_lost_time = True
        # ``delay_seconds``: tests override the board's playout_delay_seconds.
        self.media = MediaEngine(
            key, config, end_call=self._end_call,
            delay_seconds=config.playout_delay_seconds if delay_seconds is None
            else delay_seconds)
        self.sip = SipServer(key, config, self, **(sip_options or {}))

    def start(self, sink: DriverSink) -> None:
        self.media.realtime = self.realtime
        self.media.attach(sink)
        self.media.start()
        try:
            self.sip.start()
        except Exception as exc:
            self.media.stop()
            self.media.join(5.0)
            sink.state(DriverState.ERROR, str(exc))
            raise

    def stop(self) -> None:
        # The SIP server ends every session with a BYE first; the media thread, which those
        # endings still need, stops once it has (join).
        self.sip.stop()

    def join(self, timeout: float | None = None) -> bool:
        sip = self.sip.join(timeout)
        self.media.stop()
        return self.media.join(timeout) and sip

    # --- SessionListener (SIP thread) ---------------------------------------------------

    def session_started(self, session: RecordingSession) -> None:
        self.media.start_session(session)

    def session_updated(self, session: RecordingSession, change: SessionChange) -> None:
        self.media.update_session(session, change)

    def session_ended(self, session: RecordingSession, reason: EndReason) -> None:
        self.media.end_session(session)

    def _end_call(self, call_id: str) -> None:
        self.sip.end_session_soon(call_id)
