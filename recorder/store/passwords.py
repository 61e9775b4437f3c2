"""Passwords are kept only as salted scrypt hashes, never as sent, never in a log; they are
hashed on a thread of their own (PasswordHasher), never on the API's workers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import threading
from concurrent.futures import ThreadPoolExecutor

# scrypt at N=2^14, r=8 (about 60 ms and 16 MiB a hash): slow enough to make guessing
# expensive, fast enough for an import script adding many users.
_N, _R, _P, _LEN = 2**14, 8, 1, 32
_SCHEME = "scrypt"

# One hash at a time: each takes a core and 16 MiB for its ~60 ms, so a flood of IMPORTUSER
# with passwords costs one core and 16 MiB at most, however many arrive at once (recorderd
# gives those 16 MiB back after each hash: recorder/service/allocator.py). A few more may
# wait; beyond them, one is refused at once (HashingBusy), so waiting hashes do not hold every
# API worker either.
HASH_THREADS = 1
HASH_WAITING = 4


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str) -> str:
    """``scrypt$N$r$p$salt$hash`` for ``password``, with a fresh random salt."""
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=_N, r=_R, p=_P, dklen=_LEN)
    return f"{_SCHEME}${_N}${_R}${_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` is the one ``stored`` (from hash_password) was made from."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != _SCHEME:
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(password.encode("utf-8"), salt=base64.b64decode(salt),
                                n=int(n), r=int(r), p=int(p), dklen=len(expected))
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


class HashingBusy(Exception):
    """Too many passwords are waiting to be hashed; try again later."""


class PasswordHasher:
    """Hashes passwords on ``threads`` threads of its own, with at most ``waiting`` more
    waiting for one; ``hash`` refuses the next (HashingBusy) rather than queue it."""

    def __init__(self, threads: int = HASH_THREADS, waiting: int = HASH_WAITING) -> None:
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="password-hash")
        self._places = threading.BoundedSemaphore(threads + waiting)
        self.capacity = threads + waiting

    def hash(self, password: str) -> str:
        """``hash_password(password)``, on the hashing thread; the caller waits for it."""
        if not self._places.acquire(blocking=False):
            raise HashingBusy(f"{self.capacity} passwords are being hashed or waiting to be; "
                              "try again later")
        try:
            return self._pool.submit(hash_password, password).result()
        finally:
            self._places.release()

    def close(self) -> None:
        """Finish the hashes under way and stop the thread."""
        self._pool.shutdown(wait=True)
