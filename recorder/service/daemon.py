"""``recorderd``: the recording service, in the foreground.

SIGTERM or Ctrl-C stops it after finishing every recording; SIGHUP reloads the master keys
(storage.key_file: a key rotation), the schedules, filters, limits and terminology; SIGUSR1 logs
every thread's stack. Under systemd it notifies
readiness, status and watchdog pings (recorder/service/lifecycle.py).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType

from recorder import __version__
from recorder.app import Recorder
from recorder.calllog import set_call_log, set_request_log
from recorder.config.loader import load_config
from recorder.config.model import Config, resolve_config_path
from recorder.config.printing import to_toml
from recorder.config.reference import json_schema
from recorder.config.reload import needs_restart
from recorder.errors import (
    ConfigError,
    DriverError,
    RecorderError,
    StartupError,
    StoreConfigError,
)
from recorder.service.allocator import return_large_blocks
from recorder.service.checkconfig import (
    check_config,
    key_problem,
    print_problems,
    seal_problem,
)
from recorder.service.datalock import DataDirBusy, DataDirLock
from recorder.service.lifecycle import ServiceLoop, log_thread_stacks
from recorder.service.logsetup import configure_logging
from recorder.service.sdnotify import Notifier

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 78  # EX_CONFIG; the systemd unit does not restart on it
BIND_RETRY_INTERVAL = 1.0  # seconds between two starts while a port is held by another program


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recorderd", description="Call-recording service: capture, record, serve the API.",
        epilog="Without --config: $RECORDER_CONFIG, else /etc/recorder/recorder.toml if it "
               "exists, else the embedded defaults (demo board, SQLite, API on 127.0.0.1).",
    )
    parser.add_argument("--config", metavar="FILE", help="TOML configuration file")
    parser.add_argument("--check-config", action="store_true",
                        help="validate the configuration, print a summary and exit")
    parser.add_argument("--print-config", action="store_true",
                        help="print the effective configuration as TOML and exit")
    parser.add_argument("--config-schema", action="store_true",
                        help="print a JSON Schema of the configuration file (for editors) and "
                        "exit")
    parser.add_argument("--log-level", choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                        type=str.upper, help="overrides [log] level")
    parser.add_argument("--version", action="version", version=f"recorderd {__version__}")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.config_schema:
        print(json.dumps(json_schema(), indent=1))
        return EXIT_OK
    source = resolve_config_path(args.config)
    try:
        config = load_config(source)
    except ConfigError as exc:
        print_problems("recorderd", source, list(exc.problems))
        return EXIT_CONFIG
    if args.check_config:
        problems, text = check_config(source)
        if problems:
            print_problems("recorderd", source, problems)
            return EXIT_CONFIG
        print(text)
        return EXIT_OK
    if args.print_config:
        print(to_toml(config, mask_secrets=True), end="")
        return EXIT_OK

    # Under systemd: the journal, each line at its priority; else stderr with timestamps.
    destination = configure_logging(args.log_level or config.log.level)
    set_call_log(config.log.calls)
    set_request_log(config.log.requests)
    logger.info("recorderd %s starting with %s (logging to %s)", __version__,
                source or "embedded defaults", destination)
    # Before any thread starts: what a flood of password hashes allocates is given back.
    return_large_blocks()
    return _serve(config, source)


def _serve(config: Config, source: Path | None) -> int:
    notifier = Notifier()
    # Signals may come while the start is still retrying a busy port, before the service loop
    # exists: they are kept here and handed to the loop when it does.
    stop_requested = threading.Event()
    hangup_requested = threading.Event()
    loop: ServiceLoop | None = None

    def on_stop(signum: int, frame: FrameType | None) -> None:
        logger.info("%s received: stopping", signal.Signals(signum).name)
        stop_requested.set()
        if loop is not None:
            loop.request_stop()

    def on_hangup(signum: int, frame: FrameType | None) -> None:
        hangup_requested.set()
        if loop is not None:
            loop.request_reload()

    def on_usr1(signum: int, frame: FrameType | None) -> None:
        # Here, not in the main loop: the point is to see where things hang, the main loop
        # included. The handler runs on the main thread, between its bytecodes.
        log_thread_stacks()

    signal.signal(signal.SIGTERM, on_stop)
    key = key_problem(config) or seal_problem(config)
    if key is not None:
        # A key that cannot be read would leave every call unrecorded: the configuration's.
        logger.error("cannot start: %s", key)
        return EXIT_CONFIG

    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGHUP, on_hangup)
    signal.signal(signal.SIGUSR1, on_usr1)

    lock = DataDirLock(config.storage.data_dir)
    try:
        config.storage.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        # Where the data must go is part of the configuration: restarting cannot create it.
        logger.error("cannot start: storage.data_dir: cannot create %s: %s",
                     config.storage.data_dir, exc.strerror or exc)
        return EXIT_CONFIG
    try:
        lock.acquire()
    except DataDirBusy as exc:
        logger.error("cannot start: %s", exc)
        return EXIT_FAILED
    except OSError as exc:
        logger.error("cannot start: storage.data_dir: %s: %s", config.storage.data_dir,
                     exc.strerror or exc)
        return EXIT_FAILED
    try:
        started = _start(config, notifier, stop_requested)
        if isinstance(started, int):
            return started
        recorder = started
        loop = ServiceLoop(recorder, notifier, lambda: _reload(recorder, source))
        if stop_requested.is_set():
            loop.request_stop()
        if hangup_requested.is_set():
            loop.request_reload()
        down = _wait_for_boards(recorder, notifier, loop, config.capture.board_start_seconds)
        if loop.stopping:  # SIGTERM during start-up: do not claim to be ready
            loop.shutdown()
        else:
            for problem in down:
                logger.warning("not capturing after %g s: %s",
                               config.capture.board_start_seconds, problem)
            logger.info("recorderd ready")
            loop.started()
            loop.run()
        logger.info("recorderd stopped")
        return EXIT_OK
    finally:
        lock.release()


def _start(config: Config, notifier: Notifier, stop_requested: threading.Event,
           ) -> Recorder | int:
    """A started Recorder, or the exit status when it cannot start.

    A port held by another program is retried for ``core.bind_retry_seconds``: it is often a
    moment's overlap (the old recorderd of a restart still draining, a tool left running), and
    exiting at once would leave the site unrecorded until systemd's restart, or for good
    after its start limit. Each attempt is a whole start, so a failed one has stopped every
    stage it started and the next begins clean.
    """
    retry_seconds = config.core.bind_retry_seconds
    deadline = time.monotonic() + retry_seconds
    attempts = 0
    while True:
        attempts += 1
        recorder = Recorder(config)
        try:
            recorder.start()
            if attempts > 1:
                logger.info("started on attempt %d: the port is free now", attempts)
            return recorder
        except DriverError as exc:
            # A board that cannot open is a configuration problem; restarting will not fix it.
            # Every board's problem, one a line (as --check-config lists them).
            for problem in str(exc).splitlines():
                logger.error("cannot start: %s", problem)
            return EXIT_CONFIG
        except StartupError as exc:
            if not exc.port_busy or time.monotonic() >= deadline or stop_requested.is_set():
                if exc.port_busy and retry_seconds > 0:
                    logger.error("cannot start: %s (still, after %d attempts in %g s)", exc,
                                 attempts, retry_seconds)
                else:
                    logger.error("cannot start: %s", exc)
                return EXIT_FAILED
            if attempts == 1:
                logger.warning("cannot start yet: %s; retrying for up to %g s "
                               "(core.bind_retry_seconds)", exc, retry_seconds)
                notifier.status(f"starting: waiting for a busy port: {exc}")
        except StoreConfigError as exc:
            # The data directory wants a seal key the configuration does not give: only a
            # change of the configuration helps, so not a restart loop.
            logger.error("cannot start: %s", exc)
            return EXIT_CONFIG
        except RecorderError as exc:
            logger.error("cannot start: %s", exc)
            return EXIT_FAILED
        except Exception:
            logger.exception("cannot start")
            return EXIT_FAILED
        # SIGTERM ends the wait at once: stopping a service that is not up yet must not hang.
        if stop_requested.wait(min(BIND_RETRY_INTERVAL, max(0.0, deadline - time.monotonic()))):
            logger.info("stopped while waiting for a busy port")
            return EXIT_OK


def _wait_for_boards(recorder: Recorder, notifier: Notifier, loop: ServiceLoop,
                     timeout: float) -> list[str]:
    """READY means recording works, so wait (bounded) for the boards to capture too; a board
    that does not is reported, not fatal: the others must record meanwhile. Returns the
    boards still not capturing."""
    deadline = time.monotonic() + timeout
    down = recorder.wait_boards_running(0)
    if down:
        notifier.status("starting: waiting for " + "; ".join(down))
    while down and not loop.stopping and time.monotonic() < deadline:
        down = recorder.wait_boards_running(min(0.2, deadline - time.monotonic()))
    return down


def _reload(recorder: Recorder, source: Path | None) -> str | None:
    """SIGHUP: the master keys from storage.key_file (a key rotation), and schedules,
    filters, limits and terminology from the config file again; a bad file changes nothing
    and says why (the returned problem, also logged)."""
    keys_problem = recorder.reload_keys()
    try:
        config = load_config(source)
    except ConfigError as exc:
        problems = "; ".join(exc.problems)
        logger.error("SIGHUP: %s not reloaded, it is invalid: %s", source, problems)
        return "; ".join(p for p in (keys_problem, problems) if p)
    recorder.reload(config)
    set_call_log(config.log.calls)
    set_request_log(config.log.requests)
    logger.info("SIGHUP: reloaded schedules, filters, limits and terminology from %s",
                source or "embedded defaults")
    # recorder.config is what it started with: the running value of every key not reloaded.
    kept = needs_restart(recorder.config, config)
    if kept:
        logger.warning("SIGHUP: changed, but only a restart applies them (the running values "
                       "stay): %s", ", ".join(kept))
    return keys_problem


if __name__ == "__main__":
    sys.exit(main())
