"""The docs name what the code has: config keys, result codes and metric names in README.md and
docs/*.md are checked against the typed configuration, the API's result-code table and what
/metrics serves from a real in-process recorder, both ways where that makes sense, so that
neither can drift from the other again. A misspelt key (`api.socket_prt`), a code paired with
the wrong number, or a metric renamed on one side only fails here."""

from __future__ import annotations

import re
import typing
from collections.abc import Iterator
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any

import pytest

from recorder.config.boards import BoardCommon
from recorder.config.model import DEFAULT_TERMINOLOGY, Config
from recorder.drivers.registry import DRIVERS, board_schema
from recorder.resultcodes import ResultCode
from tests.helpers.recorders import Running

REPO = Path(__file__).resolve().parent.parent
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SECTIONS = ("core", "storage", "capture", "api", "smtp", "log", "recording", "retention",
            "portal")


def text_of(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def backticked(text: str) -> Iterator[str]:
    yield from re.findall(r"`([^`\n]+)`", text)


# --- the configuration's keys, from the typed schema ----------------------------------------

def table_keys(cls: type[Any], prefix: str) -> dict[str, tuple[str, ...]]:
    """Every key of the dataclass ``cls`` as a dotted path, with its choices (if any);
    arrays of tables (``recording.schedules``) are walked into."""
    keys: dict[str, tuple[str, ...]] = {}
    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        path = f"{prefix}.{f.name}" if prefix else f.name
        keys[path] = tuple(f.metadata.get("choices") or ())
        tp = hints[f.name]
        if typing.get_origin(tp) is tuple:
            tp = typing.get_args(tp)[0]
        if is_dataclass(tp) and tp is not BoardCommon:
            keys.update(table_keys(typing.cast(type[Any], tp), path))
    return keys


def config_keys() -> dict[str, tuple[str, ...]]:
    keys = table_keys(Config, "")
    for driver in DRIVERS:
        schema = board_schema(driver)
        assert schema is not None
        keys.update(table_keys(schema, "boards"))
    return keys


CONFIG = config_keys()
LEAVES = {key for key in CONFIG if "." in key}


# --- README's configuration table -----------------------------------------------------------

def readme_rows() -> dict[str, list[str]]:
    """The configuration table of README.md: the section cell (``[api]``, ``[[boards]]``,
    ``[api] exports``) to the names it gives outside parentheses (the keys; what a key's
    parentheses hold is its default, its values or where to read more)."""
    readme = text_of(REPO / "README.md")
    table = readme.split("| section | keys |", 1)[1].split("\n\n", 1)[0]
    rows: dict[str, list[str]] = {}
    for line in table.splitlines()[2:]:
        if not line.startswith("|"):
            break  # the generated table's end marker
        cells = line.strip().strip("|").split("|", 1)
        section, keys = cells[0].strip(), cells[1]
        names, depth, i = [], 0, 0
        while i < len(keys):
            char = keys[i]
            if char == "(":
                depth += 1
            elif char == ")":
                depth -= 1
            elif char == "`":
                end = keys.index("`", i + 1)
                if depth == 0:  # `driver = "file"` names driver
                    names.append(keys[i + 1:end].split("=")[0].strip())
                i = end
            i += 1
        rows[section] = names
    return rows


ROWS = readme_rows()
NAME = re.compile(r"[a-z][a-z0-9_]*")


def row_section(cell: str) -> str:
    found = re.match(r"`\[\[?([a-z]+)\]\]?`", cell)
    assert found is not None, cell
    return found.group(1)


def keys_under(section: str) -> set[str]:
    return {key for key in CONFIG if key.startswith(section + ".")}


def test_every_name_the_readme_table_gives_is_a_key_or_a_value_of_its_section() -> None:
    assert {row_section(cell) for cell in ROWS} == {*SECTIONS, "boards", "terminology"}
    wrong = []
    for cell, names in ROWS.items():
        section = row_section(cell)
        under = keys_under(section)
        known = {key.rsplit(".", 1)[1] for key in under}
        values = {v for key in under for v in CONFIG[key]}
        if section == "boards":
            values |= set(DRIVERS)
        if section == "terminology":
            # A free-form table: its row shows the form (`name = "label"`) and defaults.
            known |= {"name", *DEFAULT_TERMINOLOGY}
        for name in names:
            if NAME.fullmatch(name) and name not in known | values:
                wrong.append(f"README [{section}]: `{name}` is no key of {section}")
    assert not wrong, wrong


def tables_key_lists(array: str) -> set[str]:
    """The names backticked in the table rows of the docs that describe ``[[array]]``
    (docs/scheduling.md for ``recording.schedules``): the keys of its tables."""
    names: set[str] = set()
    for doc in DOCS:
        text = text_of(doc)
        if f"`[[{array}]]`" in text:
            for line in text.splitlines():
                if line.startswith("| `"):
                    names.update(backticked(line.split("|")[1]))
    return names


def test_every_key_of_the_code_is_in_the_readme_table_or_named_in_full_in_the_docs() -> None:
    named = {b.strip("[]") for doc in DOCS for b in backticked(text_of(doc))}
    missing = []
    for key in sorted(LEAVES):
        section, *rest = key.split(".")
        in_row = [names for cell, names in ROWS.items() if row_section(cell) == section]
        leaf = rest[-1]
        if key in named or any(leaf in names for names in in_row):
            continue
        if len(rest) == 2 and leaf in tables_key_lists(key.rsplit(".", 1)[0]):
            continue  # a key of an array of tables, in the table its doc gives
        missing.append(key)
    assert not missing, f"config keys no doc names: {missing}"


FILE = re.compile(r"\.(md|py)$")
DOTTED = re.compile("(" + "|".join(SECTIONS) + r")\.[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*")


def test_every_dotted_key_a_doc_names_exists() -> None:
    wrong = []
    for doc in DOCS:
        for name in backticked(text_of(doc)):
            # `retention.min_free_mb`, `recording.schedules[2].start` (an error message's form)
            bare = re.sub(r"\[\d+\]", "", name.split(" ")[0].split("=")[0].strip())
            if FILE.search(bare):
                continue  # `capture.md`, `api.py`: files, not keys
            if DOTTED.fullmatch(bare) and bare not in CONFIG:
                wrong.append(f"{doc.name}: `{name}`")
    assert not wrong, f"keys the docs name that the configuration does not have: {wrong}"


def test_a_misspelt_key_would_be_caught() -> None:
    # The check itself: a key the code lacks fails it, in both of the docs' forms.
    assert DOTTED.fullmatch("api.socket_prt")
    assert "api.socket_prt" not in CONFIG
    assert "socket_prt" not in {key.rsplit(".", 1)[1] for key in keys_under("api")}
    assert "api.socket_port" in CONFIG


# --- result codes ------------------------------------------------------------------------------

CODE_AND_LABEL = re.compile(r"\b(\d{1,2}) (API_[A-Z_]+)\b")
LABEL = re.compile(r"\bAPI_[A-Z_]*[A-Z]\b")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_result_codes_the_docs_name_are_the_codes_of_the_table(doc: Path) -> None:
    text = text_of(doc)
    wrong = [f"{number} {label}" for number, label in CODE_AND_LABEL.findall(text)
             if label not in ResultCode.__members__
             or ResultCode[label].value != int(number)]
    wrong += [label for label in LABEL.findall(text) if label not in ResultCode.__members__]
    assert not wrong, f"{doc.name}: {wrong}"


# --- metrics -----------------------------------------------------------------------------------

def documented_metrics() -> dict[str, str]:
    """docs/metrics.md's table: metric name to its type."""
    text = text_of(REPO / "docs" / "metrics.md")
    return {name: kind for name, kind in re.findall(
        r"^\| `([a-z_]+)` \| (counter|gauge|histogram) \|", text, re.MULTILINE)}


def served_metrics(running: Running) -> dict[str, str]:
    status, body = running.web("", path="/metrics")
    assert status == 200
    return dict(re.findall(r"^# TYPE (\S+) (\S+)$", body.decode(), re.MULTILINE))


def test_the_metrics_table_is_what_metrics_serves(running: Running) -> None:
    assert running.request("TEST", 1).findtext("RESULTCODE") == "20"  # a request, timed
    documented, served = documented_metrics(), served_metrics(running)
    assert len(documented) > 20
    assert documented == served


def test_every_metric_a_doc_names_is_served(running: Running) -> None:
    served = set(served_metrics(running))
    suffixes = ("_bucket", "_count", "_sum")
    wrong = []
    for doc in DOCS:
        for name in re.findall(r"\b((?:recorder|process)_[a-z_]+)", text_of(doc)):
            family = next((name[: -len(s)] for s in suffixes
                           if name.endswith(s) and name[: -len(s)] in served), name)
            # A module's path spelt with underscores (a mutation session's file name) is not
            # a metric.
            path = REPO / name.replace("_", "/")
            # Nor is a database table the text calls one ("the table `recorder_schema`").
            table = f"table `{name}`" in text_of(doc)
            if (family not in served and not table and not path.exists()
                    and not path.with_suffix(".py").exists()):
                wrong.append(f"{doc.name}: {name}")
    assert not wrong, f"metrics the docs name that /metrics does not serve: {wrong}"
