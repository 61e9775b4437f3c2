"""The recorder's exception hierarchy: low-level errors are wrapped with context at the boundary."""

from __future__ import annotations

from recorder.resultcodes import ResultCode


class RecorderError(Exception):
    """Base of every error the recorder raises on purpose."""


class ResultError(RecorderError):
    """A request the recorder refuses; ``code`` is the manual's result for it."""

    def __init__(self, code: ResultCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ConfigError(RecorderError):
    """The configuration is invalid; carries every problem found, each naming its key."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class DriverError(RecorderError):
    """A capture driver could not open or keep running its device."""


class CodecError(RecorderError):
    """An encoder or decoder could not produce or read a file."""


class StoreError(RecorderError):
    """The recording store could not be read or written."""


class StoreConfigError(StoreError):
    """The store cannot be used with this configuration: its evidence is sealed with a seal key
    the configuration does not name (or names another). Restarting cannot change that, so
    recorderd exits 78 (EX_CONFIG) and systemd does not start it again every 2 s."""


class StartupError(RecorderError):
    """A component could not start (a port in use, a data directory that cannot be created).

    ``port_busy``: the reason is a port another program holds (EADDRINUSE). That may pass (an
    old recorderd still stopping, a program started by mistake), so recorderd retries its start
    for ``core.bind_retry_seconds`` instead of failing at once; any other failure is final.
    """

    def __init__(self, message: str, *, port_busy: bool = False) -> None:
        super().__init__(message)
        self.port_busy = port_busy
