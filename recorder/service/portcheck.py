"""Which of the ports a configuration listens on are taken, for ``--check-config``.

A busy port does not make a configuration invalid (the other program may be gone by the time
recorderd starts, and recorderd retries for ``core.bind_retry_seconds``), so these are
warnings. A port held by the recorderd already running on the same data directory is what
an engineer checking the running service's own file expects to see taken: never reported.
"""

from __future__ import annotations

import errno
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from recorder.config.model import Config
from recorder.service.datalock import running_holder

# /proc/net/tcp's state column for a listening socket.
_TCP_LISTEN = "0A"


@dataclass(frozen=True)
class Listener:
    """One port the configuration makes recorderd listen on."""

    key: str  # the config key that sets the port, e.g. "api.web_port"
    host: str
    port: int
    kind: int  # socket.SOCK_STREAM or socket.SOCK_DGRAM

    @property
    def protocol(self) -> str:
        return "UDP" if self.kind == socket.SOCK_DGRAM else "TCP"


def listeners(config: Config) -> list[Listener]:
    """Every fixed port of the configuration (port 0, "pick a free one", cannot be busy)."""
    api, portal = config.api, config.portal
    found = [Listener("api.socket_port", api.host, api.socket_port, socket.SOCK_STREAM),
             Listener("api.web_port", api.host, api.web_port, socket.SOCK_STREAM)]
    if api.tls_cert:
        found.append(Listener("api.tls_port", api.host, api.tls_port, socket.SOCK_STREAM))
    if portal.enabled:
        found.append(Listener("portal.port", portal.host, portal.port, socket.SOCK_STREAM))
    for i, board in enumerate(config.boards):
        found += [Listener(key, host, port, socket.SOCK_DGRAM if udp else socket.SOCK_STREAM)
                  for key, host, port, udp in board.listen_ports(f"boards[{i}]")]
    return [listener for listener in found if listener.port != 0]


def busy_port_warnings(config: Config) -> list[str]:
    """One sentence per port that recorderd could not listen on now, naming its key."""
    own = _socket_inodes(running_holder(config.storage.data_dir))
    warnings = []
    for listener in listeners(config):
        problem = _try_bind(listener)
        if problem is None:
            continue
        if problem.errno == errno.EADDRINUSE and own and _listening_inodes(listener) & own:
            continue  # the running recorderd of this data directory: its own port
        warnings.append(f"{listener.key}: {listener.host}:{listener.port} ({listener.protocol}) "
                        f"cannot be listened on now: {problem.strerror or problem}; recorderd "
                        f"would retry for core.bind_retry_seconds = "
                        f"{config.core.bind_retry_seconds:g} s, then exit 1"
                        if problem.errno == errno.EADDRINUSE else
                        f"{listener.key}: {listener.host}:{listener.port} ({listener.protocol}) "
                        f"cannot be listened on: {problem.strerror or problem}")
    return warnings


def _try_bind(listener: Listener) -> OSError | None:
    try:
        infos = socket.getaddrinfo(listener.host or None, listener.port, type=listener.kind,
                                   flags=socket.AI_PASSIVE)
    except OSError as exc:
        return exc
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        if kind == socket.SOCK_STREAM:
            # As asyncio's servers do: a port left in TIME_WAIT by a stopped recorderd is free.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            return exc
    return None


def _socket_inodes(pid: int | None) -> set[int]:
    """The inodes of the sockets process ``pid`` has open (empty if it cannot be read)."""
    if pid is None:
        return set()
    inodes = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    try:
        names = os.listdir(fd_dir)
    except OSError:
        return set()
    for name in names:
        try:
            target = os.readlink(fd_dir / name)
        except OSError:
            continue
        if target.startswith("socket:[") and target.endswith("]"):
            inodes.add(int(target[8:-1]))
    return inodes


def _listening_inodes(listener: Listener) -> set[int]:
    """The inodes of the sockets bound to the listener's port, from /proc/net: listening
    for TCP, any for UDP. Whatever the address, which is enough to tell whose it is."""
    tables = ("udp", "udp6") if listener.kind == socket.SOCK_DGRAM else ("tcp", "tcp6")
    inodes = set()
    for table in tables:
        try:
            lines = Path(f"/proc/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10:
                continue
            port = int(fields[1].rsplit(":", 1)[1], 16)
            if port != listener.port:
                continue
            if listener.kind == socket.SOCK_STREAM and fields[3] != _TCP_LISTEN:
                continue
            inodes.add(int(fields[9]))
    return inodes
