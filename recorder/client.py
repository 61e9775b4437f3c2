"""A minimal client of the socket API: send one request, read its RESULT line."""

from __future__ import annotations

import socket

from recorder.errors import RecorderError

MAX_RESULT = 64 << 20


class ClientError(RecorderError):
    """The service could not be reached or gave no answer."""


def send_request(host: str, port: int, request: bytes, timeout: float) -> bytes:
    """Send ``request`` (a CRLF is added) and return the RESULT, without its CRLF."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(request.rstrip(b"\r\n") + b"\r\n")
            received = bytearray()
            while b"\r\n" not in received:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
                if len(received) > MAX_RESULT:
                    raise ClientError(f"answer from {host}:{port} is over {MAX_RESULT} bytes")
    except TimeoutError as exc:
        raise ClientError(f"no answer from {host}:{port} within {timeout:g} s") from exc
    except OSError as exc:
        raise ClientError(f"cannot reach recorderd at {host}:{port}: "
                          f"{exc.strerror or exc}") from exc
    line = bytes(received).split(b"\r\n", 1)[0]
    if not line:
        raise ClientError(f"{host}:{port} closed the connection without answering")
    return line
