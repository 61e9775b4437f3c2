"""CAV: one recording exported whole, the audio file and its metadata, optionally encrypted.

The layout is specified in ``docs/cav.md``; in short: a 12-byte header (magic, version, flags),
then a payload of the metadata as an XML document followed by the audio file byte for byte.
A plain file ends with the SHA-256 of everything before it. An encrypted file (the manual's
``ENCRYPT=Y`` with a ``PASSWORD``) carries scrypt parameters, a salt and a password check in its
header, and the payload as AES-256-GCM segments of 1 MiB, each authenticated with the header as
associated data and numbered in its nonce, the last one marked: a wrong password, a flipped
byte, a truncated file or reordered segments are all detected, and no plaintext of a segment is
used before its tag has been verified. Either kind is read in one pass with bounded memory.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
import struct
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from lxml import etree

from recorder.codecs.stored import open_stored
from recorder.errors import CodecError

logger = logging.getLogger(__name__)

MAGIC = b"\x89CAV\r\n\x1a\n"  # PNG-style: a high byte, then line endings a text transfer mangles
VERSION = 1
FLAG_ENCRYPTED = 0x01
KDF_SCRYPT = 1
SCRYPT_LOG_N = 17  # N = 2**17, r = 8, p = 1: 128 MiB, 0.5-1 s per derivation (OWASP minimum)
SCRYPT_R = 8
SCRYPT_P = 1
SEGMENT_BYTES = 1 << 20
HEADER = struct.Struct(">8sBBH")  # magic, version, flags, reserved
CRYPTO = struct.Struct(">BBBB16s16s7sI")  # kdf, log2 N, r, p, salt, check, nonce prefix, segment
TAG_BYTES = 16
DIGEST_BYTES = 32
MAX_XML_BYTES = 16 << 20
# What a reader accepts from a header, so a crafted file cannot make it allocate gigabytes.
_LOG_N_RANGE = range(10, 21)
_R_RANGE = range(1, 33)
_P_RANGE = range(1, 17)
_SEGMENT_RANGE = range(1 << 10, (1 << 24) + 1)

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*\Z")
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


class CavError(CodecError):
    """A CAV file could not be written or read."""


class CavPasswordError(CavError):
    """The file is encrypted and the password is missing or wrong."""


class CavCorruptError(CavError):
    """The file is damaged, truncated or not a CAV file."""


@dataclass(frozen=True)
class CavAudio:
    """The audio a CAV carries, as its XML describes it."""

    format: str
    filename: str
    sample_rate: int
    channels: int
    frames: int
    bytes: int
    sha256: str

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


@dataclass(frozen=True)
class CavInfo:
    """A CAV file's contents, verified."""

    encrypted: bool
    metadata: dict[str, str]
    audio: CavAudio
    kdf: str = ""  # e.g. "scrypt N=2^17 r=8 p=1" when encrypted
    xml: bytes = b""


# --- writing --------------------------------------------------------------------------------


def _text(value: object) -> str:
    return _NOT_XML.sub("\ufffd", str(value))


def metadata_xml(metadata: Mapping[str, object], audio: CavAudio) -> bytes:
    """The XML document of a CAV: <CAV><RECORDING>fields</RECORDING><AUDIO>...</AUDIO></CAV>."""
    root = etree.Element("CAV", version=str(VERSION))
    recording = etree.SubElement(root, "RECORDING")
    for key, value in metadata.items():
        if _NAME.match(key) and not key.lower().startswith("xml"):
            etree.SubElement(recording, key).text = _text(value)
        else:  # a key that cannot be an element name keeps its spelling in an attribute
            etree.SubElement(recording, "FIELD", NAME=_text(key)).text = _text(value)
    desc = etree.SubElement(root, "AUDIO")
    for tag, value in (("FORMAT", audio.format), ("FILENAME", audio.filename),
                       ("SAMPLERATE", audio.sample_rate), ("CHANNELS", audio.channels),
                       ("FRAMES", audio.frames), ("DURATION", f"{audio.duration:.3f}"),
                       ("BYTES", audio.bytes), ("SHA256", audio.sha256)):
        etree.SubElement(desc, tag).text = _text(value)
    etree.indent(root, space="  ")
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def _derive(password: str, salt: bytes, log_n: int, r: int, p: int) -> tuple[bytes, bytes]:
    # NFC so a password typed on another system (composed or decomposed accents) still works.
    secret = unicodedata.normalize("NFC", password).encode("utf-8")
    out = Scrypt(salt=salt, length=48, n=1 << log_n, r=r, p=p).derive(secret)
    return out[:32], out[32:]  # AES-256 key; password check (a verifier, like WinZip AE-2's)


