"""A CAV reader written from docs/cav.md alone: struct and the `cryptography` primitives.

A deliberate second copy of the format (a test oracle): it must not import, share or be
"deduplicated" into recorder.archive.cav. Where this reader and the product disagree, the
document decides which is wrong. It is strict where the document is strict and makes no
attempt to be fast or to stream: a test vector is small."""

from __future__ import annotations

import hashlib
import struct
import unicodedata
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from lxml import etree

# docs/cav.md, "Layout (version 1)": "All integers are big-endian."
MAGIC = bytes([0x89, 0x43, 0x41, 0x56, 0x0D, 0x0A, 0x1A, 0x0A])
HEADER_BYTES = 12
SEALED_HEADER_BYTES = 59  # offsets 0 to 58: the associated data of every segment
TAG_BYTES = 16


class CavSpecError(Exception):
    """The file is not what docs/cav.md describes (or the password is wrong)."""


@dataclass(frozen=True)
class SpecCav:
    """What the document says a CAV holds."""

    encrypted: bool
    xml: bytes
    recording: dict[str, str]  # RECORDING's fields in order, FIELD NAME="..." under its name
    audio_info: dict[str, str]  # AUDIO's children by tag
    audio: bytes
    segments: tuple[int, ...] = ()  # plaintext length of each sealed segment (encrypted only)
    scrypt: tuple[int, int, int] = (0, 0, 0)  # log2 N, r, p
    segment_size: int = 0


def read(data: bytes, password: str | None = None) -> SpecCav:
    """Check and open a CAV file's bytes as docs/cav.md describes it."""
    if len(data) < HEADER_BYTES or data[:8] != MAGIC:
        raise CavSpecError("magic")
    version, flags = data[8], data[9]
    reserved = int.from_bytes(data[10:12], "big")
    if version != 1 or flags & ~0x01 or reserved != 0:
        raise CavSpecError(f"version {version}, flags {flags:#x}, reserved {reserved}")
    if flags & 0x01:
        if password is None:
            raise CavSpecError("encrypted: a password is needed")
        payload, segments, scrypt, size = _open_sealed(data, password)
        return _payload(payload, True, segments, scrypt, size)
    if len(data) < HEADER_BYTES + 32:
        raise CavSpecError("too short for a checksum")
    # "The last 32 bytes are the SHA-256 of everything before them (header and payload)."
    if hashlib.sha256(data[:-32]).digest() != data[-32:]:
        raise CavSpecError("checksum")
    return _payload(data[HEADER_BYTES:-32], False, (), (0, 0, 0), 0)


def _open_sealed(data: bytes, password: str,
                 ) -> tuple[bytes, tuple[int, ...], tuple[int, int, int], int]:
    if len(data) < SEALED_HEADER_BYTES + TAG_BYTES:
        raise CavSpecError("too short")
    kdf, log_n, r, p = data[12], data[13], data[14], data[15]
    salt, check, prefix = data[16:32], data[32:48], data[48:55]
    (size,) = struct.unpack(">I", data[55:59])
    if (kdf != 1 or not 10 <= log_n <= 20 or not 1 <= r <= 32 or not 1 <= p <= 16
            or not 1024 <= size <= 16 << 20):
        raise CavSpecError(f"parameters kdf {kdf} N=2^{log_n} r={r} p={p} S={size}")
    secret = unicodedata.normalize("NFC", password).encode("utf-8")
    derived = Scrypt(salt=salt, length=48, n=2 ** log_n, r=r, p=p).derive(secret)
    if derived[32:] != check:
        raise CavSpecError("wrong password")
    aead = AESGCM(derived[:32])
    associated = data[:SEALED_HEADER_BYTES]
    payload = bytearray()
    lengths: list[int] = []
    pos, index = SEALED_HEADER_BYTES, 0
    while True:
        # Every segment is S bytes of plaintext and its tag; "the one ending at end of file"
        # is the last, whatever its length.
        sealed = data[pos:pos + size + TAG_BYTES]
        if len(sealed) < TAG_BYTES:
            raise CavSpecError("truncated")
        pos += len(sealed)
        last = pos == len(data)
        nonce = prefix + struct.pack(">I", index) + (b"\x01" if last else b"\x00")
        try:
            plain = aead.decrypt(nonce, sealed, associated)
        except InvalidTag:
            raise CavSpecError(f"segment {index} fails its tag") from None
        payload += plain
        lengths.append(len(plain))
        index += 1
        if last:
            return bytes(payload), tuple(lengths), (log_n, r, p), size


def _payload(payload: bytes, encrypted: bool, segments: tuple[int, ...],
             scrypt: tuple[int, int, int], size: int) -> SpecCav:
    if len(payload) < 4:
        raise CavSpecError("payload")
    (xml_len,) = struct.unpack(">I", payload[:4])
    if xml_len > 16 << 20 or 4 + xml_len + 8 > len(payload):
        raise CavSpecError(f"XML length {xml_len}")
    xml = payload[4:4 + xml_len]
    (audio_len,) = struct.unpack(">Q", payload[4 + xml_len:12 + xml_len])
    audio = payload[12 + xml_len:]
    if len(audio) != audio_len:  # "Nothing follows the audio inside the payload"
        raise CavSpecError(f"audio length {audio_len}, payload holds {len(audio)}")
    recording, info = _document(xml)
    if int(info["BYTES"]) != len(audio) or info["SHA256"] != hashlib.sha256(audio).hexdigest():
        raise CavSpecError("AUDIO/BYTES or AUDIO/SHA256")
    return SpecCav(encrypted, xml, recording, info, audio, segments, scrypt, size)


def _document(xml: bytes) -> tuple[dict[str, str], dict[str, str]]:
    # The document refuses any DOCTYPE or entity declaration; the writer never makes one, so
    # looking for the markup in the bytes is enough for an oracle.
    if b"<!DOCTYPE" in xml or b"<!ENTITY" in xml:
        raise CavSpecError("a DOCTYPE or an entity")
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    root = etree.fromstring(xml, parser)
    if root.tag != "CAV" or root.get("version") != "1":
        raise CavSpecError(f"root {root.tag} version {root.get('version')}")
    recording_element, audio_element = root.find("RECORDING"), root.find("AUDIO")
    if recording_element is None or audio_element is None:
        raise CavSpecError("RECORDING or AUDIO missing")
    recording: dict[str, str] = {}
    for child in recording_element:
        name = child.get("NAME") if child.tag == "FIELD" else child.tag
        recording[str(name)] = child.text or ""
    info = {str(child.tag): child.text or "" for child in audio_element}
    return recording, info
