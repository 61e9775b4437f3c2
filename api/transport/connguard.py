"""A socket connection's guards: the watchdog that ends a wait for data at its deadline, and
the ways a connection is cut short or kept from hoarding the kernel's buffers. Shared by the
socket API and the WebAPI's event stream."""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
import struct

# The kernel's send buffer of an event subscriber's connection (Linux doubles it). Left alone it
# grows to megabytes for a client that has stopped reading, which would then take thousands of
# events to be found out; this holds hundreds, plenty for a burst to a client that reads.
EVENT_SEND_BUFFER = 128 * 1024


class Watchdog:
    """Ends a connection's wait for data at its deadline, without a timer per read.

    One timer, armed for the earliest deadline and re-armed when it fires early (the deadline
    moved later since, as it does with every message of a busy connection): setting a later
    deadline costs nothing. At the deadline it cancels the connection's task, which is only
    ever waiting for data then (the deadline is cleared while a message is answered); the
    task tells that cancellation from a shutdown's with ``expired``.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, task: asyncio.Task[None]) -> None:
        self._loop = loop
        self._task = task
        self.deadline: float | None = None  # loop.time() when the read gives up; None: never
        self._timer: asyncio.TimerHandle | None = None
        self._armed = math.inf  # when the timer fires
        self._fired = False

    def deadline_at(self, when: float) -> None:
        self.deadline = when
        if when < self._armed:
            self._arm(when)

    def _arm(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_at(when, self._fire)
        self._armed = when

    def _fire(self) -> None:
        self._timer, self._armed = None, math.inf
        if self.deadline is None:
            return  # answering, or read what it waited for: nothing to end
        if self._loop.time() < self.deadline:
            self._arm(self.deadline)
            return
        self.deadline = None
        self._fired = True
        self._task.cancel()

    def expired(self, task: asyncio.Task[None]) -> bool:
        """After a CancelledError: True if it was this watchdog's alone (then taken back)."""
        if not self._fired:
            return False
        self._fired = False
        return task.uncancel() == 0

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def cut(transport: asyncio.WriteTransport) -> None:
    """Close a connection at once, with a reset: what its client has not read is discarded.

    A plain close would queue the end of the stream behind the unsent data of a client that
    stopped reading, so it would never see the end and the kernel would keep the data for it.
    """
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def limit_send_buffer(transport: asyncio.BaseTransport, size: int = EVENT_SEND_BUFFER) -> None:
    """Cap the kernel's send buffer of an event subscriber (see EVENT_SEND_BUFFER)."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
