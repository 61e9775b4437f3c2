"""Where recorderd's log goes: the journal, with priorities, under systemd; else stderr.

systemd connects a service's stderr to the journal and says so in ``$JOURNAL_STREAM``
(``<device>:<inode>`` of that stream). A line that starts with ``<N>`` is stored at syslog
priority N (sd-daemon(3)), so ``journalctl -p warning`` finds the warnings; the journal stamps
each line itself, so no time is written. Every line of a record carries the prefix: a
traceback's lines are stored at its record's priority instead of falling back to the unit's
default (info).

Anywhere else (a terminal, a test, ``nohup``) stderr gets the usual timestamped lines. Either
way, warnings and errors that repeat are held back past a few per interval (``logrepeat``).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import TextIO

from recorder.service.logrepeat import RepeatFilter

logger = logging.getLogger(__name__)

STDERR_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# The level name stays, for people who read `journalctl` output without colours.
JOURNAL_FORMAT = "%(levelname)s %(name)s: %(message)s"

# sd-daemon(3)'s SD_* priorities; a level between two takes the lower one's.
_PRIORITIES = (
    (logging.CRITICAL, 2),  # SD_CRIT
    (logging.ERROR, 3),  # SD_ERR
    (logging.WARNING, 4),  # SD_WARNING
    (logging.INFO, 6),  # SD_INFO
)
_DEBUG_PRIORITY = 7  # SD_DEBUG


def syslog_priority(levelno: int) -> int:
    """The syslog priority the journal stores a record of this level at."""
    for level, priority in _PRIORITIES:
        if levelno >= level:
            return priority
    return _DEBUG_PRIORITY


class JournalFormatter(logging.Formatter):
    """Formats a record as lines that each start with its ``<priority>``."""

    def __init__(self) -> None:
        super().__init__(JOURNAL_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{syslog_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in super().format(record).split("\n"))


class _RecorderHandler(logging.StreamHandler[TextIO]):
    """The handler configure_logging installs; found again by its class to be replaced."""


def stderr_is_journal(environ: Mapping[str, str] | None = None, fd: int = 2) -> bool:
    """True when ``fd`` is the journal stream systemd named in ``$JOURNAL_STREAM``.

    The variable is inherited by children whose stderr goes elsewhere (a shell started from
    the service, a pipe), so only a matching device and inode count.
    """
    value = (os.environ if environ is None else environ).get("JOURNAL_STREAM", "")
    device, sep, inode = value.partition(":")
    if not sep:
        return False
    try:
        st = os.fstat(fd)
        return (int(device), int(inode)) == (st.st_dev, st.st_ino)
    except (OSError, ValueError):
        return False


def configure_logging(level: str) -> str:
    """Send the root logger to the journal (under systemd) or to stderr, at ``level``
    (DEBUG, INFO, WARNING, ERROR or CRITICAL); returns ``"journal"`` or ``"stderr"``.

    Calling it again replaces its handler (the level may change) instead of adding one.
    """
    root = logging.getLogger()
    for handler in root.handlers[:]:
        if isinstance(handler, _RecorderHandler):
            root.removeHandler(handler)
            handler.close()
    target = "journal" if stderr_is_journal() else "stderr"
    handler = _RecorderHandler(sys.stderr)
    handler.setFormatter(JournalFormatter() if target == "journal"
                         else logging.Formatter(STDERR_FORMAT))
    handler.addFilter(RepeatFilter())
    root.addHandler(handler)
    root.setLevel(level.upper())
    skip_unused_record_fields()
    return target


def skip_unused_record_fields() -> None:
    """Stop logging from working out what no format of ours prints: the caller's file, line
    and function (a walk up the stack), the process's name and id, for every record.

    The "Optimization" section of the logging documentation names these switches. Every
    recorded call logs a line, so this is paid per call. Thread names stay (tracebacks and
    ``recorderctl`` stack dumps are about threads).
    """
    logging._srcfile = None
    logging.logProcesses = False
    logging.logMultiprocessing = False
