"""Encrypted MP3 and VOX recordings, and what reads or rewrites any encrypted one in the
recorder's own process (docs/encryption.md): written as recorderd writes them, they hold no
audio in clear and decrypt to what ffmpeg and sox play; a crash, a full disk and a blackout
silenced at the close leave them encrypted and whole; after-call encoding, exports, e-mail
attachments and the portal's renditions never put their audio on disk in clear."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt
import pytest

from recorder.codecs.formats import AudioWriter, open_writer
from recorder.codecs.stored import install_opener, open_stored
from recorder.crypt.access import install, open_plain
from recorder.crypt.keys import MasterKey, key_path, read_wrapped
from recorder.crypt.sealed import HEADER_BYTES, parse_header
from recorder.recording.files import encrypted_file
from recorder.recording.recovery import repair_file
from tests.helpers.audio import ffmpeg_decode, ffprobe, run
from tests.helpers.exports import dominant_hz

RATE = 8000
SECONDS = 4.0
TONE = np.rint(8000 * np.sin(2 * np.pi * 440 * np.arange(round(RATE * SECONDS)) / RATE)
               ).astype(np.int16)
FORMATS = [("mp3", {}), ("vox", {"rate": 8000})]


@pytest.fixture
def master() -> Iterator[MasterKey]:
    key = MasterKey(os.urandom(32))
    install([key])  # as recorderd does: every reader of recordings decrypts with it
    try:
        yield key
    finally:
        install_opener(None)


def record(path: Path, master: MasterKey, fmt: str, options: dict[str, Any], *,
           channels: int = 1, audio: npt.NDArray[np.int16] = TONE,
           snapshots: list[bytes] | None = None) -> AudioWriter:
    """``audio`` recorded into ``path`` as recorderd records it with storage.encrypt: written
    in 0.1 s pieces, synced every 0.5 s; the file's bytes after each sync go to ``snapshots``
    (what a kill -9 then leaves). Returns the closed writer."""
    file = encrypted_file(path, path.open("xb"), master, fmt=fmt, rate=RATE,
                                     sides=channels, options=options)
    writer = open_writer(fmt, file, RATE, channels, **options)
    block = audio if channels == 1 else np.stack([audio, audio // 2], axis=1)
    try:
        for at in range(0, len(block), RATE // 10):
            writer.write(block[at:at + RATE // 10])
            if (at + RATE // 10) % (RATE // 2) == 0:
                writer.sync()
                if snapshots is not None:
                    snapshots.append(path.read_bytes())
    finally:
        writer.close()  # after a full disk: cut to what is whole, then the error again
    return writer


def decrypted(path: Path, master: MasterKey, out: Path) -> Path:
    with open_plain(path, [master]) as plain:
        out.write_bytes(plain.read())
    return out


def played(path: Path, fmt: str) -> npt.NDArray[np.int16]:
    """What ffmpeg (MP3) or sox (VOX) make of a plain file."""
    if fmt == "vox":
        wav = path.with_suffix(".wav")
        run("sox", "-t", "vox", "-r", str(RATE), path, "-b", "16", wav)
        return ffmpeg_decode(wav)
    return ffmpeg_decode(path, channels=int(ffprobe(path)["channels"]))


def clear_audio_in(raw: bytes, plain: bytes) -> bool:
    """Whether any 64 bytes of the plain file's audio are in ``raw``."""
    return any(plain[at:at + 64] in raw for at in range(len(plain) // 3, len(plain) - 64, 997))


@pytest.mark.parametrize(("fmt", "options"), FORMATS)
@pytest.mark.parametrize("channels", [1, 2])
def test_an_encrypted_mp3_or_vox_holds_no_clear_audio_and_plays_once_decrypted(
        tmp_path: Path, master: MasterKey, fmt: str, options: dict[str, Any],
        channels: int) -> None:
    path = tmp_path / f"call.{fmt}"
    writer = record(path, master, fmt, options, channels=channels)
    raw = path.read_bytes()
    assert raw[:8] == b"RCRDSEAL"
    assert key_path(path).is_file()
    plain = decrypted(path, master, tmp_path / f"plain.{fmt}")
    assert not clear_audio_in(raw, plain.read_bytes())
    samples = played(plain, fmt)
    assert len(samples) / RATE == pytest.approx(SECONDS, abs=0.08)
    assert len(samples) == pytest.approx(writer.frames, abs=RATE // 10)
    assert dominant_hz(samples, RATE) == pytest.approx(440, abs=5)
    # Each sync seals whole chunks: the writer's bytes per sync decide the chunk size.
    geometry, _ = parse_header(raw[:HEADER_BYTES], str(path))
    assert geometry.chunk == (4096 if fmt == "mp3" else 4000)
    assert geometry.prologue == (216 if fmt == "mp3" else 0)


@pytest.mark.parametrize(("fmt", "options"), FORMATS)
def test_a_crashed_encrypted_mp3_or_vox_is_repaired_to_every_whole_chunk(
        tmp_path: Path, master: MasterKey, fmt: str, options: dict[str, Any]) -> None:
    """What kill -9 leaves (the file as of a sync, and the same with the tail's last write
    torn): recovery keeps every chunk that authenticates, an MP3 ends on a whole frame with a
    tag counting its frames, and what ffmpeg or sox play is the call up to there."""
    snapshots: list[bytes] = []
    record(tmp_path / f"whole.{fmt}", master, fmt, options, snapshots=snapshots)
    sidecar = key_path(tmp_path / f"whole.{fmt}").read_text()
    state = snapshots[4]  # 2.5 s in
    for name, raw in (("synced", state), ("torn", state[:-7])):
        path = tmp_path / f"{name}.{fmt}"
        path.write_bytes(raw)
        key_path(path).write_text(sidecar)
        repair_file(path, fmt, RATE, 1, options)
        with open_plain(path, [master]) as strict:  # whole again: strict reading works
            strict.read()
        samples = played(decrypted(path, master, tmp_path / f"{name}-plain.{fmt}"), fmt)
        seconds = len(samples) / RATE
        # Synced: all 2.5 s, but what the MP3 encoder still held (its delay and a frame or
        # two); torn: a chunk less at most (4000 bytes: 0.5 s of VOX, 2 s of this MP3).
        held = 0.4 if fmt == "mp3" else 0.0
        lost = {"mp3": 2.0, "vox": 0.5}[fmt] if name == "torn" else 0.0
        assert 2.5 - held - lost <= seconds <= 2.6, (name, seconds)
        assert dominant_hz(samples[:RATE], RATE) == pytest.approx(440, abs=5)


def test_an_encrypted_mp3_cut_by_a_full_disk_ends_on_a_whole_frame(
        tmp_path: Path, master: MasterKey, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "full.mp3"
    real = os.pwritev
    room = [5_000]  # bytes the disk still takes: 2.4 s of 16 kbit/s

    def pwritev(fd: int, buffers: list[Any], offset: int) -> int:
        if os.fstat(fd).st_size + sum(len(memoryview(b)) for b in buffers) > room[0]:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, buffers, offset)

    monkeypatch.setattr(os, "pwritev", pwritev)
    with pytest.raises(OSError, match="No space"):
        record(path, master, "mp3", {})
    monkeypatch.setattr(os, "pwritev", real)
    with open_plain(path, [master]) as strict:
        data = strict.read()
    plain = tmp_path / "full-plain.mp3"
    plain.write_bytes(data)
    # A whole number of 8 kHz mono frames (144 bytes at 16 kbit/s) after the 216-byte tag,
    # which tells the decoder to play them less the encoder's and the decoder's delays.
    frames, rest = divmod(len(data) - 216, 144)
    assert rest == 0
    assert frames > 10
    samples = played(plain, "mp3")
    assert len(samples) == frames * 576 - 576 - 529
    assert dominant_hz(samples, RATE) == pytest.approx(440, abs=5)


@pytest.mark.parametrize(("fmt", "options"), FORMATS)
def test_a_blackout_in_an_encrypted_mp3_or_vox_is_silenced_in_a_new_encrypted_file(
        tmp_path: Path, master: MasterKey, fmt: str, options: dict[str, Any]) -> None:
    """At its close a live MP3 or VOX is re-encoded with the blackout silent: encrypted as it
    is written, under its own key, so its key beside it and in its row stay true."""
    from recorder.recording.blackouts import apply_pending, write_pending  # noqa: PLC0415

    path = tmp_path / f"call.{fmt}"
    record(path, master, fmt, options)
    sidecar = key_path(path).read_text()
    write_pending(path, fmt, [(RATE, 2 * RATE)], options)  # 1 s to 2 s, as a crash leaves it
    assert apply_pending(path)
    assert path.read_bytes()[:8] == b"RCRDSEAL"
    assert key_path(path).read_text() == sidecar
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"call.{fmt}", f"call.{fmt}.key"]
    samples = played(decrypted(path, master, tmp_path / f"plain.{fmt}"), fmt)
    inside = samples[RATE + RATE // 10:2 * RATE - RATE // 10]
    assert np.abs(inside.astype(np.int32)).max() < 200  # decoders ring a little at the edges
    assert dominant_hz(samples[2 * RATE + 800:], RATE) == pytest.approx(440, abs=5)


def test_after_call_encoding_of_an_encrypted_wav_writes_an_encrypted_mp3(
        tmp_path: Path, master: MasterKey) -> None:
    from recorder.crypt.keyring import KeyRing  # noqa: PLC0415
    from recorder.recording.transcode import transcode_file  # noqa: PLC0415

    wav = tmp_path / "call.wav"
    record(wav, master, "wav", {})
    done: list[tuple[Path, Path, int, str]] = []
    seen: list[str] = []

    def observed(*args: Any) -> None:
        done.append(args)  # type: ignore[arg-type]
        seen.extend(sorted(p.name for p in tmp_path.iterdir()))

    mp3 = transcode_file(wav, "mp3", observed, keys=KeyRing.of([master]))
    assert mp3 == tmp_path / "call.mp3"
    # While its row was pointed at it both files were there, each with its own key.
    assert seen == ["call.mp3", "call.mp3.key", "call.wav", "call.wav.key"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["call.mp3", "call.mp3.key"]
    raw = mp3.read_bytes()
    assert raw[:8] == b"RCRDSEAL"
    assert done[0][2] == len(raw)
    assert read_wrapped(mp3).key_id == master.id
    samples = played(decrypted(mp3, master, tmp_path / "plain.mp3"), "mp3")
    assert len(samples) / RATE == pytest.approx(SECONDS, abs=0.08)
    assert dominant_hz(samples, RATE) == pytest.approx(440, abs=5)


@pytest.mark.parametrize(("fmt", "options"), [*FORMATS, ("wav", {})])
def test_exports_and_attachments_of_an_encrypted_recording_are_encrypted_on_disk(
        tmp_path: Path, master: MasterKey, fmt: str, options: dict[str, Any]) -> None:
    """Every export (the WebAPI's, ZIP and combined ones, the portal's downloads and the
    e-mail's attachments) of an encrypted recording is a work file encrypted under a key this
    process holds in memory; read through the recorder it is the audio."""
    from dataclasses import replace  # noqa: PLC0415
    from email import message_from_bytes  # noqa: PLC0415
    from email.headerregistry import Address  # noqa: PLC0415
    from email.message import EmailMessage  # noqa: PLC0415
    from email.policy import default  # noqa: PLC0415

    from recorder.archive.export import export_combined, export_recording, export_zip  # noqa: PLC0415
    from recorder.archive.mailer import Attachment, build_message  # noqa: PLC0415
    from tests.test_export import stored_row  # noqa: PLC0415

    path = tmp_path / f"rec.{fmt}"  # stored_row makes a call.wav of its own
    record(path, master, fmt, options)
    row = replace(stored_row(tmp_path), filename=str(path), media_format=fmt,
                  duration=SECONDS)
    work = tmp_path / "work"
    work.mkdir()
    made = [export_recording(row, "mp3", work / "one.mp3"),
            export_recording(row, fmt, work / f"same.{fmt}"),
            export_combined([row, row], "wav", work / "two.wav"),
            export_zip([row], "wav", work / "all.zip", work)]
    for each in made:
        assert each.read_bytes()[:8] == b"RCRDSEAL", each
    assert sorted(p.name for p in work.iterdir()) == sorted(p.name for p in made)
    samples = played(_plain_copy(made[0], tmp_path / "one.mp3"), "mp3")
    assert dominant_hz(samples, RATE) == pytest.approx(440, abs=5)
    combined = ffmpeg_decode(_plain_copy(made[2], tmp_path / "two.wav"))
    assert len(combined) / RATE == pytest.approx(2 * SECONDS, abs=0.2)
    import zipfile  # noqa: PLC0415

    with zipfile.ZipFile(_plain_copy(made[3], tmp_path / "all.zip")) as archive:
        (entry,) = archive.namelist()
        (tmp_path / "in-zip.wav").write_bytes(archive.read(entry))
    assert dominant_hz(ffmpeg_decode(tmp_path / "in-zip.wav"), RATE) == pytest.approx(440, abs=5)
    message = build_message(Address(addr_spec="r@example.org"),
                            [Address(addr_spec="a@example.org")], "calls", "attached",
                            [Attachment(made[0], "call.mp3", "audio/mpeg")])
    parsed = message_from_bytes(message.as_bytes(), policy=default)
    assert isinstance(parsed, EmailMessage)
    attached = next(parsed.iter_attachments()).get_payload(decode=True)
    assert attached == _plain_copy(made[0], tmp_path / "x.mp3").read_bytes()


def _plain_copy(work_file: Path, out: Path) -> Path:
    with open_stored(work_file) as plain:
        out.write_bytes(plain.read())
    return out


def test_a_work_file_opens_for_nobody_but_the_process_that_made_it(
        tmp_path: Path, master: MasterKey) -> None:
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    from recorder.crypt.workfiles import seal_work_file  # noqa: PLC0415

    path = tmp_path / "work.wav"
    sealed: BinaryIO = seal_work_file(path.open("wb"))  # type: ignore[assignment]
    sealed.write(b"RIFF....WAVE" + bytes(5000))
    sealed.close()
    with open_stored(path) as plain:
        assert plain.read(12) == b"RIFF....WAVE"
    assert not key_path(path).exists()  # no key beside it, ever
    other = subprocess.run(
        [sys.executable, "-c", "import sys; from pathlib import Path; "
         "from recorder.crypt.access import install, open_plain; "
         f"open_plain(Path({str(path)!r}), [])"], capture_output=True, text=True, check=False)
    assert other.returncode != 0
    assert "is missing" in other.stderr


def test_a_reload_waits_for_the_files_still_wrapped_by_the_key_before(tmp_path: Path) -> None:
    """A rotation's reload: new files get the new key at once; the ring says it is drained
    only once the file begun under the old key has its key beside it and in its row."""
    import threading  # noqa: PLC0415

    from recorder.crypt.keyring import KeyRing, new_key_path  # noqa: PLC0415
    from recorder.crypt.keys import create_master_key  # noqa: PLC0415

    key_file = tmp_path / "master.key"
    old = create_master_key(key_file)
    ring = KeyRing(key_file)
    ring.load()
    began, finish = threading.Event(), threading.Event()
    used: list[str] = []

    def making_a_file() -> None:
        with ring.sealing() as master:
            used.append(master.id)
            began.set()
            finish.wait(10)

    maker = threading.Thread(target=making_a_file)
    maker.start()
    began.wait(10)
    new = create_master_key(new_key_path(key_file))
    assert "wrapped by master key " + new.id in ring.reload()
    assert [k.id for k in ring.opening] == [new.id, old.id]
    with ring.sealing() as master:
        assert master.id == new.id  # a file begun after the reload
    assert not ring.wait_drained(0.2)  # the one begun before is still being made
    finish.set()
    maker.join(10)
    assert ring.wait_drained(5)
    assert used == [old.id]


def test_a_rows_key_that_is_not_the_files_is_not_restored(
        tmp_path: Path, master: MasterKey) -> None:
    from recorder.crypt.access import restore_key  # noqa: PLC0415
    from recorder.crypt.keys import CryptKeyError  # noqa: PLC0415

    mine, other = tmp_path / "a.vox", tmp_path / "b.vox"
    record(mine, master, "vox", {"rate": 8000})
    record(other, master, "vox", {"rate": 8000})
    own, others = key_path(mine).read_text(), key_path(other).read_text()
    key_path(mine).unlink()
    with pytest.raises(CryptKeyError, match="not restored"):
        restore_key(mine, others, [master])
    assert not key_path(mine).exists()
    assert "restored from the row" in restore_key(mine, own, [master])
    assert key_path(mine).read_text() == own
    assert "left as it is" in restore_key(mine, own, [master])


def test_an_encrypted_after_call_encoding_cut_short_leaves_neither_part_nor_key(
        tmp_path: Path, master: MasterKey) -> None:
    """What a crash in the middle of an encrypted after-call encoding leaves (the half-written
    MP3 and its key) is removed at the next start; the WAV is encoded again."""
    from recorder.recording.transcode import find_unfinished  # noqa: PLC0415

    wav = tmp_path / "call.wav"
    record(wav, master, "wav", {})
    part = tmp_path / "call.mp3.part"
    record(part, master, "mp3", {})
    assert key_path(part).is_file()
    assert find_unfinished(tmp_path, "mp3") == [wav]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["call.wav", "call.wav.key"]
