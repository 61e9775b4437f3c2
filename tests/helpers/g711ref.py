"""G.711 mu-law decoding written from the recommendation's table (ITU-T G.711, Table 2a), for the
tests only: a deliberate second copy, never to be shared with or replaced by the product's
codecs (recorder.codecs.g711, recorder.drivers.v253stream), nor by ``audioop`` (gone in
Python 3.13).

G.711 mu-law, as its table lays it out: a character is a polarity bit (1: positive), a 3-bit
segment number and a 4-bit step within the segment, and is sent with every bit inverted (so
0xFF is +0 and 0x80 the largest positive value). Segment s holds 16 steps of 2**(s+1) units,
starting at 2**(s+5) - 33 units, on the table's scale of 8159 units for full scale (the 14-bit
range); the decoder's value is the middle of the step: (2 * step + 33) * 2**s - 33 units. The
tests' 16-bit samples are that value times 4."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

SEGMENTS = 8
STEPS = 16
FULL_SCALE_UNITS = 8159  # the table's last decision value: 16-bit full scale is 4x it


def ulaw_units(character: int) -> int:
    """The decoder output of one mu-law character, in the table's units (-8031 to 8031)."""
    bits = ~character & 0xFF  # characters are sent inverted
    positive = not bits & 0x80  # the polarity bit was 1 before the inversion
    segment = (bits >> 4) & 0x07
    step = bits & 0x0F
    magnitude = (2 * step + 33) * (1 << segment) - 33  # 2**segment
    return magnitude if positive else -magnitude


def ulaw_decode(data: bytes) -> npt.NDArray[np.int16]:
    """16-bit samples of mu-law characters (units times 4)."""
    table = np.array([4 * ulaw_units(c) for c in range(256)], dtype=np.int16)
    return table[np.frombuffer(data, dtype=np.uint8)]


def ulaw_half_step(character: int) -> int:
    """Half the quantization step a character stands for, in 16-bit units: how far from its
    decoded value a sample that encodes to it may lie (2**segment units, times 4)."""
    segment = ((~character & 0xFF) >> 4) & 0x07
    return 4 * (1 << segment)
