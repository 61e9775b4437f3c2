"""A minimal client of the socket API: one request and its RESULT line, or a connection kept
open for several requests and for the event lines an EVENTS subscription streams; over TLS,
with a client certificate, for the socket API's TLS port (``client_context``)."""

from __future__ import annotations

import socket
import ssl
import time
from pathlib import Path
from types import TracebackType

from recorder.errors import RecorderError

MAX_RESULT = 64 << 20


class ClientError(RecorderError):
    """The service could not be reached or gave no answer."""


class ClientTimeout(ClientError):
    """Nothing arrived within the time given."""


class ConnectionClosed(ClientError):
    """The service closed the connection."""


def client_context(cert: Path | None = None, key: Path | None = None, ca: Path | None = None,
                   pinned: Path | None = None) -> ssl.SSLContext:
    """A TLS client context presenting ``cert`` (its key in ``key``, else in ``cert`` too) and
    trusting the CA certificates in ``ca``, else the one certificate ``pinned`` (the server's
    own, read from its configuration: then it alone is trusted, whatever name it holds), else
    the system's CAs. ValueError naming the file that cannot be used."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    try:
        if ca is not None:
            context.load_verify_locations(cafile=str(ca))
        elif pinned is not None:
            context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH,
                                                 cafile=str(pinned))
            # The server's certificate itself is the trust anchor, so the name it was issued
            # for (a host name, where recorderctl talks to 127.0.0.1) is beside the point.
            context.check_hostname = False
            context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"{ca or pinned}: not CA certificates: {_why(exc)}") from exc
    if cert is not None:
        try:
            context.load_cert_chain(str(cert), str(key) if key is not None else None)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"{cert}: cannot use it as a client certificate"
                             f"{f' with the key {key}' if key else ''}: {_why(exc)}") from exc
    return context


def _why(exc: OSError) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"the server's certificate is not trusted (--ca): {exc.verify_message}"
    return str(getattr(exc, "reason", None) or exc.strerror or exc)


class ApiConnection:
    """One TCP connection to the socket API (over TLS with ``tls``); every line it reads is
    one RESULT or event."""

    def __init__(self, host: str, port: int, timeout: float,
                 tls: ssl.SSLContext | None = None) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        try:
            self._sock = socket.create_connection((host, port), timeout=timeout)
        except TimeoutError as exc:
            raise ClientError(f"no answer from {host}:{port} within {timeout:g} s") from exc
        except OSError as exc:
            raise ClientError(f"cannot reach recorderd at {host}:{port}: "
                              f"{exc.strerror or exc}") from exc
        if tls is not None:
            try:
                self._sock = tls.wrap_socket(self._sock, server_hostname=host)
            except TimeoutError as exc:
                self._sock.close()
                raise ClientError(f"no TLS handshake from {host}:{port} within "
                                  f"{timeout:g} s") from exc
            except OSError as exc:  # ssl.SSLError too: a certificate refused, either way
                self._sock.close()
                raise ClientError(f"TLS with {host}:{port} failed: {_why(exc)}") from exc
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
                # TLS 1.3: a client certificate refused shows here, at the first read.
                raise ConnectionClosed(f"{self.host}:{self.port}: {_why(exc)}") from exc
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


def send_request(host: str, port: int, request: bytes, timeout: float,
                 tls: ssl.SSLContext | None = None) -> bytes:
    """Send ``request`` (a CRLF is added) and return the RESULT, without its CRLF."""
    with ApiConnection(host, port, timeout, tls) as conn:
        conn.send(request)
        try:
            line = conn.read_line()
        except ConnectionClosed as exc:
            if tls is not None:
                # TLS 1.3 ends the handshake before the server has checked the client's
                # certificate; a refusal is then the connection closed, unanswered.
                raise ClientError(f"{host}:{port} closed the connection without answering: "
                                  "it refused the client certificate (none given: --cert; "
                                  "or not issued by its api.socket_tls_client_ca)") from exc
            raise ClientError(f"{host}:{port} closed the connection without answering") from exc
    if not line:
        raise ClientError(f"{host}:{port} closed the connection without answering")
    return line
