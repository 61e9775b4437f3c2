"""Shared by the export and e-mail tests: tone lines to record, the tools that check what comes
out (sox, ffmpeg), a self-signed certificate, a free port. No tests here."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import soundfile
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.apiexpect import expect, fields
from tests.codecs_support import ffmpeg_decode, run
from tests.conftest import ApiConnection

PREROLL = 0.5  # capture.preroll_seconds' default: a recording starts this long before CALLSTART


def tone(path: Path, hz: float, rate: int = 8000, seconds: float = 2.0) -> Path:
    """A sine a file board can loop without a click (whole cycles in ``seconds``)."""
    t = np.arange(round(rate * seconds)) / rate
    soundfile.write(path, np.rint(8000 * np.sin(2 * np.pi * hz * t)).astype(np.int16), rate,
                    subtype="PCM_16")
    return path


def tone_boards(directory: Path) -> list[dict[str, Any]]:
    """Lines 2001 (440 Hz) and 2002 (1 kHz) at 8 kHz, 2003 (660 Hz) at 16 kHz."""
    return [
        {"driver": "file", "devices": ["2001", "2002"],
         "files": [str(tone(directory / "a440.wav", 440)),
                   str(tone(directory / "b1000.wav", 1000))]},
        {"driver": "file", "devices": ["2003"],
         "files": [str(tone(directory / "c660.wav", 660, rate=16000))]},
    ]


def record(conn: ApiConnection, device: str, seconds: float, **meta: str) -> dict[str, str]:
    """CALLSTART, ``seconds``, CALLSTOP on ``device``; its CALLLIST row."""
    expect(conn.request("CALLSTART", 1, deviceid=device, **meta), 20)
    time.sleep(seconds)
    expect(conn.request("CALLSTOP", 2, deviceid=device), 20)
    return fields(conn.request("CALLLIST", 3, deviceid=device, callcount=1).find("SEARCHRESULT"))


def dominant_hz(samples: npt.NDArray[np.int16], rate: int) -> float:
    """The strongest frequency in ``samples`` (mono, or the channels' mean)."""
    x = samples.astype(np.float64)
    if x.ndim == 2:
        x = x.mean(axis=1)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum) * rate / len(x))


def decode(path: Path, fmt: str, rate: int = 8000) -> tuple[npt.NDArray[np.int16], int]:
    """What the independent tools make of an export: (samples, rate). VOX goes through sox
    (it says neither rate nor anything else), everything else through ffmpeg at its own rate."""
    if fmt == "vox":
        wav = path.with_suffix(".vox.wav")
        run("sox", "-t", "vox", "-r", str(rate), path, "-b", "16", wav)
        path = wav
    info = ffprobe_stream(path)
    return ffmpeg_decode(path, channels=int(info["channels"])), int(info["sample_rate"])


def ffprobe_stream(path: Path) -> dict[str, str]:
    out = run("ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries",
              "stream=codec_name,sample_rate,channels", "-of", "default=noprint_wrappers=1",
              path).decode()
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def self_signed(directory: Path, name: str = "recorder") -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, and its key (PEM files)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def free_port() -> int:
    """A port nothing listens on at the moment (for servers that cannot take port 0)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
