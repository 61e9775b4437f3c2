"""The UAS core of the recording server: requests to recording sessions (RFC 3261 §8.2, §12-15,
RFC 7866 §6.1), one handler per method in ``Uas.HANDLERS``.

Every request first passes the checks of §8.2: a sip/sips Request-URI (else 416), a method we
serve (else 405/501 with Allow), every Require tag understood (siprec, timer, 100rel; else 420
with Unsupported); a request inside a dialog must name a live one (else 481) and be in CSeq
order (else 500). Then:

- INVITE starts a session: 503 with Retry-After over ``max_sessions`` or out of RTP ports,
  415/400 for a body we cannot take, 488 without an SDP offer or a stream we can record, 422
  for a session interval under Min-SE; else the listener hears ``session_started`` (it may
  refuse with CapacityExceeded: 503) and the SRC gets 200 with our answer.
- re-INVITE and UPDATE change it: a new offer (ports kept per m-line, new ones for new
  streams, freed for dropped ones), a metadata update (partial ones merged), a pause or
  resume; the listener hears ``session_updated`` when anything changed. A failed one leaves
  the session as it was (§14.2). Either refreshes the session timer.
- BYE ends it; INFO is answered 200 (SRCs send keep-alives and DTMF relays we do not need);
  OPTIONS gets our capabilities in or out of a dialog; PRACK gets 481, since we never send a
  reliable provisional response (RFC 3262 §3: we answer 200 at once, even to Require: 100rel).

Sessions also end when their 200 is never ACKed, when their session timer runs out, on
``end_session`` (the recorder's media timeout) and on ``shutdown``; we then send the BYE.
Everything here runs on the SIP thread; nothing blocks.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import ClassVar

from recorder.drivers.siprec import offers, sessiontimer
from recorder.drivers.siprec.answers import Answers, capabilities, precheck, warning
from recorder.drivers.siprec.dialogs import Dialog, dialog_key
from recorder.drivers.siprec.errors import ProtocolError
from recorder.drivers.siprec.events import (
    CapacityExceeded,
    DialogId,
    EndReason,
    RecordingSession,
    SessionListener,
    compare,
)
from recorder.drivers.siprec.flows import Flow
from recorder.drivers.siprec.metadata import RecordingMetadata, merge
from recorder.drivers.siprec.ports import PortAllocator
from recorder.drivers.siprec.sdp import Answer
from recorder.drivers.siprec.sessiontimer import TimerAnswer
from recorder.drivers.siprec.sipmessage import SipRequest, SipResponse
from recorder.drivers.siprec.timers import TimerHandle
from recorder.drivers.siprec.transactions import (
    InviteServerTransaction,
    ServerTransaction,
    TransactionLayer,
)
from recorder.drivers.siprec.vendor import cisco_participants

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class UasSettings:
    """What the UAS needs of the board's settings and the bound transports."""

    host: str  # the address SRCs reach us at (Contact, Via)
    sip_ports: dict[str, int]  # transport ("UDP", "TCP", "TLS") -> our port
    rtp_address: str  # the address our SDP answers offer
    max_sessions: int = 500
    min_se: int = sessiontimer.RFC_MIN_SE  # tests lower it to watch a session expire


@dataclass
class _Live:
    """A session's mutable state, owned by the SIP thread."""

    dialog: Dialog
    session: RecordingSession
    timer: TimerAnswer
    answer: Answer  # our last answer: its streams, and the SDP a re-INVITE without one gets
    sdp_version: int = 1
    invite: InviteServerTransaction | None = None
    handles: list[TimerHandle] = field(default_factory=list)

    def cancel_timers(self) -> None:
        for handle in self.handles:
            handle.cancel()
        self.handles.clear()


