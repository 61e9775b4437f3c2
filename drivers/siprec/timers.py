"""The clock the SIP layers run on, and RFC 3261's timer values (§17.1.1.1, §17.1.2.2, table 4).

The transaction and dialog layers never sleep or read the time themselves: they ask a
``Timers`` for ``now()`` and ``call_later``. The SIP server gives them its asyncio loop
(``LoopTimers``); tests give them a clock they move by hand, so a 32 s Timer H takes no time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

logger = logging.getLogger(__name__)


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Timers(Protocol):
    """A monotonic clock in seconds and one-shot callbacks on it."""

    def now(self) -> float: ...

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle: ...


@dataclass(frozen=True)
class SipTimers:
    """T1, T2 and T4 (RFC 3261 §17.1.1.1, §17.1.2.2); the lettered timers follow from them.

    The defaults are the RFC's; tests shrink them to watch a retransmission schedule on real
    sockets in a fraction of a second.
    """

    t1: float = 0.5  # round-trip estimate: the first retransmission interval
    t2: float = 4.0  # the longest retransmission interval
    t4: float = 5.0  # how long a message may linger in the network

    @property
    def transaction_timeout(self) -> float:
        """Timers B, F, H, J and L: 64*T1, how long anything waits on the other end."""
        return 64 * self.t1


DEFAULT_SIP_TIMERS = SipTimers()


class LoopTimers:
    """``Timers`` over an asyncio event loop; a callback that raises is logged, never lost in
    the loop's default handler, and never stops the loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def now(self) -> float:
        return self._loop.time()

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        return self._loop.call_later(max(0.0, delay), _guarded, callback)


def _guarded(callback: Callable[[], None]) -> None:
    try:
        callback()
    except Exception:
        logger.exception("a SIP timer callback failed")
