"""What a jitter buffer hands out (``Playout``, its ``Counts``) and the ``Fitter`` that cuts
decoded audio to the slots the RTP timestamps give it (see ``jitter``).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

logger = logging.getLogger(__name__)

Samples = npt.NDArray[np.int16]
EMPTY: Samples = np.zeros(0, dtype=np.int16)


@dataclass(slots=True)
class Counts:
    """What happened to a stream's packets and samples (cumulative, or since a call)."""

    packets: int = 0  # audio packets played
    lost_packets: int = 0
    lost_samples: int = 0  # silence for packets that never came
    gap_samples: int = 0  # silence the SRC left on purpose, or a drain asked for
    late: int = 0
    duplicates: int = 0
    events: int = 0  # RFC 4733 packets (payload dropped)
    comfort_noise: int = 0
    unknown_pt: int = 0
    strays: int = 0  # packets that fitted no segment and were not followed
    segments: int = 0  # segments begun after the first
    segment_samples: int = 0  # silence placed between segments from arrival times

    # By name, not dataclasses.astuple: this runs on every playout call of every stream.
    def minus(self, other: Counts) -> Counts:
        return Counts(*[getattr(self, n) - getattr(other, n) for n in _COUNT_FIELDS])

    def copy(self) -> Counts:
        return Counts(*[getattr(self, n) for n in _COUNT_FIELDS])


_COUNT_FIELDS = tuple(f.name for f in dataclasses.fields(Counts))


@dataclass
class Playout:
    samples: Samples
    counts: Counts
    # Output positions [start, end) that are silence for lost audio, oldest first: in these
    # samples, or (found out now) in samples handed out before.
    lost: list[tuple[int, int]] = field(default_factory=list)


class Fitter:
    """Cuts decoded audio to exact slot lengths. A decoder's output runs a few samples behind
    (the resampler's delay): a short slot is padded in front, so the stream keeps that small
    constant delay instead of a hole; audio beyond a slot (and beyond ``slack``, the
    resampler's rounding) overlaps the next slot and is dropped."""

    def __init__(self, slack: int) -> None:
        self.slack = slack
        self.held: Samples = EMPTY  # decoded audio not handed out yet

    def push(self, samples: Samples) -> None:
        self.held = np.concatenate((self.held, samples)) if len(self.held) else samples

    def drop(self, count: int) -> None:
        self.held = self.held[count:]

    def take(self, count: int, pad_front: bool) -> Samples:
        if len(self.held) == count:  # the usual case: a packet's audio exactly fills its slot
            have, self.held = self.held, EMPTY
            return have
        have = self.held[:count]
        self.held = self.held[count:][: self.slack]
        if len(have) == count:
            return have
        zeros = np.zeros(count - len(have), dtype=np.int16)
        return np.concatenate((zeros, have) if pad_front else (have, zeros))
