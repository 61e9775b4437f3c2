"""CAV export: round trips with and without a password; a wrong password, a flipped byte, a
truncated or reordered file fail cleanly and leave nothing behind; ``recorderctl cav``."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from lxml import etree

from recorder.archive import cav
from recorder.codecs.formats import open_writer
from tests.helpers.audio import ffmpeg_decode, make_speech
from tests.helpers.ctl import recorderctl

FAST = 12  # scrypt N=2^12 where a test derives many keys; the default (2^17) is tested once
METADATA = {
    "RECORDID": "42", "DEVICEID": "1001", "ANI": "6145551212", "DNIS": "2012",
    "USER1": "Ümlaut & <not a tag>", "USER2": "bell\x07char", "odd key!": "kept",
}


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A three-second call stored as MP3, the way the recorder stores one."""
    directory = tmp_path_factory.mktemp("cav")
    speech = make_speech(directory)[:24000]
    path = directory / "1001-09-50-08.mp3"
    writer = open_writer("mp3", path.open("xb"), 8000)
    writer.write(speech)
    writer.close()
    return path


def export(tmp_path: Path, recording: Path, password: str | None, **options: int) -> Path:
    out = tmp_path / "export.cav"
    with out.open("wb") as f:
        cav.write_cav(f, recording, METADATA, password=password, **options)
    return out


def test_plain_round_trip(tmp_path: Path, recording: Path) -> None:
    path = export(tmp_path, recording, None)
    assert path.read_bytes().startswith(cav.MAGIC)
    assert not cav.is_encrypted(path)
    info = cav.read_cav(path)
    assert not info.encrypted
    expected = {k: v.replace("\x07", "\ufffd") for k, v in METADATA.items()}
    assert info.metadata == expected
    audio = info.audio
    assert (audio.format, audio.filename, audio.sample_rate, audio.channels, audio.frames) == (
        "mp3", recording.name, 8000, 1, 24000)
    assert audio.duration == 3.0
    root = etree.fromstring(info.xml)
    assert root.findtext("RECORDING/ANI") == "6145551212"
    assert root.find("RECORDING/FIELD").get("NAME") == "odd key!"  # type: ignore[union-attr]
    _, out = cav.extract_audio(path, tmp_path / "out.mp3")
    assert out.read_bytes() == recording.read_bytes()
    assert len(ffmpeg_decode(out)) == 24000


@pytest.mark.slow
def test_encrypted_round_trip_with_the_default_work_factor(tmp_path: Path,
                                                           recording: Path) -> None:
    path = export(tmp_path, recording, "test")
    assert cav.is_encrypted(path)
    assert recording.read_bytes()[1000:1100] not in path.read_bytes()  # not stored in clear
    info = cav.read_cav(path, "test")
    assert info.encrypted
    assert info.kdf == "scrypt N=2^17 r=8 p=1"
    assert info.metadata["DEVICEID"] == "1001"
    _, out = cav.extract_audio(path, tmp_path / "out.mp3", "test")
    assert out.read_bytes() == recording.read_bytes()


