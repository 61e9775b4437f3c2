"""The media thread's wait for its sockets: epoll, and a tag for each file descriptor.

``selectors`` would do the same with a Python-level key lookup and a tuple for every ready
socket; the media thread wakes for hundreds of them, many times per block, so it asks epoll
itself and finds each socket's tag in a dict.
"""

from __future__ import annotations

import logging
import select
import socket

logger = logging.getLogger(__name__)


class Poller:
    """Sockets to wait on, each with a tag (any object; ``WAKE`` is the wake-up pipe's)."""

    def __init__(self) -> None:
        self._epoll = select.epoll()
        self.tags: dict[int, object] = {}

    def register(self, sock: socket.socket, tag: object) -> None:
        fd = sock.fileno()
        self._epoll.register(fd, select.EPOLLIN)
        self.tags[fd] = tag

    def unregister(self, sock: socket.socket) -> None:
        """Forget ``sock`` (still open); one never registered, or closed, is no error."""
        fd = sock.fileno()
        if self.tags.pop(fd, None) is not None:
            self._epoll.unregister(fd)

    def poll(self, timeout: float) -> list[tuple[int, int]]:
        """The ready descriptors, waiting up to ``timeout`` seconds (0: not at all)."""
        return self._epoll.poll(max(0.0, timeout))

    def close(self) -> None:
        self._epoll.close()
        self.tags.clear()
