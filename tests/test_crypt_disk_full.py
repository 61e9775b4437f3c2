"""A full disk under encrypted recordings (docs/encryption.md, "What a crash leaves"): a real
recorderd with ``storage.encrypt`` records two calls onto a small tmpfs until it is full. Each
recording is cut to the chunks that authenticate and closed as ``truncated``; once there is
room the calls go on in new recordings and a new call is recorded. Every file, the cut ones
too, decrypts with ``recorderctl decrypt`` to the line's tone sample for sample, to the length
its row says, and ``recorderctl verify`` authenticates every chunk and finds every hash true:
the same promises the plain full-disk tests (tests/test_disk_full.py) check, and no audio in
clear on the disk.

Only where a tmpfs can be mounted (as root): the fault the other tests inject at the writer's
boundary cannot reach the encrypted writer's ``pwritev`` (tests/test_crypt_recovery.py injects
ENOSPC there instead).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import soundfile

from recorder.crypt.keys import create_master_key
from tests.helpers.api import result_code
from tests.helpers.ctl import recorderctl
from tests.helpers.exports import tone
from tests.helpers.recorders import RECORDERD_ONLY, Running
from tests.helpers.smalldisk import KIB, Events, SmallDisk, check_file, rows, small_disk
from tests.helpers.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.process, pytest.mark.timeout(300)]

TONES = {"2001": 440.0, "2002": 1000.0, "2003": 660.0}


def _decrypted(row: sqlite3.Row, key: Path, out_dir: Path) -> dict[str, Any]:
    """The row's file as ``recorderctl decrypt`` gives it, with the row's duration."""
    out = out_dir / f"{Path(row['filename']).name}.{row['ident']}.plain.wav"
    done = recorderctl("decrypt", row["filename"], "-o", out, "--key-file", key)
    assert done.returncode == 0, done.stderr
    return {"filename": str(out), "duration": row["duration"]}


@RECORDERD_ONLY
def test_encrypted_recordings_cut_by_a_full_tmpfs_decrypt_verify_and_resume(
        tmp_path: Path, start_recorder: Callable[..., Running],
        disk_path: Callable[[SmallDisk], None]) -> None:
    data = tmp_path / "data"
    lines = tmp_path / "lines"
    lines.mkdir()
    plain = tmp_path / "plain"
    plain.mkdir()
    key = tmp_path / "master.key"  # off the small disk, as a credential would be
    create_master_key(key)
    sources = {d: soundfile.read(tone(lines / f"{d}.wav", hz), dtype="int16")[0]
               for d, hz in TONES.items()}
    with small_disk(data / "recordings", 6 << 20) as disk:
        disk_path(disk)
        if disk.mode != "tmpfs":
            pytest.skip("needs a real tmpfs (root, mount; RECORDER_TEST_NO_MOUNT unset)")
        # Two calls write 32 kB/s (and 40 bytes a chunk): about three seconds of room.
        disk.fill(96 * KIB)
        running = start_recorder(
            storage={"data_dir": str(data), "encrypt": True, "key_file": str(key)},
            boards=[{"driver": "file", "devices": list(TONES), "files": [
                str(lines / f"{d}.wav") for d in TONES]}],
            retention={"min_free_mb": 0})
        events = Events(running)
        conn = running.connect()
        try:
            for device in ("2001", "2002"):
                assert result_code(conn.request("CALLSTART", 1, DEVICEID=device)) == 20

            def cut() -> list[sqlite3.Row]:
                found = [r for r in rows(data) if r["stop_reason"] == "truncated"]
                return found if len(found) == 2 else []
            truncated = wait_for(cut, 20.0, what=lambda: [dict(r) for r in rows(data)])
            for row in truncated:
                assert row["status"] == "complete"
                assert row["duration"] > 1.0
                assert Path(row["filename"]).read_bytes()[:8] == b"RCRDSEAL"
                check_file(_decrypted(row, key, plain), sources[row["device_id"]],
                           TONES[row["device_id"]])
            for device in ("2001", "2002"):
                events.until(("RECORDINGSTOPPED", device, "TRUNCATED"))
            assert running.status()["disk"]["full"] is True

            # Room again: the calls still up go on in new recordings, a new call is recorded.
            disk.free_up()
            wait_for(lambda: all(len(rows(data, d)) == 2 for d in ("2001", "2002")), 10.0,
                     what=lambda: [dict(r) for r in rows(data)])
            for device in ("2001", "2002"):
                events.until(("RECORDINGSTARTED", device, "NONE"))
            assert result_code(conn.request("CALLSTART", 6, DEVICEID="2003")) == 20
            for device in ("2001", "2002", "2003"):
                running.wait_recorded(device, 1.5)
            for device in ("2001", "2002", "2003"):
                assert result_code(conn.request("CALLSTOP", 8, DEVICEID=device)) == 20
            wait_for(lambda: all(r["status"] == "complete" for r in rows(data)), 10.0,
                     what=lambda: [dict(r) for r in rows(data)])

            for device in ("2001", "2002"):
                first, continued = rows(data, device)
                assert (first["stop_reason"], continued["stop_reason"]) == (
                    "truncated", "callended")
                assert continued["start_time"] >= first["stop_time"]
                assert continued["globalid"] == first["globalid"]
                assert continued["duration"] >= 1.4
                check_file(_decrypted(continued, key, plain), sources[device], TONES[device])
            (new,) = rows(data, "2003")
            assert new["stop_reason"] == "callstop"
            check_file(_decrypted(new, key, plain), sources["2003"], TONES["2003"])
        finally:
            conn.close()
            events.close()
            for device in TONES:
                running.request("CALLSTOP", 99, DEVICEID=device)

        # Nothing in clear on the disk: the recordings are sealed, beside them their keys.
        for path in (data / "recordings").rglob("*"):
            if path.is_file() and path.suffix not in (".key", ".bin"):
                assert path.read_bytes()[:8] == b"RCRDSEAL", path
        config = next(tmp_path.glob("recorder*.toml"))
        verified = recorderctl("verify", "--config", config, "--key-file", key)
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert "5 as stored" in verified.stdout, verified.stdout
