"""How a stored recording is opened for reading: one place every reader goes through (WAV
parsing, conversion, export, after-call encoding), so an encrypted recording reads as the
plain file it holds wherever the process was given the key.

The service and ``recorderctl`` install an opener that decrypts (``recorder.crypt.access``);
without one, an encrypted recording is refused with an error that says so rather than read as
noise. Codecs know nothing of the encryption beyond its magic bytes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from recorder.errors import CodecError

# The first bytes of an encrypted recording (recorder/crypt/sealed.py, docs/encryption.md).
ENCRYPTED_MAGIC = b"RCRDSEAL"

Opener = Callable[[Path], BinaryIO]

_lock = threading.Lock()
_opener: Opener | None = None


def _plain_only(path: Path) -> BinaryIO:
    file = path.open("rb")
    if file.read(len(ENCRYPTED_MAGIC)) == ENCRYPTED_MAGIC:
        file.close()
        raise CodecError(f"{path} is an encrypted recording and this process has no key "
                         f"(storage.key_file)")
    file.seek(0)
    return file


def is_encrypted(path: Path) -> bool:
    """Whether ``path`` is an encrypted recording (by its first bytes; False if unreadable)."""
    try:
        with path.open("rb") as f:
            return f.read(len(ENCRYPTED_MAGIC)) == ENCRYPTED_MAGIC
    except OSError:
        return False


def open_stored(path: Path) -> BinaryIO:
    """``path``'s audio file as a seekable binary file, decrypted if it is encrypted.

    OSError as ``open`` raises it; CodecError for an encrypted file without a key, or (from
    the installed opener) one that does not authenticate.
    """
    with _lock:
        opener = _opener or _plain_only
    return opener(path)


def install_opener(opener: Opener | None) -> None:
    """Make ``opener`` the way this process opens stored recordings (None: plain files only)."""
    global _opener  # noqa: PLW0603 - the one process-wide setting, made by the composition root
    with _lock:
        _opener = opener
