"""Recording: a recording's file from open to close, and what happens to it afterwards.

Everything here works from plain values (a channel, a path, a format), never from the call
table. ``files`` opens a recording (its file, row and journal entry) and closes it; ``session``
copies one channel's ring into one file; ``writer`` is the loop that pumps every open session;
``completion`` is the queue and worker that finish a closed recording (row, journal, events,
after-call encoding); ``stats`` counts them; ``journal`` and ``recovery`` make a crash lose
nothing; ``aftercall`` and ``transcode`` turn the crash-safe WAV into the stored format;
``blackouts`` keeps a call's blackouts and silences them in files; ``paths`` and ``diskspace``
own file names and the free-space floor.
"""
