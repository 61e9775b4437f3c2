"""Calls: the live call table, and everything that turns call events into recordings.

``scheduler`` owns the call table and is the one entry for CALLSTART, CALLSTOP, RECORDSTART,
blackouts and the status views; ``requests`` is what it is asked (``CallStart``, ...), ``model``
the live call and its recordings, ``devices`` the device table and lookups, ``status`` what the
status requests show, ``events`` the manual's events about calls; ``watch`` ends recordings at
their limits and brings them back after a full disk; ``triggers`` is the loop that starts and
stops calls from vox, line and always triggers.
"""