def _nonce(prefix: bytes, counter: int, last: bool) -> bytes:
    return prefix + struct.pack(">IB", counter, 1 if last else 0)


class _Sink:
    """Where payload bytes go while writing: plain (hashed) or sealed in GCM segments."""

    def __init__(self, out: BinaryIO, header: bytes, key: bytes | None, prefix: bytes,
                 segment: int) -> None:
        self._out = out
        self._aad = header
        self._aead = AESGCM(key) if key is not None else None
        self._prefix = prefix
        self._segment = segment
        self._buffer = bytearray()
        self._counter = 0
        self._digest = hashlib.sha256(header)
        out.write(header)

    def write(self, data: bytes) -> None:
        if self._aead is None:
            self._digest.update(data)
            self._out.write(data)
            return
        self._buffer += data
        # Only a segment known not to be the last is sealed here: the last one is flagged.
        while len(self._buffer) > self._segment:
            self._seal(bytes(self._buffer[:self._segment]), last=False)
            del self._buffer[:self._segment]

    def _seal(self, plain: bytes, last: bool) -> None:
        assert self._aead is not None
        if self._counter >= 0xFFFFFFFF:
            raise CavError("recording too large for one CAV file")
        nonce = _nonce(self._prefix, self._counter, last)
        self._out.write(self._aead.encrypt(nonce, plain, self._aad))
        self._counter += 1

    def finish(self) -> None:
        if self._aead is None:
            self._out.write(self._digest.digest())
        else:
            self._seal(bytes(self._buffer), last=True)
            self._buffer.clear()


def write_cav(out: BinaryIO, audio_path: Path, metadata: Mapping[str, object], *,
              audio_format: str | None = None, password: str | None = None,
              scrypt_log_n: int = SCRYPT_LOG_N, segment_bytes: int = SEGMENT_BYTES,
              ) -> CavInfo:
    """Write a CAV holding ``audio_path`` (as it is) and ``metadata`` to ``out``.

    With a ``password`` (the API's ENCRYPT=Y) the payload is encrypted. ``out`` is not closed.
    """
    from recorder.codecs.convert import probe  # noqa: PLC0415 - this package's __init__ imports us

    if password is not None and not password:
        raise CavPasswordError("an encrypted CAV needs a non-empty password")
    info = probe(audio_path, audio_format)
    digest = hashlib.sha256()
    size = 0
    try:
        with open_stored(audio_path) as f:  # an encrypted recording's plain audio
            while chunk := f.read(1 << 20):
                digest.update(chunk)
                size += len(chunk)
        audio = CavAudio(info.format, audio_path.name, info.sample_rate, info.channels,
                         info.frames, size, digest.hexdigest())
        xml = metadata_xml(metadata, audio)
        flags = FLAG_ENCRYPTED if password is not None else 0
        header = HEADER.pack(MAGIC, VERSION, flags, 0)
        key = None
        prefix = b""
        kdf = ""
        if password is not None:
            salt, prefix = secrets.token_bytes(16), secrets.token_bytes(7)
            key, check = _derive(password, salt, scrypt_log_n, SCRYPT_R, SCRYPT_P)
            header += CRYPTO.pack(KDF_SCRYPT, scrypt_log_n, SCRYPT_R, SCRYPT_P, salt, check,
                                  prefix, segment_bytes)
            kdf = f"scrypt N=2^{scrypt_log_n} r={SCRYPT_R} p={SCRYPT_P}"
        sink = _Sink(out, header, key, prefix, segment_bytes)
        sink.write(struct.pack(">I", len(xml)) + xml + struct.pack(">Q", size))
        with open_stored(audio_path) as f:  # an encrypted recording's plain audio
            copied = hashlib.sha256()
            while chunk := f.read(1 << 20):
                copied.update(chunk)
                sink.write(chunk)
        if copied.hexdigest() != audio.sha256:
            raise CavError(f"{audio_path} changed while it was being exported")
        sink.finish()
    except OSError as exc:
        raise CavError(f"cannot write CAV of {audio_path}: {exc}") from exc
    return CavInfo(password is not None, {k: _text(v) for k, v in metadata.items()}, audio,
                   kdf, xml)


# --- reading --------------------------------------------------------------------------------


