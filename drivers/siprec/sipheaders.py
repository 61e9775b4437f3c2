"""SIP header fields (RFC 3261 §7.3, §19, §20): names, comma lists and the typed readers.

``Headers`` keeps every header line in order under its canonical name (compact forms expanded,
§7.3.3 and the registry's later ones), looked up case-insensitively. ``split_list`` splits a
comma list outside quoted strings and angle brackets (a display name or a URI may hold
commas). ``NameAddr`` reads From/To/Contact (a bare addr-spec's ``;params`` belong to the
header, not the URI, §20.10), ``SipUri`` the URI inside, ``Via`` a via-parm, ``CSeq`` a CSeq.
Every reader raises ValueError on what it cannot read. ``stamp_received`` and
``response_address`` are the transport's Via rules: where a response goes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

# Compact forms: RFC 3261 §7.3.3 and those registered since (RFC 3265/6665 o, RFC 3515 r,
# RFC 3892 b, RFC 3841 a/j/d, RFC 4028 x, RFC 4474 y/n).
COMPACT: dict[str, str] = {
    "i": "call-id", "m": "contact", "e": "content-encoding", "l": "content-length",
    "c": "content-type", "f": "from", "s": "subject", "k": "supported", "t": "to", "v": "via",
    "o": "event", "r": "refer-to", "b": "referred-by", "u": "allow-events",
    "a": "accept-contact", "j": "reject-contact", "d": "request-disposition",
    "x": "session-expires", "y": "identity", "n": "identity-info",
}
# Names whose usual spelling is not plain title case.
_SPELLING: dict[str, str] = {
    "call-id": "Call-ID", "cseq": "CSeq", "www-authenticate": "WWW-Authenticate",
    "mime-version": "MIME-Version", "session-id": "Session-ID", "rack": "RAck",
    "rseq": "RSeq", "cisco-guid": "Cisco-Guid", "content-id": "Content-ID",
}


def split_list(value: str) -> list[str]:
    """The elements of a comma list, stripped, ignoring commas in quotes and in <...>."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    angle = 0
    escaped = False
    for char in value:
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif not quoted and char == "<":
            angle += 1
        elif not quoted and char == ">" and angle:
            angle -= 1
        elif char == "," and not quoted and not angle:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    parts.append("".join(current).strip())
    return [p for p in parts if p]


