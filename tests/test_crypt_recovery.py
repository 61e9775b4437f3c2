"""Recovery of encrypted WAVs a crash left open (recorder/recording/recovery.py repair_wav with
the key): PCM and G.711, the file as a kill -9 leaves it after a sync, and with its tail torn;
the repaired file decrypts to a WAV whose header counts every whole chunk's audio."""

from __future__ import annotations

import errno
import io
import os
import wave
from pathlib import Path

import numpy as np
import pytest
import soundfile

from recorder.codecs import g711
from recorder.codecs.wav import G711_HEADER_BYTES, AlawWavWriter, UlawWavWriter, WavWriter
from recorder.codecs.wav import HEADER_BYTES as PCM_HEADER
from recorder.crypt.access import open_plain, start_sealed
from recorder.crypt.keys import MasterKey
from recorder.crypt.sealed import DEFAULT_CHUNK
from recorder.errors import CodecError
from recorder.recording.recovery import repair_wav

AUDIO = (np.sin(np.arange(8000 * 5) / 5.0) * 9000).astype(np.int16)  # 5 s at 8 kHz
FORMATS = [(WavWriter, PCM_HEADER, 2), (UlawWavWriter, G711_HEADER_BYTES, 1),
           (AlawWavWriter, G711_HEADER_BYTES, 1)]


