"""A block of the siprec board from its streams' blocks: each channel's one stream, or the sum
of its streams (a party's two streams, a conference), clipped at full scale.

The media thread takes every stream's block first (``StreamMedia.take``), then ``place``
writes them. A whole block of G.711 codes (what a stream's ``take`` gives while its packets
come in order) is not decoded stream by stream: the blocks of the channels that have one
stream each are decoded together, one table lookup for all the streams of a law, and written
with one assignment, so that per stream only a list append is left.
"""

from __future__ import annotations

import logging

import numpy as np

from recorder.drivers.siprec.jitter import Piece, Samples
from recorder.drivers.siprec.mediastream import StreamMedia

logger = logging.getLogger(__name__)

Taken = tuple[int, Piece, StreamMedia]  # (channel, its block, the stream it came from)


def place(block: np.ndarray, taken: list[Taken]) -> None:
    """Write the streams' blocks (``taken``, in the media thread's order) into ``block``."""
    frames = block.shape[0]
    seen: set[int] = set()
    shared: set[int] = set()
    for channel, _, _ in taken:
        if channel in seen:
            shared.add(channel)
        seen.add(channel)
    batches: dict[int, tuple[Samples, list[bytes], list[int]]] = {}  # by id(table)
    mixed: set[int] = set()
    for channel, piece, stream in taken:
        samples: Samples
        if isinstance(piece, bytes):
            table = stream.codes
            assert table is not None
            if channel not in shared:
                batch = batches.get(id(table))
                if batch is None:
                    batch = batches[id(table)] = (table, [], [])
                batch[1].append(piece)
                batch[2].append(channel)
                continue
            samples = stream.jitter.decode_piece(piece)
        else:
            samples = piece
        if channel in mixed:
            # Another stream of the same side: the parties add up, in the order taken.
            total = block[:, channel].astype(np.int32) + samples
            block[:, channel] = np.clip(total, -32768, 32767)
        else:
            block[:, channel] = samples
            mixed.add(channel)
    for table, codes, channels in batches.values():
        decoded = table.take(np.frombuffer(b"".join(codes), dtype=np.uint8))
        block[:, channels] = decoded.reshape(len(channels), frames).T
