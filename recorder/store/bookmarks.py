"""Bookmarks: a comment at a time offset in a recording, by a user (the portal's ALLOWCOMMENT).
Their comment edited or the bookmark removed by its author; removed with their recording."""

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

    @abstractmethod
    def get_bookmark(self, ident: int, bookmark_id: int) -> Bookmark | None:
        """Bookmark ``bookmark_id`` of recording ``ident``; None if it has none such."""

    @abstractmethod
    def change_bookmark(self, ident: int, bookmark_id: int, comment: str | None) -> bool:
        """Give bookmark ``bookmark_id`` of recording ``ident`` a new comment, or remove it
        (``comment`` None); False if there was none such."""
