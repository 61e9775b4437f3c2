"""Capture: drivers deliver audio into per-channel ring buffers; everything else reads them.

``core`` runs the boards (``CaptureCore``, ``CaptureBoard``, ``Channel``) and its monitor loop;
``ring`` is the per-channel ring buffer addressed by absolute sample position; ``clock`` maps a
board's sample positions to time and finds lost audio; ``levels`` meters each 20 ms window;
``channels`` keeps each channel's state as the manual's STATE list names it.
"""
