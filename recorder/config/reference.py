"""Every config key, read from the schema itself: the annotated example file
(examples/recorder.toml), the README's key table, and a JSON Schema for editors
(``recorderd --config-schema``).

Written from the dataclasses the loader reads, so a key added to the schema appears in all
three, and tests/test_config_reference.py fails until the checked-in files are regenerated
(``scripts/config-reference``).
"""

from __future__ import annotations

import dataclasses
import textwrap
from collections.abc import Iterator
from dataclasses import MISSING, Field
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

from recorder.config.boards import BoardCommon
from recorder.config.model import Config
from recorder.config.printing import toml_value
from recorder.drivers.registry import DRIVERS, board_schema

WIDTH = 100
# The board an example file records with: the embedded default's demo board.
DEMO_DRIVER = "synthetic"
SECTION_INTROS = {
    "core": "this recording server (a core, in the manual's words)",
    "storage": "where recordings and the database go, and in which format (docs/storage.md)",
    "capture": "audio kept in memory per channel (docs/capture.md)",
    "api": "the XML socket API and the WebAPI (docs/api-notes.md)",
    "smtp": "where EMAIL and COMBINEDEMAIL send (docs/api-notes.md)",
    "log": "what recorderd logs",
    "recording": "which calls are recorded (docs/scheduling.md)",
    "retention": "when recordings are purged (docs/retention.md)",
    "portal": "the web portal (docs/portal.md)",
    "terminology": "FETCHTERMINOLOGY: what this site calls things; entries replace or add to "
                   "the manual's",
}
ARRAY_INTROS = {
    "recording.blocked": "calls never recorded; they win over schedules (every key given must "
                         "match)",
    "recording.schedules": "no schedules: every call is recorded; otherwise the first schedule "
                           "that matches a call decides",
    "retention.archive_actions": "ARCHIVEACTION ids clients may send, and what they mean",
}


@dataclasses.dataclass(frozen=True)
class Key:
    """One key of a table: its TOML name and type, default (MISSING: required), and limits."""

    name: str
    type: Any
    default: Any
    doc: str
    low: float | None
    high: float | None
    choices: tuple[str, ...] | None
    example: Any

    @property
    def required(self) -> bool:
        return self.default is MISSING

    def shown_value(self) -> Any:
        """What the example file shows: an example value when the schema gives one (a default
        that depends on the machine, a required key), else the default."""
        return self.example if self.example is not None else self.default

    def limits(self) -> str:
        if self.choices:
            return "one of " + ", ".join(self.choices)
        if self.low is not None and self.high is not None:
            return f"{_number(self.low)} to {_number(self.high)}"
        if self.low is not None:
            return f"at least {_number(self.low)}"
        return ""


def keys_of(cls: type[Any]) -> list[Key]:
    """The keys of a table (a config dataclass), in the schema's order."""
    hints = get_type_hints(cls)
    found = []
    for item in dataclasses.fields(cls):
        meta = item.metadata
        found.append(Key(item.name, hints[item.name], _default(item), meta.get("doc", ""),
                         meta.get("min"), meta.get("max"), meta.get("choices"),
                         meta.get("example")))
    return found


def _default(item: Field[Any]) -> Any:
    if item.default is not MISSING:
        return item.default
    if item.default_factory is not MISSING:
        return item.default_factory()
    return MISSING


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def sections() -> Iterator[tuple[str, Key]]:
    """(section name, key) of Config's tables, boards and terminology aside."""
    for key in keys_of(Config):
        if key.name not in ("boards", "terminology"):
            yield key.name, key


def board_classes() -> list[tuple[str, type[BoardCommon]]]:
    """(driver name, its settings class), the demo board first."""
    names = [DEMO_DRIVER, *sorted(name for name in DRIVERS if name != DEMO_DRIVER)]
    found = []
    for name in names:
        schema = board_schema(name)
        assert schema is not None
        found.append((name, schema))
    return found


