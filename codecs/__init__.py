"""Audio formats: each written while a call is recorded, read back, converted (no recorder state).

``formats`` is the registry by name (``storage.format`` and export formats) and ``open_writer``;
``wav`` (PCM and G.711, with ``g711``'s tables), ``mp3`` (lameenc) and ``voxwriter`` (OKI
ADPCM, whose codec is ``vox``) are the writers, on one buffered core (``buffered``); ``convert``
reads stored files back (each opened through ``stored``, which decrypts an encrypted one
where the process holds the key) and turns one format into another; ``mp3repair`` mends a live MP3 a
crash cut short; ``resample`` and ``stereo`` are the sample plumbing they share. Nothing here
imports the rest of the recorder but ``recorder.errors``.
"""
