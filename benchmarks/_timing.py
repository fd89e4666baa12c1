"""What every benchmark here shares: fixing thread counts, and interleaved timing.

Import this before NumPy: ``set_threads`` must run before NumPy loads its BLAS.
"""
from __future__ import annotations

import gc
import os
import statistics
import time


def set_threads(n: int) -> None:
    """Give every engine the same thread count (call before importing NumPy or torch)."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)


def interleaved(fns: dict, repeats: int, warmup: int = 1, samples: bool = False) -> dict:
    """Median time of each function, running them in turn within every repeat.

    Interleaving means a slow phase of this shared machine hits every engine alike,
    so the ratios between them stay meaningful even when absolute times wander. The
    order rotates from one repeat to the next, so no function always runs first.
    ``samples=True`` returns every repeat's time (lists, repeat by repeat) instead, for
    ratios taken within each repeat.

    A full garbage collection runs before the timed repeats: the collector's debt from
    importing the engines (a full pass over ~170k objects with torch loaded, ~90 ms)
    would otherwise land on whichever engine happens to allocate next. The collector
    stays on while timing, as in a user's program.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    gc.collect()
    names = list(fns)
    times = {name: [] for name in fns}
    for r in range(repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            t0 = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - t0)
    if samples:
        return times
    return {name: statistics.median(ts) for name, ts in times.items()}
