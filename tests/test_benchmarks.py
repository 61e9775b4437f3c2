"""The published benchmarks run (tiny sizes) and report what they measured; no speed is asserted.

Also the schema change the CALLLIST benchmark led to: an older database gains the CALLLIST
indexes, and the store's query for a caller uses its index instead of walking the table.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from recorder.store.records import RecordingQuery
from recorder.store.schema import CREATE_V1, CREATE_V2, CREATE_V3, SCHEMA_VERSION
from recorder.store.sqlite import SqliteStore

ROOT = Path(__file__).resolve().parent.parent


def bench(script: str, *args: str) -> str:
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    return done.stdout


@pytest.mark.bench
@pytest.mark.slow
@pytest.mark.process
@pytest.mark.timeout(400)
def test_pipeline_benchmark_records_every_format_beside_the_bare_library(tmp_path: Path) -> None:
    out = tmp_path / "pipeline.json"
    stdout = bench("pipeline.py", "--quick", "--json", str(out))
    runs = json.loads(out.read_text())
    assert sorted((r["side"], r["fmt"]) for r in runs) == sorted(
        (side, fmt) for side in ("bare", "recorderd") for fmt in ("wav", "mp3", "vox"))
    for run in runs:
        assert run["rate"] > 0, run
        if run["side"] == "recorderd":
            # Every call made a file as long as it lasted (the pre-roll aside), nothing lost.
            assert (run["files"], run["lost_samples"]) == (16, 0), run
            assert abs(run["worst_duration_error"]) < 1.0, run
    assert "goal: VOX whole pipeline >= 0.5x the bare library" in stdout


@pytest.mark.bench
@pytest.mark.slow
@pytest.mark.process
@pytest.mark.timeout(400)  # bench() allows the script 300 s: a loaded machine runs it slowly
def test_api_benchmark_measures_every_case(tmp_path: Path) -> None:
    out = tmp_path / "api.json"
    stdout = bench("api.py", "--seconds", "0.5", "--clients", "1,2", "--server", "both",
                   "--rounds", "1", "--json", str(out))
    cases = json.loads(out.read_text())
    seen = {(c["server"], c["policy"], c["clients"]) for c in cases}
    # Each recorder case beside the lxml baseline measured just before it (ABAB).
    assert seen == {(server, policy, clients) for clients in (1, 2)
                    for server in ("baseline", "in-process", "recorderd")
                    for policy in ("recorded", "not recorded")}
    for case in cases:
        assert case["requests"] > 0, case
        assert case["pairs"] > 0, case
        assert case["requests"] >= 2 * case["pairs"], case  # the warm-up is not counted
        assert case["errors"] == 0, case  # every CALLSTART and CALLSTOP answered API_OK
        assert 0 < case["p50_ms"] <= case["p99_ms"], case
    # The printed table has a line per case, and the verdicts only at 10 clients (none here).
    table = [line for line in stdout.splitlines()
             if line.startswith(("baseline ", "in-process ", "recorderd "))]
    assert len(table) == len(cases)
    assert "recordings written by in-process" in stdout


@pytest.mark.bench
@pytest.mark.slow
@pytest.mark.process
def test_siprec_benchmark_measures_recorderd_and_the_bare_receiver(tmp_path: Path) -> None:
    out = tmp_path / "siprec.json"
    stdout = bench("siprec.py", "--streams", "20", "--seconds", "2", "--warmup", "1",
                   "--json", str(out))
    runs = json.loads(out.read_text())
    assert [(r["receiver"], r["streams"]) for r in runs] == [("bare", 20), ("recorderd", 20)]
    for run in runs:
        assert run["sent"] == 20 * 100, run  # 2 s of 20 ms packets, every stream
        assert run["received"] > 0, run
        assert run["cpu"] > 0, run
    bare, recorderd = runs
    assert bare["files"] == 20
    assert recorderd["files"] == 10  # one stereo file per two-stream session
    assert recorderd["refused"] == 0
    assert "targets:" in stdout


@pytest.mark.bench
@pytest.mark.parametrize("mix", [[], ["--mono"]], ids=["stereo", "mono"])
def test_writer_benchmark_writes_the_same_files_whatever_the_pump_period(
        mix: list[str]) -> None:
    digests = set()
    for period in ("0.05", "0.2", "0.35"):
        stdout = bench("writer.py", "--sessions", "6", "--seconds", "6", "--period", period,
                       *mix)
        assert "% of a core for 6 recordings" in stdout, stdout
        digests.add(stdout.rsplit("digest ", 1)[1].strip())
    assert len(digests) == 1, digests


@pytest.mark.bench
def test_the_writer_benchmark_encrypted_writes_the_same_audio() -> None:
    """With --encrypt the files decrypt to exactly what the plain run writes."""
    digests = []
    for extra in ([], ["--encrypt"]):
        stdout = bench("writer.py", "--sessions", "4", "--seconds", "4", *extra)
        assert ("encrypted" in stdout) == bool(extra), stdout
        digests.append(stdout.rsplit("digest ", 1)[1].strip())
    assert digests[0] == digests[1]
    # --compare writes both in one process, turn for turn: one digest, and a ratio.
    compared = bench("writer.py", "--sessions", "4", "--seconds", "4", "--compare")
    assert compared.rsplit("digest ", 1)[1].strip() == digests[0], compared
    assert "x; digest" in compared


@pytest.mark.bench
@pytest.mark.slow
def test_calllist_benchmark_measures_every_filter_and_reuses_its_data(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    out = tmp_path / "calllist.json"
    args = ("--rows", "2000", "--repeats", "3", "--cache", str(cache), "--plans")
    first = bench("calllist.py", *args, "--json", str(out))
    assert "building" in first
    figures = {f["name"]: f for f in json.loads(out.read_text())["filters"]}
    assert len(figures) == 10
    for f in figures.values():
        assert f["runs"] == 3, f
        assert f["api_ms"] > 0, f
        assert f["db_ms"] > 0, f
        assert f["plan"], f
    assert figures["newest 10 (CALLCOUNT)"]["rows"] == 10
    assert figures["ANI"]["rows"] >= 1  # a caller taken from an existing recording
    assert figures["ANI, no match"]["rows"] == 0
    assert "recordings_by_ani" in figures["ANI"]["plan"]

    again = bench("calllist.py", *args)
    assert "building" not in again
    assert "cached database" in again


@pytest.mark.bench
@pytest.mark.slow
def test_writer_lag_benchmark_measures_and_reports_against_its_target() -> None:
    stdout = bench("writerlag.py", "--calls", "2", "--seconds", "1")
    assert "2 calls, 1 s" in stdout
    assert "largest lag" in stdout
    assert "target under 0.65 s" in stdout


@pytest.mark.bench
@pytest.mark.slow
def test_portal_benchmark_measures_the_search_page_against_calllist(tmp_path: Path) -> None:
    out = tmp_path / "portal.json"
    stdout = bench("portal.py", "--rows", "2000", "--repeats", "3", "--cache",
                   str(tmp_path / "cache"), "--json", str(out))
    figures = json.loads(out.read_text())
    assert len(figures["filters"]) == 6
    for f in figures["filters"]:
        assert f["runs"] == 3, f
        assert f["page_ms"] > 0, f
        assert f["api_ms"] > 0, f
    assert figures["recording_page_ms"] > 0
    assert figures["first_byte_ms"] > 0
    assert "first byte of playback" in stdout


@pytest.mark.bench
@pytest.mark.slow
@pytest.mark.process
@pytest.mark.timeout(400)
def test_webauth_benchmark_measures_basic_checked_and_remembered(tmp_path: Path) -> None:
    out = tmp_path / "webauth.json"
    stdout = bench("webauth.py", "--seconds", "0.5", "--rounds", "1", "--clients", "1",
                   "--json", str(out))
    cases = {case["name"]: case for case in json.loads(out.read_text())}
    assert set(cases) == {"basic, full check", "basic, remembered", "bearer token"}
    for case in cases.values():
        assert case["answers"] > 0, case
        assert case["errors"] == 0, case
    assert "server CPU ms/req" in stdout


def test_a_version_3_database_gains_the_calllist_indexes(tmp_path: Path) -> None:
    path = tmp_path / "v3.sqlite3"
    conn = sqlite3.connect(path)
    conn.executescript(f"{CREATE_V1}\n{CREATE_V2}\n{CREATE_V3}\nPRAGMA user_version = 3;")
    conn.execute("INSERT INTO recordings (device_id, filename, recording_time, media_format,"
                 " sample_rate, start_time, status, core_ident, ani) VALUES"
                 " ('1001', '/r/a.wav', 5, 'wav', 8000, 5.0, 'complete', 1, '6145551212')")
    conn.commit()
    conn.close()
    store = SqliteStore(path)
    store.open()
    try:
        (row,) = store.list_recordings(RecordingQuery(equals={"ANI": "6145551212"}))
        assert row.meta["ANI"] == "6145551212"
    finally:
        store.close()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        indexes = {r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'recordings'")}
        assert {"recordings_by_ani", "recordings_by_crm_user", "recordings_by_sys_user",
                "recordings_by_alias"} <= indexes
    finally:
        conn.close()
