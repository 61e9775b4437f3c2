"""The manual's date format, for the handlers (it lives in the core: events use it too)."""

from recorder.timefmt import manual_datetime

__all__ = ["manual_datetime"]
