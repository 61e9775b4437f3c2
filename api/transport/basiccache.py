"""HTTP Basic checks the WebAPI remembers for a short while (``api.basic_auth_cache_seconds``).

A Basic password is checked against its scrypt hash, about 60 ms of a core on purpose: an
integrator polling with Basic would pay that at every request, and anyone holding one valid
password could keep the API's workers busy with it. A user name and password that checked are
remembered here, so the next request with them costs a keyed hash instead.

What is remembered, and why it is safe:

- the key is an HMAC-SHA256 of the user name and password under a random key made when the
  process starts and never kept anywhere: the password itself is not kept, and the digest is
  of no use outside this process (nor to a cracker, who lacks the key);
- with it, the user's id and the password hash the check was made against: a request is taken
  as checked only while the directory still holds that user with that very hash, which the
  caller reads at every request. A changed password (a new salt, so a new hash), a deleted
  user, or another user of the same name, is checked in full at once. Roles are not
  remembered at all: permissions are read at every request;
- only successes, for at most ``ttl`` seconds, at most ``capacity`` of them (the oldest
  dropped). A wrong password is never remembered, so guessing costs the full check each time
  and stays held to api.max_failed_auth.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

DEFAULT_CAPACITY = 1024


@dataclass(frozen=True)
class _Checked:
    user_id: int
    stored_hash: str
    until: float  # monotonic


class CheckedPasswords:
    """Successful Basic checks, remembered for ``ttl`` seconds (0: never remembered)."""

    def __init__(self, ttl: float, capacity: int = DEFAULT_CAPACITY,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._capacity = capacity
        self._clock = clock
        self._key = secrets.token_bytes(32)  # this process's alone
        self._lock = threading.Lock()
        self._checked: OrderedDict[bytes, _Checked] = OrderedDict()

    def _digest(self, username: str, password: str) -> bytes:
        name = username.encode("utf-8")
        # The name's length first, so no other split of the same bytes gives the same digest.
        message = len(name).to_bytes(4, "big") + name + password.encode("utf-8")
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def holds(self, username: str, password: str, user_id: int, stored_hash: str) -> bool:
        """Whether this user name and password checked against ``stored_hash``, the hash the
        directory holds now for user ``user_id``, within the last ``ttl`` seconds."""
        if self.ttl <= 0:
            return False
        digest = self._digest(username, password)
        now = self._clock()
        with self._lock:
            checked = self._checked.get(digest)
            if checked is None:
                return False
            if checked.until <= now:
                del self._checked[digest]
                return False
        return checked.user_id == user_id and hmac.compare_digest(
            checked.stored_hash.encode(), stored_hash.encode())

    def remember(self, username: str, password: str, user_id: int, stored_hash: str) -> None:
        """A check that succeeded: ``password`` is user ``user_id``'s, whose hash is
        ``stored_hash``."""
        if self.ttl <= 0:
            return
        digest = self._digest(username, password)
        with self._lock:
            self._checked[digest] = _Checked(user_id, stored_hash, self._clock() + self.ttl)
            self._checked.move_to_end(digest)
            while len(self._checked) > self._capacity:
                self._checked.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._checked)
