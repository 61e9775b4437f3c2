"""Work files made from encrypted recordings, encrypted too: exports waiting to be sent, e-mail
attachments, the portal's renditions and a stereo recording's sides (docs/encryption.md, "Work
files"). Each is sealed in the recordings' format under a random key that only this process
holds, in memory, by the file's id: no key is ever written beside it, so a work file left by
a crash, or copied off the disk, opens for nobody. ``recorder.crypt.access.open_plain`` finds
the key by the file's id.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from typing import BinaryIO

from recorder.crypt.keys import FILE_ID_BYTES, KEY_BYTES
from recorder.crypt.sealed import DEFAULT_CHUNK
from recorder.crypt.writer import SealedWriter

# Work files live seconds (an export being sent) to minutes (the portal's last renditions);
# the keys of the oldest are forgotten beyond this many, which makes those files unreadable.
KEEP = 4096

_lock = threading.Lock()
_keys: OrderedDict[bytes, bytes] = OrderedDict()


def seal_work_file(file: BinaryIO, *, prologue: int = 0,
                   chunk_size: int = DEFAULT_CHUNK) -> SealedWriter:
    """``file`` (new and empty) as an encrypted work file, under a key of its own."""
    key, file_id = os.urandom(KEY_BYTES), os.urandom(FILE_ID_BYTES)
    with _lock:
        _keys[file_id] = key
        while len(_keys) > KEEP:
            _keys.popitem(last=False)
    return SealedWriter(file, key, file_id, chunk_size=chunk_size, prologue=prologue)


def work_key(file_id: bytes) -> bytes | None:
    """The key of this process's work file ``file_id`` (None: not one of them)."""
    with _lock:
        return _keys.get(file_id)


def forget(file_id: bytes) -> None:
    """The work file is gone: its key goes too."""
    with _lock:
        _keys.pop(file_id, None)
