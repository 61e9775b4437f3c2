"""Reading request parameters, each checked against its function's limits in ``fields``."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from recorder.api.protocol.fields import ALIASES, FieldSpec, field_spec
from recorder.api.request import invalid
from recorder.calls.requests import DeviceQuery
from recorder.store.records import METADATA_FIELDS

# Plain ASCII digits with an optional minus: int() would also take "1_000", "+5" and "١٢".
_INTEGER = re.compile(r"-?[0-9]+")


# More digits than any field holds. Such a number is reported as out of range without being
# converted, since Python refuses to convert numbers of over 4300 digits at all.
MAX_DIGITS = 20
_TOO_BIG: int = 10**MAX_DIGITS


def parse_int(text: str) -> int | None:
    """``text`` as an integer if it is written as one in ASCII digits, else None."""
    if not _INTEGER.fullmatch(text):
        return None
    negative = text.startswith("-")
    digits = text.lstrip("-").lstrip("0")
    if len(digits) > MAX_DIGITS:
        return -_TOO_BIG if negative else _TOO_BIG
    return int(text)


class Params:
    """A request's parameters by upper-case name, with the manual's alternative spellings.

    ``request_type`` picks the manual's data-type table for the request's function; without it
    the call handling limits apply.
    """

    def __init__(self, raw: Mapping[str, str], request_type: str = "") -> None:
        self._type = request_type
        self._raw: dict[str, str] = {}
        self._read: set[str] = set()  # names a handler asked for, sent or not
        self._sent_as: dict[str, str] = {}  # canonical name -> the spelling sent
        for name, value in raw.items():
            canonical = ALIASES.get(name, name)
            if canonical in self._raw:
                raise invalid(f"{name} and {canonical} are the same parameter; send one")
            self._raw[canonical] = value
            self._sent_as[canonical] = name

    def __contains__(self, name: str) -> bool:
        self._read.add(name)
        return name in self._raw

    def ignore(self, *names: str) -> None:
        """Parameters the manual says this request ignores: not reported by ``unread``."""
        self._read.update(names)

    def unread(self) -> list[str]:
        """The parameters sent that the handler never looked at: data it dropped (a
        misspelt ``<USER01>``, a ``<DEVICE_ALIAS>``), in the order they came."""
        return [self._sent_as[name] for name in self._raw if name not in self._read]

    def spec(self, name: str) -> FieldSpec | None:
        """The limits on parameter ``name`` for this request's function."""
        return field_spec(self._type, name)

    def text(self, name: str) -> str | None:
        """The value as sent (None if absent), checked against the field's length or values."""
        self._read.add(name)
        value = self._raw.get(name)
        if value is None:
            return None
        spec = self.spec(name)
        if spec is None:
            return value
        if spec.max_len is not None and len(value) > spec.max_len:
            raise invalid(f"{name} is {len(value)} characters long; the limit is {spec.max_len}")
        if spec.choices is not None and value:
            canonical = value.upper()
            if canonical not in spec.choices:
                raise invalid(f"{name} must be one of {', '.join(spec.choices)}, not {value!r}")
            return canonical
        if spec.int_range is not None and value:
            self.integer(name)
        return value

    def nonblank(self, name: str) -> str | None:
        """The value, with a blank one treated as not sent (as the manual does for DEVICEID)."""
        value = self.text(name)
        return value if value else None

    def integer(self, name: str) -> int | None:
        """The value as an integer within the field's range; None if absent or blank."""
        self._read.add(name)
        value = self._raw.get(name)
        if value is None or value == "":
            return None
        number = parse_int(value)
        if number is None:
            raise invalid(f"{name} must be a whole number, not {value[:40]!r}")
        spec = self.spec(name)
        if spec is not None and spec.int_range is not None:
            low, high = spec.int_range
            if not low <= number <= high:
                raise invalid(f"{name} must be between {low} and {high}, not {number}")
        return number

    def flag(self, name: str) -> str:
        """A Y/N field: "Y", "N", or "" when not sent."""
        return self.text(name) or ""

    def metadata(self, names: Iterable[str] = METADATA_FIELDS) -> dict[str, str]:
        """The call metadata fields present in the request."""
        found: dict[str, str] = {}
        for name in names:
            value = self.text(name)
            if value is not None:
                found[name] = value
        return found

    def device(self, *, call_id: bool = False) -> DeviceQuery:
        """The device the request names (blank values count as not sent)."""
        return DeviceQuery(
            device_id=self.nonblank("DEVICEID"),
            alias=self.nonblank("DEVICEALIAS"),
            sys_user=self.nonblank("SYS_USER"),
            crm_user=self.nonblank("CRM_USER"),
            station=self.nonblank("STATIONNAME"),
            call_id=self.nonblank("CALLID") if call_id else None,
        )
