"""The portal's templates: Jinja2, autoescaped everywhere, loaded from the package's
``templates/``; and the filters pages share (durations as h:mm:ss, times for the browser)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import jinja2

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"


def duration(seconds: float | None) -> str:
    """h:mm:ss, as people read call lengths."""
    if seconds is None:
        return ""
    whole = round(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def clock(seconds: float | None) -> str:
    """h:mm:ss.t: a place in a recording, to the tenth of a second."""
    if seconds is None:
        return ""
    tenths = round(seconds * 10)
    whole, tenth = divmod(tenths, 10)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}.{tenth}"


def iso_time(timestamp: float | None) -> str:
    """UTC ISO 8601, which the page's script shows in the browser's local time."""
    if timestamp is None:
        return ""
    # time.gmtime rather than datetime: a page of results formats a hundred of these. Rounded
    # to the microsecond first, as datetime would, so both give the same second.
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(round(timestamp, 6)))


class Templates:
    def __init__(self, directory: Path = TEMPLATES_DIR) -> None:
        # Autoescape on for every template, whatever its name: everything a caller typed (ANI,
        # USER fields, names) reaches these pages.
        self._env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(directory), autoescape=True,
            undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
            # The templates are package data: never changed while the portal runs, so not
            # looked at on disk again for every page.
            auto_reload=False)
        self._env.filters["duration"] = duration
        self._env.filters["iso_time"] = iso_time
        self._env.filters["clock"] = clock

    def render(self, name: str, **values: Any) -> str:
        return self._env.get_template(name).render(**values)
