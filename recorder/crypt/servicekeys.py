"""recorderd's master keys as the service holds them (docs/encryption.md, "Rotation"): loaded
and installed for every reader at the start, read again on SIGHUP, and the key ids it holds
noted in the data directory for a rotation to read."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Protocol

from recorder.crypt.access import install
from recorder.crypt.keyring import KeyRing, write_status
from recorder.crypt.keys import CryptKeyError
from recorder.errors import StartupError

logger = logging.getLogger(__name__)


class _Storage(Protocol):
    """What ``open_ring`` reads of the [storage] settings."""

    @property
    def key_file(self) -> str: ...

    @property
    def encrypt(self) -> bool: ...

    @property
    def data_dir(self) -> Path: ...


def open_ring(storage: _Storage) -> KeyRing | None:
    """recorderd's keys (storage.key_file), installed for every reader of recordings in the
    process; None without a key file. With storage.encrypt off a key file still opens the
    recordings written while it was on, and one that cannot be read then only warns;
    with it on, StartupError naming the key."""
    if not storage.key_file:
        return None
    ring = KeyRing(Path(storage.key_file), sealing=storage.encrypt)
    try:
        master = ring.load()
    except CryptKeyError as exc:
        if storage.encrypt:
            raise StartupError(f"storage.key_file: {exc}") from exc
        logger.warning("storage.key_file: %s; encrypted recordings cannot be played", exc)
        return None
    install(ring)
    note_status(storage.data_dir, ring)
    logger.info("recordings %s with master key %s (storage.key_file %s)",
                "encrypted" if storage.encrypt else "not encrypted; reading old ones",
                master.id, storage.key_file)
    return ring


def reload_ring(ring: KeyRing, data_dir: Path) -> str | None:
    """SIGHUP: read the keys again; None when done, else why not (they stay as they were).
    Which keys are held is noted in ``data_dir`` once no file is still being wrapped by the
    key before (on a thread of its own: the caller is the main loop, which pings the
    watchdog, and an after-call encoding begun before may take minutes)."""
    try:
        said = ring.reload()
    except CryptKeyError as exc:
        logger.error("SIGHUP: storage.key_file not reloaded: %s; the keys stay as they were",
                     exc)
        return f"storage.key_file: {exc}"
    logger.info("SIGHUP: storage.key_file: %s", said)

    def note_once_drained() -> None:
        if not ring.wait_drained():
            logger.warning("keys: files are still being wrapped by the key before")
        note_status(data_dir, ring)

    threading.Thread(target=note_once_drained, name="keys-reload", daemon=True).start()
    return None


def note_status(data_dir: Path, ring: KeyRing) -> None:
    """``write_status``, a failure only logged (a rotation then says it waited in vain)."""
    try:
        write_status(data_dir, ring)
    except OSError as exc:
        logger.warning("cannot note the keys in use in %s: %s", data_dir, exc)
