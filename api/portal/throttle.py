"""Sign-in limits: attempts per client address per minute, and a user name locked out after
failures in a row. In memory, keyed by the folded user name and the address; times are given
(``now``), so the rules are tested without waiting."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

WINDOW_SECONDS = 60.0
# Addresses and user names tracked at most: the oldest entries are dropped beyond them, so a
# flood of made-up names cannot grow memory without bound.
MAX_TRACKED = 10000


@dataclass
class _Failures:
    count: int = 0
    locked_until: float = 0.0


class SignInThrottle:
    """Per address: at most ``per_minute`` attempts in any minute. Per user name: after
    ``max_failures`` failures in a row, refused for ``lockout_seconds`` (right password or not);
    a success resets the count."""

    def __init__(self, per_minute: int, max_failures: int, lockout_seconds: float) -> None:
        self.per_minute = per_minute
        self.max_failures = max_failures
        self.lockout_seconds = lockout_seconds
        self._lock = threading.Lock()
        self._attempts: dict[str, deque[float]] = {}
        self._failures: dict[str, _Failures] = {}

    def admit(self, address: str, now: float) -> bool:
        """Count one attempt from ``address``; False if it is over the rate."""
        with self._lock:
            times = self._attempts.pop(address, None) or deque()
            while times and now - times[0] >= WINDOW_SECONDS:
                times.popleft()
            self._attempts[address] = times  # re-inserted: newest last, oldest dropped first
            if len(self._attempts) > MAX_TRACKED:
                del self._attempts[next(iter(self._attempts))]
            if len(times) >= self.per_minute:
                return False
            times.append(now)
            return True

    def locked(self, username: str, now: float) -> float:
        """Seconds the user name stays locked out (0: it is not)."""
        with self._lock:
            entry = self._failures.get(username.casefold())
            return max(0.0, entry.locked_until - now) if entry else 0.0

    def failed(self, username: str, now: float) -> bool:
        """Count a failure; True if it has just locked the name out."""
        key = username.casefold()
        with self._lock:
            entry = self._failures.pop(key, None) or _Failures()
            self._failures[key] = entry
            if len(self._failures) > MAX_TRACKED:
                del self._failures[next(iter(self._failures))]
            entry.count += 1
            if entry.count >= self.max_failures:
                entry.count = 0
                entry.locked_until = now + self.lockout_seconds
                return True
            return False

    def succeeded(self, username: str) -> None:
        with self._lock:
            self._failures.pop(username.casefold(), None)
