"""The CAV format held to its document: a test vector checked in under tests/fixtures/cav/ (made
once by the product, README.md there says how), a reader written from docs/cav.md alone
(tests/helpers/cavspec.py), and the product's writer and reader. The writer, the reader and
the document must all agree, so a change to any one of them (the byte order of an integer, the
nonce, the segment rule) fails here even when the product's own writer and reader still agree
with each other (tests/test_codecs_cav.py)."""

from __future__ import annotations

import hashlib
import math
import shutil
import unicodedata
import wave
from pathlib import Path

import numpy as np
import pytest

from recorder.archive import cav
from tests.helpers import cavspec

VECTOR = Path(__file__).parent / "fixtures" / "cav"
PASSWORD = "Grüße, test vector"
METADATA = {"RECORDID": "7", "DEVICEID": "1001", "ANI": "6145551212",
            "USER1": "Ümlaut & <tag>", "odd key!": "kept"}
TONE_SHA256 = "7c7c7661f4cb8bb697ba64bafc8f7da70006dd15694cc830bcdb048aa4fa1992"
AUDIO_INFO = {"FORMAT": "wav", "FILENAME": "tone.wav", "SAMPLERATE": "8000", "CHANNELS": "1",
              "FRAMES": "2000", "DURATION": "0.250", "BYTES": "4044", "SHA256": TONE_SHA256}
FAST = 10  # the least scrypt cost a reader accepts (docs/cav.md): tests derive keys quickly


def tone_bytes() -> bytes:
    return (VECTOR / "tone.wav").read_bytes()


def test_the_vectors_audio_is_the_documented_tone() -> None:
    assert hashlib.sha256(tone_bytes()).hexdigest() == TONE_SHA256
    with wave.open(str(VECTOR / "tone.wav")) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 8000)
        samples = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    expected = [round(8000 * math.sin(2 * math.pi * 1000 * i / 8000)) for i in range(2000)]
    assert samples.tolist() == expected


@pytest.mark.parametrize("password", [PASSWORD, unicodedata.normalize("NFD", PASSWORD)])
def test_the_documents_reader_opens_the_encrypted_vector(password: str) -> None:
    """NFD spelling too: the document derives the key from the NFC form."""
    opened = cavspec.read((VECTOR / "tone-encrypted.cav").read_bytes(), password)
    assert opened.encrypted
    assert opened.recording == METADATA
    assert list(opened.recording) == list(METADATA)  # "in the order given"
    assert opened.audio_info == AUDIO_INFO
    assert opened.audio == tone_bytes()
    assert opened.scrypt == (FAST, 8, 1)
    assert opened.segment_size == 1024
    assert opened.segments == (1024, 1024, 1024, 1024, 528)


def test_the_documents_reader_opens_the_plain_vector() -> None:
    opened = cavspec.read((VECTOR / "tone-plain.cav").read_bytes())
    assert not opened.encrypted
    assert opened.recording == METADATA
    assert opened.audio_info == AUDIO_INFO
    assert opened.audio == tone_bytes()
    encrypted = cavspec.read((VECTOR / "tone-encrypted.cav").read_bytes(), PASSWORD)
    assert opened.xml == encrypted.xml  # the payload is the same either way


def test_the_documents_reader_is_no_pushover() -> None:
    """The oracle itself refuses what the document says must be refused."""
    sealed = (VECTOR / "tone-encrypted.cav").read_bytes()
    plain = (VECTOR / "tone-plain.cav").read_bytes()
    with pytest.raises(cavspec.CavSpecError, match="wrong password"):
        cavspec.read(sealed, "grüße, test vector")
    damaged = bytearray(sealed)
    damaged[-600] ^= 1  # inside the fourth segment
    with pytest.raises(cavspec.CavSpecError, match="segment 3"):
        cavspec.read(bytes(damaged), PASSWORD)
    with pytest.raises(cavspec.CavSpecError, match="segment 3"):  # cut at a segment boundary
        cavspec.read(sealed[:cavspec.SEALED_HEADER_BYTES + 4 * (1024 + 16)], PASSWORD)
    damaged = bytearray(plain)
    damaged[100] ^= 1
    with pytest.raises(cavspec.CavSpecError, match="checksum"):
        cavspec.read(bytes(damaged))


@pytest.mark.parametrize(("name", "password"), [("tone-plain.cav", None),
                                                ("tone-encrypted.cav", PASSWORD)])
def test_the_product_reads_the_vector(tmp_path: Path, name: str, password: str | None) -> None:
    info = cav.read_cav(VECTOR / name, password)
    assert info.encrypted == (password is not None)
    assert info.metadata == METADATA
    assert (info.audio.format, info.audio.filename, info.audio.sample_rate,
            info.audio.channels, info.audio.frames, info.audio.bytes, info.audio.sha256) == (
        "wav", "tone.wav", 8000, 1, 2000, 4044, TONE_SHA256)
    _, path = cav.extract_audio(VECTOR / name, tmp_path / "out.wav", password)
    assert path.read_bytes() == tone_bytes()


def test_the_product_writes_the_plain_vector_byte_for_byte(tmp_path: Path) -> None:
    """A plain CAV has nothing random in it: the writer must still make the vector's bytes."""
    shutil.copy(VECTOR / "tone.wav", tmp_path / "tone.wav")
    out = tmp_path / "again.cav"
    with out.open("wb") as f:
        cav.write_cav(f, tmp_path / "tone.wav", METADATA)
    assert out.read_bytes() == (VECTOR / "tone-plain.cav").read_bytes()


def payload_bytes() -> int:
    return len((VECTOR / "tone-plain.cav").read_bytes()) - cavspec.HEADER_BYTES - 32


@pytest.mark.parametrize("segment", [1024, payload_bytes() // 4, payload_bytes()],
                         ids=["ragged", "exact-multiple", "one-segment"])
def test_what_the_product_encrypts_the_documents_reader_opens(tmp_path: Path,
                                                              segment: int) -> None:
    """Fresh salt and nonce prefix every time, so not byte for byte: opened by the oracle.
    A payload that is a whole number of segments ends with a full segment flagged last."""
    shutil.copy(VECTOR / "tone.wav", tmp_path / "tone.wav")
    out = tmp_path / "sealed.cav"
    with out.open("wb") as f:
        cav.write_cav(f, tmp_path / "tone.wav", METADATA, password=PASSWORD, scrypt_log_n=FAST,
                      segment_bytes=segment)
    opened = cavspec.read(out.read_bytes(), PASSWORD)
    assert (opened.recording, opened.audio_info, opened.audio) == (METADATA, AUDIO_INFO,
                                                                   tone_bytes())
    whole, rest = divmod(payload_bytes(), segment)
    assert payload_bytes() % 4 == 0  # 4624: the exact-multiple case is one
    assert opened.segments == (segment,) * whole + ((rest,) if rest else ())