def _plain_chunks(f: BinaryIO, header: bytes, size: int) -> Iterator[bytes]:
    """The payload of a plain CAV; the trailing digest is checked before the last chunk."""
    payload = size - HEADER.size - DIGEST_BYTES
    if payload < 0:
        raise CavCorruptError("truncated CAV file")
    digest = hashlib.sha256(header)
    remaining = payload
    pending = b""
    while remaining:
        chunk = f.read(min(remaining, SEGMENT_BYTES))
        if not chunk:
            raise CavCorruptError("truncated CAV file")
        remaining -= len(chunk)
        digest.update(chunk)
        if pending:
            yield pending
        pending = chunk
    if not hmac.compare_digest(digest.digest(), f.read(DIGEST_BYTES)):
        raise CavCorruptError("CAV file damaged: its checksum does not match")
    if pending:
        yield pending


def _sealed_chunks(f: BinaryIO, header: bytes, size: int, password: str | None,
                   ) -> tuple[str, Iterator[bytes]]:
    raw = f.read(CRYPTO.size)
    if len(raw) < CRYPTO.size:
        raise CavCorruptError("truncated CAV header")
    kdf, log_n, r, p, salt, check, prefix, segment = CRYPTO.unpack(raw)
    if (kdf != KDF_SCRYPT or log_n not in _LOG_N_RANGE or r not in _R_RANGE
            or p not in _P_RANGE or segment not in _SEGMENT_RANGE):
        raise CavCorruptError("CAV header damaged or from an unknown version "
                              f"(kdf {kdf}, N=2^{log_n}, r={r}, p={p}, segment {segment})")
    if password is None:
        raise CavPasswordError("the CAV file is encrypted: a password is needed")
    key, expected = _derive(password, salt, log_n, r, p)
    if not hmac.compare_digest(expected, check):
        raise CavPasswordError("wrong password (or a damaged CAV header)")
    aad = header + raw
    aead = AESGCM(key)
    start = HEADER.size + CRYPTO.size

    def chunks() -> Iterator[bytes]:
        pos, counter = start, 0
        while True:
            if size - pos < TAG_BYTES:
                raise CavCorruptError("truncated CAV file")
            take = min(segment + TAG_BYTES, size - pos)
            sealed = f.read(take)
            if len(sealed) != take:
                raise CavCorruptError("truncated CAV file")
            pos += take
            last = pos == size
            try:
                plain = aead.decrypt(_nonce(prefix, counter, last), sealed, aad)
            except InvalidTag:
                raise CavCorruptError(f"CAV file damaged (segment {counter} fails its "
                                      "authentication)") from None
            counter += 1
            yield plain
            if last:
                return

    return f"scrypt N=2^{log_n} r={r} p={p}", chunks()