class Uas:
    """The transaction user of the recording server; see the module docstring."""

    def __init__(self, layer: TransactionLayer, listener: SessionListener,
                 ports: PortAllocator, settings: UasSettings,
                 wallclock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.layer = layer
        self.listener = listener
        self.ports = ports
        self.settings = settings
        self._wallclock = wallclock
        self._live: dict[DialogId, _Live] = {}
        self._session_id = secrets.randbelow(2**31)  # the o= session id of our answers
        self.answers = Answers(settings.host, settings.sip_ports)
        layer.tu = self

    HANDLERS: ClassVar[dict[str, Callable[[Uas, ServerTransaction, _Live | None], None]]] = {}

    @property
    def sessions(self) -> list[RecordingSession]:
        return [live.session for live in self._live.values()]

    def connections(self) -> set[int]:
        """The TCP/TLS connections live sessions answer on (the transport keeps them open)."""
        return {live.dialog.flow.connection for live in self._live.values()}

    # --- the transaction layer's calls -------------------------------------------------

    def request(self, transaction: ServerTransaction) -> None:
        request = transaction.request
        method = request.method
        refusal = precheck(request, self.HANDLERS)
        if refusal is not None:
            status, headers = refusal
            transaction.respond(transaction.response(status, headers=headers))
            return
        live: _Live | None = None
        if request.to.tag is not None:
            live = self._live.get(dialog_key(request))
            if live is None:
                transaction.respond(transaction.response(481))
                return
            if not live.dialog.in_order(request):
                transaction.respond(transaction.response(500, headers=[
                    warning(self.settings.host, "CSeq out of order")]))
                return
            live.dialog.flow = transaction.flow  # what we send goes the latest way
        elif method not in ("INVITE", "OPTIONS"):
            transaction.respond(transaction.response(481))
            return
        self.HANDLERS[method](self, transaction, live)

    def ack(self, request: SipRequest, flow: Flow) -> None:
        live = self._live.get(dialog_key(request))
        if live is not None:
            live.dialog.flow = flow  # the ACK to a 2xx answers nothing; only note the way

    def cancelled(self, transaction: InviteServerTransaction) -> None:
        # Every INVITE is answered before its handler returns, so a CANCEL only ever finds
        # answered ones; should one be pending, the layer's 487 is all there is to do.
        logger.info("INVITE %s cancelled before its answer", transaction.request.call_id)

    def unacknowledged(self, transaction: InviteServerTransaction) -> None:
        request = transaction.request
        live = self._live.get(DialogId(request.call_id, transaction.to_tag,
                                       request.from_.tag or ""))
        if live is not None and live.invite is transaction:
            logger.warning("session %s: our 200 was never ACKed; ending it", request.call_id)
            self._end(live, EndReason.NO_ACK, send_bye=True)

    # --- handlers ---------------------------------------------------------------------

    def _invite(self, transaction: ServerTransaction, live: _Live | None) -> None:
        assert isinstance(transaction, InviteServerTransaction)
        if live is not None:
            self._modify(transaction, live)
        else:
            self._new_session(transaction)

    def _new_session(self, transaction: InviteServerTransaction) -> None:
        request = transaction.request
        if len(self._live) >= self.settings.max_sessions:
            logger.warning("INVITE %s refused: %d sessions is max_sessions", request.call_id,
                           len(self._live))
            self.answers.refuse(transaction, ProtocolError("max_sessions reached", 503))
            return
        try:
            offer = offers.read_offer(request)
            if offer.sdp is None:
                raise ProtocolError("an INVITE without an SDP offer", 488)
            timer = sessiontimer.negotiate(request.headers, self.settings.min_se)
            if timer.too_small is not None:
                transaction.respond(transaction.response(422, headers=timer.headers))
                return
            metadata = (merge(RecordingMetadata(), offer.metadata)
                        if offer.metadata is not None else None)
            answer, _ = offers.answer_offer(
                offer.sdp, held={}, allocate=self.ports.allocate, release=self.ports.release,
                address=self.settings.rtp_address, session_id=self._session_id, version=1)
        except ProtocolError as exc:
            self.answers.refuse(transaction, exc)
            return
        parties = tuple(cisco_participants(request.headers))
        session = RecordingSession(
            dialog=DialogId(request.call_id, transaction.to_tag, request.from_.tag or ""),
            from_=request.from_, to=request.to, source=transaction.flow.remote,
            transport=transaction.flow.transport, headers=request.headers, metadata=metadata,
            vendor_parties=parties,
            global_call_id=offers.session_call_id(metadata, request.headers),
            streams=offers.answered_streams(answer, metadata, parties),
            started_at=self._wallclock())
        ports = [s.port for s in answer.accepted]
        try:
            self.listener.session_started(session)
        except CapacityExceeded as exc:
            logger.warning("INVITE %s refused by the recorder: %s", request.call_id, exc)
            self._release(ports)
            self.answers.refuse(transaction, ProtocolError(str(exc), 503), exc.retry_after)
            return
        except Exception:
            logger.exception("INVITE %s: the session listener failed", request.call_id)
            self._release(ports)
            transaction.respond(transaction.response(500))
            return
        dialog = Dialog.from_invite(request, transaction.to_tag, transaction.flow)
        live = _Live(dialog, session, timer, answer, invite=transaction)
        self._live[dialog.id] = live
        logger.info("session %s started from %s:%d: %d stream(s) on ports %s",
                    request.call_id, *transaction.flow.remote, len(session.streams),
                    ", ".join(map(str, ports)))
        transaction.respond(self.answers.ok(transaction, timer, answer.sdp))
        self._arm(live)

    def _modify(self, transaction: ServerTransaction, live: _Live) -> None:
        """A re-INVITE or UPDATE: new offer and/or metadata, and a session refresh."""
        request = transaction.request
        is_invite = request.method == "INVITE"
        previous = live.session
        try:
            offer = offers.read_offer(request)
            timer = sessiontimer.negotiate(request.headers, self.settings.min_se)
            if timer.too_small is not None:
                transaction.respond(transaction.response(422, headers=timer.headers))
                return
            answer = None
            if offer.sdp is not None:
                held = {s.index: s.port for s in previous.streams}
                answer, _ = offers.answer_offer(
                    offer.sdp, held=held, allocate=self.ports.allocate,
                    release=self.ports.release, address=self.settings.rtp_address,
                    session_id=self._session_id, version=live.sdp_version + 1)
        except ProtocolError as exc:
            self.answers.refuse(transaction, exc)
            return
        metadata = previous.metadata
        if offer.metadata is not None:
            metadata = merge(metadata or RecordingMetadata(), offer.metadata)
        parties = tuple(cisco_participants(request.headers)) or previous.vendor_parties
        body = b""
        if answer is not None:
            live.answer = answer
            live.sdp_version += 1
            body = answer.sdp
        elif is_invite:
            # A re-INVITE without SDP asks us for an offer: our last description, unchanged
            # (RFC 3264 §8); the answer comes in the ACK and changes nothing we record.
            body = live.answer.sdp
        # Without a new offer the streams stay; the metadata may still pause or resume them.
        streams = offers.answered_streams(live.answer, metadata, parties)
        session = replace(previous, metadata=metadata, vendor_parties=parties, streams=streams,
                          global_call_id=previous.global_call_id
                          or offers.session_call_id(metadata, request.headers))
        live.session, live.timer = session, timer
        live.dialog.refresh_target(request)
        if isinstance(transaction, InviteServerTransaction):
            live.invite = transaction
        change = compare(previous, session)
        if change:
            # Before the answer: once the SRC has our 200, the recorder knows what it says.
            logger.info("session %s updated: streams %s, paused %s, resumed %s, metadata %s",
                        request.call_id, change.streams, sorted(change.paused),
                        sorted(change.resumed), change.metadata)
            self._notify(lambda: self.listener.session_updated(session, change))
        self._release(set(previous.ports) - set(session.ports))
        transaction.respond(self.answers.ok(transaction, timer, body))
        self._arm(live)

    def _update(self, transaction: ServerTransaction, live: _Live | None) -> None:
        assert live is not None
        self._modify(transaction, live)

    def _bye(self, transaction: ServerTransaction, live: _Live | None) -> None:
        assert live is not None
        self._end(live, EndReason.BYE, send_bye=False)  # the 200 then says it is over here
        transaction.respond(transaction.response(200))

    def _options(self, transaction: ServerTransaction, live: _Live | None) -> None:
        transaction.respond(transaction.response(200, headers=capabilities()))

    def _info(self, transaction: ServerTransaction, live: _Live | None) -> None:
        transaction.respond(transaction.response(200))

    def _prack(self, transaction: ServerTransaction, live: _Live | None) -> None:
        transaction.respond(transaction.response(481))

    HANDLERS.update({"INVITE": _invite, "UPDATE": _update, "BYE": _bye, "OPTIONS": _options,
                     "INFO": _info, "PRACK": _prack})

    # --- session timers (RFC 4028) ----------------------------------------------------

    def _arm(self, live: _Live) -> None:
        live.cancel_timers()
        interval = live.timer.interval
        if interval is None:
            return
        timers = self.layer.timers
        delay = sessiontimer.expiry_delay(interval, live.timer.refresher)
        live.handles.append(timers.call_later(delay, lambda: self._expired(live)))
        if live.timer.we_refresh:
            live.handles.append(timers.call_later(sessiontimer.refresh_delay(interval),
                                                  lambda: self._refresh(live)))

    def _expired(self, live: _Live) -> None:
        if self._live.get(live.dialog.id) is live:
            logger.warning("session %s was not refreshed in time; ending it",
                           live.dialog.id.call_id)
            self._end(live, EndReason.SESSION_EXPIRED, send_bye=True)

    def _refresh(self, live: _Live) -> None:
        """We are the refresher (the SRC asked): an UPDATE without a body (RFC 4028 §7.4)."""
        interval = live.timer.interval
        if self._live.get(live.dialog.id) is not live or interval is None:
            return
        flow = live.dialog.flow
        update = live.dialog.request("UPDATE", self.answers.sent_by(flow.transport), [
            ("Contact", self.answers.contact(live.dialog.remote_target, flow.transport)),
            ("Session-Expires", f"{interval};refresher=uas"), ("Supported", "timer")])

        def refreshed(response: SipResponse | None) -> None:
            if self._live.get(live.dialog.id) is not live:
                return
            if response is None or not 200 <= response.status < 300:
                logger.warning("session %s: our refresh got %s", live.dialog.id.call_id,
                               response.status if response else "no answer")
                return  # the expiry timer still runs: the session ends if nothing refreshes
            renewed = sessiontimer.refreshed_interval(response.headers, interval)
            live.timer = replace(live.timer, interval=renewed)
            self._arm(live)

        self.layer.send_request(update, flow, refreshed)

    # --- ending ---------------------------------------------------------------------------

    def end_session(self, call_id: str, reason: EndReason = EndReason.LOCAL) -> bool:
        """End the session(s) of ``call_id`` with a BYE (on the SIP thread); False if none."""
        found = [live for live in self._live.values() if live.dialog.id.call_id == call_id]
        for live in found:
            self._end(live, reason, send_bye=True)
        return bool(found)

    def shutdown(self) -> None:
        """End every session with a BYE: the server is stopping."""
        for live in list(self._live.values()):
            self._end(live, EndReason.SHUTDOWN, send_bye=True)

    def _end(self, live: _Live, reason: EndReason, *, send_bye: bool) -> None:
        if self._live.pop(live.dialog.id, None) is None:
            return
        live.cancel_timers()
        if live.invite is not None:
            live.invite.stop_retransmitting()
        if send_bye:
            flow = live.dialog.flow
            bye = live.dialog.request("BYE", self.answers.sent_by(flow.transport))
            self.layer.send_request(bye, flow, lambda response: None)
        logger.info("session %s ended: %s", live.dialog.id.call_id, reason)
        session = live.session
        self._notify(lambda: self.listener.session_ended(session, reason))
        self._release(session.ports)

    def _release(self, ports: Iterable[int]) -> None:
        for port in ports:
            self.ports.release(port)

    def _notify(self, call: Callable[[], None]) -> None:
        try:
            call()
        except Exception:
            logger.exception("the session listener failed")


