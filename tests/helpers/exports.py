"""Shared by the export and e-mail tests: tone lines to record, a call to record on them, and
what the independent tools (sox, ffmpeg) make of an export. No tests here."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import soundfile

from tests.helpers.api import ApiConnection, expect, fields
from tests.helpers.audio import ffmpeg_decode, ffprobe, run

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
    info = ffprobe(path)
    return ffmpeg_decode(path, channels=int(info["channels"])), int(info["sample_rate"])


