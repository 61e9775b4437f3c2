"""SIP transactions (RFC 3261 §17, RFC 6026) on a clock moved by hand: the retransmission
schedule of final responses (T1 doubling to T2), the ACK that stops it, Timer H, CANCEL and
its 487, retransmitted requests absorbed, the non-INVITE cache (Timer J), and the client
transactions of the requests we send (Timers E and F)."""

from __future__ import annotations

import pytest

from recorder.drivers.siprec.flows import Flow
from recorder.drivers.siprec.sipmessage import SipMessage, SipRequest, SipResponse, parse_message
from recorder.drivers.siprec.timers import SipTimers
from recorder.drivers.siprec.transactions import (
    InviteServerTransaction,
    ServerTransaction,
    State,
    TransactionLayer,
)
from tests.helpers.sipclient import FakeTimers

UDP = Flow("UDP", ("192.0.2.1", 5060))
TCP = Flow("TCP", ("192.0.2.1", 40000), connection=7)
# Where a 2xx to INVITE is sent again over UDP, from T1 = 0.5 s doubling to T2 = 4 s, until
# Timer H at 64*T1 = 32 s.
SCHEDULE = [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]


def request(method: str, *, branch: str = "z9hG4bKaaa", cseq: int = 1,
            to_tag: str | None = None, cseq_method: str | None = None) -> SipRequest:
    to = "<sip:rec@192.0.2.9>" + (f";tag={to_tag}" if to_tag else "")
    text = (f"{method} sip:rec@192.0.2.9 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 192.0.2.1:5060;branch={branch}\r\n"
            "From: <sip:src@192.0.2.1>;tag=src1\r\n"
            f"To: {to}\r\nCall-ID: call-1@192.0.2.1\r\n"
            f"CSeq: {cseq} {cseq_method or method}\r\nContent-Length: 0\r\n\r\n")
    message = parse_message(text.encode())
    assert isinstance(message, SipRequest)
    return message


class User:
    """A transaction user that answers (or not) as the test says and keeps what it saw."""

    def __init__(self, answer: int | None = 200) -> None:
        self.answer = answer
        self.requests: list[ServerTransaction] = []
        self.acks: list[SipRequest] = []
        self.cancelled: list[InviteServerTransaction] = []
        self.unacknowledged: list[InviteServerTransaction] = []

    def request(self, transaction: ServerTransaction) -> None:
        self.requests.append(transaction)
        if self.answer is not None:
            transaction.respond(transaction.response(self.answer))

    def ack(self, request: SipRequest, flow: Flow) -> None:
        self.acks.append(request)

    def cancelled_(self, transaction: InviteServerTransaction) -> None:
        self.cancelled.append(transaction)

    def unacknowledged_(self, transaction: InviteServerTransaction) -> None:
        self.unacknowledged.append(transaction)


class _Adapter:
    def __init__(self, user: User) -> None:
        self.user = user
        self.request = user.request
        self.ack = user.ack
        self.cancelled = user.cancelled_
        self.unacknowledged = user.unacknowledged_


class Harness:
    def __init__(self, answer: int | None = 200) -> None:
        self.timers = FakeTimers()
        self.sent: list[tuple[float, SipMessage, Flow]] = []
        self.layer = TransactionLayer(self.timers, self._send, SipTimers())
        self.user = User(answer)
        self.layer.tu = _Adapter(self.user)

    def _send(self, message: SipMessage, flow: Flow) -> None:
        self.sent.append((self.timers.now(), message, flow))

    def statuses(self) -> list[int]:
        return [m.status for _, m, _ in self.sent if isinstance(m, SipResponse)]

    def times(self, status: int) -> list[float]:
        return [t for t, m, _ in self.sent if isinstance(m, SipResponse) and m.status == status]


@pytest.mark.parametrize("final", [200, 486])
def test_a_final_response_is_retransmitted_from_t1_to_t2_until_timer_h(final: int) -> None:
    h = Harness(final)
    h.layer.receive(request("INVITE"), UDP)
    assert h.statuses() == [100, final]  # 100 Trying at once, then the user's answer
    h.timers.advance(40)
    assert h.times(final) == [0.0, *SCHEDULE]
    assert h.layer.server_transactions == 0  # Timer H ended it
    # A 2xx never ACKed is the user's to end (§13.3.1.4); a non-2xx is only given up.
    assert len(h.user.unacknowledged) == (1 if final == 200 else 0)


