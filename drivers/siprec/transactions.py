"""SIP transactions (RFC 3261 §17, with RFC 6026's Accepted state): matching and retransmission.

``TransactionLayer.receive`` takes every parsed message with the ``Flow`` it came on:

- A new request becomes a server transaction handed to the transaction user (the UAS core);
  an INVITE is answered 100 Trying at once (§17.2.1), so the SRC stops retransmitting it.
- A retransmitted request is absorbed: answered from the last response sent (§17.2.1,
  §17.2.2), never seen by the user again.
- An ACK to a non-2xx ends that INVITE's retransmissions (§17.2.1); an ACK to a 2xx is a
  transaction of its own, matched by Call-ID, CSeq number and To tag, and ends the 2xx's.
- A CANCEL is answered here (§9.2): 481 when no INVITE matches, else 200, and an INVITE not
  answered yet gets 487 after the user has been told.
- A response goes to the client transaction (a BYE or UPDATE we sent) it belongs to.

Final responses to INVITE are retransmitted over UDP from T1 doubling to T2 until the ACK,
up to Timer H (64*T1); a 2xx never ACKed is reported to the user, who ends the session
(§13.3.1.4). RFC 3261 puts the 2xx's retransmission in the UAS core; it lives here, beside
the non-2xx one, so the one schedule is written once. Over TCP and TLS nothing is
retransmitted (Timer H still runs): §13.3.1.4 would resend a 2xx on any transport, for a
proxy that forwards it over UDP, but SRCs talk to a recorder directly, and a reliable
transport delivers what it accepted.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from typing import Protocol

from recorder.drivers.siprec.clients import ClientTransaction, client_key
from recorder.drivers.siprec.flows import Flow, Sender
from recorder.drivers.siprec.sipheaders import Via
from recorder.drivers.siprec.sipmessage import (
    SipMessage,
    SipRequest,
    SipResponse,
    make_response,
    new_tag,
)
from recorder.drivers.siprec.timers import DEFAULT_SIP_TIMERS, SipTimers, TimerHandle, Timers

logger = logging.getLogger(__name__)

MAGIC_COOKIE = "z9hG4bK"  # an RFC 3261 branch (§8.1.1.7); without it, RFC 2543 matching
MAX_TRANSACTIONS = 20_000  # beyond it new requests get a stateless 503, not more memory


class TransactionUser(Protocol):
    """The UAS core, as the transaction layer sees it."""

    def request(self, transaction: ServerTransaction) -> None:
        """A new request (not ACK, not CANCEL); answer it through ``transaction.respond``."""

    def ack(self, request: SipRequest, flow: Flow) -> None:
        """An ACK that is not part of a non-2xx INVITE transaction (the ACK to a 2xx)."""

    def cancelled(self, transaction: InviteServerTransaction) -> None:
        """A CANCEL for an INVITE not answered yet; the layer answers it 487 afterwards."""

    def unacknowledged(self, transaction: InviteServerTransaction) -> None:
        """A 2xx to this INVITE was never ACKed within Timer H."""


class State(enum.Enum):
    TRYING = "trying"  # non-INVITE, nothing sent yet
    PROCEEDING = "proceeding"
    COMPLETED = "completed"  # a final response sent (non-2xx for INVITE)
    ACCEPTED = "accepted"  # a 2xx to INVITE sent (RFC 6026)
    CONFIRMED = "confirmed"  # the non-2xx was ACKed
    TERMINATED = "terminated"


def _top_via(message: SipMessage) -> Via:
    return Via.parse(message.headers.values("via")[0])


def server_key(request: SipRequest, method: str | None = None) -> tuple[str, ...]:
    """The key that matches a request to its server transaction (§17.2.3); an ACK matches its
    INVITE's, and ``method`` asks for another method's (a CANCEL's INVITE)."""
    via = _top_via(request)
    method = method or ("INVITE" if request.method == "ACK" else request.method)
    sent_by = f"{via.host}:{via.port or ''}"
    if via.branch and via.branch.startswith(MAGIC_COOKIE):
        return (via.branch, sent_by, method)
    # RFC 2543 peers: Request-URI, From tag, Call-ID, CSeq number and the top Via. The To tag
    # is left out: an ACK carries the tag our response added, the INVITE had none.
    return (request.uri, request.from_.tag or "", request.call_id, str(request.cseq.number),
            via.to_string(), method)


class ServerTransaction:
    """One request we serve and the responses we send to it."""

    def __init__(self, layer: TransactionLayer, key: tuple[str, ...], request: SipRequest,
                 flow: Flow) -> None:
        self.layer = layer
        self.key = key
        self.request = request
        self.flow = flow
        self.state = State.TRYING
        self.last_response: SipResponse | None = None
        # Every response we send carries one To tag (§9.2 wants the CANCEL's 200 and the
        # INVITE's response alike); it becomes the dialog's local tag.
        self.to_tag = request.to.tag or new_tag()
        self._handles: list[TimerHandle] = []

    @property
    def method(self) -> str:
        return self.request.method

    @property
    def answered(self) -> bool:
        """A final response has been sent."""
        return self.state not in (State.TRYING, State.PROCEEDING)

    def response(self, status: int, reason: str | None = None, *,
                 headers: list[tuple[str, str]] | None = None, body: bytes = b"",
                 content_type: str | None = None) -> SipResponse:
        """A response to this request (§8.2.6) with the transaction's To tag."""
        return make_response(self.request, status, reason, to_tag=self.to_tag,
                             headers=headers, body=body, content_type=content_type)

    def respond(self, response: SipResponse) -> None:
        raise NotImplementedError

    def retransmitted(self) -> None:
        """The same request came again: answer it with what was sent last."""
        if self.last_response is not None and self.state is not State.ACCEPTED:
            self._send(self.last_response)

    def terminate(self) -> None:
        """Stop every timer and forget the transaction."""
        for handle in self._handles:
            handle.cancel()
        self._handles.clear()
        self.state = State.TERMINATED
        self.layer.forget(self)

    def _send(self, response: SipResponse) -> None:
        self.layer.send(response, self.flow)

    def _later(self, delay: float, callback: Callable[[], None]) -> None:
        self._handles.append(self.layer.timers.call_later(delay, callback))


class NonInviteServerTransaction(ServerTransaction):
    """§17.2.2: the final response is cached for Timer J (64*T1 over UDP, 0 over TCP), so a
    retransmitted request is answered without reaching the user again."""

    def respond(self, response: SipResponse) -> None:
        if self.answered:
            logger.warning("%s %s: a second final response (%d) is dropped", self.method,
                           self.request.call_id, response.status)
            return
        self.last_response = response
        self._send(response)
        if response.status < 200:
            self.state = State.PROCEEDING
            return
        self.state = State.COMPLETED
        linger = 0.0 if self.flow.reliable else self.layer.sip_timers.transaction_timeout
        self._later(linger, self.terminate)


class InviteServerTransaction(ServerTransaction):
    """§17.2.1 and RFC 6026: Proceeding, then Completed (non-2xx) or Accepted (2xx)."""

    def __init__(self, layer: TransactionLayer, key: tuple[str, ...], request: SipRequest,
                 flow: Flow) -> None:
        super().__init__(layer, key, request, flow)
        self.state = State.PROCEEDING
        self.acked = False
        self.retransmissions = 0

    def respond(self, response: SipResponse) -> None:
        if self.answered:
            logger.warning("INVITE %s: a response (%d) after the final one is dropped",
                           self.request.call_id, response.status)
            return
        self.last_response = response
        self._send(response)
        if response.status < 200:
            return
        timers = self.layer.sip_timers
        if response.status < 300:
            self.state = State.ACCEPTED
            self.layer.awaiting_ack(self)
        else:
            self.state = State.COMPLETED
        if not self.flow.reliable:
            self._later(timers.t1, lambda: self._retransmit(timers.t1))
        self._later(timers.transaction_timeout, self._timer_h)

    def _retransmit(self, interval: float) -> None:
        if self.last_response is None or self.state not in (State.COMPLETED, State.ACCEPTED):
            return
        if self.state is State.ACCEPTED and self.acked:
            return
        self.retransmissions += 1
        self._send(self.last_response)
        following = min(2 * interval, self.layer.sip_timers.t2)
        self._later(following, lambda: self._retransmit(following))

    def _timer_h(self) -> None:
        unacked_2xx = self.state is State.ACCEPTED and not self.acked
        if self.state is State.COMPLETED:
            logger.info("INVITE %s: no ACK for the %s", self.request.call_id,
                        self.last_response.status if self.last_response else "response")
        self.terminate()
        if unacked_2xx:
            self.layer.tu.unacknowledged(self)

    def ack(self) -> None:
        """The ACK: to a non-2xx it confirms (Timer I absorbs its copies); to a 2xx it stops
        the retransmissions, and the transaction stays to absorb late INVITE copies."""
        if self.state is State.COMPLETED:
            self.state = State.CONFIRMED
            for handle in self._handles:
                handle.cancel()
            self._handles.clear()
            linger = 0.0 if self.flow.reliable else self.layer.sip_timers.t4
            self._later(linger, self.terminate)
        elif self.state is State.ACCEPTED:
            self.acked = True

    def stop_retransmitting(self) -> None:
        """The dialog is over (a BYE before the ACK): stop sending its 2xx, stay to absorb."""
        self.acked = True


class TransactionLayer:
    """Matches messages to transactions and runs their timers; see the module docstring."""

    def __init__(self, timers: Timers, send: Sender, sip_timers: SipTimers = DEFAULT_SIP_TIMERS,
                 max_transactions: int = MAX_TRANSACTIONS) -> None:
        self.timers = timers
        self.sip_timers = sip_timers
        self.max_transactions = max_transactions
        self._send = send
        self._tu: TransactionUser | None = None
        self._server: dict[tuple[str, ...], ServerTransaction] = {}
        self._client: dict[tuple[str, str], ClientTransaction] = {}
        # 2xx-answered INVITEs by (Call-ID, CSeq number, To tag): how the ACK finds them.
        self._accepted: dict[tuple[str, int, str], InviteServerTransaction] = {}

    @property
    def tu(self) -> TransactionUser:
        if self._tu is None:
            raise RuntimeError("the transaction layer has no user yet")
        return self._tu

    @tu.setter
    def tu(self, user: TransactionUser) -> None:
        self._tu = user

    @property
    def server_transactions(self) -> int:
        return len(self._server)

    def send(self, message: SipMessage, flow: Flow) -> None:
        try:
            self._send(message, flow)
        except Exception:
            logger.exception("sending a SIP message to %s:%d failed", *flow.remote)

    def receive(self, message: SipMessage, flow: Flow) -> None:
        if isinstance(message, SipResponse):
            self._response(message)
        elif message.method == "ACK":
            self._ack(message, flow)
        else:
            self._request(message, flow)

    def _response(self, response: SipResponse) -> None:
        key = client_key(response)
        client = self._client.get(key)
        if client is None:
            logger.debug("a stray %d response for %s is dropped", response.status, key)
            return
        client.receive(response)

    def _ack(self, ack: SipRequest, flow: Flow) -> None:
        found = self._server.get(server_key(ack))
        if isinstance(found, InviteServerTransaction) and found.state in (
                State.COMPLETED, State.CONFIRMED):
            found.ack()
            return
        accepted = self._accepted.get((ack.call_id, ack.cseq.number, ack.to.tag or ""))
        if accepted is not None:
            accepted.ack()
        self.tu.ack(ack, flow)

    def _request(self, request: SipRequest, flow: Flow) -> None:
        key = server_key(request)
        existing = self._server.get(key)
        if existing is not None:
            existing.retransmitted()
            return
        if len(self._server) >= self.max_transactions:
            logger.warning("%d transactions open: %s %s refused with 503",
                           len(self._server), request.method, request.call_id)
            self.send(make_response(request, 503, headers=[("Retry-After", "5")]), flow)
            return
        transaction: ServerTransaction
        if request.method == "INVITE":
            transaction = InviteServerTransaction(self, key, request, flow)
        else:
            transaction = NonInviteServerTransaction(self, key, request, flow)
        self._server[key] = transaction
        if isinstance(transaction, InviteServerTransaction):
            # At once, not after 200 ms (§17.2.1 allows either): nothing is gained by waiting.
            transaction.respond(transaction.response(100))
        if request.method == "CANCEL":
            self._cancel(transaction)
            return
        try:
            self.tu.request(transaction)
        except Exception:
            logger.exception("%s %s: handling failed", request.method, request.call_id)
            if not transaction.answered:
                transaction.respond(transaction.response(500))

    def _cancel(self, cancel: ServerTransaction) -> None:
        target = self._server.get(server_key(cancel.request, "INVITE"))
        if not isinstance(target, InviteServerTransaction):
            cancel.respond(cancel.response(481))
            return
        cancel.to_tag = target.to_tag
        cancel.respond(cancel.response(200))
        if target.answered:
            return  # §9.2: no effect on a request already answered
        try:
            self.tu.cancelled(target)
        except Exception:
            logger.exception("INVITE %s: handling its CANCEL failed", target.request.call_id)
        if not target.answered:
            target.respond(target.response(487))

    def awaiting_ack(self, transaction: InviteServerTransaction) -> None:
        request = transaction.request
        self._accepted[(request.call_id, request.cseq.number, transaction.to_tag)] = transaction

    def forget(self, transaction: ServerTransaction) -> None:
        if self._server.get(transaction.key) is transaction:
            del self._server[transaction.key]
        request = transaction.request
        accepted_key = (request.call_id, request.cseq.number, transaction.to_tag)
        if self._accepted.get(accepted_key) is transaction:
            del self._accepted[accepted_key]

    def send_request(self, request: SipRequest, flow: Flow,
                     on_final: Callable[[SipResponse | None], None]) -> ClientTransaction:
        """Send a non-INVITE request reliably; ``on_final`` gets its final response (or None)."""
        client = ClientTransaction(request, flow, on_final, timers=self.timers,
                                   sip_timers=self.sip_timers, send=self.send,
                                   done=self._forget_client)
        self._client[client.key] = client
        client.start()
        return client

    def _forget_client(self, client: ClientTransaction) -> None:
        if self._client.get(client.key) is client:
            del self._client[client.key]

    def close(self) -> None:
        """Stop every timer (the server is stopping)."""
        for transaction in list(self._server.values()):
            transaction.terminate()
        for client in list(self._client.values()):
            client.cancel()
        self._client.clear()
        self._accepted.clear()
