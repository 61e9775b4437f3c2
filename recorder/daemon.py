"""``recorderd``: the recording service. Runs in the foreground; SIGTERM or Ctrl-C stops it."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from recorder import __version__
from recorder.app import Recorder
from recorder.config import Config, load_config, resolve_config_path, to_toml
from recorder.drivers import create_driver
from recorder.errors import ConfigError, DriverError, RecorderError

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 78  # EX_CONFIG; the systemd unit does not restart on it


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
    parser.add_argument("--log-level", choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                        type=str.upper, help="overrides [log] level")
    parser.add_argument("--version", action="version", version=f"recorderd {__version__}")
    return parser


def _summary(config: Config, source: Path | None) -> str:
    channels = sum(len(board.devices) for board in config.boards)
    api = config.api
    lines = [
        f"configuration OK ({source or 'embedded defaults'})",
        f"  data_dir:   {config.storage.data_dir}",
        f"  socket API: {api.host}:{api.socket_port}",
        f"  WebAPI:     {api.host}:{api.web_port}"
        + (f", HTTPS {api.host}:{api.tls_port}" if api.tls_cert else ""),
        f"  recording:  {_policy_summary(config, channels)}",
        f"  retention:  {_retention_summary(config)}",
        f"  e-mail:     {_smtp_summary(config)}",
        f"  boards:     {len(config.boards)} with {channels} channel(s)",
    ]
    lines += [f"    boards[{i}]: {b.driver}, devices {', '.join(b.devices)}"
              for i, b in enumerate(config.boards)]
    if not config.boards:
        lines.append("  warning: no boards, so nothing can be recorded")
    return "\n".join(lines)


def _policy_summary(config: Config, channels: int) -> str:
    rec = config.recording
    schedules = (f"{len(rec.schedules)} schedule(s), first match decides" if rec.schedules
                 else "every call (no schedules)")
    limit = rec.max_concurrent or channels
    return (f"{schedules}; {len(rec.blocked)} blocked filter(s); at most {limit} at once")


def _retention_summary(config: Config) -> str:
    ret = config.retention
    keep = f"{ret.default_keep_days} day(s)" if ret.default_keep_days else "forever"
    floor = (f"new recordings need {ret.min_free_mb} MB free" if ret.min_free_mb
             else "no free-space floor")
    return (f"kept {keep} by default, {len(ret.archive_actions)} archive action(s), purge "
            f"daily at {ret.purge_time}; {floor}")


def _smtp_summary(config: Config) -> str:
    smtp = config.smtp
    if not smtp.configured:
        return "not configured (EMAIL answers 31)"
    return f"{smtp.host}:{smtp.effective_port} ({smtp.security})"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    source = resolve_config_path(args.config)
    try:
        config = load_config(source)
    except ConfigError as exc:
        print(f"recorderd: invalid configuration ({source}):", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_CONFIG
    if args.check_config:
        # Open every board's device or files too, without starting capture: a board that
        # cannot open would stop recorderd from starting.
        problems = []
        for i, board in enumerate(config.boards):
            try:
                create_driver(f"boards[{i}]", board)
            except DriverError as exc:
                problems.append(str(exc))
        if problems:
            print(f"recorderd: invalid configuration ({source}):", file=sys.stderr)
            for problem in problems:
                print(f"  {problem}", file=sys.stderr)
            return EXIT_CONFIG
        print(_summary(config, source))
        return EXIT_OK
    if args.print_config:
        print(to_toml(config, mask_secrets=True), end="")
        return EXIT_OK

    logging.basicConfig(
        level=args.log_level or config.log.level, stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logger.info("recorderd %s starting with %s", __version__, source or "embedded defaults")
    stop = threading.Event()
    hangup = threading.Event()
    wake = threading.Event()  # either of the two, so the main loop answers at once

    def on_signal(signum: int, frame: FrameType | None) -> None:
        logger.info("%s received: stopping", signal.Signals(signum).name)
        stop.set()
        wake.set()

    def on_hangup(signum: int, frame: FrameType | None) -> None:
        # Not here: a signal handler must not read files or take the scheduler's lock.
        hangup.set()
        wake.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_hangup)

    recorder = Recorder(config)
    try:
        recorder.start()
    except DriverError as exc:
        # A board that cannot open is a configuration problem; restarting will not fix it.
        logger.error("cannot start: %s", exc)
        return EXIT_CONFIG
    except RecorderError as exc:
        logger.error("cannot start: %s", exc)
        return EXIT_FAILED
    except Exception:
        logger.exception("cannot start")
        return EXIT_FAILED
    logger.info("recorderd ready")
    try:
        while not stop.is_set():
            wake.wait(1.0)
            wake.clear()
            if hangup.is_set() and not stop.is_set():
                hangup.clear()
                _reload(recorder, source)
    finally:
        recorder.stop()
        logger.info("recorderd stopped")
    return EXIT_OK


def _reload(recorder: Recorder, source: Path | None) -> None:
    """SIGHUP: schedules, filters and limits from the config file again; a bad file changes
    nothing and says why."""
    try:
        config = load_config(source)
    except ConfigError as exc:
        logger.error("SIGHUP: %s not reloaded, it is invalid: %s", source,
                     "; ".join(exc.problems))
        return
    recorder.reload(config)
    logger.info("SIGHUP: reloaded the recording policy from %s", source or "embedded defaults")


if __name__ == "__main__":
    sys.exit(main())
