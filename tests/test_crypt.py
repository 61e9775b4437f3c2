"""The encrypted recording format (recorder/crypt, docs/encryption.md): round trips, every way
a file can be altered, crash cuts at every byte, and the keys."""

from __future__ import annotations

import io
import os
import random
from pathlib import Path

import pytest

from recorder.crypt.keys import (
    CryptKeyError,
    MasterKey,
    WrappedKey,
    create_master_key,
    key_file_problem,
    load_master_key,
    new_file_key,
    read_wrapped,
    rewrap,
    unwrap,
    write_wrapped,
)
from recorder.crypt.reader import SealedReader, repair
from recorder.crypt.sealed import HEADER_BYTES, OVERHEAD, Geometry, SealedError
from recorder.crypt.writer import SealedWriter

KEY = bytes(range(32))
FILE_ID = b"\x01" * 16


class KeepBytes(io.BytesIO):
    """A BytesIO whose bytes outlive its close (the writer owns and closes its file)."""

    def close(self) -> None:
        self.final = self.getvalue()
        super().close()


def sealed(data: bytes, *, chunk: int = 64, prologue: int = 0, pieces: int = 7) -> bytes:
    """``data`` written as a codec writes it: in pieces, flushed now and then, then closed."""
    out = KeepBytes()
    writer = SealedWriter(out, KEY, FILE_ID, chunk_size=chunk, prologue=prologue)
    step = max(1, len(data) // pieces)
    for n, at in enumerate(range(0, len(data), step)):
        writer.write(data[at:at + step])
        if n % 2:
            writer.flush()
    writer.close()
    return out.final


def plain(raw: bytes, key: bytes = KEY, strict: bool = True) -> bytes:
    return SealedReader(io.BytesIO(raw), key, strict=strict).read()


DATA = bytes(random.Random(24).randbytes(1000))


@pytest.mark.parametrize(("size", "chunk", "prologue", "pieces"), [
    (0, 64, 0, 1), (1, 64, 0, 1), (63, 64, 0, 3), (64, 64, 0, 1), (65, 64, 0, 2),
    (128, 64, 0, 5), (1000, 64, 0, 7), (1000, 64, 44, 7), (44, 64, 44, 1), (43, 64, 44, 1),
    (45, 64, 44, 2), (108, 64, 44, 9), (1000, 16, 58, 1000), (1000, 4096, 0, 3),
])
def test_what_is_written_reads_back(size: int, chunk: int, prologue: int, pieces: int) -> None:
    raw = sealed(DATA[:size], chunk=chunk, prologue=prologue, pieces=pieces)
    assert plain(raw) == DATA[:size]
    assert DATA[:16] not in raw or size < 16  # no plaintext on disk
    reader = SealedReader(io.BytesIO(raw), KEY)
    reader.verify()
    assert reader.size == size


def test_random_access_reads_any_range_like_a_plain_file() -> None:
    raw = sealed(DATA, chunk=64, prologue=44)
    reader = SealedReader(io.BytesIO(raw), KEY)
    rng = random.Random(5)
    for _ in range(300):
        start = rng.randrange(0, 1001)
        length = rng.randrange(0, 300)
        reader.seek(start)
        assert reader.read(length) == DATA[start:start + length]
    reader.seek(-10, 2)
    assert reader.read() == DATA[-10:]


def test_the_file_is_its_audio_plus_40_bytes_a_chunk() -> None:
    raw = sealed(DATA, chunk=100)
    assert len(raw) == HEADER_BYTES + len(DATA) + 10 * OVERHEAD + OVERHEAD  # + the empty last


def test_rewriting_the_prologue_and_a_sealed_chunk_reads_back_patched() -> None:
    out = KeepBytes()
    writer = SealedWriter(out, KEY, FILE_ID, chunk_size=64, prologue=44)
    writer.write(b"H" * 44)
    writer.write(DATA[:500])
    writer.flush()
    writer.seek(0)
    writer.write(b"h" * 44)  # a WAV header update
    writer.seek(44 + 70)
    writer.write(b"\0" * 100)  # a blackout over two whole chunks
    writer.seek(0, 2)
    writer.write(DATA[500:600])
    writer.close()
    expect = bytearray(b"h" * 44 + DATA[:600])
    expect[114:214] = b"\0" * 100
    assert plain(out.final) == bytes(expect)


def test_every_sealing_takes_a_new_nonce() -> None:
    out = KeepBytes()
    writer = SealedWriter(out, KEY, FILE_ID, chunk_size=64)
    nonces = set()
    for n in range(40):
        writer.write(bytes([n]) * 10)
        writer.flush()
        body = out.getvalue()
        geo = Geometry(64, 0)
        slots, rest = geo.records_in(len(body))
        last = slots if rest else slots - 1
        nonces.add(body[geo.slot(last) + 12:geo.slot(last) + 24])
    writer.close()
    assert len(nonces) == 40
    assert writer.sealings >= 40


# --- tampering ------------------------------------------------------------------------------

RAW = sealed(DATA, chunk=64, prologue=44)
GEO = Geometry(64, 44)


def flip(raw: bytes, at: int) -> bytes:
    return raw[:at] + bytes([raw[at] ^ 1]) + raw[at + 1:]


def swap_chunks(raw: bytes, a: int, b: int) -> bytes:
    size = 64 + OVERHEAD
    out = bytearray(raw)
    sa, sb = GEO.slot(a), GEO.slot(b)
    out[sa:sa + size], out[sb:sb + size] = raw[sb:sb + size], raw[sa:sa + size]
    return bytes(out)


@pytest.mark.parametrize(("case", "damaged", "message"), [
    ("a flipped header byte", flip(RAW, 20), "does not authenticate"),
    ("a flipped magic", flip(RAW, 0), "not an encrypted recording"),
    ("a flipped index", flip(RAW, GEO.slot(3)), "reordered"),
    ("a flipped length", flip(RAW, GEO.slot(3) + 4), "does not authenticate"),
    ("a flipped last flag", flip(RAW, GEO.slot(3) + 8), "chunk 3 does not authenticate"),
    ("a flipped nonce", flip(RAW, GEO.slot(3) + 14), "does not authenticate"),
    ("a flipped audio byte", flip(RAW, GEO.slot(3) + 30), "chunk 3 does not authenticate"),
    ("a flipped tag byte", flip(RAW, GEO.slot(4) - 1), "chunk 3 does not authenticate"),
    ("a flipped byte of the last chunk", flip(RAW, len(RAW) - 20), "does not authenticate"),
    ("reordered chunks", swap_chunks(RAW, 2, 3), "reordered"),
    ("cut at a chunk boundary", RAW[:GEO.slot(5)], "not the last one"),
    ("cut inside a chunk", RAW[:GEO.slot(5) + 30], "cut short"),
    ("cut after the header", RAW[:HEADER_BYTES], "no chunks"),
    ("a byte appended", RAW + b"\0", "bytes follow the last chunk"),
    ("a record's worth appended", RAW + b"\0" * 64, "chunk 16 holds chunk 0"),
    ("a last chunk after the last", RAW + RAW[GEO.slot(15):], "reordered"),
], ids=lambda value: value if isinstance(value, str) else "")  # the same ids in every worker:
# the bytes are sealed under a random nonce each collection
def test_a_damaged_file_is_refused_naming_what(case: str, damaged: bytes, message: str) -> None:
    with pytest.raises(SealedError, match=message):
        SealedReader(io.BytesIO(damaged), KEY).verify()


def test_another_files_chunks_do_not_authenticate_under_its_file_id() -> None:
    other = KeepBytes()
    writer = SealedWriter(other, KEY, b"\2" * 16, chunk_size=64, prologue=44)
    writer.write(DATA)
    writer.close()
    spliced = RAW[:HEADER_BYTES] + other.final[HEADER_BYTES:]
    with pytest.raises(SealedError, match="does not authenticate"):
        SealedReader(io.BytesIO(spliced), KEY).read()


def test_a_wrong_key_is_refused() -> None:
    with pytest.raises(SealedError, match="does not authenticate"):
        SealedReader(io.BytesIO(RAW), bytes(32)).read()


# --- crash cuts -----------------------------------------------------------------------------

def test_a_cut_at_every_byte_keeps_every_whole_chunk(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """What a kill -9 leaves: the file as far as it reached the disk. Every chunk that is
    whole in it reads back, and repair makes the file whole (strict) again."""
    monkeypatch.setattr(os, "fsync", lambda fd: None)  # thousands of repairs: no disk needed
    data = DATA[:300]
    out = KeepBytes()
    writer = SealedWriter(out, KEY, FILE_ID, chunk_size=64, prologue=44)
    states = []
    for at in range(0, 300, 25):  # each state: the file after a flush (what a sync leaves)
        writer.write(data[at:at + 25])
        writer.flush()
        states.append((at + 25, out.getvalue()))
    writer.close()
    path = tmp_path / "cut.seal"
    for written, state in (states[0], states[4], states[-1]):  # the last holds all the others
        for cut in range(len(state) + 1):
            raw = state[:cut]
            whole = max(0, (cut - HEADER_BYTES - (44 + OVERHEAD)) // (64 + OVERHEAD))
            expect_at_least = 0 if cut < GEO.slot(1) else 44 + whole * 64
            if cut < HEADER_BYTES:
                continue  # no header: nothing was recorded (recovery drops the file)
            got = plain(raw, strict=False)
            assert got == data[:len(got)]
            assert len(got) >= min(expect_at_least, written), (written, cut)
            if cut == len(state):
                assert got == data[:written]  # a crash after a sync keeps all of it
            path.write_bytes(raw)
            size = repair(path, KEY)
            assert size == len(got)
            assert plain(path.read_bytes()) == got


# --- keys -------------------------------------------------------------------------------------

def test_a_file_key_is_wrapped_unwrapped_and_rewrapped() -> None:
    old, new = MasterKey(os.urandom(32)), MasterKey(os.urandom(32))
    secret, wrapped = new_file_key(old)
    assert unwrap(wrapped, old) == secret
    assert secret not in wrapped.to_text().encode()
    again = rewrap(WrappedKey.from_text(wrapped.to_text()), old, new)
    assert again.file_id == wrapped.file_id
    assert again.key_id == new.id
    assert unwrap(again, [old, new]) == secret
    with pytest.raises(CryptKeyError, match=rf"needs master key {new.id}.*{old.id}"):
        unwrap(again, old)


def test_an_altered_wrapped_key_is_told_apart_from_a_wrong_key() -> None:
    master = MasterKey(os.urandom(32))
    _, wrapped = new_file_key(master)
    broken = WrappedKey(wrapped.key_id, flip(wrapped.wrapped, 3), wrapped.file_id)
    with pytest.raises(CryptKeyError, match="altered"):
        unwrap(broken, master)
    with pytest.raises(CryptKeyError, match="damaged"):
        WrappedKey.from_text('{"format": "recorder-file-key", "version": 1}')


def test_the_wrapped_key_beside_a_file(tmp_path: Path) -> None:
    master = MasterKey(os.urandom(32))
    _, wrapped = new_file_key(master)
    recording = tmp_path / "a.wav"
    with pytest.raises(CryptKeyError, match=r"a\.wav\.key is missing"):
        read_wrapped(recording)
    write_wrapped(recording, wrapped)
    assert read_wrapped(recording) == wrapped
    assert (tmp_path / "a.wav.key").stat().st_mode & 0o777 == 0o600


def test_key_init_makes_32_private_bytes_and_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    made = create_master_key(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.read_bytes() == made.secret
    assert load_master_key(path) == made
    with pytest.raises(CryptKeyError, match="exists"):
        create_master_key(path)
    assert path.read_bytes() == made.secret


@pytest.mark.parametrize(("content", "mode", "problem"), [
    (None, 0o600, "does not exist"),
    (b"x" * 31, 0o600, "holds 31 bytes"),
    (b"x" * 33, 0o600, "holds 33 bytes"),
    (b"x" * 32, 0o644, "readable or writable by others"),
    (b"x" * 32, 0o620, "readable or writable by others"),
    (b"x" * 32, 0o600, None),
    (b"x" * 32, 0o400, None),
])
def test_a_key_file_that_cannot_be_the_key_is_named(tmp_path: Path, content: bytes | None,
                                                     mode: int, problem: str | None) -> None:
    path = tmp_path / "k"
    if content is not None:
        path.write_bytes(content)
        path.chmod(mode)
    found = key_file_problem(path)
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert problem in found
        with pytest.raises(CryptKeyError, match=problem):
            load_master_key(path)


def test_a_torn_reseal_loses_at_most_the_tail() -> None:
    """A crash in the middle of resealing the tail in place: the new record's first bytes over
    the old one's. The chunks before the tail all read back; the tail may be lost, nothing else,
    and never is a byte read back that was not written."""
    out = KeepBytes()
    writer = SealedWriter(out, KEY, FILE_ID, chunk_size=64, prologue=44)
    writer.write(DATA[:44 + 64 * 3 + 10])
    writer.flush()
    before = out.getvalue()
    writer.write(DATA[44 + 64 * 3 + 10:44 + 64 * 3 + 50])
    writer.flush()
    after = out.getvalue()
    writer.close()
    tail_slot = GEO.slot(4)
    for torn in range(tail_slot, len(after) + 1):
        raw = after[:torn] + before[torn:]
        got = plain(raw, strict=False)
        assert got == DATA[:len(got)]
        assert len(got) >= 44 + 64 * 3, torn
