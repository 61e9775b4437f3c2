"""Recordings encrypted at rest (docs/encryption.md): the master key and the file keys it wraps
(``keys``), the keys a running service holds and reloads (``keyring``, ``servicekeys``), the
chunked AES-256-GCM file format (``sealed``), written as it is recorded (``writer``) and read
back with random access (``reader``), work files sealed under keys held in memory
(``workfiles``), and the one place the rest of the recorder meets them (``access``).

Pure file and key work: nothing here knows a call, a row or a thread of the recorder.
"""
