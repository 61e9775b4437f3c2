"""systemd's notification protocol (sd_notify(3)), without libsystemd.

Under ``Type=notify`` systemd passes ``$NOTIFY_SOCKET``, a datagram socket (a path, or an
abstract name written with a leading ``@``) to which the service sends ``READY=1``,
``STATUS=...``, ``WATCHDOG=1``, ``STOPPING=1``. With ``WatchdogSec=`` it also passes
``$WATCHDOG_USEC`` (and ``$WATCHDOG_PID``, the process meant to ping). Outside systemd none of
these exist and every call here does nothing, so the same binary runs in a terminal.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

logger = logging.getLogger(__name__)


class Notifier:
    """Sends notifications to systemd; a no-op when not started by it."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        self._address: str | bytes | None = None
        if address.startswith("@"):
            self._address = b"\0" + address[1:].encode()  # the abstract namespace
        elif address.startswith("/"):
            self._address = address
        self._socket: socket.socket | None = None
        self._warned = False
        self.watchdog_seconds = _watchdog_seconds(env)

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def notify(self, *assignments: str) -> bool:
        """Send ``KEY=VALUE`` lines as one datagram; False if it could not be sent.

        Never raises: losing a notification must not take the recorder down. systemd treats a
        missed WATCHDOG=1 as a hang, which is the right outcome if sending keeps failing.
        """
        if self._address is None:
            return False
        message = "\n".join(a.replace("\n", " ") for a in assignments).encode("utf-8")
        try:
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._socket.sendto(message, self._address)
        except OSError as exc:
            if not self._warned:  # once: a broken socket would otherwise log every second
                logger.warning("cannot notify systemd at %s: %s", self._address,
                               exc.strerror or exc)
                self._warned = True
            return False
        self._warned = False
        return True

    def ready(self, status: str) -> bool:
        return self.notify("READY=1", f"STATUS={status}", f"MAINPID={os.getpid()}")

    def status(self, status: str) -> bool:
        return self.notify(f"STATUS={status}")

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def reloading(self) -> bool:
        return self.notify("RELOADING=1", "STATUS=reloading the configuration")

    def stopping(self, status: str) -> bool:
        return self.notify("STOPPING=1", f"STATUS={status}")

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def _watchdog_seconds(env: Mapping[str, str]) -> float | None:
    """The watchdog timeout systemd asked for, if it is meant for this process."""
    usec = env.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    pid = env.get("WATCHDOG_PID", "")
    if pid and (not pid.isdigit() or int(pid) != os.getpid()):
        return None  # meant for another process (e.g. a wrapper that exec'ed us differently)
    return int(usec) / 1_000_000
