"""The keys and the engineer's commands for encrypted recordings, run as real processes:
``recorderctl key init|id|rotate``, ``recorderctl decrypt``, and recorderd refusing a bad
``storage.key_file`` (exit 78, naming the key)."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import numpy as np
import pytest

from recorder.codecs.wav import WavWriter
from recorder.crypt.access import start_sealed
from recorder.crypt.keys import load_master_key
from tests.helpers.ctl import recorderctl
from tests.helpers.recorders import BIN, write_toml

AUDIO = (np.sin(np.arange(8000 * 3) / 7.0) * 8000).astype(np.int16)


def encrypted_wav(key_file: Path, path: Path) -> bytes:
    """A 3 s WAV written encrypted, as recorderd writes it; the plain WAV it holds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sealed = start_sealed(path, path.open("xb"), load_master_key(key_file), prologue=44)
    writer = WavWriter(sealed, 8000)  # type: ignore[arg-type]
    for at in range(0, len(AUDIO), 400):
        writer.write(AUDIO[at:at + 400])
        if at % 4000 == 0:
            writer.sync()
    writer.close()
    plain = Path(str(path) + ".plain")
    plain_writer = WavWriter(plain.open("wb"), 8000)
    plain_writer.write(AUDIO)
    plain_writer.close()
    return plain.read_bytes()


def config(tmp_path: Path, key_file: Path, encrypt: bool = True) -> Path:
    return write_toml(tmp_path / "recorder.toml", f"""
[storage]
data_dir = "{tmp_path / 'data'}"
encrypt = {'true' if encrypt else 'false'}
key_file = "{key_file}"
""")


@pytest.mark.slow  # recorderctl as a process, three to nine times: a second or more of CPU
def test_key_init_id_and_decrypt(tmp_path: Path) -> None:
    key = tmp_path / "master.key"
    made = recorderctl("key", "init", "--key-file", key)
    assert made.returncode == 0, made.stderr
    assert key.stat().st_mode & 0o777 == 0o600
    assert len(key.read_bytes()) == 32
    assert "keep a copy offline" in made.stdout
    again = recorderctl("key", "init", "--key-file", key)
    assert again.returncode == 1
    assert "never overwritten" in again.stderr
    key_id = recorderctl("key", "id", "--key-file", key).stdout.strip()
    assert key_id == load_master_key(key).id

    recording = tmp_path / "data" / "recordings" / "a.wav"
    expected = encrypted_wav(key, recording)
    assert expected[44:1044] not in recording.read_bytes()  # no audio in clear
    out = tmp_path / "a-plain.wav"
    done = recorderctl("decrypt", recording, "-o", out, "--key-file", key)
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == expected
    info = subprocess.run(["soxi", "-D", str(out)], capture_output=True, text=True, check=True)
    assert float(info.stdout) == 3.0
    # Through the configuration's key, to standard output.
    piped = subprocess.run([str(BIN / "recorderctl"), "decrypt", str(recording), "--config",
                            str(config(tmp_path, key))], capture_output=True, check=False)
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout == expected


@pytest.mark.slow  # recorderctl as a process, three to nine times: a second or more of CPU
def test_decrypt_without_the_key_or_with_another_says_so(tmp_path: Path) -> None:
    key, other = tmp_path / "k1", tmp_path / "k2"
    recorderctl("key", "init", "--key-file", key)
    recorderctl("key", "init", "--key-file", other)
    recording = tmp_path / "a.wav"
    encrypted_wav(key, recording)
    out = tmp_path / "out.wav"
    missing = recorderctl("decrypt", recording, "-o", out, "--key-file", tmp_path / "nokey")
    assert missing.returncode == 1
    assert "cannot open" in missing.stderr
    assert "does not exist" in missing.stderr
    wrong = recorderctl("decrypt", recording, "-o", out, "--key-file", other)
    assert wrong.returncode == 1
    assert f"needs master key {load_master_key(key).id}" in wrong.stderr
    assert "Traceback" not in wrong.stderr + missing.stderr
    assert not out.exists()
    plain = recorderctl("decrypt", tmp_path / "a.wav.plain", "--key-file", key)
    assert plain.returncode == 2
    assert "not an encrypted recording" in plain.stderr


@pytest.mark.slow  # recorderctl as a process, three to nine times: a second or more of CPU
def test_decrypt_refuses_a_flipped_byte_and_a_cut_file(tmp_path: Path) -> None:
    key = tmp_path / "k"
    recorderctl("key", "init", "--key-file", key)
    recording = tmp_path / "a.wav"
    encrypted_wav(key, recording)
    raw = recording.read_bytes()
    out = tmp_path / "out.wav"
    recording.write_bytes(raw[:30000] + bytes([raw[30000] ^ 0x10]) + raw[30001:])
    flipped = recorderctl("decrypt", recording, "-o", out, "--key-file", key)
    assert flipped.returncode == 1
    assert "does not authenticate" in flipped.stderr
    assert not out.exists()
    recording.write_bytes(raw[:30000])
    cut = recorderctl("decrypt", recording, "-o", out, "--key-file", key)
    assert cut.returncode == 1
    assert "cut" in cut.stderr
    assert not out.exists()