def _split_params(text: str) -> list[str]:
    """``;a=1;b="x;y"`` -> ['a=1', 'b="x;y"'] (semicolons in quotes kept)."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == ";" and not quoted:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    if quoted:
        raise ValueError("an unterminated quoted string")
    parts.append("".join(current).strip())
    return [p for p in parts if p]


def unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def parse_params(text: str) -> dict[str, str | None]:
    """Generic parameters (``;name[=value]``); names lower-cased, quoted values unquoted."""
    params: dict[str, str | None] = {}
    for part in _split_params(text):
        name, eq, value = part.partition("=")
        params[name.strip().lower()] = unquote(value.strip()) if eq else None
    return params


def format_params(params: dict[str, str | None]) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())


class Headers:
    """Header lines in order; lookups by any spelling or compact form of a name."""

    def __init__(self, items: list[tuple[str, str]] | None = None) -> None:
        self._items: list[tuple[str, str]] = []
        for name, value in items or []:
            self.add(name, value)

    @staticmethod
    def key(name: str) -> str:
        lower = name.strip().lower()
        return COMPACT.get(lower, lower)

    @classmethod
    def canonical(cls, name: str) -> str:
        key = cls.key(name)
        return _SPELLING.get(key) or "-".join(p.capitalize() for p in key.split("-"))

    def add(self, name: str, value: str) -> None:
        self._items.append((self.canonical(name), value))

    def set(self, name: str, value: str) -> None:
        self.remove(name)
        self.add(name, value)

    def remove(self, name: str) -> None:
        key = self.key(name)
        self._items = [(n, v) for n, v in self._items if n.lower() != key]

    def get(self, name: str) -> str | None:
        """The first line's value of a header; None if it is absent."""
        key = self.key(name)
        return next((v for n, v in self._items if n.lower() == key), None)

    def get_all(self, name: str) -> list[str]:
        """Every line's value, as received (not split at commas)."""
        key = self.key(name)
        return [v for n, v in self._items if n.lower() == key]

    def values(self, name: str) -> list[str]:
        """Every element of a comma-list header over all its lines (Via, Require, ...)."""
        return [part for value in self.get_all(name) for part in split_list(value)]

    def items(self) -> Iterator[tuple[str, str]]:
        return iter(list(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None


@dataclass(frozen=True)
class SipUri:
    """A sip:/sips:/tel: URI, enough to name a party: scheme, user, host, port, params."""

    scheme: str
    user: str
    host: str
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> SipUri:
        scheme, colon, rest = text.strip().partition(":")
        scheme = scheme.lower()
        if not colon or not rest:
            raise ValueError(f"not a URI: {text[:60]!r}")
        rest = rest.split("?", 1)[0]
        main, _, params = rest.partition(";")
        if scheme == "tel":
            return cls(scheme, main, "", None, parse_params(params))
        if scheme not in ("sip", "sips"):
            return cls(scheme, "", main, None, {})
        user, at, hostport = main.rpartition("@")
        if not at:
            user, hostport = "", main
        user = user.split(":", 1)[0]  # a password is never kept
        host, port = _host_port(hostport)
        return cls(scheme, user, host, port, parse_params(params))


def _host_port(text: str) -> tuple[str, int | None]:
    match = re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[^:\s\[\]]+)(?::(\d{1,5}))?", text.strip())
    if match is None:
        raise ValueError(f"not a host[:port]: {text[:60]!r}")
    port = int(match.group(2)) if match.group(2) else None
    if port is not None and not 0 < port < 65536:
        raise ValueError(f"port {port} out of range")
    return match.group(1).lower(), port


@dataclass(frozen=True)
class NameAddr:
    """A From/To/Contact value: display name, URI, header parameters (tag, expires, ...)."""

    display: str
    uri: str
    params: dict[str, str | None] = field(default_factory=dict)

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    @property
    def sip_uri(self) -> SipUri:
        return SipUri.parse(self.uri)

    @classmethod
    def parse(cls, text: str) -> NameAddr:
        s = text.strip()
        if not s:
            raise ValueError("an empty name-addr")
        display = ""
        if s.startswith('"'):
            match = re.match(r'"((?:[^"\\]|\\.)*)"\s*', s)
            if match is None:
                raise ValueError("an unterminated display name")
            display = unquote(match.group(0).strip())
            s = s[match.end():]
            if not s.startswith("<"):
                raise ValueError("a display name without <URI>")
        if "<" in s:
            before, _, after = s.partition("<")
            display = display or before.strip()
            uri, close, rest = after.partition(">")
            if not close:
                raise ValueError("a '<' without '>'")
        elif s == "*":
            uri, rest = s, ""
        else:
            uri, _, tail = s.partition(";")
            rest = ";" + tail if tail else ""
        uri = uri.strip()
        if not uri or (":" not in uri and uri != "*"):
            raise ValueError(f"not a URI: {uri[:60]!r}")
        rest = rest.strip()
        if rest and not rest.startswith(";"):
            raise ValueError(f"junk after the URI: {rest[:40]!r}")
        return cls(display, uri, parse_params(rest))

    def to_string(self) -> str:
        name = f'"{self.display}" ' if self.display else ""
        return f"{name}<{self.uri}>{format_params(self.params)}"


@dataclass(frozen=True)
class Via:
    """One via-parm: ``SIP/2.0/UDP host:port;branch=...;received=...;rport``."""

    transport: str
    host: str
    port: int | None
    params: dict[str, str | None] = field(default_factory=dict)

    _PATTERN = re.compile(r"\s*SIP\s*/\s*2\.0\s*/\s*([A-Za-z0-9.!%*_+`'~-]+)\s+"
                          r"([^;\s]+)\s*(;.*)?\s*$", re.IGNORECASE | re.DOTALL)

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @property
    def received(self) -> str | None:
        return self.params.get("received")

    @property
    def rport(self) -> int | None:
        value = self.params.get("rport")
        return int(value) if value and value.isdigit() else None

    @classmethod
    def parse(cls, text: str) -> Via:
        match = cls._PATTERN.fullmatch(text)
        if match is None:
            raise ValueError(f"not a Via: {text[:60]!r}")
        host, port = _host_port(match.group(2))
        return cls(match.group(1).upper(), host, port, parse_params(match.group(3) or ""))

    def with_params(self, params: dict[str, str | None]) -> Via:
        return replace(self, params=dict(params))

    def to_string(self) -> str:
        port = f":{self.port}" if self.port is not None else ""
        return f"SIP/2.0/{self.transport} {self.host}{port}{format_params(self.params)}"


@dataclass(frozen=True)
class CSeq:
    number: int
    method: str

    @classmethod
    def parse(cls, text: str) -> CSeq:
        match = re.fullmatch(r"\s*(\d{1,10})\s+([A-Za-z0-9.!%*_+`'~-]+)\s*", text)
        # §8.1.1.5: the number is a 32-bit unsigned integer below 2**31.
        if match is None or int(match.group(1)) >= 2**31:
            raise ValueError(f"not a CSeq: {text[:40]!r}")
        return cls(int(match.group(1)), match.group(2).upper())


def stamp_received(headers: Headers, host: str, port: int) -> None:
    """Mark the top Via with where the request really came from (RFC 3261 §18.2.1, RFC 3581 §4).

    ``received`` is added when the sent-by host is not the source address (always when the
    client asked for ``rport``), and an empty ``rport`` is given the source port, so the
    responses go back where the request came from (``response_address``).
    """
    values = headers.values("via")
    if not values:
        return
    top = Via.parse(values[0])
    params = dict(top.params)
    if "rport" in params or top.host.strip("[]") != host:
        params["received"] = host
    if "rport" in params and not params["rport"]:
        params["rport"] = str(port)
    values[0] = top.with_params(params).to_string()
    headers.remove("via")
    for value in values:
        headers.add("Via", value)


def response_address(via: Via, default_port: int = 5060) -> tuple[str, int]:
    """Where a response to a request with this top Via goes (RFC 3261 §18.2.2, RFC 3581 §4)."""
    host = via.received or via.host.strip("[]")
    port = via.rport or via.port or default_port
    return host, port
