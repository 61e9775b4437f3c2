"""The API as a client sees it: requests, a socket connection, and assertions on RESULTs."""

from __future__ import annotations

import socket
from typing import Any
from xml.sax.saxutils import escape

from lxml import etree


def request_xml(request_type: str, request_id: str | int | None = 1, **params: Any) -> bytes:
    """A one-line <REQUEST> with TYPE, REQUESTID and the given parameters (escaped)."""
    parts = [f"<TYPE>{escape(request_type)}</TYPE>"]
    if request_id is not None:
        parts.append(f"<REQUESTID>{escape(str(request_id))}</REQUESTID>")
    parts += [f"<{k.upper()}>{escape(str(v))}</{k.upper()}>" for k, v in params.items()]
    return ("<REQUEST>" + "".join(parts) + "</REQUEST>").encode()


def result_code(result: etree._Element) -> int:
    return int(result.findtext("RESULTCODE") or -1)


class ApiConnection:
    """One TCP connection to the socket API."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 10.0, *,
                 source: str | None = None) -> None:
        # ``source``: the client's own address, another of 127.0.0.0/8 to be another client.
        self.sock = socket.create_connection(
            (host, port), timeout=timeout,
            source_address=(source, 0) if source is not None else None)
        self._buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_line(self) -> bytes:
        while b"\r\n" not in self._buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"connection closed; unanswered bytes: {self._buf!r}")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\r\n", 1)
        return line

    def read_result(self) -> etree._Element:
        return etree.fromstring(self.read_line())

    def request(self, request_type: str, request_id: str | int | None = 1,
                **params: Any) -> etree._Element:
        self.send(request_xml(request_type, request_id, **params) + b"\r\n")
        return self.read_result()

    def close(self) -> None:
        self.sock.close()


# --- assertions on RESULTs --------------------------------------------------------------------


def expect(result: etree._Element, code: int, message: str | None = None, *,
           starts: str | None = None) -> etree._Element:
    """``result`` has RESULTCODE ``code`` and, if given, the exact message or its start."""
    got = result.findtext("RESULTMSG") or ""
    assert result_code(result) == code, etree.tostring(result).decode()
    if message is not None:
        assert got == message
    if starts is not None:
        assert got.startswith(starts), got
    return result


def fields(element: etree._Element | None) -> dict[str, str]:
    """The text children of ``element`` by tag."""
    assert element is not None
    return {child.tag: child.text or "" for child in element if not len(child)}


def add_user(conn: ApiConnection, first: str, last: str, **more: Any) -> int:
    """IMPORTUSER ADD, which must succeed; the new USERID."""
    result = expect(conn.request("IMPORTUSER", 1, action="ADD", firstname=first,
                                 lastname=last, **more), 20)
    return int(result.findtext("USERID") or 0)
