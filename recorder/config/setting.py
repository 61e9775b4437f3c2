"""How a setting is declared: its default (or none: required), range or choices, meaning."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import MISSING, field
from typing import Any

INT32_MAX = 2147483647  # the manual's integers are signed 32-bit


def setting(
    default: Any = MISSING,
    doc: str = "",
    *,
    factory: Callable[[], Any] | None = None,
    min: float | None = None,
    max: float | None = None,
    choices: tuple[str, ...] | None = None,
    secret: bool = False,
    example: Any = None,
) -> Any:
    """Declare one config key: its default (none = required), range or choices, and meaning.

    A ``secret`` key's value is masked when the effective config is printed. ``example`` is
    what examples/recorder.toml shows instead of the default (a required key's, or a default
    that depends on the machine).
    """
    meta = {"doc": doc, "min": min, "max": max, "choices": choices, "secret": secret,
            "example": example}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    if default is MISSING:
        return field(metadata=meta)
    return field(default=default, metadata=meta)
