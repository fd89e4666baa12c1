"""What every benchmark here shares: fixing thread counts, and interleaved timing.

Import this before NumPy: ``set_threads`` must run before NumPy loads its BLAS.
"""
from __future__ import annotations

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
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
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
