"""Recordings encrypted at rest (docs/encryption.md): the master key and the file keys it wraps
(``keys``), the chunked AES-256-GCM file format (``sealed``), written as it is recorded
(``writer``) and read back with random access (``reader``), and the one place the rest of the
recorder meets them (``access``).

Pure file and key work: nothing here knows a call, a row or a thread.
"""
