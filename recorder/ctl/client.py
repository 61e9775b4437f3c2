"""A minimal client of the socket API: one request and its RESULT line, or a connection kept
open for several requests and for the event lines an EVENTS subscription streams."""

from __future__ import annotations

import socket
import time
from types import TracebackType

from recorder.errors import RecorderError

MAX_RESULT = 64 << 20


class ClientError(RecorderError):
    """The service could not be reached or gave no answer."""


class ClientTimeout(ClientError):
    """Nothing arrived within the time given."""


class ConnectionClosed(ClientError):
    """The service closed the connection."""


class ApiConnection:
    """One TCP connection to the socket API; every line it reads is one RESULT or event."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        try:
            self._sock = socket.create_connection((host, port), timeout=timeout)
        except TimeoutError as exc:
            raise ClientError(f"no answer from {host}:{port} within {timeout:g} s") from exc
        except OSError as exc:
            raise ClientError(f"cannot reach recorderd at {host}:{port}: "
                              f"{exc.strerror or exc}") from exc
        self._buf = bytearray()

    def send(self, request: bytes) -> None:
        """Send one request (a CRLF is added)."""
        try:
            self._sock.sendall(request.rstrip(b"\r\n") + b"\r\n")
        except OSError as exc:
            raise ClientError(f"cannot send to {self.host}:{self.port}: "
                              f"{exc.strerror or exc}") from exc

    def read_line(self, timeout: float | None = None) -> bytes:
        """The next line, without its CRLF, within ``timeout`` seconds (default: the
        connection's); ClientTimeout if none came, ConnectionClosed if the service closed."""
        wait = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + wait
        while b"\r\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ClientTimeout(f"no answer from {self.host}:{self.port} within {wait:g} s")
            self._sock.settimeout(left)
            try:
                chunk = self._sock.recv(65536)
            except TimeoutError as exc:
                raise ClientTimeout(f"no answer from {self.host}:{self.port} within "
                                    f"{wait:g} s") from exc
            except OSError as exc:
                raise ConnectionClosed(f"{self.host}:{self.port}: {exc.strerror or exc}") from exc
            if not chunk:
                raise ConnectionClosed(f"{self.host}:{self.port} closed the connection")
            self._buf += chunk
            if len(self._buf) > MAX_RESULT:
                raise ClientError(f"answer from {self.host}:{self.port} is over "
                                  f"{MAX_RESULT} bytes")
        line, _, rest = bytes(self._buf).partition(b"\r\n")
        self._buf = bytearray(rest)
        return line

    def request(self, request: bytes) -> bytes:
        """Send ``request`` and return the next line (its RESULT on a connection that is not
        subscribed to events)."""
        self.send(request)
        return self.read_line()

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> ApiConnection:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()


def send_request(host: str, port: int, request: bytes, timeout: float) -> bytes:
    """Send ``request`` (a CRLF is added) and return the RESULT, without its CRLF."""
    with ApiConnection(host, port, timeout) as conn:
        conn.send(request)
        try:
            line = conn.read_line()
        except ConnectionClosed as exc:
            raise ClientError(f"{host}:{port} closed the connection without answering") from exc
    if not line:
        raise ClientError(f"{host}:{port} closed the connection without answering")
    return line
