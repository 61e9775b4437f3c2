"""Repeated warnings and errors held back, so that no client can fill the disk through the log.

A flood (thousands of refused connections, a request that fails the same way each time it is
sent, every file open failing once file descriptors run out) writes the same line, often with
its traceback, as fast as it comes: 137 MB in 35 s was seen. ``RepeatFilter`` lets the first
few lines of each kind through in every interval and holds back the rest, then says how many
it held back on the next line of that kind it lets through. A kind is the logger, the level
and the message's text before its arguments (``"socket API: %s failed"``), so lines that only
differ by a client's address are the same kind. Lines below WARNING are never held back: the
INFO line of each recorded call is the record of that call.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

# Each kind of line: BURST lines pass per INTERVAL seconds, the rest are counted.
INTERVAL = 10.0
BURST = 5
# Kinds remembered at most: messages built from a client's text (not a fixed format) would
# otherwise be a new kind each; past it, the quiet kinds are forgotten.
MAX_KINDS = 1024


@dataclass
class _Kind:
    window: float  # when its current interval began
    passed: int = 0  # lines let through in the current interval
    held: int = 0  # lines held back since the last one let through


class RepeatFilter(logging.Filter):
    """Holds back the lines of a kind past ``burst`` per ``interval`` seconds (WARNING and up);
    the next line of the kind that passes ends with how many were held back."""

    def __init__(self, interval: float = INTERVAL, burst: int = BURST,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.interval = interval
        self.burst = burst
        self._clock = clock
        self._lock = threading.Lock()  # records come from every thread
        self._kinds: dict[tuple[str, int, str], _Kind] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = (record.name, record.levelno, str(record.msg))
        now = self._clock()
        with self._lock:
            kind = self._kinds.get(key)
            if kind is None:
                if len(self._kinds) >= MAX_KINDS:
                    self._forget(now)
                kind = self._kinds[key] = _Kind(now)
            if now - kind.window >= self.interval:
                kind.window, kind.passed = now, 0
            if kind.passed >= self.burst:
                kind.held += 1
                return False
            kind.passed += 1
            held, kind.held = kind.held, 0
        if held:
            note = (f" [{held} more like this held back in the last "
                    f"{self.interval:g} s]")
            # With arguments the message is %-formatted: a literal % must be doubled.
            record.msg = str(record.msg) + (note.replace("%", "%%") if record.args else note)
        return True

    def _forget(self, now: float) -> None:
        """Drop the kinds whose interval is over with nothing held back (the lock is held)."""
        for key, kind in list(self._kinds.items()):
            if now - kind.window >= self.interval and not kind.held:
                del self._kinds[key]
        if len(self._kinds) >= MAX_KINDS:
            self._kinds.clear()  # a storm of distinct messages: start over