def test_a_wrong_or_missing_password_fails_cleanly(tmp_path: Path, recording: Path) -> None:
    path = export(tmp_path, recording, "correct horse", scrypt_log_n=FAST)
    for wrong in ("correct hors", "Correct horse", "", "correct horse "):
        with pytest.raises(cav.CavPasswordError, match="wrong password"):
            cav.extract_audio(path, tmp_path / "out.mp3", wrong)
    with pytest.raises(cav.CavPasswordError, match="password is needed"):
        cav.read_cav(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export.cav"]
    # Composed or decomposed, the same accented password opens the file.
    accented = export(tmp_path, recording, "caf\u00e9", scrypt_log_n=FAST)
    assert cav.read_cav(accented, "cafe\u0301").metadata["RECORDID"] == "42"


@pytest.mark.slow
@pytest.mark.parametrize("password", [None, "pw"])
def test_every_flipped_byte_is_detected(tmp_path: Path, recording: Path,
                                        password: str | None) -> None:
    path = export(tmp_path, recording, password, scrypt_log_n=FAST, segment_bytes=4096)
    original = path.read_bytes()
    header = cav.HEADER.size + (cav.CRYPTO.size if password else 0)
    rng = np.random.default_rng(11)
    positions = sorted({*range(header), *rng.integers(header, len(original), 150).tolist(),
                        len(original) - 1})
    damaged = tmp_path / "damaged.cav"
    for pos in positions:
        data = bytearray(original)
        data[pos] ^= 1 << int(rng.integers(8))
        damaged.write_bytes(data)
        with pytest.raises(cav.CavError):
            cav.extract_audio(damaged, tmp_path / "out.mp3", password)
        assert not (tmp_path / "out.mp3").exists()
        assert not (tmp_path / "out.mp3.part").exists()


def test_truncated_extended_or_reordered_files_are_detected(tmp_path: Path,
                                                            recording: Path) -> None:
    segment = 1024  # the smallest a reader accepts: several segments in a short recording
    path = export(tmp_path, recording, "pw", scrypt_log_n=FAST, segment_bytes=segment)
    original = path.read_bytes()
    start = cav.HEADER.size + cav.CRYPTO.size
    sealed = segment + cav.TAG_BYTES
    assert len(original) > start + 3 * sealed
    variants = {
        "cut at a segment boundary": original[:start + 2 * sealed],
        "cut mid-segment": original[:start + 2 * sealed + 100],
        "cut in the last tag": original[:-1],
        "header only": original[:start],
        "bytes appended": original + b"\0" * 20,
        "two segments swapped": (original[:start] + original[start + sealed:start + 2 * sealed]
                                 + original[start:start + sealed] + original[start + 2 * sealed:]),
    }
    for name, data in variants.items():
        damaged = tmp_path / "damaged.cav"
        damaged.write_bytes(data)
        with pytest.raises(cav.CavCorruptError) as caught:
            cav.read_cav(damaged, "pw")
        assert caught.value, name
    plain = export(tmp_path, recording, None)
    (tmp_path / "cut.cav").write_bytes(plain.read_bytes()[:-40])
    with pytest.raises(cav.CavCorruptError):
        cav.read_cav(tmp_path / "cut.cav")
    (tmp_path / "junk.cav").write_bytes(b"RIFF" + bytes(100))
    with pytest.raises(cav.CavCorruptError, match="not a CAV file"):
        cav.read_cav(tmp_path / "junk.cav")


def cav_command(*args: str | Path, password: str | None = None, cwd: Path | None = None,
        ) -> subprocess.CompletedProcess[str]:
    """``recorderctl cav ARGS``, given ``password`` the way a script gives it."""
    env = None if password is None else {"RECORDER_CAV_PASSWORD": password}
    return recorderctl("cav", *args, env=env, cwd=cwd)


@pytest.mark.slow
def test_recorderctl_cav_inspects_and_decrypts(tmp_path: Path, recording: Path) -> None:
    path = export(tmp_path, recording, "s3cret", scrypt_log_n=FAST)
    shown = cav_command("inspect", path, password="s3cret")
    assert shown.returncode == 0, shown.stderr
    assert "encrypted:  yes (AES-256-GCM, scrypt N=2^12 r=8 p=1)" in shown.stdout
    assert "audio:      mp3, 8000 Hz, 1 channel, 3.000 s (24000 frames)" in shown.stdout
    assert "ANI       6145551212" in shown.stdout
    xml = cav_command("inspect", "--xml", path, password="s3cret")
    assert etree.fromstring(xml.stdout.encode()).findtext("AUDIO/FORMAT") == "mp3"

    wrong = cav_command("inspect", path, password="guess")
    assert wrong.returncode == 1
    assert "wrong password" in wrong.stderr
    missing = cav_command("inspect", path)
    assert missing.returncode == 2
    assert "is encrypted" in missing.stderr
    assert cav_command("inspect").returncode == 2

    secret = tmp_path / "pw.txt"
    secret.write_text("s3cret\n", encoding="utf-8")
    out = tmp_path / "work"
    out.mkdir()
    done = cav_command("decrypt", path, "--password-file", secret, "--xml", out / "meta.xml",
                       cwd=out)
    assert done.returncode == 0, done.stderr
    assert (out / recording.name).read_bytes() == recording.read_bytes()  # its stored name
    assert etree.parse(out / "meta.xml").findtext("RECORDING/DEVICEID") == "1001"
    again = cav_command("decrypt", path, "--password-file", secret, cwd=out)
    assert again.returncode == 2  # will not overwrite without --force
    assert "exists" in again.stderr

    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    damaged = tmp_path / "damaged.cav"
    damaged.write_bytes(data)
    bad = cav_command("decrypt", damaged, "-o", out / "bad.mp3", password="s3cret")
    assert bad.returncode == 1
    assert "damaged" in bad.stderr
    assert not (out / "bad.mp3").exists()

    plain = tmp_path / "plain.cav"
    with plain.open("wb") as f:
        cav.write_cav(f, recording, {"RECORDID": "7"})
    assert cav_command("inspect", plain).returncode == 0  # no password needed, none asked for
