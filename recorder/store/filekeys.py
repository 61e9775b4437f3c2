"""The wrapped file keys of encrypted recordings, as their rows keep them (schema 7,
docs/encryption.md): read and replaced by key rotation, which re-wraps them."""

from __future__ import annotations

from abc import ABC, abstractmethod


class FileKeyStore(ABC):
    @abstractmethod
    def file_keys(self) -> list[tuple[int, str, str]]:
        """(RECORDID, filename, wrapped key) of every row with a wrapped key."""

    @abstractmethod
    def set_file_key(self, ident: int, wrapped: str) -> bool:
        """Replace recording ``ident``'s wrapped key; False if it has no row."""
