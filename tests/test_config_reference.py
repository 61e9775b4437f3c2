"""The example file, the README's key table and the JSON Schema are generated from the config
schema and checked in: these fail when a key changed and `scripts/config-reference` was not
run, and check that the schema says what the loader does."""

from __future__ import annotations

import json
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from recorder.config.loader import config_from_dict, load_config
from recorder.config.reference import example_toml, json_schema, readme_table
from recorder.errors import ConfigError
from tests.helpers.recorders import BIN

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "recorder.toml"
REGENERATE = "run scripts/config-reference and commit what it writes"


def test_the_example_file_is_the_generated_one() -> None:
    assert EXAMPLE.read_text() == example_toml(), REGENERATE


def test_the_readme_table_is_the_generated_one() -> None:
    assert readme_table() in (REPO / "README.md").read_text(), REGENERATE


def test_the_schema_file_is_the_generated_one() -> None:
    published = json.loads((REPO / "examples" / "recorder.schema.json").read_text())
    assert published == json_schema(), REGENERATE
    jsonschema.Draft202012Validator.check_schema(published)


@pytest.mark.process  # the installed recorderd, as a process
def test_recorderd_prints_the_published_schema() -> None:
    published = json.loads((REPO / "examples" / "recorder.schema.json").read_text())
    printed = subprocess.run([str(BIN / "recorderd"), "--config-schema"], capture_output=True,
                             text=True, timeout=60, check=True)
    assert json.loads(printed.stdout) == published


def test_the_example_loads_and_names_every_key_of_every_table() -> None:
    config = load_config(EXAMPLE)
    assert [b.driver for b in config.boards] == ["synthetic"]
    text = EXAMPLE.read_text()
    for table, keys in _every_key(json_schema()):
        for key in keys:
            assert f"{key} = " in text, f"{table}: {key} missing from the example"


def _every_key(schema: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """(table, its keys) of every table, arrays of tables and boards included."""
    found = []
    for name, table in schema["properties"].items():
        if name == "boards":
            for board in table["items"]["oneOf"]:
                found.append((board["properties"]["driver"]["const"], list(board["properties"])))
            continue
        keys = []
        for key, value in table.get("properties", {}).items():
            if value.get("type") == "array" and "properties" in value["items"]:
                found.append((f"[[{name}.{key}]]", list(value["items"]["properties"])))
            else:
                keys.append(key)
        found.append((name, keys))
    return found


def test_the_schema_accepts_the_example() -> None:
    document = tomllib.loads(EXAMPLE.read_text())
    jsonschema.validate(document, json_schema())


@pytest.mark.parametrize("document", [
    {"api": {"socket_prt": 5620}},  # unknown key
    {"api": {"web_port": "2012"}},  # wrong type
    {"api": {"web_port": 70000}},  # out of range
    {"storage": {"format": "ogg"}},  # not a choice
    {"boards": [{"driver": "tape", "devices": ["1"]}]},  # no such driver
    {"boards": [{"driver": "synthetic", "devices": ["1"], "files": ["a.wav"]}]},  # file's key
    {"boards": [{"driver": "file", "devices": ["1"]}]},  # files is required
    {"recording": {"schedules": [{"record": True}]}},  # a schedule needs a name
    {"terminology": {"agent": 5}},
])
def test_what_the_schema_refuses_the_loader_refuses_too(document: dict[str, Any],
                                                        tmp_path: Path) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, json_schema())
    with pytest.raises(ConfigError):
        config_from_dict(document, base_dir=tmp_path)


def test_a_choice_in_any_case_is_accepted_by_both(tmp_path: Path) -> None:
    document = {"storage": {"format": "MP3"}, "log": {"level": "debug"}}
    jsonschema.validate(document, json_schema())
    assert config_from_dict(document, base_dir=tmp_path).storage.format == "mp3"
