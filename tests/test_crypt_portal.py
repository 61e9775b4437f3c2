"""An encrypted recording in the web portal: the player's Range requests and the download get
the plain audio, decrypted as it is sent (api/portal/plainmedia.py); never the ciphertext. What
the portal makes of one (a rendition, a side, a download in another format) is encrypted on
disk too."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
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
    assert recorder.keys is not None
    assert recorder.keys.current is not None
    path = recorder.config.storage.recordings_dir / "portal" / f"1001-{time.monotonic_ns()}.wav"
    path.parent.mkdir(parents=True, exist_ok=True)
    audio = (np.sin(np.arange(round(seconds * 8000)) / 3.0) * 9000).astype(np.int16)
    writer = WavWriter(start_sealed(path, path.open("xb"), recorder.keys.current,  # type: ignore[arg-type]
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
    assert portal.keys is not None
    assert portal.keys.current is not None
    add_user(portal, "gus", ("ALLOWVIEWALLRECORDS",))
    recordings = portal.config.storage.recordings_dir
    path = recordings / "portal" / f"1002-{law}.wav"
    path.parent.mkdir(parents=True, exist_ok=True)
    audio = (np.sin(np.arange(8000 * 3) / 4.0) * 12000).astype(np.int16)
    writer_class = UlawWavWriter if law == "ulaw" else AlawWavWriter
    writer = writer_class(start_sealed(path, path.open("xb"), portal.keys.current,  # type: ignore[arg-type]
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


def _stored(portal: Recorder, fmt: str, audio: npt.NDArray[np.int16], name: str,
            options: dict[str, Any] | None = None) -> tuple[int, Path]:
    """A complete recording of ``audio`` stored as recorderd stores it with storage.encrypt;
    (RECORDID, file)."""
    from recorder.codecs.formats import open_writer  # noqa: PLC0415
    from recorder.recording.files import encrypted_file  # noqa: PLC0415

    assert portal.store is not None
    assert portal.keys is not None
    assert portal.keys.current is not None
    channels = 1 if audio.ndim == 1 else audio.shape[1]
    path = portal.config.storage.recordings_dir / "portal" / f"{name}.{fmt}"
    path.parent.mkdir(parents=True, exist_ok=True)
    file = encrypted_file(path, path.open("xb"), portal.keys.current, fmt=fmt,
                                     rate=8000, sides=channels, options=options or {})
    writer = open_writer(fmt, file, 8000, channels, **(options or {}))
    writer.write(audio)
    writer.close()
    start = time.time() - 60
    store = portal.store.recordings
    ident = store.insert_recording(NewRecording(
        device_id="1003", call_instance="", channel=0, filename=str(path), media_format=fmt,
        sample_rate=8000, start_time=start, core_ident=1, meta={}, keep_days=None,
        agent_id=-1))
    seconds = len(audio) / 8000
    store.finish_recording(ident, FinishedRecording(
        stop_time=start + seconds, duration=seconds, audio_size=path.stat().st_size,
        audio_hash="", stop_reason="callstop"))
    return ident, path


def _tone(hz: float, seconds: float = 3.0) -> npt.NDArray[np.int16]:
    return np.rint(9000 * np.sin(2 * np.pi * hz * np.arange(round(8000 * seconds)) / 8000)
                   ).astype(np.int16)


def _no_clear_file_in(portal: Recorder) -> None:
    """Every file the portal made (renditions, sides, downloads) is encrypted on disk."""
    for made in (portal.config.storage.data_dir / "tmp").rglob("*"):
        if made.is_file():
            assert made.read_bytes()[:8] == b"RCRDSEAL", made


def test_encrypted_vox_mp3_and_a_stereo_recording_sides_play_from_encrypted_files(
        portal: Recorder, tmp_path: Path) -> None:
    """A VOX recording plays from a rendition, a stereo one's sides from renditions of their
    own, an MP3 as it is stored: all encrypted on disk, decrypted as they are sent, with
    Range; what the browser gets is what ffmpeg plays."""
    from tests.helpers.audio import ffmpeg_decode  # noqa: PLC0415
    from tests.helpers.exports import dominant_hz  # noqa: PLC0415

    add_user(portal, "vi", ("ALLOWVIEWALLRECORDS", "ALLOWEXPORTDOWNLOAD"))
    vox, _ = _stored(portal, "vox", _tone(440), "vox", {"rate": 8000})
    mp3, _ = _stored(portal, "mp3", _tone(660), "mp3")
    stereo, _ = _stored(portal, "wav", np.stack([_tone(440), _tone(1000)], axis=1), "stereo")
    client = PortalClient(portal_port(portal))
    client.sign_in("vi")

    def heard(body: bytes, name: str) -> npt.NDArray[np.int16]:
        out = tmp_path / name
        out.write_bytes(body)
        return ffmpeg_decode(out)

    for ident, query, kind, name, hz in (
            (vox, "", "audio/wav", "vox.wav", 440), (mp3, "", "audio/mpeg", "mp3.mp3", 660),
            (stereo, "?side=left", "audio/wav", "left.wav", 440),
            (stereo, "?side=right", "audio/wav", "right.wav", 1000)):
        whole = client.get(f"/recordings/{ident}/audio{query}")
        assert (whole.status, whole.headers["Content-Type"]) == (200, kind), name
        samples = heard(whole.body, name)
        assert len(samples) / 8000 == pytest.approx(3.0, abs=0.1), name
        assert dominant_hz(samples, 8000) == pytest.approx(hz, abs=5), name
        seek = client.get(f"/recordings/{ident}/audio{query}", Range="bytes=5000-20999")
        assert (seek.status, seek.body) == (206, whole.body[5000:21000]), name
    converted = client.get(f"/recordings/{vox}/download?format=mp3")
    assert converted.status == 200
    assert dominant_hz(heard(converted.body, "download.mp3"), 8000) == pytest.approx(440, abs=5)
    peaks = client.get(f"/recordings/{stereo}/peaks")
    assert peaks.status == 200
    _no_clear_file_in(portal)
    plays = list((portal.config.storage.data_dir / "tmp").rglob("play-*"))
    assert len(plays) == 3  # the VOX's rendition and the two sides
