"""WebAPI query parameters, combined as the manual says.

"deviceid=1234&deviceid=5555" becomes one DEVICEID "1234,5555"; the same name in different cases
("deviceid=1&DEVICEID=2") is refused with the manual's message.
"""

from __future__ import annotations

from collections.abc import Iterable

from recorder.api.protocol.xmlcodec import NOT_XML
from recorder.api.request import invalid

DUPLICATES_MESSAGE = "parameters must be unique but duplicates were found"


def merge_params(pairs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Join repeated names with ","; raises RequestError (16) for names differing in case."""
    values: dict[str, list[str]] = {}
    spelling: dict[str, str] = {}
    for name, value in pairs:
        if NOT_XML.search(name) or NOT_XML.search(value):
            raise invalid(f"parameter {name[:40]!r} holds characters XML cannot carry")
        key = name.upper()
        if key in spelling and spelling[key] != name:
            raise invalid(DUPLICATES_MESSAGE)
        spelling[key] = name
        values.setdefault(name, []).append(value)
    return [(name, ",".join(v)) for name, v in values.items()]


def lookup(pairs: Iterable[tuple[str, str]], name: str) -> str | None:
    """The first value of ``name`` (any case), for answering a request that was refused."""
    wanted = name.upper()
    return next((v for n, v in pairs if n.upper() == wanted), None)
