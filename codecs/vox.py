"""Dialogic/OKI 4-bit ADPCM, the codec of raw ``.vox`` files, bit-exact with sox and libsndfile.

The codec is sox's (``src/adpcms.c``, type OKI): the 49-entry OKI step table scaled to 16 bits,
the step-index changes (-1, -1, -1, -1, 2, 4, 6, 8), decoded deltas rounded down to a multiple
of 16 (the 12-bit precision of the original chips), and results saturated to 16 bits. Encoding
picks ``code = min(7, 4·|d| // step)``. Two codes per byte, the earlier sample in the high nibble;
an odd final sample is followed by a zero nibble, as sox writes it. Every file we write equals
``sox -D in.wav -t vox out.vox`` byte for byte (``-D``: sox otherwise dithers its input to 12
bits), and libsndfile's RAW/VOX_ADPCM encoder and decoder agree with both. ffmpeg's independent
``adpcm_ima_oki`` decoder clamps at 12 bits instead of 16, so it agrees except right at full
scale.

ADPCM is sequential in time, so the encoder is vectorised across streams instead: one step of
the recursion is a handful of numpy calls over a whole column of streams (``encode_columns``).
The state of a stream is one integer, ``S = step_index·2**17 + 65536 - last_output``, chosen so
that ``S + sample`` directly indexes a table holding the next code (and the step index), and
stepping costs seven numpy calls whatever the number of streams.

Two ways to use that:

- live, many calls at once: each ``VoxWriter`` (``recorder.codecs.voxwriter``) buffers what it
  is given, and ``encode_pending`` encodes the buffers of all of them in one pass (7,000-8,500
  channel-seconds per CPU-second at 3,000 channels, BENCHMARKS.md). A writer left to itself
  encodes its own buffer at ``sync()`` and ``close()``, as one stream.
- one stream (a writer on its own, after-call transcoding): ``encode_stream`` cuts it into
  segments encoded side by side, each from a few guessed states after a short warm-up. ADPCM
  trajectories that meet stay together, so a segment is right as soon as the true state,
  followed from segment to segment, equals one of its guesses' states at its start; the
  segments where none does are re-encoded from their true state, side by side again, until
  each meets one of its guesses. The result is exact whatever the guesses; only the speed
  varies (about 1,600 channel-seconds per CPU-second on speech).

Decoding is sequential too, but its only non-linearity is saturation: step indices and samples
are both running sums clamped to a range, which ``_clamped_cumsum`` computes as a parallel prefix
over clamp functions (a clamp of a shifted clamp is again a shifted clamp).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

logger = logging.getLogger(__name__)

# sox src/adpcms.c oki_steps: the OKI/Dialogic 12-bit step table times 16.
OKI_STEPS: tuple[int, ...] = (
    256, 272, 304, 336, 368, 400, 448, 496, 544, 592, 656, 720, 800, 880, 960,
    1056, 1168, 1280, 1408, 1552, 1712, 1888, 2080, 2288, 2512, 2768, 3040, 3344,
    3680, 4048, 4464, 4912, 5392, 5936, 6528, 7184, 7904, 8704, 9568, 10528,
    11584, 12736, 14016, 15408, 16960, 18656, 20512, 22576, 24832)
STEP_CHANGES: tuple[int, ...] = (-1, -1, -1, -1, 2, 4, 6, 8)
MAX_INDEX = len(OKI_STEPS) - 1
MIN_SAMPLE, MAX_SAMPLE = -0x8000, 0x7FFF

_INDEX_SHIFT = 17  # state = index << 17 | (65536 - last): last takes 17 bits
_LAST_BIAS = 1 << 16
INITIAL_STATE = _LAST_BIAS  # step index 0, last output 0: how every .vox stream starts

# Segmenting one stream (encode_stream).
_SCALAR_BELOW = 8192  # shorter inputs: the plain per-sample loop is cheaper than speculating
_SEGMENT_TARGET = 2048
_MAX_SEGMENTS = 512
# Trajectories from different states meet after a few hundred samples of speech (median ~200,
# 90th percentile ~1,000; loud noise takes about twice as long). A longer warm-up repairs fewer
# segments but costs every segment; measured, this length was the faster trade.
_WARMUP = 256
_REPAIR_BLOCK = 128
CHUNK = 1 << 20  # samples per speculative pass; bounds memory to ~50 MB
_CONVERT_ROWS = 256
# Guessed start states: both phases of both limit cycles a silent (or constant) input settles
# into (last output alternating 0/32 or -16/16 at step index 0), so segments starting inside
# digital silence, where warm-ups alone never agree, still start right.
_GUESSES = tuple(INITIAL_STATE - last for last in (0, 32, 16, -16))

# Decoding works on blocks: the clamped scan is O(n log n) in the block length.
_DECODE_BLOCK = 1 << 15


def state_of(last: int, index: int) -> int:
    """The packed encoder/decoder state for a last output and a step index."""
    return (index << _INDEX_SHIFT) + _LAST_BIAS - last


def unpack_state(state: int) -> tuple[int, int]:
    """(last output, step index) of a packed state."""
    return _LAST_BIAS - (state & ((1 << _INDEX_SHIFT) - 1)), state >> _INDEX_SHIFT


@dataclass(frozen=True)
class _Tables:
    # next_k[S + x] = index << 4 | code: the encoder's whole decision for sample x in state S.
    next_k: npt.NDArray[np.uint16]
    # Indexed by k = index << 4 | code:
    delta: npt.NDArray[np.int32]  # signed change of the output
    next_base: npt.NDArray[np.int32]  # (next index) << 17 + 65536, the state before "- last"
    # For the per-sample loop and the decoder, by index * 8 + magnitude:
    magnitude_delta: tuple[int, ...]
    next_index: tuple[int, ...]


@functools.cache
def _tables() -> _Tables:
    steps = np.array(OKI_STEPS, dtype=np.int64)
    k = np.arange(len(steps) * 16)
    index, code = k >> 4, k & 15
    magnitude = ((steps[index] * (((code & 7) << 1) | 1)) >> 3) & ~15
    delta = np.where(code & 8, -magnitude, magnitude).astype(np.int32)
    next_index = np.clip(index + np.array(STEP_CHANGES)[code & 7], 0, MAX_INDEX)
    next_base = (next_index * (1 << _INDEX_SHIFT) + _LAST_BIAS).astype(np.int32)
    # d = sample - last ranges over [-65535, 65535]; S + sample = index << 17 + 65536 + d.
    d = np.arange(-_LAST_BIAS, _LAST_BIAS, dtype=np.int64)
    table = np.empty((len(steps), 1 << _INDEX_SHIFT), dtype=np.uint16)
    for i, step in enumerate(OKI_STEPS):
        mag = np.minimum(7, (np.abs(d) << 2) // step)
        table[i] = (i << 4) | mag | np.where(d < 0, 8, 0)
    by_mag = [int(v) for i in range(len(steps)) for v in magnitude[i * 16: i * 16 + 8]]
    nxt = [int(v) for i in range(len(steps)) for v in next_index[i * 16: i * 16 + 8]]
    return _Tables(table.reshape(-1), delta, next_base, tuple(by_mag), tuple(nxt))


# --- encoding -------------------------------------------------------------------------------


def encode_columns(x: npt.NDArray[np.integer], states: npt.NDArray[np.int32],
                   history: npt.NDArray[np.int32] | None = None) -> npt.NDArray[np.uint8]:
    """Encode ``x`` (time by streams) from ``states`` (updated in place); codes, same shape.

    ``history``, if given (same shape as ``x``), receives each stream's state after each sample.
    """
    t = _tables()
    steps, columns = x.shape
    codes = np.empty((steps, columns), dtype=np.uint16)
    last = np.ascontiguousarray(_LAST_BIAS - (states & ((1 << _INDEX_SHIFT) - 1)), dtype=np.int32)
    state = np.array(states, dtype=np.int32)
    j = np.empty(columns, dtype=np.intp)
    delta = np.empty(columns, dtype=np.int32)
    base = np.empty(columns, dtype=np.int32)
    # Bound methods and mode="clip" (which skips take's bounds-checking copy; the indices are in
    # range by construction) keep the per-step overhead down: it dominates at a few hundred
    # columns.
    next_k, delta_of, base_of = t.next_k.take, t.delta.take, t.next_base.take
    add, subtract, minimum, maximum = np.add, np.subtract, np.minimum, np.maximum
    for top in range(0, steps, _CONVERT_ROWS):
        # Index arithmetic in intp avoids a conversion inside every take.
        xs = np.ascontiguousarray(x[top:top + _CONVERT_ROWS], dtype=np.intp)
        for i in range(len(xs)):
            add(xs[i], state, out=j)
            k = codes[top + i]
            next_k(j, out=k, mode="clip")
            delta_of(k, out=delta, mode="clip")
            add(last, delta, out=last)
            minimum(last, MAX_SAMPLE, out=last)
            maximum(last, MIN_SAMPLE, out=last)
            base_of(k, out=base, mode="clip")
            if history is not None:
                state = history[top + i]
            subtract(base, last, out=state)
    states[:] = state
    return (codes & 15).astype(np.uint8)


def _encode_scalar(x: Sequence[int], state: int, t: _Tables,
                   ) -> tuple[list[int], int]:
    """The per-sample loop: codes and the final state."""
    last, index = unpack_state(state)
    steps, by_mag, nxt = OKI_STEPS, t.magnitude_delta, t.next_index
    codes = []
    for sample in x:
        d = sample - last
        if d < 0:
            mag = min(7, ((-d) << 2) // steps[index])
            last -= by_mag[index * 8 + mag]
            codes.append(8 | mag)
            last = max(last, MIN_SAMPLE)
        else:
            mag = min(7, (d << 2) // steps[index])
            last += by_mag[index * 8 + mag]
            codes.append(mag)
            last = min(last, MAX_SAMPLE)
        index = nxt[index * 8 + mag]
    return codes, state_of(last, index)


def encode_stream(x: npt.NDArray[np.int16], state: int = INITIAL_STATE,
                  chunk: int = CHUNK) -> tuple[npt.NDArray[np.uint8], int]:
    """Encode one stream from ``state``: its codes (one per sample) and the state after it."""
    samples = np.asarray(x, dtype=np.int16).reshape(-1)
    t = _tables()
    if len(samples) < _SCALAR_BELOW:
        codes, state = _encode_scalar(samples.tolist(), state, t)
        return np.array(codes, dtype=np.uint8), state
    out = np.empty(len(samples), dtype=np.uint8)
    for start in range(0, len(samples), chunk):
        warmup = samples[max(0, start - _WARMUP):start]
        part = samples[start:start + chunk]
        out[start:start + len(part)], state = _encode_segments(part, warmup, state, t)
    return out, state


def _encode_segments(x: npt.NDArray[np.int16], before: npt.NDArray[np.int16], state: int,
                     t: _Tables) -> tuple[npt.NDArray[np.uint8], int]:
    n = len(x)
    segments = max(1, min(_MAX_SEGMENTS, n // _SEGMENT_TARGET))
    length = -(-n // segments)
    guesses = len(_GUESSES)
    # Column g + guesses·s encodes segment s from guess g: the _WARMUP samples before the segment
    # (zeros before the stream's start), then the segment (zeros after the stream's end).
    padded = np.zeros(_WARMUP + segments * length, dtype=np.int16)
    padded[_WARMUP - len(before):_WARMUP] = before
    padded[_WARMUP:_WARMUP + n] = x
    rows = _WARMUP + length
    windows = np.lib.stride_tricks.sliding_window_view(padded, rows)[::length][:segments]
    columns = np.repeat(windows.T, guesses, axis=1)
    states = np.tile(np.array(_GUESSES, dtype=np.int32), segments)
    history = np.empty(columns.shape, dtype=np.int32)
    codes = encode_columns(columns, states, history)

    ends = [min(length, n - s * length) for s in range(segments)]
    starts = history[_WARMUP - 1].reshape(segments, guesses).tolist()
    finals = [history[_WARMUP + ends[s] - 1, s * guesses:(s + 1) * guesses].tolist()
              for s in range(segments)]
    spec = _Speculation(columns, history, codes, finals, ends, guesses)
    chosen = [0] * segments
    first = 0
    repaired = 0
    while first < segments:
        # Follow the true state from segment to segment through the guesses it agrees with.
        # Segments that agree with none are repaired together, each presumed to end where its
        # guesses all end (where it will be once it meets one of them).
        todo: list[tuple[int, int]] = []
        s = first
        while s < segments:
            if state in starts[s]:
                chosen[s] = s * guesses + starts[s].index(state)
                state = finals[s][starts[s].index(state)]
            else:
                todo.append((s, state))
                if len(set(finals[s])) > 1:
                    break  # no single presumption possible: resolve this one first
                state = finals[s][0]
            s += 1
        first = segments
        if not todo:
            break
        # _repair answers up to the first segment that did not end as presumed (if any).
        for (s, _), (column, end_state) in zip(todo, _repair(todo, spec), strict=False):
            chosen[s] = column
            repaired += 1
            presumed = finals[s][0] if len(set(finals[s])) == 1 else None
            if end_state != presumed:
                # Everything after s was followed from a wrong state: start again there.
                first, state = s + 1, end_state
                break
    if repaired:
        logger.debug("vox: %d of %d segments repaired from their true state",
                     repaired, segments)
    body = codes[_WARMUP:, chosen]  # rows: time within segment; columns: segments
    return np.ascontiguousarray(body.T).reshape(-1)[:n], state


@dataclass(frozen=True)
class _Speculation:
    """One speculative pass: inputs, states and codes per column, and what each segment ends as."""

    columns: npt.NDArray[np.int16]  # rows: warm-up then segment; columns: (segment, guess)
    history: npt.NDArray[np.int32]  # state after each row
    codes: npt.NDArray[np.uint8]
    finals: list[list[int]]  # per segment, per guess: the state after its last sample
    ends: list[int]  # per segment: its length (the last one may be short)
    guesses: int


def _repair(todo: list[tuple[int, int]], spec: _Speculation) -> list[tuple[int, int]]:
    """Encode the segments in ``todo`` from their true start states until each meets a guess.

    From a meeting point on, the guess's column holds the right codes already (equal states,
    equal futures), so only the codes before it are copied in. Returns, per segment, the column
    holding its codes and its end state. Codes are written back in order and only up to the
    first segment whose end differs from its guesses' (the caller starts again after it; the
    later repairs began from a state that was only presumed).
    """
    columns, history, codes = spec.columns, spec.history, spec.codes
    finals, ends, guesses = spec.finals, spec.ends, spec.guesses
    segs = np.array([s for s, _ in todo])
    data = columns[_WARMUP:, segs * guesses]
    length = data.shape[0]
    repair_codes = np.empty((length, len(todo)), dtype=np.uint8)
    states = np.array([st for _, st in todo], dtype=np.int32)
    result: list[tuple[int, int, int] | None] = [None] * len(todo)  # column, rows, end state
    active = np.arange(len(todo))
    limit = np.array([ends[s] for s in segs])
    for begin in range(0, length, _REPAIR_BLOCK):
        if not len(active):
            break
        stop = min(length, begin + _REPAIR_BLOCK)
        hist = np.empty((stop - begin, len(active)), dtype=np.int32)
        block_states = states[active]
        repair_codes[begin:stop, active] = encode_columns(data[begin:stop, active], block_states,
                                                          hist)
        states[active] = block_states
        cols = (segs[active] * guesses)[:, None] + np.arange(guesses)
        target = history[_WARMUP + begin:_WARMUP + stop][:, cols]  # rows, active, guesses
        hits = hist[:, :, None] == target
        rows_ok = (np.arange(begin, stop)[:, None] < limit[active][None, :])
        met_rows = hits.any(axis=2) & rows_ok
        done = np.zeros(len(active), dtype=bool)
        for a in np.nonzero(met_rows.any(axis=0))[0]:
            row = int(np.argmax(met_rows[:, a]))
            g = int(np.argmax(hits[row, a]))
            i = int(active[a])
            result[i] = (int(segs[i]) * guesses + g, begin + row + 1, finals[segs[i]][g])
            done[a] = True
        for a in np.nonzero(~done & (limit[active] <= stop))[0]:
            i = int(active[a])
            end = int(limit[i])  # never met: the whole segment is the repair's
            result[i] = (int(segs[i]) * guesses, end, int(hist[end - 1 - begin, a]))
            done[a] = True
        active = active[~done]
    out = []
    for i, item in enumerate(result):
        assert item is not None
        column, upto, end_state = item
        codes[_WARMUP:_WARMUP + upto, column] = repair_codes[:upto, i]
        out.append((column, end_state))
        s = int(segs[i])
        presumed = finals[s][0] if len(set(finals[s])) == 1 else None
        if end_state != presumed:
            break
    return out


def pack_codes(codes: npt.NDArray[np.uint8]) -> bytes:
    """Two codes per byte, the first in the high nibble; an odd count ends with a zero nibble."""
    c = np.asarray(codes, dtype=np.uint8)
    if len(c) % 2:
        c = np.append(c, np.uint8(0))
    return ((c[0::2] << 4) | c[1::2]).astype(np.uint8).tobytes()


def unpack_codes(data: bytes | npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """The codes of a VOX byte string, two per byte (high nibble first)."""
    b = np.frombuffer(data, dtype=np.uint8) if isinstance(data, bytes) else data
    codes = np.empty(2 * len(b), dtype=np.uint8)
    codes[0::2] = b >> 4
    codes[1::2] = b & 15
    return codes


def encode(samples: npt.NDArray[np.int16]) -> bytes:
    """A whole mono signal as VOX bytes."""
    codes, _ = encode_stream(samples)
    return pack_codes(codes)


# --- decoding -------------------------------------------------------------------------------


def _clamped_cumsum(steps: npt.NDArray[np.int64], lo: int, hi: int,
                    start: int) -> npt.NDArray[np.int64]:
    """``y[i] = clamp(y[i-1] + steps[i], lo, hi)`` with ``y[-1] = start``, without a loop.

    Each step is the function x ↦ clamp(x + a, l, h); composing two gives another of the same
    form, so a Hillis-Steele prefix scan over (a, l, h) triples yields every prefix in
    log2(n) vector passes.
    """
    plain = start + np.cumsum(steps)
    if len(plain) == 0 or (plain.min() >= lo and plain.max() <= hi):
        return plain  # nothing saturated: the common case for samples
    a = steps.astype(np.int64)
    low = np.full(len(a), lo, dtype=np.int64)
    high = np.full(len(a), hi, dtype=np.int64)
    shift = 1
    while shift < len(a):
        # F_i := f_i ∘ F_(i - shift); the inner (earlier) function's bounds pass through f_i.
        a_in, l_in, h_in = a[:-shift], low[:-shift], high[:-shift]
        a_out, l_out, h_out = a[shift:], low[shift:], high[shift:]
        new_low = np.clip(l_in + a_out, l_out, h_out)
        new_high = np.clip(h_in + a_out, l_out, h_out)
        new_a = a_in + a_out
        a[shift:], low[shift:], high[shift:] = new_a, new_low, new_high
        shift *= 2
    return np.clip(start + a, low, high)


def decode_codes(codes: npt.NDArray[np.uint8], state: int = INITIAL_STATE,
                 ) -> tuple[npt.NDArray[np.int16], int]:
    """The samples of ``codes`` decoded from ``state``, and the state after them."""
    t = _tables()
    c = np.asarray(codes, dtype=np.int64)
    out = np.empty(len(c), dtype=np.int16)
    changes = np.array(STEP_CHANGES, dtype=np.int64)
    last, index = unpack_state(state)
    for begin in range(0, len(c), _DECODE_BLOCK):
        block = c[begin:begin + _DECODE_BLOCK]
        after = _clamped_cumsum(changes[block & 7], 0, MAX_INDEX, index)
        before = np.concatenate([[index], after[:-1]])
        samples = _clamped_cumsum(t.delta[(before << 4) | block].astype(np.int64),
                                  MIN_SAMPLE, MAX_SAMPLE, last)
        out[begin:begin + len(block)] = samples
        last, index = int(samples[-1]), int(after[-1])
    return out, state_of(last, index)


def decode(data: bytes) -> npt.NDArray[np.int16]:
    """VOX bytes as samples (two per byte)."""
    samples, _ = decode_codes(unpack_codes(data))
    return samples
