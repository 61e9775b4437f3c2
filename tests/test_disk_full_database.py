"""A full disk under the database too: the rows of the recordings it cut are not left "recording".

The whole data directory (database, its write-ahead log, the outage spool, the crash journal and
the recordings) is a small tmpfs mounted for the test. Two calls record; once their rows are in,
every byte left is taken, so the recordings are cut (``truncated``) and neither the database nor
the spool can take the rows' completion. The completions wait in memory (reads of recordings
answer 23 meanwhile, rather than rows still "recording" with a growing duration) and reach the
database once there is room again; a recorder stopped while the disk is still full leaves the
crash journal to complete them at the next start. Needs the right to mount a tmpfs (root).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import soundfile

from recorder.config.loader import config_from_dict
from recorder.config.printing import to_toml
from recorder.recording.journal import JOURNAL_NAME, read_journal
from tests.helpers.api import ApiConnection, result_code
from tests.helpers.exports import tone
from tests.helpers.recorders import (
    IN_PROCESS_AND_RECORDERD,
    RecorderProcess,
    Running,
    base_config,
    write_toml,
)
from tests.helpers.smalldisk import Events, SmallDisk, check_file, rows, small_disk
from tests.helpers.waiting import wait_for

HZ = {"2001": 440.0, "2002": 1000.0}


def _sections(tmp_path: Path, data: Path) -> dict[str, object]:
    lines = tmp_path / "lines"
    lines.mkdir(exist_ok=True)
    return {"storage": {"data_dir": str(data)},
            "boards": [{"driver": "file", "devices": list(HZ), "files": [
                str(tone(lines / f"{d}.wav", hz)) for d, hz in HZ.items()]}],
            "retention": {"min_free_mb": 0}}


def _sources(tmp_path: Path) -> dict[str, object]:
    return {d: soundfile.read(tmp_path / "lines" / f"{d}.wav", dtype="int16")[0] for d in HZ}


def _mounted(disk: SmallDisk) -> None:
    if disk.mode != "tmpfs":
        pytest.skip("the database can only be put on a full disk by mounting a tmpfs (root)")


def _wait_for_audio(path: Path, seconds: float) -> None:
    wait_for(lambda: path.exists() and path.stat().st_size >= 44 + seconds * 16000, 30.0,
             what=lambda: f"{seconds} s of audio in {path}")


def _cut_both(conn: ApiConnection, data: Path, disk: SmallDisk, events: Events) -> None:
    """Two calls start with room for their rows; then the disk is filled to the last byte."""
    for device in HZ:
        assert result_code(conn.request("CALLSTART", 1, DEVICEID=device)) == 20
    wait_for(lambda: len(rows(data)) == 2, 10.0, what=lambda: [dict(r) for r in rows(data)])
    # Half a second of audio in each file first (16-bit 8 kHz WAV: 16,000 bytes a second),
    # however late a loaded machine writes it: the truncated recordings keep at least that.
    for row in rows(data):
        _wait_for_audio(Path(row["filename"]), 0.5)
    disk.fill_up()
    for device in HZ:
        events.until(("RECORDINGSTOPPED", device, "TRUNCATED"))


@pytest.mark.slow
@IN_PROCESS_AND_RECORDERD
def test_rows_a_full_disk_kept_from_the_database_are_written_once_there_is_room(
        tmp_path: Path, start_recorder: Callable[..., Running],
        disk_path: Callable[[SmallDisk], None]) -> None:
    data = tmp_path / "data"
    with small_disk(data, 6 << 20) as disk:
        disk_path(disk)
        _mounted(disk)
        disk.fill(1 << 20)
        running = start_recorder(**_sections(tmp_path, data))
        events = Events(running)
        conn = running.connect()
        try:
            _cut_both(conn, data, disk, events)
            # The completions could reach neither the database nor the spool: they wait, and
            # reads of recordings say so rather than list rows still "recording".
            listed = conn.request("CALLLIST", 2)
            assert result_code(listed) == 23, listed.findtext("RESULTMSG")
            assert running.status()["database"]["spooled"] >= 2
            assert {r["status"] for r in rows(data)} == {"recording"}

            # Room again: the rows are complete within a few of the spool's retries.
            disk.free_up()

            def complete() -> bool:
                found = rows(data)
                return len(found) >= 2 and all(r["status"] == "complete" for r in found[:2])
            wait_for(complete, 10.0, what=lambda: [dict(r) for r in rows(data)])
            sources = _sources(tmp_path)
            for row in rows(data)[:2]:
                assert row["stop_reason"] == "truncated"
                assert row["duration"] > 0.4
                check_file(row, sources[row["device_id"]], HZ[row["device_id"]])
            listed = conn.request("CALLLIST", 3)
            assert result_code(listed) == 20
            durations = {r.findtext("RECORDID"): r.findtext("DURATION")
                         for r in listed.findall("SEARCHRESULT")}
            for row in rows(data)[:2]:
                assert durations[str(row["ident"])] == str(round(row["duration"]))
            assert running.status()["database"]["spooled"] == 0

            # The calls are still up and continue by themselves; they end as usual.
            wait_for(lambda: len(rows(data)) == 4, 10.0,
                     what=lambda: [dict(r) for r in rows(data)])
            for device in HZ:
                assert result_code(conn.request("CALLSTOP", 4, DEVICEID=device)) == 20
            assert sorted((r["device_id"], r["status"], r["stop_reason"]) for r in rows(data)) == [
                ("2001", "complete", "callended"), ("2001", "complete", "truncated"),
                ("2002", "complete", "callended"), ("2002", "complete", "truncated")]
        finally:
            conn.close()
            events.close()
            if running.recorder is not None:
                running.recorder.stop()  # before the file system goes away


@pytest.mark.slow
def test_a_recorder_stopped_while_the_disk_is_full_completes_the_rows_at_its_next_start(
        tmp_path: Path, processes: list[RecorderProcess],
        disk_path: Callable[[SmallDisk], None]) -> None:
    data = tmp_path / "data"
    config = write_toml(tmp_path / "r.toml", to_toml(config_from_dict(
        base_config(tmp_path, **_sections(tmp_path, data)), base_dir=tmp_path)))
    with small_disk(data, 6 << 20) as disk:
        disk_path(disk)
        _mounted(disk)
        disk.fill(1 << 20)
        first = RecorderProcess(["--config", str(config)])
        processes.append(first)
        running = first.wait_ready()
        events = Events(running)
        conn = running.connect()
        try:
            _cut_both(conn, data, disk, events)
        finally:
            conn.close()
            events.close()
        # A clean stop while the disk is still full: the rows cannot be written anywhere, and
        # the crash journal still lists their recordings.
        assert first.stop() == 0, first.log
        assert "Traceback" not in first.log, first.log
        assert sorted(e.row.device_id for e in read_journal(data / JOURNAL_NAME).open.values()
                      ) == sorted(HZ)

        disk.free_up()
        again = RecorderProcess(["--config", str(config)])
        processes.append(again)
        again.wait_ready()
        found = rows(data)
        assert sorted(r["device_id"] for r in found) == sorted(HZ)  # each once
        sources = _sources(tmp_path)
        for row in found:
            assert row["status"] == "complete"
            assert row["stop_reason"] in ("truncated", "recovered")
            assert row["duration"] > 0.4
            check_file(row, sources[row["device_id"]], HZ[row["device_id"]])
        assert not read_journal(data / JOURNAL_NAME).open
        assert again.stop() == 0, again.log
        assert "Traceback" not in again.log, again.log
