"""Limits on request parameters, from the manual's "Data Type Values" tables.

A value that breaks its field's limit is refused with code 16 and a message naming the field;
nothing is silently truncated.
"""

from __future__ import annotations

from dataclasses import dataclass

INT32_MAX = 2147483647
INT64_MAX = 2**63 - 1


@dataclass(frozen=True)
class FieldSpec:
    max_len: int | None = None
    choices: tuple[str, ...] | None = None  # canonical (upper-case) values
    int_range: tuple[int, int] | None = None


YES_NO = FieldSpec(choices=("Y", "N"))

FIELDS: dict[str, FieldSpec] = {
    "DEVICEID": FieldSpec(max_len=64),
    "CALLINSTANCE": FieldSpec(max_len=64),
    "DEVICEALIAS": FieldSpec(max_len=15),
    "GROUP": FieldSpec(max_len=20),
    "GATE": FieldSpec(max_len=20),
    "ANI": FieldSpec(max_len=20),
    "DNIS": FieldSpec(max_len=20),
    **{f"USER{i}": FieldSpec(max_len=20) for i in range(1, 4)},
    **{f"USER{i}": FieldSpec(max_len=255) for i in range(4, 9)},
    **{f"USER{i}": FieldSpec(max_len=50) for i in range(9, 16)},
    "CALLID": FieldSpec(max_len=16),
    "PRIORITY": FieldSpec(int_range=(0, 100)),
    "CALLDIRECTION": FieldSpec(choices=("I", "O", "?")),
    "MAXRECORDSILENCE": FieldSpec(int_range=(0, INT32_MAX)),
    "MAXRECORDTIME": FieldSpec(int_range=(0, INT32_MAX)),
    "AGENTINITIATED": YES_NO,
    "CTIINITIATED": YES_NO,
    "UPDATE_IF_NOT_RECORDING": YES_NO,
    "DETAIL": YES_NO,
    "STATIONNAME": FieldSpec(max_len=50),
    "ARCHIVEACTION": FieldSpec(int_range=(-1, INT64_MAX)),
    "KEEP_DAYS": FieldSpec(int_range=(-1, INT32_MAX)),
    "SYS_USER": FieldSpec(max_len=30),
    "CRM_USER": FieldSpec(max_len=30),
    "RECORDID": FieldSpec(int_range=(1, INT64_MAX)),
    "CALLCOUNT": FieldSpec(int_range=(1, INT32_MAX)),
    "CALLDATESTART": FieldSpec(int_range=(0, INT64_MAX)),
    "CALLDATEEND": FieldSpec(int_range=(0, INT64_MAX)),
}

# Other spellings the manual uses for the same parameter.
ALIASES: dict[str, str] = {"KEEPDAYS": "KEEP_DAYS"}
