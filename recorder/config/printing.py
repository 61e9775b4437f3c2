"""The effective configuration as TOML (``recorderd --print-config``), secrets masked."""

from __future__ import annotations

from dataclasses import Field, fields, is_dataclass
from typing import Any

from recorder.config.model import Config

# --- printing ------------------------------------------------------------------------------


SECRET_MASK = "********"


def to_toml(config: Config, *, mask_secrets: bool = False) -> str:
    """The effective configuration as TOML that load_config reads back to the same Config.

    ``mask_secrets`` replaces every set secret (passwords) with SECRET_MASK, for printing.
    """

    def shown(table: Any, key: Field[Any]) -> str:
        value = getattr(table, key.name)
        if mask_secrets and key.metadata.get("secret") and value:
            return toml_value(SECRET_MASK)
        return toml_value(value)

    lines: list[str] = []
    for f in fields(config):
        value = getattr(config, f.name)
        if f.name == "boards":
            continue
        lines.append(f"[{f.name}]")
        if isinstance(value, dict):
            lines.extend(f"{toml_value(k)} = {toml_value(v)}" for k, v in value.items())
            lines.append("")
            continue
        lines.extend(f"{k.name} = {shown(value, k)}" for k in fields(value))
        lines.append("")
    for board in config.boards:
        lines.append("[[boards]]")
        lines.extend(f"{k.name} = {shown(board, k)}" for k in fields(board))
        lines.append("")
    return "\n".join(lines)


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if is_dataclass(value) and not isinstance(value, type):
        # An entry of an array of tables (recording.schedules) as an inline table.
        return "{" + ", ".join(f"{k.name} = {toml_value(getattr(value, k.name))}"
                               for k in fields(value)) + "}"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'
