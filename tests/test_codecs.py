"""The format registry, WAV (PCM and G.711), MP3 and file conversion, checked with sox, ffmpeg,
mpg123 and libsndfile on espeak-ng speech."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import soundfile

from recorder.codecs import g711
from recorder.codecs.convert import convert, probe, read_audio
from recorder.codecs.formats import FORMATS, file_extension, open_writer
from recorder.codecs.stereo import interleave, mix_to_mono
from recorder.codecs.wav import read_wav_info
from recorder.errors import CodecError
from tests.helpers.audio import (
    ffmpeg_decode,
    ffprobe,
    make_speech,
    run,
    snr_db,
    sox_info,
    write_wav,
)


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> npt.NDArray[np.int16]:
    return make_speech(tmp_path_factory.mktemp("speech"))


def record(path: Path, fmt: str, samples: npt.NDArray[np.int16], rate: int = 8000,
           pieces: int = 37, **options: object) -> Path:
    """Record ``samples`` the way a session does: in blocks, with a sync now and then."""
    channels = 1 if samples.ndim == 1 else samples.shape[1]
    writer = open_writer(fmt, path.open("xb"), rate, channels, **options)
    for i, block in enumerate(np.array_split(samples, pieces)):
        writer.write(block)
        if i % 8 == 7:
            writer.sync()
    writer.close()
    assert writer.frames == len(samples)
    return path


def test_registry_names_extensions_and_options(tmp_path: Path) -> None:
    assert {name: FORMATS[name].extension for name in FORMATS} == {
        "wav": "wav", "wav-ulaw": "wav", "wav-alaw": "wav", "mp3": "mp3", "vox": "vox"}
    assert file_extension("mp3") == "mp3"
    with pytest.raises(CodecError, match="unknown audio format 'ogg'"):
        file_extension("ogg")
    with pytest.raises(CodecError, match="mp3 takes no option rate"):
        open_writer("mp3", io.BytesIO(), 8000, rate=6000)
    # CAV is an export container (recorder.archive.cav), not an audio format.
    with pytest.raises(CodecError, match="unknown audio format 'cav'"):
        open_writer("cav", io.BytesIO(), 8000)
    with pytest.raises(CodecError, match="bit rates"):
        open_writer("mp3", io.BytesIO(), 8000, bitrate=320)  # MPEG-2.5 stops at 160
    with pytest.raises(CodecError, match="cannot carry 7000 Hz"):
        open_writer("mp3", io.BytesIO(), 7000)
    # None means "the default", so configuration can be passed through as it is.
    writer = open_writer("mp3", (tmp_path / "c.mp3").open("xb"), 8000, bitrate=None,
                         quality=None)
    writer.close()


@pytest.mark.parametrize(("fmt", "encoding", "sox_name"), [
    ("wav", 1, "signed-integer"), ("wav-ulaw", 7, "u-law"), ("wav-alaw", 6, "a-law")])
def test_wav_is_bit_exact_with_sox_and_decodes_everywhere(
        tmp_path: Path, speech: npt.NDArray[np.int16], fmt: str, encoding: int,
        sox_name: str) -> None:
    ours = record(tmp_path / "ours.wav", fmt, speech)
    source = write_wav(tmp_path / "source.wav", speech)
    theirs = tmp_path / "sox.wav"
    # -D: no dither, or sox would add noise on the way down to G.711's 13 or 14 bits.
    run("sox", "-D", source, "-e", sox_name, "-b", "16" if encoding == 1 else "8", theirs)
    assert ours.read_bytes() == theirs.read_bytes()  # header and data, byte for byte
    info = read_wav_info(ours)
    assert (info.format_tag, info.sample_rate, info.channels, info.frames) == (
        encoding, 8000, 1, len(speech))
    assert sox_info(ours)["-s"] == str(len(speech))
    assert ffprobe(ours)["sample_rate"] == "8000"
    if encoding == 1:
        expected = speech
    else:
        law: g711.Law = "ulaw" if encoding == 7 else "alaw"
        expected = g711.decode(g711.encode(speech, law), law)
    decoded, rate = soundfile.read(ours, dtype="int16")
    assert rate == 8000
    np.testing.assert_array_equal(decoded, expected)
    np.testing.assert_array_equal(ffmpeg_decode(ours), expected)
    if encoding != 1:
        assert snr_db(speech, decoded) > 35


def test_g711_tables_match_sox_for_every_sample_value(tmp_path: Path) -> None:
    every = np.arange(-32768, 32768, dtype=np.int16)
    source = write_wav(tmp_path / "all.wav", every)
    for law, sox_name in (("ulaw", "u-law"), ("alaw", "a-law")):
        raw = run("sox", "-D", source, "-e", sox_name, "-t", "raw", "-")
        assert np.array_equal(g711.encode(every, law), np.frombuffer(raw, dtype=np.uint8))  # type: ignore[arg-type]
        codes = np.arange(256, dtype=np.uint8)
        decoded = ffmpeg_decode(write_raw(tmp_path / f"codes.{law}", codes),
                                "-f", "mulaw" if law == "ulaw" else "alaw", "-ar", "8000")
        np.testing.assert_array_equal(g711.decode(codes, law), decoded)  # type: ignore[arg-type]


def write_raw(path: Path, data: npt.NDArray[np.uint8]) -> Path:
    path.write_bytes(data.tobytes())
    return path


@pytest.mark.parametrize("fmt", ["wav", "wav-ulaw", "wav-alaw"])
def test_a_killed_recording_plays_up_to_its_last_sync(tmp_path: Path, fmt: str,
                                                      speech: npt.NDArray[np.int16]) -> None:
    path = tmp_path / "crash.wav"
    file = path.open("xb")
    writer = open_writer(fmt, file, 8000)
    writer.write(speech[:8000])
    writer.sync()
    for block in np.array_split(speech[8000:20000], 30):
        writer.write(block)
    file.flush()  # what a kill -9 leaves: the OS has what the writer wrote since the sync
    assert sox_info(path)["-s"] == "8000"  # the header counts up to the sync
    assert soundfile.info(path).frames == 8000
    # The writer wrote out every half second's worth after the sync (it keeps less than half
    # a second): our own reader, which transcoding uses, keeps those samples too.
    assert read_wav_info(path).frames == 20000
    file.close()


def test_stereo_wav_keeps_one_party_per_side(tmp_path: Path,
                                             speech: npt.NDArray[np.int16]) -> None:
    near, far = speech[:16000], speech[16000:32000]
    frames = interleave(near, far)
    path = record(tmp_path / "s.wav", "wav-ulaw", frames)
    decoded, _ = soundfile.read(path, dtype="int16")
    assert decoded.shape == (16000, 2)
    assert snr_db(near, decoded[:, 0]) > 35
    assert snr_db(far, decoded[:, 1]) > 35
    mono = mix_to_mono(np.array([[30000, 10000], [-30000, -10000], [5, -5]], dtype=np.int16))
    np.testing.assert_array_equal(mono, [32767, -32768, 0])  # saturates, does not halve


def mp3_checks(path: Path, source: npt.NDArray[np.int16], rate: int, channels: int) -> None:
    """Every independent decoder gives back exactly the samples written, at the right rate."""
    probe_info = ffprobe(path)
    assert (probe_info["codec_name"], probe_info["sample_rate"], probe_info["channels"]) == (
        "mp3", str(rate), str(channels))
    assert probe_info["TAG:encoder"] == "LAME3.100"  # our Info tag's CRC checks out
    by_ffmpeg = ffmpeg_decode(path, channels=channels)
    mpg123_wav = path.with_suffix(".mpg123.wav")
    run("mpg123", "-q", "-w", mpg123_wav, path)
    by_mpg123, mpg123_rate = soundfile.read(mpg123_wav, dtype="int16")
    by_libsndfile, sf_rate = soundfile.read(path, dtype="int16")
    assert mpg123_rate == sf_rate == rate
    for decoded in (by_ffmpeg, by_mpg123, by_libsndfile):
        # Gapless: the encoder delay and the padding are trimmed, nothing else.
        assert len(decoded) == len(source)
        for side in range(channels):
            ref = source if channels == 1 else source[:, side]
            got = decoded if channels == 1 else decoded[:, side]
            assert snr_db(ref, got) > 12  # 16 kbit/s per channel; the lag is 0


def test_mp3_at_telephone_defaults_decodes_exactly_everywhere(
        tmp_path: Path, speech: npt.NDArray[np.int16]) -> None:
    path = record(tmp_path / "call.mp3", "mp3", speech)
    mp3_checks(path, speech, 8000, 1)
    # 16 kbit/s CBR: 2 kB a second (plus the one tag frame)
    assert abs(path.stat().st_size - 2000 * len(speech) / 8000) < 1000
    assert probe(path).frames == len(speech)


def test_mp3_options_and_stereo(tmp_path: Path, speech: npt.NDArray[np.int16]) -> None:
    frames = interleave(speech[:40000], speech[40000:80000])
    path = record(tmp_path / "stereo.mp3", "mp3", frames)
    mp3_checks(path, frames, 8000, 2)
    wide = record(tmp_path / "wide.mp3", "mp3", speech[:40000], rate=16000, bitrate=32,
                  quality=2)
    assert ffprobe(wide)["sample_rate"] == "16000"
    assert len(ffmpeg_decode(wide)) == 40000
    assert abs(wide.stat().st_size - 4000 * 40000 / 16000) < 1000


def test_a_killed_mp3_recording_is_playable(tmp_path: Path,
                                            speech: npt.NDArray[np.int16]) -> None:
    path = tmp_path / "crash.mp3"
    file = path.open("xb")
    writer = open_writer("mp3", file, 8000)
    writer.write(speech[:40000])
    writer.sync()
    writer.write(speech[40000:60000])
    file.flush()
    decoded = ffmpeg_decode(path)
    # At least what was synced plays (LAME holds back a frame or two), and nothing is noise.
    assert 38000 <= len(decoded) <= 60000
    assert snr_db(speech[:len(decoded)], decoded) > 12
    file.close()


def test_convert_between_formats_and_concatenate(tmp_path: Path,
                                                 speech: npt.NDArray[np.int16]) -> None:
    source = write_wav(tmp_path / "source.wav", speech)
    ulaw = tmp_path / "u.wav"
    convert(source, ulaw.open("xb"), "wav-ulaw")
    mp3 = tmp_path / "u.mp3"
    writer = convert(ulaw, mp3.open("xb"), "mp3", bitrate=24)
    assert writer.frames == len(speech)
    assert len(ffmpeg_decode(mp3)) == len(speech)
    both = tmp_path / "both.wav"
    convert([source, ulaw], both.open("xb"), "wav")  # COMBINEEXPORT: one after the other
    joined, rate = read_audio(both)
    assert (rate, joined.shape) == (8000, (2 * len(speech), 1))
    np.testing.assert_array_equal(joined[:len(speech), 0], speech)
    assert snr_db(speech, joined[len(speech):, 0]) > 35
    back, _ = read_audio(mp3)
    assert len(back) == len(speech)
    other = write_wav(tmp_path / "other.wav", speech[:100], rate=16000)
    with pytest.raises(CodecError, match="cannot join"):
        convert([source, other], io.BytesIO(), "wav")
