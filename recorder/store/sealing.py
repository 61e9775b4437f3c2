"""Which seals a store makes: a row's seal and an audit entry's hash, plain SHA-256 or, with the
seal key (``storage.seal_key_file``), HMAC-SHA256 under it (docs/storage.md, "The seal key").

The rule is the evidence's own: once anything is sealed with the key (the newest audit entry,
or the purge anchor), every new seal is, and a process without the key refuses to add one
rather than add an unkeyed seal that ``recorderctl verify`` would rightly report. recorderd
(``active``) seals with its key from the start: it is what takes the key into use.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from recorder.errors import StoreError
from recorder.store.evidence import (
    Mark,
    audit_hash,
    is_keyed,
    keyed_audit_hash,
    keyed_row_seal,
    row_seal,
)
from recorder.store.sealkey import SealKey

# The audit entry recorderd writes when it takes a seal key into use (target: the key's id).
AUDIT_SEAL_KEY = "seal-key"


class Sealing:
    """How this process seals. ``key``: the seal key it holds; ``active``: it seals with it
    whether or not the store is keyed yet (recorderd); ``missing``: why it holds none (said
    when it must refuse)."""

    def __init__(self, key: SealKey | None = None, *, active: bool = False,
                 missing: str = "") -> None:
        self.key = key
        self.active = active and key is not None
        self.missing = missing

    def key_for(self, keyed: bool) -> bytes | None:
        """The key for a new seal in a store whose evidence is ``keyed`` already (None: plain
        SHA-256); StoreError if it is keyed and this process has no key."""
        if self.key is not None and (keyed or self.active):
            return self.key.secret
        if keyed:
            raise StoreError(
                "this data directory's evidence is sealed with a seal key "
                f"(storage.seal_key_file), and {self.missing or 'none was given here'}: a seal "
                "or audit entry made without it would break the evidence; give the key "
                "(RECORDER_SEAL_KEY_FILE=PATH, or storage.seal_key_file)")
        return None

    def row_seal(self, values: Sequence[object], keyed: bool, marks: Sequence[Mark] = ()
                 ) -> str:
        """The seal of a row's ``ROW_SEAL_COLUMNS`` ``values`` and its blackout ``marks``."""
        key = self.key_for(keyed)
        return row_seal(values, marks) if key is None else keyed_row_seal(values, key, marks)

    def audit_hash(self, entry_id: int, time: float, user_id: int | None, *, username: str,
                   action: str, target: str, detail: str, address: str, prev_hash: str) -> str:
        """The hash of a new audit entry after ``prev_hash``: keyed once the chain is."""
        key = self.key_for(is_keyed(prev_hash))
        fields = {"username": username, "action": action, "target": target,
                  "detail": detail, "address": address, "prev_hash": prev_hash}
        if key is None:
            return audit_hash(entry_id, time, user_id, **fields)
        return keyed_audit_hash(entry_id, time, user_id, key=key, **fields)


def evidence_keyed(conn: sqlite3.Connection) -> bool:
    """Whether the store's evidence is sealed with the key by now: its newest audit entry is
    (or, with no entry, the purge anchor)."""
    last = conn.execute("SELECT entry_hash FROM audit ORDER BY entry_id DESC LIMIT 1"
                        ).fetchone()
    if last is None:
        last = conn.execute("SELECT entry_hash FROM audit_anchor").fetchone()
    return last is not None and is_keyed(last[0])


__all__ = ["AUDIT_SEAL_KEY", "Sealing", "evidence_keyed"]
