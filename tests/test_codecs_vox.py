"""VOX (Dialogic/OKI ADPCM): bit-exact with ``sox -D`` and libsndfile both ways, decoded to the
same samples by ffmpeg's independent adpcm_ima_oki decoder, live and batch encoding, 6 kHz."""

from __future__ import annotations

import errno
import io
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import soundfile

from recorder.codecs import vox
from recorder.codecs.convert import read_audio
from recorder.codecs.formats import open_writer
from recorder.codecs.resample import resample
from recorder.codecs.voxwriter import ROUND_MIN_WRITERS, VoxWriter, encode_pending
from tests.helpers.audio import ffmpeg_decode, make_speech, run, snr_db, write_wav

OKI_FFMPEG = ("-c:a", "adpcm_ima_oki", "-f", "s8", "-ac", "1")


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> npt.NDArray[np.int16]:
    return make_speech(tmp_path_factory.mktemp("speech"))


def sox_encode(tmp_path: Path, samples: npt.NDArray[np.int16], rate: int = 8000) -> bytes:
    source = write_wav(tmp_path / "sox-in.wav", samples, rate)
    # -D: sox would otherwise dither the 16-bit input down to the codec's 12 bits.
    return run("sox", "-D", source, "-t", "vox", "-")


def sox_decode(tmp_path: Path, data: bytes, rate: int = 8000) -> npt.NDArray[np.int16]:
    path = tmp_path / "sox-dec.vox"
    path.write_bytes(data)
    raw = run("sox", "-t", "vox", "-r", str(rate), path, "-t", "raw", "-e", "signed", "-b", "16",
              "-")
    return np.frombuffer(raw, dtype="<i2").astype(np.int16)


def test_vox_is_bit_exact_with_sox_both_ways(tmp_path: Path,
                                             speech: npt.NDArray[np.int16]) -> None:
    ours = vox.encode(speech)
    theirs = sox_encode(tmp_path, speech)
    assert ours == theirs
    decoded = vox.decode(theirs)
    by_sox = sox_decode(tmp_path, theirs)
    np.testing.assert_array_equal(decoded, by_sox)
    # A .vox holds two samples a byte: an odd count gains one padding sample.
    assert len(by_sox) == len(speech) + len(speech) % 2
    assert snr_db(speech, decoded) > 15


