"""The master keys a running recorderd holds (docs/encryption.md, "Keys" and "Rotation"): the
one every new file's key is wrapped by, and every one a reader may unwrap with. Reloaded from
the key file (SIGHUP) without a restart, which is how ``recorderctl key rotate`` changes the
key under a running service.

During a rotation the new key waits beside the key file as ``KEY_FILE.new``: from the reload
that finds it, new files are wrapped by it and the old key still opens the files not yet
re-wrapped. ``sealing()`` marks the making of one file (its wrapped key beside it and in its
row) so that a reload can wait until no file is still being wrapped by the key it replaces:
once ``reload`` returns, every file wrapped by the old key is one the rotation can find.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from recorder.crypt.keys import CryptKeyError, MasterKey, load_master_key
from recorder.durable import fsync_directory

logger = logging.getLogger(__name__)

NEW_SUFFIX = ".new"  # a rotation's new key, beside the key file until it replaces it
STATUS_NAME = "keys-in-use.json"  # in the data directory: what a running recorderd holds
DRAIN_SECONDS = 300.0  # the longest a reload waits for files being wrapped by the old key


def new_key_path(key_file: Path) -> Path:
    return key_file.with_name(key_file.name + NEW_SUFFIX)


def load_keys(key_file: Path) -> tuple[MasterKey, list[MasterKey]]:
    """(the key new files are wrapped by, every key that opens files) as ``key_file`` and a
    rotation's ``KEY_FILE.new`` beside it say; CryptKeyError naming the file that cannot be
    the key."""
    new_path = new_key_path(key_file)
    new = load_master_key(new_path) if new_path.exists() else None
    if not key_file.exists() and new is not None:
        return new, [new]  # a rotation between its two renames
    current = load_master_key(key_file)
    if new is None or new.id == current.id:
        return current, [current]
    return new, [new, current]


class KeyRing:
    """The master keys of this process; thread-safe. ``sealing`` False (storage.encrypt off):
    the keys only open the files written while it was on."""

    def __init__(self, key_file: Path, *, sealing: bool = True) -> None:
        self.key_file = key_file
        self.seals = sealing
        self._lock = threading.Condition(threading.Lock())
        self._current: MasterKey | None = None
        self._opening: list[MasterKey] = []
        self._generation = 0
        self._in_flight: dict[int, int] = {}  # generation -> files being wrapped by its key

    @classmethod
    def of(cls, keys: list[MasterKey]) -> KeyRing:
        """A ring holding ``keys`` (the first seals), read from no file (tools, tests)."""
        ring = cls(Path(os.devnull))
        ring._current, ring._opening = keys[0], list(keys)
        return ring

    def load(self) -> MasterKey:
        """Read the key file (and a rotation's new key); CryptKeyError if it cannot be."""
        current, opening = load_keys(self.key_file)
        with self._lock:
            self._set(current, opening)
        return current

    def _set(self, current: MasterKey, opening: list[MasterKey]) -> None:
        if self._current is None or current.id != self._current.id:
            self._generation += 1
        self._current, self._opening = current, opening

    @property
    def current(self) -> MasterKey | None:
        """The key new files are wrapped by (None: files are not encrypted)."""
        with self._lock:
            return self._current if self.seals else None

    @property
    def opening(self) -> list[MasterKey]:
        with self._lock:
            return list(self._opening)

    @contextmanager
    def sealing(self) -> Iterator[MasterKey]:
        """The key to wrap a new file's key by, held until the file's wrapped key is beside it
        and in its row (a reload waits for it)."""
        with self._lock:
            if self._current is None:
                raise CryptKeyError("no master key is loaded")
            generation, key = self._generation, self._current
            self._in_flight[generation] = self._in_flight.get(generation, 0) + 1
        try:
            yield key
        finally:
            with self._lock:
                self._in_flight[generation] -= 1
                if not self._in_flight[generation]:
                    del self._in_flight[generation]
                self._lock.notify_all()

    def reload(self) -> str:
        """Read the keys again (new files are wrapped by the new current key at once); what
        changed, in words. CryptKeyError, and the keys as they were, if the files cannot be
        the keys. ``wait_drained`` then says when no file is still being wrapped by the key
        before."""
        current, opening = load_keys(self.key_file)
        with self._lock:
            before = self._current
            self._set(current, opening)
        ids = ", ".join(k.id for k in opening)
        if before is not None and before.id == current.id:
            return f"master key {current.id} as before; opening with {ids}"
        return f"new files wrapped by master key {current.id}; opening with {ids}"

    def wait_drained(self, timeout: float = DRAIN_SECONDS) -> bool:
        """Wait until no file is being wrapped by a key older than the current one (files
        begun before a reload); False if some still are after ``timeout`` seconds."""
        with self._lock:
            generation = self._generation
            return self._lock.wait_for(
                lambda: not any(g < generation for g in self._in_flight), timeout)

    def describe(self) -> dict[str, object]:
        """What a rotation reads back (``write_status``): the key new files are wrapped by and
        the keys that open them, by key id."""
        with self._lock:
            return {"pid": os.getpid(),
                    "sealing": self._current.id if self._current and self.seals else "",
                    "opening": [k.id for k in self._opening]}


def write_status(data_dir: Path, ring: KeyRing) -> None:
    """Say in ``data_dir`` which keys this process holds (no secret: key ids only)."""
    path = data_dir / STATUS_NAME
    part = path.with_name(path.name + ".part")
    part.write_text(json.dumps(ring.describe(), sort_keys=True), encoding="utf-8")
    part.replace(path)
    fsync_directory(data_dir)


def read_status(data_dir: Path) -> dict[str, object] | None:
    """What ``write_status`` last wrote, or None."""
    try:
        found = json.loads((data_dir / STATUS_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None