@pytest.mark.slow  # recorderctl as a process, three to nine times: a second or more of CPU
def test_rotation_rewraps_file_keys_and_leaves_recordings_alone(tmp_path: Path) -> None:
    key = tmp_path / "master.key"
    recorderctl("key", "init", "--key-file", key)
    old_id = load_master_key(key).id
    recordings = tmp_path / "data" / "recordings"
    files = [recordings / "20261207" / "2001" / f"{n}.wav" for n in range(3)]
    expected = [encrypted_wav(key, f) for f in files]
    digests = [hashlib.sha256(f.read_bytes()).hexdigest() for f in files]
    cfg = config(tmp_path, key)

    done = recorderctl("key", "rotate", "--config", cfg)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "re-wrapped 3 file key(s)" in done.stdout
    new_id = load_master_key(key).id
    assert new_id != old_id
    retired = tmp_path / f"master.key.retired-{old_id}"
    assert load_master_key(retired).id == old_id
    assert [hashlib.sha256(f.read_bytes()).hexdigest() for f in files] == digests
    for f, plain in zip(files, expected, strict=True):
        assert new_id in Path(str(f) + ".key").read_text()
        out = f.with_suffix(".out")
        assert recorderctl("decrypt", f, "-o", out, "--config", cfg).returncode == 0
        assert out.read_bytes() == plain
        stale = recorderctl("decrypt", f, "-o", out, "--key-file", retired)
        assert stale.returncode == 1
        assert f"needs master key {new_id}" in stale.stderr
    # A new recording after the rotation is wrapped by the new key.
    late = recordings / "late.wav"
    assert encrypted_wav(key, late)
    assert recorderctl("decrypt", late, "-o", tmp_path / "late.out", "--config", cfg
                       ).returncode == 0


@pytest.mark.slow  # recorderctl as a process, three to nine times: a second or more of CPU
def test_a_rotation_cut_short_is_finished_by_running_it_again(tmp_path: Path) -> None:
    key = tmp_path / "master.key"
    recorderctl("key", "init", "--key-file", key)
    recordings = tmp_path / "data" / "recordings"
    files = [recordings / f"{n}.wav" for n in range(2)]
    for f in files:
        encrypted_wav(key, f)
    cfg = config(tmp_path, key)
    # Cut short after the new key was made and one file key re-wrapped: as a crash leaves it.
    assert recorderctl("key", "init", "--key-file", tmp_path / "master.key.new").returncode == 0
    from recorder.crypt.keys import read_wrapped, rewrap, write_wrapped  # noqa: PLC0415

    new = load_master_key(tmp_path / "master.key.new")
    write_wrapped(files[0], rewrap(read_wrapped(files[0]), load_master_key(key), new))
    done = recorderctl("key", "rotate", "--config", cfg)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "re-wrapped 1 file key(s)" in done.stdout
    assert load_master_key(key).id == new.id
    for f in files:
        assert recorderctl("decrypt", f, "-o", f.with_suffix(".out"), "--config", cfg
                           ).returncode == 0


@pytest.mark.process  # recorderd's exit status, seven times
def test_recorderd_refuses_a_key_file_it_cannot_use_naming_the_key(tmp_path: Path) -> None:
    key = tmp_path / "master.key"
    cases = {
        "does not exist": None,
        "holds 16 bytes": (b"k" * 16, 0o600),
        "readable or writable by others": (b"k" * 32, 0o644),
    }
    for problem, content in cases.items():
        key.unlink(missing_ok=True)
        if content is not None:
            key.write_bytes(content[0])
            key.chmod(content[1])
        done = subprocess.run([str(BIN / "recorderd"), "--config", str(config(tmp_path, key))],
                              capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 78, (problem, done.stderr)
        assert "storage.key_file:" in done.stderr
        assert problem in done.stderr
        checked = subprocess.run([str(BIN / "recorderd"), "--check-config", "--config",
                                  str(config(tmp_path, key))], capture_output=True, text=True,
                                 timeout=60, check=False)
        assert checked.returncode == 78
        assert problem in checked.stderr
    # Not loading the configuration, which recorderctl's offline commands do with the
    # service stopped (a systemd credential is gone then): `key id` names the key it is given.
    key.unlink()
    create = recorderctl("key", "init", "--config", config(tmp_path, key))
    assert create.returncode == 0, create.stderr
    no_key = write_toml(tmp_path / "nokey.toml", "[storage]\nencrypt = true\n")
    done = subprocess.run([str(BIN / "recorderd"), "--check-config", "--config", str(no_key)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 78
    assert "storage.key_file: required with storage.encrypt" in done.stderr
