"""``recorderctl purge``, run as a real process the way a field engineer runs it: a dry run,
the real one, JSON output and failures, a bad configuration, and the progress bar on a
terminal."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from recorder.store.sqlite import SqliteStore
from tests.helpers.ctl import RECORDERCTL, recorderctl
from tests.helpers.retention import DAY, add, recording_path, write
from tests.helpers.terminal import on_terminal


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[Path, Path, SqliteStore]]:
    data = tmp_path / "data"
    config = tmp_path / "recorder.toml"
    config.write_text(f'[storage]\ndata_dir = "{data}"\n\n[retention]\ndefault_keep_days = 30\n'
                      '[[retention.archive_actions]]\nid = 8\npurge = true\n')
    store = SqliteStore(data / "recorder.sqlite3")
    store.open()
    yield config, data / "recordings", store
    store.close()


@pytest.mark.slow
def test_recorderctl_purge_dry_run_then_for_real(site: tuple[Path, Path, SqliteStore]) -> None:
    config, root, store = site
    now = time.time()
    old = write(recording_path(root, "old.wav"), 100)
    done = write(recording_path(root, "done.wav"), 20)
    young = write(recording_path(root, "young.wav"), 5)
    a = add(store, old, now - 40 * DAY)
    b = add(store, done, now - 3600, archive=8)
    add(store, young, now - 2 * DAY)

    dry = recorderctl("purge", "--config", str(config), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    lines = dry.stdout.splitlines()
    assert any(line.startswith("would purge\tRECORDID " + str(a)) and str(old) in line
               and "100 bytes" in line for line in lines)
    assert any(line.startswith("would purge\tRECORDID " + str(b)) and "purge when complete"
               in line for line in lines)
    assert lines[-1] == "would purge 2 of 2 recording(s) examined, 120 bytes to free"
    assert old.exists()
    assert done.exists()

    real = recorderctl("purge", "--config", str(config))
    assert real.returncode == 0, real.stderr
    assert real.stdout.splitlines()[-1] == "purged 2 of 2 recording(s) examined, 120 bytes freed"
    assert not old.exists()
    assert not done.exists()
    assert young.exists()
    for ident in (a, b):
        purged = store.get_recording(ident)
        assert purged is not None
        assert purged.purged_time is not None


def test_recorderctl_purge_json_and_failures(site: tuple[Path, Path, SqliteStore]) -> None:
    config, root, store = site
    now = time.time()
    old = write(recording_path(root, "old.wav"), 100)
    stuck = recording_path(root, "stuck.wav")
    write(stuck / "inside", 1)
    a = add(store, old, now - 40 * DAY)
    b = add(store, stuck, now - 50 * DAY)
    result = recorderctl("purge", "--json", env={"RECORDER_CONFIG": str(config)})
    assert result.returncode == 1, result.stderr
    answer = json.loads(result.stdout)
    assert (answer["purged"], answer["failures"], answer["bytes_freed"]) == (1, 1, 100)
    by_id = {r["recordid"]: r for r in answer["recordings"]}
    assert by_id[a]["result"] == "purged"
    assert by_id[b]["result"] == "failed"
    assert by_id[b]["filename"] == str(stuck)


@pytest.mark.slow
def test_recorderctl_purge_refuses_a_bad_config_or_a_missing_database(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[retention]\npurge_time = "25:00"\n')
    result = recorderctl("purge", "--config", str(bad))
    assert result.returncode == 2
    assert "retention.purge_time: '25:00' is not a time" in result.stderr
    empty = tmp_path / "empty.toml"
    empty.write_text(f'[storage]\ndata_dir = "{tmp_path / "nothing"}"\n')
    result = recorderctl("purge", "--config", str(empty))
    assert result.returncode == 2
    assert "no database at" in result.stderr
    assert not (tmp_path / "nothing").exists()  # looking did not create one
    assert recorderctl("purge", "--bogus").returncode == 2


def test_recorderctl_purge_shows_a_progress_bar_on_a_terminal(
        site: tuple[Path, Path, SqliteStore]) -> None:
    config, root, store = site
    now = time.time()
    for i in range(3):
        add(store, write(recording_path(root, f"{i}.wav"), 10), now - (40 + i) * DAY)
    proc, text = on_terminal([str(RECORDERCTL), "purge", "--config", str(config)], "stdout")
    assert proc.returncode == 0, proc.stderr
    assert f"\r[{'#' * 30}] 3/3" in text
    assert "RECORDID" not in text  # the bar instead of a line per recording
    assert text.splitlines()[-1] == "purged 3 of 3 recording(s) examined, 30 bytes freed"