def test_the_ack_to_a_2xx_stops_its_retransmissions() -> None:
    h = Harness(200)
    invite = request("INVITE")
    h.layer.receive(invite, UDP)
    to_tag = h.user.requests[0].to_tag
    h.timers.advance(2.0)  # two retransmissions
    h.layer.receive(request("ACK", branch="z9hG4bKack", to_tag=to_tag, cseq_method="ACK"), UDP)
    assert len(h.user.acks) == 1  # the 2xx's ACK reaches the user (it confirms the dialog)
    h.timers.advance(40)
    assert h.times(200) == [0.0, 0.5, 1.5]
    assert h.user.unacknowledged == []
    assert h.layer.server_transactions == 0


def test_the_ack_to_a_non_2xx_is_absorbed_by_its_transaction() -> None:
    h = Harness(486)
    h.layer.receive(request("INVITE"), UDP)
    transaction = h.user.requests[0]
    h.timers.advance(0.6)
    h.layer.receive(request("ACK", to_tag=transaction.to_tag, cseq_method="ACK"), UDP)
    assert transaction.state is State.CONFIRMED
    h.layer.receive(request("ACK", to_tag=transaction.to_tag, cseq_method="ACK"), UDP)
    assert h.user.acks == []  # the ACKs of a non-2xx belong to the transaction (§17.2.1)
    h.timers.advance(5.0)  # Timer I = T4
    assert transaction.state is State.TERMINATED
    assert h.times(486) == [0.0, 0.5]


def test_over_tcp_nothing_is_retransmitted_but_timer_h_still_runs() -> None:
    h = Harness(200)
    h.layer.receive(request("INVITE"), TCP)
    h.timers.advance(31.9)
    assert h.statuses() == [100, 200]
    h.timers.advance(0.2)
    assert len(h.user.unacknowledged) == 1
    assert all(flow is TCP for _, _, flow in h.sent)


def test_a_retransmitted_invite_is_absorbed() -> None:
    h = Harness(answer=None)
    h.layer.receive(request("INVITE"), UDP)
    h.layer.receive(request("INVITE"), UDP)
    # Proceeding: the copy gets the last provisional response again, the user nothing.
    assert h.statuses() == [100, 100]
    assert len(h.user.requests) == 1
    transaction = h.user.requests[0]
    transaction.respond(transaction.response(200))
    h.layer.receive(request("INVITE"), UDP)
    # Accepted (RFC 6026): absorbed; the 2xx goes again on its own schedule only.
    assert h.statuses() == [100, 100, 200]
    assert len(h.user.requests) == 1


def test_cancel_of_an_unanswered_invite_gets_200_and_the_invite_487() -> None:
    h = Harness(answer=None)
    h.layer.receive(request("INVITE"), UDP)
    invite = h.user.requests[0]
    h.layer.receive(request("CANCEL"), UDP)
    cancel_ok = next(m for _, m, _ in h.sent if isinstance(m, SipResponse)
                     and m.cseq.method == "CANCEL")
    terminated = next(m for _, m, _ in h.sent if isinstance(m, SipResponse)
                      and m.status == 487)
    assert cancel_ok.status == 200
    assert terminated.cseq.method == "INVITE"
    assert h.user.cancelled == [invite]
    # §9.2: the CANCEL's 200 and the INVITE's response carry the same To tag.
    assert cancel_ok.headers.get("to") == terminated.headers.get("to")
    assert h.statuses() == [100, 200, 487]
    h.layer.receive(request("ACK", to_tag=invite.to_tag, cseq_method="ACK"), UDP)
    assert invite.state is State.CONFIRMED
    h.layer.receive(request("CANCEL"), UDP)  # a copy of the CANCEL: answered from the cache
    assert h.statuses() == [100, 200, 487, 200]


