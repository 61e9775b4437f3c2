"""Where a recording's file goes: ``recordings/YYYYMMDD/<device>/<device>-HH-MM-SS.<ext>``."""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

logger = logging.getLogger(__name__)

# A DEVICEID is free text from a CTI link or an API client; only these characters reach the
# file system, so no DEVICEID can climb out of the recordings directory or name a device file.
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
MAX_COLLISIONS = 1000


def safe_component(text: str) -> str:
    """``text`` made into one harmless path component."""
    safe = _UNSAFE.sub("_", text)[:64]
    if not safe or safe.startswith("."):
        safe = "_" + safe
    return safe


def recording_path(root: Path, device_id: str, started: datetime, extension: str) -> Path:
    device = safe_component(device_id)
    return root / started.strftime("%Y%m%d") / device / (
        f"{device}-{started:%H-%M-%S}.{extension}"
    )


def create_unique(path: Path) -> tuple[Path, BinaryIO]:
    """Create ``path`` for writing, or ``name_2.ext``, ``name_3.ext``... if it exists.

    Creation is exclusive (O_EXCL), so two calls on one device in the same second can never
    write into the same file, whichever thread gets there first.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    # Where the last search for this name ended: a device with many calls in one second would
    # otherwise try every taken name again for each of them. Only a hint: O_EXCL decides.
    with _hints_lock:
        first = _hints.get(path, 1)
    for n in range(first, MAX_COLLISIONS + 1):
        candidate = path if n == 1 else path.with_name(f"{path.stem}_{n}{path.suffix}")
        try:
            file = candidate.open("xb")
        except FileExistsError:
            continue
        with _hints_lock:
            if len(_hints) >= MAX_HINTS:
                _hints.clear()
            _hints[path] = n + 1
        return candidate, file
    raise FileExistsError(f"{MAX_COLLISIONS} recordings already named like {path}")


MAX_HINTS = 256
_hints: dict[Path, int] = {}
_hints_lock = threading.Lock()


HASH_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """The SHA-256 of a file's contents, read a MiB at a time (recordings run to gigabytes)."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
