"""The requests the recording server sends itself (RFC 3261 §17.1.2, non-INVITE client
transactions): the BYE that ends a session we end, the UPDATE that refreshes one when the SRC
made us the session refresher.

Over UDP Timer E sends the request again from T1 doubling to T2 (every T2 once a provisional
response came); Timer F gives up at 64*T1. ``on_final`` hears the final response, or None on
a timeout, exactly once; copies of the final response are absorbed for T4 (Timer K).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from recorder.drivers.siprec.flows import Flow, Sender
from recorder.drivers.siprec.sipheaders import Via
from recorder.drivers.siprec.sipmessage import SipRequest, SipResponse
from recorder.drivers.siprec.timers import SipTimers, TimerHandle, Timers

logger = logging.getLogger(__name__)


def client_key(message: SipRequest | SipResponse) -> tuple[str, str]:
    """What a response shares with the request it answers (§17.1.3): branch, CSeq method."""
    return (Via.parse(message.headers.values("via")[0]).branch or "", message.cseq.method)


class ClientTransaction:
    """One request we send, until its final response (or Timer F)."""

    def __init__(self, request: SipRequest, flow: Flow,
                 on_final: Callable[[SipResponse | None], None], *, timers: Timers,
                 sip_timers: SipTimers, send: Sender,
                 done: Callable[[ClientTransaction], None]) -> None:
        self.request = request
        self.flow = flow
        self.key = client_key(request)
        self.provisional = False  # a 1xx came: Timer E runs at T2
        self.finished = False
        self._on_final = on_final
        self._timers = timers
        self._sip = sip_timers
        self._send = send
        self._done = done
        self._handles: list[TimerHandle] = []

    def start(self) -> None:
        self._send(self.request, self.flow)
        if not self.flow.reliable:
            self._later(self._sip.t1, lambda: self._retransmit(self._sip.t1))
        self._later(self._sip.transaction_timeout, lambda: self._finish(None))

    def _retransmit(self, interval: float) -> None:
        if self.finished:
            return
        self._send(self.request, self.flow)
        following = self._sip.t2 if self.provisional else min(2 * interval, self._sip.t2)
        self._later(following, lambda: self._retransmit(following))

    def receive(self, response: SipResponse) -> None:
        if self.finished:
            return  # a copy of the final response, absorbed (Timer K)
        if response.status < 200:
            self.provisional = True
            return
        self._finish(response)

    def _finish(self, response: SipResponse | None) -> None:
        if self.finished:
            return
        self.cancel()
        self.finished = True
        linger = 0.0 if self.flow.reliable else self._sip.t4
        self._later(linger, lambda: self._done(self))
        try:
            self._on_final(response)
        except Exception:
            logger.exception("%s %s: handling its response failed", self.request.method,
                             self.request.call_id)

    def cancel(self) -> None:
        """Stop its timers (its answer came, or the server is stopping)."""
        for handle in self._handles:
            handle.cancel()
        self._handles.clear()

    def _later(self, delay: float, callback: Callable[[], None]) -> None:
        self._handles.append(self._timers.call_later(delay, callback))