def test_cancel_after_the_answer_or_of_nothing() -> None:
    h = Harness(200)
    h.layer.receive(request("INVITE"), UDP)
    h.layer.receive(request("CANCEL"), UDP)
    assert h.statuses() == [100, 200, 200]  # §9.2: no effect on an answered request
    assert h.user.cancelled == []
    h.layer.receive(request("CANCEL", branch="z9hG4bKother"), UDP)
    assert h.statuses()[-1] == 481


def test_non_invite_answers_are_cached_for_timer_j() -> None:
    h = Harness(200)
    h.layer.receive(request("OPTIONS"), UDP)
    h.timers.advance(10)
    h.layer.receive(request("OPTIONS"), UDP)
    assert h.statuses() == [200, 200]
    assert len(h.user.requests) == 1
    h.timers.advance(22.1)  # Timer J = 64*T1 = 32 s after the answer
    h.layer.receive(request("OPTIONS"), UDP)
    assert len(h.user.requests) == 2  # a new transaction now
    over_tcp = Harness(200)
    over_tcp.layer.receive(request("OPTIONS"), TCP)
    over_tcp.timers.advance(0)
    assert over_tcp.layer.server_transactions == 0  # Timer J is 0 on a reliable transport


def test_rfc2543_requests_match_without_a_magic_cookie() -> None:
    h = Harness(486)
    h.layer.receive(request("INVITE", branch="old1"), UDP)
    h.layer.receive(request("INVITE", branch="old1"), UDP)
    assert len(h.user.requests) == 1
    tag = h.user.requests[0].to_tag
    h.layer.receive(request("ACK", branch="old1", to_tag=tag, cseq_method="ACK"), UDP)
    assert h.user.requests[0].state is State.CONFIRMED


def test_past_the_transaction_limit_requests_get_a_stateless_503() -> None:
    h = Harness(answer=None)
    h.layer.max_transactions = 2
    for i in range(3):
        h.layer.receive(request("OPTIONS", branch=f"z9hG4bK{i}"), UDP)
    assert h.statuses() == [503]
    assert len(h.user.requests) == 2


def bye() -> SipRequest:
    return request("BYE", branch="z9hG4bKours", to_tag="src1", cseq=5)


def response_to(sent: SipRequest, status: int) -> SipResponse:
    text = (f"SIP/2.0 {status} X\r\nVia: {sent.headers.get('via')}\r\n"
            f"From: {sent.headers.get('from')}\r\nTo: {sent.headers.get('to')}\r\n"
            f"Call-ID: {sent.call_id}\r\nCSeq: {sent.headers.get('cseq')}\r\n"
            "Content-Length: 0\r\n\r\n")
    message = parse_message(text.encode())
    assert isinstance(message, SipResponse)
    return message


def test_our_requests_are_retransmitted_until_answered() -> None:
    h = Harness()
    finals: list[SipResponse | None] = []
    h.layer.send_request(bye(), UDP, finals.append)
    h.timers.advance(4.0)
    assert [t for t, m, _ in h.sent if isinstance(m, SipRequest)] == [0.0, 0.5, 1.5, 3.5]
    ok = response_to(bye(), 200)
    h.layer.receive(ok, UDP)
    h.layer.receive(ok, UDP)  # a copy: absorbed (Timer K)
    h.timers.advance(40)
    assert finals == [ok]
    assert len([m for _, m, _ in h.sent if isinstance(m, SipRequest)]) == 4


def test_our_request_times_out_with_timer_f() -> None:
    h = Harness()
    finals: list[SipResponse | None] = []
    h.layer.send_request(bye(), UDP, finals.append)
    h.timers.advance(31.9)
    assert finals == []
    h.timers.advance(0.2)
    assert finals == [None]
    sent = [t for t, m, _ in h.sent if isinstance(m, SipRequest)]
    assert sent == [0.0, *SCHEDULE]
    over_tcp = Harness()
    over_tcp.layer.send_request(bye(), TCP, finals.append)
    over_tcp.timers.advance(40)
    assert len(over_tcp.sent) == 1
    assert finals[-1] is None
