"""API tokens' interface: a bearer token for the WebAPI (``api.require_auth``) belongs to one
user and acts with that user's permissions. Only a hash of each token is kept: the token itself
is shown once, when ``recorderctl token add`` makes it, and cannot be read back."""

from __future__ import annotations

import hashlib
import secrets
from abc import ABC, abstractmethod
from dataclasses import dataclass

# Tokens start with this, so a leaked one is recognisable (secret scanners, logs).
TOKEN_PREFIX = "rec_"


def new_token() -> str:
    """A fresh token: 256 random bits, URL-safe."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """What the store keeps of ``token``. A plain SHA-256 suffices (no salt, no scrypt): a
    token is 256 random bits, which no dictionary holds, and a lookup by hash must be cheap
    enough for every request."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class TokenRow:
    """One token, as listed: never the token itself."""

    token_id: int
    user_id: int
    username: str
    label: str  # what the administrator said it is for
    created: float  # unix seconds
    revoked: float | None  # unix seconds it was revoked; None: in force
    hint: str  # its first characters, to tell tokens apart


class TokenStore(ABC):
    @abstractmethod
    def add_token(self, user_id: int, token: str, label: str, *, now: float) -> int:
        """Keep ``token`` (hashed) for the user; its id."""

    @abstractmethod
    def list_tokens(self, user_id: int | None = None) -> list[TokenRow]:
        """The tokens of one user, or of all, oldest first, revoked ones included."""

    @abstractmethod
    def revoke_tokens(self, user_id: int, token_id: int | None = None, *, now: float) -> int:
        """Revoke the user's token ``token_id``, or all of theirs; how many were in force."""

    @abstractmethod
    def token_user(self, token: str) -> int | None:
        """The user a token in force belongs to; None for an unknown or revoked token."""
