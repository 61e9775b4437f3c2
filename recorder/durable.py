"""Files that must survive a crash or a power cut, whoever writes them (the crash journal, the
database-outage spool, the recordings' directories): a directory entry made durable, and a file
root creates handed to the service's user.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)


def give_to_directory_owner(fd: int, directory: Path) -> None:
    """Make a file just created by root belong to the owner of ``directory`` (the service's
    user): an offline ``recorderctl`` run as root must not leave a file in the data directory
    that recorderd, running as its own user, cannot open. Nothing to do for anyone else, or
    when the owners already match; where chown is refused (a sandbox), the file stays as it is.
    """
    if os.geteuid() != 0:
        return
    owner, current = directory.stat(), os.fstat(fd)
    if (owner.st_uid, owner.st_gid) == (current.st_uid, current.st_gid):
        return
    try:
        os.fchown(fd, owner.st_uid, owner.st_gid)
    except PermissionError as exc:
        logger.warning("cannot give %s's new file to its owner: %s", directory, exc)


def fsync_directory(directory: Path) -> None:
    """Make a file's name in ``directory`` (just created, renamed or removed) survive a power
    cut: the file's own fsync does not cover its directory entry."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
