"""The suite relies on ``--dist loadgroup`` keeping each ``xdist_group`` on one worker (one
PostgreSQL server, one SMTP port, ...). pytest 9.2 silently stopped that (pytest-xdist#1386):
this runs a small suite the way scripts/test runs the real one and checks where it ran."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

GROUPED = '''
import os
import pytest

@pytest.mark.xdist_group("one")
@pytest.mark.parametrize("i", range(8))
def test_grouped(i):
    worker = os.environ.get("PYTEST_XDIST_WORKER", "none")
    with open(os.path.join(os.environ["RAN_DIR"], f"ran-{i}"), "w") as ran:
        ran.write(worker)
'''


def test_an_xdist_group_runs_on_one_worker(tmp_path: Path) -> None:
    (tmp_path / "test_grouped.py").write_text(GROUPED)
    ran = tmp_path / "ran"
    ran.mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2",
         "--dist", "loadgroup", "test_grouped.py"],
        check=False, cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={**os.environ, "RAN_DIR": str(ran)})
    assert done.returncode == 0, done.stdout + done.stderr
    workers = {path.read_text() for path in ran.glob("ran-*")}
    assert len(list(ran.glob("ran-*"))) == 8, done.stdout
    assert len(workers) == 1, f"one group ran on {sorted(workers)}"
