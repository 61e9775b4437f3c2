"""The house rules docs/architecture.md states, checked on the source: which area may import
which, no import cycles, SQL only in the store, modules of a readable size."""

from __future__ import annotations

import pytest

from tests.helpers.imports import Module, cycles, graph

MODULES = graph()
MAX_MODULE_LINES = 500


def _in(name: str, *areas: str) -> bool:
    return any(name == a or name.startswith(a + ".") for a in areas)


def _imports_of(area: str) -> dict[str, set[str]]:
    return {name: m.imports for name, m in MODULES.items() if _in(name, area)}


def _breaking(area: str, allowed: tuple[str, ...] = (), forbidden: tuple[str, ...] = ()
              ) -> list[str]:
    """``module -> import`` for each import of ``area`` outside ``allowed`` (when given) or
    inside ``forbidden``."""
    found = []
    for name, imports in sorted(_imports_of(area).items()):
        for target in sorted(imports):
            if _in(target, area):
                continue
            if (allowed and not _in(target, *allowed)) or _in(target, *forbidden):
                found.append(f"{name} -> {target}")
    return found


def test_the_graph_sees_the_whole_package() -> None:
    # A checker that read nothing would pass everything.
    assert len(MODULES) > 100
    assert "recorder.calls.scheduler" in MODULES["recorder.app"].imports
    assert "recorder.codecs.wav" in MODULES["recorder.codecs.formats"].imports


def test_there_are_no_import_cycles() -> None:
    assert cycles(MODULES) == []


def test_the_checker_finds_a_cycle() -> None:
    made_up = {"a": Module("a", MODULES["recorder.app"].path, {"b"}),
               "b": Module("b", MODULES["recorder.app"].path, {"a"})}
    assert cycles(made_up) == [["a", "b"]]


# Pure data the rules may read: settings, row types, line events, result codes.
RULE_INPUTS = ("recorder.config.setting", "recorder.config.sections", "recorder.config.recording",
               "recorder.config.values", "recorder.store.records",
               "recorder.drivers.lineevents", "recorder.errors", "recorder.resultcodes",
               "recorder.timefmt")


def test_rules_import_nothing_with_threads_or_io() -> None:
    assert _breaking("recorder.rules", allowed=RULE_INPUTS) == []
    threads = {"threading", "socket", "sqlite3", "subprocess", "asyncio", "queue", "concurrent",
               "aiohttp", "serial", "sounddevice", "soundfile", "smtplib", "fcntl"}
    for name, module in MODULES.items():
        # The settings read the environment for defaults (os); a rule touches no file at all.
        io = threads | {"os", "shutil", "tempfile"} if _in(name, "recorder.rules") else threads
        if _in(name, "recorder.rules", *RULE_INPUTS):
            assert not module.external & io, f"{name} imports {module.external & io}"


def test_codecs_import_nothing_of_the_recorder_but_its_errors() -> None:
    assert _breaking("recorder.codecs", allowed=("recorder.errors",)) == []


def test_crypt_imports_only_the_stored_file_opener_durable_files_key_files_and_errors() -> None:
    assert _breaking("recorder.crypt", allowed=(
        "recorder.codecs.stored", "recorder.durable", "recorder.keyfile",
        "recorder.errors")) == []


def test_drivers_import_only_settings_codecs_and_the_worker() -> None:
    assert _breaking("recorder.drivers", allowed=(
        "recorder.config.boards", "recorder.config.setting", "recorder.codecs",
        "recorder.errors", "recorder.safexml", "recorder.tls", "recorder.worker")) == []


def test_capture_knows_drivers_not_calls_or_files() -> None:
    assert _breaking("recorder.capture", allowed=(
        "recorder.drivers", "recorder.worker", "recorder.errors")) == []


def test_the_store_imports_no_api_and_nothing_above_it() -> None:
    assert _breaking("recorder.store", allowed=(
        "recorder.config", "recorder.durable", "recorder.errors", "recorder.keyfile",
        "recorder.worker")) == []


def test_recording_works_from_plain_values_not_the_call_table() -> None:
    assert _breaking("recorder.recording", forbidden=(
        "recorder.calls", "recorder.api", "recorder.app", "recorder.service",
        "recorder.telemetry", "recorder.archive")) == []


def test_events_stand_alone() -> None:
    assert _breaking("recorder.events", allowed=(
        "recorder.store.records", "recorder.timefmt", "recorder.errors")) == []


def test_only_the_top_imports_the_api() -> None:
    top = ("recorder.api", "recorder.app", "recorder.telemetry", "recorder.service",
           "recorder.ctl")
    found = [f"{name} -> {target}" for name, m in sorted(MODULES.items())
             if not _in(name, *top) for target in sorted(m.imports)
             if _in(target, "recorder.api")]
    assert found == []


def test_the_api_protocol_has_no_transport_or_handlers() -> None:
    assert _breaking("recorder.api.protocol", forbidden=(
        "recorder.api.transport", "recorder.api.handlers", "recorder.api.dispatcher")) == []


def test_sql_lives_only_in_the_store() -> None:
    assert sorted(name for name, m in MODULES.items()
                  if "sqlite3" in m.external and not _in(name, "recorder.store")) == []


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_is_too_long_to_read(name: str) -> None:
    assert MODULES[name].lines <= MAX_MODULE_LINES, (
        f"{MODULES[name].path} has {MODULES[name].lines} lines; split it by what it owns")


def test_every_folder_says_what_it_owns() -> None:
    packages = [m for m in MODULES.values() if m.path.name == "__init__.py"]
    assert len(packages) >= 15
    for package in packages:
        text = package.path.read_text(encoding="utf-8")
        assert text.startswith('"""'), f"{package.path} has no docstring"
