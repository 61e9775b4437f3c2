"""A streaming rational resampler for int16 audio (8 kHz → 6 kHz for VOX, and any other ratio).

Polyphase windowed-sinc FIR: upsample by L, low-pass, keep every M-th sample, without ever
computing the zeros or the discarded samples. Each output phase is one strided matrix-vector
product over a sliding-window view of the input, so a block costs a handful of numpy calls.

The filter is linear-phase and its delay is removed (the first outputs are dropped and ``flush``
feeds zeros through), so output sample m sits at input time m·M/L exactly: a 6 kHz copy lines up
with its 8 kHz source, and ``n`` input samples give ``ceil(n·L/M)`` output samples.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

TAPS_PER_PHASE = 96  # filter length per output phase; sets the transition band (~400 Hz at 8k)
KAISER_BETA = 8.6  # about 85 dB stopband attenuation


class Resampler:
    """Converts one channel from ``in_rate`` to ``out_rate``; feed blocks, then ``flush()``."""

    def __init__(self, in_rate: int, out_rate: int, taps_per_phase: int = TAPS_PER_PHASE) -> None:
        if in_rate <= 0 or out_rate <= 0:
            raise ValueError("sample rates must be positive")
        g = math.gcd(in_rate, out_rate)
        self.up = out_rate // g
        self.down = in_rate // g
        self.in_rate, self.out_rate = in_rate, out_rate
        self._k = taps_per_phase
        length = taps_per_phase * self.up
        # An odd length whose centre falls on a whole output sample, so the delay can be removed
        # by dropping outputs: (length - 1) / 2 must be a multiple of ``down``.
        length -= (length - 1) % (2 * self.down)
        self._delay = (length - 1) // (2 * self.down)
        # Cut-off just below the lower Nyquist frequency, less half the transition band.
        nyquist = 0.5 * min(in_rate, out_rate)
        transition = (KAISER_BETA * 0.115 + 0.9) * in_rate * self.up / length  # Kaiser estimate
        cutoff = max(0.5 * nyquist, nyquist - 0.5 * transition) / (in_rate * self.up)
        n = np.arange(length) - (length - 1) / 2
        h = 2 * cutoff * np.sinc(2 * cutoff * n) * np.kaiser(length, KAISER_BETA) * self.up
        padded = np.zeros(taps_per_phase * self.up)
        padded[:length] = h
        # phases[p, j] = h[p + j·up], reversed along j so a window in time order dots with it.
        self._phases = padded.reshape(taps_per_phase, self.up).T[:, ::-1].copy()
        self._history = np.zeros(taps_per_phase - 1)
        self._consumed = 0  # input samples received
        self._produced = 0  # filter outputs computed (including the dropped delay)

    def process(self, samples: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
        """Resample the next block; returns every output sample it makes available."""
        y = self._run(np.asarray(samples, dtype=np.float64).reshape(-1))
        return _to_int16(y)

    def flush(self) -> npt.NDArray[np.int16]:
        """The last outputs, so the total is ``ceil(inputs · L / M)`` samples."""
        wanted = -(-self._consumed * self.up // self.down) + self._delay
        # Zeros push the tail out of the filter; enough of them to reach the last wanted output.
        needed_inputs = ((wanted - 1) * self.down) // self.up + 1
        zeros = np.zeros(max(0, needed_inputs - self._consumed))
        consumed = self._consumed
        y = self._run(zeros)
        self._consumed = consumed
        produced_before = self._produced - len(y)
        keep = max(0, wanted - produced_before)
        return _to_int16(y[:keep])

    def _run(self, x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        k, up, down = self._k, self.up, self.down
        buf = np.concatenate([self._history, x])
        base = self._consumed - (k - 1)  # global input index of buf[0]
        self._consumed += len(x)
        self._history = buf[len(buf) - (k - 1):] if k > 1 else buf[:0]
        # Output m needs inputs up to n0 = (m·down) // up, which must have arrived: every
        # m < ceil(consumed · up / down).
        end = -(-self._consumed * up // down)
        start = self._produced
        if end <= start:
            return np.zeros(0)
        windows = sliding_window_view(buf, k)  # windows[i] = buf[i : i + k]
        out = np.empty(end - start)
        for r in range(min(up, end - start)):
            m0 = start + r
            u = m0 * down
            p, n0 = u % up, u // up
            first = n0 - (k - 1) - base  # window index of output m0
            count = (end - 1 - m0) // up + 1
            out[r::up] = windows[first: first + (count - 1) * down + 1: down] @ self._phases[p]
        self._produced = end
        drop = max(0, self._delay - start)
        return out[drop:]


def _to_int16(y: npt.NDArray[np.float64]) -> npt.NDArray[np.int16]:
    return np.clip(np.rint(y), -32768, 32767).astype(np.int16)


def resample(samples: npt.NDArray[np.int16], in_rate: int, out_rate: int) -> npt.NDArray[np.int16]:
    """A whole mono signal at ``out_rate``."""
    if in_rate == out_rate:
        return np.asarray(samples, dtype=np.int16)
    r = Resampler(in_rate, out_rate)
    return np.concatenate([r.process(samples), r.flush()])