def _array_item(tp: Any) -> Any:
    """The dataclass of an array of tables (tuple[X, ...]), or None."""
    if get_origin(tp) is tuple:
        (item, *_) = get_args(tp)
        if dataclasses.is_dataclass(item):
            return item
    return None


# --- the example file ------------------------------------------------------------------------

def example_toml() -> str:
    """examples/recorder.toml: every key with its default and meaning."""
    out = [
        "# An example recorderd configuration, listing every key with its default and meaning.",
        "# Generated from the schema by scripts/config-reference; do not edit by hand.",
        "# Every key is optional unless marked required; a file needs only the keys it",
        "# changes, but lists its own [[boards]]. Check a file with:",
        "#     recorderd --check-config --config FILE",
    ]
    terminology = _default(next(f for f in dataclasses.fields(Config) if f.name == "terminology"))
    for name, section in sections():
        out += ["", f"[{name}]"]
        out += _comment(SECTION_INTROS.get(name, ""))
        arrays = []
        for key in keys_of(section.type):
            item = _array_item(key.type)
            if item is not None:
                arrays.append((f"{name}.{key.name}", key, item))
                continue
            out += _key_lines(key)
        for dotted, key, item in arrays:
            out += ["", *_comment(ARRAY_INTROS.get(dotted, key.doc)), f"# [[{dotted}]]"]
            for sub in keys_of(item):
                out += _key_lines(sub, commented=True)
    out += ["", "[terminology]", *_comment(SECTION_INTROS["terminology"])]
    out += [f"# {_toml_key(word)} = {toml_value(meaning)}"
            for word, meaning in terminology.items()]
    out += ["", *_comment("Boards, in channel order. Keys every board has: "
                          + ", ".join(k.name for k in keys_of(BoardCommon))
                          + " (docs/capture.md). The demo board below lists them all; the others "
                          "show their own keys.")]
    common = {k.name for k in keys_of(BoardCommon)} - {"driver", "devices"}
    for driver, schema in board_classes():
        demo = driver == DEMO_DRIVER
        out += ["", "[[boards]]" if demo else "# [[boards]]"]
        for key in keys_of(schema):
            if key.name in common and not demo:
                continue
            if key.name == "driver":
                out.append(f"{'' if demo else '# '}driver = {toml_value(driver)}")
                continue
            out += _key_lines(key, commented=not demo)
    return "\n".join(out) + "\n"


def _toml_key(name: str) -> str:
    bare = name and all(c.isascii() and (c.isalnum() or c in "_-") for c in name)
    return name if bare else toml_value(name)


def _comment(text: str) -> list[str]:
    return [f"# {line}" for line in textwrap.wrap(text, WIDTH - 2)] if text else []


def _key_lines(key: Key, *, commented: bool = False) -> list[str]:
    about = key.doc
    if key.limits():
        about += f" ({key.limits()})"
    if key.required:
        about += " (required)"
    lines = _comment(about)
    value = key.shown_value()
    shown = "..." if value is MISSING else toml_value(value)
    lines.append(f"{'# ' if commented else ''}{key.name} = {shown}")
    return lines


# --- the README table ------------------------------------------------------------------------

README_START = "<!-- config keys: generated by scripts/config-reference -->"
README_END = "<!-- end of config keys -->"


def readme_table() -> str:
    """The README's table: each section's keys with their defaults, between the markers."""
    rows = ["| section | keys |", "|---|---|"]
    for name, section in sections():
        shown = []
        for key in keys_of(section.type):
            item = _array_item(key.type)
            if item is not None:
                shown.append(f"`[[{name}.{key.name}]]`: "
                             + ", ".join(f"`{k.name}`" for k in keys_of(item)))
            else:
                shown.append(_key_cell(key))
        rows.append(f"| `[{name}]` | {'; '.join(shown)} |")
    rows.append("| `[terminology]` | FETCHTERMINOLOGY's names (any) |")
    for driver, schema in board_classes():
        own = [k for k in keys_of(schema) if k.name not in {f.name for f in keys_of(BoardCommon)}]
        rows.append(f"| `[[boards]]` `driver = \"{driver}\"` | "
                    + ("; ".join(_key_cell(k) for k in own) or "the keys every board has")
                    + " |")
    rows.append("| `[[boards]]`, every driver | "
                + "; ".join(_key_cell(k) if k.name != "driver"
                            else "`driver` (required: " + ", ".join(n for n, _ in board_classes())
                            + ")" for k in keys_of(BoardCommon))
                + " |")
    return "\n".join([README_START, *rows, README_END])


