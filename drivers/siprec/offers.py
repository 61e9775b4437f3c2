"""From a request's body to the recording session's streams: read the offer, answer it.

``read_offer`` takes what an INVITE, re-INVITE or UPDATE carries (RFC 7866 §8: a multipart
body with SDP and ``rs-metadata``, SDP alone as plain-SDP SRCs send it, or metadata alone in
an UPDATE) and raises ``ProtocolError`` with the status to answer: 415 for a body or an
encoding we do not read, 400 for one we cannot parse. ``answer_offer`` gives every offered
stream we can record a port (the one it already had, in a re-offer, so a stream never moves
under the media side without need), builds the SDP answer and says which ports it took;
``answered_streams`` joins the answer with the metadata (or the vendor's headers) to say who
sends each stream and whether it is paused.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from recorder.drivers.siprec.errors import ProtocolError
from recorder.drivers.siprec.events import AnsweredStream
from recorder.drivers.siprec.metadata import RecordingMetadata, parse_metadata
from recorder.drivers.siprec.multipart import BodyError, siprec_body
from recorder.drivers.siprec.sdp import Answer, SessionDescription, build_answer, choose, parse_sdp
from recorder.drivers.siprec.sipheaders import Headers
from recorder.drivers.siprec.sipmessage import SipRequest
from recorder.drivers.siprec.vendor import VendorParty, global_call_id, party_for_media


@dataclass(frozen=True)
class Offer:
    """What a request carries: an SDP offer and/or a metadata document (either may be None)."""

    sdp: SessionDescription | None
    metadata: RecordingMetadata | None


def read_offer(request: SipRequest) -> Offer:
    """The SDP offer and metadata in ``request``'s body; raises ProtocolError (400/415)."""
    encoding = (request.headers.get("content-encoding") or "identity").strip().lower()
    if encoding != "identity":
        raise BodyError(f"cannot read a body in Content-Encoding {encoding[:20]}", 415)
    if request.body and not request.content_type:
        # §20.15: a body must say its type; guessing could take metadata for SDP.
        raise BodyError("a body without Content-Type", 415)
    body = siprec_body(request.content_type, request.body)
    sdp = parse_sdp(body.sdp) if body.sdp is not None else None
    metadata = parse_metadata(body.metadata) if body.metadata is not None else None
    return Offer(sdp, metadata)


def answer_offer(offer: SessionDescription, *, held: Mapping[int, int],
                 allocate: Callable[[], int], release: Callable[[int], None], address: str,
                 session_id: int, version: int) -> tuple[Answer, list[int]]:
    """The SDP answer to ``offer`` and the ports it newly took.

    ``held`` maps m-line indexes to the ports they have now (a re-offer); a stream we can
    record keeps its port, a new one gets ``allocate()``. Raises ProtocolError: 503 when the
    ports run out, 488 when no stream can be recorded; nothing stays taken then.
    """
    fresh: list[int] = []
    ports: list[int | None] = []
    try:
        for index, media in enumerate(offer.media):
            if choose(media).codec is None:
                ports.append(None)
            elif index in held:
                ports.append(held[index])
            else:
                fresh.append(allocate())
                ports.append(fresh[-1])
        answer = build_answer(offer, address=address, ports=ports, session_id=session_id,
                              version=version)
    except ProtocolError:
        for port in fresh:
            release(port)
        raise
    return answer, fresh


def answered_streams(answer: Answer, metadata: RecordingMetadata | None,
                     parties: tuple[VendorParty, ...]) -> tuple[AnsweredStream, ...]:
    """Each accepted stream of ``answer``, with its sender and pause from the metadata (or
    the vendor's parties for a plain-SDP SRC)."""
    paused_labels = metadata.paused_labels() if metadata is not None else set()
    streams: list[AnsweredStream] = []
    for stream in answer.accepted:
        choice = stream.choice
        assert choice.codec is not None  # accepted streams have one
        participant: str | None = None
        if metadata is not None and stream.label is not None:
            sender = metadata.participant_for_label(stream.label)
            participant = sender.aor if sender is not None else None
        if participant is None and parties:
            party = party_for_media(list(parties), stream.index)
            participant = party.aor if party is not None else None
        paused = stream.paused or (stream.label is not None and stream.label in paused_labels)
        streams.append(AnsweredStream(
            index=stream.index, label=stream.label, port=stream.port, remote=stream.remote,
            codec=choice.codec, telephone_event=choice.events,
            comfort_noise=choice.comfort_noise, crypto=choice.crypto,
            local_crypto=stream.local_crypto, paused=paused, participant=participant))
    return tuple(streams)


def session_call_id(metadata: RecordingMetadata | None, headers: Headers) -> str | None:
    """GLOBALCALLID's source: the metadata's communication session, else the PBX's id."""
    if metadata is not None and metadata.session_id:
        return metadata.session_id
    vendor = global_call_id(headers)
    return vendor.value if vendor is not None else None
