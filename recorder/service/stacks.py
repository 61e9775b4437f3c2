"""Every thread's stack, as text: what a field engineer sends in when the recorder seems stuck."""

from __future__ import annotations

import sys
import threading
import traceback


def thread_stacks() -> list[tuple[str, str]]:
    """(heading, stack) for every running thread, the main thread first."""
    frames = sys._current_frames()
    threads = sorted(threading.enumerate(),
                     key=lambda t: (t is not threading.main_thread(), t.name))
    stacks = []
    for thread in threads:
        frame = frames.get(thread.ident) if thread.ident is not None else None
        daemon = ", daemon" if thread.daemon else ""
        heading = f'thread "{thread.name}" (id {thread.ident}{daemon})'
        stack = "".join(traceback.format_stack(frame)) if frame is not None else "  (no frame)\n"
        stacks.append((heading, stack.rstrip("\n")))
    return stacks
