"""Level meters: peak and RMS per 20 ms window and channel, and where speech and silence began.

Everything is vectorized across the channels of a board: a window of ``(frames, channels)``
samples is reduced along its frames, so a board of thousands of channels costs a handful of
numpy calls per window. The silence decision compares sums of squares against a threshold
computed once, so no logarithm is taken per window; dBFS figures are only computed for the
newest window, for display.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

WINDOW_SECONDS = 0.02
FULL_SCALE = 32768.0
# Digital silence (nothing but zeros) is minus infinity, not a floor such as -120: a field
# engineer must tell a dead tap, a gap or a blackout from a quiet line, and every reader shows
# it as such (CHANNELS "-inf", /status and --json null, recorderctl "-inf").
SILENCE_DBFS = -np.inf

Int16Frames = npt.NDArray[np.int16]
Floats = npt.NDArray[np.float64]


def window_frames(sample_rate: int) -> int:
    return max(1, round(sample_rate * WINDOW_SECONDS))


def window_power(frames: Int16Frames, window: int) -> tuple[Floats, npt.NDArray[np.int32]]:
    """Sum of squares and peak magnitude of each window: ``(windows, channels)`` each.

    ``frames`` is ``(windows * window, channels)``.
    """
    count, channels = frames.shape[0] // window, frames.shape[1]
    shaped = frames[: count * window].reshape(count, window, channels)
    as_float = shaped.astype(np.float32)
    # einsum keeps the float32 products in one pass without a temporary of squares.
    power = np.einsum("kwc,kwc->kc", as_float, as_float).astype(np.float64)
    # abs() of int16 -32768 overflows, so take the two extremes apart.
    peak = np.maximum(shaped.max(axis=1).astype(np.int32), -shaped.min(axis=1).astype(np.int32))
    return power, peak


def to_dbfs(value: Floats) -> Floats:
    """Amplitude (0..32768) to dBFS; zero is minus infinity (SILENCE_DBFS)."""
    with np.errstate(divide="ignore"):
        db: Floats = 20.0 * np.log10(np.asarray(value, dtype=np.float64) / FULL_SCALE)
    return db


class LevelMeter:
    """The levels of every channel of one board, fed window by window in sample order."""

    def __init__(self, channels: int, sample_rate: int, silence_threshold_dbfs: float) -> None:
        self.window = window_frames(sample_rate)
        self.threshold_dbfs = silence_threshold_dbfs
        amplitude = FULL_SCALE * 10.0 ** (silence_threshold_dbfs / 20.0)
        self._silence_power = amplitude * amplitude * self.window
        self.analyzed = 0  # position up to which whole windows have been measured
        self.peak_dbfs: Floats = np.full(channels, SILENCE_DBFS)
        self.rms_dbfs: Floats = np.full(channels, SILENCE_DBFS)
        self.silent = np.ones(channels, dtype=bool)
        # Position where the current speech run began (meaningful while not silent), and where
        # the current silence began (meaningful while silent). A line starts silent at 0.
        self.speech_since = np.zeros(channels, dtype=np.int64)
        self.silence_since = np.zeros(channels, dtype=np.int64)

    def feed(self, frames: Int16Frames, start: int) -> None:
        """Measure the whole windows of ``frames``, which begin at absolute position ``start``.

        A start after ``analyzed`` means audio was skipped (the meter fell a look-back behind);
        the runs then restart at ``start``.
        """
        power, peak = window_power(frames, self.window)
        if power.shape[0] == 0:
            return
        silent = power < self._silence_power
        for k in range(silent.shape[0]):
            pos = start + k * self.window
            now = silent[k]
            began_speech = ~now & self.silent
            began_silence = now & ~self.silent
            self.speech_since[began_speech] = pos
            self.silence_since[began_silence] = pos
            self.silent = now
        self.analyzed = start + silent.shape[0] * self.window
        self.peak_dbfs = to_dbfs(peak[-1].astype(np.float64))
        self.rms_dbfs = to_dbfs(np.sqrt(power[-1] / self.window))
