"""scripts/install-and-run installs only when the checkout's packaging changed: a restart is
instant and works offline (its pip is faked here, as the test is about when it runs)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.process  # runs the script four times: not for the fast lane

REPO = Path(__file__).resolve().parents[1]
FAKE_PYTHON = """#!/bin/sh
[ "$1" = "-V" ] && { echo "Python 3.11.2"; exit 0; }
echo "$*" >>"$(dirname "$0")/../calls.log"
"""
FAKE_RECORDERD = """#!/bin/sh
echo "recorderd ran with: $*"
"""


def _checkout(tmp_path: Path) -> Path:
    root = tmp_path / "checkout"
    (root / "scripts").mkdir(parents=True)
    for name in ("install-and-run", "lib.sh"):
        shutil.copy2(REPO / "scripts" / name, root / "scripts" / name)
    shutil.copy2(REPO / "pyproject.toml", root / "pyproject.toml")
    bin_dir = root / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    for name, text in (("python", FAKE_PYTHON), ("recorderd", FAKE_RECORDERD)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return root


def _run(root: Path) -> tuple[str, list[str]]:
    done = subprocess.run([str(root / "scripts" / "install-and-run"), "--check-config"],
                          capture_output=True, text=True, timeout=60, check=True)
    log = root / ".venv" / "calls.log"
    calls = log.read_text().splitlines() if log.exists() else []
    log.unlink(missing_ok=True)
    return done.stdout, calls


def test_pip_runs_on_the_first_start_and_when_pyproject_changes_only(tmp_path: Path) -> None:
    root = _checkout(tmp_path)
    out, calls = _run(root)
    assert out == "recorderd ran with: --check-config\n"
    assert "-m pip install --quiet -e ." in calls
    out, calls = _run(root)
    assert out == "recorderd ran with: --check-config\n"
    assert calls == []  # nothing changed: no pip, no network
    with (root / "pyproject.toml").open("a") as file:
        file.write("\n# a new dependency, say\n")
    _out, calls = _run(root)
    assert "-m pip install --quiet -e ." in calls
    _out, calls = _run(root)
    assert calls == []
