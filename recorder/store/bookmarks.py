"""Bookmarks: a comment at a time offset in a recording, by a user (the portal's ALLOWCOMMENT).
Removed with their recording."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass


@dataclass(frozen=True)
class Bookmark:
    ident: int  # the recording's RECORDID
    user_id: int
    username: str  # as the user was named when they wrote it
    offset: float  # seconds from the recording's start
    comment: str
    time: float  # unix seconds it was written
    bookmark_id: int = 0  # given by the store


class BookmarkStore(ABC):
    @abstractmethod
    def add_bookmark(self, bookmark: Bookmark) -> int:
        """Store it; its id."""

    @abstractmethod
    def list_bookmarks(self, ident: int) -> list[Bookmark]:
        """The recording's bookmarks, by offset."""
