"""SIPREC (RFC 7865/7866): the recording server of a ``siprec`` board, in layers testable alone.

Protocol pieces, plain functions and small classes over bytes (no sockets, no threads, nothing
of the scheduler or the capture core): ``sipmessage`` (parse a datagram, frame a TCP stream,
build and serialise responses) with ``sipheaders`` (header names, lists, From/To, Via, CSeq);
``sdp`` (read an offer, build the recorder's answer, which streams are paused);
``multipart`` (split a body into its SDP and metadata parts); ``metadata`` (RFC 7865 XML,
hardened, and partial updates); ``vendor`` (parties and call ids of plain-SDP SRCs from
Cisco/Avaya/Genesys headers).

Signalling, driven by an injectable clock (``timers``): ``transactions`` (server
transactions, retransmissions, ACK and CANCEL matching; RFC 3261 §17) with ``clients`` (the
BYE and UPDATE we send) over ``flows``; ``uas`` (requests to recording sessions, one handler
per method) with ``dialogs``, ``offers`` (bodies to streams and the SDP answer), ``answers``
(capabilities, Contact, refusals), ``sessiontimer`` (RFC 4028 rules) and ``ports`` (the RTP
port range); ``transport`` and ``connections`` (the asyncio SIP server on UDP, TCP and TLS,
thread ``siprec-sip-<key>``); ``events`` (what the recorder hears: ``SessionListener``,
``RecordingSession``). ``config`` holds the board's settings.

Media: ``rtp`` (RTP/RTCP packets, RFC 4733 events), ``srtp`` (SDES keys, libsrtp), ``payloads``
(the RFC 3551 table, what we decode, RTP clocks), ``rtpcodecs`` (G.711, G.722, G.729, Opus to
int16 at the stored rate), ``jitter`` (per-stream playout buffer with a sample-exact timeline);
``parties`` (a session's DEVICEID, ANI, DNIS and which stream goes to which channel),
``mediastream`` (one stream: who may send, SRTP, its place on the board's timeline),
``slots`` (a session's two channels and its line events to come) and
``media`` (the media thread ``siprec-media-<key>``: sockets, 20 ms blocks, session events).

``driver`` is the board: ``SiprecDriver`` runs the SIP server and the media thread and is the
SIP server's listener (docs/siprec.md).

``errors`` holds ``ProtocolError``, the base of every parser's error, with the SIP status to
answer.
"""
