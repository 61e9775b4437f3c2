"""SIPREC (RFC 7865/7866): the protocol pieces of a recording server, pure and testable alone.

Plain functions and small classes over bytes: no sockets, no threads, nothing of the
scheduler or the capture core, so a driver thread or an asyncio loop can use them alike.

Signalling: ``sipmessage`` (parse a datagram, frame a TCP stream, build and serialise
responses) with ``sipheaders`` (header names, lists, From/To, Via, CSeq); ``sdp`` (read an
offer, build the recorder's answer, which streams are paused); ``multipart`` (split a body into
its SDP and metadata parts); ``metadata`` (RFC 7865 XML, hardened, and partial updates);
``vendor`` (parties and call ids of plain-SDP SRCs from Cisco/Avaya/Genesys headers).

Media: ``rtp`` (RTP/RTCP packets, RFC 4733 events), ``srtp`` (SDES keys, libsrtp), ``payloads``
(the RFC 3551 table, what we decode, RTP clocks), ``rtpcodecs`` (G.711, G.722, G.729, Opus to
int16 at the stored rate), ``jitter`` (per-stream playout buffer with a sample-exact timeline).

``errors`` holds ``ProtocolError``, the base of every parser's error, with the SIP status to
answer.
"""
