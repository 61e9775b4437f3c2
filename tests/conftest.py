"""The suite's fixtures and hooks. The helpers they use, and the tests share, are in
tests/helpers/."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from recorder.app import Recorder
from recorder.config.loader import config_from_dict
from recorder.config.model import Config
from recorder.config.printing import to_toml
from tests.helpers.engines import ENGINE_PARAMS, EngineDatabase
from tests.helpers.postgres import Database, PostgresServer
from tests.helpers.pulseaudio import PulseServer, shared_pulse, stop_shared_pulse
from tests.helpers.recorders import (
    RecorderProcess,
    Running,
    base_config,
    shared_recorder,
    start_in_process,
    write_toml,
)
from tests.helpers.skips import SkipWatch, forbidden
from tests.helpers.smalldisk import SmallDisk

# Fixtures that start a real process (recorderd, PulseAudio): a test that uses one is marked
# ``process``, as is the ``recorderd`` variant of ``start_recorder``. A test module names its
# own such fixtures in a PROCESS_FIXTURES of its own.
PROCESS_FIXTURES = frozenset({"processes", "pulse", "postgres_server", "postgres_db"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        variant = callspec.params.get("start_recorder") if callspec is not None else None
        # A store test on PostgreSQL starts a server for its worker (about 5 s): not the
        # fast lane's, which runs the same test on SQLite.
        group = item.get_closest_marker("xdist_group")
        on_postgresql = ((group is not None and group.args[:1] == ("postgresql",)) or (
            callspec is not None and "postgresql" in callspec.params.values()))
        starting = PROCESS_FIXTURES | set(getattr(getattr(item, "module", None),
                                                  "PROCESS_FIXTURES", ()))
        if (variant == "recorderd" or on_postgresql
                or starting & set(getattr(item, "fixturenames", ()))):
            item.add_marker(pytest.mark.process)


# --- no silent skips (tests/helpers/skips.py) ---------------------------------------------------
# Only the process that reports the run watches: under pytest-xdist that is the controller, to
# which every worker's reports come; a worker (``workerinput``) leaves it alone. The report
# hooks get no config, hence the module-level watch.
_skip_watch: SkipWatch | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _skip_watch  # noqa: PLW0603 - one watch per pytest run, read by the report hooks
    _skip_watch = SkipWatch() if forbidden() and not hasattr(config, "workerinput") else None


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if _skip_watch is not None:
        _skip_watch.note(report)


def pytest_collectreport(report: pytest.CollectReport) -> None:
    # A module-level importorskip skips at collection, not in a test.
    if _skip_watch is not None:
        _skip_watch.note(report)


def pytest_sessionfinish(session: pytest.Session) -> None:
    if _skip_watch is not None and _skip_watch.unexpected \
            and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _skip_watch is not None and _skip_watch.unexpected:
        terminalreporter.section("unexpected skips", sep="=", red=True, bold=True)
        terminalreporter.line(_skip_watch.message(), red=True)


@pytest.fixture(params=["in-process"])
def start_recorder(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """Start a recorder on free ports, in this process or as a real ``recorderd`` process.

    In this process unless the test asks for ``recorderd`` too (``IN_PROCESS_AND_RECORDERD``
    in tests/helpers/recorders.py) or alone. Every recorder is stopped after the test; a
    process must exit 0 with no traceback logged.
    """
    recorders: list[Recorder] = []
    procs: list[RecorderProcess] = []

    def start(**sections: Any) -> Running:
        if request.param == "in-process":
            running = start_in_process(tmp_path, **sections)
            assert running.recorder is not None
            recorders.append(running.recorder)
            return running
        config: Config = config_from_dict(base_config(tmp_path, **sections), base_dir=tmp_path)
        path = write_toml(tmp_path / f"recorder{len(procs)}.toml", to_toml(config))
        proc = RecorderProcess(["--config", str(path)])
        procs.append(proc)
        running = proc.wait_ready()
        running.data_dir = config.storage.data_dir
        return running

    yield start
    for recorder in reversed(recorders):
        recorder.stop()
    for proc in reversed(procs):
        code = proc.stop()
        assert code == 0, proc.log
        assert "Traceback" not in proc.log, proc.log


@pytest.fixture
def running(start_recorder: Any) -> Running:
    return start_recorder()  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def shared_running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """One in-process recorder (``base_config``) for the tests of a module that leave it as
    they found it (tests/helpers/recorders.py, ``shared_recorder``)."""
    with shared_recorder(tmp_path_factory.mktemp("shared")) as running:
        yield running


@pytest.fixture
def processes() -> Iterator[list[RecorderProcess]]:
    """Collects RecorderProcess objects and makes sure none outlives its test."""
    procs: list[RecorderProcess] = []
    yield procs
    for proc in procs:
        if proc.proc.poll() is None:
            proc.proc.kill()
            proc.proc.wait(10)


@pytest.fixture
def disk_path(record_property: Callable[[str, object], None]) -> Callable[[SmallDisk], None]:
    """Notes how a full-disk test filled its disk (tests/helpers/smalldisk.py): the ``disk``
    user property, and a line on stdout."""
    def note(disk: SmallDisk) -> None:
        record_property("disk", disk.mode)
        print(f"disk full produced by: {disk.mode}")
    return note


# --- PostgreSQL (tests/helpers/postgres.py) -----------------------------------------------------
@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One real PostgreSQL server per test session (per xdist worker); never skipped."""
    server = PostgresServer()
    try:
        server.start()
    except BaseException:
        server.remove()
        raise
    yield server
    server.remove()


@pytest.fixture
def postgres_db(postgres_server: PostgresServer, tmp_path: Path) -> Iterator[Database]:
    """A fresh, empty database on the session's server, dropped after the test."""
    database = postgres_server.new_database(tmp_path)
    yield database
    postgres_server.drop_database(database)


@pytest.fixture(params=ENGINE_PARAMS)
def engine(request: pytest.FixtureRequest) -> str:
    """The store's engine a contract test runs on: each test once on each."""
    return str(request.param)


@pytest.fixture
def engine_db(engine: str, tmp_path: Path, request: pytest.FixtureRequest) -> EngineDatabase:
    """This test's database on ``engine`` (tests/helpers/engines.py)."""
    return EngineDatabase(engine, tmp_path, request)


@pytest.fixture(scope="session", autouse=True)
def pulseaudio_session() -> Iterator[None]:
    """Stops this process's PulseAudio daemon at the end, if any test started it."""
    yield
    stop_shared_pulse()


@pytest.fixture
def pulse(pulseaudio_session: None) -> PulseServer:
    """This process's PulseAudio daemon with its null sink, running (restarted if need be)."""
    return shared_pulse()
