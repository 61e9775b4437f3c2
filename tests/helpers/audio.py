"""Audio for the tests and the independent tools that check what the recorder wrote: speech to
encode, sox, ffmpeg, ffprobe.

No tests here. The speech is espeak-ng's, resampled to 8 kHz by sox, with a little noise added
the way a phone line has some (digital silence is tested on its own, where it matters).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import soundfile

TOOL_TIMEOUT = 60
SENTENCES = (
    "Thank you for calling. Your call may be recorded for quality and training purposes. "
    "Please hold the line while we connect you to the next available agent. "
    "Press one for billing, two for technical support, or stay on the line."
)


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is required (apt-get install {name})")
    return path


def run(*args: str | Path, stdin: bytes | None = None) -> bytes:
    """Run a tool and return its stdout; fail the test with its stderr if it fails."""
    argv = [str(a) for a in args]
    proc = subprocess.run([tool(argv[0]), *argv[1:]], input=stdin, capture_output=True,
                          timeout=TOOL_TIMEOUT, check=False)
    assert proc.returncode == 0, f"{' '.join(argv)}: {proc.stderr.decode(errors='replace')}"
    return proc.stdout


def make_speech(directory: Path, rate: int = 8000, seed: int = 7) -> npt.NDArray[np.int16]:
    """About ten seconds of espeak-ng speech at ``rate``, with faint line noise."""
    raw = directory / "espeak.wav"
    run("espeak-ng", "-s", "150", "-w", raw, SENTENCES)
    resampled = directory / f"speech{rate}.wav"
    run("sox", raw, "-r", str(rate), "-b", "16", "-c", "1", resampled)
    samples, got = soundfile.read(resampled, dtype="int16")
    assert got == rate
    noise = np.random.default_rng(seed).normal(0, 30, len(samples))
    # Half scale: telephone speech peaks well below full scale, and so the comparisons with
    # decoders that clip differently are not about clipping.
    return np.clip(samples * 0.5 + noise, -32768, 32767).astype(np.int16)


def write_wav(path: Path, samples: npt.NDArray[np.int16], rate: int = 8000) -> Path:
    soundfile.write(path, samples, rate, subtype="PCM_16")
    return path


def snr_db(reference: npt.NDArray[np.int16], decoded: npt.NDArray[np.int16]) -> float:
    """Signal-to-noise ratio of ``decoded`` against ``reference``, sample for sample."""
    n = min(len(reference), len(decoded))
    ref = reference[:n].astype(np.float64)
    err = ref - decoded[:n].astype(np.float64)
    return float(10 * np.log10(np.sum(ref**2) / max(np.sum(err**2), 1e-9)))


def ffmpeg_decode(path: Path, *input_options: str, channels: int = 1,
                  ) -> npt.NDArray[np.int16]:
    """What ffmpeg decodes ``path`` to, as int16 (frames, channels) or (frames,) when mono."""
    out = run("ffmpeg", "-v", "error", "-nostdin", *input_options, "-i", path,
              "-f", "s16le", "-acodec", "pcm_s16le", "-")
    samples = np.frombuffer(out, dtype="<i2").astype(np.int16)
    return samples if channels == 1 else samples.reshape(-1, channels)


def ffprobe(path: Path) -> dict[str, str]:
    """ffprobe's view of the first audio stream: codec_name, sample_rate, channels, ..."""
    out = run("ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries",
              "stream=codec_name,sample_rate,channels,duration:stream_tags=encoder",
              "-of", "default=noprint_wrappers=1", path).decode()
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def sox_info(path: str | Path, *options: str) -> dict[str, str]:
    """What ``sox --i`` reports about a file: rate (-r), channels (-c), bits (-b), samples
    (-s), duration in seconds (-D), encoding (-e)."""
    return {flag: run("sox", "--i", flag, *options, path).decode().strip()
            for flag in ("-r", "-c", "-b", "-s", "-D", "-e")}
