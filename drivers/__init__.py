"""Capture drivers: each module is one kind of board (its driver and its settings schema).

``base`` is the interface every driver follows, ``lineevents`` what a board reports besides
audio, ``registry`` finds a driver by the ``driver`` name of a ``[[boards]]`` table.
``synthetic`` (the demo board), ``file`` (replayed audio files), ``sounddevice`` (PortAudio),
``voicemodem`` (with ``v253``, the modem conversation, and ``v253stream``, its voice data).
"""
