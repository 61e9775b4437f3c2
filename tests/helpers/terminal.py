"""A command run with one of its output streams on a pseudo-terminal, as a person sees it."""

from __future__ import annotations

import os
import pty
import subprocess
from typing import Any


def on_terminal(command: list[str], stream: str, env: dict[str, str] | None = None,
                ) -> tuple[subprocess.CompletedProcess[str], str]:
    """Run ``command`` with its ``stream`` ("stdout" or "stderr") on a pseudo-terminal, the
    other captured; what the terminal received, decoded."""
    leader, follower = pty.openpty()
    terminal: dict[str, Any] = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    terminal[stream] = follower
    try:
        proc = subprocess.run(command, env=env, timeout=60, check=False, text=True, **terminal)
        os.close(follower)
        output = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the other end is closed and drained
                break
            if not chunk:
                break
            output += chunk
    finally:
        os.close(leader)
    return proc, output.decode()
