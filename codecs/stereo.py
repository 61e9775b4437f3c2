"""Two directions of one phone line: one stereo file (a party per side) or one mixed channel.

A device may be tapped by two channels, one per direction. ``interleave`` makes the frames of a
stereo recording from them (left: the first channel, right: the second); ``mix_to_mono`` sums
the two sides of stereo frames into one channel. The sum saturates rather than averaging: each
side carries one party and silence while the other speaks, so halving would make both quieter.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def interleave(left: npt.NDArray[np.int16], right: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
    """Frames of shape (n, 2) from two equally long mono blocks."""
    if len(left) != len(right):
        raise ValueError(f"directions differ in length: {len(left)} and {len(right)} samples")
    return np.stack([np.asarray(left, dtype=np.int16), np.asarray(right, dtype=np.int16)], axis=1)


def mix_to_mono(frames: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
    """One channel from (n, channels) frames: the saturated sum of the channels."""
    total = np.asarray(frames, dtype=np.int32).sum(axis=1)
    mixed: npt.NDArray[np.int16] = np.clip(total, -32768, 32767).astype(np.int16)
    return mixed
