"""The wrapped file keys of encrypted recordings, as their rows keep them (schema 7,
docs/encryption.md): read and replaced by key rotation, which re-wraps them."""

from __future__ import annotations

from abc import ABC, abstractmethod


class FileKeyStore(ABC):
    @abstractmethod
    def file_keys(self) -> list[tuple[int, str, str]]:
        """(RECORDID, filename, wrapped key) of every row with a wrapped key."""

    @abstractmethod
    def file_key(self, ident: int) -> str:
        """Recording ``ident``'s wrapped key as its row keeps it now ("": none, or no row)."""

    @abstractmethod
    def set_file_key(self, ident: int, wrapped: str, *, was: str | None = None) -> bool:
        """Replace recording ``ident``'s wrapped key (only if it still is ``was``, when
        given: a running recorderd may have changed it since it was read); False if it has
        no row, or another key."""
