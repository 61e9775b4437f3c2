"""The C allocator told to give large blocks back to the system as soon as they are freed.

glibc serves a block over its mmap threshold (128 KiB at first) with a mapping of its own and
unmaps it on free, but then raises the threshold to that block's size, so that the next block
as large comes from a thread's arena, whose top it does not give back (malloc_trim neither).
Each scrypt hash (recorder/store/passwords.py) allocates 16 MiB on the hashing thread: after the
second one, those 16 MiB stayed resident for good, and with every API worker hashing, as before
issue 18, one such block per worker. A fixed threshold keeps blocks of LARGE_BLOCK and more in
mappings of their own, so a flood of IMPORTUSER leaves no memory behind (measured: a recorderd
at 72 MB stayed at 89 MB after a few hashes; now it is back to 74 MB after a flood). The cost is a
mapping and its page faults per such block: about 12 ms more CPU on a 50-60 ms hash, measured on
the two-core development machine, and nothing for the recorder's usual blocks, all far smaller.
"""

from __future__ import annotations

import ctypes
import logging

logger = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # glibc's malloc.h
LARGE_BLOCK = 4 * 1024 * 1024


def return_large_blocks(threshold: int = LARGE_BLOCK) -> bool:
    """Fix the allocator's mmap threshold at ``threshold`` bytes; False where the C library
    has no such setting (not glibc), which changes nothing but the memory kept."""
    try:
        # The symbols the interpreter is linked with, the C library's among them (no search
        # for the library's file, which would start a process).
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    done = bool(mallopt(M_MMAP_THRESHOLD, threshold))
    if not done:
        logger.debug("mallopt(M_MMAP_THRESHOLD, %d) refused", threshold)
    return done
