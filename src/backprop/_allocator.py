"""Keep freed array memory for the next training step instead of handing it back (glibc).

A training step allocates and frees the same large arrays every step. glibc's malloc
serves a block above its mmap threshold with a fresh ``mmap`` and hands the top of its
heap back to the system once more than its trim threshold is free there. Either way the
next step writes to new pages, and each 4 KiB page costs a page fault in the kernel. Both
thresholds move with the sizes a program happens to free, so the cost comes and goes with
unrelated changes: on the CNN of ``benchmarks/cnn.py`` it is 3,600 to 6,300 faults and 8
to 14 ms of system time per step, about half the step, and none once they are raised.

``import backprop`` calls :func:`keep_freed_memory_unless_disabled`: set
``BACKPROP_KEEP_FREED_MEMORY=0`` to leave malloc as it is. ``keep_freed_memory()`` raises them (mmap threshold 32 MiB, the most glibc's own dynamic
threshold reaches; trim threshold 1 GiB): a process keeps its peak heap and reuses it, as
the caching allocators of deep-learning frameworks do. A process's own ``MALLOC_*`` or
``GLIBC_TUNABLES`` settings win: then it does nothing. Elsewhere than glibc it does
nothing.
"""
from __future__ import annotations

import ctypes
import os
import sys

_M_TRIM_THRESHOLD = -1  # mallopt's parameter numbers (malloc.h)
_M_MMAP_THRESHOLD = -3


def keep_freed_memory(mmap_threshold: int = 32 << 20, trim_threshold: int = 1 << 30) -> bool:
    """Raise glibc malloc's mmap and trim thresholds; True if they were set.

    Example::

        from backprop._allocator import keep_freed_memory
        keep_freed_memory()   # True on Linux with glibc
    """
    if not sys.platform.startswith("linux") or "GLIBC_TUNABLES" in os.environ or \
            any(name.startswith("MALLOC_") for name in os.environ):
        return False
    try:
        libc = ctypes.CDLL(None)
        _ = libc.gnu_get_libc_version  # glibc only (musl has no mallopt thresholds)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and \
        bool(mallopt(_M_TRIM_THRESHOLD, trim_threshold))


def keep_freed_memory_unless_disabled() -> bool:
    """:func:`keep_freed_memory`, unless ``BACKPROP_KEEP_FREED_MEMORY=0`` is set (what
    ``import backprop`` runs); True if the thresholds were set."""
    if os.environ.get("BACKPROP_KEEP_FREED_MEMORY", "").strip() == "0":
        return False
    return keep_freed_memory()