def crashed(tmp_path: Path, writer_class: type[WavWriter], header: int, master: MasterKey,
            seconds: float) -> tuple[Path, bytes]:
    """An encrypted WAV as kill -9 leaves it ``seconds`` into the call, just after a sync;
    what a plain writer would have written of it."""
    path = tmp_path / f"call-{writer_class.__name__}.wav"
    writer = writer_class(start_sealed(path, path.open("xb"), master,  # type: ignore[arg-type]
                                       prologue=header), 8000)
    frames = int(seconds * 8000)
    for at in range(0, frames, 400):
        writer.write(AUDIO[at:min(at + 400, frames)])
        if (at // 400) % 10 == 9:
            writer.sync()
    writer.sync()
    left = path.read_bytes()  # the process dies here: nothing more reaches the file
    writer.close()
    path.write_bytes(left)
    plain = io.BytesIO()
    reference = writer_class(plain, 8000)
    reference.write(AUDIO[:frames])
    reference.sync()
    return path, plain.getvalue()


@pytest.mark.parametrize(("writer_class", "header", "width"), FORMATS)
def test_a_crashed_encrypted_wav_is_repaired_to_all_it_held(
        tmp_path: Path, writer_class: type[WavWriter], header: int, width: int) -> None:
    master = MasterKey(os.urandom(32))
    path, expected = crashed(tmp_path, writer_class, header, master, 3.05)
    repair_wav(path, [master])
    with open_plain(path, [master]) as plain:
        repaired = plain.read()
    assert repaired == expected  # every frame, and a header counting them
    if writer_class is WavWriter:
        with wave.open(io.BytesIO(repaired)) as w:
            assert w.getnframes() == int(3.05 * 8000)


@pytest.mark.parametrize(("writer_class", "header", "width"), FORMATS)
def test_a_torn_tail_loses_only_the_tail(tmp_path: Path, writer_class: type[WavWriter],
                                         header: int, width: int) -> None:
    master = MasterKey(os.urandom(32))
    path, expected = crashed(tmp_path, writer_class, header, master, 4.3)
    raw = bytearray(path.read_bytes())
    raw[-5] ^= 0xFF  # the tail's record, torn by the crash
    path.write_bytes(bytes(raw))
    repair_wav(path, [master])
    with open_plain(path, [master]) as plain:
        repaired = plain.read()
    whole = header + ((len(expected) - header) // DEFAULT_CHUNK) * DEFAULT_CHUNK
    frames = (whole - header) // width
    assert len(repaired) == whole
    assert repaired[header:] == expected[header:whole]
    if writer_class is WavWriter:
        with wave.open(io.BytesIO(repaired)) as w:
            assert w.getnframes() == frames
    else:
        law: g711.Law = "ulaw" if writer_class is UlawWavWriter else "alaw"
        decoded = g711.decode(np.frombuffer(repaired[header:], dtype=np.uint8), law)
        assert len(decoded) == frames


def test_without_the_key_repair_says_so(tmp_path: Path) -> None:
    master = MasterKey(os.urandom(32))
    path, _ = crashed(tmp_path, WavWriter, PCM_HEADER, master, 1.0)
    with pytest.raises(CodecError, match="no key"):
        repair_wav(path, [])


def test_a_full_disk_closes_an_encrypted_wav_whole(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The disk refuses a write midway (ENOSPC): close() raises it, as for a plain WAV, and
    leaves a file that decrypts strictly, its header counting the whole chunks it kept."""
    master = MasterKey(os.urandom(32))
    path = tmp_path / "full.wav"
    room = [60_000]  # bytes the disk still takes
    real_pwritev = os.pwritev

    def pwritev(fd: int, parts: list[bytes], offset: int) -> int:
        end = offset + sum(len(p) for p in parts)
        if end > room[0]:
            data = b"".join(parts)[:max(0, room[0] - offset)]
            written = os.pwrite(fd, data, offset) if data else 0
            room[0] = -1  # full from now on
            if not written:
                raise OSError(errno.ENOSPC, "No space left on device")
            return written
        return real_pwritev(fd, parts, offset)

    monkeypatch.setattr(os, "pwritev", pwritev)
    real_pwrite = os.pwrite
    monkeypatch.setattr(os, "pwrite", lambda fd, data, offset: (
        real_pwrite(fd, data, offset) if room[0] >= 0 else
        (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left on device"))))
    writer = WavWriter(start_sealed(path, path.open("xb"), master,  # type: ignore[arg-type]
                                    prologue=PCM_HEADER), 8000)
    failure = None
    for n, at in enumerate(range(0, len(AUDIO), 400)):
        try:
            writer.write(AUDIO[at:at + 400])
            if n % 10 == 9:
                writer.sync()
        except OSError as exc:
            failure = exc
            break
    assert failure is not None
    assert failure.errno == errno.ENOSPC
    with pytest.raises(OSError, match="No space"):
        writer.close()
    with open_plain(path, [master]) as plain:
        kept = plain.read()  # strict: every chunk authenticates, the last is flagged last
    with wave.open(io.BytesIO(kept)) as w:
        frames = w.getnframes()
        assert frames == writer.frames
        assert np.array_equal(np.frombuffer(w.readframes(frames), dtype="<i2"),
                              AUDIO[:frames])
    assert 0 < frames * 2 <= 60_000


@pytest.mark.parametrize("fmt", ["wav", "mp3", "cav"])
def test_export_refuses_a_flipped_byte_and_a_cut_file_and_needs_the_key(
        tmp_path: Path, fmt: str) -> None:
    """Export (the WebAPI's, the e-mail's, the portal's downloads) of an encrypted recording:
    the audio with the key, in a work file encrypted on disk; a clear error, and no file, for a
    damaged one or without the key."""
    from dataclasses import replace  # noqa: PLC0415

    from recorder.archive.export import export_recording  # noqa: PLC0415
    from recorder.codecs.stored import install_opener, open_stored  # noqa: PLC0415
    from recorder.crypt.access import install  # noqa: PLC0415
    from tests.test_export import stored_row  # noqa: PLC0415

    master = MasterKey(os.urandom(32))
    path, plain = crashed(tmp_path, WavWriter, PCM_HEADER, master, 2.0)
    repair_wav(path, [master])
    row = replace(stored_row(tmp_path), filename=str(path))
    out = tmp_path / f"out.{fmt}"
    # No key in this process to begin with: an in-process recorder of an earlier test in the
    # same worker may have left its own installed (a stress run found one).
    install([])
    try:
        with pytest.raises(CodecError, match="no key"):
            export_recording(row, fmt, out)
        assert not out.exists()
        install([master])
        export_recording(row, fmt, out)
        on_disk = out.read_bytes()
        assert on_disk.startswith(b"RCRDSEAL")  # a work file, encrypted on disk
        assert plain[PCM_HEADER + 1000:PCM_HEADER + 1064] not in on_disk
        with open_stored(out) as made:  # this process holds its key, in memory only
            exported = made.read()
        if fmt == "wav":
            assert exported == plain
        elif fmt == "mp3":
            decoded, _ = soundfile.read(io.BytesIO(exported), dtype="int16")
            assert len(decoded) == pytest.approx(len(plain[PCM_HEADER:]) // 2, abs=1200)
        out.unlink()
        raw = path.read_bytes()
        for damaged, message in ((raw[:9000] + bytes([raw[9000] ^ 1]) + raw[9001:],
                                  "does not authenticate"),
                                 (raw[:20000], "cut")):
            path.write_bytes(damaged)
            with pytest.raises(CodecError, match=message):
                export_recording(row, fmt, out)
            assert not out.exists()
    finally:
        install_opener(None)


def test_without_the_key_a_crashed_recording_waits_for_a_start_that_has_it(
        tmp_path: Path) -> None:
    from recorder.codecs.stored import install_opener  # noqa: PLC0415
    from recorder.crypt.access import install  # noqa: PLC0415
    from recorder.recording.journal import Journal, read_journal  # noqa: PLC0415
    from recorder.recording.recovery import recover  # noqa: PLC0415
    from recorder.store.records import NewRecording  # noqa: PLC0415
    from recorder.store.sqlite import SqliteStore  # noqa: PLC0415

    master = MasterKey(os.urandom(32))
    path, expected = crashed(tmp_path, WavWriter, PCM_HEADER, master, 2.5)
    held = path.read_bytes()
    store = SqliteStore(tmp_path / "db.sqlite3")
    store.open()
    journal = Journal(tmp_path)
    journal.open()
    row = NewRecording(device_id="1001", call_instance="1", channel=0, filename=str(path),
                       media_format="wav", sample_rate=8000, start_time=1_700_000_000.0,
                       core_ident=1)
    key = journal.begin(path=path, fmt="wav", sample_rate=8000, channels=1, row=row,
                        record_id=None)
    journal.close()
    try:
        journal = Journal(tmp_path)
        (failed,) = recover(store, journal, journal.open())  # no key installed
        journal.close()
        assert failed.result == "failed"
        assert list(read_journal(journal.path).open) == [key]
        assert path.read_bytes() == held  # untouched
        install([master])
        journal = Journal(tmp_path)
        (done,) = recover(store, journal, journal.open())
        journal.close()
        assert done.result == "completed"
        assert done.duration == pytest.approx(2.5)
        assert not read_journal(journal.path).open
        with open_plain(path, [master]) as plain:
            assert plain.read() == expected
    finally:
        install_opener(None)
        store.close()
