"""A recording's blackout marks are under its row's seal (``recorder-row/2``, schema 11): a mark
moved, removed or added behind the recorder's back is reported by ``recorderctl verify``; rows
sealed before the upgrade are sealed again with their marks if their old seal still matched,
and still reported if it did not."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest

from recorder.store.evidence import ROW_SEAL_COLUMNS, row_seal_v1
from recorder.store.records import FinishedRecording, NewRecording
from recorder.store.schema import MIGRATIONS, Step
from recorder.store.sqlite import SqliteStore
from tests.helpers.ctl import recorderctl


def _config(tmp_path: Path, data: Path) -> Path:
    config = tmp_path / "r.toml"
    config.write_text(f'[storage]\ndata_dir = "{data}"\n', encoding="utf-8")
    return config


def _verify(config: Path) -> dict[str, object]:
    done = recorderctl("verify", "--json", "--config", str(config))
    report: dict[str, object] = json.loads(done.stdout)
    report["exit"] = done.returncode
    return report


def _changed(report: dict[str, object]) -> list[int]:
    findings = report["findings"]
    assert isinstance(findings, list)
    return sorted(f["ident"] for f in findings if f["kind"] == "row changed")


def _file(data: Path, name: str) -> tuple[Path, str]:
    path = data / "recordings" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF" + name.encode() * 40)
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def _recorded(store: SqliteStore, data: Path, name: str,
              marks: tuple[tuple[float, float], ...]) -> int:
    path, digest = _file(data, name)
    ident = store.insert_recording(NewRecording(
        device_id="1001", call_instance="", channel=0, filename=str(path), media_format="wav",
        sample_rate=8000, start_time=1000.0, core_ident=1))
    store.finish_recording(ident, FinishedRecording(
        stop_time=1010.0, duration=10.0, audio_size=path.stat().st_size, audio_hash=digest,
        stop_reason="callstop", lost_samples=0, blackouts=marks))
    return ident


def _sql(data: Path, statement: str) -> None:
    with sqlite3.connect(data / "recorder.sqlite3") as conn:
        conn.execute(statement)


@pytest.mark.slow  # recorderctl verify as a process, repeatedly: a second or more of CPU
def test_a_blackout_mark_changed_removed_or_added_is_reported(tmp_path: Path) -> None:
    data = tmp_path / "data"
    store = SqliteStore(data / "recorder.sqlite3")
    store.open()
    moved = _recorded(store, data, "moved.wav", ((2.0, 4.5),))
    removed = _recorded(store, data, "removed.wav", ((1.0, 2.0), (6.0, 7.25)))
    added = _recorded(store, data, "added.wav", ())
    untouched = _recorded(store, data, "untouched.wav", ((3.0, 5.0),))
    store.close()
    config = _config(tmp_path, data)
    report = _verify(config)
    assert report["exit"] == 0, report
    assert report["good"] == 4

    # What someone hiding a silenced stretch, or inventing one, would do with sqlite3.
    _sql(data, f"UPDATE recording_blackouts SET end_seconds = 3.0 WHERE ident = {moved}")
    _sql(data, f"DELETE FROM recording_blackouts WHERE ident = {removed}"
               " AND start_seconds = 6.0")
    _sql(data, "INSERT INTO recording_blackouts (ident, start_seconds, end_seconds)"
               f" VALUES ({added}, 0.0, 9.0)")
    report = _verify(config)
    assert report["exit"] == 1, report
    assert _changed(report) == [moved, removed, added]
    assert untouched not in _changed(report)


def _schema_10_store(data: Path) -> sqlite3.Connection:
    """A database as schemas 7 to 10 left it: the rows sealed without their marks."""
    data.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(data / "recorder.sqlite3", isolation_level=None)
    for version, step in enumerate(MIGRATIONS[:10], 1):
        if isinstance(step, Step):
            conn.executescript(f"BEGIN;\n{step.script}")
            step.then(conn, None)
            conn.execute(f"PRAGMA user_version = {version}")
            conn.execute("COMMIT")
        else:
            conn.executescript(f"BEGIN;\n{step}\nPRAGMA user_version = {version};\nCOMMIT;")
    return conn


def _old_row(conn: sqlite3.Connection, data: Path, name: str,
             marks: tuple[tuple[float, float], ...]) -> int:
    path, digest = _file(data, name)
    ident = conn.execute(
        "INSERT INTO recordings (device_id, filename, media_format, sample_rate,"
        " recording_time, start_time, stop_time, duration, status, core_ident, audio_size,"
        " audio_hash, stop_reason) VALUES ('1001', ?, 'wav', 8000, 1000, 1000.0, 1010.0, 10.0,"
        " 'complete', 1, ?, ?, 'callstop')", (str(path), path.stat().st_size, digest)
    ).lastrowid
    conn.executemany("INSERT INTO recording_blackouts (ident, start_seconds, end_seconds)"
                     " VALUES (?, ?, ?)", [(ident, a, b) for a, b in marks])
    values = conn.execute(f"SELECT {', '.join(ROW_SEAL_COLUMNS)} FROM recordings"
                          " WHERE ident = ?", (ident,)).fetchone()
    conn.execute("UPDATE recordings SET row_hash = ? WHERE ident = ?",
                 (row_seal_v1(values), ident))
    assert ident is not None
    return ident


@pytest.mark.slow  # recorderctl verify as a process, repeatedly: a second or more of CPU
def test_rows_sealed_before_the_upgrade_are_resealed_with_their_marks_if_still_intact(
        tmp_path: Path) -> None:
    data = tmp_path / "data"
    conn = _schema_10_store(data)
    intact = _old_row(conn, data, "intact.wav", ((1.5, 2.5),))
    plain = _old_row(conn, data, "plain.wav", ())
    doctored = _old_row(conn, data, "doctored.wav", ((4.0, 6.0),))
    # Changed before the upgrade: its old seal no longer matches, and the upgrade must not
    # make it look sealed.
    conn.execute(f"UPDATE recordings SET duration = 3.0 WHERE ident = {doctored}")
    conn.close()
    config = _config(tmp_path, data)

    report = _verify(config)  # opening the store takes it to schema 11
    with sqlite3.connect(data / "recorder.sqlite3") as check:
        assert check.execute("PRAGMA user_version").fetchone()[0] == 11
    assert report["exit"] == 1, report
    assert _changed(report) == [doctored]
    assert report["good"] == 2

    # The old row's marks are under its seal from now on.
    _sql(data, f"UPDATE recording_blackouts SET start_seconds = 2.0 WHERE ident = {intact}")
    report = _verify(config)
    assert _changed(report) == [intact, doctored]
    assert plain not in _changed(report)


def test_rows_sealed_with_the_seal_key_are_resealed_with_it_and_never_without_it(
        tmp_path: Path) -> None:
    from recorder.errors import StoreError  # noqa: PLC0415
    from recorder.store.evidence import is_keyed  # noqa: PLC0415
    from recorder.store.sealing import Sealing  # noqa: PLC0415
    from recorder.store.sealkey import SealKey  # noqa: PLC0415

    key = SealKey(bytes(range(32)))
    data = tmp_path / "data"
    conn = _schema_10_store(data)
    ident = _old_row(conn, data, "keyed.wav", ((1.0, 3.0),))
    values = conn.execute(f"SELECT {', '.join(ROW_SEAL_COLUMNS)} FROM recordings"
                          " WHERE ident = ?", (ident,)).fetchone()
    conn.execute("UPDATE recordings SET row_hash = ? WHERE ident = ?",
                 (row_seal_v1(values, key.secret), ident))
    conn.close()

    # Without the key the upgrade cannot seal the row again: it refuses, and changes nothing.
    store = SqliteStore(data / "recorder.sqlite3")
    with pytest.raises(StoreError, match="seal key"):
        store.open()
    with sqlite3.connect(data / "recorder.sqlite3") as check:
        assert check.execute("PRAGMA user_version").fetchone()[0] == 10

    store = SqliteStore(data / "recorder.sqlite3")
    store.sealing = Sealing(key)
    store.open()
    try:
        (row,) = list(store.sealed_rows(key=key.secret))
        assert is_keyed(row.row_hash)
        assert row.row_hash == row.seal  # keyed, with its marks
        _sql(data, f"UPDATE recording_blackouts SET end_seconds = 2.0 WHERE ident = {ident}")
        (row,) = list(store.sealed_rows(key=key.secret))
        assert row.row_hash != row.seal
    finally:
        store.close()
