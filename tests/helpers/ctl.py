"""``recorderctl`` run as a real process, the way a field engineer runs it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.helpers.recorders import BIN, Running

RECORDERCTL = BIN / "recorderctl"
# Where the machine's own set-up could reach recorderctl: the tests always say which service
# and which password they mean.
UNSET = ("RECORDER_CONFIG", "RECORDER_CAV_PASSWORD", "RECORDER_API_TOKEN")


def ctl_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without ``UNSET``, with ``env`` on top."""
    clean = {k: v for k, v in os.environ.items() if k not in UNSET}
    return {**clean, **(env or {})}


def recorderctl(*args: Running | str | Path, env: dict[str, str] | None = None,
                stdin: str | None = None, cwd: Path | None = None, timeout: float = 60.0,
                ) -> subprocess.CompletedProcess[str]:
    """``recorderctl ARGS``, its output captured. ARGS may start with a ``Running``: the
    command is then pointed at that recorder (``--host``, ``--port``, ``--web-port``).
    ``stdin`` is what it reads (nothing if None); ``env`` is added to its environment
    (``ctl_env``)."""
    argv = [str(RECORDERCTL)]
    for arg in args:
        if isinstance(arg, Running):
            argv += ["--host", "127.0.0.1", "--port", str(arg.socket_port),
                     "--web-port", str(arg.web_port)]
        else:
            argv.append(str(arg))
    return subprocess.run(
        argv, capture_output=True, text=True, input=stdin,
        stdin=subprocess.DEVNULL if stdin is None else None, env=ctl_env(env), cwd=cwd,
        timeout=timeout, check=False)
