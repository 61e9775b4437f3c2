"""The SIPREC benchmark's RTP sender: many streams' packets from one UDP socket, a batch at a
time through ``sendmmsg(2)`` (libc through ctypes: Python's socket module has no sendmmsg),
else one ``sendto`` each.

Each batch is a run of streams in one contiguous buffer, a packet of 12 + 160 bytes per
stream; between sends only the sequence number, timestamp and payload are rewritten in place.
On loopback the kernel delivers each datagram to its socket inside the sender's system call,
so the batching saves Python's per-call cost and the system-call entries, not the delivery.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import socket
import struct
from typing import Any

HEADER = struct.Struct("!BBHII")
SEQ_TS = struct.Struct("!HI")


class _Iovec(ctypes.Structure):
    _fields_ = (("base", ctypes.c_void_p), ("len", ctypes.c_size_t))


class _SockaddrIn(ctypes.Structure):
    _fields_ = (("family", ctypes.c_ushort), ("port", ctypes.c_uint16),
                ("addr", ctypes.c_uint32), ("zero", ctypes.c_char * 8))


class _Msghdr(ctypes.Structure):
    _fields_ = (("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32),
                ("iov", ctypes.POINTER(_Iovec)), ("iovlen", ctypes.c_size_t),
                ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
                ("flags", ctypes.c_int))


class _Mmsghdr(ctypes.Structure):
    _fields_ = (("hdr", _Msghdr), ("len", ctypes.c_uint))


def _sendmmsg() -> Any:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        return libc.sendmmsg
    except (OSError, AttributeError):
        return None


class Streams:
    """The packets of every stream to ``host``:``ports``, sendable a run of streams at once."""

    def __init__(self, host: str, ports: list[int], frames: int) -> None:
        self.count = len(ports)
        self.size = 12 + frames
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        self._buffer = ctypes.create_string_buffer(self.size * max(1, self.count))
        self.view = memoryview(self._buffer).cast("B")
        self._addresses = [(host, port) for port in ports]
        for i in range(self.count):
            HEADER.pack_into(self.view, i * self.size, 0x80, 0, 0, 0, 0x10000 + i)
        self._sendmmsg = _sendmmsg()
        if self._sendmmsg is not None:
            self._build(host, ports)

    @property
    def batched(self) -> bool:
        return self._sendmmsg is not None

    def _build(self, host: str, ports: list[int]) -> None:
        count = max(1, self.count)
        self._names = (_SockaddrIn * count)()
        self._iovs = (_Iovec * count)()
        self._msgs = (_Mmsghdr * count)()
        base = ctypes.addressof(self._buffer)
        address = struct.unpack("=I", socket.inet_aton(host))[0]
        for i, port in enumerate(ports):
            name = self._names[i]
            name.family, name.port, name.addr = socket.AF_INET, socket.htons(port), address
            self._iovs[i].base, self._iovs[i].len = base + i * self.size, self.size
            header = self._msgs[i].hdr
            header.name, header.namelen = ctypes.addressof(name), ctypes.sizeof(_SockaddrIn)
            header.iov, header.iovlen = ctypes.pointer(self._iovs[i]), 1

    def fill(self, first: int, end: int, seq: int, ts: int, payload: bytes) -> None:
        """Streams [first, end) get sequence ``seq``, timestamp ``ts`` and ``payload``."""
        view, size, pack_into = self.view, self.size, SEQ_TS.pack_into
        for offset in range(first * size, end * size, size):
            pack_into(view, offset + 2, seq, ts)
            view[offset + 12:offset + size] = payload

    def send(self, first: int, end: int) -> tuple[int, int]:
        """Send streams [first, end): (datagrams sent, refused)."""
        if self._sendmmsg is None:
            return self._send_each(first, end)
        sent = refused = 0
        fd, step = self.sock.fileno(), ctypes.sizeof(_Mmsghdr)
        at = first
        for _ in range(end - first + 1):  # each round sends one at least, or skips one
            if at >= end:
                break
            done = self._sendmmsg(fd, ctypes.byref(self._msgs, at * step), end - at, 0)
            if done > 0:
                sent += done
                at += done
            else:
                code = ctypes.get_errno()
                if code not in (errno.ECONNREFUSED, errno.EAGAIN, errno.EINTR):
                    raise OSError(code, f"sendmmsg: {errno.errorcode.get(code, code)}")
                if code == errno.ECONNREFUSED:  # an ICMP error of an earlier datagram
                    refused += 1
                    at += 1
        return sent, refused

    def _send_each(self, first: int, end: int) -> tuple[int, int]:
        sent = refused = 0
        sendto, view, size = self.sock.sendto, self.view, self.size
        for i in range(first, end):
            try:
                sendto(view[i * size:(i + 1) * size], self._addresses[i])
            except OSError:
                refused += 1  # ECONNREFUSED from an ICMP error: the port was closed
                continue
            sent += 1
        return sent, refused