class _Reader:
    """Pulls exact byte counts out of a chunk iterator."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = b""

    def read(self, n: int) -> bytes:
        while len(self._buffer) < n:
            chunk = next(self._chunks, None)
            if chunk is None:
                raise CavCorruptError("CAV payload shorter than it says")
            self._buffer += chunk
        out, self._buffer = self._buffer[:n], self._buffer[n:]
        return out

    def stream(self, n: int, sink: Callable[[bytes], None]) -> None:
        if self._buffer:
            head, self._buffer = self._buffer[:n], self._buffer[n:]
            sink(head)
            n -= len(head)
        while n:
            chunk = next(self._chunks, None)
            if chunk is None:
                raise CavCorruptError("CAV payload shorter than it says")
            head, self._buffer = chunk[:n], chunk[n:]
            sink(head)
            n -= len(head)

    def finish(self) -> None:
        if self._buffer or any(self._chunks):  # draining also runs the final checks
            raise CavCorruptError("CAV payload longer than it says")


def _parse_xml(xml: bytes) -> tuple[dict[str, str], CavAudio]:
    if re.search(rb"<!\s*(DOCTYPE|ENTITY)", xml, re.IGNORECASE):
        raise CavCorruptError("CAV metadata carries a DTD")
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                             huge_tree=False, remove_pis=True)
    try:
        root = etree.fromstring(xml, parser)
    except etree.XMLSyntaxError as exc:
        raise CavCorruptError(f"CAV metadata is not XML: {exc}") from exc
    recording, desc = root.find("RECORDING"), root.find("AUDIO")
    if root.tag != "CAV" or recording is None or desc is None:
        raise CavCorruptError("CAV metadata lacks <RECORDING> or <AUDIO>")
    metadata: dict[str, str] = {}
    for element in recording:
        if not isinstance(element.tag, str):
            continue
        key = element.get("NAME", "") if element.tag == "FIELD" else element.tag
        metadata[key] = element.text or ""

    def number(tag: str) -> int:
        try:
            return int(desc.findtext(tag) or "0")
        except ValueError:
            raise CavCorruptError(f"CAV metadata: <{tag}> is not a number") from None

    audio = CavAudio(desc.findtext("FORMAT") or "", desc.findtext("FILENAME") or "",
                     number("SAMPLERATE"), number("CHANNELS"), number("FRAMES"),
                     number("BYTES"), (desc.findtext("SHA256") or "").lower())
    return metadata, audio


Sink = Callable[[bytes], None]
SinkFactory = Callable[[dict[str, str], CavAudio], Sink]


def _read(path: Path, password: str | None, open_sink: SinkFactory | None) -> CavInfo:
    try:
        with path.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            header = f.read(HEADER.size)
            if len(header) < HEADER.size or not header.startswith(MAGIC):
                raise CavCorruptError(f"{path} is not a CAV file")
            _, version, flags, reserved = HEADER.unpack(header)
            if version != VERSION or flags & ~FLAG_ENCRYPTED or reserved:
                raise CavCorruptError(f"{path}: CAV version {version}, flags {flags:#x} "
                                      "not understood (or a damaged header)")
            encrypted = bool(flags & FLAG_ENCRYPTED)
            kdf = ""
            if encrypted:
                kdf, chunks = _sealed_chunks(f, header, size, password)
            else:
                chunks = _plain_chunks(f, header, size)
            reader = _Reader(chunks)
            (xml_len,) = struct.unpack(">I", reader.read(4))
            if xml_len > MAX_XML_BYTES:
                raise CavCorruptError(f"{path}: metadata of {xml_len} bytes (damaged?)")
            xml = reader.read(xml_len)
            metadata, audio = _parse_xml(xml)
            (audio_len,) = struct.unpack(">Q", reader.read(8))
            if audio.bytes != audio_len:
                raise CavCorruptError(f"{path}: the audio does not match its description")
            sink = open_sink(metadata, audio) if open_sink is not None else None
            digest = hashlib.sha256()

            def take(data: bytes) -> None:
                digest.update(data)
                if sink is not None:
                    sink(data)

            reader.stream(audio_len, take)
            reader.finish()
    except OSError as exc:
        raise CavError(f"cannot read {path}: {exc}") from exc
    if audio.sha256 != digest.hexdigest():
        raise CavCorruptError(f"{path}: the audio does not match its description")
    return CavInfo(encrypted, metadata, audio, kdf, xml)


def read_cav(path: Path, password: str | None = None) -> CavInfo:
    """Verify ``path`` end to end and describe it (metadata, audio format, encryption)."""
    return _read(path, password, None)


def extract_audio(path: Path, out: Path | Callable[[CavAudio], Path],
                  password: str | None = None) -> tuple[CavInfo, Path]:
    """Write the audio of ``path`` to ``out`` (or to where ``out(audio)`` says, once the
    description has been read); the file appears only once all of it is verified."""
    part: Path | None = None
    file: BinaryIO | None = None
    final = out if isinstance(out, Path) else None

    def open_sink(metadata: dict[str, str], audio: CavAudio) -> Sink:
        nonlocal part, file, final
        final = out if isinstance(out, Path) else out(audio)
        part = final.with_name(final.name + ".part")
        opened = file = part.open("wb")

        def write(data: bytes) -> None:
            opened.write(data)

        return write

    try:
        info = _read(path, password, open_sink)
        assert file is not None
        assert part is not None
        assert final is not None
        file.flush()
        os.fsync(file.fileno())
        file.close()
        part.replace(final)
    except BaseException:
        if file is not None:
            file.close()
        if part is not None:
            part.unlink(missing_ok=True)
        raise
    return info, final


def is_encrypted(path: Path) -> bool:
    """Whether ``path`` is an encrypted CAV (without a password, without reading it all)."""
    try:
        with path.open("rb") as f:
            header = f.read(HEADER.size)
    except OSError as exc:
        raise CavError(f"cannot read {path}: {exc}") from exc
    if len(header) < HEADER.size or not header.startswith(MAGIC):
        raise CavCorruptError(f"{path} is not a CAV file")
    return bool(HEADER.unpack(header)[2] & FLAG_ENCRYPTED)