def test_vox_is_bit_exact_with_libsndfile_both_ways(tmp_path: Path,
                                                    speech: npt.NDArray[np.int16]) -> None:
    even = speech[: len(speech) // 2 * 2]
    path = tmp_path / "sf.vox"
    soundfile.write(path, even, 8000, format="RAW", subtype="VOX_ADPCM")
    assert vox.encode(even) == path.read_bytes()
    decoded, _ = soundfile.read(path, format="RAW", subtype="VOX_ADPCM", samplerate=8000,
                                channels=1, dtype="int16")
    np.testing.assert_array_equal(vox.decode(path.read_bytes()), decoded)


def test_odd_lengths_end_as_sox_ends_them(tmp_path: Path,
                                          speech: npt.NDArray[np.int16]) -> None:
    odd = speech[:12345]
    ours = vox.encode(odd)
    assert ours == sox_encode(tmp_path, odd)
    assert len(ours) == 6173
    assert ours[-1] & 0x0F == 0  # a zero nibble pads the last byte
    # libsndfile pads with an encoded zero sample instead: only that last nibble differs.
    encoded_even = vox.encode(np.append(odd, np.int16(0)))
    assert ours[:-1] == encoded_even[:-1]


def test_ffmpeg_decodes_our_vox_to_the_same_samples(tmp_path: Path,
                                                    speech: npt.NDArray[np.int16]) -> None:
    path = tmp_path / "call.vox"
    path.write_bytes(vox.encode(speech))
    by_ffmpeg = ffmpeg_decode(path, *OKI_FFMPEG, "-ar", "8000")
    ours, rate = read_audio(path)
    assert rate == 8000
    # ffmpeg clamps at 12 bits where sox clamps at 16: the same away from full scale, as here.
    assert np.abs(speech).max() < 30000
    np.testing.assert_array_equal(by_ffmpeg, ours[:, 0])
    assert len(by_ffmpeg) == len(speech)


def signals() -> dict[str, npt.NDArray[np.int16]]:
    rng = np.random.default_rng(3)
    tone = (12000 * np.sin(np.arange(30000) * 2 * np.pi * 440 / 8000)).astype(np.int16)
    loud = np.clip(rng.normal(0, 20000, 30000), -32768, 32767).astype(np.int16)
    quiet = rng.normal(0, 3, 30000).astype(np.int16)
    silence = np.zeros(30000, dtype=np.int16)
    return {
        # Segments starting in digital silence, where guesses alone agree.
        "silence-speech-silence": np.concatenate([silence, tone, silence, tone[:1001]]),
        # Clipped, then silent: a limit cycle no guess starts in, so every segment of the
        # silence is repaired and the repairs run past their segments' ends.
        "clipped-then-silent": np.concatenate([np.full(3000, 32767, np.int16), silence, loud]),
        "full-scale-noise": loud,
        "one-bit-noise": quiet,
        "dc": np.full(20000, -1234, np.int16),
        "short": tone[:333],
    }


@pytest.mark.parametrize("name", list(signals()))
def test_hard_signals_stay_bit_exact(tmp_path: Path, name: str) -> None:
    samples = signals()[name]
    ours = vox.encode(samples)
    theirs = sox_encode(tmp_path, samples)
    assert ours == theirs
    np.testing.assert_array_equal(vox.decode(theirs)[:len(samples)],
                                  sox_decode(tmp_path, theirs)[:len(samples)])


def test_long_streams_cross_chunks_exactly(tmp_path: Path,
                                           speech: npt.NDArray[np.int16]) -> None:
    samples = np.tile(speech, 3)
    codes, state = vox.encode_stream(samples, chunk=50_001)  # several speculative passes
    assert vox.pack_codes(codes) == sox_encode(tmp_path, samples)
    _, decoded_state = vox.decode_codes(codes)
    assert decoded_state == state  # the decoder tracks the encoder's state exactly


def test_writer_fed_in_blocks_equals_sox(tmp_path: Path,
                                         speech: npt.NDArray[np.int16]) -> None:
    path = tmp_path / "live.vox"
    writer = open_writer("vox", path.open("xb"), 8000)
    rng = np.random.default_rng(5)
    pos = 0
    while pos < len(speech):
        size = int(rng.integers(1, 3000))
        writer.write(speech[pos:pos + size])
        pos += size
        if rng.random() < 0.2:
            writer.sync()
            # After a sync everything but a dangling odd sample is on disk.
            assert path.stat().st_size == min(pos, len(speech)) // 2
    writer.close()
    assert writer.frames == len(speech)
    assert path.read_bytes() == sox_encode(tmp_path, speech)


def test_encode_pending_across_many_writers(tmp_path: Path,
                                            speech: npt.NDArray[np.int16]) -> None:
    streams = [np.roll(speech, 997 * i)[: 20000 + 7 * i] for i in range(12)]
    files = [io.BytesIO() for _ in streams]
    writers = [VoxWriter(f, 8000) for f in files]
    kept: list[bytes] = []
    for f in files:
        f.close = lambda f=f: kept.append(f.getvalue())  # type: ignore[method-assign]
    for start in range(0, 25000, 400):  # 50 ms blocks, as the writer loop pumps them
        for w, s in zip(writers, streams, strict=True):
            w.write(s[start:start + 400])
        encode_pending(writers)
    for w in writers:
        w.close()
    for data, s in zip(kept, streams, strict=True):
        assert data == sox_encode(tmp_path, s)


class _FullDisk(io.BytesIO):
    """A file whose writes fail from the n-th on, as they do when the disk fills."""

    def __init__(self, fail_from: int) -> None:
        super().__init__()
        self.fail_from = fail_from
        self.writes = 0

    def write(self, data: Any) -> int:
        self.writes += 1
        if self.writes >= self.fail_from:
            raise OSError(errno.ENOSPC, "No space left on device")
        return super().write(data)


def test_one_file_failing_in_the_shared_pass_costs_the_others_nothing(
        tmp_path: Path, speech: npt.NDArray[np.int16]) -> None:
    streams = [np.roll(speech, 997 * i)[:16000] for i in range(4)]
    files: list[io.BytesIO] = [io.BytesIO(), _FullDisk(fail_from=3), io.BytesIO(), io.BytesIO()]
    writers = [VoxWriter(f, 8000) for f in files]
    failures: list[int | None] = []
    for start in range(0, 16000, 400):
        for w, s in zip(writers, streams, strict=True):
            w.write(s[start:start + 400])
        try:
            encode_pending(writers)
        except OSError as exc:
            failures.append(exc.errno)
    assert failures
    assert set(failures) == {errno.ENOSPC}
    for i in (0, 2, 3):  # the files after the failing one too: every byte, the right state
        writers[i]._encode_pending()
        assert files[i].getvalue() == sox_encode(tmp_path, streams[i])


def test_6khz_vox_from_an_8khz_recording(tmp_path: Path,
                                         speech: npt.NDArray[np.int16]) -> None:
    path = tmp_path / "six.vox"
    writer = open_writer("vox", path.open("xb"), 8000, rate=6000)
    for block in np.array_split(speech, 41):
        writer.write(block)
    writer.close()
    data = path.read_bytes()
    expected_samples = -(-len(speech) * 3 // 4)
    assert len(data) == -(-expected_samples // 2)
    # The ADPCM part is sox's exactly, on our 6 kHz signal...
    ours_6k = resample(speech, 8000, 6000)
    assert len(ours_6k) == expected_samples
    assert data == sox_encode(tmp_path, ours_6k, 6000)
    # ...and that signal is sox's own 8 → 6 kHz conversion, to within the filters' difference.
    source = write_wav(tmp_path / "src.wav", speech)
    sox_6k_path = tmp_path / "sox6k.wav"
    run("sox", source, "-r", "6000", sox_6k_path)
    sox_6k, _ = soundfile.read(sox_6k_path, dtype="int16")
    assert snr_db(sox_6k, ours_6k) > 25
    assert snr_db(sox_6k, sox_decode(tmp_path, data, 6000)) > 15


def test_stereo_input_is_mixed_to_mono(tmp_path: Path, speech: npt.NDArray[np.int16]) -> None:
    near, far = speech[:20000], speech[20000:40000]
    path = tmp_path / "mixed.vox"
    writer = open_writer("vox", path.open("xb"), 8000, channels=2)
    writer.write(np.stack([near, far], axis=1))
    writer.close()
    mixed = np.clip(near.astype(np.int32) + far, -32768, 32767).astype(np.int16)
    assert path.read_bytes() == sox_encode(tmp_path, mixed)


def test_a_mono_recordings_column_blocks_are_its_samples(tmp_path: Path,
                                                        speech: npt.NDArray[np.int16]) -> None:
    """The recorder hands a mono writer (frames, 1) blocks, as it does every writer."""
    path = tmp_path / "column.vox"
    writer = open_writer("vox", path.open("xb"), 8000, channels=1)
    for block in np.array_split(speech, 17):
        writer.write(block[:, None])
    writer.close()
    assert writer.frames == len(speech)
    assert path.read_bytes() == sox_encode(tmp_path, speech)


def test_the_bytes_counted_are_the_files(tmp_path: Path,
                                         speech: npt.NDArray[np.int16]) -> None:
    """data_bytes is what the disk budget and the bytes-a-second estimate count."""
    path = tmp_path / "odd.vox"
    writer = open_writer("vox", path.open("xb"), 8000)
    writer.write(speech[:1001])  # an odd count: the last byte holds one sample
    writer.sync()
    assert writer.data_bytes == path.stat().st_size == 500
    writer.close()
    assert writer.data_bytes == path.stat().st_size == 501


def test_writers_pumped_with_odd_counts_equal_sox(tmp_path: Path,
                                                  speech: npt.NDArray[np.int16]) -> None:
    streams = [np.roll(speech, 311 * i)[:4000] for i in range(3)]
    files = [io.BytesIO() for _ in streams]
    writers = [VoxWriter(f, 8000) for f in files]
    kept: list[bytes] = []
    for f in files:
        f.close = lambda f=f: kept.append(f.getvalue())  # type: ignore[method-assign]
    assert encode_pending(writers) == 0  # nothing buffered yet
    start = 0
    # Odd pumps of 1 to 5 samples with and without an odd code held over, and an even one
    # while every writer holds one.
    for size in (2, 1, 2, 1, 3, 3, 5, 983, 1000, 2000):
        for w, s in zip(writers, streams, strict=True):
            w.write(s[start:start + size])
        assert encode_pending(writers) == size * len(writers)
        start += size
    assert encode_pending(writers) == 0
    for w in writers:
        w.close()
    for data, s in zip(kept, streams, strict=True):
        assert data == sox_encode(tmp_path, s)


class _FillingFile(io.FileIO):
    """A real file on a disk that fills after ``room`` bytes: later writes fail (ENOSPC)."""

    def __init__(self, path: Path, room: int) -> None:
        super().__init__(path, "xb")
        self.room = room

    def write(self, data: Any) -> int:
        size = len(memoryview(data).cast("B"))
        if self.tell() + size > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        return super().write(data)


def _write_until_full(writer: Any, blocks: list[npt.NDArray[np.int16]]) -> OSError:
    for block in blocks:
        try:
            writer.write(block)
            writer.sync()
        except OSError as exc:
            return exc
    raise AssertionError("the disk never filled")


@pytest.mark.parametrize("rate", [8000, 6000])
def test_a_full_disk_keeps_the_whole_bytes_and_counts_their_samples(
        tmp_path: Path, speech: npt.NDArray[np.int16], rate: int) -> None:
    path = tmp_path / "full.vox"
    writer = open_writer("vox", _FillingFile(path, room=3000), 8000, rate=rate)
    assert _write_until_full(writer, np.array_split(speech, 100)).errno == errno.ENOSPC
    with pytest.raises(OSError, match="No space left"):
        writer.close()
    size = path.stat().st_size
    assert 0 < size <= 3000
    assert writer.data_bytes == size
    # Two samples a byte at the file's rate; frames counts the recording's (8 kHz) frames.
    assert type(writer.frames) is int
    assert writer.frames == 2 * size * 8000 // rate
    samples = speech if rate == 8000 else resample(speech, 8000, rate)
    assert path.read_bytes() == sox_encode(tmp_path, samples, rate)[:size]


@pytest.mark.parametrize("fsync", [True, False])
def test_close_with_fsync_puts_the_file_on_the_disk(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fsync: bool) -> None:
    from recorder.codecs import voxwriter  # noqa: PLC0415

    synced: list[object] = []
    monkeypatch.setattr(voxwriter, "fsync_file", synced.append)
    writer = open_writer("vox", (tmp_path / "sync.vox").open("xb"), 8000)
    writer.write(np.zeros(800, dtype=np.int16))
    writer.close(fsync=fsync)
    assert len(synced) == (1 if fsync else 0)


def test_the_file_is_at_the_rate_asked_for(tmp_path: Path,
                                           speech: npt.NDArray[np.int16]) -> None:
    # The recording's own rate named in the options (a number read from the configuration,
    # equal but not the same object): nothing to resample, sox's bytes exactly.
    same = tmp_path / "same.vox"
    writer = open_writer("vox", same.open("xb"), 8000, rate=int("8000"))
    writer.write(speech)
    writer.close()
    assert same.read_bytes() == sox_encode(tmp_path, speech)
    # A rate above the recording's is resampled too: 6 kHz audio in an 8 kHz file.
    up = tmp_path / "up.vox"
    six = speech[:18000]
    writer = open_writer("vox", up.open("xb"), 6000, rate=8000)
    writer.write(six)
    writer.close()
    samples = -(-len(six) * 4 // 3)
    assert len(up.read_bytes()) == -(-samples // 2)
    assert up.read_bytes() == sox_encode(tmp_path, resample(six, 6000, 8000))



def test_writers_holding_uneven_amounts_are_all_emptied_by_the_shared_pass(
        tmp_path: Path, speech: npt.NDArray[np.int16]) -> None:
    """A writer loop that fell behind pumps uneven amounts: the pass goes on (in rounds of the
    shortest) while enough writers hold samples, leaving fewer than ROUND_MIN_WRITERS to
    their own sync; bit-exact with sox."""
    streams = [np.roll(speech, 613 * i)[:12000] for i in range(ROUND_MIN_WRITERS + 4)]
    files = [io.BytesIO() for _ in streams]
    writers = [VoxWriter(f, 8000) for f in files]
    kept: list[bytes] = []
    for f in files:
        f.close = lambda f=f: kept.append(f.getvalue())  # type: ignore[method-assign]
    at = [0] * len(writers)
    for turn in range(6):
        for i, (w, s) in enumerate(zip(writers, streams, strict=True)):
            size = 160 * (1 + (i + turn) % 5)  # one to five 20 ms blocks, unevenly
            w.write(s[at[i]:at[i] + size])
            at[i] += size
        held = sum(w.pending_samples for w in writers)
        done = encode_pending(writers)
        left = [w for w in writers if w.pending_samples]
        assert done == held - sum(w.pending_samples for w in left)
        assert 0 < len(left) < ROUND_MIN_WRITERS  # the sizes differ: some hold more
        for w in left:
            w.sync()  # as the writer loop syncs each file after the pass
    for w, s, n in zip(writers, streams, at, strict=True):
        w.write(s[n:])
    encode_pending(writers)
    for w in writers:
        w.close()
    for data, s in zip(kept, streams, strict=True):
        assert data == sox_encode(tmp_path, s)


def test_a_few_writers_left_holding_samples_are_left_to_their_sync(
        tmp_path: Path, speech: npt.NDArray[np.int16]) -> None:
    streams = [np.roll(speech, 211 * i)[:4000] for i in range(ROUND_MIN_WRITERS)]
    files = [io.BytesIO() for _ in streams]
    writers = [VoxWriter(f, 8000) for f in files]
    for i, (w, s) in enumerate(zip(writers, streams, strict=True)):
        w.write(s[:400 if i else 2000])  # the first holds 1,600 samples more than the rest
    assert encode_pending(writers) == 400 * len(writers)
    assert writers[0].pending_samples == 1600  # one writer: its own sync encodes it
    writers[0].sync()
    assert files[0].getvalue() == sox_encode(tmp_path, streams[0][:2000])
