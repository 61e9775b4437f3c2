"""Recordings encrypted at rest (docs/encryption.md): the master key and the file keys it wraps
(``keys``), the chunked AES-256-GCM file format, written as it is recorded and read back with
random access (``sealed``), and opening a recording whether it is encrypted or not (``access``).

Pure file and key work: nothing here knows a call, a row or a thread.
"""
