"""Calls: the live call table, and everything that turns call events into recordings.

``scheduler`` keeps the call table (``table``) and is the one entry for CALLSTART, CALLSTOP,
RECORDSTART and RECORDSTOP; around it, ``lookup`` finds the device a request means,
``blackouts`` runs BLACKOUTSTART/STOP, ``updates`` applies CALLUPDATE, ``status`` makes the
status requests' snapshots, ``events`` the manual's events about calls; ``requests`` is what it
is asked (``CallStart``, ...), ``model`` the live call and its recordings, ``devices`` the device
table; ``watch`` ends recordings at their limits and brings them back after a full disk;
``triggers`` is the loop that starts and stops calls from vox, line and always triggers, and
hands SIPREC session events to ``sessions``, which makes each session a call (``adoption``:
the CTI call of a device that began before its session becomes the session's call).
"""
