"""Capture files the tests write themselves (libpcap format, Ethernet/IPv4/UDP frames), for
sipp's ``play_pcap_audio`` to play and for tshark to read.

sipp reads a capture with libpcap and keeps each frame's UDP header and payload: it sends the
payload from its own media address, to the address and port the answer's SDP names, each
packet's ports shifted by how far its destination port lies above the lowest one of the file,
paced by the frames' timestamps. So the addresses and ports written here matter only to tshark.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

LINKTYPE_ETHERNET = 1
ETHERTYPE_IPV4 = 0x0800
IPPROTO_UDP = 17
SNAPLEN = 65535
# Locally administered MAC addresses: nothing reads them, Ethernet needs some.
SOURCE_MAC = bytes.fromhex("020000000001")
DESTINATION_MAC = bytes.fromhex("020000000002")

Address = tuple[str, int]


@dataclass(frozen=True)
class Datagram:
    """One UDP datagram of a capture: when (seconds from the capture's start), from, to."""

    at: float
    source: Address
    destination: Address
    payload: bytes


def _ip_checksum(header: bytes) -> int:
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def frame(datagram: Datagram, ident: int = 0) -> bytes:
    """The Ethernet frame that carries ``datagram`` (UDP checksum 0: none, as IPv4 allows;
    sipp computes its own)."""
    udp = struct.pack("!HHHH", datagram.source[1], datagram.destination[1],
                      8 + len(datagram.payload), 0) + datagram.payload
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), ident & 0xFFFF, 0x4000, 64,
                         IPPROTO_UDP, 0, IPv4Address(datagram.source[0]).packed,
                         IPv4Address(datagram.destination[0]).packed)
    header = header[:10] + struct.pack("!H", _ip_checksum(header)) + header[12:]
    return DESTINATION_MAC + SOURCE_MAC + struct.pack("!H", ETHERTYPE_IPV4) + header + udp


def write_pcap(path: Path, datagrams: Iterable[Datagram], start: float = 1_700_000_000.0
               ) -> Path:
    """Write ``datagrams`` as a libpcap file (microsecond timestamps from ``start``)."""
    records = [struct.pack("!IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, SNAPLEN, LINKTYPE_ETHERNET)]
    for ident, datagram in enumerate(datagrams):
        data = frame(datagram, ident)
        micros = round((start + datagram.at) * 1_000_000)
        seconds, fraction = divmod(micros, 1_000_000)
        records.append(struct.pack("!IIII", seconds, fraction, len(data), len(data)) + data)
    path.write_bytes(b"".join(records))
    return path


def rtp(payload: bytes, *, pt: int, seq: int, ts: int, ssrc: int, marker: bool = False
        ) -> bytes:
    """An RTP packet (RFC 3550 §5.1: version 2, no padding, extension or CSRC)."""
    return struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt, seq & 0xFFFF,
                       ts & 0xFFFFFFFF, ssrc) + payload


def rtp_stream(payloads: list[bytes], *, pt: int, ticks: int, seconds: float = 0.02,
               source: Address = ("127.0.0.1", 10000),
               destination: Address = ("127.0.0.1", 20000), ssrc: int = 0x5EC0DE
               ) -> list[Datagram]:
    """One RTP packet per payload, ``seconds`` apart on the capture's clock and ``ticks``
    apart on the RTP clock, from one random-looking starting point of each."""
    return [Datagram(i * seconds, source, destination,
                     rtp(p, pt=pt, seq=4321 + i, ts=160_000 + i * ticks, ssrc=ssrc,
                         marker=i == 0))
            for i, p in enumerate(payloads)]
