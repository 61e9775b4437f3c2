"""Rules: the recorder's decisions as pure functions of plain values, tested with tables.

Whether a call is recorded (``decision``, with ``schedules`` for schedules and blocked filters),
when a recording must end (``limits``: MAXRECORDTIME, MAXRECORDSILENCE), what vox and line
triggers do (``triggers``), which samples a blackout silences (``blackout``), how long a
recording is kept (``retention``). Nothing here starts a thread, takes a lock or touches a file,
a socket or the database (tests/test_architecture.py checks it).
"""