def _key_cell(key: Key) -> str:
    if key.required:
        return f"`{key.name}` (required)"
    value = key.shown_value()  # a default that depends on the machine: its example
    if value in ((), "", {}) or dataclasses.is_dataclass(value):
        return f"`{key.name}`"
    return f"`{key.name}` ({toml_value(value).strip(chr(34))})"


def replace_readme_table(readme: str) -> str:
    """``readme`` with the text between the markers replaced by the current table."""
    start, end = readme.index(README_START), readme.index(README_END) + len(README_END)
    return readme[:start] + readme_table() + readme[end:]


# --- JSON Schema -----------------------------------------------------------------------------

def json_schema() -> dict[str, Any]:
    """A JSON Schema (2020-12) of the TOML document, for editors (Even Better TOML, ...)."""
    properties: dict[str, Any] = {
        name: _table_schema(section.type, SECTION_INTROS.get(name, ""))
        for name, section in sections()}
    properties["terminology"] = {
        "type": "object", "description": SECTION_INTROS["terminology"],
        "additionalProperties": {"type": "string"}}
    properties["boards"] = {
        "type": "array", "description": "capture boards, in channel order",
        "items": {"oneOf": [_table_schema(schema, f"a {driver} board", driver=driver)
                            for driver, schema in board_classes()]}}
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "recorderd configuration (recorder.toml)", "type": "object",
            "additionalProperties": False, "properties": properties}


def _table_schema(cls: type[Any], description: str, *, driver: str | None = None
                  ) -> dict[str, Any]:
    props: dict[str, Any] = {}
    required = []
    for key in keys_of(cls):
        if key.name == "driver" and driver is not None:
            props["driver"] = {"const": driver}
            required.append("driver")
            continue
        props[key.name] = _value_schema(key)
        if key.required:
            required.append(key.name)
    schema: dict[str, Any] = {"type": "object", "additionalProperties": False,
                              "properties": props}
    if description:
        schema["description"] = description
    if required:
        schema["required"] = required
    return schema


def _value_schema(key: Key) -> dict[str, Any]:
    tp = key.type
    schema: dict[str, Any]
    item = _array_item(tp)
    if item is not None:
        schema = {"type": "array", "items": _table_schema(item, "")}
    elif get_origin(tp) is tuple:
        schema = {"type": "array", "items": _scalar_schema(get_args(tp)[0], key)}
    else:
        schema = _scalar_schema(tp, key)
        if key.low is not None:
            schema["minimum"] = key.low
        if key.high is not None:
            schema["maximum"] = key.high
    if key.doc:
        schema["description"] = key.doc
    if not key.required and _json_able(key.default):
        schema["default"] = list(key.default) if isinstance(key.default, tuple) else key.default
    return schema


def _scalar_schema(tp: Any, key: Key) -> dict[str, Any]:
    if tp is bool:
        return {"type": "boolean"}
    if tp is int:
        return {"type": "integer"}
    if tp is float:
        return {"type": "number"}
    if key.choices:
        # The loader takes any case ("MP3" for "mp3").
        return {"type": "string", "pattern": "^(?i:" + "|".join(key.choices) + ")$"}
    if tp in (str, Path):
        return {"type": "string"}
    raise TypeError(f"{key.name}: no JSON Schema for {tp!r}")


def _json_able(value: Any) -> bool:
    if isinstance(value, bool | int | float | str):
        return True
    return isinstance(value, tuple) and all(isinstance(v, str | int | float) for v in value)
