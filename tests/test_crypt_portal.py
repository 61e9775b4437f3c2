"""An encrypted recording in the web portal: the player's Range requests and the download get
the plain audio, decrypted as it is sent (api/portal/plainmedia.py); never the ciphertext."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from recorder.api.portal.plainmedia import byte_range
from recorder.app import Recorder
from recorder.codecs.stored import install_opener
from recorder.codecs.wav import WavWriter
from recorder.config.loader import config_from_dict
from recorder.crypt.access import start_sealed
from recorder.crypt.keys import create_master_key
from recorder.store.records import FinishedRecording, NewRecording
from tests.helpers.portal import PortalClient, add_user, portal_port
from tests.helpers.recorders import base_config


@pytest.mark.parametrize(("header", "size", "expected"), [
    ("", 100, None), ("bytes=0-", 100, (0, 100)), ("bytes=10-19", 100, (10, 20)),
    ("bytes=90-200", 100, (90, 100)), ("bytes=-10", 100, (90, 100)),
    ("bytes=-500", 100, (0, 100)), ("bytes=0-0", 100, (0, 1)), ("bytes=1-2,5-6", 100, None),
    ("items=0-5", 100, None), ("bytes=-", 100, None),
    ("bytes=100-", 100, ValueError), ("bytes=5-4", 100, ValueError),
    ("bytes=-0", 100, ValueError),
])
def test_the_range_a_header_asks(header: str, size: int,
                                 expected: tuple[int, int] | type | None) -> None:
    if expected is ValueError:
        with pytest.raises(ValueError):  # noqa: PT011 - the function's one error
            byte_range(header, size)
    else:
        assert byte_range(header, size) == expected


@pytest.fixture
def portal(tmp_path: Path) -> Iterator[Recorder]:
    key = tmp_path / "master.key"
    create_master_key(key)
    doc = base_config(tmp_path, portal={"enabled": True, "port": 0})
    doc["storage"].update({"encrypt": True, "key_file": str(key)})
    recorder = Recorder(config_from_dict(doc, base_dir=tmp_path))
    recorder.start()
    try:
        yield recorder
    finally:
        recorder.stop()
        install_opener(None)  # the process-wide opener the recorder installed


def encrypted_recording(recorder: Recorder, seconds: float = 2.0) -> tuple[int, Path, bytes]:
    """A complete encrypted recording as recorderd writes it; its RECORDID, file, plain WAV."""
    assert recorder.store is not None
    assert recorder._master_key is not None
    path = recorder.config.storage.recordings_dir / "portal" / f"1001-{time.monotonic_ns()}.wav"
    path.parent.mkdir(parents=True, exist_ok=True)
    audio = (np.sin(np.arange(round(seconds * 8000)) / 3.0) * 9000).astype(np.int16)
    writer = WavWriter(start_sealed(path, path.open("xb"), recorder._master_key,  # type: ignore[arg-type]
                                    prologue=44), 8000)
    writer.write(audio)
    writer.close()
    plain_path = path.with_name("plain.wav")
    plain = WavWriter(plain_path.open("wb"), 8000)
    plain.write(audio)
    plain.close()
    start = time.time() - 60
    store = recorder.store.recordings
    ident = store.insert_recording(NewRecording(
        device_id="1001", call_instance="", channel=0, filename=str(path), media_format="wav",
        sample_rate=8000, start_time=start, core_ident=1, meta={}, keep_days=None,
        agent_id=-1))
    store.finish_recording(ident, FinishedRecording(
        stop_time=start + seconds, duration=seconds, audio_size=path.stat().st_size,
        audio_hash="", stop_reason="callstop"))
    data = plain_path.read_bytes()
    plain_path.unlink()
    return ident, path, data


def test_the_player_seeks_in_an_encrypted_recording(portal: Recorder) -> None:
    add_user(portal, "ray", ("ALLOWVIEWALLRECORDS", "ALLOWEXPORTDOWNLOAD"))
    ident, path, data = encrypted_recording(portal)
    assert path.read_bytes()[:8] == b"RCRDSEAL"
    client = PortalClient(portal_port(portal))
    client.sign_in("ray")
    whole = client.get(f"/recordings/{ident}/audio")
    assert whole.status == 200
    assert whole.headers["Content-Type"] == "audio/wav"
    assert whole.headers["Accept-Ranges"] == "bytes"
    assert whole.body == data
    for spec, status, expected in (("bytes=1000-1999", 206, data[1000:2000]),
                                   ("bytes=16380-16500", 206, data[16380:16501]),
                                   ("bytes=-100", 206, data[-100:]),
                                   ("bytes=0-", 206, data)):
        seek = client.get(f"/recordings/{ident}/audio", Range=spec)
        assert (seek.status, seek.body) == (status, expected), spec
    first, last = 16380, 16500
    assert client.get(f"/recordings/{ident}/audio", Range=f"bytes={first}-{last}").headers[
        "Content-Range"] == f"bytes {first}-{last}/{len(data)}"
    beyond = client.get(f"/recordings/{ident}/audio", Range=f"bytes={len(data)}-")
    assert beyond.status == 416
    assert beyond.headers["Content-Range"] == f"bytes */{len(data)}"
    download = client.get(f"/recordings/{ident}/download")
    assert download.status == 200
    assert download.body == data
    assert "attachment" in download.headers["Content-Disposition"]


def test_a_damaged_encrypted_recording_is_not_played(portal: Recorder) -> None:
    add_user(portal, "ray", ("ALLOWVIEWALLRECORDS",))
    ident, path, _ = encrypted_recording(portal)
    raw = bytearray(path.read_bytes())
    raw[-30] ^= 1  # the last chunk: the reader checks it as soon as the file is opened
    path.write_bytes(bytes(raw))
    client = PortalClient(portal_port(portal))
    client.sign_in("ray")
    answer = client.get(f"/recordings/{ident}/audio")
    assert answer.status == 500
    assert b"RIFF" not in answer.body


@pytest.mark.parametrize("law", ["ulaw", "alaw"])
def test_an_encrypted_g711_recording_plays_as_pcm_without_a_file_on_disk(
        portal: Recorder, law: str) -> None:
    from recorder.codecs import g711  # noqa: PLC0415
    from recorder.codecs.wav import AlawWavWriter, UlawWavWriter, wav_header  # noqa: PLC0415

    assert portal.store is not None
    assert portal._master_key is not None
    add_user(portal, "gus", ("ALLOWVIEWALLRECORDS",))
    recordings = portal.config.storage.recordings_dir
    path = recordings / "portal" / f"1002-{law}.wav"
    path.parent.mkdir(parents=True, exist_ok=True)
    audio = (np.sin(np.arange(8000 * 3) / 4.0) * 12000).astype(np.int16)
    writer_class = UlawWavWriter if law == "ulaw" else AlawWavWriter
    writer = writer_class(start_sealed(path, path.open("xb"), portal._master_key,  # type: ignore[arg-type]
                                       prologue=58), 8000)
    writer.write(audio)
    writer.close()
    pcm = g711.decode(g711.encode(audio, law), law).astype("<i2").tobytes()  # type: ignore[arg-type]
    expected = wav_header(8000, 1, len(pcm)) + pcm
    start = time.time() - 60
    store = portal.store.recordings
    ident = store.insert_recording(NewRecording(
        device_id="1002", call_instance="", channel=0, filename=str(path),
        media_format=f"wav-{law}", sample_rate=8000, start_time=start, core_ident=1, meta={},
        keep_days=None, agent_id=-1))
    store.finish_recording(ident, FinishedRecording(
        stop_time=start + 3, duration=3.0, audio_size=path.stat().st_size, audio_hash="",
        stop_reason="callstop"))
    client = PortalClient(portal_port(portal))
    client.sign_in("gus")
    whole = client.get(f"/recordings/{ident}/audio")
    assert (whole.status, whole.headers["Content-Type"]) == (200, "audio/wav")
    assert whole.body == expected
    for first, last in ((1000, 1999), (45, 50), (16400, 33000), (0, 43), (43, 44)):
        seek = client.get(f"/recordings/{ident}/audio", Range=f"bytes={first}-{last}")
        assert seek.status == 206
        assert seek.body == expected[first:last + 1], (first, last)
    tail = client.get(f"/recordings/{ident}/audio", Range="bytes=-101")
    assert tail.body == expected[-101:]
    # No rendition was made: nothing of the call in clear on disk.
    assert not list((portal.config.storage.data_dir / "tmp" / "portal").glob("play-*"))
