"""SRTP with SDES keys (RFC 4568 ``a=crypto``, RFC 3711), over libsrtp through pylibsrtp.

``parse_crypto`` reads one crypto attribute; ``local_crypto`` makes the recorder's answer to
it (same tag and suite, a fresh key: RFC 4568 §6.1 wants a key per direction, even one we
never send on). ``SrtpReceiver`` unprotects one stream's SRTP and SRTCP with the SRC's key; a
packet that fails authentication or the replay check is dropped and counted, never passed on:
a recording is evidence, and a forged packet must not reach it.

Only what libsrtp is given here is accepted: AES_CM_128_HMAC_SHA1_80 and _32 with a single
inline key of 30 bytes (16 key + 14 salt). Lines with an MKI, several keys or session
parameters (KDR, UNENCRYPTED_SRTP...) are refused, so the SDP answer picks another line or
refuses the stream.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass

import pylibsrtp

logger = logging.getLogger(__name__)

KEY_SALT_BYTES = 30
PROFILES: dict[str, int] = {
    "AES_CM_128_HMAC_SHA1_80": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
    "AES_CM_128_HMAC_SHA1_32": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_32,
}
_CRYPTO = re.compile(r"(\d{1,9})\s+([A-Za-z0-9_]+)\s+inline:([A-Za-z0-9+/=]+)"
                     r"(?:\|([0-9^]+))?(?:\|(\d+:\d+))?(\s+.*)?")


@dataclass(frozen=True)
class CryptoAttribute:
    """One ``a=crypto`` line: tag, crypto-suite, master key and salt, optional lifetime."""

    tag: int
    suite: str
    key_salt: bytes
    lifetime: str | None = None

    def to_string(self) -> str:
        """The attribute value (after ``a=crypto:``)."""
        key = base64.b64encode(self.key_salt).decode()
        life = f"|{self.lifetime}" if self.lifetime else ""
        return f"{self.tag} {self.suite} inline:{key}{life}"


def parse_crypto(value: str) -> CryptoAttribute | None:
    """The crypto attribute in ``value`` if we can use it; None otherwise (see module doc)."""
    match = _CRYPTO.fullmatch(value.strip())
    if match is None:
        return None
    tag, suite, key, lifetime, mki, rest = match.groups()
    if suite.upper() not in PROFILES or mki is not None or (rest and rest.strip()):
        return None
    try:
        key_salt = base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(key_salt) != KEY_SALT_BYTES:
        return None
    return CryptoAttribute(int(tag), suite.upper(), key_salt, lifetime)


def local_crypto(offered: CryptoAttribute) -> CryptoAttribute:
    """Our answer to ``offered``: its tag and suite with a fresh random key."""
    return CryptoAttribute(offered.tag, offered.suite, secrets.token_bytes(KEY_SALT_BYTES))


class SrtpReceiver:
    """Unprotects what the SRC sends on one stream (any SSRC) with its offered key."""

    def __init__(self, remote: CryptoAttribute) -> None:
        policy = pylibsrtp.Policy(key=remote.key_salt,
                                  ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND,
                                  srtp_profile=PROFILES[remote.suite])
        self._session = pylibsrtp.Session(policy)
        self.auth_failures = 0
        self.replays = 0  # duplicates and very old packets, refused by libsrtp's window
        self.errors = 0  # anything else libsrtp refused (too long, malformed)

    def unprotect(self, packet: bytes) -> bytes | None:
        """The RTP packet inside ``packet``; None (counted) if it does not authenticate."""
        return self._run(self._session.unprotect, packet)

    def unprotect_rtcp(self, packet: bytes) -> bytes | None:
        """The RTCP packet inside an SRTCP ``packet``; None (counted) if it is refused."""
        return self._run(self._session.unprotect_rtcp, packet)

    def _run(self, unprotect: Callable[[bytes], bytes], packet: bytes) -> bytes | None:
        try:
            return unprotect(bytes(packet))
        except pylibsrtp.Error as exc:
            reason = str(exc)
            if "authentication" in reason:
                self.auth_failures += 1
            elif "replay" in reason:
                self.replays += 1
            else:
                self.errors += 1
            return None
        except ValueError:  # longer than libsrtp's buffer, or too short to hold a header
            self.errors += 1
            return None

    @property
    def dropped(self) -> int:
        return self.auth_failures + self.replays + self.errors
